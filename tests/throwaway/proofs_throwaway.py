"""Throwaway theorem (tests only): the uniform weight p = 1/n is at most c/n with c = 1."""

import sympy as sp

from proofs import Derivation, Step, eq, le
from proofs.quantities import Quantities, Quantity

__all__ = ["PAPER", "bound", "derivation", "n", "p"]

n = sp.Symbol("n", positive=True, integer=True)
p = sp.Symbol("p", positive=True)

PAPER = Quantities("throwaway", [
    Quantity("factor", 1, "constant", cite="eq. (1)",
             exempt={"x1.01": "a larger factor only loosens eq. (1)"}),
])


def bound(size):
    """eq. (1): the bound on the uniform weight."""
    return PAPER["factor"] / size


@PAPER.cache
def derivation() -> Derivation:
    return Derivation.check(
        "throwaway", source="Throwaway 2026, Lemma 1", hypotheses=[("h_p", eq(p, 1 / n))],
        goal=le(p, bound(n)),
        steps=[Step("goal", le(p, bound(n)), cite="eq. (1)", uses=("h_p",))])
