"""Kernels of the iso-perplexity experiments (Velickovic et al. 2026, Eqs. 3, 10, 11).

- :func:`log_perplexity_surface` (from the two terms of :func:`log_perplexity_terms`) and
  :func:`critical_accuracy_surface`: Eq. 10 and Eq. 11 evaluated elementwise in a format under a
  policy.
- :func:`model_selection`: on a grid of model pairs, whether perplexity picks the new model exactly
  when its accuracy exceeds Eq. 11's ``a'``, and where the format's arithmetic flips the choice.
- :func:`sequence_log_perplexity`: Eq. 3's mean negative log-likelihood of a sequence,
  accumulated under a policy (``strict`` sums sequentially in the format and can stagnate).
- :func:`copy_transformer`: a one-layer decoder-only Transformer
  (:mod:`numerics.models.transformer`) with bounded (compact) sinusoidal positional encodings
  whose head attends uniformly, so its next-token distribution depends on the token frequencies
  of the context; it copies a constant
  string ``alpha`` with a margin at every length. :func:`copy_model_probabilities` evaluates it on
  all prefixes in ``O(N)`` (cumulative sums), not by a forward pass per length.
"""

from __future__ import annotations

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.formats import Format
from numerics.models.transformer import Layer, Transformer
from numerics.policies import Policy

__all__ = ["COPY_TOKENS", "ONE", "SEPARATOR", "ZERO", "copy_log_perplexity",
    "copy_model_probabilities", "copy_readout", "copy_transformer", "critical_accuracy_surface",
    "log_perplexity_error_bound", "log_perplexity_surface", "log_perplexity_terms",
    "model_selection", "sequence_log_perplexity"]


#: Token ids of the copy task's vocabulary {0, 1, |}.
ZERO, ONE, SEPARATOR = 0, 1, 2
COPY_TOKENS = 3


def log_perplexity_terms(a, gamma, fmt: Format, policy: Policy):
    """The two terms of Eq. 10 as the kernel computes them: ``(-a log(1 - gamma), (1 - a)
    log(gamma))``, every input stored in ``fmt``; Eq. 10 is their difference."""
    xp = array_namespace(a, gamma)
    a, gamma = policy.load(a, fmt), policy.load(gamma, fmt)
    one = policy.constant(1.0, a, fmt)
    right = policy.step(-a * policy.step(xp.log(policy.step(one - gamma, fmt)), fmt), fmt)
    wrong = policy.step(policy.step(one - a, fmt) * policy.step(xp.log(gamma), fmt), fmt)
    return right, wrong


def log_perplexity_surface(a, gamma, fmt: Format, policy: Policy):
    """Eq. 10, ``-a log(1 - gamma) - (1 - a) log(gamma)``, with every input stored in ``fmt``."""
    right, wrong = log_perplexity_terms(a, gamma, fmt, policy)
    return policy.output(right - wrong, fmt)


def critical_accuracy_surface(a, gamma, s, fmt: Format, policy: Policy):
    """Eq. 11 with ``gamma' = gamma (1 - s)``: ``(pplx + log gamma') / (log gamma' - log(1 -
    gamma'))``, every input stored in ``fmt``."""
    xp = array_namespace(a, gamma, s)
    perplexity = policy.load(log_perplexity_surface(a, gamma, fmt, policy), fmt)
    gamma, s = policy.load(gamma, fmt), policy.load(s, fmt)
    one = policy.constant(1.0, gamma, fmt)
    shifted = policy.step(gamma * policy.step(one - s, fmt), fmt)
    log_shifted = policy.step(xp.log(shifted), fmt)
    log_right = policy.step(xp.log(policy.step(one - shifted, fmt)), fmt)
    top = policy.step(perplexity + log_shifted, fmt)
    bottom = policy.step(log_shifted - log_right, fmt)
    return policy.output(top / bottom, fmt)


