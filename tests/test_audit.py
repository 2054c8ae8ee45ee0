"""The mutation audit on a throwaway theorem: what is caught, by what, and what is missed."""

from __future__ import annotations

import pytest
import sympy as sp

from numerics.errors import InvalidArgument
from proofs import Derivation, Step, eq, le
from proofs.quantities import Quantities, Quantity
from theorems import Statement, Theorem
from theorems.verdicts import judge

n = sp.Symbol("n", positive=True, integer=True)
p = sp.Symbol("p", positive=True)

PAPER = Quantities("toy", [
    Quantity("rate.shift", 0, "index", cite="eq. (1)", meaning="p = 1/(n + shift)"),
    Quantity("rate.scale", 1, "constant", cite="eq. (1)"),
    Quantity("loose.factor", 2, "constant", cite="eq. (2)",
             exempt={"x1.01": "a larger factor only loosens eq. (2)"}),
])


def rate(size):
    return PAPER["rate.scale"] / (size + PAPER["rate.shift"])


@PAPER.cache
def derivation() -> Derivation:
    return Derivation.check(
        "toy", source="Toy 2026, Lemma 1", hypotheses=[("h_p", eq(p, 1 / n))],
        goal=le(p, PAPER["loose.factor"] / n),
        steps=[Step("rate", le(p, rate(n)), cite="eq. (1)", uses=("h_p",)),
               Step("slack", le(rate(n), PAPER["loose.factor"] / n), cite="eq. (2)"),
               Step("loose", le(p, PAPER["loose.factor"] / n), by="chain",
                    uses=("rate", "slack"))])


def evaluate(params: dict) -> list[dict]:
    size = params["n"]
    if not rate(size).is_finite:
        raise InvalidArgument(f"the rate is not finite at n={size}")
    observed = float(1 / sp.Integer(size))  # the uniform weight, exactly rounded to fp64
    base = {"theorem": "toy", "n": size, "format": params["format"],
            "policy": params["policy"]}
    return [{**base, **judge(quantity="p<=rate", observed=observed, exact=observed,
                             bound=float(rate(size)), relation="<=", format=params["format"])},
            {**base, **judge(quantity="p<=loose", observed=observed, exact=observed,
                             bound=float(PAPER["loose.factor"]) / size, relation="<=",
                             format=params["format"])}]


class Toy(Theorem):
    name = "toy"
    statement = Statement(("n >= 1",), "p <= 1/n", "$p \\le 1/n$")
    quantities = PAPER
    evaluate = staticmethod(evaluate)

    def derive(self):
        return derivation()

    def axes(self, quick):
        return {"sizes": [1, 2, 8], "formats": ["fp64"], "policies": ["hw"], "seeds": [0]}

    def figure(self, out_dir, *, quick=True):
        return None

    def counterexample(self, **kwargs):
        return None


@pytest.mark.parametrize("workers", [1, 2])
def test_every_mutation_is_caught_or_named(workers, monkeypatch):
    from numerics.sweep.executors import ProcessExecutor

    sent = []  # the tasks handed to a pool of worker processes
    run = ProcessExecutor.run
    monkeypatch.setattr(ProcessExecutor, "run",
                        lambda self, function, tasks: sent.append(len(tasks))
                        or run(self, function, tasks))
    audit = Toy().audit(workers=workers)
    # on 2 workers the baseline and the six mutations run in spawned processes
    assert sent == ([7] if workers == 2 else [])
    status = {e.mutation: (e.status, e.by) for e in audit.entries}
    assert list(status) == ["rate.shift -1", "rate.shift +1", "rate.scale x0.99",
                            "rate.scale x1.01", "loose.factor x0.99", "loose.factor x1.01",
                            "p<=rate 1% tighter", "p<=loose 1% tighter"]
    # 1/(n + 1) < 1/n: the step and all three rows notice
    assert status["rate.shift +1"] == (
        "caught", "steps (rate), (loose); goal not discharged; rows p<=rate x3")
    # 1/(n - 1) divides by zero at n = 1: the check refuses the mutated rate
    assert status["rate.shift -1"][0] == "caught" and "the check refused it" in status[
        "rate.shift -1"][1]
    assert status["rate.scale x0.99"][0] == "caught"
    # true but weaker statements: 1.01/n and 1.98/n still bound p = 1/n; the second is exempt
    assert status["rate.scale x1.01"] == ("MISSED", "not caught")
    assert status["loose.factor x0.99"] == ("MISSED", "not caught")
    assert status["loose.factor x1.01"] == ("exempt", "not caught")
    assert status["p<=rate 1% tighter"] == ("caught", "3 of 3 rows violated")
    # the loose bound has slack 1/n at every size: a 1% tighter one goes unnoticed
    assert status["p<=loose 1% tighter"] == ("MISSED", "no row violated")
    assert not audit.ok and audit.counts == {"caught": 4, "exempt": 1, "MISSED": 3}
    assert str(audit).splitlines()[-1] == (
        "  4 caught, 1 exempt (statement still true), 3 missed")


def test_a_named_exception_makes_the_audit_ok():
    toy = Toy()
    toy.audit_exempt = {"p<=loose 1% tighter": "eq. (2) has slack 1/n by design",
                        "loose.factor x0.99": "1.98/n still bounds p = 1/n",
                        "rate.scale x1.01": "a larger scale only loosens eq. (1)"}
    audit = toy.audit()
    assert audit.ok, str(audit)
    assert audit.counts == {"caught": 4, "exempt": 4, "MISSED": 0}


def test_the_mutation_is_gone_after_the_audit():
    Toy().audit()
    assert PAPER.mutation is None and derivation().ok


def test_workers_must_be_a_positive_count_and_the_theorem_sendable():
    with pytest.raises(InvalidArgument, match="workers"):
        Toy().audit(workers=0)

    class Local(Toy):
        pass

    with pytest.raises(InvalidArgument, match="cannot be pickled.*use workers=1"):
        Local().audit(workers=2)
    assert Local().audit(workers=1).counts == {"caught": 4, "exempt": 1, "MISSED": 3}


def test_a_crash_under_a_mutation_is_a_bug_naming_it():
    class Crashing(Toy):
        @staticmethod
        def evaluate(params):
            if PAPER.mutation is not None:
                raise ZeroDivisionError("float division by zero")
            return evaluate(params)

    with pytest.raises(RuntimeError, match="under the mutation rate.shift -1: ZeroDivisionError"):
        Crashing().audit()


def test_a_theorem_defined_in_main_is_refused_for_workers():
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).parent)
    script = (f"import sys\nsys.path.insert(0, {tests!r})\nfrom test_audit import Toy\n"
              "class Main(Toy):\n    pass\n"
              "from numerics.errors import InvalidArgument\n"
              "try:\n    Main().audit(workers=2)\nexcept InvalidArgument as exc:\n"
              "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "defined in __main__" in done.stdout and "use workers=1" in done.stdout
    assert "Traceback" not in done.stderr
