"""Kernels of the representational-collapse experiments (Barbero et al., NeurIPS 2024, §4, App. B).

- Input families (:func:`family_prefix`): a prompt of random tokens, then "repeated" (the token
  ``a`` again and again), "sampled" (random digits), "separated" (``a a ,`` repeated) or
  "alternating" (``0 a 0 a``). Length ``n`` compares ``v = [x_<n, a]`` with ``v* = [x_<n, a, a]``
  (Theorem B.3), all ``n`` at once by :func:`numerics.transformer.branch_forward`.
- :func:`state_gaps`, :func:`equal_rows`, :func:`fit_rate`: ``||v_n - v*_{n+1}||``, bitwise
  equality, and the log-log decay rate.
- :func:`predicted_collapse`: the lengths at which the exact gap, of the final states or of a
  quantity that determines them, is below half an ulp of the format in every coordinate (the
  unit-roundoff threshold model).
- :func:`gap_bound`: Theorem B.3's proof chain evaluated on a model: Lemma B.1's rate for the new
  token's weight, Lemma B.2's bound on the change of the old weights, the triangle inequality, and
  the MLP's Lipschitz constant, layer by layer.
- :func:`identity_residual`: the one-layer identity ``z*_{n+1} - z_n = alpha*_{n+1,n+1}(u_a - m)``.
- :func:`perturbed_softmax`: the Lemma B.2 experiment of Fig. 9.
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import product

import numpy as np

from numerics.backend import to_numpy
from numerics.formats import Format
from numerics.kernels import softmax
from numerics.policies import Policy
from numerics.transformer import (
    Transformer,
    forward,
    layer_norm,
    random_transformer,
)

FAMILIES: tuple[str, ...] = ("repeated", "sampled", "separated", "alternating")
#: Vocabulary: digits 0-9 (the token a is the digit 1), a separator, and prompt tokens 12..31.
TOKEN, OTHER, SEPARATOR, PROMPT_TOKENS, VOCAB = 1, 0, 10, (12, 32), 32
PROMPT_LENGTH = 8
RESOLUTION = 2.0**-36
#: The over-squashing models: n = 16 positions, width 8, one head, W_V W_O = I (as the paper).
OVERSQUASHING_LENGTH, OVERSQUASHING_WIDTH = 16, 8
#: Fig. 9 of the paper: the first k = 200 logits get U[0, 0.1] noise.
FIG9_K, FIG9_NOISE = 200, 0.1


def family_prefix(family: str, size: int, *, prompt_length: int = PROMPT_LENGTH, seed: int = 0):
    """Return the shared prefix ``x_1..x_{size-1}`` (int64 NumPy) of the named family."""
    rng = np.random.default_rng([seed, 1])
    prompt = rng.integers(*PROMPT_TOKENS, prompt_length)
    body = max(size - 1 - prompt_length, 0)
    index = np.arange(body)
    if family == "repeated":
        tail = np.full(body, TOKEN)
    elif family == "sampled":
        tail = rng.integers(0, 10, body)
    elif family == "separated":
        tail = np.where(index % 3 == 2, SEPARATOR, TOKEN)
    elif family == "alternating":
        tail = np.where(index % 2 == 0, OTHER, TOKEN)
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    return np.concatenate([prompt, tail])[: size - 1].astype(np.int64)


def collapse_model(*, d: int, layers: int, pe: str, seed: int, heads: int = 1) -> Transformer:
    """The model of the collapse checks: seeded random weights over the families' vocabulary."""
    return random_transformer(vocab=VOCAB, d=d, layers=layers, heads=heads, pe=pe, seed=seed)


def state_gaps(short, long, norm: str = "l1") -> np.ndarray:
    """``||short_n - long_n||`` per row in float64 (``norm`` "l1", "l2" or "max")."""
    difference = np.abs(to_numpy(short, np.float64) - to_numpy(long, np.float64))
    if norm == "l1":
        return difference.sum(axis=-1)
    if norm == "l2":
        return np.sqrt((difference**2).sum(axis=-1))
    if norm == "max":
        return difference.max(axis=-1)
    raise ValueError(f"unknown norm {norm!r}; expected one of l1, l2, max")


def distinct_rows(short, long) -> np.ndarray:
    """Whether exact (fp64) states differ by more than the reference itself resolves.

    Rounding in the fp64 reference leaves gaps near ``1e-16`` between states that agree in exact
    arithmetic (``v = [a]`` against ``v* = [a, a]``: the same value with weights summing to 1), so
    a row counts as distinct when its L1 gap exceeds ``2^-36 ||v_n||_1``; row 0 never does.
    """
    a, b = to_numpy(short, np.float64), to_numpy(long, np.float64)
    flags = np.abs(a - b).sum(axis=-1) > RESOLUTION * np.abs(a).sum(axis=-1)
    flags[:1] = False
    return flags


