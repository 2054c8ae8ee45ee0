"""A priori forward error bounds of the softmax and of a weighted sum, under a format and a policy.

The bounds follow the standard model of floating-point arithmetic (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., §2.2 and Lemma 3.1): every rounding to a unit ``u``
perturbs a result by a relative ``delta`` with ``|delta| <= u`` (normal range), and a sum of ``m``
terms computed with unit ``u`` in any order is within ``gamma_{m-1} sum |t_j|`` of the exact sum,
``gamma_k = k u / (1 - k u)``. Below a format's smallest normal number a rounding is off by at most
half its smallest subnormal, an absolute error.

Units (:func:`units`): ``output`` is the format's unit roundoff (each kernel rounds its result
there); ``compute`` is the unit of elementwise arithmetic (the float32 or float64 container under
``hw``; the format plus the container under ``strict``, which rounds twice); ``accumulate`` the
unit of sums (the container under ``hw``, the format plus the container under ``strict``).

Sums in ``strict`` are where a format's result can leave the worst-case analysis (``m u >= 1``,
a vacuous ``gamma``). With ``accumulation="one-ulp"`` a bound takes each in-format sum to be
within one ulp of the exact sum of its terms (relative ``2 u``) whenever that is less than
``gamma``; a result outside such a bound therefore proves a sum off by more than one ulp, which
:mod:`numerics.evidence` measures on the row (``sum_error_ulps``, ``stall_index``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numerics.formats import Format, get_format
from numerics.policies import Policy, get_policy

__all__ = ["EXP_ULPS", "Units", "gamma", "softmax_error", "sum_error", "units",
    "weighted_sum_error"]


#: NumPy's float32 and float64 ``exp`` are accurate to a few ulps of their dtype; 4 is a margin.
EXP_ULPS = 4


@dataclass(frozen=True)
class Units:
    """The unit roundoffs of a format under a policy (see the module docstring)."""

    output: float
    compute: float
    accumulate: float
    container: float
    strict: bool
    smallest_subnormal: float


def units(fmt: Format | str, policy: Policy | str) -> Units:
    """Return the :class:`Units` of ``fmt`` under ``policy``."""
    fmt, policy = get_format(fmt), get_policy(policy)
    container = 2.0**-53 if fmt.container == np.float64 else 2.0**-24
    u = fmt.unit_roundoff
    strict = bool(policy.round_each_op)
    compute = u + container if strict and u > container else container
    accumulate = u + container if policy.accumulate == "format" and u > container else container
    return Units(u, compute, accumulate, container, strict, fmt.smallest_subnormal)


def gamma(count, unit: float):
    """``gamma_k = k u / (1 - k u)`` (Higham's Lemma 3.1), ``inf`` once ``k u >= 1``."""
    count = np.asarray(count, dtype=np.float64)
    product = count * unit
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(product < 1, product / (1 - product), np.inf)
    return float(value) if value.ndim == 0 else value


def sum_error(count, unit: Units, accumulation: str = "bound"):
    """Relative error bound of a sum of ``count`` non-negative terms (``gamma_{count-1}`` in the
    accumulation unit; with ``accumulation="one-ulp"`` at most ``2 u`` under ``strict``)."""
    bound = gamma(np.maximum(np.asarray(count, dtype=np.float64) - 1, 0), unit.accumulate)
    if accumulation == "one-ulp" and unit.accumulate > unit.container:
        bound = np.minimum(bound, 2 * unit.output)
    return float(bound) if np.ndim(bound) == 0 else bound


def softmax_error(spread, count, fmt: Format | str, policy: Policy | str, *,
                  accumulation: str = "bound") -> tuple:
    """Bounds ``(relative, absolute)`` with ``|softmax_hat_j - softmax_j| <= relative softmax_j +
    absolute`` for every output of :func:`numerics.kernels.softmax` over ``count`` stored logits
    whose largest minus smallest is ``spread`` (arrays broadcast; ``inf`` where vacuous).

    ``z = x - max`` is rounded with the compute unit (relative error ``<= u_c |z| <= u_c
    spread``, so ``exp`` is off by ``e^{u_c spread}``), ``exp`` with ``EXP_ULPS`` container ulps
    and under ``strict`` once more to the format, the denominator by :func:`sum_error`, the
    quotient with the container unit and the output to the format. Outputs below the smallest
    normal number are off by at most half the smallest subnormal, and under ``strict`` each
    stored exponential too, which moves the denominator (at least 1) by ``count`` such halves.
    """
    unit = units(fmt, policy)
    spread = np.asarray(spread, dtype=np.float64)
    count = np.asarray(count, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        grow = np.exp(unit.compute * spread) * (1 + EXP_ULPS * unit.container) \
            * (1 + (unit.output if unit.strict else 0.0))
        shrink = np.exp(-unit.compute * spread) * (1 - EXP_ULPS * unit.container) \
            * (1 - (unit.output if unit.strict else 0.0))
        total = sum_error(count, unit, accumulation)
        quotient = (1 + unit.container) * (1 + unit.output)
        upper = grow / shrink * quotient / (1 - total)
        lower = shrink / grow * (1 - unit.container) * (1 - unit.output) / (1 + total)
        relative = np.maximum(upper - 1, 1 - lower)
    relative = np.where((total < 1) & np.isfinite(relative), relative, np.inf)
    half = unit.smallest_subnormal / 2
    absolute = half * (1 + (count + 1) * (1 if unit.strict else 0)) + 0 * relative
    return _plain(relative), _plain(absolute)


def weighted_sum_error(weight_relative, weight_absolute, count, scale, magnitude,
                       fmt: Format | str, policy: Policy | str, *,
                       accumulation: str = "bound"):
    """Bound on ``|m_hat - m|`` for ``m = sum_j w_j u_j`` over ``count`` terms, computed from
    weights within ``weight_relative w_j + weight_absolute`` of exact and stored values ``|u_j| <=
    scale`` (``magnitude``: a bound on ``|m|``): the weights' error ``(weight_relative +
    count weight_absolute) scale``, the accumulation (``gamma_count (1 + weight_relative) scale``
    in the accumulation unit, or one ulp of the result under ``strict`` with ``"one-ulp"``) and
    the output rounding ``u magnitude``."""
    unit = units(fmt, policy)
    count = np.asarray(count, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    magnitude = np.asarray(magnitude, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        weights = (weight_relative + count * weight_absolute) * scale
        accumulated = gamma(count, unit.accumulate) * (1 + weight_relative + count
                                                       * weight_absolute) * scale
        if accumulation == "one-ulp" and unit.accumulate > unit.container:
            accumulated = np.minimum(accumulated, 2 * unit.output * (magnitude + weights))
        bound = weights + accumulated + unit.output * (magnitude + weights + accumulated) \
            + unit.smallest_subnormal / 2
    return _plain(np.where(np.isfinite(bound), bound, np.inf))


def _plain(value):
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value

