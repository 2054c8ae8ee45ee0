"""Steps of a derivation and the methods that check them.

A :class:`Step` states a claim (a SymPy ``Eq``, inequality or Boolean) and how it is checked
(``by``). Checking returns a new :class:`StepResult`; it never mutates the step and never prints.
A method that cannot decide answers ``unchecked``, never ``checked``. Inequalities that SymPy
cannot sign are routed to interval certification when the step carries a ``box``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from proofs.certify import certify

STATUSES = ("checked", "failed", "unchecked")


@dataclass(frozen=True)
class Step:
    """One claim of a derivation and the method that checks it.

    ``box`` maps symbols to ranges ``(lo, hi)``: the domain of an interval check, and where a
    witness is searched for when the claim fails.
    """

    label: str
    claim: sp.Basic
    by: str = "simplify"
    uses: tuple[str, ...] = ()
    cite: str = ""
    box: Mapping[sp.Symbol, tuple[float, float]] | None = None
    note: str = ""
    show: str = ""  # a short form to print when the claim itself is too long to read

    def __str__(self) -> str:
        return self.show or str(self.claim)


@dataclass(frozen=True)
class StepResult:
    """The outcome of checking one :class:`Step`."""

    step: Step
    status: str
    by: str
    witness: dict[str, float] | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        return self.step.label

    @property
    def claim(self) -> sp.Basic:
        return self.step.claim

    @property
    def ok(self) -> bool:
        return self.status == "checked"


@dataclass(frozen=True)
class Context:
    """What a method may consult: the derivation's hypotheses (name to claim)."""

    hypotheses: Mapping[str, sp.Basic] = field(default_factory=dict)


def eq(lhs, rhs) -> sp.Equality:
    """``lhs == rhs`` as a claim, left unevaluated so that it prints as written."""
    return sp.Eq(lhs, rhs, evaluate=False)


def ge(lhs, rhs) -> sp.GreaterThan:
    """``lhs >= rhs`` as a claim, left unevaluated."""
    return sp.GreaterThan(lhs, rhs, evaluate=False)


def gt(lhs, rhs) -> sp.StrictGreaterThan:
    """``lhs > rhs`` as a claim, left unevaluated."""
    return sp.StrictGreaterThan(lhs, rhs, evaluate=False)


def le(lhs, rhs) -> sp.LessThan:
    """``lhs <= rhs`` as a claim, left unevaluated."""
    return sp.LessThan(lhs, rhs, evaluate=False)


def lt(lhs, rhs) -> sp.StrictLessThan:
    """``lhs < rhs`` as a claim, left unevaluated."""
    return sp.StrictLessThan(lhs, rhs, evaluate=False)


