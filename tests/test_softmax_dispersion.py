"""softmax-dispersion: bounds, REPL functions, derivation, certificate, sweep, counterexamples.

Expected numbers come from mpmath at 50 digits, exact SymPy rationals, brute-force enumeration
of a format's values, or a plain re-implementation of the paper's JAX listing.
"""

from __future__ import annotations

import math
import time

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy as sp

import proofs.softmax_dispersion as sd_proofs
import theorems
import theorems.softmax_dispersion as sd
from numerics import FORMATS, get_format, get_policy, softmax
from numerics.kernels import sequential_total
from numerics.softmax_dispersion import family_logits
from proofs import Derivation, Step, certify, ge, le
from proofs.quantities import Mutation
from proofs.softmax_dispersion import R, X, paper_upper, tight_upper
from theorems.verdicts import mechanism_holds

mpmath.mp.dps = 50
SIZES = (16, 64, 256, 1024, 4096, 16384)
THEOREM = theorems.get("softmax-dispersion")


def exact_tight(n, d, top=True):
    return 1 / (1 + (n - 1) * mpmath.exp(-d if top else d))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("spread", [0.0, 1.0, 4.0, 16.0])
def test_bounds_match_mpmath(n, spread):
    lower, upper = sd.paper_bounds(n, spread)
    assert upper == pytest.approx(float(mpmath.exp(spread) / n), rel=1e-14)
    assert lower == pytest.approx(float(mpmath.exp(-spread) / n), rel=1e-14)
    assert sd.max_weight_bound(n, spread) == pytest.approx(float(exact_tight(n, spread)), rel=1e-14)
    assert sd.min_weight_bound(n, spread) == pytest.approx(
        float(exact_tight(n, spread, top=False)), rel=1e-13)
    assert lower <= sd.min_weight_bound(n, spread) <= sd.max_weight_bound(n, spread) <= upper


def test_temperature_enters_as_spread_over_theta():
    assert sd.max_weight_bound(100, 4.0, 2.0) == pytest.approx(float(exact_tight(100, 2)), 1e-14)
    assert sd.paper_bounds(100, 3.0, 0.5)[1] == pytest.approx(float(mpmath.exp(6) / 100), 1e-14)


def test_bounds_vectorise():
    sizes = np.array(SIZES)
    values = sd.max_weight_bound(sizes, 2.0)
    expected = [float(exact_tight(n, 2)) for n in SIZES]
    np.testing.assert_allclose(values, expected, rtol=1e-14)


@pytest.mark.parametrize("n", [2, 16, 1000])
@pytest.mark.parametrize("spread", [0.5, 3.0])
def test_extremal_logits_attain_the_tight_bounds(n, spread):
    top = softmax(family_logits("worst-max", n, spread), "fp64", "hw")
    bottom = softmax(family_logits("worst-min", n, spread), "fp64", "hw")
    assert top.max() == pytest.approx(float(exact_tight(n, spread)), rel=1e-13)
    assert bottom.min() == pytest.approx(float(exact_tight(n, spread, top=False)), rel=1e-13)


@pytest.mark.parametrize("target,spread", [(0.9, 4.0), (0.5, 1.0), (0.99, 8.0), (0.3, 0.0)])
def test_min_size_for_dispersion_is_the_first_impossible_size(target, spread):
    n = sd.min_size_for_dispersion(target, spread)
    assert exact_tight(n, spread) < target
    assert n == 1 or exact_tight(n - 1, spread) >= target


def test_min_size_example_and_half_mass():
    assert sd.min_size_for_dispersion(0.9, 4.0) == 8  # 1/(1+7e^-4) = 0.886 < 0.9 <= 0.9009
    n_half = 1 + math.exp(5.69)  # Gemma 2B mean spread: about 297 items halve the top weight
    assert float(exact_tight(n_half, 5.69)) == pytest.approx(0.5, abs=1e-12)


POLY = [sp.Rational(c) for c in ("-0.037", "0.481", "-2.3", "4.917", "-1.791")]


@pytest.mark.parametrize("h", ["0.5", "0.75", "1", "1.5", "2", "3", "4.5", "5.5", "6", "7"])
def test_adaptive_beta_against_exact_polynomial(h):
    H = sp.Rational(h)
    exact = sum(c * H ** (4 - i) for i, c in enumerate(POLY))
    expected = float(max(exact, 1)) if H > sp.Rational(1, 2) else 1.0
    assert sd.adaptive_beta(float(H)) == pytest.approx(expected, rel=1e-14)


