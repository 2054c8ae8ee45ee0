"""iso-perplexity: Eqs. 10-11, the REPL functions, derivation, certificate, sweeps, Lemma 3.1.

Expected values come from mpmath at 50 digits, SymPy, brute-force minimisation, a closed form of
the copy model, and a scalar in-format summation loop.
"""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy as sp

import numerics.iso_perplexity
import theorems
import theorems.iso_perplexity as iso
from numerics.iso_perplexity import (
    SEPARATOR,
    copy_log_perplexity,
    copy_model_probabilities,
    copy_readout,
    copy_transformer,
)
from numerics.transformer import forward
from proofs import certify, gt
from proofs import iso_perplexity as proof

mpmath.mp.dps = 50
THEOREM = theorems.get("iso-perplexity")
POINTS = [(0.5, 0.4), (0.9, 0.05), (0.7, 0.3), (0.3, 0.1), (0.99, 0.49)]


def mp_pplx(a, g):
    a, g = mpmath.mpf(a), mpmath.mpf(g)
    return -a * mpmath.log(1 - g) - (1 - a) * mpmath.log(g)


@pytest.mark.parametrize("a,gamma", POINTS)
def test_log_perplexity_against_mpmath(a, gamma):
    assert iso.log_perplexity(a, gamma) == pytest.approx(float(mp_pplx(a, gamma)), rel=1e-14)


@pytest.mark.parametrize("a,gamma", POINTS)
@pytest.mark.parametrize("s", [0.0, 0.1, 0.5, 0.9])
def test_critical_accuracy_solves_the_iso_perplexity_condition(a, gamma, s):
    critical = iso.critical_accuracy(a, gamma, s)
    with mpmath.workdps(50):
        # independent: the accuracy at gamma' with the same perplexity, by root finding
        root = mpmath.findroot(lambda x: mp_pplx(x, gamma * (1 - s)) - mp_pplx(a, gamma), a)
    assert critical == pytest.approx(float(root), rel=1e-12, abs=1e-14)
    if s == 0.0:
        assert critical == pytest.approx(a, rel=1e-13)


def test_critical_accuracy_tends_to_one():
    values = iso.critical_accuracy(0.5, 0.4, np.array([0.9, 0.99, 0.999999]))
    assert np.all(np.diff(values) > 0) and values[-1] > 0.95


def test_exact_modes():
    a, g, s = sp.Rational(1, 2), sp.Rational(2, 5), sp.Rational(1, 4)
    exact = iso.critical_accuracy(a, g, s)
    assert isinstance(exact, sp.Basic)
    assert float(exact) == pytest.approx(iso.critical_accuracy(0.5, 0.4, 0.25), rel=1e-14)
    value = iso.log_perplexity(mpmath.mpf("0.5"), mpmath.mpf("0.4"))
    assert isinstance(value, mpmath.mpf) and abs(value - mp_pplx("0.5", "0.4")) < 1e-45
    assert iso.free_lunch(sp.Rational(4, 5), sp.Rational(2, 5)) == sp.true


def test_vectorised():
    a = np.linspace(0.1, 0.9, 9)[:, None]
    g = np.linspace(0.05, 0.45, 5)[None, :]
    values = iso.log_perplexity(a, g)
    assert values.shape == (9, 5)
    assert values[3, 2] == pytest.approx(float(mp_pplx(a[3, 0], g[0, 2])), rel=1e-14)


@pytest.mark.parametrize("a,gamma", [(0.8, 0.4), (0.7, 0.35), (0.95, 0.2), (0.6, 0.45)])
def test_lowest_accepted_accuracy_against_brute_force(a, gamma):
    a_min, g_min = iso.lowest_accepted_accuracy(a, gamma)
    shifts = np.linspace(0, 0.999, 200_001)
    brute = iso.critical_accuracy(a, gamma, shifts)
    assert float(a_min) == pytest.approx(brute.min(), abs=1e-9)
    target = mp_pplx(a, gamma)
    x = mpmath.mpf(float(a_min))
    if float(g_min) != gamma:
        assert float(-x * mpmath.log(x) - (1 - x) * mpmath.log(1 - x)) == pytest.approx(
            float(target), rel=1e-9)
        assert float(g_min) == pytest.approx(1 - float(a_min), rel=1e-12)
    exact = iso.lowest_accepted_accuracy(sp.Rational(str(a)), sp.Rational(str(gamma)))
    assert float(exact[0]) == pytest.approx(float(a_min), rel=1e-12)


def test_lowest_accepted_accuracy_when_calibration_is_unreachable():
    # a = 0.5, gamma = 0.4: being calibrated needs gamma' = 0.5 > 0.4, so the model itself
    assert iso.lowest_accepted_accuracy(0.5, 0.4) == (0.5, 0.4)


