"""Rigorous interval evaluation of SymPy expressions with python-flint's ``arb`` balls.

An :class:`Interval` keeps two balls, one enclosing the lower end and one the upper end of the
range. Monotone functions are applied to the end balls, so exact endpoints stay exact (``exp(0)``
is exactly 1): a non-strict inequality that is tight at the edge of a box can still be proved.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from flint import arb, ctx
from sympy.codegen.cfunctions import expm1, log1p

__all__ = ["Interval", "PRECISION_BITS", "Undecided", "Unsupported", "evaluate"]


PRECISION_BITS = 128


class Unsupported(ValueError):
    """The expression uses a function the interval evaluator does not know."""


class Undecided(ArithmeticError):
    """The enclosure is too wide to evaluate (division by an interval containing zero)."""


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[lo.lower(), hi.upper()]`` described by two ``arb`` balls."""

    lo: arb
    hi: arb

    @classmethod
    def point(cls, value) -> Interval:
        ball = value if isinstance(value, arb) else arb(value)
        return cls(ball, ball)

    @property
    def lower(self) -> arb:
        return self.lo.lower()

    @property
    def upper(self) -> arb:
        return self.hi.upper()

    def is_positive(self) -> bool:
        return bool(self.lower > 0)

    def is_nonnegative(self) -> bool:
        return bool(self.lower >= 0)

    def is_negative(self) -> bool:
        return bool(self.upper < 0)

    def __add__(self, other: Interval) -> Interval:
        return Interval(self.lo + other.lo, self.hi + other.hi)

    def __neg__(self) -> Interval:
        return Interval(-self.hi, -self.lo)

    def __mul__(self, other: Interval) -> Interval:
        products = [a * b for a in (self.lo, self.hi) for b in (other.lo, other.hi)]
        return Interval(_least(products), _greatest(products))

    def reciprocal(self) -> Interval:
        if self.is_positive() or self.is_negative():
            return Interval(1 / self.hi, 1 / self.lo)
        raise Undecided("division by an interval that contains zero")

    def increasing(self, f) -> Interval:
        return Interval(f(self.lo), f(self.hi))

    def power(self, k: int) -> Interval:
        if k < 0:
            return self.power(-k).reciprocal()
        if k % 2 == 1 or self.is_nonnegative():
            return Interval(self.lo**k, self.hi**k)
        if self.upper <= 0:
            return Interval(self.hi**k, self.lo**k)
        return Interval(arb(0), _greatest([self.lo**k, self.hi**k]))

    def abs(self) -> Interval:
        if self.is_nonnegative():
            return self
        if self.upper <= 0:
            return -self
        return Interval(arb(0), _greatest([-self.lo, self.hi]))


def _least(balls: list[arb]) -> arb:
    best = balls[0]
    for ball in balls[1:]:
        if ball.lower() < best.lower():
            best = ball
    return best


def _greatest(balls: list[arb]) -> arb:
    best = balls[0]
    for ball in balls[1:]:
        if ball.upper() > best.upper():
            best = ball
    return best


def _positive(x: Interval, what: str) -> Interval:
    if not x.is_positive():
        raise Undecided(f"{what} of an interval that is not positive")
    return x


_INCREASING = {
    sp.exp: lambda b: b.exp(),
    sp.log: lambda b: b.log(),
    log1p: lambda b: b.log1p(),
    expm1: lambda b: b.expm1(),
    sp.atan: lambda b: b.atan(),
    sp.tanh: lambda b: b.tanh(),
}
_POSITIVE_DOMAIN = {sp.log}


def evaluate(expr: sp.Basic, env: dict[sp.Symbol, Interval]) -> Interval:
    """Return an interval that certainly encloses ``expr`` for every point of ``env``'s box."""
    with ctx.workprec(PRECISION_BITS):
        return _eval(sp.sympify(expr), env)


def _eval(e: sp.Basic, env: dict[sp.Symbol, Interval]) -> Interval:
    if e.is_Symbol:
        if e not in env:
            raise Unsupported(f"symbol {e} has no range in the box")
        return env[e]
    if e.is_Integer:
        return Interval.point(arb(int(e)))
    if e.is_Rational:
        return Interval.point(arb(int(e.p)) / int(e.q))
    if e.is_Float:
        return Interval.point(arb(str(e)))
    if e is sp.pi:
        return Interval.point(arb.pi())
    if e is sp.E:
        return Interval.point(arb(1).exp())
    if e.is_Add:
        parts = [_eval(a, env) for a in e.args]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total
    if e.is_Mul:
        parts = [_eval(a, env) for a in e.args]
        total = parts[0]
        for part in parts[1:]:
            total = total * part
        return total
    if e.is_Pow:
        base, exponent = e.args
        if exponent.is_Integer:
            return _eval(base, env).power(int(exponent))
        if base is sp.E:
            return _eval(exponent, env).increasing(lambda b: b.exp())
        b = _positive(_eval(base, env), "a real power")
        if exponent.is_Rational:
            p, q = int(exponent.p), int(exponent.q)
            power = b.increasing(lambda x: (x.log() * p / q).exp())
            return power if p > 0 else Interval(power.hi, power.lo)
        return _eval(sp.exp(exponent * sp.log(base)), env)
    if isinstance(e, sp.Abs):
        return _eval(e.args[0], env).abs()
    if isinstance(e, sp.Max | sp.Min):
        parts = [_eval(a, env) for a in e.args]
        return Interval(_pick_lo(parts, e), _pick_hi(parts, e))
    func = e.func
    if func in _INCREASING and len(e.args) == 1:
        inner = _eval(e.args[0], env)
        if func in _POSITIVE_DOMAIN:
            _positive(inner, str(func))
        if func is log1p and not bool(inner.lower > -1):
            raise Undecided("log1p of an interval reaching -1")
        return inner.increasing(_INCREASING[func])
    if func in (sp.sin, sp.cos) and len(e.args) == 1:
        # not monotone: one ball covering the whole argument interval, then arb's enclosure
        inner = _eval(e.args[0], env)
        ball = (inner.lower + inner.upper) / 2
        ball = arb(ball.mid(), (inner.upper - inner.lower).upper() / 2 + ball.rad())
        image = ball.sin() if func is sp.sin else ball.cos()
        return Interval(image.lower(), image.upper())
    raise Unsupported(f"no interval rule for {func}")


def _pick_lo(parts: list[Interval], e: sp.Basic) -> arb:
    # max(x, y) >= max(lower(x), lower(y)); min(x, y) >= min(lower(x), lower(y))
    los = [p.lo for p in parts]
    return _greatest_lower(los) if isinstance(e, sp.Max) else _least(los)


def _pick_hi(parts: list[Interval], e: sp.Basic) -> arb:
    his = [p.hi for p in parts]
    return _greatest(his) if isinstance(e, sp.Max) else _least_upper(his)


def _greatest_lower(balls: list[arb]) -> arb:
    best = balls[0]
    for ball in balls[1:]:
        if ball.lower() > best.lower():
            best = ball
    return best


def _least_upper(balls: list[arb]) -> arb:
    best = balls[0]
    for ball in balls[1:]:
        if ball.upper() < best.upper():
            best = ball
    return best
