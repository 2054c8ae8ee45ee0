"""Pairs of logit vectors and the total variation of their softmaxes over every prefix length, in a
format: Fig. 9's perturbed logits (Lemma B.2 of Barbero et al., NeurIPS 2024), Prop. B.4's
alternating pair, and logits on which Lemma B.2's quantitative bound is nearly attained.
"""

from __future__ import annotations

import numpy as np

from numerics.backend import to_numpy
from numerics.error_bounds import softmax_error
from numerics.formats import Format, get_format
from numerics.kernels import softmax
from numerics.policies import Policy, get_policy

__all__ = ["alternating_logits", "fig9_logits", "lemma_b2_extremal_logits", "softmax_pair_tv"]


def fig9_logits(size: int, *, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 9's logits: ``x ~ U[0, 1]^size`` and ``x*``, which adds ``U[0, noise]`` to the first
    ``k`` entries (float64, seeded); the two draws come from separate streams, so length ``n``
    sees the first ``n`` of each whatever ``size`` is."""
    x = np.random.default_rng([seed, 9]).uniform(0.0, 1.0, size)
    shift = np.zeros(size)
    shift[:k] = np.random.default_rng([seed, 10]).uniform(0.0, noise, k)[:size]
    return x, x + shift


def alternating_logits(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Prop. B.4's pair: ``x = (1, 0, 1, 0, ...)`` and ``x* = (0, 1, 0, 1, ...)``."""
    x = (np.arange(size) % 2 == 0).astype(np.float64)
    return x, 1.0 - x


def lemma_b2_extremal_logits(size: int, *, bound: float,
                             shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Logits on which Lemma B.2's ``(2 e^{2B}/n) sum |Delta_i|`` is nearly attained: ``x* =
    (B, -B, ..., -B)`` and ``x`` with ``B - shift`` first. Then ``TV = 2 (n - 1) e^{-B} D / (Z
    Z*)`` with ``D = e^B (1 - e^{-shift})``, which is ``(1 - O(1/n) - O(shift))`` times the bound
    for small ``B``."""
    x_star = np.full(size, -bound)
    x_star[0] = bound
    x = x_star.copy()
    x[0] = bound - shift
    return x, x_star


def softmax_pair_tv(logits, lengths, fmt: Format | str, policy: Policy | str, *,
                    xp=np) -> dict[str, np.ndarray]:
    """``sum_i |softmax(x)_i - softmax(x*)_i|`` over the first ``n`` logits, for every ``n`` in
    ``lengths`` at once: ``observed`` computed in ``fmt`` under ``policy`` (the logits stored in
    the format first), ``exact`` that of the stored logits in float64; ``stored`` the pair as
    stored; ``tolerance``, the a priori bound ``2 rho + 2 n abs`` on ``|observed - exact|`` from
    :func:`numerics.error_bounds.softmax_error` (sums within one ulp under ``strict``); and
    ``underflow``, the count of outputs that round to 0 where the exact one is positive."""
    fmt, policy = get_format(fmt), get_policy(policy)
    lengths = np.asarray(lengths, dtype=np.int64)
    size = int(lengths.max())
    stored = fmt.round(np.stack([np.asarray(v, dtype=np.float64)[:size] for v in logits]))
    mask = np.arange(size)[None, :] < lengths[:, None]
    batch = xp.asarray(np.ascontiguousarray(np.broadcast_to(stored[:, None, :],
                                                            (2, lengths.size, size))))
    computed = to_numpy(softmax(batch, fmt, policy, mask=xp.asarray(mask)), np.float64)
    exact = to_numpy(softmax(batch, "fp64", "hw", mask=xp.asarray(mask)), np.float64)
    masked = np.where(mask[None], stored[:, None, :], np.nan)
    spread = np.nanmax(np.nanmax(masked, axis=-1) - np.nanmin(masked, axis=-1), axis=0)
    rho, floor = softmax_error(spread, lengths, fmt, policy, accumulation="one-ulp")
    return {
        "observed": np.abs(computed[0] - computed[1]).sum(axis=-1),
        "exact": np.abs(exact[0] - exact[1]).sum(axis=-1),
        "stored": stored,
        "tolerance": 2 * np.asarray(rho) + 2 * lengths * np.asarray(floor),
        "underflow": ((computed == 0) & (exact > 0) & mask).sum(axis=(0, 2)),
    }
