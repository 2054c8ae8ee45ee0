"""A priori forward error bounds of :func:`.branches.branch_forward`'s final states.

The cached pass has ``3N - 1`` rows: the prefix ``x_1..x_{N-1}``, the token ``a`` at each length
``n`` and the token ``b`` after it; the prefix row ``p`` attends to the prefix up to ``p``, ``a`` at
length ``n`` to ``x_<n`` and itself, ``b`` to ``x_<n``, ``a`` and itself. :func:`error_profile`
records, from one exact (float64) pass, the magnitudes a rounding analysis needs for every row and
layer: norms of states, queries, keys and values, the LayerNorm scales, each query's largest
logit, spread and key count, the projections' column sums. :func:`branch_errors` then propagates,
for one format and policy, a bound ``E`` on ``||v_hat - v||_inf`` of every row, kernel by kernel,
in the standard model (Higham, *Accuracy and Stability of Numerical Algorithms*, §2.2, §3.1):

- a product ``y = x W`` with stored weights: ``||W||_1 E_x + (gamma_d + u) max_j sum_i |x_i||W_ij|
  + u ||y||`` (``||W||_1`` the largest column sum: the inf-norm of a row times ``W``); RoPE's
  rotation multiplies by at most ``|cos| + |sin| <= 1.5`` and adds its roundings;
- LayerNorm ``g (x - mu)/s + b``: its Jacobian's row sums ``<= g (2/s + |c|_inf |c|_1 / (d s^3))``
  at the smallest scale ``s - 2 E_x`` the input can have, plus its own roundings;
- attention: a logit error ``S`` moves each weight by ``e^{2S}`` (relative) on top of
  :func:`numerics.error_bounds.softmax_error`, and the output by
  :func:`numerics.error_bounds.weighted_sum_error` plus the values' own error;
- residual additions add the errors and a rounding.

The analysis is first order in the relative errors; once a row's error exceeds 1/8 of its state
the bound is declared vacuous (``inf``) for it. The bounds of the two branches turn into per-length
verdicts in :func:`.predict_collapse`.
"""

from __future__ import annotations

import math

import numpy as np

from numerics.backend import to_numpy
from numerics.error_bounds import gamma, softmax_error, units, weighted_sum_error
from numerics.formats import Format, get_format
from numerics.models.layers import LayerOps
from numerics.policies import Policy, get_policy

__all__ = ["BLOCK", "FIRST_ORDER_LIMIT", "branch_errors", "error_profile", "over_keys"]


#: A first-order relative error above this makes the bound vacuous.
FIRST_ORDER_LIMIT = 1 / 8
#: Query rows per block when the exact logits are profiled (memory: block x 3N per head).
BLOCK = 512


