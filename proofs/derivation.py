"""Derivations: hypotheses, a goal, and ordered steps, every one checked by the computer.

A derivation is complete only when every step is checked, every step's premises are its named
hypotheses and earlier steps (and each named premise was needed), every hypothesis is used, and
the goal is *discharged*: a checked paper step states it (not one certified over a box only,
and not when a hypothesis states it already). A step certified by interval arithmetic holds on
its box only, so a step that names it is not checked. Paper steps and algebra helpers (generic
facts, true whatever the paper says) print apart. The paper's statements *as printed* sit next to
the corrected ones, each with the status a failed check gives it (``refuted``, ``inconsistent``,
``unconfirmed source``). Printing follows a sequent plus a script: hypotheses, ``|- goal``, then
one line per step with its method, citation, premises and status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sympy as sp

from proofs.steps import Context, Step, StepResult, _same, check_step


@dataclass(frozen=True)
class Derivation:
    """A checked derivation. Build one with :meth:`Derivation.check`.

    ``ok`` is true when the derivation is complete (see the module docstring) and every printed
    statement it records as wrong fails its check.
    """

    name: str
    source: str
    hypotheses: tuple[tuple[str, sp.Basic], ...]
    goal: sp.Basic
    steps: tuple[StepResult, ...]
    bound: sp.Basic | None = None
    printed: tuple[StepResult, ...] = ()
    goal_step: str | None = None
    unused: tuple[str, ...] = ()

    @classmethod
    def check(
        cls,
        name: str,
        *,
        source: str,
        hypotheses: Iterable[tuple[str, sp.Basic]] | Mapping[str, sp.Basic],
        goal: sp.Basic,
        steps: Iterable[Step],
        bound: sp.Basic | None = None,
        as_printed: Iterable[Step] = (),
    ) -> Derivation:
        """Check every step in order and return the checked derivation.

        Raises ``ValueError`` for a duplicate hypothesis or step label, a step that ``uses`` a
        label not defined before it, or a goal or hypothesis that is not a relation.
        """
        pairs = list(hypotheses.items() if isinstance(hypotheses, Mapping) else hypotheses)
        claims: dict[str, sp.Basic] = {}
        for label, claim in pairs:
            if label in claims:
                raise ValueError(f"hypothesis {label!r} is defined twice; use distinct names")
            _check_relation(claim, f"hypothesis {label!r}")
            claims[label] = claim
        _check_relation(goal, "the goal")
        statuses: dict[str, str] = {label: "checked" for label in claims}
        results = [cls._check_one(step, claims, statuses) for step in steps]
        printed = [cls._check_one(step, claims, statuses, printed=True) for step in as_printed]
        # a step checked by interval certification holds on its box only, and a goal among the
        # hypotheses is assumed, not derived
        assumed = any(_states(claim, goal) for _, claim in pairs)
        goal_step = next((r.label for r in results if r.ok and r.step.role == "paper"
                          and r.by != "interval" and _states(r.claim, goal)), None)
        goal_step = None if assumed else goal_step
        used = {label for r in results + printed for label in r.step.uses}
        unused = [f"hypothesis {label} is never used" for label, _ in pairs if label not in used]
        for r in results + printed:
            if r.status == "checked":
                unused += [f"({r.label}) names {label} but does not need it"
                           for label in r.step.uses if label not in r.consumed]
        return cls(name, source, tuple(pairs), goal, tuple(results), bound, tuple(printed),
                   goal_step, tuple(unused))

    @staticmethod
    def _check_one(step: Step, claims: dict, statuses: dict, printed: bool = False) -> StepResult:
        if step.label in claims:
            raise ValueError(f"step label {step.label!r} is used twice; use distinct labels")
        missing = [label for label in step.uses if label not in claims]
        if missing:
            raise ValueError(f"step {step.label!r} uses {', '.join(map(repr, missing))}, "
                             f"which is not a hypothesis or an earlier step")
        if not printed and step.erratum:
            raise ValueError(f"step {step.label!r} has an erratum status but is not a printed "
                             f"statement; pass it in as_printed")
        result = check_step(step, Context({label: claims[label] for label in step.uses}))
        weak = [label for label in step.uses if statuses[label] != "checked"]
        if weak and result.status == "checked":
            result = StepResult(step, "unchecked", result.by, detail="rests on " + ", ".join(
                f"({label}), which is {statuses[label]}" for label in weak),
                consumed=result.consumed)
        claims[step.label] = step.claim
        # certified over its box only: a later step may not read it as true everywhere
        statuses[step.label] = "checked on its box only" if result.ok and result.by == "interval" \
            else result.status
        return result

    @property
    def checked(self) -> int:
        return sum(result.status == "checked" for result in self.steps)

    @property
    def paper_steps(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.steps if r.step.role == "paper")

    @property
    def algebra_steps(self) -> tuple[StepResult, ...]:
        return tuple(r for r in self.steps if r.step.role == "algebra")

    @property
    def complete(self) -> bool:
        """Every step checked, the goal discharged, and nothing named but unused."""
        return (self.checked == len(self.steps) and self.goal_step is not None
                and not self.unused)

    @property
    def errata_shown(self) -> bool:
        return all(result.status == "failed" for result in self.printed)

    @property
    def errata(self) -> dict[str, int]:
        """Failed printed statements by status: refuted, inconsistent, unconfirmed source."""
        tally = Counter(r.step.erratum or "refuted" for r in self.printed if r.status == "failed")
        return dict(tally)

    @property
    def ok(self) -> bool:
        return self.complete and self.errata_shown

    def step(self, label: str) -> StepResult:
        """Return the result of the step (or printed step) called ``label``."""
        for result in self.steps + self.printed:
            if result.label == label:
                return result
        raise KeyError(f"no step labelled {label!r}")

    def summary(self) -> str:
        """Return the last line of the printed derivation: steps checked, goal, errata."""
        paper, algebra = self.paper_steps, self.algebra_steps
        text = (f"{self.checked} of {len(self.steps)} steps checked ({len(paper)} paper, "
                f"{len(algebra)} algebra); ")
        text += (f"goal discharged by ({self.goal_step})" if self.goal_step
                 else "goal NOT discharged")
        text += "; derivation " + ("complete" if self.complete else "incomplete")
        if self.printed:
            counts = self.errata
            parts = [f"{counts[s]} {s}" for s in ("refuted", "inconsistent",
                                                  "unconfirmed source") if counts.get(s)]
            missed = sum(r.status != "failed" for r in self.printed)
            if missed:
                parts.append(f"{missed} NOT shown wrong")
            text += "; printed statements: " + ", ".join(parts)
        return text

    def __str__(self) -> str:
        lines = [f"{self.name}  ({self.source})"]
        lines += [f"  {label}: {claim}" for label, claim in self.hypotheses]
        lines.append(f"  |- {self.goal}")
        sections = [("paper steps", self.paper_steps, ""),
                    ("algebra helpers (true whatever the paper says)", self.algebra_steps, ""),
                    ("as printed in the paper", self.printed, "printed")]
        every = self.steps + self.printed
        width = min(max((len(str(r.step)) for r in every), default=0), 72)
        label_width = max((len(r.label) + 2 for r in every), default=0)
        for title, results, kind in sections:
            if not results:
                continue
            lines.append(f"  {title}:")
            for r in results:
                label = f"({r.label})"
                cite = f"[{r.step.cite}]" if r.step.cite else ""
                uses = f"from {', '.join(r.step.uses)}" if r.step.uses else ""
                status = _status_text(r, kind)
                parts = [f"  {label:<{label_width}} {str(r.step):<{width}}", f"by {r.by:<8}",
                         cite, uses, status]
                if r.detail and (r.status != "checked" or kind):
                    parts.append(r.detail)
                lines.append("  ".join(part for part in parts if part).rstrip())
        lines += [f"  unused: {item}" for item in self.unused]
        lines.append(f"  {self.summary()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Derivation {self.name}: {self.checked}/{len(self.steps)} checked>"

    def to_latex(self) -> str:
        """Return the derivation as a LaTeX ``enumerate`` list, one item per step."""
        items = []
        for result in self.steps + self.printed:
            printed = r"\textit{as printed:} " if result in self.printed else ""
            helper = r"\textit{algebra:} " if result.step.role == "algebra" else ""
            cite = f" [{result.step.cite}]" if result.step.cite else ""
            claim = (f"\\texttt{{{_escape(result.step.show)}}}" if result.step.show
                     else f"${sp.latex(result.claim)}$")
            status = _status_text(result, "printed" if printed else "")
            items.append(f"  \\item[({_escape(result.label)})] {printed}{helper}{claim} "
                         f"\\hfill by {result.by}{cite}: \\textbf{{{status}}}")
        goal = sp.latex(self.goal)
        return ("\\paragraph{" + self.name + f"}} Goal: ${goal}$.\n\\begin{{enumerate}}\n"
                + "\n".join(items) + "\n\\end{enumerate}\n")

    def _repr_latex_(self) -> str:
        rows = " \\\\ ".join(
            f"\\text{{({_escape(r.label)})}} & {sp.latex(r.claim)} & \\text{{{r.status}}}"
            for r in self.steps + self.printed
        )
        return f"$\\begin{{array}}{{lll}} {rows} \\end{{array}}$"


def _status_text(result: StepResult, kind: str) -> str:
    if kind == "printed":
        if result.status == "failed":
            return (result.step.erratum or "refuted").upper()
        return f"NOT SHOWN WRONG ({result.status})"
    return result.status.upper() if result.status == "failed" else result.status


def _states(claim: sp.Basic, goal: sp.Basic) -> bool:
    """Whether ``claim`` states ``goal``: the same relations with sides equal up to SymPy."""
    if isinstance(goal, sp.And):
        if not isinstance(claim, sp.And) or len(claim.args) != len(goal.args):
            return False
        return all(any(_states(c, g) for c in claim.args) for g in goal.args)
    if type(claim) is not type(goal) or not isinstance(goal, sp.core.relational.Relational):
        return False
    return _same(claim.lhs, goal.lhs) and _same(claim.rhs, goal.rhs)


def _check_relation(claim: sp.Basic, what: str) -> None:
    relational = sp.core.relational.Relational
    parts = claim.args if isinstance(claim, sp.And) else (claim,)
    if not parts or not all(isinstance(p, relational) for p in parts):
        raise ValueError(f"{what} must be a relation or a conjunction of relations, "
                         f"not {claim!r}")


def _escape(text: str) -> str:
    special = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}",
               "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$", "~": r"\~{}"}
    return "".join(special.get(char, char) for char in text)
