"""Kernels shared by several theorems: softmax, entropy, log-sum-exp, under a format and policy.

Each kernel takes arrays plus ``fmt`` and ``policy`` and returns arrays in the format's storage
dtype; how it rounds is the policy's business (see :mod:`numerics.policies`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from numerics._validate import as_real_array, check_real
from numerics.backend import array_namespace
from numerics.errors import InvalidArgument, InvalidType
from numerics.formats import Format, get_format
from numerics.policies import Policy, get_policy

__all__ = ["entropy", "load_finite", "logsumexp", "sequential_total", "softmax",
    "softmax_entropy", "softmax_in_container"]


def softmax(
    logits,
    fmt: Format | str = "fp64",
    policy: Policy | str = "hw",
    *,
    temperature: float = 1.0,
    axis: int = -1,
    mask=None,
):
    """Return ``softmax_theta(e)_i = exp(e_i / theta) / sum_k exp(e_k / theta)`` along ``axis``.

    The logits are first stored in ``fmt``; the maximum is subtracted before exponentiating (which
    leaves the exact result unchanged), as every production softmax does. With a boolean ``mask``
    (broadcast against the logits) the softmax runs over the unmasked entries only and masked
    entries get weight exactly 0 (causal attention); every row needs one unmasked entry.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    if mask is None and _by_row_blocks(logits, axis):
        try:
            return _softmax_by_row_blocks(logits, fmt, policy, temperature)
        except (InvalidArgument, InvalidType):
            pass  # said below, with the index in the whole array
    return policy.output(softmax_in_container(logits, fmt, policy, temperature=temperature,
                                              axis=axis, mask=mask), fmt)


#: A batch softmax over the last axis of at least this many NumPy elements runs in blocks of
#: rows on :func:`_row_threads` threads (each row is computed exactly as it would be alone).
ROW_BLOCK_MIN_SIZE = 2**20
#: Elements per block: its temporaries stay in the cache between the passes over it.
_ROW_BLOCK_ELEMENTS = 2**17


def _by_row_blocks(logits, axis) -> bool:
    return (isinstance(logits, np.ndarray) and logits.ndim >= 2
            and logits.size >= ROW_BLOCK_MIN_SIZE and isinstance(axis, int | np.integer)
            and axis in (-1, logits.ndim - 1) and _row_threads() > 1)