def test_adaptive_beta_is_not_the_ascending_order_port():
    ascending = sum(float(c) * 3.0**i for i, c in enumerate(POLY))  # -31.6: clamps to 1
    assert ascending < 0
    assert sd.adaptive_beta(3.0) == pytest.approx(2.25, rel=1e-12)
    assert sd.adaptive_beta(math.log(1024)) == 1.0  # beyond 5.9445 nats the fit is clamped


def listing_reference(logits):
    """The paper's JAX listing, transcribed to float64 NumPy."""
    z = logits - logits.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    h = np.sum(-p * np.log(p + 1e-9), axis=-1, keepdims=True)
    beta = np.where(h > 0.5, np.maximum(np.polyval([-0.037, 0.481, -2.3, 4.917, -1.791], h), 1.0),
                    1.0)
    y = logits * beta
    y = np.exp(y - y.max(axis=-1, keepdims=True))
    return y / y.sum(axis=-1, keepdims=True), beta


def test_adaptive_temperature_softmax_matches_the_listing():
    logits = np.random.default_rng(3).normal(size=(4, 64)) * np.array([[0.1], [1], [3], [10]])
    out, beta, _ = sd.adaptive_temperature_softmax(logits, "fp64", "hw", return_beta=True)
    expected, expected_beta = listing_reference(logits)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(beta, expected_beta, rtol=1e-12)
    assert out.dtype == np.float64


def test_adaptive_temperature_keeps_bf16():
    out = sd.adaptive_temperature_softmax(np.linspace(-2, 2, 32), "bf16", "hw")
    assert out.dtype == np.dtype(ml_dtypes.bfloat16)


def test_fp16_strict_entropy_epsilon_pitfall():
    # 1e-9 is 0 in fp16, so an exact zero gives 0 * log(0) = NaN; the gate then keeps beta = 1
    logits = np.zeros(8)
    logits[0] = 30.0
    _, beta, entropy = sd.adaptive_temperature_softmax(logits, "fp16", "strict", return_beta=True)
    assert np.float16(1e-9) == 0
    assert np.isnan(entropy).all() and (beta == 1).all()
    _, beta_hw, entropy_hw = sd.adaptive_temperature_softmax(logits, "fp16", "hw", return_beta=True)
    assert np.isfinite(entropy_hw).all()


def _format_values(fmt):
    view = np.uint8 if fmt.bits == 8 else np.uint16
    values = np.arange(2**fmt.bits, dtype=np.uint32).astype(view).view(fmt.dtype)
    with np.errstate(invalid="ignore"):
        values = values.astype(np.float64)
    return np.unique(values[np.isfinite(values) & (values > 0)])


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8-e4m3", "fp8-e5m2"])
def test_sharpness_gap_hw_against_enumeration(name):
    # hw rounds the exact two-point softmax once: [1, 0] once the second weight is below half
    # the smallest subnormal; the top weight is 1 once it is at least 1 - eps/4 (ties to even)
    fmt = get_format(name)
    zero_gap, one_gap = sd.sharpness_gap(name, "hw")
    values = _format_values(fmt)
    small = [mpmath.exp(-mpmath.mpf(g)) / (1 + mpmath.exp(-mpmath.mpf(g))) for g in values]
    expected_zero = next(g for g, a in zip(values, small, strict=True)
                         if a <= mpmath.mpf(fmt.smallest_subnormal) / 2)
    expected_one = next(g for g, a in zip(values, small, strict=True)
                        if 1 - a >= 1 - mpmath.mpf(fmt.eps) / 4)
    assert (zero_gap, one_gap) == (float(expected_zero), float(expected_one))


def test_sharpness_gap_theory_values():
    zero, one = sd.sharpness_gap("fp32", "hw")
    assert zero == pytest.approx(150 * math.log(2), abs=1e-4)  # e^-g below 2^-150
    # in fp32 the denominator 1 + e^-g already rounds to 1 once e^-g <= 2^-24 (half an ulp of 1)
    assert one == pytest.approx(24 * math.log(2), abs=2e-6)
    assert sd.sharpness_gap("bf16", "hw") == (93.0, 6.25)


