"""How claims print for a reader: conventional one-line text, LaTeX broken into lines that fit a
page, and the legend of the letters a derivation uses.

- :func:`text` writes a claim on one line in the notation of a paper: ``≤``, ``e^d``, ``x²``,
  ``Σ_{j=1}^{n}``, ``lim_{n→∞}``, ``|x|``, Greek letters; a conjunction of inequalities that
  share a side prints as one chain (``m ≤ e(j) ≤ M``).
- :func:`latex` typesets a claim as SymPy does, with the same chains and names
  (:mod:`proofs.typeset` breaks it into rows that fit a page).
- :func:`legend` pairs every letter a derivation uses with its meaning, from a table that maps a
  symbol, a name or a glob pattern of names (``"S[0-9][0-9]"``) to what it means.
"""

from __future__ import annotations

import fnmatch
import html
import re
from collections.abc import Iterable, Mapping

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.printing.conventions import split_super_sub
from sympy.printing.latex import LatexPrinter, translate
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.str import StrPrinter

__all__ = ["html_escape", "latex", "latex_prose", "latex_text", "legend", "letter_latex",
           "letter_text", "symbols_of", "text"]

_GREEK_NAMES = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
                "pi rho sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi "
                "Sigma Upsilon Phi Psi Omega")
_GREEK = dict(zip(_GREEK_NAMES.split(), "αβγδεζηθικλμνξοπρστυφχψωΓΔΘΛΞΠΣΥΦΨΩ", strict=True))
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_TEXT_RELATION = {"==": "=", "!=": "≠", "<=": "≤", "<": "<", ">=": "≥", ">": ">"}
_LATEX_RELATION = {"==": "=", "!=": r"\neq", "<=": r"\leq", "<": "<", ">=": r"\geq", ">": ">"}
_FLIPPED = {">=": "<=", ">": "<"}
#: Stands in for a ``*`` inside a symbol's name while multiplication signs are rewritten.
_STAR = "\x00"


# --- chains ------------------------------------------------------------------------------------

def _chains(claim: sp.Basic) -> list[list] | None:
    """The conjuncts of ``claim`` as chains ``[e0, op1, e1, op2, e2, ...]``: relations that share
    a side are joined (``a >= b`` read as ``b <= a`` where that links it), others kept as
    written. ``None`` when a conjunct is not a relation."""
    parts = list(claim.args) if isinstance(claim, sp.And) else [claim]
    if not all(isinstance(p, sp.core.relational.Relational) for p in parts):
        return None
    links = [(p.rhs, _FLIPPED[p.rel_op], p.lhs) if p.rel_op in _FLIPPED else
             (p.lhs, p.rel_op, p.rhs) for p in parts]
    chainable = [op in ("<=", "<", "==") for _, op, _ in links]
    used = [False] * len(parts)
    chains = []
    for start, part in enumerate(parts):
        if used[start]:
            continue
        used[start] = True
        if not chainable[start]:
            chains.append([part.lhs, part.rel_op, part.rhs])
            continue
        chain = list(links[start])
        grown = True
        while grown:
            grown = False
            for i, (a, op, b) in enumerate(links):
                if used[i] or not chainable[i]:
                    continue
                if a == chain[-1]:
                    chain += [op, b]
                elif b == chain[0]:
                    chain = [a, op, *chain]
                else:
                    continue
                used[i] = grown = True
        if len(chain) == 3:  # nothing joined it: print it as written
            chain = [part.lhs, part.rel_op, part.rhs]
        chains.append(chain)
    return chains


# --- one-line text -----------------------------------------------------------------------------

def _text_name(name: str) -> str:
    match = re.fullmatch(r"([A-Za-z]+?)(\d*)((?:_.*)?)", name)
    if match and match.group(1) in _GREEK:
        name = _GREEK[match.group(1)] + match.group(2) + match.group(3)
    return name.replace("*", _STAR)


