"""Both branches of the representational-collapse experiment in one pass (Barbero et al., NeurIPS
2024, Theorem 4.2): for every ``n = 1..N`` the sequences ``[x_1..x_{n-1}, a]`` and
``[x_1..x_{n-1}, a, b]``, from keys and values cached over the shared prefix, in ``O(L N^2 d)``
instead of the ``O(L N^3 d)`` of one :func:`numerics.models.transformer.forward` per length.
"""

from __future__ import annotations

from dataclasses import dataclass

from numerics._repr import short_repr
from numerics._validate import check_int
from numerics.backend import array_namespace
from numerics.formats import Format, get_format
from numerics.models.layers import LayerOps
from numerics.models.transformer import Transformer, check_tokens
from numerics.policies import Policy, get_policy

__all__ = ["Branches", "branch_forward"]


@dataclass(frozen=True)
class Branches:
    """The result of :func:`branch_forward`, row ``n - 1`` for length ``n = 1..N``.

    ``short``/``long``: the final states ``v^(L)`` of the last token of ``[x_<n, a]`` (position
    ``n``) and of ``[x_<n, a, b]`` (position ``n + 1``); ``short_outputs``/``long_outputs``: their
    ``norm_3``. With ``trace``, one dict per layer holding that layer's inputs ``prefix``,
    ``short`` and ``long``, its residual-stream midpoints ``short_z``/``long_z`` and, per head,
    the scores ``short_scores`` (keys ``x_<n`` padded to ``N - 1``, then ``a``) and
    ``long_scores`` (the same, then ``b``),
    ``short_mix``/``long_mix`` (the attention outputs before ``W_O``), ``prefix_value``,
    ``short_value`` and ``long_value`` (the values, before ``W_O``) and ``long_self``,
    ``long_previous``, ``short_self`` (the weight on the token itself and, for the long branch,
    on ``a``).
    """

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    short: object
    long: object
    short_outputs: object
    long_outputs: object
    trace: tuple[dict, ...] = ()


def branch_forward(model: Transformer, prefix, first: int, *, second: int | None = None,
                   fmt: Format | str = "fp64", policy: Policy | str = "hw",
                   trace: bool = False) -> Branches:
    """For every ``n = 1..N`` (``N = len(prefix) + 1``): the final states of ``[x_1..x_{n-1}, a]``
    and of ``[x_1..x_{n-1}, a, b]`` (``a = first``, ``b = second``, default ``a``), in one pass.

    The prefix runs once (causal attention over it, cached keys and values); the token ``a`` at
    position ``n`` attends to ``x_<n`` and itself, and ``b`` at position ``n + 1`` to ``x_<n``,
    ``a`` and itself, all ``N`` lengths at once. Under ``strict`` every sum runs in sequence
    order, so the states equal per-length recomputation bit for bit.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(prefix)
    ops = LayerOps(model, fmt, policy, xp)
    prefix = check_tokens(prefix, model, "prefix", allow_empty=True)
    second = first if second is None else second
    for name, token in (("first", first), ("second", second)):
        check_int(token, name, min=0, max=model.vocab - 1)
    size = prefix.shape[0] + 1
    rows = xp.arange(size)
    pos_p, pos_a, pos_b = rows[:-1], rows, rows + 1
    v_p = ops.embed(prefix)
    v_a = ops.embed(xp.full(size, first, dtype=prefix.dtype))
    v_b = ops.embed(xp.full(size, second, dtype=prefix.dtype))
    causal = rows[None, :-1] <= rows[:-1, None]
    before = rows[None, :-1] < rows[:, None]  # prefix key j is in x_<n for row n - 1 when j < n - 1
    records = []
    for layer in model.layers:
        q, k, u = ops.heads(layer, xp.concatenate([v_p, v_a, v_b]),
                            xp.concatenate([pos_p, pos_a, pos_b]))
        cut = (slice(0, size - 1), slice(size - 1, 2 * size - 1), slice(2 * size - 1, None))
        (q_p, q_a, q_b), (k_p, k_a, k_b), (u_p, u_a, u_b) = (
            [t[:, s] for s in cut] for t in (q, k, u))
        if size > 1:
            w_p = ops.softmax(ops.scores(q_p, k_p, pos_p, pos_p), causal)
            mix_p = ops.out(policy.matmul(w_p, u_p, fmt))
        else:
            mix_p = u_p
        # the token a: prefix keys, then itself
        s_a = xp.concatenate([ops.scores(q_a, k_p, pos_a, pos_p),
                              ops.rowdot(q_a, k_a, pos_a, pos_a)], axis=-1)
        w_a = ops.softmax(s_a, xp.concatenate([before, rows[:, None] >= 0], axis=-1))
        mix_a = ops.out(ops.accumulate(ops.mix(w_a[..., :-1], u_p), [(w_a[..., -1], u_a)]))
        # the token b: prefix keys, a, then itself
        s_b = xp.concatenate([ops.scores(q_b, k_p, pos_b, pos_p),
                              ops.rowdot(q_b, k_a, pos_b, pos_a),
                              ops.rowdot(q_b, k_b, pos_b, pos_b)], axis=-1)
        w_b = ops.softmax(s_b, xp.concatenate([before, rows[:, None] >= 0,
                                               rows[:, None] >= 0], axis=-1))
        mix_b = ops.out(ops.accumulate(ops.mix(w_b[..., :-2], u_p),
                                       [(w_b[..., -2], u_a), (w_b[..., -1], u_b)]))
        z = ops.residual(xp.concatenate([v_p, v_a, v_b]),
                         ops.merge(layer, xp.concatenate([mix_p, mix_a, mix_b], axis=1)))
        if trace:
            records.append({
                "prefix": v_p, "short": v_a, "long": v_b, "short_scores": s_a, "long_scores": s_b,
                "short_z": z[cut[1]], "long_z": z[cut[2]],
                "short_mix": mix_a, "long_mix": mix_b,
                "prefix_value": u_p, "short_value": u_a, "long_value": u_b,
                "short_self": w_a[..., -1], "long_self": w_b[..., -1],
                "long_previous": w_b[..., -2],
            })
        v = ops.mlp_block(layer, z)
        v_p, v_a, v_b = v[cut[0]], v[cut[1]], v[cut[2]]
    out_a, out_b = ops.final_norm(v_a), ops.final_norm(v_b)
    return Branches(policy.output(v_a, fmt), policy.output(v_b, fmt),
                    policy.output(out_a, fmt), policy.output(out_b, fmt), tuple(records))
