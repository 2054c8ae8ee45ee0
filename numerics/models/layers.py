"""Building blocks of a decoder layer under a format and a precision policy.

:func:`layer_norm`, the positional encodings (:func:`sinusoidal_encoding`, :func:`alibi_slopes`,
RoPE in :meth:`LayerOps.rotate`), and :class:`LayerOps`, the kernels of one forward pass bound to
a model, format, policy and array namespace. Each kernel computes as the policy says and rounds
its output to the format, as unfused eager code does; constants are stored in the format.
"""

from __future__ import annotations

import math

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.formats import Format, get_format
from numerics.kernels import softmax_in_container
from numerics.policies import Policy, get_policy

__all__ = ["LayerOps", "alibi_slopes", "layer_norm", "layer_norm_jacobian", "sinusoidal_encoding"]


def layer_norm(x, gain, bias, fmt: Format | str, policy: Policy | str, *, eps: float = 1e-5):
    """``gain * (x - mean(x)) / sqrt(var(x) + eps) + bias`` over the last axis, as one kernel."""
    fmt, policy = get_format(fmt), get_policy(policy)
    return policy.output(_layer_norm(x, gain, bias, fmt, policy, eps=eps), fmt)


def _layer_norm(x, gain, bias, fmt: Format, policy: Policy, *, eps: float):
    """:func:`layer_norm` before its output is stored (in the compute container)."""
    xp = array_namespace(x)
    x = policy.load(x, fmt)
    scale = policy.constant(1.0 / x.shape[-1], x, fmt)
    mean = policy.step(policy.sum(x, fmt, axis=-1, keepdims=True) * scale, fmt)
    centred = policy.step(x - mean, fmt)
    square = policy.step(centred * centred, fmt)
    var = policy.step(policy.sum(square, fmt, axis=-1, keepdims=True) * scale, fmt)
    root = policy.step(xp.sqrt(policy.step(var + policy.constant(eps, x, fmt), fmt)), fmt)
    y = policy.step(centred / root, fmt)
    if gain is not None:
        y = policy.step(y * policy.load(xp.asarray(gain), fmt), fmt)
    if bias is not None:
        y = policy.step(y + policy.load(xp.asarray(bias), fmt), fmt)
    return y


def layer_norm_jacobian(x, gain=None, *, eps: float = 1e-5) -> np.ndarray:
    """``d norm(x) / dx`` per row of ``x`` (float64 ``(..., d, d)``): for ``c = x - mean(x)`` and
    ``s = sqrt(mean(c^2) + eps)``, ``J_ab = g_a ((delta_ab - 1/d) / s - c_a c_b / (d s^3))``."""
    x = to_numpy(x, np.float64)
    d = x.shape[-1]
    c = x - x.mean(axis=-1, keepdims=True)
    s = np.sqrt((c**2).mean(axis=-1) + eps)[..., None, None]
    jacobian = (np.eye(d) - 1.0 / d) / s - c[..., :, None] * c[..., None, :] / (d * s**3)
    g = np.ones(d) if gain is None else np.asarray(gain, dtype=np.float64)
    return g[:, None] * jacobian


def sinusoidal_encoding(positions, d: int):
    """``PE[p, 2i] = sin(p / 10000^{2i/d})``, ``PE[p, 2i+1] = cos(p / 10000^{2i/d})`` (float64)."""
    xp = array_namespace(positions)
    frequency = 10000.0 ** (-xp.arange(0, d, 2, dtype=xp.float64) / d)
    angle = xp.asarray(positions, dtype=xp.float64)[:, None] * frequency[None, :]
    encoding = xp.empty((angle.shape[0], d), dtype=xp.float64)
    encoding[:, 0::2] = xp.sin(angle)
    encoding[:, 1::2] = xp.cos(angle)
    return encoding


def alibi_slopes(heads: int) -> np.ndarray:
    """ALiBi's head slopes ``m_h = 2^{-8h/H}`` for ``h = 1..H`` (Press et al. 2022)."""
    return 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)


