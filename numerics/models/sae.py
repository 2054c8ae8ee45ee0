"""Sparse autoencoders (SAEs): ReLU, TopK, JumpReLU and matching-pursuit (MP) encoders with a
linear decoder of unit-norm columns, under a format and a precision policy, as the reference
experiments of Barin Pacela, Joshi et al. (2026) define them (``models/saes.py`` of their code;
see the sae_amortisation notes, Sec. 2.3).

For a batch ``X`` (``B x m``, one sample per row), width ``n`` (latents):

- centring and encoder: ``X~ = X - b_d``, ``P = X~ W_e^T + b_e`` with ``W_e`` ``(n, m)``;
- codes ``S``: ``relu``: ``max(P, 0)``; ``topk``: ``max(P, 0)`` on the ``k`` largest entries of
  each row of ``P`` (ties at the ``k``-th value go to the lower latent index), 0 elsewhere;
  ``jumprelu``: ``U 1[U > theta]`` with ``U = max(P, 0)`` and ``theta = exp(min(log_theta, 20))``
  per latent;
- ``mp``: the encoder is not used. With the unit atoms ``d_j = a_j / max(||a_j||, 1e-8)`` of the
  decoder's columns ``a_j``, each row runs ``k`` greedy steps from ``r_0 = x - b_d``: step ``t``
  picks ``j_t = argmax |<r_{t-1}, d_j>|`` over the atoms not yet picked (the first on ties), sets
  ``s_{j_t} = c_t = <r_{t-1}, d_{j_t}>`` (of either sign) and ``r_t = r_{t-1} - c_t d_{j_t}``;
- decoder: ``X^ = S A_d^T + b_d`` with ``A_d`` ``(m, n)``, columns kept at unit norm; for ``mp``
  the decoder uses the unit atoms, ``X^ = S D^T + b_d``, as the reference does;
- loss: ``MSE(X^, X) + gamma R`` with ``MSE = (1/(B m)) sum (X^ - X)^2`` and ``R`` the batch mean
  of ``||s||_1`` (``relu``), of ``sum_j 1[s_j > theta_j]`` (``jumprelu``), or 0 (``topk``,
  ``mp``).

Each matrix product is one kernel (accumulated as the policy says, rounded once to the format), and
so is each elementwise step; under ``strict`` every operation inside a kernel rounds too. MP's
correlations ``r_{t-1} D`` are one product per step, as in the reference.

Initialisation: ``W_e`` Kaiming-uniform with ``a = sqrt 5``, i.e. ``U(-1/sqrt m, 1/sqrt m)``;
``b_e = 0``, ``b_d = 0``; ``A_d = W_e^T`` with columns normalised; ``log_theta = log 1e-3``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numerics._arithmetic import literal, rounder
from numerics._repr import short_repr
from numerics._validate import check_choice, check_elements, check_int, check_real
from numerics.backend import array_namespace, get_backend
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.kernels import load_finite
from numerics.policies import Policy, get_policy

__all__ = ["SAE", "SAE_KINDS", "Pursuit", "SAEForward", "SAELoss", "normalise_columns",
           "random_sae", "sae_forward", "sae_loss", "tangent_projection"]

SAE_KINDS: tuple[str, ...] = ("relu", "topk", "jumprelu", "mp")
_MAX_LOG_THRESHOLD = 20.0  # the reference clamps log(theta) at 20 before exponentiating
_MIN_NORM = 1e-8  # the reference's floor on a column norm before dividing by it


@dataclass(frozen=True, eq=False)
class SAE:
    """An SAE's parameters (NumPy or CuPy arrays) and its kind; ``k`` for ``topk`` (latents kept)
    and ``mp`` (pursuit steps), and ``log_threshold`` ``(n,)`` with the straight-through
    ``bandwidth`` for ``jumprelu``. An ``mp`` SAE keeps an encoder that its codes never use."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

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
        if self.kind in ("topk", "mp"):
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
class Pursuit:
    """What an ``mp`` forward pass keeps for its backward pass: the unit atoms ``D`` ``(m, n)``
    and the clamped norms ``max(||a_j||, 1e-8)`` ``(n,)`` they were divided by, the atoms picked
    ``(B, k)``, their coefficients ``c_t`` ``(B, k)`` and the residuals ``r_0 .. r_{k-1}``
    ``(k, B, m)``."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    atoms: object
    norms: object
    selected: object
    coefficients: object
    residuals: object


@dataclass(frozen=True, eq=False)
class SAEForward:
    """One forward pass, every intermediate a value of ``fmt`` in its compute container;
    ``weights`` are the parameters as the pass read them (ordered as ``SAE.names``). ``pre`` is
    None for ``mp``, whose steps are in ``pursuit``."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    centred: object  # X - b_d
    pre: object  # P
    codes: object  # S
    reconstruction: object  # X^
    threshold: object  # theta (jumprelu) or None
    fmt: Format
    policy: Policy
    weights: tuple = ()
    pursuit: Pursuit | None = None


