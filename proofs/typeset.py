"""LaTeX claims broken into rows that fit a page.

:func:`latex_rows` typesets a claim as the rows of an ``align*`` block: one row when it fits;
else a row per chain of a conjunction, a row per side of a relation (the relation leading the
next row), a sum's terms packed into rows, and a product's widest bracketed sum opened across
rows in ``\\bigl( ... \\bigr)``. Widths are estimated from the LaTeX itself
(:func:`latex_width`), in em of the 10 pt Computer Modern fonts of a standard ``article``, and
err wide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import sympy as sp

from proofs.notation import _LATEX, _LATEX_RELATION, _chains, latex

__all__ = ["latex_rows", "latex_width"]

#: The width (em) of a continuation row's indent.
_INDENT = 1.0


def latex_rows(claim: sp.Basic, width: float = 28.0) -> list[str]:
    """Rows of an ``align*`` block (each starting with ``&``) that typeset ``claim`` within
    ``width`` em: one row when it fits; else a row per chain of a conjunction, a row per side of
    a relation (the relation leading the next), and a sum's terms packed into rows, indented
    under the first."""
    chains = _chains(claim)
    if chains is None:
        chains = [[claim]]
    pieces = [_LATEX.chain(chain) if len(chain) > 1 else latex(chain[0]) for chain in chains]
    joined = r" \quad\text{and}\quad ".join(pieces)
    if latex_width(joined) <= width:
        return ["&" + joined]
    rows: list[tuple[int, str]] = []
    for index, chain in enumerate(chains):
        lead = r"\text{and } " if index else ""
        if latex_width(lead + pieces[index]) <= width:
            rows.append((0, lead + pieces[index]))
            continue
        rows += _split(chain[0], width, lead, 0)
        for op, side in zip(chain[1::2], chain[2::2], strict=True):
            rows += _split(side, width, _LATEX_RELATION[op] + " ", 1)
    return ["&" + r"\quad" * depth + ("{}" if _LEADING_OPERATOR.match(body) else "") + body
            for depth, body in rows]


#: A row that starts with a relation or a sign needs ``{}`` before it to be spaced as one.
_LEADING_OPERATOR = re.compile(r"[-+=<>]|\\(leq|geq|neq|cdot)\b")


def _split(expr: sp.Basic, width: float, lead: str, depth: int) -> list[tuple[int, str]]:
    """``(indent, row)`` pairs typesetting ``lead`` + ``expr`` within ``width``."""
    whole = lead + latex(expr)
    if latex_width(whole) <= width - depth * _INDENT:
        return [(depth, whole)]
    if isinstance(expr, sp.Add):
        return _pack([_signed(term, i) for i, term in enumerate(_terms(expr))], width, lead,
                     depth)
    if isinstance(expr, sp.Mul):
        return _split_product(expr, width, lead, depth)
    opened = _opened(expr)
    if opened is not None:
        return _bracketed(*opened, width=width, lead=lead, depth=depth)
    return [(depth, whole)]  # nothing to break at: the row stays as it is


_PARENTHESES = ("(", ")")


def _opened(expr: sp.Basic) -> tuple[str, sp.Basic, tuple[str, str], str] | None:
    """``(prefix, inner, brackets, suffix)`` for an expression whose one argument may be broken
    across rows inside brackets: a power of a sum, a root, a limit, a sum, a norm, a function of
    one sum or product."""
    if isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Add | sp.Mul):
        exponent = "1/2" if expr.exp == sp.S.Half else latex(expr.exp)
        return "", expr.base, _PARENTHESES, f"^{{{exponent}}}"
    if isinstance(expr, sp.Limit):
        function, variable, point, _ = expr.args
        return (rf"\lim_{{{latex(variable)} \to {latex(point)}}} ", function, _PARENTHESES,
                "")
    if isinstance(expr, sp.Sum) and len(expr.limits) == 1:
        index, low, high = expr.limits[0]
        return (rf"\sum_{{{latex(index)}={latex(low)}}}^{{{latex(high)}}} ", expr.function,
                _PARENTHESES, "")
    if isinstance(expr, sp.Function) and len(expr.args) == 1 \
            and isinstance(expr.args[0], sp.Add | sp.Mul):
        if expr.func.__name__ == "norm":
            return "", expr.args[0], (r"\lVert", r"\rVert"), ""
        name = latex(expr.func(sp.Symbol("x")))
        cut = name.find(r"{\left(")
        if cut > 0:
            return name[:cut] + " ", expr.args[0], _PARENTHESES, ""
    return None


def _bracketed(prefix: str, inner: sp.Basic, brackets: tuple[str, str], suffix: str, *,
               width: float, lead: str, depth: int) -> list[tuple[int, str]]:
    """``lead prefix ( inner ) suffix`` with ``inner`` (a sum or a product) broken across
    rows."""
    size = "Big" if r"\frac" in latex(inner) else "big"
    opening, closing = rf"\{size}l{brackets[0]} ", rf"\{size}r{brackets[1]}"
    room = width - 1.5  # for the closing bracket and the suffix
    if isinstance(inner, sp.Add):
        rows = _pack([_signed(t, i) for i, t in enumerate(_terms(inner))], room,
                     lead + prefix + opening, depth)
    elif isinstance(inner, sp.Mul):
        rows = _split_product(inner, room, lead + prefix + opening, depth)
    else:
        return [(depth, lead + prefix + opening + latex(inner) + closing + suffix)]
    level, last = rows[-1]
    return rows[:-1] + [(level, last + closing + suffix)]


def _terms(expr: sp.Add) -> list[sp.Basic]:
    return list(_LATEX._as_ordered_terms(expr, order=None))


def _signed(term: sp.Basic, index: int) -> tuple[str, sp.Basic]:
    if term.could_extract_minus_sign():
        return "- ", -term
    return ("+ " if index else ""), term


def _pack(terms: list[tuple[str, sp.Basic]], width: float, lead: str, depth: int, *,
          split=None, joiner: str = "") -> list[tuple[int, str]]:
    """Pieces (prefix, expression) packed greedily into rows: the first after ``lead`` at
    ``depth``, the others one indent deeper; a piece that starts a row has ``joiner`` before it
    where its prefix is empty; a piece too wide for a row of its own is broken by ``split``
    (:func:`_split` unless given)."""
    split = split or _split
    rows: list[tuple[int, str]] = []
    current, level = lead, depth
    for sign, term in terms:
        piece = sign + _factor_latex(term)
        if latex_width(current + piece) <= width - level * _INDENT:
            current += piece + " "
            continue
        if current.strip() and current != lead:
            rows.append((level, current.rstrip()))
            current, level = "", depth + 1
            sign = sign or joiner
            piece = sign + _factor_latex(term)
        if latex_width(current + piece) <= width - level * _INDENT:
            current += piece + " "
            continue
        broken = split(term, width, current + sign, level)
        rows += broken[:-1]
        level, current = broken[-1][0], broken[-1][1] + " "
    rows.append((level, current.rstrip()))
    return rows


def _factor_latex(term: sp.Basic) -> str:
    shown = latex(term)
    return f"\\left({shown}\\right)" if isinstance(term, sp.Add) else shown


def _split_factor(factor: sp.Basic, width: float, lead: str, depth: int
                  ) -> list[tuple[int, str]]:
    if isinstance(factor, sp.Add):
        return _bracketed("", factor, _PARENTHESES, "", width=width, lead=lead, depth=depth)
    return _split(factor, width, lead, depth)


def _split_product(expr: sp.Mul, width: float, lead: str, depth: int
                   ) -> list[tuple[int, str]]:
    """A product too wide for a row: ``1/denominator`` (if any) and the factors packed into
    rows, a row that continues it starting with ``\\times``; a factor too wide for a row is
    broken itself (a sum inside ``\\bigl( ... \\bigr)``)."""
    numerator, denominator = sp.fraction(expr)
    if numerator.could_extract_minus_sign():
        lead, numerator = lead + "-", -numerator
    factors = list(numerator.as_ordered_factors()) if isinstance(numerator, sp.Mul) \
        else [numerator]
    factors = [f for f in factors if f != 1]
    if denominator != 1:
        factors.insert(0, sp.Pow(denominator, -1, evaluate=False))
    if len(factors) == 1:
        opened = _opened(factors[0])
        if opened is None and isinstance(factors[0], sp.Add):
            opened = ("", factors[0], _PARENTHESES, "")
        return _bracketed(*opened, width=width, lead=lead, depth=depth) if opened \
            else [(depth, lead + latex(factors[0]))]
    return _pack([("", f) for f in factors], width, lead, depth, split=_split_factor,
                 joiner=r"\times ")


# --- width of typeset LaTeX ----------------------------------------------------------------------

_TOKEN = re.compile(r"\\[A-Za-z]+|\\.|[{}^_&]|\s+|.")
#: Widths in em of the 10 pt fonts, spacing around the symbol included.
_COMMAND_WIDTH = {
    r"\leq": 1.34, r"\geq": 1.34, r"\neq": 1.34, r"\le": 1.34, r"\ge": 1.34, r"\to": 1.34,
    r"\cdot": 0.72, r"\wedge": 1.22, r"\times": 1.22, r"\quad": 1.0, r"\qquad": 2.0,
    r"\,": 0.17, r"\;": 0.28, r"\:": 0.22, r"\!": -0.17, r"\ ": 0.33, r"\infty": 1.0,
    r"\partial": 0.6, r"\lceil": 0.45, r"\rceil": 0.45, r"\lfloor": 0.45, r"\rfloor": 0.45,
    r"\lVert": 0.5, r"\rVert": 0.5, r"\{": 0.5, r"\}": 0.5, r"\%": 0.83, r"\_": 0.5,
    r"\bigl": 0.0, r"\bigr": 0.0, r"\Bigl": 0.0, r"\Bigr": 0.0, r"\displaystyle": 0.0,
    r"\textstyle": 0.0, r"\limits": 0.0, r"\nolimits": 0.0, r"\mid": 0.84, r"\prime": 0.3,
}
_OPERATOR_NAMES = {"log", "ln", "exp", "sin", "cos", "tan", "max", "min", "det", "lim", "sup",
                   "inf", "arg", "sinh", "cosh", "tanh"}
_BIG = {r"\sum": 1.44, r"\prod": 1.3, r"\lim": 1.4}
_RELATIONS = set("=<>")
_BINARY = set("+-")
_SCALE = (1.0, 1.0, 0.7, 0.5)  # display, text, script, scriptscript


def latex_width(source: str) -> float:
    """An estimate of the width, in em of the 10 pt fonts, of ``source`` typeset in display
    style; meant to err wide so that rows it accepts fit."""
    tokens = [t for t in _TOKEN.findall(source) if not t.isspace()]
    tree, _ = _group(tokens, 0)
    return _measure(tree, 0)


def _group(tokens: list[str], start: int) -> tuple[list, int]:
    out: list = []
    i = start
    while i < len(tokens):
        token = tokens[i]
        if token == "{":
            inner, i = _group(tokens, i + 1)
            out.append(inner)
        elif token == "}":
            return out, i + 1
        else:
            out.append(token)
            i += 1
    return out, i


def _argument(items: list, i: int) -> tuple[list, int]:
    if i >= len(items):
        return [], i
    item = items[i]
    return (item if isinstance(item, list) else [item]), i + 1


def _measure(items: list, style: int) -> float:
    scale = _SCALE[min(style, 3)]
    script = min(style + 1, 3) if style >= 2 else 2
    total, i, previous = 0.0, 0, None
    while i < len(items):
        item = items[i]
        if isinstance(item, list):
            total += _measure(item, style)
            i, previous = i + 1, "atom"
            continue
        if item in ("^", "_"):
            widths = []
            while i < len(items) and items[i] in ("^", "_"):
                argument, i = _argument(items, i + 1)
                widths.append(_measure(argument, script))
            total += max(widths)
            previous = "atom"
            continue
        if item == r"\frac":
            top, i = _argument(items, i + 1)
            bottom, i = _argument(items, i)
            inner = style + 1 if style >= 1 else 1
            total += max(_measure(top, inner), _measure(bottom, inner)) + 0.24 * scale
            previous = "atom"
            continue
        if item in (r"\left", r"\right", r"\bigl", r"\bigr", r"\Bigl", r"\Bigr"):
            delimiter = items[i + 1] if i + 1 < len(items) else "."
            total += (0.12 if delimiter == "." else 0.6) * scale
            i, previous = i + 2, "open" if item in (r"\left", r"\bigl", r"\Bigl") else "atom"
            continue
        if item in (r"\operatorname", r"\mathrm", r"\text", r"\mathit", r"\textrm",
                    r"\mathbf", r"\textit"):
            argument, i = _argument(items, i + 1)
            letters = sum(len(t) for t in _flatten(argument) if not t.startswith("\\"))
            total += (0.56 * letters + (0.17 if item == r"\operatorname" else 0)) * scale
            previous = "atom"
            continue
        if item == r"\sqrt":
            argument, i = _argument(items, i + 1)
            total += _measure(argument, style) + 0.9 * scale
            previous = "atom"
            continue
        if item == r"\begin":
            environment, i = _argument(items, i + 1)
            if environment == ["array"]:
                _, i = _argument(items, i)
            body, i = _environment(items, i)
            total += _matrix_width(body, max(style, 1)) * scale
            previous = "atom"
            continue
        if item in _BIG and style <= 1:
            width = _BIG[item]
            i += 1
            if style == 0:  # display: limits above and below
                while i < len(items) and items[i] in ("^", "_"):
                    argument, i = _argument(items, i + 1)
                    width = max(width, _measure(argument, 2))
            total += (width + 0.17) * scale
            previous = "open"
            continue
        total += _token_width(item, previous, style) * scale
        previous = ("open" if item in ("(", "[", ",", "&") or item in _RELATIONS
                    or item in _BINARY or item in _COMMAND_WIDTH else "atom")
        i += 1
    return total


def _token_width(token: str, previous, style: int) -> float:
    spaced = style <= 1
    if token in _RELATIONS:
        return 1.34 if spaced else 0.78
    if token in _BINARY:
        return 1.22 if spaced and previous == "atom" else 0.78
    if token in _COMMAND_WIDTH:
        return _COMMAND_WIDTH[token]
    if token.startswith("\\"):
        name = token[1:]
        if name in _OPERATOR_NAMES:
            return 0.5 * len(name) + 0.17
        if name in _BIG:
            return 1.0
        return 0.65  # a Greek letter or another symbol
    if token in "()[]|":
        return 0.39
    if token in ",;":
        return 0.45
    if token in ".'":
        return 0.28
    if token == "&":
        return 0.0
    if token.isdigit():
        return 0.5
    return 0.62 if token in "mwMW" else 0.55


def _flatten(items) -> Iterable[str]:
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _environment(items: list, i: int) -> tuple[list, int]:
    body = []
    while i < len(items) and items[i] != r"\end":
        body.append(items[i])
        i += 1
    _, i = _argument(items, i + 1)
    return body, i


def _matrix_width(body: list, style: int) -> float:
    rows: list[list[list]] = [[[]]]
    for item in body:
        if item == "\\\\":
            rows.append([[]])
        elif item == "&":
            rows[-1].append([])
        else:
            rows[-1][-1].append(item)
    columns = max(len(r) for r in rows)
    widths = [max((_measure(r[c], style) for r in rows if c < len(r)), default=0.0)
              for c in range(columns)]
    return sum(widths) + 1.0 * columns  # \arraycolsep on both sides of every column