def equal_rows(short, long) -> np.ndarray:
    """Whether each row of ``short`` and ``long`` is bitwise identical (NumPy bool array)."""
    a, b = to_numpy(short), to_numpy(long)
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return np.all(a.view(view) == b.view(view), axis=-1)


def fit_rate(lengths, gaps, *, low: int, high: int, scale=None) -> float:
    """The exponent ``p`` of a least-squares fit ``gap ~ K / s^p`` over ``low <= n <= high``
    (positive gaps only), with ``s = scale`` (default ``s = n``); NaN with fewer than three
    points. Against ``s = 1/alpha*_{n+1,n+1}``, which Lemma B.1 makes ``Theta(n)``, the fit sees
    the asymptotic rate before ``n`` alone does."""
    lengths, gaps = np.asarray(lengths, dtype=np.float64), np.asarray(gaps, dtype=np.float64)
    scale = lengths if scale is None else np.asarray(scale, dtype=np.float64)
    keep = (lengths >= low) & (lengths <= high) & (gaps > 0) & np.isfinite(gaps) & (scale > 0)
    if keep.sum() < 3:
        return math.nan
    slope = np.polyfit(np.log(scale[keep]), np.log(gaps[keep]), 1)[0]
    return float(-slope)


def predicted_collapse(short, long, fmt: Format, *, trace=(), positional: bool = True
                       ) -> np.ndarray:
    """Per row: does the unit-roundoff model predict equal states in ``fmt``?

    ``short``/``long`` are exact (fp64) final states; the stored values of a quantity agree once
    every coordinate's gap is below half the format's spacing there, ``|x_k - x*_k| < ulp(x_k) /
    2``, i.e. below the unit roundoff relative to ``|x_k|`` (to within the binade). Equal stored
    values stay equal downstream, so with an fp64 :func:`numerics.transformer.branch_forward`
    ``trace`` the model also tests the quantities that alone determine the final state: the last
    layer's ``z`` and, when ``positional`` is False (NoPE: a branch's state depends on its own
    earlier state and the shared prefix, not on its position), every layer's attention outputs
    and ``z``. A row is predicted equal when any of these quantities is.
    """
    stages = [(short, long)]
    records = list(trace) if not positional else list(trace)[-1:]
    for record in records:
        stages.append((record["short_z"], record["long_z"]))
        if not positional:
            stages.append((_rows_last(record["short_mix"]), _rows_last(record["long_mix"])))
    flags = None
    for a, b in stages:
        a, b = to_numpy(a, np.float64), to_numpy(b, np.float64)
        spacing = to_numpy(fmt.ulp(a))
        equal = np.all(np.abs(a - b) < spacing / 2, axis=-1)
        flags = equal if flags is None else flags | equal
    return flags


def _rows_last(mix) -> np.ndarray:
    """Per-head attention outputs ``(heads, n, d_head)`` as one row per length ``(n, heads
    d_head)``."""
    mix = to_numpy(mix, np.float64)
    return np.moveaxis(mix, 0, 1).reshape(mix.shape[1], -1)


def first_true(flags, *, start: int = 1) -> int | None:
    """The first length ``n >= start`` (row ``n - 1``) whose flag is set, or None."""
    flags = np.asarray(flags, dtype=bool).copy()
    flags[: start - 1] = False
    return int(np.argmax(flags)) + 1 if flags.any() else None


