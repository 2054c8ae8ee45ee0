"""Numerics of rank deficit ("Unpacking Softmax", Masarczyk et al. 2025): rank measures with a
format's rounding-noise floor, the softmax Jacobian, the rank-2 circle logits of Prop. 3.2, the
rank of ``softmax(alpha Z)`` over scales, and training runs of the MLP classifier.

Rank of an ``N x C`` matrix ``M`` (rows are samples), after centring its columns when asked
(``C = M - 1 mean(M)``), from its singular values ``sigma_1 >= sigma_2 >= ...``:

- numerical rank: ``#{k : sigma_k > max(threshold * sigma_1, floor)}``;
- effective rank (Roy & Vetterli 2007): ``exp(H(q))`` with ``q_k = sigma_k / sum_j sigma_j`` over
  the singular values above the floor (0 when none is).

The floor bounds how far rounding alone can move any singular value (Weyl: ``|sigma_k(A + E) -
sigma_k(A)| <= ||E||_2 <= ||E||_F``). A matrix stored in a format with unit roundoff ``u`` is
``M + E`` with ``|E_ij| <= u |M_ij|`` (plus half the smallest subnormal), so
``||E||_F <= u/(1 - u) ||M~||_F``; centring is a projection and cannot enlarge it. Under ``hw`` the
centring and the SVD run in float64 (``gamma_max(N, C)`` of float64 more); under ``strict`` the
column means are summed sequentially in the format, which adds ``(1 + u) gamma_{N+1} ||M~||_F +
u ||C~||_F`` with ``gamma_k = k u / (1 - k u)`` (Higham, Thm 4.4); once ``(N + 1) u >= 1`` that
bound says nothing and the floor is infinite (no singular value is counted).
"""

from __future__ import annotations

import math

import numpy as np

from numerics._validate import as_real_array, check_elements, check_real
from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument
from numerics.formats import Format, get_format
from numerics.kernels import softmax
from numerics.policies import Policy, get_policy

__all__ = ["centred", "circle_logits", "circle_loss", "circle_loss_bound", "effective_rank",
           "noise_floor", "numerical_rank", "optimiser_for", "pairwise_column_distance",
           "rank_curve", "rank_summary", "singular_spectrum", "softmax_jacobian", "tail_energy"]

_U64 = 2.0**-53
#: The largest entry a measured matrix may hold: its squares and sums stay finite in float64.
MAX_ENTRY = 1e150
#: The most SVD work (``N C min(N, C)`` summed over a batch) one call takes on.
MAX_SVD_WORK = 2**38


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgument(f"{name}={value!r} must be True or False")
    return bool(value)


def _matrices(M, name: str = "M"):
    """``M`` as a real array of shape ``(..., N, C)`` with ``N, C >= 1`` and finite entries."""
    M = as_real_array(M, name)
    xp = array_namespace(M)
    if M.ndim < 2 or M.shape[-1] == 0 or M.shape[-2] == 0:
        raise InvalidArgument(f"{name} has shape {tuple(M.shape)}; expected a matrix (N, C) or a "
                              f"batch (..., N, C) with N, C >= 1")
    if M.size and not bool(xp.all(xp.isfinite(xp.asarray(M, dtype=xp.float64)))):
        raise InvalidArgument(f"{name} has NaN or infinite entries; a rank needs finite numbers")
    check_elements(int(M.size), f"{name} of shape {tuple(M.shape)}")
    rows, cols = M.shape[-2], M.shape[-1]
    work = int(M.size) * min(rows, cols)  # an SVD costs about N C min(N, C) per matrix
    if work > MAX_SVD_WORK:
        raise InvalidArgument(f"{name} of shape {tuple(M.shape)} needs about {work:.2g} operations "
                              f"of SVD (the limit is {MAX_SVD_WORK:.2g}, a few minutes); measure "
                              f"a sample of rows or fewer matrices")
    return M