def test_sequential_total_against_scalar_loop():
    for name in ("bf16", "fp16", "fp8-e4m3", "fp8-e5m2"):
        fmt = FORMATS[name]
        dtype = fmt.dtype.type
        for first, term, count in [(1.0, 1.0, 3000), (1.0, 0.0183, 3000), (0.0183, 1.0, 3000),
                                   (1.0, 0.3, 3000)]:
            term_stored = float(np.array([term], np.float32).astype(fmt.dtype)[0])
            total = dtype(first)
            for _ in range(count):
                total = dtype(float(total) + term_stored)  # one rounding per addition
            assert sequential_total(first, term_stored, count, fmt) == float(total), (name, term)


# --- the derivation ---------------------------------------------------------------------------

def test_derivation_is_complete_and_discharges_the_goal():
    d = THEOREM.derive()
    assert d.ok and d.complete, str(d)
    assert d.goal_step == "9" and d.unused == ()
    assert len(d.steps) == 73 and all(r.status == "checked" for r in d.steps)
    assert d.algebra_steps == ()  # no generic helpers: every step is the paper's reasoning
    assert {r.by for r in d.steps} == {"instance", "apply", "chain", "sum", "simplify", "limit",
                                       "interval"}
    # every hypothesis is consumed by a step that names it
    consumed = {label for r in d.steps for label in r.consumed}
    assert {label for label, _ in d.hypotheses} <= consumed
    assert repr(d) == "<Derivation softmax-dispersion: 73/73 checked>"


def test_derivation_follows_lemma_2_1():
    d = THEOREM.derive()
    # each term exp((e_j - e_i)/theta) lies in [e^-d, e^d]: from the hypothesis, by exp
    assert d.step("4").by == "chain" and set(d.step("4").consumed) == {"3a", "3b", "3c", "3d"}
    assert d.step("3a").by == "apply" and d.step("3a").consumed == ("2",)
    # sum over the n - 1 other terms, then 1/(1 + S) decreasing in S
    assert d.step("5a").by == "sum" and d.step("6a").by == "apply"
    # the goal: the tight bounds and the paper's, by chain from the steps it names
    assert set(d.step("9").consumed) == {"h3", "6a", "6b", "7c", "8c"}
    # the tight bounds are attained, and the paper's constants are their asymptotes
    assert d.step("10").claim.rhs == sd_proofs.tight_upper(sd_proofs.n, sd_proofs.d)
    assert d.step("12a").detail == "limit = exp(d)"


def test_derivation_covers_theorem_2_2_by_induction():
    d = THEOREM.derive()
    base, step = d.step("14"), d.step("15")
    assert base.status == step.status == "checked"
    assert base.claim == le(X(0), R(0)) and step.claim == le(X(sd_proofs.l + 1), R(sd_proofs.l + 1))
    assert set(step.consumed) == {"g7", "15c", "15d", "g8"}  # from the inductive hypothesis g5
    assert "n" not in {s.name for s in d.step("15").claim.free_symbols}
    # Prop. 3.1 at layer l, then Lemma 2.1 with the n-free spread 2 sQ sK R(l)^2 / theta
    assert d.step("17").consumed == ("17c", "17d")
    assert d.step("18").consumed == ("18a", "18c") and d.step("19").status == "checked"


@pytest.mark.parametrize("exponent", [sp.Rational(-101, 100), sp.Float(-1.01)], ids=str)
def test_a_changed_tight_exponent_fails_fast_with_a_witness(exponent):
    mutation = Mutation("lemma.lower.exponent", f"set to {exponent}", exponent)
    start = time.perf_counter()
    with sd_proofs.PAPER.mutated(mutation):
        d = sd_proofs.derivation()
    assert time.perf_counter() - start < 120
    assert not d.ok and d.goal_step is None
    failed = d.step("3c")
    assert failed.status == "failed" and failed.witness
    w = {k: mpmath.mpf(v) for k, v in failed.witness.items()}
    lhs = mpmath.exp((w["m"] - w["M"]) / w["theta"])
    rhs = mpmath.exp(mpmath.mpf(float(exponent)) * (w["M"] - w["m"]) / w["theta"])
    assert abs(lhs - rhs) > 1e-6
    assert not any(r.detail.startswith("unchecked (timeout)") for r in d.steps)


