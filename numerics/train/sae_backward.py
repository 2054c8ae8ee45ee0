"""The hand-written backward pass of the sparse autoencoders, under the forward pass's format and
policy.

SAE (:mod:`numerics.models.sae`), batch ``B``, input width ``m``, ``dX^ = 2 (X^ - X) / (B m)``:

- ``dA_d = dX^^T S``, ``db_d = 1^T dX^ - 1^T dX~``, ``dS = dX^ A_d`` (+ ``gamma sign(S) / B`` for
  ``relu``);
- ``dP = dS * 1[S > 0]`` for ``relu`` and ``topk`` (the mask is the selected, positive entries);
  for ``jumprelu`` the straight-through estimator of Rajamanoharan et al. (2024) as the reference
  implements it: ``dU = dS * 1[U > theta]``, ``dP = dU * 1[P > 0]``, and with the rectangle kernel
  ``K(u) = 1[|u| <= 1/2]`` and bandwidth ``eps``,
  ``dtheta_j = sum_b [-(theta_j/eps) K((U_bj - theta_j)/eps) dS_bj
  - (gamma/B) (1/eps) K((S_bj - theta_j)/eps)]`` and ``dlog_theta = theta * dtheta`` (zero where
  ``log_theta > 20``, the reference's clamp);
- ``dW_e = dP^T X~``, ``db_e = 1^T dP``, ``dX~ = dP W_e``.

``mp`` (matching pursuit). The atoms picked are piecewise constant in the parameters, so the loss
is differentiated with them fixed. In exact arithmetic ``X^ - X = -r_k`` (the codes rebuild
``r_0 - r_k`` and ``b_d`` cancels), so the loss is ``||r_k||^2 / (B m)`` and the reverse pass
runs through the ``k`` steps ``r_t = r_{t-1} - <r_{t-1}, d> d`` (``d = d_{j_t}``) from
``dr_k = -dX^``, row by row:

- ``h_t = <dr_t, d>``; ``dd += -(c_t dr_t + h_t r_{t-1})``; ``dr_{t-1} = dr_t - h_t d``;
- then ``db_d = -1^T dr_0``, and through ``d_j = a_j / nu_j`` (``nu_j = max(||a_j||, 1e-8)``)
  ``da_j = (dd_j - <dd_j, d_j> d_j) / nu_j`` (``dd_j / 1e-8`` where the floor holds).

The encoder does not enter the ``mp`` loss: its gradients are zero. The contributions to each atom
are gathered per atom and summed as the policy sums (in order, in the format, under ``strict``).

Every matrix product accumulates as the policy says and is rounded once to the format (one kernel);
elementwise steps round as the policy says. Gradients come back in the format's storage dtype,
ordered as ``sae.names``. ``loss_scale`` multiplies the seed gradient (the optimiser divides it
out).
"""

from __future__ import annotations

from numerics._arithmetic import literal, rounder
from numerics._validate import check_real
from numerics.backend import array_namespace
from numerics.models.sae import SAE, SAEForward, _to_format

__all__ = ["sae_backward"]


def sae_backward(sae: SAE, forward: SAEForward, X, *, gamma: float = 1e-4,
                 loss_scale: float = 1.0) -> tuple:
    """Return ``d(MSE + gamma R)/dparams`` (ordered as ``sae.names``), with the straight-through
    estimator for ``jumprelu``'s threshold and zero encoder gradients for ``mp`` (module
    docstring)."""
    fmt, policy = forward.fmt, forward.policy
    gamma = check_real(gamma, "gamma", min=0.0)
    loss_scale = check_real(loss_scale, "loss_scale", min=0.0, strict_min=True)
    xp = array_namespace(forward.codes)
    x = policy.load(xp.asarray(X), fmt)
    grads = _gradients(sae, forward, x, gamma, loss_scale)
    return tuple(policy.output(g, fmt) for g in grads)


