"""Regression tests: each input a hostile-user campaign found silently wrong, NaN, accepted when
bad, or failing with a library's own error. Expected values come from mpmath at high precision
or from the definition, never from the code under test."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import theorems.iso_perplexity as iso
import theorems.representational_collapse as rc
import theorems.softmax_dispersion as sd
from numerics import get_backend, get_format, round_to, softmax, softmax_entropy
from numerics.errors import InvalidArgument, InvalidType
from theorems import Report


def _critical_exact(a, gamma, s):
    with mpmath.workdps(60):
        a, gamma, s = (mpmath.mpf(v) for v in (a, gamma, s))
        shifted = gamma * (1 - s)
        pplx = -a * mpmath.log(1 - gamma) - (1 - a) * mpmath.log(gamma)
        return (pplx + mpmath.log(shifted)) / (mpmath.log(shifted) - mpmath.log(1 - shifted))


@pytest.mark.parametrize("a,gamma,s", [(0.3, 0.49999999999999994, 0.0),
                                       (0.9, 0.49999999999999994, 1e-12),
                                       (0.5, 5e-324, 0.5), (0.1, 0.25, 0.999)])
def test_critical_accuracy_keeps_its_digits_where_eq_11_cancels(a, gamma, s):
    exact = _critical_exact(a, gamma, s)
    assert float(iso.critical_accuracy(a, gamma, s)) == pytest.approx(float(exact), rel=1e-14)
    with mpmath.workdps(30):
        value = iso.critical_accuracy(mpmath.mpf(a), mpmath.mpf(gamma), mpmath.mpf(s))
    assert float(value) == pytest.approx(float(exact), rel=1e-14)


def test_lowest_accepted_accuracy_near_one():
    a, gamma = 1 - 2**-52, 1e-10
    low, at = iso.lowest_accepted_accuracy(a, gamma)
    with mpmath.workdps(60):
        target = -a * mpmath.log1p(-mpmath.mpf(gamma)) - (1 - mpmath.mpf(a)) * mpmath.log(gamma)
        root = mpmath.findroot(lambda t: -t * mpmath.log(t) - (1 - t) * mpmath.log1p(-t)
                               - target, (mpmath.mpf(10) ** -20, mpmath.mpf("0.25")),
                               solver="anderson")
    assert float(low) < a
    assert float(at) == pytest.approx(float(root), rel=1e-13)


def test_min_size_for_dispersion_is_exact():
    # 1/n < 0.05 (the double, 0.05 + 2.8e-18) first holds at n = 20
    assert sd.min_size_for_dispersion(0.05, 0) == 20
    with mpmath.workdps(60):
        exact = int(mpmath.floor(mpmath.exp(50) * (1 / mpmath.mpf(0.9) - 1) + 1)) + 1
    assert sd.min_size_for_dispersion([0.9], 50) == [exact] and exact > 2**63


def test_softmax_entropy_keeps_a_tiny_entropy():
    with mpmath.workdps(40):
        z = mpmath.exp(-40)
        exact = float(mpmath.log1p(z) + 40 * z / (1 + z))
    assert float(softmax_entropy(np.array([0.0, -40.0]))) == pytest.approx(exact, rel=1e-15)


def test_min_weight_bound_at_one_item_is_one():
    assert sd.min_weight_bound(1, 1000) == 1.0 and sd.max_weight_bound(1, 1000) == 1.0


@pytest.mark.parametrize("call,error,match", [
    (lambda: softmax(np.array([[1.0, 2.0]]), mask=np.array([[False, False]])), InvalidArgument,
     r"mask leaves row 0"),
    (lambda: softmax(np.array([1.0, 2.0]), mask=np.array([True, False, True])), InvalidArgument,
     r"mask has shape \(3,\)"),
    (lambda: softmax(np.array([1 + 1j, 2.0])), InvalidType, r"logits is complex"),
    (lambda: get_format("bf16").round(np.array([1 + 1j])), InvalidType, r"x is complex"),
    (lambda: rc.oversquashing_bound([np.eye(2) * (1 + 1j)]), InvalidType,
     r"attention\[0\] is complex"),
    (lambda: rc.oversquashing_bound([np.zeros((0, 0))]), InvalidArgument,
     r"attention\[0\] has shape \(0, 0\)"),
    (lambda: softmax([[1.0, 2.0], [1.0]]), InvalidType, r"logits is not a rectangular array"),
    (lambda: softmax(["a", "b"]), InvalidType, r"logits has dtype <U1"),
    (lambda: softmax(np.array([1.0, 2.0]), axis="1"), InvalidType, r"axis"),
    (lambda: iso.log_perplexity("0.5", "0.1"), InvalidType, r"a='0.5' is a string"),
    (lambda: iso.log_perplexity(True, 0.1), InvalidType, r"a is boolean"),
    (lambda: iso.log_perplexity(mpmath.mpf(2), 0.1), InvalidArgument, r"a=2.0 must lie in"),
    (lambda: iso.log_perplexity(sp.Integer(2), 0.1), InvalidArgument, r"a=2 must lie in"),
    (lambda: iso.corrected_bound(0, 0.1, 0.1), InvalidArgument, r"n=0 must be a positive"),
    (lambda: sd.min_weight_bound(math.inf, 1), InvalidArgument, r"n=inf must be a positive"),
    (lambda: sd.adaptive_beta(math.nan), InvalidArgument, r"entropy=nan must lie in"),
    (lambda: get_backend(0), InvalidType, r"backend=0"),
    (lambda: rc.perturbed_softmax_tv(2**40), InvalidArgument, r"n=1099511627776 must be"),
])
def test_bad_input_is_refused_in_one_line(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_round_to_takes_a_format_name():
    assert round_to(np.array([1 + 2.0**-8 + 2.0**-30]), "bf16")[0] == 1 + 2.0**-7


def test_the_counterexample_takes_exact_numbers():
    pair = iso.THEOREM.counterexample(a=sp.Rational(1, 10), gamma=0.4)
    assert pair.accuracy[0] == 0.1 and pair.log_perplexity[0] != pair.log_perplexity[1]


def test_overflowing_states_are_refused_not_returned_as_nan(monkeypatch):
    real = rc.branch_forward

    def overflowing(*args, **kwargs):
        run = real(*args, **kwargs)
        with np.errstate(invalid="ignore"):  # 0 * inf: the NaN this test feeds in
            return type(run)(run.short * np.inf, run.long, run.short_outputs, run.long_outputs)

    monkeypatch.setattr(rc, "branch_forward", overflowing)
    with pytest.raises(InvalidArgument, match=r"short branch's final state overflows fp8-e4m3"):
        rc.final_state_gaps("repeated", 8, d=16, fmt="fp8-e4m3")


def test_a_csv_write_that_fails_leaves_the_old_file_whole(tmp_path, monkeypatch):
    import csv

    path = tmp_path / "rows.csv"
    row = {"theorem": "t", "format": "fp64", "policy": "hw", "quantity": "q",
           "verdict": "holds", "mechanism": "", "margin_ulps": 1.0}
    Report("t", [row]).to_csv(path)
    before = path.read_bytes()

    def broken(self, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", broken)
    with pytest.raises(OSError):
        Report("t", [row, row]).to_csv(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["rows.csv"]


@pytest.mark.parametrize("a,gamma,s", [
    (sp.Rational(1, 2), sp.Rational(9007199254740991, 18014398509481984), 0),  # gave 0.79
    (sp.Rational(1, 2), 0.49999999999999994, sp.Integer(0)),  # gave 0
    (sp.Rational(3, 10), 0.49999999999999994, sp.Rational(1, 4)),
])
def test_sympy_critical_accuracy_next_to_one_half_evaluates_right(a, gamma, s):
    value = sp.N(iso.critical_accuracy(a, gamma, s), 30)
    with mpmath.workdps(80):
        g = mpmath.mpf(sp.Rational(gamma).p) / sp.Rational(gamma).q if isinstance(
            gamma, sp.Basic) else mpmath.mpf(gamma)
        am, sm = mpmath.mpf(a.p) / a.q, mpmath.mpf(sp.Rational(s).p) / sp.Rational(s).q
        shifted = g * (1 - sm)
        pplx = -am * mpmath.log(1 - g) - (1 - am) * mpmath.log(g)
        exact = (pplx + mpmath.log(shifted)) / (mpmath.log(shifted) - mpmath.log(1 - shifted))
        assert abs(mpmath.mpf(str(value)) - exact) < mpmath.mpf(10) ** -25


def test_high_precision_lowest_accepted_accuracy_next_to_one_half_is_found():
    a_min, gamma_min = iso.lowest_accepted_accuracy(mpmath.mpf(0.75), 0.49999999999999994)
    with mpmath.workdps(60):
        g = mpmath.mpf(0.49999999999999994)
        target = -mpmath.mpf(0.75) * mpmath.log(1 - g) - mpmath.mpf(0.25) * mpmath.log(g)
        entropy = -a_min * mpmath.log(a_min) - gamma_min * mpmath.log(gamma_min)
    assert abs(entropy - target) < 1e-30 and abs(a_min + gamma_min - 1) < 1e-30
