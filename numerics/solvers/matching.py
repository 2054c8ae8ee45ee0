"""Optimal one-to-one matching (the Hungarian problem) and matched cosines between dictionaries.

:func:`hungarian` solves ``max_{pi} sum_i S_{i, pi(i)}`` over injective assignments of the rows of
a similarity matrix ``S`` to its columns (or the minimum, for costs) with SciPy's
``linear_sum_assignment`` (Crouse 2016, a shortest augmenting path method). :func:`matched_cosines`
compares two dictionaries column by column: ``C_ij = |cos(a_i, d_j)|``, the matching that
maximises ``sum C``, and for each matched pair ``|cos|`` and the norm ratio ``||d_j|| / ||a_i||``
(as the sae_amortisation reference's ``match_columns`` reports them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument

__all__ = ["ColumnMatching", "hungarian", "matched_cosines"]


@dataclass(frozen=True, eq=False)
class ColumnMatching:
    """Matched column pairs ``(rows[p], cols[p])`` of the two dictionaries, with each pair's
    ``|cos|`` and norm ratio (float64 NumPy arrays, sorted by ``rows``)."""

    rows: np.ndarray
    cols: np.ndarray
    cosines: np.ndarray
    norm_ratios: np.ndarray

    @property
    def mean_cosine(self) -> float:
        """The mean matched ``|cos|``."""
        return float(np.mean(self.cosines))


def hungarian(similarity, *, maximize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(rows, cols)`` of an optimal assignment for the matrix ``similarity`` (any shape;
    ``min(shape)`` pairs), maximising the matched sum by default and minimising it otherwise."""
    from scipy.optimize import linear_sum_assignment

    host = to_numpy(similarity, np.float64)
    if host.ndim != 2 or 0 in host.shape:
        raise InvalidArgument(f"similarity has shape {host.shape}; expected a non-empty 2-D "
                              f"matrix")
    if not np.isfinite(host).all():
        first = int(np.flatnonzero(~np.isfinite(host))[0])
        raise InvalidArgument(f"similarity holds a non-finite value (first at flat index "
                              f"{first}); pass finite similarities")
    rows, cols = linear_sum_assignment(host, maximize=maximize)
    return rows, cols


def matched_cosines(A, D) -> ColumnMatching:
    """Match the columns of ``A`` (``m x n_a``) to those of ``D`` (``m x n_d``) by maximal total
    ``|cos|``; zero columns count as having norm 1e-12 (cosine 0)."""
    xp = array_namespace(A, D)
    a, d = xp.asarray(A, dtype=np.float64), xp.asarray(D, dtype=np.float64)
    if a.ndim != 2 or d.ndim != 2 or a.shape[0] != d.shape[0]:
        raise InvalidArgument(f"A has shape {tuple(a.shape)} and D {tuple(d.shape)}; expected "
                              f"two dictionaries (m, n_a) and (m, n_d) with the same m")
    norm_a = xp.maximum(xp.sqrt(xp.sum(a * a, axis=0)), 1e-12)
    norm_d = xp.maximum(xp.sqrt(xp.sum(d * d, axis=0)), 1e-12)
    cosines = xp.abs((a / norm_a).T @ (d / norm_d))
    rows, cols = hungarian(cosines)
    host = to_numpy(cosines)
    ratios = to_numpy(norm_d)[cols] / to_numpy(norm_a)[rows]
    return ColumnMatching(rows, cols, host[rows, cols], ratios)
