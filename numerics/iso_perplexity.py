"""Kernels of the iso-perplexity experiments (Velickovic et al. 2026, Eqs. 3, 10, 11).

- :func:`log_perplexity_surface` and :func:`critical_accuracy_surface`: Eq. 10 and Eq. 11
  evaluated elementwise in a format under a policy.
- :func:`sequence_log_perplexity`: Eq. 3's mean negative log-likelihood of a sequence,
  accumulated under a policy (``strict`` sums sequentially in the format and can stagnate).
- :func:`copy_model_probabilities`: a one-layer decoder-only Transformer with bounded (compact)
  sinusoidal positional encodings whose head attends uniformly, so its next-token distribution
  depends on the token frequencies of the context; it copies a constant string ``alpha`` with a
  margin at every length. All prefixes are evaluated in one pass (cumulative sums), not one
  forward pass per length.
"""

from __future__ import annotations

import numpy as np

from numerics.backend import array_namespace
from numerics.formats import Format
from numerics.policies import Policy

#: Token ids of the copy task's vocabulary {0, 1, |}.
ZERO, ONE, SEPARATOR = 0, 1, 2


def _constant(value: float, like, fmt: Format, policy: Policy):
    xp = array_namespace(like)
    return policy.load(xp.asarray(value, dtype=np.float64), fmt)


def log_perplexity_surface(a, gamma, fmt: Format, policy: Policy):
    """Eq. 10, ``-a log(1 - gamma) - (1 - a) log(gamma)``, with every input stored in ``fmt``."""
    xp = array_namespace(a, gamma)
    a, gamma = policy.load(a, fmt), policy.load(gamma, fmt)
    one = _constant(1.0, a, fmt, policy)
    right = policy.step(-a * policy.step(xp.log(policy.step(one - gamma, fmt)), fmt), fmt)
    wrong = policy.step(policy.step(one - a, fmt) * policy.step(xp.log(gamma), fmt), fmt)
    return policy.output(right - wrong, fmt)


def critical_accuracy_surface(a, gamma, s, fmt: Format, policy: Policy):
    """Eq. 11 with ``gamma' = gamma (1 - s)``: ``(pplx + log gamma') / (log gamma' - log(1 -
    gamma'))``, every input stored in ``fmt``."""
    xp = array_namespace(a, gamma, s)
    perplexity = policy.load(log_perplexity_surface(a, gamma, fmt, policy), fmt)
    gamma, s = policy.load(gamma, fmt), policy.load(s, fmt)
    one = _constant(1.0, gamma, fmt, policy)
    shifted = policy.step(gamma * policy.step(one - s, fmt), fmt)
    log_shifted = policy.step(xp.log(shifted), fmt)
    log_right = policy.step(xp.log(policy.step(one - shifted, fmt)), fmt)
    top = policy.step(perplexity + log_shifted, fmt)
    bottom = policy.step(log_shifted - log_right, fmt)
    return policy.output(top / bottom, fmt)


def sequence_log_perplexity(nll, fmt: Format, policy: Policy, *, axis: int = -1):
    """Eq. 3: the mean of the per-token negative log-likelihoods ``nll`` along ``axis``."""
    values = policy.load(nll, fmt)
    total = policy.sum(values, fmt, axis=axis)
    count = values.shape[axis]
    return policy.output(policy.step(total / values.dtype.type(count), fmt), fmt)


def copy_model_probabilities(tokens, *, weight: float = 4.0, positions: int = 4):
    """Return ``P(next token = 1)`` after every prefix of ``tokens`` (float64).

    The model: embeddings ``E[t] + PE(i)`` (one-hot token plus ``positions`` sinusoidal
    dimensions, all bounded); one causal head with zero query and key weights, so every position
    attends uniformly to its prefix; a value map that keeps the token part; and a readout with
    ``logit(1) - logit(0) = weight * (share of ones - share of zeros)`` (the separator's logit is
    -inf). Uniform attention over a prefix is its running mean, so all prefixes cost one
    cumulative sum.
    """
    xp = array_namespace(tokens)
    tokens = xp.asarray(tokens)
    length = tokens.shape[-1]
    index = xp.arange(1, length + 1, dtype=xp.float64)
    embedded = xp.stack([tokens == ZERO, tokens == ONE, tokens == SEPARATOR], axis=-1)
    embedded = embedded.astype(xp.float64)
    frequencies = 10000.0 ** (-xp.arange(positions // 2, dtype=xp.float64) / max(positions, 1))
    angles = index[:, None] * frequencies[None, :]
    encoding = xp.concatenate([xp.sin(angles), xp.cos(angles)], axis=-1)  # |PE| <= 1: compact
    residual = xp.concatenate([embedded, xp.broadcast_to(encoding, (*embedded.shape[:-1],
                                                                    encoding.shape[-1]))], -1)
    attended = xp.cumsum(residual, axis=-2) / index[:, None]  # uniform causal attention
    readout = xp.zeros(residual.shape[-1])
    readout[ZERO], readout[ONE] = -weight, weight
    logit = attended @ readout
    return 1.0 / (1.0 + xp.exp(-logit))


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
