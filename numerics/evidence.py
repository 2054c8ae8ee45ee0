"""Measured evidence for precision mechanisms: what a row's verdict can cite.

These functions measure, on the row's own data, the facts the judge (:mod:`theorems.verdicts`)
tests: where a running in-format sum stops absorbing its terms, how far an in-format sum is from
the exact one, whether two states are bitwise equal. They never decide a verdict themselves.
"""

from __future__ import annotations

import numpy as np

from numerics.backend import to_numpy
from numerics.formats import Format, get_format

__all__ = ["absorbed_count", "bitwise_equal", "error_in_ulps", "running_sums", "stall_index"]


def running_sums(terms, fmt: Format | str) -> np.ndarray:
    """Partial sums of ``terms`` along the last axis, each rounded to ``fmt`` (left to right)."""
    fmt = get_format(fmt)
    stored = to_numpy(terms)
    stored = stored.astype(fmt.dtype) if stored.dtype != fmt.dtype else stored
    return np.cumsum(stored, axis=-1).astype(np.float64)


def stall_index(terms, fmt: Format | str) -> int | None:
    """First index at which a nonzero term leaves the running in-format sum unchanged.

    ``terms`` is one vector, summed left to right in ``fmt`` as the ``strict`` policy does. From
    that index on the sum has *stagnated* for that term: it is absorbed whole. ``None`` when every
    nonzero term moves the sum.
    """
    fmt = get_format(fmt)
    values = np.asarray(to_numpy(terms), dtype=np.float64).ravel()
    if values.size < 2:
        return None
    partial = running_sums(values, fmt)
    stored = values.astype(fmt.dtype).astype(np.float64)
    absorbed = (stored[1:] != 0) & (partial[1:] == partial[:-1])
    hits = np.flatnonzero(absorbed)
    return int(hits[0]) + 1 if hits.size else None


def absorbed_count(terms, fmt: Format | str) -> int:
    """How many nonzero terms a left-to-right in-format sum absorbs without changing."""
    fmt = get_format(fmt)
    values = np.asarray(to_numpy(terms), dtype=np.float64).ravel()
    if values.size < 2:
        return 0
    partial = running_sums(values, fmt)
    stored = values.astype(fmt.dtype).astype(np.float64)
    return int(np.count_nonzero((stored[1:] != 0) & (partial[1:] == partial[:-1])))


def error_in_ulps(computed: float, exact: float, fmt: Format | str) -> float:
    """``|computed - exact|`` in units of the format's spacing at ``exact``."""
    fmt = get_format(fmt)
    return float(abs(computed - exact) / float(fmt.ulp(exact)))


def bitwise_equal(a, b) -> bool:
    """Whether two arrays hold the same bits (so ``-0.0`` and ``0.0`` differ, NaNs compare)."""
    a, b = np.ascontiguousarray(to_numpy(a)), np.ascontiguousarray(to_numpy(b))
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()
