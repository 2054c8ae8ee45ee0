"""Metrics and baselines of the sae-amortisation checker, as the reference experiments of Barin
Pacela, Joshi et al. (2026) define them (``utils/metrics.py`` and ``models/linear_probe.py`` of
their code; the sae_amortisation notes, Sec. 3), and the amortisation gap with an error bar.

- :func:`feature_auc`: per code feature ``j``, ``max(AUC_j, 1 - AUC_j)`` of the raw code as a
  score for the label; :func:`auc_ood` picks ``j*`` on the ID split and reports its AUC on both.
- :func:`support_metrics`: code columns matched to true latents (Hungarian, on absolute
  correlation as :func:`numerics.solvers.matching.mcc` matches them); an entry is active when
  ``|code| > 1e-4``; precision, recall, F1 per sample, then averaged, and the predicted L0.
- :func:`linear_probe`: ``RidgeCV(alphas=(1e-6, 1e-4, 1e-2, 1, 10), fit_intercept=False)`` from
  activations to codes (scikit-learn).
- :func:`amortisation_gap`: ``E(x, f_enc(x)) - min_z E(x, z)`` with ``E = ||x - D z||^2 / 2 +
  lambda ||z||_1`` per sample, bracketed: FISTA's best objective is an upper bound on the minimum
  and the lasso's dual a certified lower bound, so the gap lies in ``[low, high]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numerics._repr import short_repr
from numerics._validate import as_real_array, check_elements, check_int, check_real
from numerics.backend import to_numpy
from numerics.errors import InvalidArgument
from numerics.solvers.fista import fista, lasso_dual_bound, lasso_objective
from numerics.solvers.matching import hungarian, matched_cosines

__all__ = ["ACTIVE", "PROBE_ALPHAS", "AucScores", "Gap", "SupportScores", "amortisation_gap",
           "auc_ood", "feature_auc", "finite_matrix", "linear_probe", "support_metrics"]

#: A code entry counts as active above this magnitude.
ACTIVE = 1e-4
#: The ridge penalties the probe chooses from by leave-one-out cross-validation.
PROBE_ALPHAS = (1e-6, 1e-4, 1e-2, 1.0, 10.0)


#: The largest magnitude accepted: squares and products of larger values overflow float64.
MAX_MAGNITUDE = 1e150


def finite_matrix(value, name: str) -> np.ndarray:
    """``value`` as a non-empty, finite float64 NumPy matrix of magnitude at most
    :data:`MAX_MAGNITUDE`, or one :class:`InvalidArgument`/:class:`InvalidType` line."""
    array = np.asarray(to_numpy(as_real_array(value, name), np.float64))
    if array.ndim != 2 or 0 in array.shape:
        raise InvalidArgument(f"{name} has shape {array.shape}; expected a non-empty "
                              f"(samples, features) matrix")
    check_elements(array.size, name)
    if not np.isfinite(array).all():
        raise InvalidArgument(f"{name} holds NaN or infinity; pass finite values")
    if np.max(np.abs(array)) > MAX_MAGNITUDE:
        raise InvalidArgument(f"{name} holds a value of magnitude above {MAX_MAGNITUDE:g}, "
                              f"whose square overflows float64; rescale it")
    return array


def _unit_columns(M: np.ndarray) -> np.ndarray:
    """Centre every column and scale it to unit length; a column of norm below 1e-8 is divided
    by 1, as the reference does (so a constant column correlates 0)."""
    M = M - M.mean(axis=0)
    norms = np.linalg.norm(M, axis=0)
    return M / np.where(norms < 1e-8, 1.0, norms)


def _labels(value, rows: int, name: str) -> np.ndarray:
    labels = np.asarray(to_numpy(value))
    if labels.shape != (rows,):
        raise InvalidArgument(f"{name} has shape {labels.shape}; expected ({rows},)")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise InvalidArgument(f"{name} must be 0/1 or boolean labels")
        labels = labels.astype(bool)
    return labels


def feature_auc(codes, labels) -> np.ndarray:
    """``max(AUC_j, 1 - AUC_j)`` for every column ``j`` of ``codes`` as a score for ``labels``
    (ties share their rank, as in the Mann-Whitney statistic); 0.5 for a column whose standard
    deviation is below 1e-10 (as the reference), and for every column when one class is
    absent."""
    from scipy.stats import rankdata

    codes = finite_matrix(codes, "codes")
    labels = _labels(labels, codes.shape[0], "labels")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return np.full(codes.shape[1], 0.5)
    ranks = rankdata(codes, axis=0)
    auc = (ranks[labels].sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where(codes.std(axis=0) < 1e-10, 0.5, np.maximum(auc, 1.0 - auc))


@dataclass(frozen=True)
class AucScores:
    """The feature ``j*`` chosen on the ID split and its AUC on the ID and OOD splits."""

    feature: int
    id: float
    ood: float


def auc_ood(codes_id, labels_id, codes_ood, labels_ood) -> AucScores:
    """The reference's AUC: ``j* = argmax_j max(AUC_j, 1 - AUC_j)`` on the ID codes; report
    that feature's score on ID and on OOD. No probe is trained."""
    scores_id = feature_auc(codes_id, labels_id)
    best = int(np.argmax(scores_id))
    ood = finite_matrix(codes_ood, "codes_ood")
    if ood.shape[1] != scores_id.shape[0]:
        raise InvalidArgument(f"codes_ood has {ood.shape[1]} features; the ID codes have "
                              f"{scores_id.shape[0]}")
    return AucScores(best, float(scores_id[best]),
                     float(feature_auc(ood[:, best:best + 1], labels_ood)[0]))