def test_listing_roots_bracket_the_exact_roots():
    coefficients = [mpmath.mpf(c) for c in ("-0.037", "0.481", "-2.3", "4.917", "-1.791")]
    with mpmath.workdps(40):
        roots = [mpmath.findroot(lambda h: mpmath.polyval(coefficients, h) - 1, x0)
                 for x0 in (0.85, 5.9)]
        peak = mpmath.findroot(lambda h: mpmath.polyval(
            [4 * coefficients[0], 3 * coefficients[1], 2 * coefficients[2], coefficients[3]], h),
            4.4)
        top = mpmath.polyval(coefficients, peak)
    for (low, high), root in zip(sd_proofs.BETA_ONE, roots, strict=True):
        assert low < root < high and high - low < 4e-6
    assert top < sd_proofs.BETA_MAX < top + 1e-3


def test_derivation_negative_controls():
    n, dd = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    box = {n: (1, 2**20), dd: (0, 20)}
    too_tight = Step("x", le(tight_upper(n, dd), paper_upper(n, dd) * sp.Rational(999, 1000)),
                     by="interval", box=box)
    printed = Step("p", ge(1 / (1 + (n - 1) * sp.exp(dd)), 1 / n), box=box)
    d = Derivation.check("control", source="test", hypotheses={}, goal=ge(n, 0),
                         steps=[too_tight], as_printed=[printed])
    assert d.steps[0].status == "failed" and not d.ok
    witness = d.steps[0].witness
    value = exact_tight(witness["n"], witness["d"]) - mpmath.exp(witness["d"]) / witness["n"] * \
        mpmath.mpf("0.999")
    assert value > 0
    assert d.printed[0].status == "failed" and d.errata_shown


def test_a_changed_listing_coefficient_breaks_a_step_with_a_witness():
    mutation = next(m for m in sd_proofs.PAPER.mutations() if str(m) == "listing.poly.H4 x1.01")
    with sd_proofs.PAPER.mutated(mutation):
        d = sd_proofs.derivation()
    failed = d.step("A1")
    assert failed.status == "failed"
    h = mpmath.mpf(failed.witness["H"])
    coefficients = [mpmath.mpf("-0.037") * mpmath.mpf("1.01"), mpmath.mpf("0.481"),
                    mpmath.mpf("-2.3"), mpmath.mpf("4.917"), mpmath.mpf("-1.791")]
    assert mpmath.polyval(coefficients, h) < 1  # the mutated beta(H) >= 1 is false there


def test_certificate_and_its_negative_control():
    c = THEOREM.certify()
    assert c.ok and c.status == "proved"
    n, d = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    bad = certify(le(tight_upper(n, d), paper_upper(n, d) * sp.Rational(999, 1000)),
                  {n: (1, 2**24), d: (0, 30)})
    assert bad.status == "refuted"
    w = bad.witness
    assert exact_tight(w["n"], w["d"]) > mpmath.exp(w["d"]) / w["n"] * mpmath.mpf("0.999")


# --- the numeric checker -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_report():
    return THEOREM.check(sizes=[1, 2, 64, 256, 4096], seeds=[0], quick=True)


def test_quick_check_is_ok_and_the_precision_model_predicts_every_worst_case_row(quick_report):
    report = quick_report
    assert report.ok and report.counts["violated"] == 0
    assert all(r["relation"] in ("<=", ">=", "<", ">") and "margin" not in r for r in report.rows)
    worst = [r for r in report.rows if r["family"] != "random"]
    assert worst and all(r["predicted"] == (r["verdict"] == "precision-effect") for r in worst)
    narrow = [r for r in worst if get_format(r["format"]).bits <= 16]
    for row in narrow:  # the rounding model and the kernel agree to an ulp
        assert abs(row["observed"] - row["model"]) <= float(get_format(row["format"]).ulp(
            row["model"]))
    effects = [r for r in report.rows if r["verdict"] == "precision-effect"]
    assert {r["mechanism"] for r in effects} == {"underflow", "rounding to one",
                                                 "accumulation stagnation",
                                                 "accumulation rounding"}
    assert all(mechanism_holds(r) for r in effects)