def _gradients(sae: SAE, forward: SAEForward, x, gamma: float, loss_scale: float) -> tuple:
    """The gradients as values of the format in its compute container."""
    fmt, policy = forward.fmt, forward.policy
    xp = array_namespace(forward.codes)
    r = rounder(fmt, policy)
    weights = forward.weights or tuple(policy.load(p, fmt) for p in sae.params)
    W_enc, W_dec = weights[0], weights[2]
    batch, m = x.shape
    codes = forward.codes
    scale = literal(2.0 * loss_scale / (batch * m), x, fmt, policy)
    d_recon = _to_format(r(r(forward.reconstruction - x) * scale), fmt)
    if sae.kind == "mp":
        return _pursuit_gradients(forward, d_recon, weights)
    d_W_dec = _to_format(policy.matmul(d_recon.T, codes, fmt), fmt)
    d_codes = _to_format(policy.matmul(d_recon, W_dec, fmt), fmt)
    zero = xp.zeros((), dtype=codes.dtype)
    reg_weight = literal(gamma * loss_scale / batch, codes, fmt, policy)
    d_log_threshold = None
    if sae.kind == "relu":
        d_codes = _to_format(d_codes + xp.where(codes > 0, reg_weight, zero), fmt)
    if sae.kind == "jumprelu":
        theta, eps = forward.threshold, literal(sae.bandwidth, codes, fmt, policy)
        unit = xp.maximum(forward.pre, zero)
        window = _rectangle(r(r(unit - theta) / eps))
        from_recon = policy.sum(r(window * d_codes), fmt, axis=0)
        from_reg = policy.sum(_rectangle(r(r(codes - theta) / eps)), fmt, axis=0)
        d_theta = r(r(-r(theta / eps) * from_recon) - r(r(reg_weight / eps) * from_reg))
        inside = weights[4] <= literal(20.0, theta, fmt, policy)
        d_log_threshold = _to_format(xp.where(inside, r(theta * d_theta), zero), fmt)
    d_pre = xp.where(codes > 0, d_codes, zero)  # selected, positive, and above theta
    d_W_enc = _to_format(policy.matmul(d_pre.T, forward.centred, fmt), fmt)
    d_b_enc = _to_format(policy.sum(d_pre, fmt, axis=0), fmt)
    d_centred = _to_format(policy.matmul(d_pre, W_enc, fmt), fmt)
    d_b_dec = _to_format(r(policy.sum(d_recon, fmt, axis=0)
                           - policy.sum(d_centred, fmt, axis=0)), fmt)
    grads = (d_W_enc, d_b_enc, d_W_dec, d_b_dec)
    return (*grads, d_log_threshold) if sae.kind == "jumprelu" else grads


def _pursuit_gradients(forward: SAEForward, d_recon, weights: tuple) -> tuple:
    """The ``mp`` reverse recursion of the module docstring."""
    fmt, policy, trace = forward.fmt, forward.policy, forward.pursuit
    xp = array_namespace(d_recon)
    r = rounder(fmt, policy)
    atoms = trace.atoms
    picked = atoms.T[trace.selected]  # (B, k, m): the atoms each row picked, in order
    k, batch, m = trace.residuals.shape
    d_residual = -d_recon  # negation is exact
    contributions = xp.zeros((k, batch, m), dtype=d_recon.dtype)
    for t in range(k - 1, -1, -1):
        d = picked[:, t]
        h = _to_format(policy.sum(r(d_residual * d), fmt, axis=1), fmt)[:, None]
        c = trace.coefficients[:, t][:, None]
        contributions[t] = _to_format(r(r(c * d_residual) + r(h * trace.residuals[t])), fmt)
        d_residual = _to_format(r(d_residual - r(h * d)), fmt)
    d_atoms = -_sum_by_atom(trace.selected.T.reshape(-1), contributions.reshape(-1, m),
                            atoms.shape[1], fmt, policy).T  # (m, n); negation is exact
    norms = trace.norms
    dots = r(policy.sum(r(d_atoms * atoms), fmt, axis=0, keepdims=True))
    along = xp.where(norms > literal(1e-8, norms, fmt, policy), r(d_atoms - r(dots * atoms)),
                     d_atoms)
    d_W_dec = _to_format(r(along / norms), fmt)
    d_b_dec = _to_format(-policy.sum(d_residual, fmt, axis=0), fmt)
    return (xp.zeros_like(weights[0]), xp.zeros_like(weights[1]), d_W_dec, d_b_dec)


def _sum_by_atom(index, values, n: int, fmt, policy):
    """``out[j] = sum_{i: index_i = j} values_i`` (``(n, m)``), each sum in the order of ``i`` and
    accumulated as the policy sums: the rows are grouped by atom into a zero-padded block (adding
    zeros changes no sum) that ``policy.sum`` reduces, for the atoms that occur only."""
    xp = array_namespace(values)
    count = index.shape[0]
    order = xp.argsort(index, kind="stable")
    ordered = index[order]
    starts_group = xp.ones(count, dtype=bool)
    starts_group[1:] = ordered[1:] != ordered[:-1]
    starts = xp.flatnonzero(starts_group)
    group = xp.cumsum(starts_group) - 1
    position = xp.arange(count) - starts[group]
    block = xp.zeros((starts.shape[0], int(position.max()) + 1, values.shape[1]),
                     dtype=values.dtype)
    block[group, position] = values[order]
    out = xp.zeros((n, values.shape[1]), dtype=values.dtype)
    out[ordered[starts]] = _to_format(policy.sum(block, fmt, axis=1), fmt)
    return out


def _rectangle(u):
    """``K(u) = 1[-1/2 <= u <= 1/2]``, the straight-through window."""
    return ((u >= -0.5) & (u <= 0.5)).astype(u.dtype)
