"""Over-squashing: the Jacobian ``dy_n / dv_i^(0)`` of a decoder-only Transformer with attention
held fixed, layer by layer, and the terms of its bound (Barbero et al., NeurIPS 2024, Theorem
5.1/B.5, Proposition B.8).

The proof of Theorem B.5 bounds each layer's block ``||dv_j^(l+1) / dv_i^(l)|| <= (sigma_psi /
beta2 + 1)(alpha_ji / beta1 + delta_ji)`` and chains the blocks over causal paths, with a final
``1 / beta3`` from ``norm_3``. :func:`oversquashing_terms` returns both the blocks and the whole
Jacobian, computed forward-mode in float64, with the constants the proof uses (``beta`` the
reciprocal of the largest norm Jacobian met, ``sigma_psi = ||W_1|| ||W_2||``).
:func:`extremal_oversquashing_model` is an instance on which every block and the whole Jacobian
attain their bounds: a 1% tighter bound is false there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import product

import numpy as np

from numerics.backend import to_numpy
from numerics.models.layers import layer_norm, layer_norm_jacobian
from numerics.models.transformer import Layer, Transformer, forward, random_transformer

__all__ = ["EXTREMAL_EMBEDDING", "EXTREMAL_GAINS", "EXTREMAL_MLP", "OVERSQUASHING_LENGTH",
    "OVERSQUASHING_VOCAB", "OVERSQUASHING_WIDTH", "extremal_oversquashing_model",
    "finite_difference_jacobian", "layer_block_terms", "oversquashing_bound_values",
    "oversquashing_model", "oversquashing_terms", "total_constant"]


#: The over-squashing models: n = 16 positions, width 8, one head, W_V W_O = I (as the paper).
OVERSQUASHING_LENGTH, OVERSQUASHING_WIDTH, OVERSQUASHING_VOCAB = 16, 8, 32
#: The extremal instance: width 3, every token the same, states in span{(1, -1, 0), (1, 1, 1)}.
EXTREMAL_EMBEDDING = (1.8, -1.2, 0.3)
EXTREMAL_GAINS = (0.8, 1.3, 0.7)  # norm_1, norm_2, norm_3
EXTREMAL_MLP = (0.9, 0.6, 5.0)  # W_1 = 0.9 I, W_2 = 0.6 I, b_1 = 5 (every ReLU active)


def oversquashing_terms(model: Transformer, inputs) -> dict:
    """Theorem 5.1/B.5 on a model, with attention held fixed (assumption (ii)).

    Returns ``jacobian``: the blocks ``dy_n / dv_i^(0)`` for every position ``i`` (``(n, d, d)``,
    forward-mode through the fixed-attention model, in float64); ``blocks``: per layer the blocks
    ``dv_j^(l+1) / dv_i^(l)`` (``(n, n, d, d)``, zero for ``j < i``); the per-layer ``attention``
    ``(heads, n, n)``; and the constants of the proof: ``beta1``/``beta2`` (per layer, the
    reciprocal of the largest ``norm_1``/``norm_2`` Jacobian norm met), ``beta3`` (of ``norm_3``
    at ``v_n``) and ``sigma_psi`` (per layer, ``||W_1|| ||W_2||``, a Lipschitz constant of the
    ReLU MLP).
    """
    run = forward(model, inputs, "fp64", "hw", trace=True)
    first = to_numpy(run.trace[0]["v"], np.float64)
    n, d = first.shape
    paths = np.zeros((n, n, d, d))
    paths[np.arange(n), np.arange(n)] = np.eye(d)
    beta1, beta2, sigma, attention, blocks = [], [], [], [], []
    for layer, record in zip(model.layers, run.trace, strict=True):
        weights = to_numpy(record["weights"], np.float64)
        attention.append(weights)
        norm_1 = _norm_jacobian(model, record["v"], layer.gain_1)
        beta1.append(1.0 / np.linalg.norm(norm_1, 2, axis=(-2, -1)).max())
        mixing = np.einsum("hde,hef->hdf", layer.w_v,
                           layer.w_o.reshape(model.heads, model.d_head, d))
        step = np.einsum("hjk,hfd,kda->jkfa", weights, mixing, norm_1)
        step[np.arange(n), np.arange(n)] += np.eye(d)
        if layer.has_mlp:
            z = to_numpy(record["z"], np.float64)
            norm_2 = _norm_jacobian(model, z, layer.gain_2)
            beta2.append(1.0 / np.linalg.norm(norm_2, 2, axis=(-2, -1)).max())
            sigma.append(np.linalg.norm(layer.w_1, 2) * np.linalg.norm(layer.w_2, 2))
            h = to_numpy(layer_norm(z, layer.gain_2, layer.bias_2, "fp64", "hw", eps=model.norm_eps)
                         if model.norm == "layer" else z, np.float64)
            active = (h @ layer.w_1 + layer.b_1 > 0).astype(np.float64)
            psi = np.einsum("fd,jf,ef,jea->jda", layer.w_2, active, layer.w_1, norm_2)
            step = np.einsum("jab,jibc->jiac", np.eye(d) + psi, step)
        else:
            beta2.append(1.0)
            sigma.append(0.0)
        blocks.append(step)
        paths = np.einsum("jkab,kibc->jiac", step, paths)
    norm_3 = _norm_jacobian(model, to_numpy(run.states, np.float64)[-1], model.gain_out)
    return {
        "jacobian": np.einsum("ab,ibc->iac", norm_3, paths[-1]),
        "blocks": blocks,
        "attention": attention,
        "beta1": np.array(beta1), "beta2": np.array(beta2),
        "beta3": 1.0 / np.linalg.norm(norm_3, 2), "sigma_psi": np.array(sigma),
    }


def oversquashing_bound_values(attention, beta1, beta2, beta3: float, sigma_psi, *,
                               abar: Callable, constant: Callable) -> np.ndarray:
    """Theorem 5.1/B.5 for every position ``i``: ``C (Abar^(L-1) ... Abar^(0))_{n,i}``.

    ``abar(alpha, beta1, delta)`` is one entry of ``Abar`` (the proof: ``alpha/beta1 + delta``)
    and ``constant(layers, sigma_psi, beta2, beta3)`` the proof's ``C`` (``(1/beta3) prod_l
    (sigma_psi/beta2 + 1)`` for equal layers); a model's layers differ, so ``C`` is the product
    of ``constant(1, sigma^(l), beta2^(l), 1)`` over the layers times ``constant(0, 0, 1,
    beta3)``.
    """
    chain = None
    for matrix, b1 in zip(attention, beta1, strict=True):
        matrix = np.asarray(matrix, dtype=np.float64)
        step = abar(matrix, b1, np.eye(len(matrix)))
        chain = step if chain is None else step @ chain
    return total_constant(sigma_psi, beta2, beta3, constant) * chain[-1]


def total_constant(sigma_psi, beta2, beta3: float, constant: Callable) -> float:
    """The proof's ``C`` for layers with their own ``sigma_psi`` and ``beta2`` (see
    :func:`oversquashing_bound_values`)."""
    value = float(constant(0, 0.0, 1.0, beta3))
    for s, b2 in zip(np.asarray(sigma_psi, dtype=np.float64),
                     np.asarray(beta2, dtype=np.float64), strict=True):
        value *= float(constant(1, s, b2, 1.0))
    return value


def layer_block_terms(attention, beta1: float, beta2: float, sigma_psi: float, *,
                      abar: Callable, constant: Callable) -> np.ndarray:
    """The proof's bound on every block ``||dv_j^(l+1) / dv_i^(l)||`` of one layer (``(n, n)``):
    ``(sigma_psi/beta2 + 1)(alpha_ji/beta1 + delta_ji)`` (the largest over heads of ``alpha``)."""
    weights = np.max(np.asarray(attention, dtype=np.float64), axis=0)
    return float(constant(1, sigma_psi, beta2, 1.0)) * abar(weights, beta1,
                                                             np.eye(len(weights)))


def oversquashing_model(*, layers: int, pe: str, seed: int, logit_scale: float = 1.0):
    """The model and tokens of the over-squashing check (``W_Q`` times ``logit_scale``, which
    multiplies every attention logit and sharpens the attention)."""
    model = random_transformer(vocab=OVERSQUASHING_VOCAB, d=OVERSQUASHING_WIDTH, layers=layers,
                               heads=1, pe=pe, seed=seed, value_projection=False)
    if logit_scale != 1.0:
        sharper = tuple(replace(layer, w_q=layer.w_q * logit_scale) for layer in model.layers)
        model = replace(model, layers=sharper)
    tokens = np.random.default_rng([seed, 5]).integers(0, OVERSQUASHING_VOCAB,
                                                       OVERSQUASHING_LENGTH)
    return model, tokens


def extremal_oversquashing_model(*, layers: int):
    """A model and tokens on which Theorem B.5's bound is attained at every position.

    Width 3, one head, ``W_V W_O = I``, every token the same embedding ``c``: all states stay in
    ``span{c - mean(c), 1}``, attention is uniform, and along ``e = (1, 1, -2)/sqrt(6)``
    (orthogonal to both) each norm acts as ``(g / s) I``, exactly its largest Jacobian norm
    ``1/beta``, and the MLP ``W_2 relu(W_1 x + b_1)`` with ``W_1 = a I``, ``W_2 = b I`` and every
    ReLU active as ``a b = sigma_psi``; so every block is ``(sigma_psi/beta2 + 1)(alpha/beta1 +
    delta)`` times the identity on ``e``, and ``||dy_n / dv_i|| = C (Abar ... Abar)_{n,i}``.
    """
    d = len(EXTREMAL_EMBEDDING)
    g1, g2, g3 = EXTREMAL_GAINS
    a, b, shift = EXTREMAL_MLP
    eye = np.eye(d)
    built = tuple(Layer(np.zeros((1, d, d)), np.zeros((1, d, d)), eye[None], eye,
                        w_1=a * eye, b_1=np.full(d, shift), w_2=b * eye, b_2=np.zeros(d),
                        gain_1=np.full(d, g1), gain_2=np.full(d, g2))
                  for _ in range(layers))
    model = Transformer(np.array([EXTREMAL_EMBEDDING]), built, pe="nope", norm="layer",
                        gain_out=np.full(d, g3))
    return model, np.zeros(OVERSQUASHING_LENGTH, dtype=np.int64)


def finite_difference_jacobian(model: Transformer, tokens, *, step: float = 1e-5):
    """``dy_n / dv_i^(0)`` for every ``i`` by central differences (attention recomputed), and an
    error estimate: the largest change between steps ``h`` and ``h/2`` (Richardson)."""
    inputs = np.asarray(model.embedding)[np.asarray(tokens)]
    size, width = inputs.shape

    def central(h):
        jacobian = np.zeros((size, width, width))
        for i, c in product(range(size), range(width)):
            shift = np.zeros_like(inputs)
            shift[i, c] = h
            plus = forward(model, inputs + shift).outputs[-1]
            minus = forward(model, inputs - shift).outputs[-1]
            jacobian[i, :, c] = (plus - minus) / (2 * h)
        return jacobian

    coarse, fine = central(step), central(step / 2)
    return fine, float(np.abs(fine - coarse).max())


def _norm_jacobian(model: Transformer, x, gain) -> np.ndarray:
    x = to_numpy(x, np.float64)
    if model.norm == "none":
        return np.broadcast_to(np.eye(x.shape[-1]), (*x.shape[:-1], x.shape[-1], x.shape[-1]))
    return layer_norm_jacobian(x, gain, eps=model.norm_eps)