@functools.lru_cache(maxsize=1)
def _row_threads() -> int:
    """Threads for a batch softmax: as many as the process's BLAS pool has (a sweep's workers
    limit it to their share of the cores before their first cell)."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


@functools.lru_cache(maxsize=1)
def _row_pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=_row_threads(), thread_name_prefix="softmax")


def _softmax_by_row_blocks(logits, fmt: Format, policy: Policy, temperature: float):
    """:func:`softmax` over the last axis, block of rows by block of rows on a thread pool
    (NumPy's loops and the compiled kernels release the GIL): each row's maximum, exponentials,
    sum and quotients are the same operations in the same order as in one call on the whole
    array, so the result is bitwise the same."""
    rows = logits.reshape(-1, logits.shape[-1])
    step = max(1, _ROW_BLOCK_ELEMENTS // rows.shape[1])
    out = np.empty(rows.shape, dtype=fmt.dtype)

    def block(start: int) -> None:
        out[start:start + step] = policy.output(softmax_in_container(
            rows[start:start + step], fmt, policy, temperature=temperature), fmt)

    list(_row_pool().map(block, range(0, rows.shape[0], step)))
    return out.reshape(logits.shape)


def softmax_in_container(logits, fmt: Format, policy: Policy, *, temperature: float = 1.0,
                         axis: int = -1, mask=None):
    """:func:`softmax` before its output is stored: the quotients in the compute container
    (``fmt.container``), not yet rounded to ``fmt``, in an array of their own."""
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    axis = _check_axis(axis, x.ndim)
    if temperature != 1.0:
        with np.errstate(over="ignore"):  # an overflow is reported just below
            x = policy.step(x / x.dtype.type(temperature), fmt)
        if not (bool(xp.isfinite(xp.max(x))) and bool(xp.isfinite(xp.min(x)))):
            raise InvalidArgument(f"logits / temperature overflow {fmt.name} (max {fmt.max:g}) at "
                                  f"temperature={temperature!r}; use a larger temperature or a "
                                  f"wider format")
    # work in place on a copy we own: at n = 2^24 every fresh array costs page faults
    own = x is not logits
    if mask is None:
        top = xp.max(x, axis=axis, keepdims=True)
        z = xp.subtract(x, top, out=x) if own else x - top
        z = policy.step(z, fmt)
        e = policy.step(xp.exp(z, out=z), fmt)
    else:
        mask = _check_mask(mask, x.shape, axis, xp)
        top = xp.max(xp.where(mask, x, xp.asarray(-np.inf, dtype=x.dtype)), axis=axis,
                     keepdims=True)
        # masked entries are computed too (and may overflow) but replaced by exactly 0 at the
        # end, so no masked value reaches a kept one
        with np.errstate(over="ignore", invalid="ignore"):
            z = policy.step(xp.subtract(x, top, out=x) if own else x - top, fmt)
            e = policy.step(xp.exp(z, out=z), fmt)
        e = xp.where(mask, e, xp.zeros((), dtype=x.dtype))
    total = policy.sum(e, fmt, axis=axis, keepdims=True)
    return xp.divide(e, total, out=e)


def entropy(p, fmt: Format | str = "fp64", policy: Policy | str = "hw", *, axis: int = -1):
    """Return the Shannon entropy ``H(p) = -sum_i p_i ln p_i`` in nats (with ``0 ln 0 = 0``)."""
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(p)
    q = load_finite(p, fmt, policy, "probabilities")
    axis = _check_axis(axis, q.ndim)
    if bool(xp.any(q < 0)) or bool(xp.any(q > 1)):
        raise InvalidArgument("probabilities must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        logq = policy.step(xp.log(q), fmt)
        terms = policy.step(xp.where(q > 0, -q * logq, xp.zeros_like(q)), fmt)
    return policy.output(policy.sum(terms, fmt, axis=axis), fmt)


def softmax_entropy(
    logits,
    fmt: Format | str = "fp64",
    policy: Policy | str = "hw",
    *,
    temperature: float = 1.0,
    axis: int = -1,
):
    """Return the entropy (nats) of ``softmax_theta(logits)`` along ``axis``.

    Uses ``H = ln Z - sum_i p_i z_i`` with ``z = (e - max e) / theta`` and ``Z = sum exp(z)``,
    which stays accurate where ``-p ln p`` of tiny coefficients would underflow. The largest
    term of ``Z`` is exactly 1, so ``ln Z = log1p(R)`` with ``R`` the sum of the others: ``ln Z``
    keeps its relative accuracy when ``R`` is below the unit roundoff (``ln(1 + R)`` computed as
    ``ln`` of the rounded ``1 + R`` would lose ``R`` entirely).
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    axis = _check_axis(axis, x.ndim)
    z = policy.step(x - xp.max(x, axis=axis, keepdims=True), fmt)
    if temperature != 1.0:
        z = policy.step(z / z.dtype.type(temperature), fmt)
    e = policy.step(xp.exp(z), fmt)
    total = policy.sum(e, fmt, axis=axis, keepdims=True)
    p = policy.step(e / total, fmt)
    mean = policy.sum(policy.step(p * z, fmt), fmt, axis=axis)
    # the others: every term but one largest (which is exp(0) = 1 exactly)
    first_top = xp.cumsum(z == 0, axis=axis) == 1
    others = policy.sum(xp.where(first_top & (z == 0), xp.zeros_like(e), e), fmt, axis=axis)
    log_total = policy.step(xp.log1p(others), fmt)
    return policy.output(log_total - mean, fmt)


def logsumexp(logits, fmt: Format | str = "fp64", policy: Policy | str = "hw", *, axis: int = -1):
    """Return ``ln sum_i exp(e_i)`` along ``axis``, computed as ``max + ln sum exp(e - max)``."""
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    axis = _check_axis(axis, x.ndim)
    m = xp.max(x, axis=axis, keepdims=True)
    e = policy.step(xp.exp(policy.step(x - m, fmt)), fmt)
    total = policy.sum(e, fmt, axis=axis, keepdims=True)
    out = policy.step(xp.log(total), fmt) + m
    return policy.output(xp.squeeze(out, axis=axis), fmt)


def _check_axis(axis, ndim: int) -> int:
    """``axis`` as an int naming one of ``ndim`` dimensions (negative counts from the end)."""
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise InvalidType(f"axis={axis!r} (type={type(axis).__name__}) must be an int")
    if not -ndim <= int(axis) < ndim:
        raise InvalidArgument(f"axis={axis} is out of range for an array of {ndim} "
                              f"dimension{'s' if ndim != 1 else ''}")
    return int(axis)


def _check_mask(mask, shape: tuple, axis: int, xp):
    """The boolean ``mask`` broadcast to ``shape``, every row along ``axis`` with one entry."""
    mask = xp.asarray(mask)
    if mask.dtype.kind != "b":
        raise InvalidType(f"mask has dtype {mask.dtype}; pass a boolean mask (True = keep)")
    try:
        mask = xp.broadcast_to(mask, shape)
    except ValueError:
        raise InvalidArgument(f"mask has shape {tuple(mask.shape)}, which does not broadcast to "
                              f"the logits' shape {tuple(shape)}") from None
    empty = ~xp.any(mask, axis=axis)
    if bool(xp.any(empty)):
        first = int(xp.argmax(empty.ravel()))
        raise InvalidArgument(f"mask leaves row {first} (along axis {axis}) with no entry; a "
                              f"softmax needs at least one unmasked logit per row")
    return mask


def load_finite(x, fmt: Format, policy: Policy, name: str):
    """Store ``x`` in ``fmt`` (via ``policy.load``), raising if it is not finite there.

    Raises ``ValueError`` naming the first bad index, for NaN or infinite input, and for finite
    input that overflows the format (which would otherwise give a silently wrong result).
    """
    xp = array_namespace(x)
    x = as_real_array(x, name)
    if x.size == 0:
        raise InvalidArgument(f"{name} are empty; pass at least one value")
    loaded = policy.load(x, fmt)
    # NaN propagates through max, +inf sets it and -inf sets min: two cheap reductions decide
    if not (bool(xp.isfinite(xp.max(loaded))) and bool(xp.isfinite(xp.min(loaded)))):
        finite = xp.isfinite(loaded)
        raw = xp.asarray(x, dtype=np.float64)  # a container cast would turn 1e39 into inf
        bad_in = ~xp.isfinite(raw)
        if bool(xp.any(bad_in)):
            kind = "NaN" if bool(xp.any(xp.isnan(raw))) else "infinite"
            mask = xp.isnan(raw) if kind == "NaN" else bad_in
            first, count = int(xp.argmax(mask.ravel())), int(mask.sum())
            plural = "s" if count != 1 else ""
            raise InvalidArgument(f"{count} {kind} value{plural} in {name} (first at index "
                                  f"{first}); "
                                  f"pass finite {name}")
        first = int(xp.argmax((~finite).ravel()))
        raise InvalidArgument(f"{name} overflow {fmt.name} (max {fmt.max:g}) at index {first}; "
                              f"scale them into the format's range")
    return loaded


def sequential_total(first: float, term: float, count: int, fmt: Format) -> float:
    """Return ``first + term + ... + term`` (``count`` terms) summed left to right in ``fmt``.

    Within a binade ``[P, 2P)`` the spacing is ``q = P * eps`` and adding ``term`` to a multiple of
    ``q`` adds the multiple of ``q`` nearest to ``term`` (ties to even), so each binade costs one
    step; a zero increment means the sum has stagnated. ``term >= 0`` is assumed.
    """
    x, remaining = float(fmt.round(np.float64(first))), int(count)
    term = float(term)
    while remaining > 0:
        if x < fmt.smallest_normal:
            spacing, end = fmt.smallest_subnormal, fmt.smallest_normal
        else:
            power = 2.0 ** math.floor(math.log2(x))
            spacing, end = power * fmt.eps, 2 * power
        steps_ratio = term / spacing
        whole = math.floor(steps_ratio)
        if steps_ratio - whole == 0.5:
            # ties to even: from an even multiple of q the even one of (whole, whole + 1) is
            # added; from an odd multiple, the first step lands on an even multiple
            if round(x / spacing) % 2 == 1:
                x, remaining = float(fmt.round(np.float64(x + term))), remaining - 1
                continue
            increment = spacing * (whole if whole % 2 == 0 else whole + 1)
        else:
            increment = spacing * round(steps_ratio)
        if increment == 0:
            break
        inside = max(0, min(remaining, math.ceil((end - x) / increment) - 1))
        x += inside * increment
        remaining -= inside
        if remaining > 0:
            x = float(fmt.round(np.float64(x + term)))
            remaining -= 1
        if math.isinf(x) or math.isnan(x):
            break
    return x