@dataclass(frozen=True)
class SupportScores:
    """Per-sample precision, recall and F1 of the matched support, averaged over samples, and
    the mean predicted L0 (entries above :data:`ACTIVE`, over every code column)."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    precision: float
    recall: float
    f1: float
    l0: float


def support_metrics(Z_true, codes, A=None, D=None) -> SupportScores:
    """Match code columns to true latents, then compare supports sample by sample: true
    ``|z_i| > 1e-4``, predicted ``|code_{pi(i)}| > 1e-4``. With the dictionaries ``A`` (true)
    and ``D`` (the codes'), the matching is the reference's: atoms by maximal total ``|cos|``
    (:func:`numerics.solvers.matching.matched_cosines`); without them, code columns by maximal
    total absolute correlation. A sample with no predicted (true) active entry has precision
    (recall) 0; F1 is ``2 P R / (P + R)``, 0 where both are 0."""
    true, pred = finite_matrix(Z_true, "Z_true"), finite_matrix(codes, "codes")
    if true.shape[0] != pred.shape[0] or true.shape[0] < 2:
        raise InvalidArgument(f"Z_true has shape {true.shape} and codes {pred.shape}; expected "
                              f"the same number (>= 2) of rows")
    if (A is None) != (D is None):
        raise InvalidArgument("pass both dictionaries A and D, or neither")
    if A is not None:
        A, D = finite_matrix(A, "A"), finite_matrix(D, "D")
        if A.shape[1] != true.shape[1] or D.shape[1] != pred.shape[1]:
            raise InvalidArgument(f"A has {A.shape[1]} atoms for {true.shape[1]} latents and D "
                                  f"{D.shape[1]} for {pred.shape[1]} code columns")
        match = matched_cosines(A, D)
        rows, cols = match.rows, match.cols
    else:
        rows, cols = hungarian(np.abs(_unit_columns(true).T @ _unit_columns(pred)))
    true_active = np.abs(true[:, rows]) > ACTIVE
    pred_active = np.abs(pred[:, cols]) > ACTIVE
    hits = np.sum(true_active & pred_active, axis=1)
    predicted, actual = pred_active.sum(axis=1), true_active.sum(axis=1)
    precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), 0.0)
    recall = np.where(actual > 0, hits / np.maximum(actual, 1), 0.0)
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    l0 = np.mean(np.sum(np.abs(pred) > ACTIVE, axis=1))
    return SupportScores(float(precision.mean()), float(recall.mean()), float(f1.mean()),
                         float(l0))


def linear_probe(Y_train, Z_train, *Y_eval) -> tuple[np.ndarray, ...]:
    """Fit ``RidgeCV(alphas=PROBE_ALPHAS, fit_intercept=False)`` from ``Y_train`` to
    ``Z_train`` and return its predicted codes on each of ``Y_eval`` (and the chosen alpha
    last)."""
    from sklearn.linear_model import RidgeCV

    Y, Z = finite_matrix(Y_train, "Y_train"), finite_matrix(Z_train, "Z_train")
    if Y.shape[0] != Z.shape[0]:
        raise InvalidArgument(f"Y_train has {Y.shape[0]} rows and Z_train {Z.shape[0]}")
    evaluations = [finite_matrix(v, f"Y_eval[{i}]") for i, v in enumerate(Y_eval)]
    for i, v in enumerate(evaluations):
        if v.shape[1] != Y.shape[1]:
            raise InvalidArgument(f"Y_eval[{i}] has {v.shape[1]} columns; Y_train has "
                                  f"{Y.shape[1]}")
    probe = RidgeCV(alphas=PROBE_ALPHAS, fit_intercept=False).fit(Y, Z)
    return (*(probe.predict(v) for v in evaluations), float(probe.alpha_))


@dataclass(frozen=True, eq=False)
class Gap:
    """The amortisation gap per sample, bracketed: ``low = E(enc) - E(fista)`` (FISTA's
    objective is at least the minimum, so the gap is at least ``low``) and ``high = E(enc) -
    dual`` (the dual bound is at most the minimum). ``encoder``, ``fista`` and ``dual`` are the
    per-sample values (float64)."""

    encoder: np.ndarray
    fista: np.ndarray
    dual: np.ndarray
    iterations: int

    @property
    def low(self) -> np.ndarray:
        return self.encoder - self.fista

    @property
    def high(self) -> np.ndarray:
        return self.encoder - self.dual

    @property
    def mean(self) -> tuple[float, float]:
        """``(mean low, mean high)``: the mean gap lies between them."""
        return float(np.mean(self.low)), float(np.mean(self.high))

    @property
    def certified_share(self) -> float:
        """The share of samples whose gap is certainly positive (``low > 0``)."""
        return float(np.mean(self.low > 0))

    def __repr__(self) -> str:
        low, high = self.mean
        return (f"<Gap over {self.encoder.size} samples: mean in [{low:.6g}, {high:.6g}], "
                f"certainly positive for {self.certified_share:.1%}>")


def amortisation_gap(Y, codes, D, lam: float = 0.1, *, nonneg: bool = False,
                     iterations: int = 2000, tol: float = 1e-6) -> Gap:
    """Bracket ``E(y, codes) - min_z E(y, z)`` for every row of ``Y`` (centred as the encoder
    saw it) against the dictionary ``D`` (``m x n``). FISTA runs in float64 from the encoder's
    codes (projected to ``z >= 0`` when ``nonneg``), in rounds of 100 iterations, until the
    mean duality gap is below ``tol`` times the mean objective or ``iterations`` are spent."""
    Y, codes, D = finite_matrix(Y, "Y"), finite_matrix(codes, "codes"), finite_matrix(D, "D")
    lam = check_real(lam, "lam", min=0.0, strict_min=True)
    iterations = check_int(iterations, "iterations", min=1, max=10**6)
    tol = check_real(tol, "tol", min=0.0)
    if Y.shape[1] != D.shape[0] or codes.shape != (Y.shape[0], D.shape[1]):
        raise InvalidArgument(f"Y, codes and D have shapes {Y.shape}, {codes.shape} and "
                              f"{D.shape}; expected (samples, m), (samples, n), (m, n)")
    if nonneg and np.min(codes) < 0:
        raise InvalidArgument("codes hold a negative entry, outside the nonnegative problem; "
                              "pass nonneg=False for signed codes")
    encoder = lasso_objective(Y, D, codes, lam, nonneg=nonneg)
    z = np.maximum(codes, 0.0) if nonneg else codes
    done = 0
    while True:
        rounds = min(100, iterations - done)
        z = np.asarray(fista(Y, D, lam, iterations=rounds, nonneg=nonneg, init=z, fmt="fp64",
                             track=False).codes)
        done += rounds
        value = lasso_objective(Y, D, z, lam, nonneg=nonneg)
        dual = lasso_dual_bound(Y, D, z, lam, nonneg=nonneg)
        if done >= iterations or np.mean(value - dual) <= tol * max(np.mean(value), 1e-300):
            break
    return Gap(encoder, np.minimum(value, encoder), dual, done)
