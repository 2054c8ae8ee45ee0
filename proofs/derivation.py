"""Derivations: hypotheses, a goal, and ordered steps, every one checked by the computer.

A derivation may also carry the paper's statement *as printed* next to the corrected steps; an
erratum then shows up as a failed printed step with its witness. Printing follows a sequent plus a
script: hypotheses, ``|- goal``, then one line per step with its method, citation and status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sympy as sp

from proofs.steps import Context, Step, StepResult, check_step


@dataclass(frozen=True)
class Derivation:
    """A checked derivation. Build one with :meth:`Derivation.check`.

    ``ok`` is true when every step is checked and every printed statement that the derivation
    records as wrong is refuted.
    """

    name: str
    source: str
    hypotheses: tuple[tuple[str, sp.Basic], ...]
    goal: sp.Basic
    steps: tuple[StepResult, ...]
    bound: sp.Basic | None = None
    printed: tuple[StepResult, ...] = ()

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

        Raises ``ValueError`` for a duplicate hypothesis or step label, or a step that ``uses``
        a label not defined before it.
        """
        pairs = list(hypotheses.items() if isinstance(hypotheses, Mapping) else hypotheses)
        known: set[str] = set()
        for label, _ in pairs:
            if label in known:
                raise ValueError(f"hypothesis {label!r} is defined twice; use distinct names")
            known.add(label)
        context = Context(dict(pairs))
        results = []
        for step in steps:
            _check_label(step, known)
            results.append(check_step(step, context))
            known.add(step.label)
        printed = []
        for step in as_printed:
            _check_label(step, known)
            printed.append(check_step(step, context))
            known.add(step.label)
        return cls(name, source, tuple(pairs), goal, tuple(results), bound, tuple(printed))

    @property
    def checked(self) -> int:
        return sum(result.status == "checked" for result in self.steps)

    @property
    def complete(self) -> bool:
        return self.checked == len(self.steps)

    @property
    def errata_shown(self) -> bool:
        return all(result.status == "failed" for result in self.printed)

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
        """Return the last line of the printed derivation: steps checked, errata refuted."""
        text = f"{self.checked} of {len(self.steps)} steps checked; derivation "
        text += "complete" if self.complete else "incomplete"
        if self.printed:
            refuted = sum(r.status == "failed" for r in self.printed)
            text += f"; {refuted} of {len(self.printed)} printed statements refuted"
        return text

    def __str__(self) -> str:
        lines = [f"{self.name}  ({self.source})"]
        lines += [f"  {label}: {claim}" for label, claim in self.hypotheses]
        lines.append(f"  |- {self.goal}")
        rows = [(f"({r.label})", str(r.step), r) for r in self.steps]
        rows += [(f"({r.label})", f"as printed: {r.step}", r) for r in self.printed]
        width = max((len(claim) for _, claim, _ in rows), default=0)
        width = min(width, 72)
        label_width = max((len(label) for label, _, _ in rows), default=0)  # (10), (3')
        for label, claim, result in rows:
            cite = f"[{result.step.cite}]" if result.step.cite else ""
            status = result.status.upper() if result.status == "failed" else result.status
            line = f"  {label:<{label_width}} {claim:<{width}}  by {result.by:<8} {cite}  {status}"
            if result.detail and result.status != "checked":
                line += f"  {result.detail}"
            lines.append(line.rstrip())
        lines.append(f"  {self.summary()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Derivation {self.name}: {self.checked}/{len(self.steps)} checked>"

    def to_latex(self) -> str:
        """Return the derivation as a LaTeX ``enumerate`` list, one item per step."""
        items = []
        for result in self.steps + self.printed:
            printed = r"\textit{as printed:} " if result in self.printed else ""
            cite = f" [{result.step.cite}]" if result.step.cite else ""
            claim = (f"\\texttt{{{_escape(result.step.show)}}}" if result.step.show
                     else f"${sp.latex(result.claim)}$")
            items.append(f"  \\item[({result.label})] {printed}{claim} "
                         f"\\hfill by {result.by}{cite}: \\textbf{{{result.status}}}")
        goal = sp.latex(self.goal)
        return ("\\paragraph{" + self.name + f"}} Goal: ${goal}$.\n\\begin{{enumerate}}\n"
                + "\n".join(items) + "\n\\end{enumerate}\n")

    def _repr_latex_(self) -> str:
        rows = " \\\\ ".join(
            f"\\text{{({r.label})}} & {sp.latex(r.claim)} & \\text{{{r.status}}}"
            for r in self.steps + self.printed
        )
        return f"$\\begin{{array}}{{lll}} {rows} \\end{{array}}$"


def _escape(text: str) -> str:
    special = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}",
               "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$", "~": r"\~{}"}
    return "".join(special.get(char, char) for char in text)


def _check_label(step: Step, known: set[str]) -> None:
    if step.label in known:
        raise ValueError(f"step label {step.label!r} is used twice; use distinct labels")
    missing = [label for label in step.uses if label not in known]
    if missing:
        raise ValueError(f"step {step.label!r} uses {', '.join(map(repr, missing))}, "
                         f"which is not a hypothesis or an earlier step")
