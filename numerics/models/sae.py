"""Sparse autoencoders (SAEs): ReLU, TopK and JumpReLU encoders with a linear decoder of unit-norm
columns, under a format and a precision policy, as the reference experiments of Barin Pacela,
Joshi et al. (2026) define them (``models/saes.py`` of their code; see the sae_amortisation notes).

For a batch ``X`` (``B x m``, one sample per row), width ``n`` (latents):

- centring and encoder: ``X~ = X - b_d``, ``P = X~ W_e^T + b_e`` with ``W_e`` ``(n, m)``;
- codes ``S``: ``relu``: ``max(P, 0)``; ``topk``: ``max(P, 0)`` on the ``k`` largest entries of
  each row of ``P``, 0 elsewhere; ``jumprelu``: ``U 1[U > theta]`` with ``U = max(P, 0)`` and
  ``theta = exp(min(log_theta, 20))`` per latent;
- decoder: ``X^ = S A_d^T + b_d`` with ``A_d`` ``(m, n)``, columns kept at unit norm;
- loss: ``MSE(X^, X) + gamma R`` with ``MSE = (1/(B m)) sum (X^ - X)^2`` and ``R`` the batch mean
  of ``||s||_1`` (``relu``), of ``sum_j 1[s_j > theta_j]`` (``jumprelu``), or 0 (``topk``).

Initialisation: ``W_e`` Kaiming-uniform with ``a = sqrt 5``, i.e. ``U(-1/sqrt m, 1/sqrt m)``;
``b_e = 0``, ``b_d = 0``; ``A_d = W_e^T`` with columns normalised; ``log_theta = log 1e-3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numerics._arithmetic import literal, rounder
from numerics._validate import check_choice, check_elements, check_int, check_real
from numerics.backend import array_namespace, get_backend
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.kernels import load_finite
from numerics.models.mlp import linear
from numerics.policies import Policy, get_policy

__all__ = ["SAE", "SAE_KINDS", "SAEForward", "SAELoss", "normalise_columns", "random_sae",
           "sae_forward", "sae_loss", "tangent_projection"]

SAE_KINDS: tuple[str, ...] = ("relu", "topk", "jumprelu")
_MAX_LOG_THRESHOLD = 20.0  # the reference clamps log(theta) at 20 before exponentiating


@dataclass(frozen=True, eq=False)
class SAE:
    """An SAE's parameters (NumPy or CuPy arrays) and its kind; ``k`` for ``topk``, and
    ``log_threshold`` ``(n,)`` with the straight-through ``bandwidth`` for ``jumprelu``."""

    W_enc: object  # (n, m)
    b_enc: object  # (n,)
    W_dec: object  # (m, n)
    b_dec: object  # (m,)
    kind: str = "relu"
    k: int | None = None
    log_threshold: object = None
    bandwidth: float = 1e-3

    def __post_init__(self):
        check_choice(self.kind, SAE_KINDS, "kind")
        n, m = self.W_enc.shape
        shapes = {"b_enc": (self.b_enc.shape, (n,)), "W_dec": (self.W_dec.shape, (m, n)),
                  "b_dec": (self.b_dec.shape, (m,))}
        if self.kind == "jumprelu":
            got = None if self.log_threshold is None else self.log_threshold.shape
            shapes["log_threshold"] = (got, (n,))
        for name, (got, want) in shapes.items():
            if tuple(got or ()) != want:
                raise InvalidArgument(f"{name} has shape {got}; expected {want} for W_enc of "
                                      f"shape {(n, m)}")
        if self.kind == "topk":
            check_int(self.k, "k", min=1, max=n)

    @property
    def width(self) -> int:
        return self.W_enc.shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        """Names of :attr:`params`, in order."""
        base = ("W_enc", "b_enc", "W_dec", "b_dec")
        return (*base, "log_threshold") if self.kind == "jumprelu" else base

    @property
    def params(self) -> tuple:
        return tuple(getattr(self, name) for name in self.names)

    def with_params(self, params) -> SAE:
        """A copy holding ``params`` (ordered as :attr:`names`)."""
        params = tuple(params)
        if len(params) != len(self.names):
            raise InvalidArgument(f"params has {len(params)} arrays; expected {len(self.names)} "
                                  f"({', '.join(self.names)})")
        return SAE(**dict(zip(self.names, params, strict=True)), kind=self.kind, k=self.k,
                   bandwidth=self.bandwidth)


@dataclass(frozen=True, eq=False)
class SAEForward:
    """One forward pass, every intermediate a value of ``fmt`` in its compute container."""

    centred: object  # X - b_d
    pre: object  # P
    codes: object  # S
    reconstruction: object  # X^
    threshold: object  # theta (jumprelu) or None
    fmt: Format
    policy: Policy


@dataclass(frozen=True)
class SAELoss:
    """``total = mse + gamma * reg`` as Python floats (each computed in the format)."""

    total: float
    mse: float
    reg: float


def random_sae(m: int, width: int, *, kind: str = "relu", k: int | None = None, seed: int = 0,
               backend: str | None = None) -> SAE:
    """Return an SAE for ``m``-dimensional inputs with ``width`` latents, initialised as the
    module docstring says (float64 draws from ``numpy.random.default_rng(seed)``)."""
    m, width = check_int(m, "m", min=1), check_int(width, "width", min=1)
    check_elements(2 * m * width, f"an SAE with m={m} and width={width}")
    check_choice(kind, SAE_KINDS, "kind")
    seed = check_int(seed, "seed", min=0)
    xp = get_backend(backend)
    bound = 1.0 / math.sqrt(m)  # Kaiming-uniform, a = sqrt 5: sqrt(2/(1+5)) * sqrt(3/m)
    W_enc = np.random.default_rng(seed).uniform(-bound, bound, (width, m))
    W_dec = W_enc.T / np.maximum(np.linalg.norm(W_enc.T, axis=0, keepdims=True), 1e-8)
    theta = np.full(width, math.log(1e-3)) if kind == "jumprelu" else None
    return SAE(xp.asarray(W_enc), xp.zeros(width), xp.asarray(W_dec), xp.zeros(m), kind=kind, k=k,
               log_threshold=None if theta is None else xp.asarray(theta))


def sae_forward(sae: SAE, X, fmt: Format | str = "fp32", policy: Policy | str = "hw") -> SAEForward:
    """Encode and decode the rows of ``X`` (see the module docstring)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(X, *sae.params)
    X = xp.asarray(X)
    if X.ndim != 2 or X.shape[1] != sae.W_enc.shape[1]:
        raise InvalidArgument(f"X has shape {tuple(X.shape)}; expected (samples, "
                              f"{sae.W_enc.shape[1]})")
    x = load_finite(X, fmt, policy, "X")
    b_dec = policy.load(sae.b_dec, fmt)
    centred = fmt.round(x - b_dec)
    pre = linear(centred, policy.load(sae.W_enc, fmt), policy.load(sae.b_enc, fmt), fmt, policy)
    zero = xp.zeros((), dtype=pre.dtype)
    codes, threshold = xp.maximum(pre, zero), None
    if sae.kind == "topk":
        top = xp.argpartition(-pre, sae.k - 1, axis=1)[:, : sae.k]
        keep = xp.zeros(pre.shape, dtype=bool)
        keep[xp.arange(pre.shape[0])[:, None], top] = True
        codes = xp.where(keep, codes, zero)
    elif sae.kind == "jumprelu":
        log_theta = xp.minimum(policy.load(sae.log_threshold, fmt), _MAX_LOG_THRESHOLD)
        threshold = fmt.round(xp.exp(log_theta))
        codes = xp.where(codes > threshold, codes, zero)
    reconstruction = linear(codes, policy.load(sae.W_dec, fmt), b_dec, fmt, policy)
    return SAEForward(centred, pre, codes, reconstruction, threshold, fmt, policy)


