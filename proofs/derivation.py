"""Derivations: hypotheses, a goal, and ordered steps, every one checked by the computer.

A derivation is complete only when every step is checked, every step's premises are its named
hypotheses and earlier steps (and each named premise was needed), every hypothesis is used, and
the goal is *discharged*: a checked paper step states it (not one certified over a box only,
and not when a hypothesis states it already). A step certified by interval arithmetic holds on
its box only, so a step that names it is not checked. Paper steps and algebra helpers (generic
facts, true whatever the paper says) print apart. The paper's statements *as printed* sit next to
the corrected ones, each with the status a failed check gives it (``refuted``, ``inconsistent``,
``unconfirmed source``). Printing follows a sequent plus a script: hypotheses, ``⊢ goal``, then
one line per step with its method, citation, premises and status, and the step's note under
it; a legend of the letters comes first. Claims print in conventional notation
(:mod:`proofs.notation`); :meth:`Derivation.to_latex` typesets them for a paper.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sympy as sp

from proofs import notation, typeset
from proofs.steps import Context, Step, StepResult, _same, check_step

__all__ = ["Derivation"]


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
    #: What each letter means: (symbol, name or glob pattern of names, meaning) pairs.
    symbols: tuple[tuple[object, str], ...] = ()
    #: A note on a hypothesis: (hypothesis label, note) pairs.
    notes: tuple[tuple[str, str], ...] = ()

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
        symbols: Mapping[object, str] | None = None,
        notes: Mapping[str, str] | None = None,
    ) -> Derivation:
        """Check every step in order and return the checked derivation.

        ``symbols`` says what each letter means (a key is a symbol, a name, or a glob pattern of
        names such as ``"S[0-9][0-9]"``); ``notes`` maps a hypothesis label to a note. Both
        print with the derivation.

        Raises ``ValueError`` for a duplicate hypothesis or step label, a step that ``uses`` a
        label not defined before it, a note on no hypothesis, or a goal or hypothesis that is
        not a relation.
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
        notes = dict(notes or {})
        strays = [label for label in notes if label not in dict(pairs)]
        if strays:
            raise ValueError(f"notes name {', '.join(map(repr, strays))}, which is not a "
                             f"hypothesis; expected one of {', '.join(dict(pairs))}")
        return cls(name, source, tuple(pairs), goal, tuple(results), bound, tuple(printed),
                   goal_step, tuple(unused), tuple((symbols or {}).items()),
                   tuple(notes.items()))

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

    def legend(self) -> list[tuple[tuple, str]]:
        """Every letter the claims use, with its meaning (``""`` where none is given), in order
        of first appearance; letters matched by one pattern share an entry."""
        claims = [claim for _, claim in self.hypotheses] + [self.goal]
        claims += [r.claim for r in self.steps + self.printed]
        return notation.legend(notation.symbols_of(claims), dict(self.symbols))

    @property
    def undescribed(self) -> list[str]:
        """The letters the claims use that no entry of ``symbols`` describes."""
        return [notation.letter_text((letter,)) for letters, meaning in self.legend()
                if not meaning for letter in letters]

    def _sections(self):
        return [(title, results, kind) for title, results, kind in (
            ("paper steps", self.paper_steps, ""),
            ("algebra helpers (true whatever the paper says)", self.algebra_steps, ""),
            ("as printed in the paper", self.printed, "printed")) if results]

    def __str__(self) -> str:
        """The derivation as text, printed once and kept with it (as :meth:`to_latex`)."""
        if "_text" not in self.__dict__:
            self.__dict__["_text"] = self._to_text()
        return self.__dict__["_text"]

    def _to_text(self) -> str:
        lines = [f"{self.name}  ({self.source})"]
        legend = [(notation.letter_text(letters), meaning) for letters, meaning in self.legend()]
        if legend:
            lines.append("  symbols:")
            column = min(max(len(shown) for shown, _ in legend), 18)
            lines += [f"    {shown:<{column}}  {meaning}".rstrip() for shown, meaning in legend]
        notes = dict(self.notes)
        lines.append("  hypotheses:")
        for label, claim in self.hypotheses:
            lines += _wrapped(notation.text(claim), 6 + len(label), f"    {label}: ")
            lines += _wrapped(notes.get(label, ""), 6 + len(label))
        lines += _wrapped(notation.text(self.goal), 6, "  ⊢ ")
        every = self.steps + self.printed
        shown = {r.label: _claim_text(r) for r in every}
        width = min(max((len(text) for text in shown.values()), default=0), _CLAIM_COLUMN)
        label_width = max((len(r.label) + 2 for r in every), default=0)
        for title, results, kind in self._sections():
            lines.append(f"  {title}:")
            for r in results:
                label = f"({r.label})"
                cite = f"[{r.step.cite}]" if r.step.cite else ""
                uses = f"from {', '.join(r.step.uses)}" if r.step.uses else ""
                parts = [f"by {r.by:<8}", cite, uses, _status_text(r, kind)]
                if r.detail and (r.status != "checked" or kind):
                    parts.append(r.detail)
                how = "  ".join(part for part in parts if part).rstrip()
                claim = shown[r.label]
                if len(claim) <= width:
                    lines.append(f"  {label:<{label_width}} {claim:<{width}}  {how}")
                else:
                    lines += _wrapped(claim, label_width + 5, f"  {label:<{label_width}} ")
                    lines.append(f"  {'':<{label_width}} {'':<{min(width, 8)}}  {how}")
                lines += _wrapped(r.step.note, label_width + 3)
        lines += [f"  unused: {item}" for item in self.unused]
        lines.append(f"  {self.summary()}")
        return "\n".join(line.rstrip() for line in lines)

    def __repr__(self) -> str:
        return f"<Derivation {self.name}: {self.checked}/{len(self.steps)} checked>"

    def to_latex(self, *, width: float = 28.0) -> str:
        """Return the derivation as a LaTeX fragment for a paper (needs ``amsmath``): the
        letters and their meanings, the hypotheses, the goal, and every step typeset as maths
        with how it was checked, its citation, status and note. Claims are broken into rows of
        at most ``width`` em (28 fits the text width of a one-column ``article``; a column of a
        two-column paper needs about 20). Typeset once per width and kept with the derivation
        (so a cached derivation carries its LaTeX too)."""
        typeset_by_width = self.__dict__.setdefault("_typeset", {})
        if width not in typeset_by_width:
            typeset_by_width[width] = self._to_latex(width)
        return typeset_by_width[width]

    def _to_latex(self, width: float) -> str:
        out = ["% " + f"The derivation of {self.name}, every step checked by SymPy "
               "(needs \\usepackage{amsmath}).",
               "\\begingroup\\allowdisplaybreaks",
               "\\setlength{\\abovedisplayskip}{3pt}\\setlength{\\belowdisplayskip}{3pt}"
               "\\sloppy",
               f"\\par\\medskip\\noindent\\textbf{{Derivation of {_tex(self.name)}}} "
               f"({_tex(self.source)}).\\par"]
        legend = self.legend()
        if legend:
            out.append("\\smallskip\\noindent\\textit{Symbols.}\n\\begin{list}{}{"
                       "\\setlength{\\leftmargin}{7em}\\setlength{\\labelwidth}{6.5em}"
                       "\\setlength{\\itemsep}{0pt}\\setlength{\\parsep}{0pt}"
                       "\\renewcommand{\\makelabel}[1]{#1\\hfil}}")
            out += [f"\\item[${notation.letter_latex(letters)}$] {_prose(meaning)}"
                    for letters, meaning in legend]
            out.append("\\end{list}")
        notes = dict(self.notes)
        # (title, [(label in the row, text above the row, claim), ...])
        blocks = [("Hypotheses", [(label, _prose(notes[label]) if label in notes else "", claim)
                                  for label, claim in self.hypotheses]),
                  ("Goal", [("", "", self.goal)])]
        for title, results, kind in self._sections():
            blocks.append((title[0].upper() + title[1:],
                           [("", _latex_heading(r, kind), r.claim) for r in results]))
        for title, entries in blocks:
            out.append(f"\\smallskip\\noindent\\textit{{{_tex(title)}.}}")
            rows = []
            for label, heading, claim in entries:
                if heading:
                    rows.append(f"\\intertext{{{heading}}}")
                tag = f"\\text{{({_tex(label)})}}\\quad " if label else ""
                claim_rows = typeset.latex_rows(claim, width - 0.6 * len(label) - 2 * bool(label))
                claim_rows[0] = "&" + tag + claim_rows[0][1:]
                rows += [row + " \\\\" for row in claim_rows]
            body = "\n".join(rows)
            out.append("\\begin{align*}\n" + body.removesuffix(" \\\\") + "\n\\end{align*}")
        out += [f"\\noindent Unused: {_tex(item)}.\\par" for item in self.unused]
        out.append(f"\\noindent {_tex(self.summary())}.\\par")
        out.append("\\endgroup")
        return "\n".join(out) + "\n"

    def _repr_latex_(self) -> str:
        rows = [f"&\\textbf{{{_mathjax_text(self.name)}}} && \\vdash {notation.latex(self.goal)}"]
        for title, results, kind in self._sections():
            rows.append(f"&\\textit{{{_mathjax_text(title)}}} &&")
            for r in results:
                how = f"[{r.step.cite}] " if r.step.cite else ""
                how += f"by {r.by}: {_status_text(r, kind)}."
                how += f" {r.step.note}" if r.step.note else ""
                rows.append(f"\\text{{({_mathjax_text(r.label)})}} & {notation.latex(r.claim)}"
                            f" && \\text{{{_mathjax_text(how)}}}")
        rows.append(f"& && \\text{{{_mathjax_text(self.summary())}}}")
        body = " \\\\\n".join(rows)
        return f"$$\\begin{{aligned}}\n{body}\n\\end{{aligned}}$$"

    def _repr_html_(self) -> str:
        esc = notation.html_escape
        legend = "".join(f"<tr><td>${esc(notation.letter_latex(letters))}$</td>"
                         f"<td style='text-align:left'>{esc(meaning)}</td></tr>"
                         for letters, meaning in self.legend())
        notes = dict(self.notes)
        hypotheses = "".join(
            f"<tr><td>{esc(label)}</td><td style='text-align:left'>"
            f"${esc(notation.latex(claim))}$</td><td colspan='3'></td>"
            f"<td style='text-align:left'>{esc(notes.get(label, ''))}</td></tr>"
            for label, claim in self.hypotheses)
        steps = ""
        for title, results, kind in self._sections():
            steps += f"<tr><th colspan='6' style='text-align:left'>{esc(title)}</th></tr>"
            for r in results:
                status = _status_text(r, kind)
                if r.detail and (r.status != "checked" or kind):
                    status += ": " + r.detail
                uses = " from " + ", ".join(r.step.uses) if r.step.uses else ""
                steps += (f"<tr><td>({esc(r.label)})</td><td style='text-align:left'>"
                          f"${esc(notation.latex(r.claim))}$</td><td>{esc(r.by + uses)}</td>"
                          f"<td>{esc(r.step.cite)}</td><td>{esc(status)}</td>"
                          f"<td style='text-align:left'>{esc(r.step.note)}</td></tr>")
        return (f"<div><p><b>{esc(self.name)}</b> ({esc(self.source)})</p>"
                f"<details><summary>symbols</summary><table>{legend}</table></details>"
                f"<table><tr><th>step</th><th>claim</th><th>by</th><th>cite</th>"
                f"<th>status</th><th>note</th></tr>"
                f"<tr><th colspan='6' style='text-align:left'>hypotheses</th></tr>{hypotheses}"
                f"<tr><td>goal</td><td style='text-align:left'>"
                f"$\\vdash {esc(notation.latex(self.goal))}$</td></tr>{steps}</table>"
                f"<p>{esc(self.summary())}</p></div>")


