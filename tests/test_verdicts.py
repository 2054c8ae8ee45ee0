"""The one judge: verdicts, mechanisms with measured evidence, margins in two units.

Expected values come from ml_dtypes scalars, mpmath and plain Python loops, never from the judge.
"""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest

from numerics.evidence import absorbed_count, bitwise_equal, error_in_ulps, stall_index
from theorems.verdicts import (
    MECHANISM_NAMES,
    UNEXPLAINED,
    judge,
    mechanism_holds,
    tightenable,
    tightened,
)

BF16_EPS = float(ml_dtypes.finfo(ml_dtypes.bfloat16).eps)  # 2**-7


def rows(**kwargs):
    base = {"quantity": "q", "relation": "<=", "format": "bf16", "tolerance_ulps": 0.0}
    return judge(**{**base, **kwargs})


def test_holds_within_the_tolerance_in_ulps_of_the_bound():
    over = 1.0 + BF16_EPS  # one bf16 ulp above the bound 1.0
    assert rows(observed=over, exact=0.9, bound=1.0, tolerance_ulps=1.0)["verdict"] == "holds"
    row = rows(observed=over, exact=0.9, bound=1.0, tolerance_ulps=0.5)
    assert row["verdict"] == "precision-effect"
    assert row["margin_ulps"] == -1.0 and row["margin_rel"] == -BF16_EPS


def test_strict_relations_get_no_tolerance():
    row = rows(observed=0.0, exact=1e-30, bound=0.0, relation=">", tolerance_ulps=5.0)
    assert row["verdict"] == "precision-effect" and row["mechanism"] == "underflow"
    assert row["margin_rel"] is None  # relative to a zero bound is undefined


def test_violated_when_the_exact_value_breaks_the_bound_too():
    row = rows(observed=1.5, exact=1.25, bound=1.0)
    assert row["verdict"] == "violated" and row["mechanism"] == ""
    # an exact value on the bound, within its relative tolerance, is not a counterexample
    assert rows(observed=1.5, exact=1.0 + 1e-15, bound=1.0)["verdict"] == "precision-effect"


def test_underflow_against_mpmath():
    with mpmath.workdps(50):
        exact = float(mpmath.exp(-200))  # far below bf16's smallest subnormal 2**-133
    observed = float(np.float32(exact).astype(ml_dtypes.bfloat16))
    assert observed == 0.0
    row = rows(observed=observed, exact=exact, bound=exact / 2, relation=">=")
    assert row["mechanism"] == "underflow" and mechanism_holds({**row, "format": "bf16"})


def test_rounding_to_one():
    exact = 1 - 2.0**-10  # rounds to 1 in bf16 (half an ulp below 1 is 2**-9)
    observed = float(np.float32(exact).astype(ml_dtypes.bfloat16))
    assert observed == 1.0
    row = rows(observed=observed, exact=exact, bound=1.0, relation="<")
    assert row["verdict"] == "precision-effect" and row["mechanism"] == "rounding to one"


def python_stall(values, dtype):
    """The first index whose nonzero term leaves a left-to-right in-format sum unchanged."""
    total = dtype(values[0])
    for i, v in enumerate(values[1:], start=1):
        term = dtype(v)
        new = dtype(total + term)
        if float(term) != 0 and float(new) == float(total):
            return i
        total = new
    return None


@pytest.mark.parametrize("name,dtype", [("bf16", ml_dtypes.bfloat16), ("fp16", np.float16),
                                        ("fp8-e4m3", ml_dtypes.float8_e4m3fn)])
def test_stall_index_matches_a_python_loop(name, dtype):
    rng = np.random.default_rng(7)
    for _ in range(20):
        values = rng.uniform(0.0, 1.0, size=300) * rng.choice([1e-3, 1.0], size=300)
        expected = python_stall(values.astype(np.float32), dtype)
        assert stall_index(values.astype(np.float32), name) == expected
    assert stall_index(np.zeros(5), name) is None


def test_accumulation_stagnation_needs_a_measured_stall():
    terms = np.full(1024, 2.0**-9, dtype=np.float32)  # bf16: 1 + 2**-9 rounds back to 1
    terms[0] = 1.0
    index = stall_index(terms, "bf16")
    assert index == python_stall(terms, ml_dtypes.bfloat16) == 1
    assert absorbed_count(terms, "bf16") == 1023
    row = rows(observed=1.0, exact=3.0, bound=2.5, relation=">=", evidence={"stall_index": index})
    assert row["mechanism"] == "rounding to one"  # observed is exactly 1: the first predicate
    row = rows(observed=1.5, exact=3.0, bound=2.5, relation=">=",
               evidence={"stall_index": index})
    assert row["mechanism"] == "accumulation stagnation" and row["stall_index"] == 1
    unexplained = rows(observed=1.5, exact=3.0, bound=2.5, relation=">=",
                       evidence={"stall_index": None})
    assert unexplained["mechanism"] == UNEXPLAINED