@pytest.mark.parametrize("a,gamma", [(0.8, 0.4), (0.61, 0.4), (0.59, 0.4), (0.5, 0.4),
                                     (0.97, 0.05)])
def test_free_lunch_is_the_sign_of_the_initial_slope(a, gamma):
    with mpmath.workdps(50):
        h = mpmath.mpf("1e-20")
        a_shift = mpmath.findroot(lambda x: mp_pplx(x, gamma * (1 - h)) - mp_pplx(a, gamma), a)
    assert bool(iso.free_lunch(a, gamma)) == bool(a_shift < a)


def test_v_token_model_and_temperature_fold():
    a, g = 0.7, 0.3
    c, V = 1 - g, 2
    loss = -a * math.log(c) - (1 - a) * math.log((1 - c) / (V - 1))
    assert loss == pytest.approx(iso.log_perplexity(a, g), rel=1e-14)
    theta = 0.5
    folded = g ** (1 / theta) / ((1 - g) ** (1 / theta) + g ** (1 / theta))
    direct = math.exp(math.log(g) / theta) / (math.exp(math.log(g) / theta)
                                              + math.exp(math.log(1 - g) / theta))
    assert folded == pytest.approx(direct, rel=1e-14)


def test_derivation():
    d = THEOREM.derive()
    assert d.complete and d.errata_shown and d.ok
    assert [r.status for r in d.printed] == ["failed", "failed"]
    # the printed oversmoothing size at margin 0.1, floor 1e-6, xi 0.01 is about -120
    value = proof.printed_oversmoothing(sp.Rational(1, 10), sp.Float("1e-6"), sp.Rational(1, 100))
    expected = (mpmath.mpf("0.1") - mpmath.log(mpmath.mpf("0.6")) + mpmath.log(mpmath.mpf("1e-6"))
                ) / mpmath.mpf("0.11")
    assert float(value) == pytest.approx(float(expected), rel=1e-12)
    assert round(float(expected), 1) == -120.0
    witness = d.step("14'").witness
    printed = proof.printed_lemma_bound(witness["N"], witness["margin"], witness["floor"])
    assert float(printed) < 0


def test_certificate_and_negative_control():
    certificate = THEOREM.certify()
    assert certificate.ok
    a, gamma, s = proof.a, proof.gamma, proof.s
    shifted = gamma * (1 - s)
    wrong = certify(gt(a * shifted - (1 - a) * (1 - shifted), 0),
                    {a: (0.5, 0.95), gamma: (0.3, 0.45), s: (0.0, 0.05)})
    assert wrong.status == "refuted"
    w = wrong.witness
    g2 = mpmath.mpf(w["gamma"]) * (1 - mpmath.mpf(w["s"]))
    assert w["a"] * g2 - (1 - w["a"]) * (1 - g2) <= 0
    assert not iso.free_lunch(w["a"], w["gamma"])


def test_counterexamples_prefer_the_less_accurate_model():
    for a, gamma in [(0.5, 0.4), (0.8, 0.4)]:
        pair = THEOREM.counterexample(a=a, gamma=gamma)
        assert pair.prefers_less_accurate
        for i in (0, 1):
            assert pair.perplexity[i] == pytest.approx(
                float(mp_pplx(pair.accuracy[i], pair.gamma[i])), rel=1e-9)


def closed_form_copy(bits, weight=4.0):
    """The copy model's loss on its own bits in closed form: step k sees N + k tokens, of which
    the prompt's ones (greedy outputs are all 0 here) and N - ones + k - 1 zeros."""
    n = len(bits)
    ones = int(sum(bits))
    total = mpmath.mpf(0)
    for k in range(1, n + 1):
        share = mpmath.mpf(ones - (n - ones + k - 1)) / (n + k)
        p_one = 1 / (1 + mpmath.exp(-weight * share))
        total += -mpmath.log(p_one if bits[k - 1] == 1 else 1 - p_one)
    return total / n


