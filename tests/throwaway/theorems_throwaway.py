"""Throwaway theorem (tests only): p = 1/n <= c/n, checked in every format."""

from numerics.throwaway import largest_weight
from proofs.throwaway import PAPER, bound, derivation

from theorems._theorem import Statement, Theorem
from theorems.verdicts import judge

__all__ = ["THEOREM", "evaluate"]


def evaluate(params: dict) -> list[dict]:
    size, fmt, policy = params["n"], params["format"], params["policy"]
    base = {"theorem": "throwaway", "n": size, "format": fmt, "policy": policy,
            "seed": params["seed"], "backend": params["backend"]}
    return [{**base, **judge(quantity="p<=c/n", observed=largest_weight(size, fmt, policy),
                             exact=1 / size, bound=float(bound(size)), relation="<=",
                             format=fmt)}]


class Throwaway(Theorem):
    name = "throwaway"
    title = "Throwaway"
    source = "Throwaway 2026, Lemma 1"
    statement = Statement(("n >= 1",), "p <= c/n", "$p \\le c/n$")
    quantities = PAPER
    evaluate = staticmethod(evaluate)

    def derive(self):
        """The derivation."""
        return derivation()

    def axes(self, quick):
        """Sizes 2 and 16, fp64 and bf16."""
        return {"sizes": [2, 16], "formats": ["fp64", "bf16"], "policies": ["hw"], "seeds": [0]}

    def figure(self, out_dir, *, quick=True):
        """No figure."""
        return None

    def counterexample(self, **kwargs):
        """None: the statement holds."""
        return None


THEOREM = Throwaway()