def test_accumulation_rounding_without_a_stall():
    error = error_in_ulps(1.5 + 3 * 2.0**-7, 1.5, "bf16")
    assert error == 3.0  # bf16 spacing at 1.5 is 2**-7
    row = rows(observed=1.6, exact=1.4, bound=1.5, evidence={"stall_index": None,
                                                             "sum_error_ulps": error})
    assert row["mechanism"] == "accumulation rounding" and row["sum_error_ulps"] == 3.0


def test_rounding_to_equality_needs_bitwise_equal_states():
    a = np.array([1.0, -0.0], dtype=np.float32)
    assert bitwise_equal(a, a.copy()) and not bitwise_equal(a, np.abs(a))
    row = rows(observed=0.0, exact=1e-9, bound=0.0, relation=">",
               evidence={"bitwise_equal": bitwise_equal(a, a.copy())})
    assert row["mechanism"] == "rounding to equality"


def test_subnormal_output_and_overflow():
    tiny = 2.0**-130  # subnormal in bf16 (smallest normal 2**-126)
    row = rows(observed=tiny, exact=2.0**-120, bound=2.0**-121, relation=">=")
    assert row["mechanism"] == "subnormal output"
    row = rows(observed=math.inf, exact=2.0, bound=3.0)
    assert row["verdict"] == "precision-effect" and row["mechanism"] == "overflow"


def test_no_predicate_means_unexplained():
    row = rows(observed=1.25, exact=0.75, bound=1.0)
    assert row["verdict"] == "precision-effect" and row["mechanism"] == UNEXPLAINED
    assert not mechanism_holds({**row, "format": "bf16"})
    assert UNEXPLAINED not in MECHANISM_NAMES


def test_mechanism_holds_rejects_a_label_its_evidence_does_not_support():
    row = {"observed": 0.5, "exact": 0.25, "format": "bf16", "mechanism": "underflow"}
    assert not mechanism_holds(row)
    assert mechanism_holds({**row, "observed": 0.0})


def test_tightening_moves_the_bound_for_one_quantity_only():
    assert rows(observed=0.995, exact=0.995, bound=1.0)["verdict"] == "holds"
    with tightened("q", 0.01):
        row = rows(observed=0.995, exact=0.995, bound=1.0)
        other = judge(quantity="other", observed=0.995, exact=0.995, bound=1.0, relation="<=",
                      format="fp64")
    assert row["verdict"] == "violated" and row["bound"] == 0.99
    assert other["verdict"] == "holds"
    assert tightenable("<=", 1.0) and not tightenable("<=", 0.0) and not tightenable("<=", None)


def test_exact_none_means_the_observed_value_is_exact():
    row = rows(observed=1.25, exact=None, bound=1.0)
    assert row["verdict"] == "violated" and row["exact"] == 1.25


def test_numpy_scalars_become_python_numbers():
    row = rows(observed=np.float32(0.5), exact=np.float64(0.5), bound=np.array(1.0))
    assert type(row["observed"]) is float and type(row["bound"]) is float


def test_an_unknown_relation_is_one_clear_error():
    with pytest.raises(ValueError, match=r"relation='=<'; expected one of <=, >=, <, >"):
        rows(observed=1.0, exact=1.0, bound=1.0, relation="=<")


def test_an_exact_value_past_the_bound_is_violated_even_where_the_observed_one_holds():
    # the tolerance excuses rounding, not a counterexample: exact 1 + 2**-8 > 1 in bf16 terms
    row = rows(observed=1.0 + BF16_EPS, exact=1.0 + BF16_EPS / 2, bound=1.0, tolerance_ulps=1.0)
    assert row["verdict"] == "violated"
    # nor does an observed value that rounds onto the right side of the bound
    assert rows(observed=0.99, exact=1.25, bound=1.0)["verdict"] == "violated"
    assert rows(observed=1.0, exact=1.0, bound=1.0, relation=">")["verdict"] == "violated"
    assert rows(observed=1.0 + BF16_EPS, exact=0.9, bound=1.0,
                tolerance_ulps=1.0)["verdict"] == "holds"
