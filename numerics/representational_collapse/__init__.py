"""Kernels of the representational-collapse experiments (Barbero et al., NeurIPS 2024, §4, App. B).

- Input families (:func:`family_prefix`): a prompt of random tokens, then "repeated" (the token
  ``a`` again and again), "sampled" (random digits), "separated" (``a a ,`` repeated) or
  "alternating" (``0 a 0 a``). Length ``n`` compares ``v = [x_<n, a]`` with ``v* = [x_<n, a, a]``
  (Theorem B.3), all ``n`` at once by :func:`.branches.branch_forward`.
- :func:`state_gaps`, :func:`equal_rows`, :func:`collapse_statistics`: ``||v_n - v*_{n+1}||``,
  bitwise equality per length, and what a cell's lengths show (share equal, first equal, the
  stable length from which every longer one is equal).
- The proof's quantities on a model, per length (each from a trace of ``branch_forward``):
  :func:`lemma_b1_terms` (the new token's weight, the logits' spread and bound),
  :func:`one_layer_terms` (the layer-0 midpoint gap, the value and logit bounds of the one-layer
  bound), :func:`identity_residual` (``z*_{n+1} - z_n = alpha*_{n+1,n+1} W_O (u_a - m)``) and
  :func:`gap_bound` (Theorem B.3's chain through every layer).
- :func:`decay_constant`: the constant ``K`` of ``gap = K / s^p`` with the exponent ``p`` fixed,
  against its exact value from the prompt (repeated tokens) or the identity (varied tokens).
- :func:`extremal_collapse_model`: one layer on which Lemma B.1 and the one-layer bound are
  attained (the softmax pairs, Lemma B.2's extremal logits among them, are in
  :mod:`.softmax_pairs`; the evidence of in-format sums in :mod:`.kernel_evidence`).
- :func:`predict_collapse`, :func:`unit_roundoff_model`: per-length predictions of bitwise equal
  states, from each branch's forward error bound (:mod:`.branch_error`) or from the exact
  gap alone.
"""

from __future__ import annotations

import math

import numpy as np

from numerics.backend import to_numpy
from numerics.error_bounds import gamma, softmax_error, units, weighted_sum_error
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.models.layers import layer_norm
from numerics.models.transformer import Layer, Transformer, random_transformer
from numerics.policies import Policy, get_policy
from numerics.representational_collapse.kernel_evidence import valid_logits

__all__ = ["EXTREMAL_LOGIT", "EXTREMAL_SHIFT", "FAMILIES", "FIG9_K", "FIG9_NOISE", "OTHER",
    "PROMPT_LENGTH", "PROMPT_TOKENS", "RESOLUTION", "SEPARATOR", "TOKEN", "VOCAB",
    "collapse_model", "collapse_statistics", "decay_constant", "distinct_rows", "equal_rows",
    "extremal_collapse_model", "extremal_prefix", "family_prefix", "first_true", "fit_rate",
    "gap_bound", "identity_residual", "lemma_b1_terms", "one_layer_terms", "predict_collapse",
    "prediction_statistics", "state_gaps", "unit_roundoff_model"]


FAMILIES: tuple[str, ...] = ("repeated", "sampled", "separated", "alternating")
#: Vocabulary: digits 0-9 (the token a is the digit 1), a separator, and prompt tokens 12..31.
TOKEN, OTHER, SEPARATOR, PROMPT_TOKENS, VOCAB = 1, 0, 10, (12, 32), 32
PROMPT_LENGTH = 8
RESOLUTION = 2.0**-36
#: Fig. 9 of the paper: the first k = 200 logits get U[0, 0.1] noise.
FIG9_K, FIG9_NOISE = 200, 0.1
#: The extremal instances: logits of magnitude B = 0.1 (small, so that e^{2B}/(n + 1) is nearly
#: attained, and not 0, so that a wrong power of e^B still shows) and Lemma B.2's change 10^-3.
EXTREMAL_LOGIT, EXTREMAL_SHIFT = 0.1, 1e-3


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
        raise InvalidArgument(f"unknown family {family!r}; expected one of "
                              f"{', '.join(FAMILIES)}")
    return np.concatenate([prompt, tail])[: size - 1].astype(np.int64)


