"""Kernels of the softmax-dispersion experiment (Velickovic et al. 2025, Lemma 2.1).

- Logit families of size ``n`` and spread ``delta`` centred on 0: ``worst-max`` (one logit at
  ``M = delta/2``, the rest at ``m = -delta/2``; attains the largest possible coefficient),
  ``worst-min`` (one at ``m``, the rest at ``M``; attains the smallest) and ``random`` (uniform in
  ``[m, M]`` with both ends present, so the spread is exactly ``delta``).
- :func:`coefficient_extremes`: the largest and smallest softmax coefficient, and their total, as
  computed in a format under a policy.
- :func:`predicted_extremes`: what the extremal families' coefficients round to, from a rounding
  model that uses :func:`numerics.kernels.sequential_total` for ``strict`` sums.
"""

from __future__ import annotations

import math

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.formats import Format
from numerics.kernels import sequential_total, softmax
from numerics.policies import Policy

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
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if n == 1:
        logits[0] = 0.0
    return xp.asarray(logits)


def coefficient_extremes(
    logits, fmt: Format, policy: Policy, *, temperature: float = 1.0
) -> dict[str, float]:
    """Return the largest and smallest coefficient and their total, computed in ``fmt``/``policy``,
    together with the spread ``d = (max e - min e) / theta`` of the logits as stored in ``fmt``."""
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
    """
    stored = to_numpy(logits).astype(np.float64)
    stored = fmt.round(stored) if fmt.bits < 64 else stored
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


def _container_format(fmt: Format) -> Format:
    from numerics.formats import FORMATS

    return FORMATS["fp64"] if fmt.container == np.float64 else FORMATS["fp32"]
