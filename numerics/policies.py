"""Precision policies: how arithmetic is done for a storage format.

- ``hw`` is what GPU kernels do: values are stored in the format, every elementwise operation is
  computed in float32 (float64 for fp64) and only the kernel's output is rounded back; reductions
  and matrix products accumulate in float32.
- ``strict`` rounds to the format after every operation and accumulates sequentially in the
  format itself: the worst case, and what a plain ``ml_dtypes`` reduction does.

Kernels call the methods below (``load``, ``step``, ``sum``, ``matmul``, ``output``) and never
branch on a policy's name. The sequential in-format accumulation of ``strict`` runs in compiled
loops (:mod:`numerics._compiled`, numba) that give the same bits as the array references
``_reference_sequential_sum`` and ``_reference_matmul`` below. On CuPy the ``strict`` sum is done on
the host, because a GPU reduction is never sequential, and the ``strict`` product runs the
reference on the device; the numbers are identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numerics._validate import as_real_array, check_choice
from numerics.backend import array_namespace, to_numpy
from numerics.formats import COMPILED_MIN_SIZE, Format, get_format

__all__ = ["POLICIES", "POLICY_NAMES", "Policy", "get_policy"]


@dataclass(frozen=True)
class Policy:
    """How a kernel computes for a format: where it rounds and what it accumulates in."""

    name: str
    accumulate: str  # "fp32": reductions in float32 (float64 for fp64); "format": sequential
    round_each_op: bool  # elementwise results rounded to the format (else kept in the container)

    def load(self, x, fmt: Format | str):
        """Return ``x`` as stored in ``fmt`` (rounded once), in the dtype the kernel computes in."""
        fmt = get_format(fmt)
        x = as_real_array(x, "x")
        if x.dtype == fmt.dtype:  # already stored in the format: widening is exact
            if (fmt.dtype != fmt.container and array_namespace(x) is np
                    and x.size >= COMPILED_MIN_SIZE):
                return _compiled().widen(x, fmt)  # one pass, the library cast's bits
            return x.astype(fmt.container)
        if x.dtype not in (np.float32, np.float64):
            # narrow floats (float16, bf16, fp8) are exact in float32; integers go via float64
            narrow = x.dtype.kind in "fV" and x.dtype.itemsize <= 4
            x = x.astype(np.float32 if narrow else np.float64)
        return fmt.round(x).astype(fmt.container, copy=False)

    def constant(self, value: float, like, fmt: Format | str):
        """``value`` stored in ``fmt``, in ``like``'s namespace and dtype (so it never widens
        ``like``: a bf16 array plus a Python float would become float32)."""
        xp = array_namespace(like)
        return self.load(xp.asarray(value, dtype=np.float64), fmt).astype(like.dtype)

    def step(self, y, fmt: Format | str):
        """Round an intermediate result when this policy rounds after every operation."""
        return get_format(fmt).round(y) if self.round_each_op else y

    def sum(self, x, fmt: Format | str, *, axis: int = -1, keepdims: bool = False):
        """Sum along ``axis``: in float32 (``hw``), or sequentially in ``fmt`` (``strict``)."""
        fmt = get_format(fmt)
        xp = array_namespace(x)
        if self.accumulate != "format":
            return xp.sum(x, axis=axis, keepdims=keepdims, dtype=fmt.container)
        host = to_numpy(x)
        if not -host.ndim <= axis < host.ndim or host.shape[axis] == 0:
            total = _reference_sequential_sum(host, fmt, axis)
        else:
            total = _compiled().sequential_sum(host, fmt, axis)
        if keepdims:
            total = np.expand_dims(total, axis)
        return xp.asarray(total)

    def matmul(self, a, b, fmt: Format | str):
        """Return ``a @ b`` accumulated in float32 (``hw``) or term by term in ``fmt`` (``strict``).

        The ``strict`` product runs the inner dimension in order, rounding each product and each
        partial sum, which is how an in-format dot product without a wide accumulator behaves.
        """
        fmt = get_format(fmt)
        xp = array_namespace(a, b)
        if not self.round_each_op:
            return xp.matmul(a, b)
        a = xp.asarray(a, dtype=fmt.container)
        b = xp.asarray(b, dtype=fmt.container)
        if (xp is np and a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] > 0
                and a.shape[-1] == b.shape[-2]):
            return _compiled().sequential_matmul(a, b, fmt)
        return _reference_matmul(a, b, fmt)

    def output(self, y, fmt: Format | str):
        """Round a kernel's result to ``fmt`` and return it in the format's storage dtype."""
        return get_format(fmt).store(y)

    def __str__(self) -> str:
        return self.name


POLICIES: dict[str, Policy] = {
    p.name: p
    for p in (
        Policy("hw", accumulate="fp32", round_each_op=False),
        Policy("strict", accumulate="format", round_each_op=True),
    )
}

POLICY_NAMES: tuple[str, ...] = tuple(POLICIES)


def get_policy(policy: str | Policy) -> Policy:
    """Return the :class:`Policy` called ``policy`` (``hw`` or ``strict``)."""
    if isinstance(policy, Policy):
        return policy
    return POLICIES[check_choice(policy, POLICY_NAMES, "policy")]


def _compiled():
    from numerics import _compiled  # imports numba: only when a strict sum or product runs

    return _compiled


def _reference_matmul(a, b, fmt: Format):
    """The ``strict`` product with array operations (NumPy or CuPy): one rounded outer product
    and one rounded addition per step of the inner dimension."""
    acc = fmt.round(a[..., :, :1] * b[..., :1, :])
    for k in range(1, a.shape[-1]):
        acc = fmt.round(acc + fmt.round(a[..., :, k : k + 1] * b[..., k : k + 1, :]))
    return acc


def _reference_sequential_sum(x: np.ndarray, fmt: Format, axis: int) -> np.ndarray:
    # np.cumsum runs left to right and rounds each partial sum in the array's dtype; for the
    # ml_dtypes types and float16 that dtype is the format itself (np.sum would be pairwise).
    stored = x.astype(fmt.dtype) if x.dtype != fmt.dtype else x
    partial = np.cumsum(stored, axis=axis)
    return np.take(partial, -1, axis=axis).astype(fmt.container)