def centred(M, fmt: Format | str = "fp64", policy: Policy | str = "hw", *, center: bool = True):
    """``M`` stored in ``fmt``, its columns centred under ``policy`` (float64 result)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    center = _check_bool(center, "center")
    with np.errstate(over="ignore", invalid="ignore"):
        stored = policy.load(_matrices(M), fmt)
    xp = array_namespace(stored)
    if not bool(xp.all(xp.isfinite(stored))):
        raise InvalidArgument(f"M overflows {fmt.name} (max {fmt.max:g}) when stored; scale it "
                              f"down or use a wider format")
    if stored.size and float(xp.max(xp.abs(stored))) > MAX_ENTRY:
        raise InvalidArgument(f"M has entries above {MAX_ENTRY:g}, whose squares overflow the "
                              f"float64 measurement; a rank does not change with scale, so "
                              f"divide M by a constant")
    if not center:
        return xp.asarray(stored, dtype=xp.float64)
    if policy.accumulate == "format":
        with np.errstate(over="ignore", invalid="ignore"):
            means = policy.step(policy.sum(stored, fmt, axis=-2, keepdims=True)
                                / stored.dtype.type(stored.shape[-2]), fmt)
            out = xp.asarray(policy.step(stored - means, fmt), dtype=xp.float64)
        if not bool(xp.all(xp.isfinite(out))):
            raise InvalidArgument(f"centring M in {fmt.name} under strict overflows (a column's "
                                  f"running sum passes {fmt.max:g}); use hw or a wider format")
        return out
    wide = xp.asarray(stored, dtype=xp.float64)
    return wide - xp.mean(wide, axis=-2, keepdims=True)


def noise_floor(M, fmt: Format | str = "fp64", policy: Policy | str = "hw", *,
                center: bool = True):
    """The rounding-noise floor of ``M``'s (centred) singular values in ``fmt`` (module
    docstring): no singular value at or below it is counted. A float, or an array per matrix."""
    fmt, policy = get_format(fmt), get_policy(policy)
    center = _check_bool(center, "center")
    wide = centred(M, fmt, policy, center=False)  # stored, refused if it overflows the format
    xp = array_namespace(wide)
    rows, cols = wide.shape[-2], wide.shape[-1]
    norm = _frobenius(wide, xp)
    u = fmt.unit_roundoff if fmt.name != "fp64" else _U64
    floor = (u / (1 - u) + max(rows, cols) * _U64) * norm
    floor = floor + math.sqrt(rows * cols) * fmt.smallest_subnormal / 2
    if center and policy.accumulate == "format":
        k = (rows + 1) * u
        if k >= 1:
            floor = xp.full(norm.shape, math.inf)
        else:
            C = centred(wide, fmt, policy)
            floor = floor + (1 + u) * k / (1 - k) * norm + u * _frobenius(C, xp)
    floor = to_numpy(floor, np.float64)
    return float(floor) if floor.ndim == 0 else floor


def _frobenius(M, xp):
    """``||M||_F`` per matrix without overflow: scaled by the largest entry first."""
    top = xp.max(xp.abs(M), axis=(-2, -1), keepdims=True)
    scale = xp.where(top > 0, top, 1.0)
    return top[..., 0, 0] * xp.sqrt(xp.sum((M / scale) ** 2, axis=(-2, -1)))


def singular_spectrum(M, fmt: Format | str = "fp64", policy: Policy | str = "hw", *,
                      center: bool = True):
    """The singular values (descending, float64) of ``M`` stored in ``fmt`` and centred, and the
    noise floor: ``(sigma, floor)``, batched over leading axes."""
    C = centred(M, fmt, policy, center=center)
    xp = array_namespace(C)
    sigma = to_numpy(xp.linalg.svd(C, compute_uv=False), np.float64)
    return sigma, noise_floor(M, fmt, policy, center=center)


def numerical_rank(M, threshold: float = 1e-3, *, center: bool = True,
                   fmt: Format | str = "fp64", policy: Policy | str = "hw"):
    """``#{k : sigma_k > max(threshold sigma_1, floor)}``: an int, or an int array per matrix."""
    threshold = _check_threshold(threshold)
    sigma, floor = singular_spectrum(M, fmt, policy, center=center)
    cut = np.maximum(threshold * sigma[..., :1], np.asarray(floor)[..., None])
    rank = np.sum(sigma > cut, axis=-1)
    return int(rank) if rank.ndim == 0 else rank


def _check_threshold(threshold) -> float:
    threshold = check_real(threshold, "threshold", min=0.0, max=1.0)
    if threshold >= 1.0:
        raise InvalidArgument(f"threshold={threshold!r} must be below 1 (a singular value above "
                              f"sigma_1 itself counts nothing)")
    return threshold


def effective_rank(M, *, center: bool = True, fmt: Format | str = "fp64",
                   policy: Policy | str = "hw"):
    """Roy-Vetterli ``exp(-sum q_k log q_k)``, ``q = sigma / sum(sigma)`` over the singular values
    above the noise floor (0 where none is): a float, or an array per matrix."""
    sigma, floor = singular_spectrum(M, fmt, policy, center=center)
    kept = np.where(sigma > np.asarray(floor)[..., None], sigma, 0.0)
    total = kept.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(total > 0, kept / np.where(total > 0, total, 1.0), 0.0)
        entropy = -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=-1)
    value = np.where(total[..., 0] > 0, np.exp(entropy), 0.0)
    return float(value) if value.ndim == 0 else value