def gap_bound(model: Transformer, trace) -> np.ndarray:
    """Theorem B.3's proof chain on ``model``: an upper bound on ``||v_n - v*_{n+1}||_2`` per ``n``.

    ``trace`` is an fp64 :func:`numerics.transformer.branch_forward` trace. Entering layer ``l``
    with gap ``eps``, head ``h`` has old-key logits ``x_j`` (query ``a`` at ``n``) and ``x*_j``
    (query at ``n + 1``), ``j <= n``. Lemma B.2's proof bounds the change of the old weights by
    ``T = 2 sum_j e^{max(x_j, x*_j)} |x*_j - x_j| / sum_j e^{x*_j}`` and Lemma B.1 the new token's
    weight by ``A = min(1, e^{delta} / (n + 1))`` (``delta`` the logit spread), so the triangle
    inequality gives ``||z* - z|| <= eps + sum_h (T_h + 2 A_h) U_h`` with ``U_h`` the largest
    projected value norm; the MLP multiplies by ``1 + ||W_1|| ||W_2|| max|g_2| / s_min`` with
    ``s_min`` the smallest normalising scale of ``norm_2`` on the segment between the two states.
    """
    first = trace[0]
    size = first["short"].shape[0]
    eps = np.linalg.norm(to_numpy(first["long"], np.float64)
                         - to_numpy(first["short"], np.float64), axis=-1)
    rows = np.arange(size)
    shared = np.concatenate([np.arange(size - 1)[None, :] < rows[:, None],
                             np.ones((size, 1), dtype=bool)], axis=-1)
    lengths = rows + 1.0
    for layer, record in zip(model.layers, trace, strict=True):
        x = to_numpy(record["short_scores"], np.float64)
        x_star = to_numpy(record["long_scores"], np.float64)
        old_star = x_star[..., :-1]
        top = np.max(np.where(shared, old_star, -np.inf), axis=-1, keepdims=True)
        change = np.where(shared, np.exp(np.maximum(x, old_star) - top)
                          * np.abs(old_star - x), 0.0)
        total = np.where(shared, np.exp(old_star - top), 0.0).sum(axis=-1)
        tv = 2 * change.sum(axis=-1) / total
        everything = np.concatenate([shared, np.ones((size, 1), dtype=bool)], axis=-1)
        spread = (np.max(np.where(everything, x_star, -np.inf), axis=-1)
                  - np.min(np.where(everything, x_star, np.inf), axis=-1))
        with np.errstate(over="ignore"):
            new = np.minimum(1.0, np.exp(spread) / (lengths + 1))
        values = _value_norms(model, layer, record)
        dz = eps + ((tv + 2 * new) * values).sum(axis=0)
        eps = dz * _mlp_factor(model, layer, to_numpy(record["short_z"], np.float64), dz)
    return eps


def identity_residual(record, *, unit: float, compute_unit: float,
                      accumulate_unit: float) -> dict[str, np.ndarray]:
    """The one-layer identity at layer 0, per length ``n``, from a trace in any format.

    With the same logits for the query at ``n`` and at ``n + 1`` on old keys (NoPE, or ALiBi's
    uniform shift), ``mix*_{n+1} - mix_n = alpha*_{n+1,n+1} (u_a - mix_n)`` exactly. Returns the
    largest deviation ``residual`` (over heads and coordinates, computed exactly from the stored
    values) and an a priori rounding ``tolerance``. Each stored weight is off relatively by
    ``rho = u + 3 u_c + gamma`` (exponential, sum and quotient computed with unit ``u_c``, one
    rounding to the format with unit ``u``) and each weighted sum by ``gamma_{n+1} = (n + 1) u_a /
    (1 - (n + 1) u_a)`` in the accumulation's unit, so each branch's output is within
    ``(rho + gamma + u) U`` of exact (``U`` the largest value) and the residual within
    ``(5 rho + 3 gamma + 3 u) U`` to first order; the tolerance adds ``10 u^2 U`` for the
    second-order terms and is infinite (vacuous) once ``(n + 1) u_a >= 1/3``.
    """
    short = to_numpy(record["short_mix"], np.float64)
    long = to_numpy(record["long_mix"], np.float64)
    own = to_numpy(record["short_value"], np.float64)
    weight = to_numpy(record["long_self"], np.float64)[..., None]
    residual = np.abs((long - short) - weight * (own - short)).max(axis=(0, 2))
    prefix = np.abs(to_numpy(record["prefix_value"], np.float64)).max(axis=(0, 2))
    running = np.maximum.accumulate(np.concatenate([[0.0], prefix]))
    scale = np.maximum(running, np.abs(own).max(axis=(0, 2)))
    scale = np.maximum(scale, np.abs(to_numpy(record["long_value"], np.float64)).max(axis=(0, 2)))
    terms = np.arange(2, short.shape[1] + 2) * accumulate_unit
    with np.errstate(divide="ignore"):
        gamma = np.where(terms < 1 / 3, terms / (1 - terms), np.inf)
    rho = unit + 3 * compute_unit + gamma
    tolerance = (5 * rho + 3 * gamma + 3 * unit + 10 * unit**2) * scale
    return {"residual": residual, "tolerance": tolerance, "scale": scale}