def test_mechanisms_follow_the_measured_evidence(quick_report):
    effects = [r for r in quick_report.rows if r["verdict"] == "precision-effect"]
    for row in effects:
        fmt = get_format(row["format"])
        if row["mechanism"] == "accumulation stagnation":
            assert row["policy"] == "strict" and row["stall_index"] is not None
            assert row["observed"] != 0 and row["observed"] != 1
        elif row["mechanism"] == "accumulation rounding":
            assert row["stall_index"] is None and row["sum_error_ulps"] > 1
        # no "subnormal rounding" default: a stalled sum with a normal output is stagnation
        if row["observed"] and abs(row["observed"]) >= fmt.smallest_normal and row["exact"] and \
                row["observed"] / row["exact"] > 10:
            assert row["stall_index"] is not None
    # fp64 strict at n = 256, spread 1: ordinary rounding of a growing sum, no stall
    fp64 = [r for r in effects if r["format"] == "fp64"]
    assert fp64 and all(r["mechanism"] == "accumulation rounding" for r in fp64)


def _left_to_right(terms, dtype):
    """Sum ``terms`` left to right with scalars of ``dtype``; return (stall, absorbed, total)."""
    total, stall, absorbed = dtype(terms[0]), None, 0
    for index, term in enumerate(terms[1:], start=1):
        new = dtype(total + dtype(term))
        if new == total and term != 0:
            absorbed += 1
            stall = index if stall is None else stall
        total = new
    return stall, absorbed, float(total)


def _independent_evidence(row):
    fmt = get_format(row["format"])
    dtype = fmt.dtype.type
    logits = family_logits(row["family"], row["n"], row["spread"], seed=row["seed"])
    stored = [float(dtype(v)) for v in logits.tolist()]
    top = max(stored)
    with mpmath.workdps(40):
        terms = [float(dtype(float(mpmath.exp(mpmath.mpf(float(dtype(v - top)))))))
                 for v in stored]
        exact = mpmath.fsum(mpmath.mpf(t) for t in terms)
    stall, absorbed, total = _left_to_right(terms, dtype)
    error = float(abs(mpmath.mpf(total) - exact) / mpmath.mpf(float(fmt.ulp(float(exact)))))
    return {"stall_index": stall, "absorbed": absorbed, "sum_error_ulps": error}