def tail_energy(S):
    """``sum_{k >= 2} sigma_k(S)^2 = ||S||_F^2 - sigma_1^2`` of the (uncentred) matrices ``S``
    (float64), the left side of Prop. 3.1."""
    S = np.asarray(to_numpy(_matrices(S, "S"), np.float64))
    sigma = np.linalg.svd(S, compute_uv=False)
    return np.sum(sigma[..., 1:] ** 2, axis=-1)


def pairwise_column_distance(S):
    """``sum_{j,k} ||s_j - s_k||^2`` over the columns ``s_j`` of ``S`` (float64), computed as
    ``2 C sum_i sum_j (S_ij - m_i)^2`` with ``m_i`` the mean of row ``i`` (no cancellation)."""
    S = np.asarray(to_numpy(_matrices(S, "S"), np.float64))
    deviation = S - S.mean(axis=-1, keepdims=True)
    return 2 * S.shape[-1] * np.sum(deviation * deviation, axis=(-2, -1))


def softmax_jacobian(z, temperature: float = 1.0, fmt: Format | str = "fp64",
                     policy: Policy | str = "hw"):
    """``J = (diag p - p p^T) / T`` with ``p = softmax(z / T)`` (computed in ``fmt`` under
    ``policy``), for the last axis of ``z``; float64, shape ``(..., C, C)``."""
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    p = softmax(z, fmt, policy, temperature=temperature)
    xp = array_namespace(p)
    check_elements(int(p.size) * int(p.shape[-1]) * 3, f"the Jacobians of logits of shape "
                                                       f"{tuple(p.shape)}")
    p = xp.asarray(p, dtype=xp.float64)
    eye = xp.eye(p.shape[-1], dtype=xp.float64)
    return (p[..., :, None] * eye - p[..., :, None] * p[..., None, :]) / temperature


def circle_logits(labels, classes: int, alpha: float):
    """Prop. 3.2's rank-2 logits: ``z_ic = alpha cos(2 pi (c - y_i) / C)`` (float64, ``N x C``);
    the angle is reduced exactly (``(c - y) mod C``) before it is multiplied by ``2 pi / C``."""
    y = np.asarray(labels)
    offset = (np.arange(classes)[None, :] - y[:, None]) % classes
    return alpha * np.cos(2 * np.pi * offset / classes)


def circle_loss(classes: int, alpha: float) -> float:
    """The cross-entropy of every sample under :func:`circle_logits` (the same for every label):
    ``log(1 + sum_{c=1}^{C-1} exp(-2 alpha sin^2(pi c / C)))`` (``1 - cos x = 2 sin^2(x/2)``)."""
    c = np.arange(1, classes)
    return float(np.log1p(np.sum(np.exp(-2.0 * alpha * np.sin(np.pi * c / classes) ** 2))))


def circle_loss_bound(classes: int, alpha: float) -> float:
    """Prop. 3.2's bound ``log(1 + (C - 1) exp(-alpha (1 - cos(2 pi / C))))``."""
    return float(np.log1p((classes - 1) * np.exp(-2.0 * alpha * np.sin(np.pi / classes) ** 2)))


