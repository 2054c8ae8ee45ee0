"""Solvers shared by the theorems: batched ISTA/FISTA for the lasso, Hungarian matching."""

from numerics.solvers.fista import (
    FORMS,
    SparseCodes,
    fista,
    ista,
    lasso_objective,
    lipschitz_constant,
)
from numerics.solvers.matching import ColumnMatching, hungarian, matched_cosines

__all__ = [
    "ColumnMatching",
    "FORMS",
    "SparseCodes",
    "fista",
    "hungarian",
    "ista",
    "lasso_objective",
    "lipschitz_constant",
    "matched_cosines",
]