def sae_loss(sae: SAE, X, fmt: Format | str = "fp32", policy: Policy | str = "hw", *,
             gamma: float = 1e-4, forward: SAEForward | None = None) -> SAELoss:
    """``MSE(X^, X) + gamma R`` (module docstring), each reduction as the policy accumulates."""
    fmt, policy = get_format(fmt), get_policy(policy)
    gamma = check_real(gamma, "gamma", min=0.0)
    forward = forward or sae_forward(sae, X, fmt, policy)
    xp = array_namespace(forward.codes)
    r = rounder(fmt, policy)
    x = policy.load(xp.asarray(X), fmt)
    diff = r(forward.reconstruction - x)
    mse = _mean(r(diff * diff), fmt, policy)
    if sae.kind == "relu":
        reg = _mean(policy.sum(xp.abs(forward.codes), fmt, axis=1), fmt, policy)
    elif sae.kind == "jumprelu":
        active = (forward.codes > forward.threshold).astype(forward.codes.dtype)
        reg = _mean(policy.sum(active, fmt, axis=1), fmt, policy)
    else:
        reg = xp.zeros((), dtype=mse.dtype)
    total = fmt.round(r(mse + r(literal(gamma, mse, fmt, policy) * reg)))
    return SAELoss(*(float(policy.output(v, fmt)) for v in (total, mse, reg)))


def normalise_columns(A, fmt: Format | str = "fp64", policy: Policy | str = "hw"):
    """``a_j / max(||a_j||_2, 1e-8)`` for every column (the decoder's renormalisation)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(A)
    a = policy.load(A, fmt)
    r = rounder(fmt, policy)
    norms = r(xp.sqrt(policy.sum(r(a * a), fmt, axis=0, keepdims=True)))
    return policy.output(r(a / xp.maximum(norms, literal(1e-8, a, fmt, policy))), fmt)


def tangent_projection(grad, A, fmt: Format | str = "fp64", policy: Policy | str = "hw"):
    """``g_j - (g_j . a_j) a_j`` for every column: the decoder gradient with the component along
    its (unit) column removed, so a step keeps ``||a_j|| = 1`` to first order."""
    fmt, policy = get_format(fmt), get_policy(policy)
    g, a = policy.load(grad, fmt), policy.load(A, fmt)
    r = rounder(fmt, policy)
    dots = r(policy.sum(r(g * a), fmt, axis=0, keepdims=True))
    return policy.output(r(g - r(dots * a)), fmt)


def _mean(x, fmt: Format, policy: Policy):
    """Mean of all entries: the policy's sum, then one division by the count."""
    xp = array_namespace(x)
    flat = xp.reshape(x, (-1,))
    return fmt.round(policy.sum(flat, fmt, axis=0) / literal(flat.shape[0], flat, fmt, policy))