@pytest.mark.parametrize("n", [8, 64, 512])
def test_copy_model_against_closed_form(n):
    alpha = np.zeros(n, dtype=int)
    beta = alpha.copy()
    beta[n // 3] = 1
    pa, out_a, _ = copy_log_perplexity(alpha, alpha)
    pb, out_b, _ = copy_log_perplexity(beta, beta)
    assert pa == pytest.approx(float(closed_form_copy(list(alpha))), rel=1e-12)
    assert pb == pytest.approx(float(closed_form_copy(list(beta))), rel=1e-12)
    assert np.array_equal(out_a, alpha) and np.array_equal(out_b, alpha)  # beta copied wrongly


@pytest.mark.parametrize("n", [8, 300])
def test_copy_model_is_the_transformer_it_describes(n):
    # the O(N) running mean against a full forward pass of the hand-set Transformer
    bits = np.random.default_rng(n).integers(0, 2, n)
    sequence = np.concatenate([bits, [SEPARATOR], np.zeros(n, dtype=int)])
    direct = copy_readout(forward(copy_transformer(), sequence).states)
    np.testing.assert_allclose(copy_model_probabilities(sequence), direct, rtol=0, atol=1e-14)
    # and against mpmath: after prefix i the logit is 4 (ones - zeros) / i
    ones = np.cumsum(sequence == 1)
    zeros = np.cumsum(sequence == 0)
    exact = [1 / (1 + mpmath.exp(-4 * mpmath.mpf(int(o) - int(z)) / (i + 1)))
             for i, (o, z) in enumerate(zip(ones, zeros, strict=True))]
    np.testing.assert_allclose(direct, np.array(exact, dtype=float), rtol=1e-14)


def test_negative_control_copy_model_with_attention_that_is_not_uniform(monkeypatch):
    params = {"n": 64, "format": "fp64", "policy": "hw", "seed": 0, "backend": "numpy"}
    assert iso._copy(params)[-1]["verdict"] == "holds"
    model = copy_transformer()
    looking = dataclasses.replace(model.layers[0], w_q=np.ones_like(model.layers[0].w_q),
                                  w_k=np.ones_like(model.layers[0].w_k))
    monkeypatch.setattr(iso, "copy_transformer",
                        lambda: dataclasses.replace(model, layers=(looking,)))
    row = iso._copy(params)[-1]
    assert row["quantity"] == "running mean = forward pass" and row["verdict"] == "violated"


def test_copy_gap_shrinks_within_the_corrected_bound_and_breaks_the_printed_one():
    rows = [iso._copy({"n": n, "format": "fp64", "policy": "hw", "seed": 0, "backend": "numpy"})
            for n in (16, 256, 4096)]
    gaps = [r[1]["exact_gap"] for r in rows]
    assert gaps[0] > gaps[1] > gaps[2]
    assert all(r[1]["verdict"] == "holds" and r[0]["verdict"] == "holds" for r in rows)
    assert gaps[2] * 4096 == pytest.approx(4.0, rel=0.05)  # about -log p(1) / N
    assert all(r[1]["printed_bound"] < 0 < r[1]["exact_gap"] for r in rows)


def test_bf16_strict_comparison_flip_against_scalar_loop():
    row = next(r for r in iso._sequence({"n": 1024, "format": "bf16", "policy": "strict",
                                         "seed": 0, "backend": "numpy"})
               if r["quantity"] == "A preferred")
    assert row["verdict"] == "precision-effect"
    assert row["exact_a"] < row["exact_b"] and row["computed_a"] > row["computed_b"]
    bf16 = ml_dtypes.bfloat16
    total = bf16(0)
    level = bf16(row["exact_b"])
    for _ in range(1024):
        total = bf16(float(total) + float(level))
    assert float(bf16(float(total) / 1024)) == row["computed_b"]


def test_quick_check_is_ok():
    report = THEOREM.check(sizes=[16, 1024], seeds=[0], quick=True)
    assert report.ok
    assert {r["quantity"] for r in report.rows} >= {"selection rule", "A preferred",
                                                    "gap <= corrected bound"}


def test_negative_controls(monkeypatch):
    monkeypatch.setattr(iso, "corrected_bound", lambda n, floor, eta: 0.5 * (
        -np.log(floor) / n + 2 * eta * (n - 1) / n))
    rows = iso._copy({"n": 256, "format": "fp64", "policy": "hw", "seed": 0, "backend": "numpy"})
    assert rows[1]["verdict"] == "violated"
    monkeypatch.setattr(numerics.iso_perplexity, "log_perplexity_error_bound",
                        lambda a, g, exact, fmt, policy: np.zeros(np.shape(exact)))
    rows = iso._surface({"n": 16, "format": "fp8-e4m3", "policy": "strict", "seed": 0,
                         "backend": "numpy"})
    assert rows[1]["verdict"] == "violated"


@pytest.mark.parametrize("call,match", [
    (lambda: iso.log_perplexity(1.2, 0.3), "a=1.2"),
    (lambda: iso.log_perplexity(0.5, 0.6), "gamma=0.6"),
    (lambda: iso.critical_accuracy(0.5, 0.3, 1.0), "s=1.0"),
    (lambda: iso.critical_accuracy(np.array([0.5, np.nan]), 0.3, 0.1), "a=nan"),
    (lambda: iso.lowest_accepted_accuracy(0.0, 0.3), "a=0.0"),
    (lambda: THEOREM.check(sizes=[]), "empty"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