def model_selection(accuracies, gammas, shifts, fmt: Format, policy: Policy, *, xp=np,
                    eq10=(-1.0, -1.0, 1.0, 1.0), eq11=(1.0, -1.0, 1.0)) -> dict:
    """Count, over all pairs ``(a, gamma) -> (a_new, gamma (1 - s))`` of a grid, the pairs where

    - the exact comparison of the two models' mean NLLs disagrees with the rule ``a_new > a'``,
      ``a'`` from Eq. 11 with the printed signs and constants ``eq10 = (sign of a log(1 -
      gamma), sign of (1 - a) log(gamma), the 1 of 1 - gamma, the 1 of 1 - a)`` and ``eq11 =
      (sign of log(gamma') on top, sign of log(1 - gamma') below, the 1 of 1 - gamma')``,
      computed in extended precision (``rule_breaks``; pairs it cannot order are skipped);
    - the comparison computed in ``fmt`` disagrees with the exact one (``flips``), split into
      ``ties`` (the two perplexities round to the same value) and strict flips; and how many
      flips lie outside the a priori rounding band of :func:`log_perplexity_error_bound`
      (``outside``; ``near``: pairs inside the band).

    For each kind of flip, ``worst_tie`` and ``worst_strict`` give the flipped pair with the
    largest exact gap as ``(a, gamma, a_new, gamma_new)`` (stored values), or ``None``;
    ``strict_error_ulps`` is the least, over strict flips, of the two evaluations' combined error
    in ulps of the format at the smaller computed value. Without flips, ``closest`` is the
    decided pair with the smallest exact gap. Inputs are stored in ``fmt`` first; pairs whose
    stored values leave the theorem's domain (``0 < a < 1``, ``0 < gamma' < 1/2``) are not
    counted.
    """
    grid = np.meshgrid(accuracies, gammas, shifts, indexing="ij")
    a, g, s = (np.asarray(policy.load(x, fmt), dtype=np.float64) for x in grid)
    shifted = np.asarray(policy.load(g * (1 - s), fmt), dtype=np.float64)  # the stored gamma'
    a_new = np.asarray(policy.load(accuracies, fmt), dtype=np.float64)[None, None, None, :]
    inside = ((a > 0) & (a < 1) & (g > 0) & (shifted < 0.5) & (shifted > 0))[..., None]
    inside = inside & (a_new > 0) & (a_new < 1)
    a_w, g_w, shifted_w, new_w = (x.astype(np.longdouble) for x in (a, g, shifted, a_new))
    # the models' mean NLLs (right answers cost -log(1 - gamma), wrong ones -log(gamma))
    old = -a_w * np.log1p(-g_w) - (1 - a_w) * np.log(g_w)
    new = -new_w * np.log1p(-shifted_w)[..., None] - (1 - new_w) * np.log(shifted_w)[..., None]
    right_sign, wrong_sign, confidence, error_share = eq10
    top_sign, bottom_sign, shifted_confidence = eq11
    with np.errstate(divide="ignore", invalid="ignore"):  # outside the domain; masked below
        printed = (right_sign * a_w * np.log1p((confidence - 1) - g_w)
                   + wrong_sign * (error_share - a_w) * np.log(g_w))
        critical = ((printed + top_sign * np.log(shifted_w))
                    / (np.log(shifted_w)
                       + bottom_sign * np.log1p((shifted_confidence - 1) - shifted_w)))
        difference = new - old[..., None]
    decided = (np.abs(difference) > 1e-15) & inside  # pairs extended precision can order
    exact = difference < 0
    old_fmt = to_numpy(log_perplexity_surface(xp.asarray(a), xp.asarray(g), fmt, policy),
                       np.float64)
    new_fmt = to_numpy(log_perplexity_surface(
        xp.asarray(np.broadcast_to(a_new, difference.shape)),
        xp.asarray(np.broadcast_to(shifted[..., None], difference.shape)), fmt, policy), np.float64)
    old_fmt = np.broadcast_to(old_fmt[..., None], difference.shape)
    flips = ((new_fmt < old_fmt) != exact) & decided
    ties = flips & (new_fmt == old_fmt)
    strict = flips & ~ties
    band = (log_perplexity_error_bound(a, g, old, fmt, policy)[..., None]
            + log_perplexity_error_bound(a_new, shifted[..., None], new, fmt, policy))
    near = (np.abs(difference.astype(np.float64)) <= band) & inside
    gap = np.abs(difference.astype(np.float64))
    error = (np.abs(old_fmt - old[..., None].astype(np.float64))
             + np.abs(new_fmt - new.astype(np.float64)))
    spacing = fmt.ulp(np.minimum(old_fmt, new_fmt))
    pairs = np.broadcast_arrays(a[..., None], g[..., None], a_new, shifted[..., None])

    def pick(mask, largest=True):
        if not mask.any():
            return None
        index = np.flatnonzero(mask.ravel())
        chosen = index[np.argmax(gap.ravel()[index]) if largest
                       else np.argmin(gap.ravel()[index])]
        return tuple(float(x.ravel()[chosen]) for x in pairs)

    return {
        "pairs": int(np.sum(inside)),
        "rule_breaks": int(np.sum(((a_new > critical[..., None]) != exact) & decided)),
        "flips": int(np.sum(flips)),
        "ties": int(np.sum(ties)),
        "near": int(np.sum(near)),
        "outside": int(np.sum(flips & ~near)),
        "worst_tie": pick(ties),
        "worst_strict": pick(strict),
        "closest": pick(decided, largest=False),
        "strict_error_ulps": float(np.min((error / spacing)[strict])) if strict.any() else None,
    }