def collapse_model(*, d: int, layers: int, pe: str, seed: int, heads: int = 1) -> Transformer:
    """The model of the collapse checks: seeded random weights over the families' vocabulary."""
    return random_transformer(vocab=VOCAB, d=d, layers=layers, heads=heads, pe=pe, seed=seed)


def extremal_collapse_model(logit: float = EXTREMAL_LOGIT) -> Transformer:
    """One layer on which Lemma B.1 and the one-layer bound are attained as ``n`` grows.

    Width 1, no norm, no MLP, ``W_V = W_O = 1``, ``W_Q = W_K = sqrt(B)``; token ``a`` embeds as
    ``+1`` and every other token as ``-1``. With the prefix of :func:`extremal_prefix` the query
    ``a`` has logit ``+B`` on ``a`` and ``-B`` on the rest, so ``alpha*_{n+1,n+1} = e^{2B}/(n - 1 +
    2 e^{2B})`` and ``u_a - m = 2 (n - 1)/(n - 1 + e^{2B})``: the bounds ``e^{2B}/(n + 1)`` and
    ``2 V e^{2B}/(n + 1)`` (``V = 1``) are met up to ``O(1/n)``.
    """
    root = math.sqrt(logit)
    layer = Layer(np.full((1, 1, 1), root), np.full((1, 1, 1), root), np.ones((1, 1, 1)),
                  np.ones((1, 1)))
    embedding = np.where(np.arange(VOCAB) == TOKEN, 1.0, -1.0)[:, None]
    return Transformer(embedding, (layer,), pe="nope", norm="none")


def extremal_prefix(size: int) -> np.ndarray:
    """The extremal instance's shared prefix: ``size - 1`` copies of a token other than ``a``."""
    return np.full(size - 1, OTHER, dtype=np.int64)


def state_gaps(short, long, norm: str = "l1") -> np.ndarray:
    """``||short_n - long_n||`` per row in float64 (``norm`` "l1", "l2" or "max")."""
    difference = np.abs(to_numpy(short, np.float64) - to_numpy(long, np.float64))
    if norm == "l1":
        return difference.sum(axis=-1)
    if norm == "l2":
        return np.sqrt((difference**2).sum(axis=-1))
    if norm == "max":
        return difference.max(axis=-1)
    raise InvalidArgument(f"unknown norm {norm!r}; expected one of l1, l2, max")


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


def collapse_statistics(equal, distinct) -> dict:
    """What one cell's lengths show, over the lengths ``n`` whose exact states differ.

    ``lengths``: how many; ``equal``: how many have bitwise equal states in the format, and
    ``share`` that fraction; ``first``: the first such ``n``; ``stable``: the first ``n`` from
    which every longer length (up to the last) is equal, or None when the last one is not.
    """
    equal, distinct = np.asarray(equal, dtype=bool), np.asarray(distinct, dtype=bool)
    considered = np.flatnonzero(distinct)
    hits = np.flatnonzero(equal & distinct)
    misses = np.flatnonzero(~equal & distinct)
    stable = None
    if considered.size and equal[considered[-1]]:
        later = considered[considered > misses[-1]] if misses.size else considered
        stable = int(later[0]) + 1
    return {"lengths": int(considered.size), "equal": int(hits.size),
            "share": float(hits.size / considered.size) if considered.size else 0.0,
            "first": int(hits[0]) + 1 if hits.size else None, "stable": stable}


def prediction_statistics(predicted, actual, considered) -> dict:
    """Precision and recall of per-length ``predicted`` flags against ``actual`` ones over the
    ``considered`` lengths (None where undefined: nothing predicted, or nothing to find)."""
    predicted = np.asarray(predicted, dtype=bool) & considered
    actual = np.asarray(actual, dtype=bool) & considered
    hits = int(np.count_nonzero(predicted & actual))
    said, there = int(np.count_nonzero(predicted)), int(np.count_nonzero(actual))
    return {"predicted": said, "actual": there, "correct": hits,
            "precision": hits / said if said else None, "recall": hits / there if there else None}