def check_step(step: Step, context: Context | None = None) -> StepResult:
    """Check ``step`` with its method and return the result."""
    context = context or Context()
    method = METHODS.get(step.by)
    if method is None:
        raise ValueError(f"step {step.label!r} has by={step.by!r}; expected one of "
                         f"{', '.join(METHODS)}")
    try:
        return method(step, context)
    except (NotImplementedError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        return StepResult(step, "unchecked", step.by, detail=f"{type(exc).__name__}: {exc}")


def _by_simplify(step: Step, context: Context) -> StepResult:
    claim = step.claim
    if isinstance(claim, sp.And):
        parts = [_by_simplify(Step(step.label, part, box=step.box), context)
                 for part in claim.args]
        for part in parts:
            if part.status != "checked":
                return StepResult(step, part.status, part.by, part.witness, part.detail)
        return StepResult(step, "checked", "simplify")
    if isinstance(claim, sp.Equality):
        difference = sp.simplify(claim.lhs - claim.rhs)
        if difference == 0 or difference.equals(0) is True:
            return StepResult(step, "checked", "simplify")
        witness = find_witness(claim, step.box)
        if witness is not None:
            return StepResult(step, "failed", "simplify", *witness)
        return StepResult(step, "unchecked", "simplify",
                          detail=f"lhs - rhs simplifies to {difference}, not to 0")
    if isinstance(claim, sp.core.relational.Relational):
        expr, strict = _as_nonnegative(claim)
        expr = sp.simplify(expr)
        sign = expr.is_positive if strict else expr.is_nonnegative
        if sign is True:
            return StepResult(step, "checked", "simplify")
        witness = find_witness(claim, step.box)
        if witness is not None:
            return StepResult(step, "failed", "simplify", *witness)
        if step.box is not None:
            result = _by_interval(step, context)
            return StepResult(step, result.status, "interval", result.witness,
                              "SymPy could not sign it; " + result.detail)
        return StepResult(step, "unchecked", "simplify",
                          detail=f"SymPy cannot decide the sign of {expr}")
    if claim is sp.true:
        return StepResult(step, "checked", "simplify")
    if claim is sp.false:
        return StepResult(step, "failed", "simplify", detail="the claim simplifies to False")
    return StepResult(step, "unchecked", "simplify", detail=f"cannot check {type(claim).__name__}")


def _by_limit(step: Step, context: Context) -> StepResult:
    claim = step.claim
    if not (isinstance(claim, sp.Equality) and isinstance(claim.lhs, sp.Limit)):
        return StepResult(step, "unchecked", "limit", detail="expected Eq(Limit(f, x, x0), L)")
    expr, variable, point, direction = claim.lhs.args
    value = sp.limit(expr, variable, point, str(direction))
    if sp.simplify(value - claim.rhs) == 0:
        return StepResult(step, "checked", "limit", detail=f"limit = {value}")
    if isinstance(value, sp.Limit):
        return StepResult(step, "unchecked", "limit", detail="SymPy could not evaluate the limit")
    return StepResult(step, "failed", "limit", detail=f"limit = {value}, not {claim.rhs}")


def _by_series(step: Step, context: Context) -> StepResult:
    """``Eq(f, g + O(h, (x, x0)))`` holds when ``(f - g) / h`` has a finite limit at ``x0``."""
    claim = step.claim
    order = claim.rhs.getO() if isinstance(claim, sp.Equality) else None
    if order is None:
        return StepResult(step, "unchecked", "series", detail="expected Eq(f, g + O(h, (x, x0)))")
    main = claim.rhs.removeO()
    variable, point = order.variables[0], order.point[0]
    ratio = sp.limit(sp.simplify((claim.lhs - main) / order.expr), variable, point)
    if ratio.is_finite:
        return StepResult(step, "checked", "series", detail=f"(f - g)/h -> {ratio}")
    if ratio.is_infinite:
        return StepResult(step, "failed", "series", detail=f"(f - g)/h -> {ratio}")
    return StepResult(step, "unchecked", "series", detail=f"(f - g)/h -> {ratio}")


def _by_interval(step: Step, context: Context) -> StepResult:
    if step.box is None:
        return StepResult(step, "unchecked", "interval", detail="no box to certify over")
    claims = step.claim.args if isinstance(step.claim, sp.And) else (step.claim,)
    total = 0
    for claim in claims:
        certificate = certify(claim, step.box)
        total += certificate.boxes
        if certificate.status == "refuted":
            values = ", ".join(f"{k}={v:.6g}" for k, v in certificate.witness.items())
            return StepResult(step, "failed", "interval", certificate.witness,
                              f"{values}: lhs - rhs = {certificate.value_at_witness:.6g}")
        if certificate.status == "unknown":
            return StepResult(step, "unchecked", "interval",
                              detail=f"{len(certificate.open_boxes)} boxes left open "
                                     f"after {certificate.boxes}")
    return StepResult(step, "checked", "interval", detail=f"{total} boxes")


def _by_monotone(step: Step, context: Context) -> StepResult:
    """``f(x) >= 0`` on ``[x0, oo)`` because ``f(x0) >= 0`` and ``f'(x) >= 0`` for ``x >= x0``.

    The step's ``box`` names the one variable ``x`` and its range ``(x0, oo)``; both facts are
    checked by SymPy's sign reasoning under the symbols' assumptions.
    """
    if step.box is None or len(step.box) != 1:
        return StepResult(step, "unchecked", "monotone", detail="box must name one variable")
    (variable, (start, _)), = step.box.items()
    variable = variable if isinstance(variable, sp.Symbol) else sp.Symbol(str(variable))
    variable = next((s for s in step.claim.free_symbols if s.name == variable.name), variable)
    expr, strict = _as_nonnegative(step.claim)
    at_start = sp.simplify(expr.subs(variable, start))
    offset = sp.Dummy("t", nonnegative=True)
    slope = sp.simplify(sp.diff(expr, variable).subs(variable, start + offset))
    start_ok = at_start.is_positive if strict else at_start.is_nonnegative
    if start_ok and slope.is_nonnegative:
        return StepResult(step, "checked", "monotone",
                          detail=f"f({start}) = {at_start}, f' = {slope} >= 0")
    witness = find_witness(step.claim, None)
    if witness is not None:
        return StepResult(step, "failed", "monotone", *witness)
    return StepResult(step, "unchecked", "monotone",
                      detail=f"cannot sign f({start}) = {at_start} or f' = {slope}")


def _by_given(step: Step, context: Context) -> StepResult:
    for name, hypothesis in context.hypotheses.items():
        if hypothesis == step.claim:
            return StepResult(step, "checked", "given", detail=f"hypothesis {name}")
    return StepResult(step, "unchecked", "given", detail="not one of the hypotheses")


METHODS: dict[str, Callable[[Step, Context], StepResult]] = {
    "simplify": _by_simplify,
    "limit": _by_limit,
    "series": _by_series,
    "interval": _by_interval,
    "monotone": _by_monotone,
    "given": _by_given,
}


def _as_nonnegative(claim: sp.Basic) -> tuple[sp.Expr, bool]:
    if isinstance(claim, sp.GreaterThan | sp.StrictGreaterThan):
        return claim.lhs - claim.rhs, isinstance(claim, sp.StrictGreaterThan)
    if isinstance(claim, sp.LessThan | sp.StrictLessThan):
        return claim.rhs - claim.lhs, isinstance(claim, sp.StrictLessThan)
    raise TypeError(f"cannot turn {type(claim).__name__} into an inequality")


def find_witness(
    claim: sp.Basic, box: Mapping | None = None, *, digits: int = 40
) -> tuple[dict[str, float], str] | None:
    """Search a grid of points for one where ``claim`` is false; return it and a description.

    Points come from ``box`` when given, else from a few values that respect each symbol's
    assumptions (positive, integer). Evaluation is in mpmath at ``digits`` digits.
    """
    symbols = sorted(claim.free_symbols, key=lambda s: s.name)
    if not symbols:
        return None
    candidates = [_candidates(s, box) for s in symbols]
    lhs, rhs = claim.lhs, claim.rhs
    f_lhs = sp.lambdify(symbols, lhs, "mpmath")
    f_rhs = sp.lambdify(symbols, rhs, "mpmath")
    with mpmath.workdps(digits):
        for combo in itertools.islice(itertools.product(*candidates), 4096):
            try:
                a, b = f_lhs(*combo), f_rhs(*combo)
                if isinstance(a, mpmath.mpc) or isinstance(b, mpmath.mpc):
                    continue
                holds = _relation_holds(claim, mpmath.mpf(a), mpmath.mpf(b))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                continue
            if not holds:
                point = {s.name: float(v) for s, v in zip(symbols, combo, strict=True)}
                values = ", ".join(f"{k}={v:.6g}" for k, v in point.items())
                relation = _NEGATED[type(claim)]
                detail = f"{values}: {mpmath.nstr(a, 6)} {relation} {mpmath.nstr(b, 6)}"
                return point, detail
    return None


_NEGATED = {sp.Equality: "!=", sp.GreaterThan: "<", sp.StrictGreaterThan: "<=",
            sp.LessThan: ">", sp.StrictLessThan: ">="}


def _relation_holds(claim: sp.Basic, a, b) -> bool:
    scale = max(abs(a), abs(b), mpmath.mpf(1))
    tol = scale * mpmath.mpf(10) ** (-mpmath.mp.dps + 5)
    if isinstance(claim, sp.Equality):
        return abs(a - b) <= tol
    if isinstance(claim, sp.GreaterThan):
        return a >= b - tol
    if isinstance(claim, sp.StrictGreaterThan):
        return a > b - tol
    if isinstance(claim, sp.LessThan):
        return a <= b + tol
    if isinstance(claim, sp.StrictLessThan):
        return a < b + tol
    raise TypeError(f"cannot evaluate {type(claim).__name__}")


def _candidates(symbol: sp.Symbol, box: Mapping | None) -> list:
    if box is not None:
        by_name = {(k.name if isinstance(k, sp.Symbol) else str(k)): v for k, v in box.items()}
        if symbol.name in by_name:
            lo, hi = (mpmath.mpf(v) for v in by_name[symbol.name])
            points = [lo + (hi - lo) * t for t in (0, 0.5, 1, 0.25, 0.75, 0.1, 0.9)]
            return [mpmath.mpf(int(p)) if symbol.is_integer else p for p in points]
    if symbol.is_integer:
        values = [1, 2, 3, 5, 10, 100]
    else:
        values = [1, 2, 0.5, 3.7, 0.1, 10]
        if symbol.is_positive is not True and symbol.is_nonnegative is not True:
            values += [-1, -2.5]
    if symbol.is_nonpositive:  # a witness must respect the symbol's sign
        values = [-v for v in values if v > 0]
    return [mpmath.mpf(v) for v in values]