def log_perplexity_error_bound(a, gamma, exact, fmt: Format, policy: Policy):
    """A priori bound on the error of Eq. 10 evaluated in ``fmt`` from stored ``a``, ``gamma``.

    ``strict`` rounds each operation (relative ``u``): ``1 - gamma`` (whose error the log turns
    into an absolute ``u``), the two logs, the products, ``1 - a`` and the final difference.
    ``hw`` computes in float32 and rounds the result once.
    """
    exact = np.abs(np.asarray(exact).astype(np.float64))
    rounding = fmt.ulp(exact)
    if not policy.round_each_op:
        return rounding + 16 * 2.0**-24 * (1 + exact)
    u = fmt.unit_roundoff
    with np.errstate(divide="ignore", invalid="ignore"):
        right = a * (2 + 2 * np.abs(np.log1p(-gamma)))
        wrong = (1 - a) * (3 + 3 * np.abs(np.log(gamma)))
    return 2 * u * (right + wrong + 2 * exact) + rounding


def sequence_log_perplexity(nll, fmt: Format, policy: Policy, *, axis: int = -1):
    """Eq. 3: the mean of the per-token negative log-likelihoods ``nll`` along ``axis``."""
    values = policy.load(nll, fmt)
    total = policy.sum(values, fmt, axis=axis)
    count = values.shape[axis]
    return policy.output(policy.step(total / values.dtype.type(count), fmt), fmt)


def copy_transformer() -> Transformer:
    """The copy model as a :class:`numerics.models.transformer.Transformer` (Lemma 3.1's ``T``).

    One layer, one head, no norms, no MLP, sinusoidal positional encodings (bounded, hence
    compact), width 6: coordinates 0-2 hold the one-hot token, 3-5 the attended token shares.
    ``W_Q = W_K = 0``, so every position attends uniformly to its prefix whatever the encoding;
    ``W_V`` copies the one-hot token into coordinates 3-5 and ``W_O = I``, so the final state at
    ``i`` is ``e_{t_i}`` followed by the token shares of ``t_1..t_i``. :func:`copy_readout` turns
    states into next-token probabilities.
    """
    eye = np.eye(2 * COPY_TOKENS)
    w_v = np.zeros((1, 2 * COPY_TOKENS, 2 * COPY_TOKENS))
    w_v[0, np.arange(COPY_TOKENS), COPY_TOKENS + np.arange(COPY_TOKENS)] = 1.0
    blind = np.zeros_like(w_v)
    return Transformer(eye[:COPY_TOKENS], (Layer(blind, blind, w_v, eye),), pe="sinusoidal",
                       norm="none")


def copy_readout(states, *, weight: float = 4.0):
    """``P(next token = 1)`` from :func:`copy_transformer`'s final states: ``logit(1) - logit(0)
    = weight * (share of ones - share of zeros)``; the separator's logit is ``-inf``."""
    xp = array_namespace(states)
    shares = xp.asarray(states, dtype=xp.float64)[..., COPY_TOKENS:]
    logit = weight * (shares[..., ONE] - shares[..., ZERO])
    return 1.0 / (1.0 + xp.exp(-logit))


def copy_model_probabilities(tokens, *, weight: float = 4.0):
    """Return ``P(next token = 1)`` after every prefix of ``tokens`` (float64), in ``O(N)``.

    Equal to ``copy_readout(forward(copy_transformer(), tokens).states)``, which costs
    ``O(N^2)``: uniform causal attention over a prefix is its running mean, so every prefix's
    token shares come from one cumulative sum.
    """
    xp = array_namespace(tokens)
    tokens = xp.asarray(tokens)
    index = xp.arange(1, tokens.shape[-1] + 1, dtype=xp.float64)
    one_hot = xp.stack([tokens == ZERO, tokens == ONE, tokens == SEPARATOR], axis=-1)
    shares = xp.cumsum(one_hot.astype(xp.float64), axis=-2) / index[:, None]
    return copy_readout(xp.concatenate([one_hot.astype(xp.float64), shares], axis=-1),
                        weight=weight)


def copy_log_perplexity(target, prompt, *, weight: float = 4.0):
    """Eq. 3 for the copy task: read ``prompt |``, decode greedily (Eq. 4), score ``target``.

    Returns ``(pplx, greedy_outputs, p_one)`` where ``p_one[k]`` is the model's probability of a
    1 at copy step ``k``. With uniform attention each greedy output only adds to the majority it
    followed, so the outputs are the prompt's majority bit throughout (ties go to 0, Eq. 2); the
    whole decoded sequence is then scored in one forward pass over all its prefixes, and the pass
    confirms that every output is indeed the argmax.
    """
    prompt = np.asarray(prompt)
    target = np.asarray(target)
    n = prompt.size
    majority = ONE if np.sum(prompt == ONE) > np.sum(prompt == ZERO) else ZERO
    outputs = np.full(n, majority)
    sequence = np.concatenate([prompt, [SEPARATOR], outputs])
    p_one = copy_model_probabilities(sequence, weight=weight)[n : 2 * n]
    greedy = np.where(p_one > 0.5, ONE, ZERO)
    assert np.array_equal(greedy, outputs), "uniform attention keeps the majority bit"
    chosen = np.where(target == ONE, p_one, 1.0 - p_one)
    return float(-np.mean(np.log(chosen))), outputs, p_one
