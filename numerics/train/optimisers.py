"""Optimisers as plain data plus a step function, under a format and a precision policy.

With gradient ``g_t`` at step ``t = 1, 2, ...`` and learning rate ``eta`` (PyTorch's formulas):

- ``sgd``: ``w <- w - eta g``;
- ``momentum``: ``v <- mu v + g`` (``v_0 = 0``), ``w <- w - eta v``;
- ``adam``: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g^2``, and
  ``w <- w - (eta / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)`` (Kingma & Ba 2015, Alg. 1,
  with eps added as PyTorch does);
- ``adamw``: first ``w <- w (1 - eta lambda)`` (decoupled weight decay, Loshchilov & Hutter 2019),
  then the Adam step.

The policy decides the arithmetic without the code branching on its name. The state holds
``weights`` and the slots (``v``, ``m``) in the compute container (float64 for fp64, else
float32), and every operation goes through ``policy.step``:

- ``hw``: ``step`` does nothing, so the state is fp32 *master weights* and fp32 slots updated in
  fp32; the parameters handed back are the masters rounded to the format (mixed precision).
- ``strict``: ``step`` rounds to the format after every operation, so weights, slots and every
  intermediate live in the format and small updates can vanish (``w + u == w`` once
  ``|u| < ulp(w)/2``).

Under a policy that does not round each operation, on NumPy, Adam and AdamW run as one compiled
pass (numba) over each parameter with the same operations in the same order in the container's
dtype, so the same bits as the array code (tested bitwise): one pass instead of a dozen array
temporaries, which for the small SAEs of sae-amortisation was most of a training step.

Gradients are read as values of the format and divided by ``grad_scale`` (a loss scale) first.
A step that leaves the format's range gives infinities or NaN, never an exception: under
``strict`` in fp8-e4m3, Adam's ``eps = 1e-8`` rounds to 0 (the smallest subnormal is 2^-9) and a
zero second moment makes ``0 / 0``; a sweep records that as the finding it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

from numerics._arithmetic import literal, rounder
from numerics._validate import check_choice, check_real
from numerics.backend import array_namespace
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.policies import Policy, get_policy

__all__ = ["OPTIMISERS", "Optimiser", "OptimiserState", "init_state", "optimiser_step"]

OPTIMISERS: tuple[str, ...] = ("sgd", "momentum", "adam", "adamw")


@dataclass(frozen=True)
class Optimiser:
    """An optimiser's kind and hyper-parameters (``momentum`` for momentum; ``beta1``, ``beta2``,
    ``eps`` for Adam and AdamW; ``weight_decay`` for AdamW), e.g.
    ``Optimiser("adamw", lr=5e-4)``."""

    kind: str
    lr: float
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float | None = None  # None: PyTorch's 0.01 for adamw, 0 for the others

    def __post_init__(self):
        if self.weight_decay is None:
            object.__setattr__(self, "weight_decay", 0.01 if self.kind == "adamw" else 0.0)
        check_choice(self.kind, OPTIMISERS, "kind")
        check_real(self.lr, "lr", min=0.0, strict_min=True)
        check_real(self.momentum, "momentum", min=0.0, max=1.0)
        for name in ("beta1", "beta2"):
            value = check_real(getattr(self, name), name, min=0.0)
            if value >= 1.0:
                raise InvalidArgument(f"{name}={value!r} must be < 1")
        check_real(self.eps, "eps", min=0.0)
        check_real(self.weight_decay, "weight_decay", min=0.0)
        if self.weight_decay and self.kind != "adamw":
            raise InvalidArgument(f"weight_decay={self.weight_decay!r} applies to kind='adamw' "
                                  f"only; got kind={self.kind!r}")


@dataclass(frozen=True, eq=False)
class OptimiserState:
    """Step count, weights (fp32 masters under ``hw``, values of the format under ``strict``) and
    per-parameter slots (``("velocity",)`` or ``("first", "second")`` moments)."""

    count: int
    weights: tuple
    slots: dict
    fmt: Format
    policy: Policy


def init_state(optimiser: Optimiser, params, fmt: Format | str = "fp32",
               policy: Policy | str = "hw") -> OptimiserState:
    """The state before the first step: the weights from ``params`` (kept at full container
    precision under ``hw``, rounded to ``fmt`` under ``strict``) and zero slots."""
    fmt, policy = get_format(fmt), get_policy(policy)
    weights = []
    for p in params:
        xp = array_namespace(p)
        weights.append(policy.step(xp.asarray(p, dtype=fmt.container), fmt))
    names = {"sgd": (), "momentum": ("velocity",), "adam": ("first", "second"),
             "adamw": ("first", "second")}[optimiser.kind]
    zeros = tuple(array_namespace(w).zeros_like(w) for w in weights)
    return OptimiserState(0, tuple(weights), {name: zeros for name in names}, fmt, policy)


def optimiser_step(optimiser: Optimiser, state: OptimiserState, grads, *,
                   grad_scale: float = 1.0) -> tuple[tuple, OptimiserState]:
    """One step: return the new parameters (in the format's storage dtype) and the new state."""
    fmt, policy = state.fmt, state.policy
    grad_scale = check_real(grad_scale, "grad_scale", min=0.0, strict_min=True)
    grads = tuple(grads)
    if len(grads) != len(state.weights):
        raise InvalidArgument(f"grads has {len(grads)} arrays; expected {len(state.weights)}, "
                              f"one per parameter")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        weights, slots = _update(optimiser, state, grads, grad_scale)
    new = replace(state, count=state.count + 1, weights=tuple(weights),
                  slots={name: tuple(values) for name, values in slots.items()})
    return tuple(policy.output(w, fmt) for w in weights), new


def _update(o: Optimiser, state: OptimiserState, grads: tuple, grad_scale: float):
    fmt, policy, t = state.fmt, state.policy, state.count + 1
    weights, slots = [], {name: [] for name in state.slots}
    for i, (w, grad) in enumerate(zip(state.weights, grads, strict=True)):
        if tuple(grad.shape) != tuple(w.shape):
            raise InvalidArgument(f"grads[{i}] has shape {tuple(grad.shape)}; expected "
                                  f"{tuple(w.shape)}")
        r = rounder(fmt, policy)

        def c(value: float, like=w):
            return literal(value, like, fmt, policy)

        g = policy.load(grad, fmt)
        if grad_scale != 1.0:
            g = r(g / c(grad_scale))
        if o.kind in ("adam", "adamw") and _is_fused(w, policy):
            w, m, v = _fused_adam(o, t, w, g, state.slots["first"][i], state.slots["second"][i])
            slots["first"].append(m)
            slots["second"].append(v)
        elif o.kind == "sgd":
            w = r(w - r(c(o.lr) * g))
        elif o.kind == "momentum":
            v = r(r(c(o.momentum) * state.slots["velocity"][i]) + g)
            slots["velocity"].append(v)
            w = r(w - r(c(o.lr) * v))
        else:
            if o.kind == "adamw":
                w = r(w * c(1.0 - o.lr * o.weight_decay))
            m = r(r(c(o.beta1) * state.slots["first"][i]) + r(c(1.0 - o.beta1) * g))
            v = r(r(c(o.beta2) * state.slots["second"][i]) + r(r(c(1.0 - o.beta2) * g) * g))
            slots["first"].append(m)
            slots["second"].append(v)
            xp = array_namespace(w)
            denom = r(r(r(xp.sqrt(v)) / c(math.sqrt(1.0 - o.beta2**t))) + c(o.eps))
            w = r(w - r(c(o.lr / (1.0 - o.beta1**t)) * r(m / denom)))
        weights.append(w)
    return weights, slots


def _is_fused(w, policy: Policy) -> bool:
    return (not policy.round_each_op and array_namespace(w) is np
            and w.dtype in (np.float32, np.float64))


def _fused_adam(o: Optimiser, t: int, w, g, m, v):
    """The Adam(W) update of :func:`_update` in one compiled pass, into new arrays."""
    dtype = w.dtype.type
    g = np.ascontiguousarray(g, dtype=w.dtype)
    out = tuple(np.empty_like(w, order="C") for _ in range(3))
    _compiled_adam()(np.ascontiguousarray(w).reshape(-1), g.reshape(-1),
                     np.ascontiguousarray(m).reshape(-1), np.ascontiguousarray(v).reshape(-1),
                     o.kind == "adamw", dtype(1.0 - o.lr * o.weight_decay), dtype(o.beta1),
                     dtype(1.0 - o.beta1), dtype(o.beta2), dtype(1.0 - o.beta2),
                     dtype(math.sqrt(1.0 - o.beta2**t)), dtype(o.eps),
                     dtype(o.lr / (1.0 - o.beta1**t)), *(a.reshape(-1) for a in out))
    return out


def _adam(w, g, m, v, decoupled, decay, beta1, one_beta1, beta2, one_beta2, correction, eps,
          rate, w_out, m_out, v_out):  # pragma: no cover
    # compiled by numba: the array code's operations, in its order, in the container dtype (no
    # fastmath: no fused multiply-adds)
    for i in range(w.size):
        weight = w[i] * decay if decoupled else w[i]
        first = beta1 * m[i] + one_beta1 * g[i]
        second = beta2 * v[i] + (one_beta2 * g[i]) * g[i]
        denom = np.sqrt(second) / correction + eps
        w_out[i] = weight - rate * (first / denom)
        m_out[i] = first
        v_out[i] = second


@cache
def _compiled_adam():
    import numba

    return numba.njit(cache=True, nogil=True)(_adam)