class _TextPrinter(StrPrinter):
    """SymPy's string printer in a paper's notation (see :func:`text`)."""

    def _print_Symbol(self, expr):
        return _text_name(expr.name)

    _print_Dummy = _print_Symbol

    def _print_Function(self, expr):
        if isinstance(expr, AppliedUndef) and expr.func.__name__ == "norm":
            return "‖" + ", ".join(self._print(a) for a in expr.args) + "‖"
        if isinstance(expr, AppliedUndef):
            return (_text_name(expr.func.__name__) + "("
                    + ", ".join(self._print(a) for a in expr.args) + ")")
        return super()._print_Function(expr)

    def _print_Relational(self, expr):
        return (f"{self._print(expr.lhs)} {_TEXT_RELATION[expr.rel_op]} "
                f"{self._print(expr.rhs)}")

    def _print_And(self, expr):
        chains = _chains(expr)
        if chains is None:
            return " ∧ ".join(self.parenthesize(a, PRECEDENCE["And"]) for a in expr.args)
        return " ∧ ".join(self._chain(chain) for chain in chains)

    def _chain(self, chain: list) -> str:
        out = self._print(chain[0])
        for op, side in zip(chain[1::2], chain[2::2], strict=True):
            out += f" {_TEXT_RELATION[op]} {self._print(side)}"
        return out

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.base, expr.exp
        if exp is sp.S.Half:
            return "√" + self._radicand(base)
        if exp == -sp.S.Half:
            return "1/√" + self._radicand(base)
        if exp is sp.S.NegativeOne:
            return "1/" + self.parenthesize(base, precedence(expr), strict=False)
        if base is sp.E:
            return "e^" + self._exponent(exp)
        shown = self.parenthesize(base, precedence(expr), strict=True)
        if exp.is_Integer and 1 < exp < 10:
            return shown + str(exp).translate(_SUPERSCRIPT)
        return f"{shown}^{self._exponent(exp)}"

    def _radicand(self, base) -> str:
        shown = self._print(base)
        return shown if base.is_Atom else f"({shown})"

    def _exponent(self, exp) -> str:
        shown = self._print(exp)
        simple = exp.is_Atom or (exp.could_extract_minus_sign() and (-exp).is_Atom)
        return shown if simple else f"({shown})"

    def _print_exp(self, expr):
        return "e^" + self._exponent(expr.args[0])

    def _print_Exp1(self, expr):
        return "e"

    def _print_Infinity(self, expr):
        return "∞"

    def _print_NegativeInfinity(self, expr):
        return "-∞"

    def _print_Pi(self, expr):
        return "π"

    def _print_Abs(self, expr):
        return f"|{self._print(expr.args[0])}|"

    def _print_floor(self, expr):
        return f"⌊{self._print(expr.args[0])}⌋"

    def _print_ceiling(self, expr):
        return f"⌈{self._print(expr.args[0])}⌉"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Float(self, expr):
        return f"{float(expr):.6g}"

    def _print_Sum(self, expr):
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True)
        limits = "".join(f"Σ_{{{self._print(i)}={self._print(lo)}}}^{{{self._print(hi)}}} "
                         for i, lo, hi in reversed(expr.limits))
        return limits + body

    def _print_Limit(self, expr):
        function, variable, point, _ = expr.args
        body = self.parenthesize(function, PRECEDENCE["Mul"], strict=True)
        return f"lim_{{{self._print(variable)}→{self._print(point)}}} {body}"

    def _print_Derivative(self, expr):
        body = self._print(expr.expr)
        body = body if expr.expr.is_Atom or isinstance(expr.expr, AppliedUndef) else f"({body})"
        order = sum(count for _, count in expr.variable_count)
        top = "∂" if order == 1 else f"∂{str(order).translate(_SUPERSCRIPT)}"
        bottom = "".join(f"∂{self._print(v)}" + (str(c).translate(_SUPERSCRIPT) if c > 1 else "")
                         for v, c in expr.variable_count)
        return f"{top}/{bottom} {body}"

    def _print_Subs(self, expr):
        body, old, new = expr.args
        at = ", ".join(f"{self._print(o)}={self._print(n)}" for o, n in zip(old, new,
                                                                            strict=True))
        return f"({self._print(body)})|_{{{at}}}"

    def _print_KroneckerDelta(self, expr):
        return f"δ_{{{self._print(expr.args[0])},{self._print(expr.args[1])}}}"

    def _print_MatrixBase(self, expr):
        rows = ("[" + ", ".join(self._print(e) for e in expr.row(r)) + "]"
                for r in range(expr.rows))
        return "[" + ", ".join(rows) + "]"

    _print_ImmutableDenseMatrix = _print_MatrixBase
    _print_MutableDenseMatrix = _print_MatrixBase

    def _print_Determinant(self, expr):
        return f"det {self._print(expr.args[0])}"

    def _print_BooleanTrue(self, expr):
        return "true"

    def _print_BooleanFalse(self, expr):
        return "false"


def text(expr: sp.Basic) -> str:
    """``expr`` on one line in conventional notation (``a ≤ b``, ``e^(-d)``, ``x²``, ``α``)."""
    shown = _TextPrinter({"order": None}).doprint(expr)
    # a number times a letter or a bracket is written 2a, 2(n - 1); not in names (s1*s2), roots
    shown = re.sub(r"(?<![\w√.])(\d+)\*(?=[A-Za-z\u0370-\u03ff](?![A-Za-z])|[(√|])", r"\1",
                   shown)
    return shown.replace("*", "·").replace(_STAR, "*")


