"""iso-perplexity: Eqs. 10-11, the REPL functions, derivation, certificate, sweeps, Lemma 3.1.

Expected values come from mpmath at 50 digits, SymPy, brute-force minimisation, a closed form of
the copy model, and a scalar in-format summation loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy as sp

import numerics.iso_perplexity
import theorems
import theorems.iso_perplexity as iso
from numerics import get_format
from numerics.iso_perplexity import (
    SEPARATOR,
    copy_log_perplexity,
    copy_model_probabilities,
    copy_readout,
    copy_transformer,
)
from numerics.models.transformer import forward
from proofs import certify, gt
from proofs import iso_perplexity as proof
from proofs.iso_perplexity import PAPER
from theorems.verdicts import judge, mechanism_holds

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


def test_derivation_is_complete_and_discharges_its_goal():
    d = THEOREM.derive()
    assert d.complete and d.ok and not d.unused
    assert d.goal_step == "thm" and d.step("thm").by == "chain"
    assert d.errata == {"refuted": 2, "inconsistent": 1, "unconfirmed source": 1}
    assert {r.label: r.step.erratum for r in d.printed} == {
        "a1": "unconfirmed source", "17'": "refuted", "32'": "inconsistent", "21'": "refuted"}
    assert "not confirmed against the PDF" in d.step("a1").step.note
    assert d.paper_steps and d.algebra_steps
    assert PAPER.unread == []


def test_printed_bound_witness_against_mpmath():
    # the printed bound is negative where the step's witness says, and at margin 0.1, floor 1e-6,
    # xi 0.01 the printed oversmoothing size is about -120
    w = THEOREM.derive().step("a1").witness
    with mpmath.workdps(50):
        m, f, n = (mpmath.mpf(w[k]) for k in ("margin", "floor", "N"))
        printed = -(mpmath.log(mpmath.mpf(1) / 2 + m) - mpmath.log(f) + (n - 1) * m) / n
        assert printed < 0
        size = (mpmath.mpf("0.1") - mpmath.log(mpmath.mpf("0.6")) + mpmath.log(mpmath.mpf("1e-6"))
                ) / mpmath.mpf("0.11")
    value = proof.printed_oversmoothing(sp.Rational(1, 10), sp.Float("1e-6", 30),
                                        sp.Rational(1, 100))
    assert float(value) == pytest.approx(float(size), rel=1e-12)
    assert round(float(size), 1) == -120.0


def test_printed_size_is_refuted_by_every_miscopied_string():
    # Eq. 17 for the copy model: margin 3/8 (its own-token probabilities are >= sigmoid(2) =
    # 0.881 > 1/2 + 3/8), floor sigmoid(-4), delta = margin/2 (one flip moves the weight-4 logit
    # by 8/m, the probability by at most 2/m), xi = 0.01
    with mpmath.workdps(50):
        assert 1 / (1 + mpmath.exp(-2)) > mpmath.mpf(7) / 8
        margin = mpmath.mpf(3) / 8
        floor = 1 / (1 + mpmath.exp(4))
        size = (margin - mpmath.log(mpmath.mpf(1) / 2 + margin) + mpmath.log(floor)) / (
            mpmath.mpf("0.01") + margin)
        n_prime = max(int(mpmath.ceil(2 / margin)), int(mpmath.ceil(size)))
    assert size < 0 and n_prime == 6
    n = n_prime + 1
    alpha = np.zeros(n, dtype=int)
    pplx_alpha = copy_log_perplexity(alpha, alpha)[0]
    gaps = []
    for bits in itertools.product((0, 1), repeat=n):
        beta = np.array(bits)
        pplx_beta, outputs, _ = copy_log_perplexity(beta, beta)
        if not np.array_equal(outputs, beta):  # miscopied
            gaps.append(abs(pplx_beta - pplx_alpha))
    assert len(gaps) == 2**n - 2 and min(gaps) > 0.38  # every one >= xi = 0.01
    step = THEOREM.derive().step("17'")
    assert step.status == "failed" and f"{min(gaps):.4f}" in step.step.show


def test_prop_3_2_margin_is_inconsistent_and_the_fix_checks():
    d = THEOREM.derive()
    assert d.step("32'").status == "failed" and d.step("m1").ok
    gamma = mpmath.mpf("0.3")
    assert 1 - gamma == mpmath.mpf(1) / 2 + (mpmath.mpf(1) / 2 - gamma)  # equality, not >


def test_every_paper_quantity_breaks_the_derivation_or_is_exempt():
    # a cheap half of the audit: the derivation alone, for the quantities it alone catches
    for name in ("eq11.top_sign", "lemma.two", "r34.exponent", "a1.sign"):
        for mutation in (m for m in PAPER.mutations() if m.name == name):
            with PAPER.mutated(mutation):
                d = THEOREM.derive()
            assert not d.ok, mutation


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
            assert pair.log_perplexity[i] == pytest.approx(
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
    params = {"experiment": "copy", "n": 64, "format": "fp64", "policy": "hw", "seed": 0,
              "backend": "numpy"}
    assert iso._copy(params)[-1]["verdict"] == "holds"
    model = copy_transformer()
    looking = dataclasses.replace(model.layers[0], w_q=np.ones_like(model.layers[0].w_q),
                                  w_k=np.ones_like(model.layers[0].w_k))
    monkeypatch.setattr(iso, "copy_transformer",
                        lambda: dataclasses.replace(model, layers=(looking,)))
    row = iso._copy(params)[-1]
    assert row["quantity"] == "running mean = forward pass" and row["verdict"] == "violated"


def copy_rows(n, seed=0):
    rows = iso._copy({"n": n, "format": "fp64", "policy": "hw", "seed": seed,
                      "backend": "numpy"})
    return {r["quantity"]: r for r in rows}


def test_copy_gap_shrinks_within_the_corrected_bound_and_breaks_the_printed_one():
    rows = [copy_rows(n) for n in (16, 256, 4096)]
    gaps = [r["gap <= corrected bound"]["exact"] for r in rows]
    assert gaps[0] > gaps[1] > gaps[2]
    assert all(row["verdict"] == "holds" for r in rows for row in r.values())
    assert gaps[2] * 4096 == pytest.approx(4.0, rel=0.05)  # about -log p(1) / N
    assert all(r["gap <= corrected bound"]["printed_bound"] < 0 < r["gap <= corrected bound"][
        "exact"] for r in rows)


def test_floor_and_eta_come_from_the_analytic_model_not_its_output():
    n, seed = 64, 3
    row = copy_rows(n, seed)["gap <= corrected bound"]
    with mpmath.workdps(50):
        floor = 1 / (1 + mpmath.exp(4))  # the weight-4 logit lies in [-4, 4]
    assert row["floor"] == pytest.approx(float(floor), rel=1e-14)
    # no probability the model gives, on any of 200 random contexts, is below the floor
    rng = np.random.default_rng(0)
    for _ in range(200):
        tokens = rng.integers(0, 3, rng.integers(1, 50))
        p_one = copy_model_probabilities(tokens)
        assert np.all(np.minimum(p_one, 1 - p_one) >= float(floor) * (1 - 1e-12))
    # eta: the largest change of P(1) over the lemma's pairs of prompts, by a full forward pass
    j = int(np.random.default_rng(seed).integers(n))
    alpha, beta = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    beta[j] = 1
    probabilities = []
    for prompt in (alpha, beta):
        sequence = np.concatenate([prompt, [SEPARATOR], np.zeros(n, dtype=int)])
        probabilities.append(copy_readout(forward(copy_transformer(), sequence).states)[n:2 * n])
    brute = np.max(np.abs(probabilities[0] - probabilities[1])[np.arange(n) != j])
    assert row["eta"] == pytest.approx(float(brute), rel=1e-12)
    corrected = -mpmath.log(floor) / n + 2 * mpmath.mpf(row["eta"]) * (n - 1) / n
    assert row["bound"] == pytest.approx(float(corrected), rel=1e-14)


def test_sharp_rows_against_mpmath():
    n, seed = 4096, 0
    rows = copy_rows(n, seed)
    j = int(np.random.default_rng(seed).integers(n))
    with mpmath.workdps(50):
        def sigmoid(z):
            return 1 / (1 + mpmath.exp(-z))
        m = n + j + 1
        p_j = sigmoid(4 * mpmath.mpf(n + j) / m)  # alpha's own bit 0 after n + j zeros
        q_j = sigmoid(4 * mpmath.mpf(1 - (n + j - 1)) / m)  # beta's 1 after one 1
        term = mpmath.log(p_j) - mpmath.log(q_j)
        floor_nll = mpmath.log(1 + mpmath.exp(4))
        gamma16 = sigmoid(-16 * mpmath.mpf(n) / (n + 1))
        boole = 1 - mpmath.fprod(1 - sigmoid(-16 * mpmath.mpf(n + k - 1) / (n + k))
                                 for k in range(1, n + 1))
    row = rows["k = j term <= -log floor"]
    assert row["observed"] == pytest.approx(float(term), rel=1e-13)
    assert row["bound"] == pytest.approx(float(floor_nll), rel=1e-14)
    assert row["margin_rel"] < 0.01  # sharp: 1% tighter breaks it
    row = rows["Remark 3.5: 1 - P(alpha | alpha) <= N gamma"]
    assert row["exact"] == pytest.approx(float(boole), rel=1e-12)
    assert row["bound"] == pytest.approx(float(n * gamma16), rel=1e-12)
    assert 0 < row["margin_rel"] < 0.01
    for quantity in ("max |p - q| <= eta", "Prop. 3.6: 1 - P(alpha | beta) <= N (gamma + eps)",
                     "||p_j - y_j|| <= sqrt 2"):
        assert rows[quantity]["verdict"] == "holds" and rows[quantity]["margin_rel"] < 0.01


def test_eq21_fails_at_the_flipped_position_but_the_gradient_vanishes():
    norms = [copy_rows(n)["||p_j - y_j|| <= sqrt 2"]["observed"] for n in (16, 256, 4096)]
    assert min(norms) > 1.41  # ||p_j - y_j|| stays at sqrt(2), not 0 (notes 2.3e)
    grads = [copy_rows(n)["gradient <= Eq. 20 bound"] for n in (16, 256, 4096)]
    assert grads[0]["observed"] > grads[1]["observed"] > grads[2]["observed"]
    assert all(g["verdict"] == "holds" for g in grads)


def test_bf16_strict_comparison_flip_against_scalar_loop():
    row = next(r for r in iso._sequence({"n": 1024, "format": "bf16", "policy": "strict",
                                         "seed": 0, "backend": "numpy"})
               if r["quantity"] == "A preferred")
    assert row["verdict"] == "precision-effect"
    assert row["mechanism"] == "accumulation stagnation" and mechanism_holds(row)
    assert row["exact_a"] < row["exact_b"] and row["computed_a"] > row["computed_b"]
    bf16 = ml_dtypes.bfloat16
    total, level, stall = bf16(0), bf16(row["exact_b"]), None
    for index in range(1024):
        after = bf16(float(total) + float(level))
        if stall is None and index > 0 and after == total:
            stall = index
        total = after
    assert float(bf16(float(total) / 1024)) == row["computed_b"]
    assert stall == row["stall_index"]


FORMAT_TYPES = {"fp16": np.float16, "bf16": ml_dtypes.bfloat16,
                "fp8-e4m3": ml_dtypes.float8_e4m3fn, "fp8-e5m2": ml_dtypes.float8_e5m2,
                "fp32": np.float32, "fp64": np.float64}


def scalar_mean(terms, fmt, policy):
    """The mean of ``terms`` the way the policy computes it, by a scalar loop: sequentially in
    the format (strict) or exactly and rounded once (hw: a float32 sum's error is far below a
    low format's spacing); and where the running sum first absorbs a term."""
    kind = FORMAT_TYPES[fmt]
    stored = [kind(t) for t in terms]
    if policy == "hw":
        return kind(math.fsum(float(t) for t in stored) / len(stored)), None
    total, stall = stored[0], None
    for index, term in enumerate(stored[1:], start=1):
        after = kind(float(total) + float(term))
        if stall is None and after == total and float(term) != 0:
            stall = index
        total = after
    return kind(float(total) / len(stored)), stall


def scalar_eq10(a, g, fmt, policy):
    """Eq. 10 in the format by a scalar loop: every operation rounded (strict) or float32 maths
    rounded once (hw); float64 for fp64."""
    kind = FORMAT_TYPES[fmt]
    wide = np.float64 if fmt == "fp64" else np.float32
    a, g = wide(kind(a)), wide(kind(g))
    if policy == "hw":
        return kind(-a * np.log(wide(1) - g) - (wide(1) - a) * np.log(g))

    def r(x):
        return wide(kind(x))
    right = r(-a * r(np.log(r(wide(1) - g))))
    wrong = r(r(wide(1) - a) * r(np.log(g)))
    return kind(right - wrong)


def test_mechanisms_agree_with_an_independent_recomputation():
    report = THEOREM.check(sizes=[64, 1024, 65536], formats=["fp16", "bf16", "fp8-e4m3",
                                                               "fp8-e5m2"], quick=True)
    effects = [r for r in report.rows if r["verdict"] == "precision-effect"]
    assert effects and all(mechanism_holds(r) for r in effects)
    assert {r["mechanism"] for r in effects} >= {"accumulation stagnation", "rounding to equality",
                                                 "accumulation rounding", "underflow"}
    checked = 0
    for row in effects:
        fmt, policy, n = row["format"], row["policy"], row["n"]
        if row["experiment"] == "sequence":
            gamma, every = iso.MODEL_A["gamma"], iso.MODEL_A["wrong_every"]
            wrong = (np.arange(n) + row["seed"]) % every == every - 1
            terms_a = np.where(wrong, -math.log(gamma), -math.log1p(-gamma))
            mean_a, stall_a = scalar_mean(terms_a, fmt, policy)
            assert float(mean_a) == row["computed_a" if "computed_a" in row else "observed"]
            if row["quantity"] == "A preferred":
                mean_b, stall_b = scalar_mean(np.full(n, row["exact_b"]), fmt, policy)
                assert float(mean_b) == row["computed_b"]
                assert stall_b == row["stall_index"]
                if row["mechanism"] == "rounding to equality":
                    assert mean_a == mean_b and row["exact_b"] > row["exact_a"]
            else:
                assert stall_a == row["stall_index"]
                if row["mechanism"] == "underflow":
                    assert float(mean_a) == 0.0
            checked += 1
        elif row["quantity"] == "selection in format":
            pair = [(row["a"], row["gamma"]), (row["a_new"], row["gamma_new"])]
            values = [scalar_eq10(a, g, fmt, policy) for a, g in pair]
            with mpmath.workdps(50):
                exact = [mp_pplx(a, g) for a, g in pair]
            assert abs(float(exact[0] - exact[1])) == pytest.approx(row["exact"], rel=1e-9)
            if row["mechanism"] == "rounding to equality":
                assert values[0] == values[1]
            else:  # a strict flip: the two evaluations' errors exceed the format's spacing
                error = sum(abs(float(v) - float(e)) for v, e in zip(values, exact, strict=True))
                spacing = float(get_format(fmt).ulp(min(float(v) for v in values)))
                assert error / spacing == pytest.approx(row["sum_error_ulps"], rel=1e-9)
                assert error / spacing > 1
            checked += 1
    assert checked >= 20


def test_quick_check_is_ok():
    report = THEOREM.check(sizes=[16, 1024], seeds=[0], quick=True)
    assert report.ok
    assert {r["quantity"] for r in report.rows} >= {
        "selection rule", "selection in format", "flips within error band", "A preferred",
        "pplx_A <= Eq. 10", "pplx_A >= Eq. 10", "beta copied as alpha", "gap <= corrected bound",
        "k = j term <= -log floor", "max |p - q| <= eta", "||p_j - y_j|| <= sqrt 2",
        "Remark 3.5: 1 - P(alpha | alpha) <= N gamma",
        "Prop. 3.6: 1 - P(alpha | beta) <= N (gamma + eps)", "gradient <= Eq. 20 bound"}
    assert all(mechanism_holds(r) for r in report.rows if r["verdict"] == "precision-effect")


def test_negative_controls(monkeypatch):
    monkeypatch.setattr(iso, "corrected_bound", lambda n, floor, eta: 0.5 * (
        -np.log(floor) / n + 2 * eta * (n - 1) / n))
    rows = copy_rows(256)
    assert rows["gap <= corrected bound"]["verdict"] == "violated"
    monkeypatch.setattr(numerics.iso_perplexity, "log_perplexity_error_bound",
                        lambda a, g, exact, fmt, policy: np.zeros(np.shape(exact)))
    rows = iso._surface({"n": 16, "format": "fp8-e4m3", "policy": "strict", "seed": 0,
                         "backend": "numpy"})
    band = next(r for r in rows if r["quantity"] == "flips within error band")
    assert band["verdict"] == "violated"


def test_negative_control_a_wrong_eq11_breaks_the_selection_rule_rows():
    params = {"n": 16, "format": "fp64", "policy": "hw", "seed": 0, "backend": "numpy"}
    mutation = next(m for m in PAPER.mutations() if m.name == "eq11.bottom_sign")
    with PAPER.mutated(mutation):
        rows = iso._surface(params)
    assert rows[0]["quantity"] == "selection rule" and rows[0]["verdict"] == "violated"
    assert iso._surface(params)[0]["verdict"] == "holds"


def test_negative_control_a_mechanism_needs_its_evidence():
    rows = [r for r in iso._surface({"n": 24, "format": "bf16", "policy": "strict", "seed": 0,
                                     "backend": "numpy"})
            if r["quantity"] == "selection in format"]
    tie, flip = (next(r for r in rows if r["kind"] == kind) for kind in ("tie", "strict"))
    assert tie["mechanism"] == "rounding to equality" and mechanism_holds(tie)
    assert not mechanism_holds({**tie, "bitwise_equal": False})
    assert flip["mechanism"] == "accumulation rounding" and mechanism_holds(flip)
    assert not mechanism_holds({**flip, "sum_error_ulps": 0.5})
    judged = judge(quantity=flip["quantity"], observed=flip["observed"], exact=flip["exact"],
                   bound=0, relation=">", format="bf16", evidence={})
    assert judged["verdict"] == "precision-effect" and judged["mechanism"] == "unexplained"


def test_audit_catches_every_mutation():
    audit = THEOREM.audit(workers=2)  # the mutations side by side on 2 processes
    assert audit.ok, str(audit)
    exempt = {e.mutation for e in audit.entries if e.status == "exempt"}
    assert exempt == {"sec41.free_lunch_gamma x0.99", "sec41.free_lunch_gamma x1.01",
                      "c37.term_bound x1.01", "gap <= corrected bound 1% tighter",
                      "gradient <= Eq. 20 bound 1% tighter",
                      "running mean = forward pass 1% tighter"}
    caught = {e.mutation for e in audit.entries if e.status == "caught"}
    assert {"eq10.right_sign negated", "lemma.two x1.01", "a1.sign negated",
            "k = j term <= -log floor 1% tighter", "pplx_A <= Eq. 10 1% tighter"} <= caught


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
