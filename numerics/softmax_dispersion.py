"""Kernels of the softmax-dispersion experiment (Velickovic et al. 2025, Lemma 2.1).

- Logit families of size ``n`` and spread ``delta`` centred on 0: ``worst-max`` (one logit at
  ``M = delta/2``, the rest at ``m = -delta/2``; attains the largest possible coefficient),
  ``worst-min`` (one at ``m``, the rest at ``M``; attains the smallest) and ``random`` (uniform in
  ``[m, M]`` with both ends present, so the spread is exactly ``delta``).
- :func:`coefficient_extremes`: the largest and smallest softmax coefficient, and their total, as
  computed in a format under a policy.
- :func:`predicted_extremes`: what the extremal families' coefficients round to, from a rounding
  model that uses :func:`numerics.kernels.sequential_total` for ``strict`` sums.
- :func:`denominator_terms` and :func:`denominator_evidence`: the stored exponentials the softmax
  kernel sums, in summation order, and what that sum did to them (where a running in-format sum
  first absorbed a nonzero term whole, how many it absorbed, its error in ulps).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument
from numerics.evidence import absorbed_count, error_in_ulps, stall_index
from numerics.formats import FORMATS, Format
from numerics.kernels import load_finite, sequential_total, softmax
from numerics.policies import Policy

__all__ = ["FAMILIES", "adaptive_beta", "adaptive_temperature_softmax", "coefficient_extremes",
    "denominator_evidence", "denominator_terms", "family_logits", "predicted_extremes",
    "reference_extremes", "sharpness_gap"]


FAMILIES: tuple[str, ...] = ("worst-max", "worst-min", "random")


def family_logits(family: str, n: int, spread: float, *, seed: int = 0, xp=np):
    """Return ``n`` logits of the named family with the given spread, as float64 on ``xp``."""
    low, high = -spread / 2, spread / 2
    if family == "worst-max":
        logits = np.full(n, low)
        logits[0] = high
    elif family == "worst-min":
        logits = np.full(n, high)
        logits[0] = low
    elif family == "random":
        logits = np.random.default_rng(seed).uniform(low, high, n)
        logits[: min(n, 2)] = (low, high)[: min(n, 2)]
    else:
        raise InvalidArgument(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if n == 1:
        logits[0] = 0.0
    return xp.asarray(logits)


def coefficient_extremes(
    logits, fmt: Format, policy: Policy, *, temperature: float = 1.0
) -> dict[str, float]:
    """Return the largest and smallest coefficient and their total, computed in ``fmt``/``policy``,
    together with the spread ``d = (max e - min e) / theta`` of the logits as stored in ``fmt``.

    Pass logits stored once (``fmt.store(logits)``) when several of these functions read the same
    vector: loading a stored array only widens it."""
    xp = array_namespace(logits)
    stored = policy.load(logits, fmt)
    alpha = softmax(logits, fmt, policy, temperature=temperature)
    values = alpha.astype(np.float64) if xp is np else alpha.astype(xp.float64)
    return {
        "alpha_max": float(xp.max(values)),
        "alpha_min": float(xp.min(values)),
        "total": float(xp.sum(values)),
        "d": float(xp.max(stored) - xp.min(stored)) / temperature,
    }


def reference_extremes(logits, fmt: Format, *, temperature: float = 1.0) -> dict[str, float]:
    """Return the exact largest and smallest coefficient of the logits as stored in ``fmt``.

    Computed on the host in float64 (relative error near 1e-15, far below every tolerance).
    Logits already stored in ``fmt`` (its storage dtype, as :meth:`Format.store` returns them)
    are not rounded again.
    """
    stored = to_numpy(logits)
    stored = (fmt.round(stored) if fmt.bits < 64 else stored).astype(np.float64)
    z = (stored - stored.max()) / temperature
    total = math.fsum(np.exp(np.sort(z)).tolist()) if z.size <= 4096 else float(np.exp(z).sum())
    return {"alpha_max": 1.0 / total, "alpha_min": float(np.exp(z.min())) / total}


def predicted_extremes(
    family: str, n: int, spread: float, fmt: Format, policy: Policy, *, temperature: float = 1.0
) -> dict[str, float] | None:
    """Predict what a worst-case family's extreme coefficients round to, from a rounding model.

    The model: the one non-repeated exponential is ``c = exp((m - M)/theta)`` (rounded to the
    compute precision under ``hw``, to ``fmt`` under ``strict``); the total is exact under ``hw``
    and :func:`sequential_total` under ``strict``; each output is the exact quotient rounded once
    to ``fmt``. Returns ``None`` for the random family, which has no closed form.
    """
    if family == "random":
        return None
    if n == 1:
        return {"alpha_max": 1.0, "alpha_min": 1.0}
    high = float(fmt.round(np.float64(spread / 2)))
    low = float(fmt.round(np.float64(-spread / 2)))
    gap = low - high
    compute = fmt if policy.round_each_op else _container_format(fmt)
    if policy.round_each_op:
        gap = float(fmt.round(np.float64(gap)))
        if temperature != 1.0:
            gap = float(fmt.round(np.float64(gap / temperature)))
    elif temperature != 1.0:
        gap = gap / temperature
    with np.errstate(under="ignore"):
        c = float(compute.round(np.float64(math.exp(gap))))
    first, term = (1.0, c) if family == "worst-max" else (c, 1.0)
    if policy.accumulate == "format":
        total = sequential_total(first, term, n - 1, fmt)
    else:
        total = first + (n - 1) * term
    # in both families the logits at M have term 1 and the one or many at m have term c
    return {"alpha_max": float(fmt.round(np.float64(1.0 / total))),
            "alpha_min": float(fmt.round(np.float64(c / total)))}


def denominator_terms(logits, fmt: Format, policy: Policy, *, temperature: float = 1.0):
    """Return the exponentials ``exp((e_k - max e)/theta)`` that :func:`numerics.kernels.softmax`
    sums for its denominator, as it stores them (same operations, same roundings), in summation
    order."""
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    if temperature != 1.0:
        x = policy.step(x / x.dtype.type(temperature), fmt)
    z = policy.step(x - xp.max(x), fmt)
    return policy.step(xp.exp(z), fmt)


def denominator_evidence(terms, fmt: Format, policy: Policy) -> dict:
    """Measure what the softmax denominator's sum did to its stored ``terms``.

    - ``accumulator``: the format the sum runs in (``fmt`` under ``strict``; float32, or float64
      for fp64, under ``hw``);
    - ``stall_index``: under ``strict``, the first index at which the running in-format sum
      (left to right, as the kernel sums) absorbed a nonzero term whole, or ``None``; under
      ``hw`` the sum is a pairwise float32 reduction with no running sum, so ``None``;
    - ``absorbed``: how many nonzero terms the running sum absorbed whole (0 under ``hw``);
    - ``sum_error_ulps``: the computed sum's distance from the exact sum of the same stored terms,
      in ulps of the accumulator (for float64 terms the difference itself by ``math.fsum``;
      otherwise against a float64 sum, whose error is below 1e-6 ulps of float32 for every size
      the toolkit runs).
    """
    values = np.asarray(to_numpy(terms), dtype=np.float64).ravel()
    total = float(np.asarray(to_numpy(policy.sum(terms, fmt)), dtype=np.float64))
    if policy.accumulate == "format":
        accumulator, stall, absorbed = fmt, stall_index(values, fmt), absorbed_count(values, fmt)
    else:
        accumulator, stall, absorbed = _container_format(fmt), None, 0
    if fmt.container == np.float64:  # the error itself, correctly rounded: fsum(total - terms)
        # fsum reads the floats through a memoryview, ~3x faster than from a list of them
        error = math.fsum(itertools.chain((total,), memoryview(np.ascontiguousarray(-values))))
        exact = math.fsum(memoryview(np.ascontiguousarray(values)))
        ulps = abs(error) / float(accumulator.ulp(exact))
    else:
        ulps = error_in_ulps(total, float(values.sum()), accumulator)
    return {"accumulator": accumulator.name, "stall_index": stall, "absorbed": absorbed,
            "sum_error_ulps": ulps}


def _container_format(fmt: Format) -> Format:
    return FORMATS["fp64"] if fmt.container == np.float64 else FORMATS["fp32"]


def adaptive_beta(entropy, coefficients, gate: float):
    """Return the listing's ``beta(H)``: ``max(polyval(coefficients, H), 1)`` where ``H > gate``,
    else 1 (``coefficients`` highest degree first, as ``jnp.polyval``)."""
    xp = array_namespace(entropy)
    h = xp.asarray(entropy, dtype=xp.float64)
    poly = xp.zeros_like(h)
    for coefficient in coefficients:  # Horner, highest degree first as jnp.polyval
        poly = poly * h + coefficient
    return xp.where(h > gate, xp.maximum(poly, 1.0), 1.0)


def adaptive_temperature_softmax(logits, fmt: Format, policy: Policy, *, coefficients,
                                 gate: float, epsilon: float, axis: int = -1):
    """The listing's ``adaptive_temperature_softmax`` in a format under a policy; returns
    ``(softmax(beta * e), beta, H)``.

    ``p = softmax(e)``; ``H = sum -p log(p + epsilon)`` (nats), computed as the listing computes
    it (under ``strict`` in fp16 the epsilon rounds to 0 and ``0 * log 0`` is NaN, so the gate
    ``NaN > gate`` is false and the row keeps beta = 1); ``beta = adaptive_beta(H)``.
    """
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    p = policy.load(softmax(x, fmt, policy, axis=axis), fmt)
    eps = policy.step(xp.asarray(epsilon, dtype=p.dtype), fmt)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = policy.step(xp.log(policy.step(p + eps, fmt)), fmt)
        terms = policy.step(-p * log_p, fmt)
    entropy = policy.sum(terms, fmt, axis=axis, keepdims=True)
    beta = adaptive_beta(policy.step(entropy, fmt), coefficients, gate).astype(x.dtype)
    out = softmax(policy.step(x * beta, fmt), fmt, policy, axis=axis)
    return out, beta, entropy


def sharpness_gap(fmt: Format, policy: Policy) -> tuple[float, float]:
    """Return ``(zero_gap, one_gap)``: the smallest logit gap ``g`` (in units of the temperature,
    representable in ``fmt``) at which ``softmax([0, -g])`` is exactly ``[1, 0]``, and the smallest
    at which the top weight alone rounds to exactly 1.

    Found by bisection over the format's bit patterns (31 or 63 halvings at most); both
    predicates are monotone in ``g``.
    """

    def top_is_one(g):
        return float(softmax(np.array([0.0, -g]), fmt, policy)[0].astype(np.float64)) == 1.0

    def exact_one_hot(g):
        y = softmax(np.array([0.0, -g]), fmt, policy).astype(np.float64)
        return y[0] == 1.0 and y[1] == 0.0

    return _least_true(exact_one_hot, fmt), _least_true(top_is_one, fmt)


def _least_true(predicate, fmt: Format) -> float:
    """Smallest positive finite value ``g`` of ``fmt`` with ``predicate(g)`` (monotone)."""
    view = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[fmt.bits]
    finite_top = np.array([fmt.max], dtype=np.float64).astype(fmt.dtype).view(view)[0]
    low, high = 1, int(finite_top)  # bit patterns of positive finite values, increasing

    def value(pattern: int) -> float:
        return float(np.array([pattern], dtype=view).view(fmt.dtype).astype(np.float64)[0])

    if not predicate(value(high)):
        return math.inf
    while low < high:
        middle = (low + high) // 2
        if predicate(value(middle)):
            high = middle
        else:
            low = middle + 1
    return value(low)
