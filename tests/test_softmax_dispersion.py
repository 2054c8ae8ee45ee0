"""softmax-dispersion: bounds, REPL functions, derivation, certificate, sweep, counterexamples.

Expected numbers come from mpmath at 50 digits, exact SymPy rationals, brute-force enumeration
of a format's values, or a plain re-implementation of the paper's JAX listing.
"""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy as sp

import theorems
import theorems.softmax_dispersion as sd
from numerics import FORMATS, get_format, get_policy, softmax
from numerics.kernels import sequential_total
from numerics.softmax_dispersion import family_logits
from proofs import Derivation, Step, certify, ge, le
from proofs.softmax_dispersion import paper_upper, tight_upper

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


def test_derivation_is_complete():
    d = THEOREM.derive()
    assert d.ok and d.complete
    assert len(d.steps) == 35
    assert {r.by for r in d.steps} >= {"simplify", "limit", "series", "interval", "monotone"}
    assert all(r.status == "checked" for r in d.steps)
    assert repr(d) == "<Derivation softmax-dispersion: 35/35 checked>"


def test_derivation_negative_controls():
    n, dd = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    box = {n: (1, 2**20), dd: (0, 20)}
    too_tight = Step("x", le(tight_upper(n, dd), paper_upper(n, dd) * sp.Rational(999, 1000)),
                     by="interval", box=box)
    printed = Step("p", ge(1 / (1 + (n - 1) * sp.exp(dd)), 1 / n), box=box)
    d = Derivation.check("control", source="test", hypotheses={}, goal=sp.true,
                         steps=[too_tight], as_printed=[printed])
    assert d.steps[0].status == "failed" and not d.ok
    witness = d.steps[0].witness
    value = exact_tight(witness["n"], witness["d"]) - mpmath.exp(witness["d"]) / witness["n"] * \
        mpmath.mpf("0.999")
    assert value > 0
    assert d.printed[0].status == "failed" and d.errata_shown


def test_certificate_and_its_negative_control():
    c = THEOREM.certify()
    assert c.ok and c.status == "proved"
    n, d = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    bad = certify(le(tight_upper(n, d), paper_upper(n, d) * sp.Rational(999, 1000)),
                  {n: (1, 2**24), d: (0, 30)})
    assert bad.status == "refuted"
    w = bad.witness
    assert exact_tight(w["n"], w["d"]) > mpmath.exp(w["d"]) / w["n"] * mpmath.mpf("0.999")


def test_quick_check_is_ok_and_the_precision_model_predicts_every_worst_case_row():
    report = THEOREM.check(sizes=[2, 64, 4096], seeds=[0], quick=True)
    assert report.ok and report.counts["violated"] == 0
    worst = [r for r in report.rows if r["family"] != "random"]
    assert worst and all(r["predicted"] == (r["verdict"] == "precision-effect") for r in worst)
    narrow = [r for r in worst if get_format(r["format"]).bits <= 16]
    for row in narrow:  # the rounding model and the kernel agree to an ulp
        assert abs(row["observed"] - row["model"]) <= float(get_format(row["format"]).ulp(
            row["model"]))
    mechanisms = {r["mechanism"] for r in report.rows if r["verdict"] == "precision-effect"}
    assert {"underflow", "rounding to one", "accumulation stagnation"} <= mechanisms


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
    assert float(exact_tight(4096, 4)) < row["observed"]


def test_checker_negative_control(monkeypatch):
    original = sd.max_weight_bound
    monkeypatch.setattr(sd, "max_weight_bound",
                        lambda n, spread, temperature=1.0: original(n, spread) * (1 - 1e-3))
    report = THEOREM.check(sizes=[64], formats=["fp64", "bf16"], policies=["hw"], seeds=[0],
                           quick=True)
    assert not report.ok
    violated = report.violations
    assert violated and {r["quantity"] for r in violated} == {"alpha_max<=tight"}
    assert {r["family"] for r in violated} >= {"worst-max"}


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