def fig9_logits(size: int, *, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 9's logits: ``x ~ U[0, 1]^size`` and ``x*``, which adds ``U[0, noise]`` to the first
    ``k`` entries (float64, seeded); the two draws come from separate streams, so length ``n``
    sees the first ``n`` of each whatever ``size`` is."""
    x = np.random.default_rng([seed, 9]).uniform(0.0, 1.0, size)
    shift = np.zeros(size)
    shift[:k] = np.random.default_rng([seed, 10]).uniform(0.0, noise, k)[:size]
    return x, x + shift


def perturbed_softmax(lengths, *, k: int, noise: float, seed: int, fmt: Format, policy: Policy,
                      xp=np) -> dict[str, np.ndarray]:
    """The Lemma B.2 experiment of Fig. 9, for each ``n`` in ``lengths`` at once.

    ``x ~ U[0, 1]^n`` (the first ``n`` of one seeded draw); ``x*`` adds ``U[0, noise]`` to the
    first ``k`` entries. Returns the total variation ``sum |y - y*|`` (no 1/2) of the two
    softmaxes computed in ``fmt`` under ``policy`` (``observed``), of the exact softmaxes of the
    stored logits (``exact``), Lemma B.2's quantitative bound ``(2 e^{2B} / n) sum |Delta_i|``
    (``bound``), and per row the count of outputs that underflowed to 0 and the computed sums.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    size = int(lengths.max())
    stored = fmt.round(np.stack(fig9_logits(size, k=k, noise=noise, seed=seed)))
    mask = np.arange(size)[None, :] < lengths[:, None]
    logits = xp.asarray(np.ascontiguousarray(np.broadcast_to(stored[:, None, :],
                                                             (2, lengths.size, size))))
    computed = to_numpy(softmax(logits, fmt, policy, mask=xp.asarray(mask)), np.float64)
    exact = to_numpy(softmax(logits, "fp64", "hw", mask=xp.asarray(mask)), np.float64)
    delta = np.where(mask, np.abs(stored[1] - stored[0])[None, :], 0.0)
    big = np.where(mask, np.maximum(np.abs(stored[0]), np.abs(stored[1]))[None, :], 0.0)
    bound = 2 * np.exp(2 * big.max(axis=-1)) / lengths * delta.sum(axis=-1)
    return {
        "observed": np.abs(computed[0] - computed[1]).sum(axis=-1),
        "exact": np.abs(exact[0] - exact[1]).sum(axis=-1),
        "bound": bound,
        "underflow": ((computed == 0) & (exact > 0) & mask).sum(axis=(0, 2)),
        "sums": computed.sum(axis=-1),
    }


def _value_norms(model: Transformer, layer, record) -> np.ndarray:
    """``U_h(n)``: the largest ``||norm_1(v_j) W_V^h W_O^h||_2`` over the keys of length ``n``."""
    heads, d_head = model.heads, model.d_head
    norms = []
    for name in ("prefix", "short", "long"):
        states = to_numpy(record[name], np.float64)
        h = layer_norm(states, layer.gain_1, layer.bias_1, "fp64", "hw", eps=model.norm_eps) \
            if model.norm == "layer" else states
        values = np.einsum("nd,hde->hne", h, layer.w_v)
        out = np.einsum("hne,hef->hnf", values, layer.w_o.reshape(heads, d_head, model.d))
        norms.append(np.linalg.norm(out, axis=-1))
    prefix, short, long = norms
    running = np.maximum.accumulate(np.concatenate([np.zeros((heads, 1)), prefix], axis=1),
                                    axis=1)
    return np.maximum(running, np.maximum(short, long))


def _mlp_factor(model: Transformer, layer, z, dz) -> np.ndarray:
    if not layer.has_mlp:
        return np.ones_like(dz)
    lipschitz = np.linalg.norm(layer.w_1, 2) * np.linalg.norm(layer.w_2, 2)
    if model.norm == "none":
        return 1 + lipschitz
    gain = 1.0 if layer.gain_2 is None else float(np.max(np.abs(layer.gain_2)))
    spread = np.linalg.norm(z - z.mean(axis=-1, keepdims=True), axis=-1) / math.sqrt(model.d)
    low = np.maximum(spread - dz / math.sqrt(model.d), 0.0)
    return 1 + lipschitz * gain / np.sqrt(low**2 + model.norm_eps)


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


def oversquashing_terms(model: Transformer, inputs) -> dict:
    """Theorem 5.1/B.5 on a model, with attention held fixed (assumption (ii)).

    Returns ``jacobian``: the blocks ``dy_n / dv_i^(0)`` for every position ``i`` (``(n, d, d)``,
    forward-mode through the fixed-attention model, in float64), the per-layer ``attention``
    ``(heads, n, n)``, and the constants of the proof: ``beta1``/``beta2`` (per layer, the
    reciprocal of the largest ``norm_1``/``norm_2`` Jacobian norm met), ``beta3`` (of ``norm_3``
    at ``v_n``) and ``sigma_psi`` (per layer, ``||W_1|| ||W_2||``, a Lipschitz constant of the
    ReLU MLP).
    """
    run = forward(model, inputs, "fp64", "hw", trace=True)
    first = to_numpy(run.trace[0]["v"], np.float64)
    n, d = first.shape
    paths = np.zeros((n, n, d, d))
    paths[np.arange(n), np.arange(n)] = np.eye(d)
    beta1, beta2, sigma, attention = [], [], [], []
    for layer, record in zip(model.layers, run.trace, strict=True):
        weights = to_numpy(record["weights"], np.float64)
        attention.append(weights)
        norm_1 = _norm_jacobian(model, record["v"], layer.gain_1)
        beta1.append(1.0 / np.linalg.norm(norm_1, 2, axis=(-2, -1)).max())
        mixing = np.einsum("hde,hef->hdf", layer.w_v,
                           layer.w_o.reshape(model.heads, model.d_head, d))
        step = np.einsum("hjk,hfd,kda->jkfa", weights, mixing, norm_1)
        step[np.arange(n), np.arange(n)] += np.eye(d)
        paths = np.einsum("jkab,kibc->jiac", step, paths)
        if layer.has_mlp:
            z = to_numpy(record["z"], np.float64)
            norm_2 = _norm_jacobian(model, z, layer.gain_2)
            beta2.append(1.0 / np.linalg.norm(norm_2, 2, axis=(-2, -1)).max())
            sigma.append(np.linalg.norm(layer.w_1, 2) * np.linalg.norm(layer.w_2, 2))
            h = to_numpy(layer_norm(z, layer.gain_2, layer.bias_2, "fp64", "hw", eps=model.norm_eps)
                      if model.norm == "layer" else z, np.float64)
            active = (h @ layer.w_1 + layer.b_1 > 0).astype(np.float64)
            psi = np.einsum("fd,jf,ef,jea->jda", layer.w_2, active, layer.w_1, norm_2)
            paths = np.einsum("jab,jibc->jiac", np.eye(d) + psi, paths)
        else:
            beta2.append(1.0)
            sigma.append(0.0)
    norm_3 = _norm_jacobian(model, to_numpy(run.states, np.float64)[-1], model.gain_out)
    return {
        "jacobian": np.einsum("ab,ibc->iac", norm_3, paths[-1]),
        "attention": attention,
        "beta1": np.array(beta1), "beta2": np.array(beta2),
        "beta3": 1.0 / np.linalg.norm(norm_3, 2), "sigma_psi": np.array(sigma),
    }


def oversquashing_model(*, layers: int, pe: str, seed: int, logit_scale: float = 1.0):
    """The model and tokens of the over-squashing check (``W_Q`` times ``logit_scale``, which
    multiplies every attention logit and sharpens the attention)."""
    model = random_transformer(vocab=VOCAB, d=OVERSQUASHING_WIDTH, layers=layers, heads=1, pe=pe,
                               seed=seed, value_projection=False)
    if logit_scale != 1.0:
        sharper = tuple(replace(layer, w_q=layer.w_q * logit_scale) for layer in model.layers)
        model = replace(model, layers=sharper)
    tokens = np.random.default_rng([seed, 5]).integers(0, VOCAB, OVERSQUASHING_LENGTH)
    return model, tokens


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


def oversquashing_bound_values(attention, beta1, beta2, beta3: float, sigma_psi) -> np.ndarray:
    """Theorem 5.1/B.5 with the constants its proof derives, for every position ``i``:
    ``C (Abar^(L-1) ... Abar^(0))_{n,i}`` with ``Abar^(l) = Lambda^(l) / beta1^(l) + I`` and
    ``C = (1 / beta3) prod_l (sigma_psi^(l) / beta2^(l) + 1)``."""
    chain = None
    for matrix, b1 in zip(attention, beta1, strict=True):
        step = np.asarray(matrix, dtype=np.float64) / b1 + np.eye(len(matrix))
        chain = step if chain is None else step @ chain
    constant = np.prod(np.asarray(sigma_psi) / np.asarray(beta2) + 1.0) / beta3
    return constant * chain[-1]


def _norm_jacobian(model: Transformer, x, gain) -> np.ndarray:
    x = to_numpy(x, np.float64)
    if model.norm == "none":
        return np.broadcast_to(np.eye(x.shape[-1]), (*x.shape[:-1], x.shape[-1], x.shape[-1]))
    return layer_norm_jacobian(x, gain, eps=model.norm_eps)