def test_a_sample_of_mechanisms_agrees_with_an_independent_recomputation(quick_report):
    rows = [r for r in quick_report.rows if r["verdict"] == "precision-effect"
            and r["policy"] == "strict" and r["n"] <= 4096 and r["family"] != "random"]
    rows += [r for r in THEOREM.check(sizes=[512, 1024], formats=["fp32", "bf16", "fp16"],
                                      policies=["strict"], quick=True).rows
             if r["verdict"] == "precision-effect"
             and (r["family"] == "random" or r["format"] == "fp32")]
    sample = []
    for mechanism in ("accumulation stagnation", "accumulation rounding", "rounding to one",
                      "underflow"):
        matching = [r for r in rows if r["mechanism"] == mechanism]
        sample += matching[:: max(1, len(matching) // 8)]
    assert len(sample) >= 24 and {r["format"] for r in sample} >= {"fp64", "fp32", "bf16"}
    assert any(r["family"] == "random" for r in sample)
    for row in sample:
        evidence = _independent_evidence(row)
        assert evidence["stall_index"] == row["stall_index"], row
        assert evidence["absorbed"] == row["absorbed"], row
        # fp32 and fp64 exponentials come from libm, not mpmath: a term may differ by an ulp
        wide = get_format(row["format"]).bits >= 32
        assert evidence["sum_error_ulps"] == pytest.approx(
            row["sum_error_ulps"], rel=0.05 if wide else 1e-9, abs=1.5 if wide else 1e-9), row
        assert mechanism_holds({**row, **evidence}), row


def test_bf16_strict_stagnation_threshold():
    # terms e^-4 = 0.0183 in bf16 (0.01831055) stop adding once ulp(S)/2 > term: S = 8
    fmt = get_format("bf16")
    term = float(np.float32(math.exp(-4)).astype(ml_dtypes.bfloat16))
    assert sequential_total(1.0, term, 10**6, fmt) == 8.0
    rows = sd._evaluate({"n": 4096, "format": "bf16", "policy": "strict", "seed": 0,
                         "backend": "numpy", "spread": 4.0, "temperature": 1.0})
    row = next(r for r in rows if r["family"] == "worst-max" and r["quantity"] ==
               "alpha_max<=tight")
    assert row["verdict"] == "precision-effect"
    assert row["mechanism"] == "accumulation stagnation"
    assert row["observed"] == 1 / 8  # the total stops at 8 instead of 1 + 4095 * 0.0183 = 76
    stall, absorbed, total = _left_to_right([1.0] + [term] * 4095, ml_dtypes.bfloat16)
    assert (row["stall_index"], row["absorbed"], total) == (stall, absorbed, 8.0)
    assert float(exact_tight(4096, 4)) < row["observed"]


def test_the_paper_bounds_are_attained_on_the_grid(quick_report):
    # at spread 0 every coefficient is 1/n = e^{+-0}/n, and at n = 1 it is 1 = e^0/1
    sharp = [r for r in quick_report.rows if r["quantity"] in ("alpha_max<=paper",
                                                               "alpha_min>=paper")
             and r["format"] == "fp64" and (r["spread"] == 0 or r["n"] == 1)]
    assert sharp and all(r["exact"] == r["bound"] and r["verdict"] == "holds" for r in sharp)


def test_findings_give_the_last_and_first_size_of_each_effect():
    report = THEOREM.check(sizes=[2**j for j in range(13, 17)], formats=["bf16"],
                           policies=["hw"], quick=True)
    table = sd.thresholds(report)
    row = next(r for r in table if r["family"] == "worst-max" and r["quantity"] == "alpha_max<1")
    assert not row["sets_in"] and (row["last_n"], row["first_n"]) == (16384, 32768)
    assert row["mechanism"] == "rounding to one" and row["kernel_agrees"]
    # bf16 rounds the exact coefficient to 1 while it is >= 1 - 2^-9 (half an ulp below 1)
    with mpmath.workdps(40):
        last = int(mpmath.floor(1 + mpmath.exp(16) * (1 / (1 - mpmath.mpf(2) ** -9) - 1)))
    assert (row["model_last_n"], row["model_first_n"]) == (last, last + 1) == (17390, 17391)
    text = THEOREM.findings(report)
    assert "last n with it 16384, first n without 32768; exactly 17390 -> 17391" in text


def test_checker_negative_control(monkeypatch):
    original = sd._max_weight_bound  # what the cells call, at their own size and spread
    monkeypatch.setattr(sd, "_max_weight_bound", lambda n, d: original(n, d) * (1 - 1e-3))
    report = THEOREM.check(sizes=[64], formats=["fp64", "bf16"], policies=["hw"], seeds=[0],
                           quick=True)
    assert not report.ok
    violated = report.violations
    assert violated and {r["quantity"] for r in violated} == {"alpha_max<=tight"}
    assert {r["family"] for r in violated} >= {"worst-max"}


def test_audit_catches_every_mutation():
    audit = THEOREM.audit(workers=2)  # the mutations side by side on 2 processes
    assert audit.ok, str(audit)
    exempt = {e.mutation for e in audit.entries if e.status == "exempt"}
    assert exempt == {"listing.gate x0.99", "listing.gate x1.01", "listing.epsilon x0.99",
                      "listing.epsilon x1.01"}
    caught = {e.mutation for e in audit.entries if e.status == "caught"}
    assert {str(m) for m in sd_proofs.PAPER.mutations()} - exempt <= caught
    bounds = {e.mutation for e in audit.entries if e.kind == "bound"}
    assert bounds == {f"{q} 1% tighter" for q in ("alpha_max<=tight", "alpha_max<=paper",
                                                   "alpha_min>=tight", "alpha_min>=paper",
                                                   "alpha_max<1")} and bounds <= caught


def test_every_paper_quantity_is_read():
    THEOREM.derive()
    THEOREM.check(sizes=[2], formats=["fp64"], policies=["hw"], quick=True)
    sd.adaptive_temperature_softmax(np.zeros(4))  # the listing's epsilon enters only here
    assert sd_proofs.PAPER.unread == []


def test_counterexample_for_sharpness():
    witness = THEOREM.counterexample(sharpness=0.9, spread=4.0)
    assert witness.n == 8
    assert witness.value == pytest.approx(float(exact_tight(8, 4)), rel=1e-14)
    assert witness.value < 0.9 <= float(exact_tight(7, 4))
    assert witness.logits.max() - witness.logits.min() == 4.0


def test_counterexample_refutes_a_misstated_lower_bound():
    witness = THEOREM.counterexample(bound=lambda n, spread, temperature: 1 / n, kind="lower",
                                     spread=4.0)
    assert witness.n == 2
    assert witness.value == pytest.approx(float(1 / (1 + mpmath.exp(4))), rel=1e-14)
    with pytest.raises(ValueError, match="refutes"):
        THEOREM.counterexample(bound=lambda n, spread, temperature: math.exp(-spread) / n,
                               kind="lower", spread=4.0, max_size=1024)


def test_spread_bound_on_random_weights():
    rng = np.random.default_rng(7)
    for _ in range(20):
        Q, K = rng.normal(size=(8, 5)), rng.normal(size=(8, 5))
        y, x = rng.normal(size=5), rng.normal(size=(100, 5))
        logits = (x @ K.T) @ (Q @ y)
        bound = (2 * np.linalg.svd(Q, compute_uv=False)[0] * np.linalg.svd(K, compute_uv=False)[0]
                 * np.linalg.norm(y) * np.linalg.norm(x, axis=1).max())
        assert np.ptp(logits) <= bound


def test_entropy_bound_and_monotone_in_temperature():
    rng = np.random.default_rng(11)
    for n in (16, 1024):
        e = rng.uniform(-2, 2, n)
        d = np.ptp(e)
        with mpmath.workdps(40):
            for theta in (0.5, 1.0, 2.0):
                z = [mpmath.mpf(v) / theta for v in e]
                Z = mpmath.fsum(mpmath.exp(v) for v in z)
                H = -mpmath.fsum(mpmath.exp(v) / Z * (v - mpmath.log(Z)) for v in z)
                assert H >= mpmath.log(n) - d / theta
            entropies = []
            for theta in (0.5, 1.0, 2.0, 4.0):
                p = softmax(e, "fp64", "hw", temperature=theta)
                entropies.append(-np.sum(p * np.log(p)))
        assert entropies == sorted(entropies)


@pytest.mark.parametrize("call,match", [
    (lambda: sd.paper_bounds(0, 1.0), "positive integer"),
    (lambda: sd.max_weight_bound(4, -1.0), "spread"),
    (lambda: sd.max_weight_bound(4, 1.0, 0.0), "temperature"),
    (lambda: sd.min_size_for_dispersion(1.5, 1.0), "target"),
    (lambda: sd.sharpness_gap("bf32"), "unknown format 'bf32'.*did you mean"),
    (lambda: sd.adaptive_temperature_softmax(np.array([0.0, np.nan])), "NaN"),
    (lambda: THEOREM.counterexample(sharpness=0.0), "sharpness"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_policy_object_is_accepted():
    assert sd.sharpness_gap(get_format("bf16"), get_policy("hw")) == (93.0, 6.25)


@pytest.mark.parametrize("fmt", ["fp64", "bf16", "fp8-e4m3"])
@pytest.mark.parametrize("policy", ["hw", "strict"])
def test_counterexample_computes_its_coefficient_in_the_format(fmt, policy):
    import ml_dtypes
    import mpmath

    witness = THEOREM.counterexample(fmt=fmt, policy=policy)
    logits = [mpmath.mpf(float(v)) for v in witness.logits]
    total = mpmath.fsum(mpmath.exp(v) for v in logits)
    exact = float(max(mpmath.exp(v) / total for v in logits))
    assert witness.value == pytest.approx(exact, rel=1e-15)
    assert (witness.fmt, witness.policy) == (fmt, policy)
    dtype = {"fp64": np.float64, "bf16": ml_dtypes.bfloat16,
             "fp8-e4m3": ml_dtypes.float8_e4m3fn}[fmt]
    # a number of the format, within a few of its ulps of the exact coefficient
    assert float(dtype(witness.computed)) == witness.computed
    ulp = float(np.spacing(dtype(exact).astype(np.float64))) if fmt == "fp64" else \
        float(ml_dtypes.finfo(dtype).eps) * 2.0 ** np.floor(np.log2(exact))
    # hw rounds the output once after a float32 computation; strict rounds every partial sum
    # of the n-term denominator (and every exponential) in the format
    assert abs(witness.computed - exact) <= (2 if policy == "hw" else witness.n + 2) * ulp
    assert f"in {fmt}/{policy}" in str(witness).splitlines()[0]
