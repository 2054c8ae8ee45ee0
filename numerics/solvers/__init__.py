"""Solvers shared by the theorems: batched ISTA/FISTA for the lasso, dictionary learning by
alternating FISTA and least squares (DL-FISTA), Hungarian matching and the matched correlation
coefficient."""

from numerics.solvers.dictionary import LearnedDictionary, dictionary_learning
from numerics.solvers.fista import (
    FORMS,
    SparseCodes,
    fista,
    ista,
    lasso_dual_bound,
    lasso_objective,
    lipschitz_constant,
)
from numerics.solvers.matching import MCC_SPLITS, ColumnMatching, hungarian, matched_cosines, mcc

__all__ = [
    "MCC_SPLITS",
    "ColumnMatching",
    "FORMS",
    "LearnedDictionary",
    "SparseCodes",
    "dictionary_learning",
    "fista",
    "hungarian",
    "ista",
    "lasso_dual_bound",
    "lasso_objective",
    "lipschitz_constant",
    "matched_cosines",
    "mcc",
]
