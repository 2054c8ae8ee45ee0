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

Every matrix product accumulates as the policy says and is rounded once to the format (one kernel);
elementwise steps round as the policy says. Gradients come back in the format's storage dtype,
ordered as ``sae.names``. ``loss_scale`` multiplies the seed gradient (the optimiser divides it
out).
"""

from __future__ import annotations

from numerics._arithmetic import literal, rounder
from numerics._validate import check_real
from numerics.backend import array_namespace
from numerics.models.sae import SAE, SAEForward

__all__ = ["sae_backward"]


def sae_backward(sae: SAE, forward: SAEForward, X, *, gamma: float = 1e-4,
                 loss_scale: float = 1.0) -> tuple:
    """Return ``d(MSE + gamma R)/dparams`` (ordered as ``sae.names``), with the straight-through
    estimator for ``jumprelu``'s threshold (module docstring)."""
    fmt, policy = forward.fmt, forward.policy
    gamma = check_real(gamma, "gamma", min=0.0)
    loss_scale = check_real(loss_scale, "loss_scale", min=0.0, strict_min=True)
    xp = array_namespace(forward.codes)
    r = rounder(fmt, policy)
    x = policy.load(xp.asarray(X), fmt)
    batch, m = x.shape
    codes = forward.codes
    scale = literal(2.0 * loss_scale / (batch * m), x, fmt, policy)
    d_recon = fmt.round(r(r(forward.reconstruction - x) * scale))
    W_enc, W_dec = policy.load(sae.W_enc, fmt), policy.load(sae.W_dec, fmt)
    d_W_dec = policy.output(policy.matmul(d_recon.T, codes, fmt), fmt)
    d_codes = fmt.round(policy.matmul(d_recon, W_dec, fmt))
    zero = xp.zeros((), dtype=codes.dtype)
    reg_weight = literal(gamma * loss_scale / batch, codes, fmt, policy)
    d_log_threshold = None
    if sae.kind == "relu":
        d_codes = fmt.round(d_codes + xp.where(codes > 0, reg_weight, zero))
    if sae.kind == "jumprelu":
        theta, eps = forward.threshold, literal(sae.bandwidth, codes, fmt, policy)
        unit = xp.maximum(forward.pre, zero)
        window = _rectangle(r(r(unit - theta) / eps))
        from_recon = policy.sum(r(window * d_codes), fmt, axis=0)
        from_reg = policy.sum(_rectangle(r(r(codes - theta) / eps)), fmt, axis=0)
        d_theta = r(r(-r(theta / eps) * from_recon) - r(r(reg_weight / eps) * from_reg))
        inside = policy.load(sae.log_threshold, fmt) <= 20.0
        d_log_threshold = policy.output(xp.where(inside, r(theta * d_theta), zero), fmt)
    d_pre = xp.where(codes > 0, d_codes, zero)  # selected, positive, and above theta
    d_W_enc = policy.output(policy.matmul(d_pre.T, forward.centred, fmt), fmt)
    d_b_enc = policy.output(policy.sum(d_pre, fmt, axis=0), fmt)
    d_centred = fmt.round(policy.matmul(d_pre, W_enc, fmt))
    d_b_dec = policy.output(r(policy.sum(d_recon, fmt, axis=0)
                              - policy.sum(d_centred, fmt, axis=0)), fmt)
    grads = (d_W_enc, d_b_enc, d_W_dec, d_b_dec)
    return (*grads, d_log_threshold) if sae.kind == "jumprelu" else grads


def _rectangle(u):
    """``K(u) = 1[-1/2 <= u <= 1/2]``, the straight-through window."""
    return ((u >= -0.5) & (u <= 0.5)).astype(u.dtype)