#: Claims longer than this print on their own line, with the method and status under them.
_CLAIM_COLUMN = 56
#: Text wider than this wraps.
_TEXT_WIDTH = 100


def _claim_text(result: StepResult) -> str:
    """A claim as text; a step's short form where the claim is too long to read on a line."""
    shown = notation.text(result.claim)
    if result.step.show and len(shown) > _TEXT_WIDTH - 20:
        return result.step.show
    return shown


def _wrapped(text: str, indent: int, first: str = "") -> list[str]:
    """``text`` wrapped at spaces into lines of :data:`_TEXT_WIDTH`, the first starting with
    ``first`` (else the indent), the others indented by ``indent``."""
    if not text:
        return []
    return textwrap.wrap(text, _TEXT_WIDTH, initial_indent=first or " " * indent,
                         subsequent_indent=" " * indent, break_long_words=False,
                         break_on_hyphens=False)


def _latex_heading(result: StepResult, kind: str) -> str:
    status = _status_text(result, kind)
    status = f"\\textbf{{{_tex(status)}}}" if status != "checked" else status
    parts = [f"\\textbf{{({_tex(result.label)})}}"]
    if kind == "printed":
        parts.append("as printed")
    if result.step.cite:
        parts.append(f"[{_tex(result.step.cite)}]")
    how = f"by {result.by}"
    if result.step.uses:
        how += " from " + ", ".join(f"({_tex(label)})" for label in result.step.uses)
    parts.append(how + ": " + status + ".")
    if result.detail and (result.status != "checked" or kind):
        parts.append(_prose(result.detail) + ".")
    if result.step.note:
        parts.append(_prose(result.step.note) + ".")
    return " ".join(parts).replace("..", ".")


def _tex(text: str) -> str:
    return notation.latex_text(text)


def _prose(text: str) -> str:
    return notation.latex_prose(text)


def _mathjax_text(text: str) -> str:
    """Text for ``\\text{...}`` in MathJax, which reads braces, backslashes and dollars."""
    return re.sub(r"[{}\\$%&#]", " ", text)


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