def predict_collapse(short, long, errors_short, errors_long, fmt: Format | str) -> np.ndarray:
    """Per length, what the exact final states and a forward error bound of each branch imply
    for the states computed in ``fmt``: ``1`` equal, ``-1`` distinct, ``0`` undetermined.

    ``short``/``long`` are the exact states ``(N, d)``; ``errors_*`` bound ``||v_hat - v||_inf``
    of each computed state (:func:`.branch_error.branch_errors`; ``inf`` when vacuous).
    Distinct: some coordinate's exact gap exceeds both errors together, so the computed values
    differ. Equal: in every coordinate the hull of both intervals ``[v - e, v + e]`` rounds to
    one value at both ends, so it holds a single number of the format, which both computed values
    must be. An error bound of at least half an ulp rules the second out, so equality is never
    certain from per-branch bounds alone.
    """
    fmt = get_format(fmt)
    a, b = to_numpy(short, np.float64), to_numpy(long, np.float64)
    e_a = np.asarray(errors_short, dtype=np.float64)[:, None]
    e_b = np.asarray(errors_long, dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        distinct = np.any(np.abs(a - b) > e_a + e_b, axis=-1)
        low = np.minimum(a - e_a, b - e_b)
        high = np.maximum(a + e_a, b + e_b)
        same = np.asarray(fmt.round(low)) == np.asarray(fmt.round(high))
    equal = np.all(same & np.isfinite(low) & np.isfinite(high), axis=-1)
    return np.where(distinct, -1, np.where(equal, 1, 0)).astype(np.int8)


def unit_roundoff_model(short, long, fmt: Format | str, *, trace=(),
                        positional: bool = True) -> np.ndarray:
    """Per length: the unit-roundoff model, which ignores the computation's own error: equal when
    some quantity that determines the final state has an exact gap below half the format's
    spacing in every coordinate (the final state; the last layer's ``z``; with ``positional``
    False (NoPE) every layer's attention outputs and ``z``)."""
    fmt = get_format(fmt)
    stages = [(short, long)]
    records = list(trace) if not positional else list(trace)[-1:]
    for record in records:
        stages.append((record["short_z"], record["long_z"]))
        if not positional:
            stages.append(tuple(np.moveaxis(to_numpy(record[name], np.float64), 0, 1)
                                .reshape(to_numpy(record[name]).shape[1], -1)
                                for name in ("short_mix", "long_mix")))
    flags = None
    for a, b in stages:
        a, b = to_numpy(a, np.float64), to_numpy(b, np.float64)
        equal = np.all(np.abs(a - b) < to_numpy(fmt.ulp(a)) / 2, axis=-1)
        flags = equal if flags is None else flags | equal
    return flags


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


def first_true(flags, *, start: int = 1) -> int | None:
    """The first length ``n >= start`` (row ``n - 1``) whose flag is set, or None."""
    flags = np.asarray(flags, dtype=bool).copy()
    flags[: start - 1] = False
    return int(np.argmax(flags)) + 1 if flags.any() else None


def lemma_b1_terms(record) -> dict[str, np.ndarray]:
    """Lemma B.1 on the long branch, per head and length (``(heads, N)``): ``weight``, the new
    token's attention weight ``alpha*_{n+1,n+1}``; ``spread``, its logits' ``max - min``
    (``delta``); ``bound``, their largest magnitude (``B``)."""
    logits = valid_logits(record, "long")
    return {"weight": to_numpy(record["long_self"], np.float64),
            "spread": np.nanmax(logits, axis=-1) - np.nanmin(logits, axis=-1),
            "bound": np.nanmax(np.abs(logits), axis=-1)}


def one_layer_terms(model: Transformer, record, fmt: Format | str = "fp64",
                    policy: Policy | str = "hw") -> dict[str, np.ndarray]:
    """The one-layer identity regime (NoPE, or ALiBi) at layer 0, per length, from a trace of
    ``branch_forward`` in ``fmt`` under ``policy`` (its stored logits, values and ``W_O``).

    ``gap``: ``||z*_{n+1} - z_n||_2`` of the computed midpoints; ``exact``: the same for the exact
    attention of the stored logits and values; per head (``(heads, N)``): ``values`` ``V``, the
    largest ``||W_O^h u_j^h||_2`` over the keys of ``v*``, and ``bound`` ``B``, the largest stored
    logit magnitude of both branches; ``tolerance``: an a priori bound on ``|gap - exact|``. Each
    midpoint ``z = v + W_O mix`` shares the stored ``v`` and is off by its attention output's
    error (:func:`numerics.error_bounds.weighted_sum_error`, sums within one ulp under
    ``strict``) through ``|W_O|``, the product's accumulation and two roundings, so ``|gap -
    exact| <= sqrt(d) (E_short + E_long)`` with ``E`` the largest coordinate error.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    gap = state_gaps(record["short_z"], record["long_z"], "l2")
    heads, d_head = model.heads, model.d_head
    w_o = np.asarray(fmt.round(model.layers[0].w_o), dtype=np.float64).reshape(heads, d_head,
                                                                            model.d)

    def norms(values):
        values = to_numpy(values, np.float64)
        return np.linalg.norm(np.einsum("hne,hef->hnf", values, w_o), axis=-1)

    prefix = norms(record["prefix_value"])
    running = np.maximum.accumulate(np.concatenate([np.zeros((heads, 1)), prefix], axis=1),
                                    axis=1)
    values = np.maximum(running, np.maximum(norms(record["short_value"]),
                                            norms(record["long_value"])))
    short, long = valid_logits(record, "short"), valid_logits(record, "long")
    bound = np.maximum(np.nanmax(np.abs(short), axis=-1), np.nanmax(np.abs(long), axis=-1))
    keys = to_numpy(record["prefix_value"], np.float64)
    mixes, errors = [], []
    for logits, tail in ((short, ("short_value",)), (long, ("short_value", "long_value"))):
        weights = np.nan_to_num(np.exp(logits - np.nanmax(logits, axis=-1, keepdims=True)))
        weights /= weights.sum(axis=-1, keepdims=True)
        size = keys.shape[1]
        mix = np.einsum("hnk,hke->hne", weights[..., :size], keys)
        for offset, name in enumerate(tail):
            mix += weights[..., size + offset, None] * to_numpy(record[name], np.float64)
        mixes.append(mix)
        count = np.sum(~np.isnan(logits), axis=-1)
        spread = np.nanmax(logits, axis=-1) - np.nanmin(logits, axis=-1)
        scale = np.abs(to_numpy(record["prefix_value"], np.float64)).max(axis=-1)
        scale = np.maximum(np.maximum.accumulate(np.concatenate(
            [np.zeros((heads, 1)), scale], axis=1), axis=1),
            np.abs(to_numpy(record[tail[-1]], np.float64)).max(axis=-1))
        rho, floor = softmax_error(spread, count, fmt, policy, accumulation="one-ulp")
        error = weighted_sum_error(rho, floor, count, scale, np.abs(mix).max(axis=-1), fmt,
                                   policy, accumulation="one-ulp")
        merged = np.einsum("hne,hef->nf", mix, w_o)
        unit = units(fmt, policy)
        coordinate = (np.abs(w_o).sum(axis=1).max(axis=-1)[:, None] * error).sum(axis=0) \
            + gamma(heads * d_head, unit.accumulate) * np.einsum(
                "hne,hef->nf", np.abs(mix), np.abs(w_o)).max(axis=-1) \
            + (unit.output + unit.compute) * np.abs(merged).max(axis=-1) \
            + (unit.output + unit.compute) * np.abs(to_numpy(
                record[f"{'short' if len(tail) == 1 else 'long'}_z"], np.float64)).max(axis=-1)
        errors.append(coordinate)
    exact = np.linalg.norm(np.einsum("hne,hef->nf", mixes[1] - mixes[0], w_o), axis=-1)
    with np.errstate(invalid="ignore"):
        tolerance = math.sqrt(model.d) * (errors[0] + errors[1])
    return {"gap": gap, "exact": exact, "values": values, "bound": bound,
            "tolerance": np.where(np.isfinite(tolerance), tolerance, np.inf)}


def gap_bound(model: Transformer, trace, *, rate, tv_factor: float,
              value_factor: float) -> np.ndarray:
    """Theorem B.3's proof chain on ``model``: an upper bound on ``||v_n - v*_{n+1}||_2`` per ``n``.

    ``trace`` is an fp64 :func:`.branches.branch_forward` trace. Entering layer ``l``
    with gap ``eps``, head ``h`` has old-key logits ``x_j`` (query ``a`` at ``n``) and ``x*_j``
    (query at ``n + 1``), ``j <= n``. Lemma B.2's proof bounds the change of the old weights by
    ``T = c_2 sum_j e^{max(x_j, x*_j)} |x*_j - x_j| / sum_j e^{x*_j}`` (``c_2 = tv_factor``, the
    paper's 2) and Lemma B.1 the new token's weight by ``A = min(1, rate(n, delta))`` (``delta``
    the logit spread), so ``||z* - z|| <= eps + sum_h (T_h + c_3 A_h) U_h`` (``c_3 =
    value_factor``: ``||u_a - m|| <= 2V``) with ``U_h`` the largest projected value norm; the MLP
    multiplies by ``1 + ||W_1|| ||W_2|| max|g_2| / s_min`` with ``s_min`` the smallest normalising
    scale of ``norm_2`` on the segment between the two states.
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
        tv = tv_factor * change.sum(axis=-1) / total
        everything = np.concatenate([shared, np.ones((size, 1), dtype=bool)], axis=-1)
        spread = (np.max(np.where(everything, x_star, -np.inf), axis=-1)
                  - np.min(np.where(everything, x_star, np.inf), axis=-1))
        with np.errstate(over="ignore"):
            new = np.minimum(1.0, rate(lengths, spread))
        values = _value_norms(model, layer, record)
        dz = eps + ((tv + value_factor * new) * values).sum(axis=0)
        eps = dz * _mlp_factor(model, layer, to_numpy(record["short_z"], np.float64), dz)
    return eps


def identity_residual(record, fmt: Format | str, policy: Policy | str) -> dict[str, np.ndarray]:
    """The one-layer identity at layer 0, per length ``n``, from a trace in any format.

    When the query at ``n + 1`` sees the old keys' logits shifted by one constant (NoPE: not at
    all; ALiBi: by ``-m_h``), ``mix*_{n+1} - mix_n = alpha*_{n+1,n+1} (u_a - mix_n)`` exactly
    (``mix`` the attention output before ``W_O``). Returns the largest deviation ``residual``
    (over heads and coordinates, computed exactly from the stored values) and an a priori
    rounding ``tolerance``: each branch's output is within :func:`numerics.error_bounds.
    weighted_sum_error` of the exact output of its stored logits and values (weights by
    :func:`numerics.error_bounds.softmax_error`, sums within one ulp under ``strict``), the stored
    weight ``alpha*`` within the softmax bound, and a stored shift that is not one constant moves
    the old weights by ``2 max|shift - c|`` (relative, first order); so the residual is within
    ``(2 + alpha*) e + (rho alpha* + abs) ||u_a - mix|| + 2 dev scale``. ``scale`` is the largest
    stored value magnitude.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    short = to_numpy(record["short_mix"], np.float64)
    long = to_numpy(record["long_mix"], np.float64)
    own = to_numpy(record["short_value"], np.float64)
    weight = to_numpy(record["long_self"], np.float64)[..., None]
    residual = np.abs((long - short) - weight * (own - short)).max(axis=(0, 2))
    prefix = np.abs(to_numpy(record["prefix_value"], np.float64)).max(axis=(0, 2))
    running = np.maximum.accumulate(np.concatenate([[0.0], prefix]))
    scale = np.maximum(running, np.abs(own).max(axis=(0, 2)))
    scale = np.maximum(scale, np.abs(to_numpy(record["long_value"], np.float64)).max(axis=(0, 2)))
    x, x_star = valid_logits(record, "short"), valid_logits(record, "long")
    shift = x_star[..., :-1] - x
    dev = np.nan_to_num((np.nanmax(shift, axis=-1) - np.nanmin(shift, axis=-1)) / 2).max(axis=0)
    spread = np.maximum(np.nanmax(x_star, axis=-1) - np.nanmin(x_star, axis=-1),
                        np.nanmax(x, axis=-1) - np.nanmin(x, axis=-1)).max(axis=0)
    count = np.arange(2, short.shape[1] + 2, dtype=np.float64)
    rho, floor = softmax_error(spread, count, fmt, policy, accumulation="one-ulp")
    error = weighted_sum_error(rho, floor, count, scale, scale, fmt, policy,
                               accumulation="one-ulp")
    alpha = weight.max(axis=(0, 2))
    with np.errstate(invalid="ignore", over="ignore"):
        tolerance = (2 + alpha) * error + (rho * alpha + floor) * 2 * scale \
            + 2 * np.exp(2 * dev) * dev * 2 * scale
    return {"residual": residual, "tolerance": np.where(np.isfinite(tolerance), tolerance,
                                                          np.inf), "scale": scale}


def decay_constant(model: Transformer, record, family: str, *, order: float, low: int,
                   high: int, prompt_length: int = PROMPT_LENGTH) -> dict[str, float]:
    """The constant ``K`` of the layer-0 midpoint gap ``||z*_{n+1} - z_n|| = K / s_n^p`` with the
    exponent ``p = order`` fixed (one head, no positional encoding), fitted as the geometric mean
    of ``gap s^p`` over ``low <= n <= high`` (``observed``) against its exact value (``exact``).

    Repeated tokens (``p`` the paper's 2): with ``S = sum_prompt e^{x_i - x_a}``, ``m_P`` the
    prompt's attention output and ``s_n = (alpha*_{n+1,n+1} alpha_{n,n})^{-1/2}``, the identity
    gives ``u_a - m_n = S alpha_{n,n} (u_a - m_P)``, so ``K = S ||W_O (u_a - m_P)||`` exactly at
    every ``n`` past the prompt. Varied tokens (``p = 1``): ``s_n = 1/alpha*_{n+1,n+1}`` and ``K_n
    = ||W_O (u_a - m_n)||`` (no limit in closed form), whose geometric mean is the exact value.
    A wrong exponent makes ``gap s^p`` drift by ``s^{+-1}`` over the window. ``tolerance`` bounds
    the relative rounding error of ``observed`` in float64: the gap is a difference of nearly
    equal midpoints, each off by at most ``8 (n + 1) u (||z|| + ||W_O|| max||u_j||)`` (the
    attention sum's ``gamma_{n+1}`` with a margin), and ``s^p`` by ``8 p (n + 1) u (1 + delta)``
    (the weights', ``delta`` the logits' spread).
    """
    w_o = model.layers[0].w_o.reshape(model.heads, model.d_head, model.d)[0]
    gap = state_gaps(record["short_z"], record["long_z"], "l2")
    star = to_numpy(record["long_self"], np.float64)[0]
    own = to_numpy(record["short_self"], np.float64)[0]
    value = to_numpy(record["short_value"], np.float64)[0]
    lengths = np.arange(1, gap.size + 1)
    window = (lengths >= max(low, prompt_length + 2)) & (lengths <= high)
    if family == "repeated":
        scale = 1 / np.sqrt(star * own)
        logits = to_numpy(record["short_scores"], np.float64)[0, -1]
        prompt = logits[:prompt_length] - logits[-1]
        weights = np.exp(prompt)
        values = to_numpy(record["prefix_value"], np.float64)[0, :prompt_length]
        mean = weights @ values / weights.sum()
        exact = np.full(gap.size, weights.sum() * np.linalg.norm((value[-1] - mean) @ w_o))
    else:
        scale = 1 / star
        mix = to_numpy(record["short_mix"], np.float64)[0]
        exact = np.linalg.norm((value - mix) @ w_o, axis=-1)
    with np.errstate(divide="ignore"):
        observed = np.exp(np.mean(np.log(gap[window] * scale[window] ** order)))
        truth = np.exp(np.mean(np.log(exact[window])))
    unit = 8 * (lengths + 1) * 2.0**-53
    magnitude = (np.linalg.norm(to_numpy(record["short_z"], np.float64), axis=-1)
                 + np.linalg.norm(to_numpy(record["long_z"], np.float64), axis=-1)
                 + 2 * np.linalg.norm(w_o, 2) * np.abs(value).max())
    logits = valid_logits(record, "long")[0]
    spread = np.nanmax(logits, axis=-1) - np.nanmin(logits, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = unit * magnitude / gap + abs(order) * unit * (1 + spread)
    return {"observed": float(observed), "exact": float(truth), "points": int(window.sum()),
            "tolerance": float(np.max(relative[window]))}


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