def error_profile(model, prefix, first: int, second: int | None = None) -> dict:
    """The exact magnitudes of every row and layer of ``branch_forward(model, prefix, first,
    second=second)`` that :func:`branch_errors` needs (float64, on the host)."""
    prefix = np.asarray(to_numpy(prefix), dtype=np.int64)
    second = first if second is None else second
    ops = LayerOps(model, get_format("fp64"), get_policy("hw"), np)
    size = prefix.shape[0] + 1
    rows = np.arange(size)
    tokens = np.concatenate([prefix, np.full(size, first), np.full(size, second)])
    positions = np.concatenate([rows[:-1], rows, rows + 1])
    v = np.asarray(model.embedding, dtype=np.float64)[tokens]
    profile = {"size": size, "heads": model.heads, "d": model.d, "d_head": model.d_head,
               "embedding": np.abs(v).max(axis=-1), "layers": []}
    for layer in model.layers:
        record = {"norm_1": _norm_profile(model, v, layer.gain_1, layer.bias_1),
                  "rope": model.pe == "rope"}
        h = ops.norm(v, layer.gain_1, layer.bias_1)
        if model.pe == "sinusoidal":
            encoding = ops.weight_at(positions)
            record["pe"] = np.abs(encoding).max(axis=-1)
            h_qk = h + encoding
        else:
            record["pe"] = None
            h_qk = h
        record["h_qk"] = np.abs(h_qk).max(axis=-1)
        projections = {}
        for name, source, weight in (("q", h_qk, layer.w_q), ("k", h_qk, layer.w_k),
                                     ("u", h, layer.w_v)):
            value = np.einsum("nd,hde->hne", source, weight)
            record[f"{name}_columns"] = np.abs(weight).sum(axis=1).max(axis=-1)[:, None]
            record[f"{name}_products"] = np.einsum("nd,hde->hne", np.abs(source),
                                                   np.abs(weight)).max(axis=-1)
            record[f"{name}_raw"] = np.abs(value).max(axis=-1)
            if model.pe == "rope" and name != "u":
                value = ops.rotate(value, positions)
            projections[name] = value
            record[name] = np.abs(value).max(axis=-1)  # (heads, rows)
        q, k, u = projections["q"], projections["k"], projections["u"]
        record["q_l1"] = np.abs(q).sum(axis=-1)
        record["key_l1"] = over_keys(np.abs(k).sum(axis=-1), size)
        record["values"] = over_keys(record["u"], size)
        record["count"] = over_keys(np.ones(len(v)), size, combine="count")
        attention = _attention_profile(ops, q, k, u, positions, size)
        record.update({key: attention[key] for key in ("spread", "scores", "bias", "mix")})
        joined = np.moveaxis(attention["output"], 0, 1).reshape(len(v), -1)
        out = joined @ layer.w_o
        record["o_columns"] = float(np.abs(layer.w_o).sum(axis=0).max())
        record["o_products"] = (np.abs(joined) @ np.abs(layer.w_o)).max(axis=-1)
        record["attention"] = np.abs(out).max(axis=-1)
        z = v + out
        record["z"] = np.abs(z).max(axis=-1)
        if layer.has_mlp:
            record["norm_2"] = _norm_profile(model, z, layer.gain_2, layer.bias_2)
            h2 = ops.norm(z, layer.gain_2, layer.bias_2)
            pre = h2 @ layer.w_1 + layer.b_1
            hidden = np.maximum(pre, 0)
            psi = hidden @ layer.w_2 + layer.b_2
            record.update({
                "w1_columns": float(np.abs(layer.w_1).sum(axis=0).max()),
                "w1_products": (np.abs(h2) @ np.abs(layer.w_1)).max(axis=-1),
                "b1": float(np.abs(layer.b_1).max()), "pre": np.abs(pre).max(axis=-1),
                "hidden": np.abs(hidden).max(axis=-1), "width": layer.w_1.shape[1],
                "w2_columns": float(np.abs(layer.w_2).sum(axis=0).max()),
                "w2_products": (np.abs(hidden) @ np.abs(layer.w_2)).max(axis=-1),
                "b2": float(np.abs(layer.b_2).max()), "psi": np.abs(psi).max(axis=-1)})
            v = z + psi
        else:
            v = z
        record["out"] = np.abs(v).max(axis=-1)
        profile["layers"].append(record)
    profile["states"] = v
    return profile