def rank_curve(Z, scales, threshold: float = 1e-3, fmt: Format | str = "fp64",
               policy: Policy | str = "hw") -> dict:
    """Numerical and effective rank of ``softmax(alpha Z)`` for every ``alpha`` in ``scales``, in
    one batched pass: ``{"scales", "numerical", "effective", "floor", "hidden", "overflow"}``
    (arrays), with ``alpha Z`` stored in ``fmt``, the softmax computed under ``policy`` and the
    ranks measured (uncentred) with the format's floor; ``hidden`` counts the singular values
    above ``threshold sigma_1`` that the floor hides. A scale whose logits or softmax leave the
    format's range (``overflow``) has NaN ranks."""
    fmt, policy = get_format(fmt), get_policy(policy)
    Z = _matrices(Z, "Z")
    if Z.ndim != 2:
        raise InvalidArgument(f"Z has shape {tuple(Z.shape)}; expected one matrix (N, C)")
    threshold = _check_threshold(threshold)
    alphas = to_numpy(as_real_array(scales, "scales"), np.float64).reshape(-1)
    check_elements(int(alphas.size) * int(Z.size), "softmax(alpha Z) for every scale")
    z = np.asarray(to_numpy(Z, np.float64))
    scaled = z[None] * alphas[:, None, None]
    overflow = ~np.all(np.abs(scaled) <= fmt.max, axis=(1, 2))
    numerical = np.full(alphas.size, np.nan)
    effective, floor, hidden = numerical.copy(), numerical.copy(), numerical.copy()
    keep = np.flatnonzero(~overflow)
    if keep.size:
        with np.errstate(over="ignore", invalid="ignore"):
            S = np.asarray(to_numpy(softmax(scaled[keep], fmt, policy), np.float64))
        finite = np.all(np.isfinite(S), axis=(1, 2))
        overflow[keep[~finite]] = True
        keep, S = keep[finite], S[finite]
    if keep.size:
        sigma, low = singular_spectrum(S, fmt, policy, center=False)
        low = np.broadcast_to(np.asarray(low), sigma.shape[:-1])
        relative = threshold * sigma[..., :1]
        numerical[keep] = np.sum(sigma > np.maximum(relative, low[..., None]), axis=-1)
        hidden[keep] = np.sum((sigma > relative) & (sigma <= low[..., None]), axis=-1)
        effective[keep] = effective_rank(S, center=False, fmt=fmt, policy=policy)
        floor[keep] = low
    return {"scales": alphas, "numerical": numerical, "effective": effective, "floor": floor,
            "hidden": hidden, "overflow": overflow}


# --- training runs -------------------------------------------------------------------------------

#: The optimisers a run may use: ``adam`` (lr 1e-3) and ``gd``, heavy-ball gradient descent
#: (momentum 0.9, lr 0.01 T): the cross-entropy gradient carries a factor 1/T, which ``gd``'s
#: learning rate undoes so that every temperature starts at the same speed; Adam is invariant to
#: that factor.
TRAIN_OPTIMISERS: tuple[str, ...] = ("gd", "adam")
DEFAULT_LR = {"gd": 0.01, "adam": 1e-3}


def optimiser_for(kind: str, temperature: float, lr: float | None = None):
    """The :class:`numerics.train.Optimiser` of a run (see :data:`TRAIN_OPTIMISERS`)."""
    from numerics._validate import check_choice
    from numerics.train.optimisers import Optimiser

    check_choice(kind, TRAIN_OPTIMISERS, "optimizer")
    rate = DEFAULT_LR[kind] if lr is None else check_real(lr, "lr", min=0.0, strict_min=True)
    if kind == "gd":
        return Optimiser("momentum", lr=rate * temperature, momentum=0.9)
    return Optimiser("adam", lr=rate)


def rank_summary(logits, features, fmt, policy, temperature: float) -> dict:
    """The rank statistics of one network's outputs on its training set (float64 numbers):
    effective and numerical rank (1e-3 and 1e-2) of the centred logits, effective and 1e-3
    numerical rank of the centred penultimate features, their noise floors, and how many singular
    values above the 1e-3 threshold the floor hides (``floor_cut``)."""
    keys = ("erank_logits", "nrank_logits", "nrank_logits_1e-2", "erank_penultimate",
            "nrank_penultimate", "floor_logits", "floor_cut", "logits_norm", "scaled_logits_norm")
    wide = [np.asarray(to_numpy(m, np.float64)) for m in (logits, features)]
    if not all(np.all(np.isfinite(m)) for m in wide):  # a diverged network: no ranks
        return dict.fromkeys(keys, math.nan)
    sigma, floor = singular_spectrum(logits, fmt, policy)
    hidden = int(np.sum((sigma > 1e-3 * sigma[0]) & (sigma <= floor))) if sigma.size else 0
    z = np.asarray(to_numpy(logits, np.float64))
    return {
        "erank_logits": effective_rank(logits, fmt=fmt, policy=policy),
        "nrank_logits": numerical_rank(logits, 1e-3, fmt=fmt, policy=policy),
        "nrank_logits_1e-2": numerical_rank(logits, 1e-2, fmt=fmt, policy=policy),
        "erank_penultimate": effective_rank(features, fmt=fmt, policy=policy),
        "nrank_penultimate": numerical_rank(features, 1e-3, fmt=fmt, policy=policy),
        "floor_logits": floor,
        "floor_cut": hidden,
        "logits_norm": float(np.mean(np.linalg.norm(z, axis=-1))),
        "scaled_logits_norm": float(np.mean(np.linalg.norm(z, axis=-1)) / temperature),
    }
