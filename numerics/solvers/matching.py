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

from numerics._validate import as_real_array
from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument

__all__ = ["MCC_SPLITS", "ColumnMatching", "hungarian", "matched_cosines", "mcc"]


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

    def __repr__(self) -> str:  # the arrays are attributes; the summary fits one line
        return (f"ColumnMatching({len(self.rows)} pairs, mean |cos| {self.mean_cosine:.4g}, "
                f"{int(np.sum(self.cosines > 0.9))} with |cos| > 0.9)")


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
    a, d = (xp.asarray(as_real_array(v, name), dtype=np.float64)
            for v, name in ((A, "A"), (D, "D")))
    if not (bool(xp.all(xp.isfinite(a))) and bool(xp.all(xp.isfinite(d)))):
        raise InvalidArgument("A or D holds NaN or infinity; pass finite dictionaries")
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


#: The splits :func:`mcc` knows: ``id`` (latents that vary, every code dimension) and ``ood`` (the
#: active latents, and as many code dimensions, those of largest variance).
MCC_SPLITS: tuple[str, ...] = ("id", "ood")


def mcc(Z_true, Z_pred, split: str = "id") -> float:
    """The mean matched absolute correlation between true latents and predicted codes, as the
    sae_amortisation reference's ``compute_mcc`` defines it (rows are samples):

    1. ``id``: keep the true columns whose variance exceeds 1e-8 and every predicted column;
       ``ood``: keep the true columns that are ever nonzero (``n_active`` of them) and the
       ``n_active`` predicted columns of largest variance;
    2. pad the narrower matrix with ``N(0, 1)`` columns from ``RandomState(42)`` to equal width;
    3. centre and L2-normalise every column (a constant column has correlation 0);
    4. ``C = |Z_true^T Z_pred|`` (absolute Pearson correlations), matched one to one by the
       Hungarian method to maximise ``sum C``; the MCC is the mean of the matched entries.
    """
    from numerics._validate import check_choice

    check_choice(split, MCC_SPLITS, "split")
    true, pred = (np.asarray(to_numpy(as_real_array(v, name), np.float64))
                  for v, name in ((Z_true, "Z_true"), (Z_pred, "Z_pred")))
    if true.ndim != 2 or pred.ndim != 2 or true.shape[0] != pred.shape[0] or true.shape[0] < 2:
        raise InvalidArgument(f"Z_true has shape {true.shape} and Z_pred {pred.shape}; expected "
                              f"two matrices with the same number (>= 2) of rows")
    if not (np.isfinite(true).all() and np.isfinite(pred).all()):
        raise InvalidArgument("Z_true or Z_pred holds NaN or infinity; pass finite codes")
    if split == "id":
        true = true[:, true.var(axis=0) > 1e-8]
    else:
        true = true[:, np.any(true != 0, axis=0)]
        order = np.argsort(-pred.var(axis=0), kind="stable")[: true.shape[1]]
        pred = pred[:, np.sort(order)]
    if true.shape[1] == 0 or pred.shape[1] == 0:
        raise InvalidArgument(f"no columns to correlate after the {split} selection")
    missing = true.shape[1] - pred.shape[1]
    padding = np.zeros((true.shape[0], 0))
    if missing:
        noise = np.random.RandomState(42).normal(0, 1, (true.shape[0], abs(missing)))
        if missing > 0:
            pred = np.concatenate([pred, noise], axis=1)
        else:
            padding = noise
    C = np.concatenate([_abs_correlations(true, unit_pred := _unit(pred)),
                        np.abs(_unit(padding).T @ unit_pred)])
    rows, cols = hungarian(C)
    return float(np.mean(C[rows, cols]))


def _unit(M: np.ndarray) -> np.ndarray:
    """Centred columns over their norms; a column of norm below 1e-8 is divided by 1, as the
    reference does."""
    M = M - M.mean(axis=0)
    norms = np.linalg.norm(M, axis=0)
    return M / np.where(norms < 1e-8, 1.0, norms)


#: Below this share of nonzero entries the true codes are multiplied as a sparse matrix.
_SPARSE_SHARE = 0.05


def _abs_correlations(true: np.ndarray, unit_pred: np.ndarray) -> np.ndarray:
    """``|unit(true)^T unit_pred|``. The columns of ``unit_pred`` sum to zero, so centring
    ``true`` does not change the product: ``(T - 1 mu^T)^T P = T^T P``; sparse codes (k of n
    latents per sample) are then multiplied as a sparse matrix, at ``nnz(T)`` instead of
    ``samples x n`` multiply-adds per predicted column. Only the norms need the centred
    columns."""
    norms = np.linalg.norm(true - true.mean(axis=0), axis=0)
    scale = np.where(norms < 1e-8, 1.0, norms)
    if np.count_nonzero(true) >= _SPARSE_SHARE * true.size:
        return np.abs(_unit(true).T @ unit_pred)
    from scipy import sparse

    product = np.asarray(sparse.csc_matrix(true).T @ unit_pred)
    return np.abs(product / scale[:, None])
