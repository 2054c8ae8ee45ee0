"""The hand-written backward pass of the MLP classifier, under the forward pass's format and policy
(the SAE's is in :mod:`numerics.train.sae_backward`).

MLP with softmax cross-entropy at temperature ``T`` (:mod:`numerics.models.mlp`), for ``N`` rows:

- ``Delta_L = dCE/dZ = (softmax(Z / T) - E_y) / (T N)`` (``E_y`` the one-hot labels);
- for a layer ``a_i = h_{i-1} W_i^T + b_i``: ``dW_i = Delta_i^T h_{i-1}``, ``db_i = 1^T Delta_i``,
  ``dh_{i-1} = Delta_i W_i``, and ``Delta_{i-1} = dh_{i-1} * phi'(a_{i-1})``.

So ``rank dW_i <= min(rank Delta_i, rank h_{i-1})``: low-rank features give low-rank gradients.

Every matrix product accumulates as the policy says and is rounded once to the format (one kernel);
elementwise steps round as the policy says. Gradients come back in the format's storage dtype,
ordered as the model's ``params``; logits that are not finite (a diverged network) give NaN
gradients, so a training loop records the divergence instead of stopping. ``loss_scale``
multiplies the seed gradient (fp16 loss scaling; the optimiser divides it out).
"""

from __future__ import annotations

from numerics._arithmetic import literal, rounder
from numerics._validate import check_real
from numerics.backend import array_namespace
from numerics.kernels import softmax
from numerics.models.mlp import (
    MLP,
    MLPForward,
    activation_derivative,
    check_labels,
)

__all__ = ["mlp_backward"]


def mlp_backward(model: MLP, forward: MLPForward, labels, *, temperature: float = 1.0,
                 loss_scale: float = 1.0) -> tuple:
    """Return ``dCE_T/dparams`` (ordered ``W_1, b_1, ...``) from a forward pass of ``model``."""
    fmt, policy = forward.fmt, forward.policy
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    loss_scale = check_real(loss_scale, "loss_scale", min=0.0, strict_min=True)
    xp = array_namespace(forward.z)
    z = forward.z
    labels = check_labels(labels, z.shape, xp)
    if not bool(xp.all(xp.isfinite(z))):  # a diverged network: NaN gradients, not an error
        return tuple(policy.output(xp.full(p.shape, xp.nan, dtype=z.dtype), fmt)
                     for p in model.params)
    r = rounder(fmt, policy)
    p = policy.load(softmax(z, fmt, policy, temperature=temperature), fmt)
    rows = xp.arange(z.shape[0])
    p[rows, labels] = r(p[rows, labels] - 1)
    scale = loss_scale / (temperature * z.shape[0])
    delta = fmt.round(r(p * literal(scale, p, fmt, policy)))
    grads = []
    for i in range(len(model.weights) - 1, -1, -1):
        below = forward.inputs if i == 0 else forward.activations[i - 1]
        grads.append(policy.output(policy.sum(delta, fmt, axis=0), fmt))
        grads.append(policy.output(policy.matmul(delta.T, below, fmt), fmt))
        if i:
            back = fmt.round(policy.matmul(delta, policy.load(model.weights[i], fmt), fmt))
            slope = activation_derivative(forward.preactivations[i - 1], model.activation, fmt,
                                          policy)
            delta = fmt.round(back * slope)
    return tuple(reversed(grads))