def branch_errors(profile: dict, fmt: Format | str, policy: Policy | str) -> np.ndarray:
    """Bounds on ``||v_hat - v||_inf`` of the final state of every row (prefix rows, then the
    ``N`` rows of ``a``, then the ``N`` rows of ``b``) for ``fmt`` under ``policy`` (see the module
    docstring); ``inf`` where the analysis is vacuous."""
    fmt, policy = get_format(fmt), get_policy(policy)
    unit = units(fmt, policy)
    u, uc, ua = unit.output, unit.compute, unit.accumulate
    d, d_head, heads, size = profile["d"], profile["d_head"], profile["heads"], profile["size"]
    error = u * profile["embedding"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for record in profile["layers"]:
            h = _norm_error(record["norm_1"], error, d, unit)
            h_qk = h if record["pe"] is None else h + u * record["pe"] + (u + uc) * record["h_qk"]
            found = {}
            for name, source in (("q", h_qk), ("k", h_qk), ("u", h)):
                err = (record[f"{name}_columns"] * source[None]
                       + (gamma(d, ua) + u) * record[f"{name}_products"]
                       + u * record[f"{name}_raw"])
                if record["rope"] and name != "u":
                    err = 1.5 * err + 4 * (u + uc) * record[f"{name}_raw"] + u * record[name]
                found[name] = err
            key_error = over_keys(found["k"], size)
            value_error = over_keys(found["u"], size)
            scale = 1 / math.sqrt(d_head)
            logit = (scale * (record["q_l1"] * key_error + record["key_l1"] * found["q"])
                     + gamma(d_head, ua) * scale * record["q"] * record["key_l1"]
                     + 2 * (u + uc) * record["scores"] + (u + uc) * record["bias"])
            relative, absolute = softmax_error(record["spread"], record["count"], fmt, policy)
            grow = np.exp(2 * logit)
            weight_relative = (1 + relative) * grow - 1
            weight_absolute = absolute * grow
            mix = weighted_sum_error(weight_relative, weight_absolute, record["count"],
                                     record["values"], record["mix"], fmt, policy) \
                + (1 + weight_relative) * value_error
            merged = (record["o_columns"] * mix.max(axis=0)
                      + (gamma(heads * d_head, ua) + u) * record["o_products"]
                      + u * record["attention"])
            z = error + merged + (u + uc) * record["z"]
            if "norm_2" in record:
                h2 = _norm_error(record["norm_2"], z, d, unit)
                hidden = (record["w1_columns"] * h2 + (gamma(d, ua) + u) * record["w1_products"]
                          + u * record["b1"] + (u + uc) * record["pre"])
                psi = (record["w2_columns"] * hidden
                       + (gamma(record["width"], ua) + u) * record["w2_products"]
                       + u * record["b2"] + (u + uc) * record["psi"])
                error = z + psi + (u + uc) * record["out"]
            else:
                error = z
            vacuous = ~np.isfinite(error) | (error > FIRST_ORDER_LIMIT
                                              * np.maximum(record["out"], 1e-300))
            error = np.where(vacuous, np.inf, error)
    return error


def over_keys(per_key, size: int, combine: str = "max") -> np.ndarray:
    """For every query row, the largest ``per_key`` value (or, with ``combine="count"``, the sum)
    over the keys it attends to (the last axis indexes the ``3N - 1`` rows)."""
    per_key = np.asarray(per_key, dtype=np.float64)
    prefix, a, b = per_key[..., :size - 1], per_key[..., size - 1:2 * size - 1], \
        per_key[..., 2 * size - 1:]
    if combine == "count":
        running = np.cumsum(prefix, axis=-1)
        before = np.concatenate([np.zeros_like(a[..., :1]), running], axis=-1)
        return np.concatenate([running, before + a, before + a + b], axis=-1)
    running = np.maximum.accumulate(prefix, axis=-1) if size > 1 else prefix
    before = np.concatenate([np.full_like(a[..., :1], -np.inf), running], axis=-1)
    return np.concatenate([running, np.maximum(before, a),
                           np.maximum(np.maximum(before, a), b)], axis=-1)


def _attention_profile(ops, q, k, u, positions, size: int) -> dict:
    """Exact attention of every row, in blocks of query rows: each query's logit spread, largest
    logit magnitude, largest bias magnitude, output magnitude, and the output itself."""
    heads, total = q.shape[0], q.shape[1]
    found = {key: np.zeros((heads, total)) for key in ("spread", "scores", "bias", "mix")}
    output = np.zeros_like(u)
    scale = 1 / math.sqrt(q.shape[-1])
    for start in range(0, total, BLOCK):
        chunk = np.arange(start, min(start + BLOCK, total))
        mask = _key_mask(chunk, size)[None]
        scores = np.einsum("hqe,hke->hqk", q[:, chunk], k) * scale
        bias = ops.bias(positions[chunk][:, None], positions[None, :])
        if bias is not None:
            scores = scores + bias
            found["bias"][:, chunk] = np.where(mask, np.abs(bias), 0.0).max(axis=-1)
        top = np.where(mask, scores, -np.inf).max(axis=-1)
        low = np.where(mask, scores, np.inf).min(axis=-1)
        found["spread"][:, chunk] = top - low
        found["scores"][:, chunk] = np.where(mask, np.abs(scores), 0.0).max(axis=-1)
        weights = np.where(mask, np.exp(scores - top[..., None]), 0.0)
        weights /= weights.sum(axis=-1, keepdims=True)
        mix = np.einsum("hqk,hke->hqe", weights, u)
        output[:, chunk] = mix
        found["mix"][:, chunk] = np.abs(mix).max(axis=-1)
    return {**found, "output": output}


def _key_mask(chunk, size: int) -> np.ndarray:
    """Which of the ``3N - 1`` rows each query row of ``chunk`` attends to."""
    total = 3 * size - 1
    columns = np.arange(total)
    chunk = np.asarray(chunk)
    kind = np.where(chunk < size - 1, 0, np.where(chunk < 2 * size - 1, 1, 2))
    index = np.where(kind == 0, chunk, np.where(kind == 1, chunk - (size - 1),
                                                chunk - (2 * size - 1)))
    column_prefix = columns < size - 1
    mask = column_prefix[None] & np.where(kind[:, None] == 0, columns[None] <= index[:, None],
                                          columns[None] < index[:, None])
    a_column = size - 1 + index
    b_column = 2 * size - 1 + index
    mask |= (kind[:, None] >= 1) & (columns[None] == a_column[:, None])
    mask |= (kind[:, None] == 2) & (columns[None] == b_column[:, None])
    return mask


def _norm_profile(model, x, gain, bias) -> dict:
    if model.norm == "none":
        return {"none": True}
    d = x.shape[-1]
    c = x - x.mean(axis=-1, keepdims=True)
    var = (c**2).mean(axis=-1)
    s = np.sqrt(var + model.norm_eps)
    g = 1.0 if gain is None else float(np.abs(gain).max())
    b = 0.0 if bias is None else float(np.abs(bias).max())
    return {"none": False, "mean": np.abs(x).mean(axis=-1), "c_inf": np.abs(c).max(axis=-1),
            "c_1": np.abs(c).sum(axis=-1), "var": var, "s": s, "gain": g, "bias": b,
            "y": g * np.abs(c).max(axis=-1) / s + b, "d": d, "eps": model.norm_eps}


def _norm_error(profile: dict, error, d: int, unit) -> np.ndarray:
    """LayerNorm's output error: its Jacobian's row sums at the smallest scale the input can have
    times the input's error, plus its own roundings (mean, centring, variance, root, quotient,
    gain, bias, output)."""
    if profile["none"]:
        return error
    u, uc, ua = unit.output, unit.compute, unit.accumulate
    s = profile["s"]
    low = np.maximum(s - 2 * error, 0)
    jacobian = profile["gain"] * (2 / low + profile["c_inf"] * profile["c_1"] / (d * low**3))
    # the mean's error shifts every centred value alike: first order, it leaves the variance
    # (a sum of squares of values summing to 0) unchanged, and moves the output by mean / s
    mean = (gamma(d, ua) + 2 * uc + u) * profile["mean"]
    centred = mean + uc * profile["c_inf"]
    var = (gamma(d, ua) + 5 * uc + u) * profile["var"] + mean**2
    root = 0.5 * var / s**2 + 2 * uc + u * profile["eps"] / s**2
    quotient = centred / s + profile["c_inf"] / s * (root + uc)
    own = profile["gain"] * quotient + profile["y"] * (2 * uc + 2 * u) + u * profile["bias"]
    return np.where(np.isfinite(jacobian), jacobian * error + own, np.inf)
