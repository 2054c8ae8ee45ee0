"""Policies: ``hw`` (compute and accumulate in float32, round the output once) against ``strict``
(round after every operation, accumulate in the format), output dtypes, and the shared kernels
against mpmath and against step-by-step exact rational references.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest
from _reference import DTYPES, NARROW, exact_round, near_a_tie, to_fraction

from numerics import (
    FORMAT_NAMES,
    POLICIES,
    POLICY_NAMES,
    Policy,
    entropy,
    get_format,
    get_policy,
    logsumexp,
    softmax,
)

HW, STRICT = POLICIES["hw"], POLICIES["strict"]
KERNELS = (softmax, entropy, logsumexp)


def test_policies_are_data():
    assert POLICY_NAMES == ("hw", "strict")
    assert HW == Policy("hw", accumulate="fp32", round_each_op=False)
    assert STRICT == Policy("strict", accumulate="format", round_each_op=True)
    assert get_policy("hw") is HW and get_policy(STRICT) is STRICT
    assert str(STRICT) == "strict"


def test_bf16_strict_sum_stagnates_at_256_and_hw_does_not():
    draws = np.random.default_rng(0).uniform(0, 1, 10_000)
    exact = math.fsum(draws)
    strict = float(STRICT.sum(STRICT.load(draws, "bf16"), "bf16"))
    hw = float(HW.sum(HW.load(draws, "bf16"), "bf16"))
    # from 256 on half the bf16 spacing (1) exceeds every draw, so no addition changes the sum
    assert strict == 256.0
    assert abs(hw - exact) <= 1e-3 * exact
    # the same stagnation, by a plain loop of ml_dtypes scalar additions
    total = ml_dtypes.bfloat16(0)
    for value in draws.astype(np.float32).astype(ml_dtypes.bfloat16):
        total = ml_dtypes.bfloat16(total + value)
    assert float(total) == strict


def test_fp16_strict_sum_of_ones_stagnates_at_2048():
    ones = np.ones(5000)
    assert float(STRICT.sum(STRICT.load(ones, "fp16"), "fp16")) == 2048.0  # 2048 + 1 is a tie
    assert float(HW.sum(HW.load(ones, "fp16"), "fp16")) == 5000.0
    rows = STRICT.sum(STRICT.load(np.ones((3, 4000)), "fp16"), "fp16", axis=1, keepdims=True)
    assert rows.shape == (3, 1) and (rows == 2048.0).all()


@pytest.mark.parametrize("name", FORMAT_NAMES)
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_output_dtypes_are_pinned(name, policy):
    logits = np.linspace(-2, 2, 16)
    inputs = [logits, logits.astype(np.float32), logits.astype(ml_dtypes.bfloat16), [0.5, 1.5]]
    for x in inputs:
        for kernel in KERNELS:
            data = np.abs(np.asarray(x, dtype=np.float64)) / 20 if kernel is entropy else x
            assert kernel(data, name, policy).dtype == np.dtype(DTYPES[name]), kernel
        out = softmax(x, name, policy, temperature=0.7)
        assert out.dtype == np.dtype(DTYPES[name])


def test_a_python_float_does_not_leave_bf16():
    x = np.linspace(-2, 2, 8).astype(ml_dtypes.bfloat16)
    # the library pitfall that kernels must not inherit: before NumPy-2-style promotion in
    # ml_dtypes 0.7 a bf16 array times a Python float became float32; the kernels must stay bf16
    # under either rule
    assert (x * 0.7).dtype in (np.float32, np.dtype(ml_dtypes.bfloat16))
    for policy in POLICY_NAMES:
        assert softmax(x, "bf16", policy, temperature=0.7).dtype == np.dtype(ml_dtypes.bfloat16)
        assert logsumexp(x, "bf16", policy).dtype == np.dtype(ml_dtypes.bfloat16)
    out = STRICT.step(STRICT.load(x, "bf16") * 0.7, "bf16")
    assert np.array_equal(out, out.astype(ml_dtypes.bfloat16).astype(out.dtype))


def exact_strict_softmax(logits: list[float], name: str, temperature: Fraction, *,
                         round_each: bool = True):
    """Softmax rounding to the format after every operation, in exact rational arithmetic
    (or, with ``round_each=False``, rounding only the stored logits and the outputs).

    Returns the outputs and whether any exponential lies so close to a rounding boundary that a
    float32 ``exp`` (accurate to a few float32 ulps) could round it either way.
    """
    def step(value):
        return Fraction(exact_round(value, name)) if round_each else to_fraction(value)

    with mpmath.workdps(50):
        x = [Fraction(exact_round(float(v), name)) for v in logits]
        x = [step(v / temperature) for v in x]
        top = max(x)
        z = [step(v - top) for v in x]
        exact_exp = [mpmath.exp(mpmath.mpf(v.numerator) / v.denominator) for v in z]
        ambiguous = round_each and any(near_a_tie(e, name) for e in exact_exp)
        e = [step(v) for v in exact_exp]
    total = Fraction(0)
    for term in e:
        total = step(total + term)
    return [exact_round(term / total, name) for term in e], ambiguous


@pytest.mark.parametrize("name", NARROW)
def test_strict_softmax_rounds_after_every_operation(name):
    rng = np.random.default_rng(5)
    logits = rng.uniform(-3, 3, 24).astype(np.float32).astype(DTYPES[name])
    for temperature in (1.0, 0.75):  # 0.75 is exact in every format; x / 0.75 is not
        expected, ambiguous = exact_strict_softmax(logits.astype(np.float64).tolist(), name,
                                                   Fraction(temperature))
        assert not ambiguous
        got = softmax(logits, name, "strict", temperature=temperature).astype(np.float64)
        np.testing.assert_array_equal(got, expected)
        # rounding only the output gives other numbers: the comparison has teeth
        once, _ = exact_strict_softmax(logits.astype(np.float64).tolist(), name,
                                       Fraction(temperature), round_each=False)
        assert got.tolist() != once


@pytest.mark.parametrize("name", NARROW)
def test_hw_softmax_is_within_one_ulp_of_the_exact_value(name):
    fmt = get_format(name)
    logits = np.random.default_rng(6).normal(0, 2, 200)
    stored = [to_fraction(v) for v in HW.load(logits, name).astype(np.float64).tolist()]
    with mpmath.workdps(50):
        values = [mpmath.mpf(v.numerator) / v.denominator for v in stored]
        terms = [mpmath.exp(v) for v in values]
        total = mpmath.fsum(terms)
        exact = np.array([float(t / total) for t in terms])
    got = softmax(logits, name, "hw").astype(np.float64)
    assert (np.abs(got - exact) <= fmt.ulp(exact)).all()


def exact_matmul(a: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """``a @ b`` by a Python loop, rounding each product and each partial sum to the format."""
    rows, inner = a.shape
    out = np.empty((rows, b.shape[1]))
    for i in range(rows):
        for j in range(b.shape[1]):
            acc = None
            for k in range(inner):
                product = Fraction(exact_round(Fraction(a[i, k]) * Fraction(b[k, j]), name))
                acc = product if acc is None else Fraction(exact_round(acc + product, name))
            out[i, j] = float(acc)
    return out


@pytest.mark.parametrize("name", NARROW)
def test_strict_matmul_against_a_loop_with_explicit_rounding(name):
    rng = np.random.default_rng(8)
    a = STRICT.load(rng.uniform(-2, 2, (3, 9)), name).astype(np.float64)
    b = STRICT.load(rng.uniform(-2, 2, (9, 4)), name).astype(np.float64)
    got = STRICT.matmul(a, b, name)
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float64), exact_matmul(a, b, name))
    hw = HW.matmul(a.astype(np.float32), b.astype(np.float32), name)
    assert hw.dtype == np.float32
    np.testing.assert_allclose(hw, a @ b, rtol=0, atol=1e-5)


def test_strict_matmul_batched():
    rng = np.random.default_rng(9)
    a = STRICT.load(rng.uniform(-1, 1, (2, 3, 5)), "bf16").astype(np.float64)
    b = STRICT.load(rng.uniform(-1, 1, (2, 5, 2)), "bf16").astype(np.float64)
    got = np.asarray(STRICT.matmul(a, b, "bf16"), dtype=np.float64)
    for batch in range(2):
        np.testing.assert_array_equal(got[batch], exact_matmul(a[batch], b[batch], "bf16"))


def test_load_rounds_float64_once():
    x = np.array([1 + 2**-8 + 2**-30])
    for policy in (HW, STRICT):
        assert policy.load(x, "bf16")[0] == 1 + 2**-7
        assert policy.load(x, "bf16").dtype == np.float32
        assert policy.load(x, "fp64").dtype == np.float64


def mp_softmax(row):
    terms = [mpmath.exp(mpmath.mpf(v)) for v in row]
    total = mpmath.fsum(terms)
    return [t / total for t in terms]


@pytest.mark.parametrize("n", [1, 7, 300])
def test_fp64_kernels_against_mpmath(n):
    rng = np.random.default_rng(n)
    logits = rng.normal(0, 5, (3, n))
    probabilities = rng.dirichlet(np.ones(n), size=3)
    with mpmath.workdps(50):
        for policy in POLICY_NAMES:
            soft = softmax(logits, "fp64", policy)
            lse = logsumexp(logits, "fp64", policy)
            ent = entropy(probabilities, "fp64", policy)
            for i in range(3):
                expected = [float(v) for v in mp_softmax(logits[i])]
                np.testing.assert_allclose(soft[i], expected, rtol=1e-13)
                total = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in logits[i])
                assert lse[i] == pytest.approx(float(mpmath.log(total)), rel=1e-14, abs=1e-14)
                h = -mpmath.fsum(mpmath.mpf(p) * mpmath.log(p) for p in probabilities[i] if p > 0)
                assert ent[i] == pytest.approx(float(h), rel=1e-13, abs=1e-15)


def test_fp64_kernels_along_another_axis():
    logits = np.random.default_rng(10).normal(0, 3, (5, 4))
    with mpmath.workdps(50):
        soft = softmax(logits, "fp64", axis=0)
        for j in range(4):
            expected = [float(v) for v in mp_softmax(logits[:, j])]
            np.testing.assert_allclose(soft[:, j], expected, rtol=1e-13)
        lse = logsumexp(logits, "fp64", axis=0)
        assert lse.shape == (4,)
        for j in range(4):
            total = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in logits[:, j])
            assert lse[j] == pytest.approx(float(mpmath.log(total)), rel=1e-14)


def test_temperature_and_large_logits_in_fp64():
    logits = np.array([1000.0, 999.0, -1000.0])
    with mpmath.workdps(50):
        expected = [float(v) for v in mp_softmax([mpmath.mpf(v) / 2 for v in logits])]
    np.testing.assert_allclose(softmax(logits, temperature=2.0), expected, rtol=1e-14)
    assert entropy(np.array([1.0, 0.0, 0.0]))[()] == 0.0  # 0 ln 0 = 0


@pytest.mark.parametrize("name", FORMAT_NAMES)
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_kernels_leave_their_input_alone(name, policy):
    for x in (np.linspace(-1, 1, 9), np.linspace(-1, 1, 9, dtype=np.float32),
              np.linspace(-1, 1, 9).astype(DTYPES[name])):
        before = x.copy()
        softmax(x, name, policy, temperature=0.5)
        logsumexp(x, name, policy)
        np.testing.assert_array_equal(x.view(np.uint8), before.view(np.uint8))


BAD_LOGITS = [
    ("fp64", [0.0, np.nan, 1.0, np.nan], r"^2 NaN values in logits \(first at index 1\); "
                                         r"pass finite logits$"),
    ("bf16", [0.0, np.inf], r"^1 infinite value in logits \(first at index 1\)"),
    ("fp16", [-np.inf, 0.0], r"^1 infinite value in logits \(first at index 0\)"),
    ("fp16", [1.0, 1e5], r"^logits overflow fp16 \(max 65504\) at index 1; scale them"),
    ("fp8-e4m3", [500.0], r"^logits overflow fp8-e4m3 \(max 448\) at index 0"),
    ("fp8-e5m2", [0.0, -1e5], r"^logits overflow fp8-e5m2"),
    ("bf16", [1e39], r"^logits overflow bf16"),
    ("fp32", [0.0, 1e39], r"^logits overflow fp32"),
]


@pytest.mark.parametrize("name,logits,match", BAD_LOGITS)
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_bad_logits_raise_one_line(name, logits, match, policy):
    for kernel in (softmax, logsumexp):
        with pytest.raises(ValueError, match=match) as info:
            kernel(np.array(logits), name, policy)
        assert "\n" not in str(info.value)


def test_bad_probabilities_raise():
    with pytest.raises(ValueError, match=r"^1 NaN value in probabilities"):
        entropy(np.array([0.5, np.nan]))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("empty", [[], np.array([]), np.empty((3, 0))], ids=["list", "1d", "2d"])
def test_empty_input_raises(kernel, empty):
    with pytest.raises(ValueError, match="are empty; pass at least one value"):
        kernel(empty)


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        softmax(np.zeros(3), temperature=temperature)


@pytest.mark.parametrize("temperature", [0.25, 1.0, 3.0])
def test_softmax_entropy_against_mpmath(temperature):
    from numerics import softmax_entropy

    logits = np.random.default_rng(5).normal(0, 3, (3, 50))
    got = softmax_entropy(logits, "fp64", "hw", temperature=temperature)
    with mpmath.workdps(50):
        for row, value in zip(logits, got, strict=True):
            z = [mpmath.mpf(float(v)) / temperature for v in row]
            total = mpmath.fsum(mpmath.exp(v) for v in z)
            exact = -mpmath.fsum(mpmath.exp(v) / total * (v - mpmath.log(total)) for v in z)
            assert float(value) == pytest.approx(float(exact), rel=1e-13)
    stored = logits.astype(ml_dtypes.bfloat16).astype(np.float64)
    low = softmax_entropy(logits, "bf16", "hw", temperature=temperature)
    assert low.dtype == np.dtype(ml_dtypes.bfloat16)
    reference = softmax_entropy(stored, "fp64", "hw", temperature=temperature)
    # H = ln Z - E_p[z] cancels where H is small: the error scale is an ulp of ln Z, not of H
    z = (stored - stored.max(axis=1, keepdims=True)) / temperature
    scale = np.log(np.exp(z).sum(axis=1))
    assert (np.abs(low.astype(np.float64) - reference) <= 2 * 2**-7 * np.maximum(scale, 1e-3)
            + 2**-8 * np.abs(reference)).all()


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_masked_softmax_is_the_softmax_of_the_kept_entries(name, policy):
    # a causal mask: row i keeps the first i + 1 logits; masked entries get exactly 0
    fmt = get_format(name)
    logits = np.random.default_rng(3).normal(0, 2, (6, 6))
    mask = np.tril(np.ones((6, 6), dtype=bool))
    weights = softmax(logits, name, policy, mask=mask).astype(np.float64)
    assert np.all(weights[~mask] == 0)
    for i in range(6):
        kept = softmax(logits[i, : i + 1], name, policy).astype(np.float64)
        if policy == "strict":  # zeros appended to a sequential sum change nothing
            np.testing.assert_array_equal(weights[i, : i + 1], kept)
        else:  # a float32 sum with zeros may pair its terms differently: one output rounding
            assert np.all(np.abs(weights[i, : i + 1] - kept) <= fmt.ulp(kept))
