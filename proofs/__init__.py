"""SymPy derivations, the step-checking machinery, and interval certification."""

from proofs.certify import Certificate, certify, conjunction
from proofs.derivation import Derivation
from proofs.steps import (
    METHODS,
    Step,
    StepResult,
    check_step,
    eq,
    find_witness,
    ge,
    gt,
    le,
    lt,
)

__all__ = [
    "METHODS",
    "Certificate",
    "Derivation",
    "Step",
    "StepResult",
    "certify",
    "check_step",
    "conjunction",
    "eq",
    "find_witness",
    "ge",
    "gt",
    "le",
    "lt",
]