@dataclass(frozen=True)
class SAELoss:
    """``total = mse + gamma * reg`` as Python floats (each computed in the format)."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

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
    W_dec = W_enc.T / np.maximum(np.linalg.norm(W_enc.T, axis=0, keepdims=True), _MIN_NORM)
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
    weights = tuple(policy.load(p, fmt) for p in sae.params)
    return _forward_pass(sae, weights, x, fmt, policy)


def sae_loss(sae: SAE, X, fmt: Format | str = "fp32", policy: Policy | str = "hw", *,
             gamma: float = 1e-4, forward: SAEForward | None = None) -> SAELoss:
    """``MSE(X^, X) + gamma R`` (module docstring), each reduction as the policy accumulates."""
    fmt, policy = get_format(fmt), get_policy(policy)
    gamma = check_real(gamma, "gamma", min=0.0)
    forward = forward or sae_forward(sae, X, fmt, policy)
    xp = array_namespace(forward.codes)
    x = policy.load(xp.asarray(X), fmt)
    terms = _loss_terms(sae.kind, forward, x, gamma)
    return SAELoss(*(float(policy.output(v, fmt)) for v in terms))


def normalise_columns(A, fmt: Format | str = "fp64", policy: Policy | str = "hw"):
    """``a_j / max(||a_j||_2, 1e-8)`` for every column (the decoder's renormalisation)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    unit, _ = _unit_columns(policy.load(A, fmt), fmt, policy)
    return policy.output(unit, fmt)


def tangent_projection(grad, A, fmt: Format | str = "fp64", policy: Policy | str = "hw"):
    """``g_j - (g_j . a_j) a_j`` for every column: the decoder gradient with the component along
    its (unit) column removed, so a step keeps ``||a_j|| = 1`` to first order."""
    fmt, policy = get_format(fmt), get_policy(policy)
    g, a = policy.load(grad, fmt), policy.load(A, fmt)
    return policy.output(_tangent(g, a, fmt, policy), fmt)


# --- kernels on loaded values (values of the format in its compute container) -----------------
# The training loop calls these directly: its data and weights are loaded once, not every step.


def _to_format(y, fmt: Format):
    """``fmt.round(y)``, skipped where ``y``'s dtype is the format's own (fp64, fp32): every value
    of that dtype is a value of the format already."""
    return y if y.dtype == fmt.dtype else fmt.round(y)


def _forward_pass(sae: SAE, weights: tuple, x, fmt: Format, policy: Policy) -> SAEForward:
    """The forward pass of ``sae``'s kind with loaded ``weights`` on the loaded batch ``x``."""
    xp = array_namespace(x)
    W_enc, b_enc, W_dec, b_dec = weights[:4]
    centred = _to_format(x - b_dec, fmt)
    if sae.kind == "mp":
        codes, pursuit = _pursuit(centred, W_dec, sae.k, fmt, policy)
        reconstruction = _linear(codes, pursuit.atoms, b_dec, fmt, policy)
        return SAEForward(centred, None, codes, reconstruction, None, fmt, policy, weights,
                          pursuit)
    pre = _linear(centred, W_enc, b_enc, fmt, policy)
    zero = xp.zeros((), dtype=pre.dtype)
    codes, threshold = xp.maximum(pre, zero), None
    if sae.kind == "topk":
        codes = xp.where(_top_k(pre, sae.k), codes, zero)
    elif sae.kind == "jumprelu":
        log_theta = xp.minimum(weights[4], literal(_MAX_LOG_THRESHOLD, pre, fmt, policy))
        threshold = _to_format(xp.exp(log_theta), fmt)
        codes = xp.where(codes > threshold, codes, zero)
    reconstruction = _linear(codes, W_dec, b_dec, fmt, policy)
    return SAEForward(centred, pre, codes, reconstruction, threshold, fmt, policy, weights)


def _loss_terms(kind: str, forward: SAEForward, x, gamma: float) -> tuple:
    """``(total, mse, reg)`` as 0-d arrays of the compute container (values of the format)."""
    fmt, policy = forward.fmt, forward.policy
    xp = array_namespace(forward.codes)
    r = rounder(fmt, policy)
    diff = r(forward.reconstruction - x)
    mse = _mean(r(diff * diff), fmt, policy)
    if kind == "relu":
        reg = _mean(policy.sum(xp.abs(forward.codes), fmt, axis=1), fmt, policy)
    elif kind == "jumprelu":
        active = (forward.codes > forward.threshold).astype(forward.codes.dtype)
        reg = _mean(policy.sum(active, fmt, axis=1), fmt, policy)
    else:
        reg = xp.zeros((), dtype=mse.dtype)
    total = _to_format(r(mse + r(literal(gamma, mse, fmt, policy) * reg)), fmt)
    return total, mse, reg


def _unit_columns(a, fmt: Format, policy: Policy) -> tuple:
    """``(a_j / nu_j, nu_j)`` with ``nu_j = max(||a_j||, 1e-8)``: the unit columns as one kernel
    (rounded to the format) and the clamped norms ``(1, n)`` as the kernel held them."""
    xp = array_namespace(a)
    r = rounder(fmt, policy)
    norms = r(xp.sqrt(policy.sum(r(a * a), fmt, axis=0, keepdims=True)))
    norms = xp.maximum(norms, literal(_MIN_NORM, a, fmt, policy))
    return _to_format(r(a / norms), fmt), norms


def _tangent(g, a, fmt: Format, policy: Policy):
    """``g_j - (g_j . a_j) a_j`` for every column, as one kernel."""
    r = rounder(fmt, policy)
    dots = r(policy.sum(r(g * a), fmt, axis=0, keepdims=True))
    return _to_format(r(g - r(dots * a)), fmt)


def _linear(h, w, b, fmt: Format, policy: Policy):
    """``h W^T + b`` as one kernel (:func:`numerics.models.mlp.linear`, which rounds even where
    the container is the format)."""
    return _to_format(policy.matmul(h, w.T, fmt) + b, fmt)


def _top_k(pre, k: int):
    """The mask of the ``k`` largest entries of each row (ties to the lower index).

    A partition finds each row's ``k``-th largest value, and ``pre >= kth`` keeps exactly ``k``
    entries unless values tie at it (common in narrow formats) or a row holds NaN; such batches
    take a stable sort instead. A partition is several times faster than ``argpartition`` here.
    """
    xp = array_namespace(pre)
    n = pre.shape[1]
    kth = xp.partition(pre, n - k, axis=1)[:, n - k : n - k + 1]
    keep = pre >= kth
    if bool(xp.any(xp.sum(keep, axis=1) != k)):
        order = xp.argsort(-pre, axis=1, kind="stable")[:, :k]
        keep = xp.zeros(pre.shape, dtype=bool)
        keep[xp.arange(pre.shape[0])[:, None], order] = True
    return keep


def _pursuit(centred, W_dec, k: int, fmt: Format, policy: Policy):
    """Codes by ``k`` matching-pursuit steps on the unit columns of ``W_dec`` (module docstring);
    a loop over the steps, each vectorised over the batch."""
    xp = array_namespace(centred)
    r = rounder(fmt, policy)
    atoms, norms = _unit_columns(W_dec, fmt, policy)
    rows_of_atoms = atoms.T  # (n, m): atom j is row j, for gathering one atom per sample
    batch, m = centred.shape
    n = atoms.shape[1]
    rows = xp.arange(batch)
    selected = xp.zeros((batch, k), dtype=np.int64)
    coefficients = xp.zeros((batch, k), dtype=centred.dtype)
    residuals = xp.zeros((k, batch, m), dtype=centred.dtype)
    taken = xp.zeros((batch, n), dtype=bool)
    below = xp.asarray(-1.0, dtype=centred.dtype)  # below every |correlation|: for atoms taken
    residual = centred
    for t in range(k):
        residuals[t] = residual
        z = _to_format(policy.matmul(residual, atoms, fmt), fmt)
        j = xp.argmax(xp.where(taken, below, xp.abs(z)), axis=1)
        c = z[rows, j]
        selected[:, t], coefficients[:, t] = j, c
        taken[rows, j] = True
        residual = _to_format(r(residual - r(c[:, None] * rows_of_atoms[j])), fmt)
    codes = xp.zeros((batch, n), dtype=centred.dtype)
    codes[rows[:, None], selected] = coefficients
    return codes, Pursuit(atoms, norms[0], selected, coefficients, residuals)


def _mean(x, fmt: Format, policy: Policy):
    """Mean of all entries: the policy's sum, then one division by the count."""
    xp = array_namespace(x)
    flat = xp.reshape(x, (-1,))
    total = policy.sum(flat, fmt, axis=0) / literal(flat.shape[0], flat, fmt, policy)
    return _to_format(total, fmt)