# --- LaTeX -------------------------------------------------------------------------------------

class _LatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with chained relations, ``‖x‖`` for ``norm`` and multi-letter
    names set as one word (``\\mathit{Emax}``, ``S_{\\mathrm{top}}``)."""

    def _print_And(self, expr):
        chains = _chains(expr)
        if chains is None:
            return super()._print_And(expr)
        return r" \quad\text{and}\quad ".join(self.chain(chain) for chain in chains)

    def chain(self, chain: list) -> str:
        out = self._print(chain[0])
        for op, side in zip(chain[1::2], chain[2::2], strict=True):
            out += f" {_LATEX_RELATION[op]} {self._print(side)}"
        return out

    def _print_Symbol(self, expr, style="plain"):
        name = expr.name
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            return super()._print_Symbol(expr, style)
        base, supers, subs = split_super_sub(name)
        if supers:
            return super()._print_Symbol(expr, style)
        head = translate(base)
        if head == base and len(base) > 1:
            head = rf"\mathit{{{base}}}"
        if not subs:
            return head
        parts = [rf"\mathrm{{{s}}}" if len(s) > 1 and s.isalpha() else translate(s)
                 for s in subs]
        return f"{head}_{{{','.join(parts)}}}"

    _print_Dummy = _print_Symbol

    def _print_ExpBase(self, expr, exp=None):
        # a superscript takes a short exponent, fractions folded (e^{z/T}); anything longer, or
        # a fraction that does not fold, reads better as exp(...)
        if exp is not None:
            return super()._print_ExpBase(expr, exp)
        folded = _FOLDED._print(expr.args[0])
        if len(folded) <= 24 and r"\frac" not in folded:
            return f"e^{{{folded}}}"
        return rf"\exp\left({self._print(expr.args[0])}\right)"

    def _print_Function(self, expr, exp=None):
        if isinstance(expr, AppliedUndef) and expr.func.__name__ == "norm":
            inner = ", ".join(self._print(a) for a in expr.args)
            shown = rf"\left\lVert {inner} \right\rVert"
            return f"{shown}^{{{exp}}}" if exp is not None else shown
        return super()._print_Function(expr, exp)


_LATEX = _LatexPrinter({"order": None})
_FOLDED = _LatexPrinter({"order": None, "fold_short_frac": True})


def latex(expr: sp.Basic) -> str:
    """``expr`` in LaTeX, as :func:`sympy.latex` writes it but with relations that share a side
    chained, ``norm`` as ``\\lVert x \\rVert`` and multi-letter names as one word."""
    return _LATEX.doprint(expr)


# --- plain text in LaTeX and HTML ----------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_\allowbreak{}",
                  "^": r"\^{}", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$",
                  "~": r"\~{}", "<": "$<$", ">": "$>$", "|": "$|$"}
_LATEX_UNICODE = {"≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\ne$", "∞": r"$\infty$",
                  "→": r"$\to$", "·": r"$\cdot$", "×": r"$\times$", "−": "-", "–": "--",
                  "—": "---", "’": "'", "‘": "`", "“": "``", "”": "''", "…": r"\dots{}",
                  "±": r"$\pm$", "√": r"$\surd$", "∑": r"$\sum$", "Σ": r"$\Sigma$",
                  "‖": r"$\Vert$", "∧": r"$\wedge$", "⊢": r"$\vdash$"}


def latex_text(value: str) -> str:
    """Plain text as LaTeX text: special characters escaped, Greek letters and a few symbols
    as maths, any other character outside ASCII as ``?``."""
    out = []
    for char in value:
        if char in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[char])
        elif char in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[char])
        elif ord(char) < 128:
            out.append(char)
        else:
            name = next((n for n, g in _GREEK.items() if g == char), None)
            out.append(f"$\\{name}$" if name else "?")
    return "".join(out)


_GREEK_ALTERNATIVES = "|".join(sorted(_GREEK, key=len, reverse=True))
_SCRIPT = r"(?:\{[\w,+\-]*\}|[A-Za-z0-9]+)"
_PROSE = re.compile(
    rf"(?<![\w\\])(?P<formula>(?:{_GREEK_ALTERNATIVES}|[A-Za-z])\d*"
    rf"(?:_{_SCRIPT}(?:\^{_SCRIPT})?|\^{_SCRIPT}(?:_{_SCRIPT})?))(?![\w{{(])"
    rf"|(?<![A-Za-z\\])(?P<greek>{_GREEK_ALTERNATIVES})(?![A-Za-z])"
    r"|(?P<relation>>=|<=|!=|->)")
_PROSE_RELATION = {">=": r"$\ge$", "<=": r"$\le$", "!=": r"$\ne$", "->": r"$\to$"}


def latex_prose(value: str) -> str:
    """A note in plain text as LaTeX text, with the maths it writes in ASCII set as maths:
    ``e^{-d}``, ``alpha_i``, ``sigma_k^2`` and Greek names as formulas, ``>=`` as ``≥``."""
    out, last = [], 0
    for match in _PROSE.finditer(value):
        out.append(latex_text(value[last:match.start()]))
        if match.group("relation"):
            out.append(_PROSE_RELATION[match.group("relation")])
        else:
            formula = match.group("formula") or match.group("greek")
            head = re.match(_GREEK_ALTERNATIVES, formula)
            if head and (len(formula) == head.end() or formula[head.end()] in "_^"):
                formula = "\\" + head.group(0) + formula[head.end():]
            formula = re.sub(r"([_^])([A-Za-z0-9]{2,})", r"\1{\2}", formula)
            out.append(f"${formula}$")
        last = match.end()
    out.append(latex_text(value[last:]))
    return "".join(out)


def html_escape(value: str) -> str:
    """Text for HTML: ``&``, ``<``, ``>`` and quotes escaped."""
    return html.escape(value, quote=True)


# --- the legend ----------------------------------------------------------------------------------

def symbols_of(claims: Iterable[sp.Basic]) -> list[sp.Basic]:
    """The letters the claims use, in order of first appearance: symbols (bound ones too),
    undefined functions and indexed bases; no dummies, no duplicates."""
    seen: dict = {}
    labels: set = set()
    for claim in claims:
        for node in sp.preorder_traversal(claim):
            if isinstance(node, sp.Dummy) or node in labels:
                continue
            if isinstance(node, sp.IndexedBase):
                labels.add(node.label)  # the base's own name, met next in the traversal
                seen.setdefault(node, None)
            elif isinstance(node, sp.Symbol):
                if node.name not in ("+", "-", "+-"):  # a limit's direction
                    seen.setdefault(node, None)
            elif isinstance(node, AppliedUndef):
                seen.setdefault(node.func, None)
    return list(seen)


def _name(letter) -> str:
    if isinstance(letter, sp.IndexedBase):
        return str(letter.label)
    return letter.name if isinstance(letter, sp.Symbol) else letter.__name__


def legend(letters: Iterable, meanings: Mapping) -> list[tuple[tuple, str]]:
    """Pair the letters with their meanings: ``[((letter, ...), meaning), ...]`` in order of
    first appearance. A key of ``meanings`` is a symbol (matched with its assumptions), a name,
    or a glob pattern of names; the letters one pattern matches share one entry. A letter no key
    matches comes with the meaning ``""``."""
    exact = {k: v for k, v in meanings.items() if not isinstance(k, str)}
    named = {k: v for k, v in meanings.items() if isinstance(k, str)}
    entries: dict = {}
    for letter in letters:
        name = _name(letter)
        if letter in exact:
            key = ("symbol", letter)
            meaning = exact[letter]
        elif name in named:
            key, meaning = ("name", name), named[name]
        else:
            pattern = next((k for k in named if fnmatch.fnmatchcase(name, k)), None)
            key = ("pattern", pattern) if pattern else ("none", letter)
            meaning = named[pattern] if pattern else ""
        letters_so_far, _ = entries.get(key, ((), meaning))
        entries[key] = (letters_so_far + (letter,), meaning)
    return list(entries.values())


def letter_text(letters: tuple) -> str:
    """The letters of one legend entry as text: ``n``, ``e(·)``, ``S00, ..., S23``."""
    shown = list(dict.fromkeys(_letter(letter, text) for letter in letters))
    return ", ".join(shown) if len(shown) <= 3 else f"{shown[0]}, ..., {shown[-1]}"


def letter_latex(letters: tuple) -> str:
    """The letters of one legend entry as LaTeX maths (without the dollars)."""
    shown = list(dict.fromkeys(_letter(letter, latex) for letter in letters))
    return ", ".join(shown) if len(shown) <= 3 else rf"{shown[0]}, \dots, {shown[-1]}"


def _letter(letter, printer) -> str:
    if isinstance(letter, sp.IndexedBase | sp.Symbol):
        return printer(letter if isinstance(letter, sp.Symbol) else letter.label)
    dot = r"\cdot" if printer is latex else "·"
    return printer(sp.Symbol(letter.__name__)) + f"({dot})"