class LayerOps:
    """The kernels of a decoder layer bound to a model (a :class:`numerics.models.transformer.
    Transformer`), one format, one policy and one array namespace; arrays stay in the format's
    compute container, holding values of the format."""

    def __init__(self, model, fmt: Format, policy: Policy, xp):
        self.model, self.fmt, self.policy, self.xp = model, fmt, policy, xp
        self._weights: dict[int, object] = {}

    def weight(self, array):
        """A model array stored in the format (rounded once per forward pass, then cached)."""
        key = id(array)
        if key not in self._weights:
            self._weights[key] = self.policy.load(self.xp.asarray(array, dtype=np.float64),
                                                  self.fmt)
        return self._weights[key]

    def out(self, y):
        """End of a kernel: round the result to the format (kept in the compute container).

        The values of storing ``y`` in the format and widening it back, in one rounding; ``y`` is
        a kernel's own temporary, returned itself where it already holds values of the format.
        """
        return self.fmt.round(y).astype(self.fmt.container, copy=False)

    def step(self, y):
        """Inside a kernel: round ``y`` when the policy rounds after every operation."""
        return self.policy.step(y, self.fmt)

    def constant(self, value: float, like):
        """``value`` stored in the format, in ``like``'s dtype."""
        return self.policy.constant(value, like, self.fmt)

    def matmul(self, a, b):
        """``a @ b`` accumulated as the policy says (not yet rounded to the format)."""
        return self.policy.matmul(a, b, self.fmt)

    def embed(self, tokens):
        """The input states ``v^(0)``: embedding rows of the token ids."""
        return self.weight(self.model.embedding)[tokens]

    def norm(self, x, gain, bias):
        """``norm(x)`` as one kernel (LayerNorm, or the identity for ``norm="none"``)."""
        if self.model.norm == "none":
            return x
        return self.out(_layer_norm(x, gain, bias, self.fmt, self.policy,
                                    eps=self.model.norm_eps))

    def final_norm(self, v):
        """``y = norm_3(v^(L))``."""
        return self.norm(v, self.model.gain_out, self.model.bias_out)

    def heads(self, layer, v, positions):
        """Queries, keys (with the positional encoding) and values, each ``(heads, n, d_head)``."""
        model = self.model
        h = self.norm(v, layer.gain_1, layer.bias_1)
        h_qk = h
        if model.pe == "sinusoidal":
            h_qk = self.out(h + self.weight_at(positions))
        q = self.out(self.matmul(h_qk[None], self.weight(layer.w_q)))
        k = self.out(self.matmul(h_qk[None], self.weight(layer.w_k)))
        u = self.out(self.matmul(h[None], self.weight(layer.w_v)))
        if model.pe == "rope":
            q, k = self.rotate(q, positions), self.rotate(k, positions)
        return q, k, u

    def weight_at(self, positions):
        """The sinusoidal encoding of ``positions``, stored in the format."""
        return self.policy.load(sinusoidal_encoding(positions, self.model.d), self.fmt)

    def rotate(self, x, positions):
        """RoPE: rotate each pair ``(x_{2i}, x_{2i+1})`` by ``p * base^{-2i/d_head}``."""
        xp = self.xp
        d_head = x.shape[-1]
        frequency = self.model.rope_base ** (-xp.arange(0, d_head, 2, dtype=xp.float64) / d_head)
        angle = xp.asarray(positions, dtype=xp.float64)[:, None] * frequency[None, :]
        cos = self.policy.load(xp.cos(angle), self.fmt)
        sin = self.policy.load(xp.sin(angle), self.fmt)
        even, odd = x[..., 0::2], x[..., 1::2]
        out = xp.empty_like(x)
        out[..., 0::2] = self.step(self.step(even * cos) - self.step(odd * sin))
        out[..., 1::2] = self.step(self.step(even * sin) + self.step(odd * cos))
        return self.out(out)

    def bias(self, query_positions, key_positions):
        """ALiBi's ``-m_h (i - j)`` for query rows against key columns, or ``None``."""
        if self.model.pe != "alibi":
            return None
        xp = self.xp
        slopes = xp.asarray(alibi_slopes(self.model.heads))[:, None, None]
        distance = xp.asarray(query_positions - key_positions, dtype=xp.float64)
        return self.policy.load(-slopes * distance, self.fmt)

    def scores(self, q, k, query_positions, key_positions):
        """``q k^T / sqrt(d_head)`` (+ ALiBi) for every query row against every key."""
        s = self.matmul(q, self.xp.swapaxes(k, -1, -2))  # a fresh array: scaled in place
        s = self.step(self.xp.multiply(s, self.constant(1.0 / math.sqrt(q.shape[-1]), s), out=s))
        extra = self.bias(query_positions[:, None], key_positions[None, :])
        if extra is not None:
            s = self.step(s + extra)
        return self.out(s)

    def rowdot(self, q, k, query_positions, key_positions):
        """The score of each query row against the key in the same row, as a column."""
        s = self.matmul(q[..., :, None, :], k[..., :, :, None])[..., 0]
        s = self.step(s * self.constant(1.0 / math.sqrt(q.shape[-1]), s))
        extra = self.bias(query_positions[:, None], key_positions[:, None])
        if extra is not None:
            s = self.step(s + extra)
        return self.out(s)

    def softmax(self, scores, mask):
        """Attention weights: :func:`numerics.kernels.softmax` over the last axis, ``mask``
        choosing the keys."""
        return self.out(softmax_in_container(scores, self.fmt, self.policy, mask=mask))

    def mix(self, weights, values):
        """``weights @ values`` as the policy accumulates (zeros when there are no keys)."""
        if values.shape[-2] == 0:
            return self.xp.zeros((*weights.shape[:-1], values.shape[-1]), dtype=values.dtype)
        return self.matmul(weights, values)

    def accumulate(self, total, terms):
        """Continue a weighted sum over keys with ``weight[..., row] * value[..., row, :]``
        terms, in sequence order (rounded per step under ``strict``)."""
        for weight, value in terms:
            total = self.step(total + self.step(weight[..., None] * value))
        return total

    def merge(self, layer, mix):
        """Concatenate the heads and apply ``W_O``: ``(heads, n, d_head) -> (n, d)``."""
        xp = self.xp
        heads, n, d_head = mix.shape
        joined = xp.reshape(xp.moveaxis(mix, 0, 1), (n, heads * d_head))
        return self.out(self.matmul(joined, self.weight(layer.w_o)))

    def residual(self, v, update):
        """``v + update`` as one kernel."""
        return self.out(v + update)

    def mlp_block(self, layer, z):
        """``z + psi(norm_2(z))`` with ``psi(x) = W_2 relu(W_1 x + b_1) + b_2`` (``z`` without
        an MLP)."""
        if not layer.has_mlp:
            return z
        h = self.norm(z, layer.gain_2, layer.bias_2)
        hidden = self.step(self.matmul(h, self.weight(layer.w_1)) + self.weight(layer.b_1))
        hidden = self.out(self.xp.maximum(hidden, self.constant(0.0, hidden)))
        psi = self.out(self.step(self.matmul(hidden, self.weight(layer.w_2))
                                 + self.weight(layer.b_2)))
        return self.residual(z, psi)
