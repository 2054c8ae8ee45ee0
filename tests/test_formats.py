"""Formats: derived constants against ml_dtypes/NumPy finfo, exhaustive rounding of the 8- and
16-bit formats against the library casts, and correct rounding of float64 input against an exact
rational computation.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from _reference import DTYPES, NARROW, exact_round, finfo

from numerics.formats import (
    FORMAT_NAMES,
    FORMATS,
    Format,
    _round_float32_by_bits,
    get_format,
    round_by_quantum,
    round_to,
)

ROUNDERS = (round_to, round_by_quantum)
UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def all_patterns(name: str) -> np.ndarray:
    """Every bit pattern of a narrow format, as an array of that format."""
    bits = finfo(name).bits
    return np.arange(2**bits, dtype=np.uint32).astype(UINT[bits]).view(DTYPES[name])


def finite_values(name: str) -> np.ndarray:
    """Every finite value of a narrow format, exactly, as float64 (both zeros included)."""
    with np.errstate(invalid="ignore"):
        values = all_patterns(name).astype(np.float64)
    return values[np.isfinite(values)]


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal bit for bit, except that any NaN matches any NaN."""
    assert actual.dtype == expected.dtype
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    view = UINT[expected.dtype.itemsize * 8]
    mismatch = np.flatnonzero(actual[~nan].view(view) != expected[~nan].view(view))
    assert mismatch.size == 0, (
        f"{mismatch.size} mismatches, first input index {np.flatnonzero(~nan)[mismatch[0]]}: "
        f"{actual[~nan][mismatch[0]]!r} != {expected[~nan][mismatch[0]]!r}")


def float32_probes(name: str) -> np.ndarray:
    """Float32 inputs that exercise every rounding decision of a narrow format.

    For each pair of neighbouring values: both values, their midpoint (a tie) and the float32
    numbers just below and above each; then overflow thresholds, infinities, NaN, and 2^16 random
    float32 bit patterns.
    """
    values = np.unique(np.abs(finite_values(name)))
    mid = (values[:-1] + values[1:]) / 2  # exact in float64, and in float32 (one more bit)
    top = float(finfo(name).max)
    spacing_at_top = values[-1] - values[-2]
    beyond = np.array([top + spacing_at_top / 2, top + spacing_at_top, 2 * top, 3.4e38])
    with np.errstate(over="ignore"):
        points = np.concatenate([values, mid, beyond]).astype(np.float32)
    assert np.array_equal(points[: values.size + mid.size].astype(np.float64),
                          np.concatenate([values, mid]))
    near = np.concatenate([points, np.nextafter(points, np.float32(np.inf)),
                           np.nextafter(points, np.float32(-np.inf))])
    special = np.array([np.inf, np.nan, np.finfo(np.float32).max,
                        np.finfo(np.float32).smallest_subnormal], dtype=np.float32)
    random_bits = np.random.default_rng(0).integers(0, 2**32, 2**16, dtype=np.uint64)
    with np.errstate(invalid="ignore"):
        randoms = random_bits.astype(np.uint32).view(np.float32)
    probes = np.concatenate([near, special])
    return np.concatenate([probes, -probes, randoms])


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_derived_constants_equal_finfo(name):
    fmt, info = FORMATS[name], finfo(name)
    assert fmt.dtype == np.dtype(DTYPES[name])
    assert fmt.bits == info.bits
    assert fmt.man_bits == info.nmant and fmt.exp_bits == info.nexp
    assert fmt.eps == float(info.eps)
    assert fmt.unit_roundoff == float(info.eps) / 2
    assert fmt.smallest_normal == float(info.smallest_normal)
    assert fmt.smallest_subnormal == float(info.smallest_subnormal)
    assert fmt.max == float(info.max)
    assert fmt.min_exp == info.minexp and fmt.max_exp == info.maxexp - 1
    assert fmt.container == np.dtype(np.float64 if name == "fp64" else np.float32)
    assert str(fmt) == name


@pytest.mark.parametrize("name", NARROW)
def test_constants_against_the_bit_patterns(name):
    fmt, values = FORMATS[name], finite_values(name)
    positive = values[values > 0]
    assert positive.max() == fmt.max
    assert positive.min() == fmt.smallest_subnormal
    assert all_patterns(name)[1 << fmt.man_bits].astype(np.float64) == fmt.smallest_normal
    # finite patterns: all but the all-ones exponent (IEEE) or the two all-ones patterns (fn);
    # the two zeros are one value
    special = 2 ** (fmt.man_bits + 1) if fmt.nan_encoding == "ieee" else 2
    assert np.unique(values).size == 2**fmt.bits - special - 1
    with np.errstate(invalid="ignore"):
        assert np.isinf(all_patterns(name).astype(np.float64)).any() == fmt.has_inf


def test_table_order_and_names():
    assert FORMAT_NAMES == ("fp64", "fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2")
    assert all(FORMATS[name].name == name for name in FORMAT_NAMES)
    assert FORMATS["fp8-e4m3"].max == 448.0 and not FORMATS["fp8-e4m3"].has_inf


@pytest.mark.parametrize("rounder", ROUNDERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", NARROW)
def test_float32_rounding_equals_the_library_cast(name, rounder):
    x = float32_probes(name)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(DTYPES[name]).astype(np.float32)
    assert_same_bits(rounder(x, FORMATS[name]), expected)


@pytest.mark.parametrize("rounder", ROUNDERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", NARROW)
def test_round_trip_of_every_value_is_the_identity(name, rounder):
    fmt = FORMATS[name]
    values = finite_values(name)
    for dtype in (np.float32, np.float64):
        x = values.astype(dtype)
        assert_same_bits(rounder(x, fmt), x)


def test_overflow_rules():
    e4m3, e5m2, bf16 = FORMATS["fp8-e4m3"], FORMATS["fp8-e5m2"], FORMATS["bf16"]
    x = np.array([448.0, 463.9, 464.0, 465.0, 1e6, np.inf, -np.inf], dtype=np.float32)
    for rounder in ROUNDERS:
        # e4m3fn has no infinity: 464 is the tie between 448 and the NaN pattern; it goes to
        # the even mantissa (448), and everything from just above 464 on overflows to NaN
        np.testing.assert_array_equal(rounder(x, e4m3)[:3], [448.0, 448.0, 448.0])
        assert np.isnan(rounder(x, e4m3)[3:]).all()
        # IEEE formats overflow to a signed infinity from max + ulp/2 on (57344 + 8192)
        y = rounder(np.array([61439.0, 61440.0, -1e6], dtype=np.float32), e5m2)
        np.testing.assert_array_equal(y, [57344.0, np.inf, -np.inf])
        assert np.isinf(rounder(np.array([3.4e38], dtype=np.float32), bf16)).all()


BF16_DOUBLE_ROUNDING = 1 + 2**-8 + 2**-30


def test_float64_to_bf16_rounds_once():
    x = np.array([BF16_DOUBLE_ROUNDING, -BF16_DOUBLE_ROUNDING])
    # ml_dtypes before 0.6 cast through float32, where the 2^-30 is lost and a tie remains (1.0);
    # later versions round once. Either way the toolkit's rounders must give the single rounding.
    assert x.astype(ml_dtypes.bfloat16).astype(np.float64)[0] in (1.0, 1 + 2**-7)
    assert exact_round(BF16_DOUBLE_ROUNDING, "bf16") == 1 + 2**-7
    for rounder in ROUNDERS:
        np.testing.assert_array_equal(rounder(x, FORMATS["bf16"]), [1 + 2**-7, -(1 + 2**-7)])


def float64_probes(name: str, count: int, seed: int) -> list[float]:
    """Float64 inputs just off the midpoints (where rounding through float32 goes wrong), plus
    random values across the whole range of the format."""
    rng = np.random.default_rng(seed)
    if name in NARROW:
        values = np.unique(np.abs(finite_values(name)))
        pick = rng.choice(values.size - 1, size=min(count, values.size - 1), replace=False)
        low, high = values[pick], values[pick + 1]
    else:  # too many values to list: random neighbours
        bits = rng.integers(1, 0x7F7FFFFF, count, dtype=np.uint32)
        low32 = bits.view(np.float32)
        low, high = low32.astype(np.float64), np.nextafter(low32, np.float32(np.inf))
    mid = (low + high.astype(np.float64)) / 2
    offsets = np.maximum(mid * 2.0**-30, 2.0**-1074 * 2**20)
    near = np.concatenate([mid, mid + offsets, mid - offsets])
    info = finfo(name)
    exponents = rng.uniform(info.minexp - info.nmant - 2, info.maxexp + 1, count)
    randoms = rng.uniform(1, 2, count) * 2.0**exponents
    probes = np.concatenate([near, randoms])
    signs = np.where(rng.random(probes.size) < 0.5, -1.0, 1.0)
    return (probes * signs).tolist() + [math.inf, -math.inf, math.nan, 0.0, -0.0]


@pytest.mark.parametrize("name", NARROW + ("fp32",))
def test_float64_input_is_correctly_rounded(name):
    probes = float64_probes(name, count=1500, seed=1)
    got = round_to(np.array(probes), FORMATS[name])
    assert got.dtype == np.float64
    expected = np.array([exact_round(x, name) for x in probes])
    assert_same_bits(got, expected)


@pytest.mark.parametrize("name", ("bf16", "fp8-e4m3", "fp8-e5m2"))
def test_float64_round_by_quantum_is_correctly_rounded(name):
    probes = float64_probes(name, count=500, seed=2)
    expected = np.array([exact_round(x, name) for x in probes])
    assert_same_bits(round_by_quantum(np.array(probes), FORMATS[name]), expected)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_store_rounds_float64_once_into_the_storage_dtype(name):
    probes = float64_probes(name, count=300, seed=3) if name in NARROW else [
        BF16_DOUBLE_ROUNDING, 1 / 3, -2.5e-40, 1e39, math.nan]
    with np.errstate(over="ignore"):
        stored = FORMATS[name].store(np.array(probes))
    assert stored.dtype == np.dtype(DTYPES[name])
    expected = np.array([exact_round(x, name) if name != "fp64" else x for x in probes])
    with np.errstate(invalid="ignore"):
        assert_same_bits(stored.astype(np.float64), expected)


@pytest.mark.parametrize("name", NARROW)
def test_store_of_float32_equals_the_library_cast(name):
    x = float32_probes(name)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = x.astype(DTYPES[name])
        got = FORMATS[name].store(x)
    assert got.dtype == expected.dtype
    assert_same_bits(got.astype(np.float32), expected.astype(np.float32))


@pytest.mark.parametrize("target", FORMAT_NAMES)
@pytest.mark.parametrize("source", NARROW)
def test_rounding_values_stored_in_another_format(source, target):
    # a value of one format is not always a value of another of the same width (bf16 and fp16);
    # every source value is exact in float32, from where the library cast rounds once
    x = all_patterns(source)
    with np.errstate(invalid="ignore", over="ignore"):
        expected = x.astype(np.float32).astype(DTYPES[target]).astype(np.float64)
        got = np.asarray(round_to(x, FORMATS[target])).astype(np.float64)
    assert_same_bits(got, expected)


def float32_patterns(count: int, seed: int) -> np.ndarray:
    """Uniformly random float32 bit patterns (NaNs with every payload, subnormals, both zeros)."""
    bits = np.random.default_rng(seed).integers(0, 2**32, count, dtype=np.uint64)
    return bits.astype(np.uint32).view(np.float32)


def float64_hard_cases(name: str, seed: int) -> np.ndarray:
    """Float64 inputs for the compiled rounding: the probes above, values 2^-40 off every
    midpoint of the format (where rounding to nearest float32 first would make a tie),
    random values from below the subnormals to beyond the largest value, float64 numbers beyond
    float32's range, and random float64 bit patterns (NaN payloads, infinities)."""
    rng = np.random.default_rng(seed)
    values = np.unique(np.abs(finite_values(name)))
    mid = (values[:-1] + values[1:]) / 2
    off = np.concatenate([mid * (1 + 2.0**-40), mid * (1 - 2.0**-40)])
    spread = rng.uniform(1, 2, 50_000) * 2.0 ** rng.integers(-170, 140, 50_000)
    huge = np.array([3.5e38, 1e300, 2.0**-160, 2.0**-150, 1.5 * 2.0**-149, 2.0**-1074])
    random_bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64).view(np.float64)
    x = np.concatenate([np.array(float64_probes(name, count=1500, seed=seed)), off, spread,
                        huge, random_bits])
    return np.concatenate([x, -x])


@pytest.mark.parametrize("name", NARROW)
def test_compiled_float32_rounding_gives_the_same_bits_as_the_array_code(name):
    # NaNs included: the compiled pass treats them as the array code it replaces does
    from numerics import _compiled

    fmt = FORMATS[name]
    x = np.concatenate([float32_probes(name), float32_patterns(2**18, seed=5)])
    with np.errstate(over="ignore", invalid="ignore"):
        before = (_round_float32_by_bits(x, fmt) if name == "fp16"
                  else x.astype(fmt.dtype).astype(np.float32))
        stored = x.astype(fmt.dtype)
    view = UINT[fmt.bits]
    assert np.array_equal(_compiled.round_float32(x, fmt).view(np.uint32), before.view(np.uint32))
    got = _compiled.store(x, fmt)
    assert got.dtype == fmt.dtype
    assert np.array_equal(got.view(view), stored.view(view))


@pytest.mark.parametrize("name", ("bf16", "fp8-e4m3", "fp8-e5m2"))
def test_float64_rounding_through_round_to_odd_equals_round_by_quantum(name):
    from numerics import _compiled

    fmt = FORMATS[name]
    x = float64_hard_cases(name, seed=6)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = round_by_quantum(x, fmt)
        got = _compiled.round_float64(x, fmt)
        # ml_dtypes' own float64 cast is correct for these, or the double rounding of old
        stored = _compiled.store(x, fmt)
    assert np.array_equal(got.view(np.uint64), expected.view(np.uint64))  # NaN bits too
    assert stored.dtype == fmt.dtype
    assert_same_bits(stored.astype(np.float64), expected)
    assert round_to(x, fmt).tobytes() == expected.tobytes()  # large arrays take the compiled pass


@pytest.mark.parametrize("name", ("bf16", "fp8-e4m3", "fp8-e5m2"))
def test_round_to_odd_rounds_once_against_exact_rationals(name):
    # an independent check of the round-to-odd argument: exact rational rounding of a sample
    from numerics import _compiled

    x = float64_hard_cases(name, seed=7)
    x = x[np.isfinite(x)][:: max(1, x.size // 3000)]
    expected = np.array([exact_round(value, name) for value in x.tolist()])
    with np.errstate(over="ignore", invalid="ignore"):
        assert_same_bits(_compiled.round_float64(x, FORMATS[name]), expected)


def test_round_to_odd_keeps_the_double_rounding_case_apart():
    x = np.full(5000, BF16_DOUBLE_ROUNDING)  # large enough for the compiled pass
    assert (FORMATS["bf16"].round(x) == 1 + 2**-7).all()
    assert (FORMATS["bf16"].store(-x).astype(np.float64) == -(1 + 2**-7)).all()


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_small_and_large_arrays_round_alike(name):
    # below COMPILED_MIN_SIZE the array code rounds, above it the compiled pass
    from numerics.formats import COMPILED_MIN_SIZE

    fmt = FORMATS[name]
    rng = np.random.default_rng(8)
    for x in (rng.normal(0, 50, 3 * COMPILED_MIN_SIZE),
              rng.normal(0, 50, 3 * COMPILED_MIN_SIZE).astype(np.float32)):
        small = np.concatenate([fmt.round(part) for part in np.split(x, 12)])
        stored = np.concatenate([fmt.store(part) for part in np.split(x, 12)])
        with np.errstate(over="ignore"):
            assert fmt.round(x).tobytes() == small.tobytes()
            assert fmt.store(x).tobytes() == stored.tobytes()


def test_rounding_keeps_the_container_dtype_and_shape():
    bf16 = FORMATS["bf16"]
    for dtype in (np.float32, np.float64):
        x = np.linspace(-3, 3, 12, dtype=dtype).reshape(3, 4)
        for rounder in ROUNDERS:
            y = rounder(x, bf16)
            assert y.dtype == dtype and y.shape == (3, 4)
    assert float(bf16.round(np.float64(1 + 2**-8 + 2**-20))) == 1 + 2**-7
    assert FORMATS["fp64"].round(np.array([0.1]))[0] == 0.1


@pytest.mark.parametrize("name", NARROW)
def test_ulp_is_the_gap_to_the_next_value(name):
    fmt = FORMATS[name]
    view = UINT[fmt.bits]
    values = finite_values(name)
    positive = np.unique(values[values > 0])[:-1]  # every value below the largest
    following = positive.astype(fmt.dtype).view(view) + view(1)
    gap = following.view(fmt.dtype).astype(np.float64) - positive
    np.testing.assert_array_equal(fmt.ulp(positive), gap)
    np.testing.assert_array_equal(fmt.ulp(-positive), gap)
    assert fmt.ulp(0.0) == fmt.smallest_subnormal


@pytest.mark.parametrize("name", ["fp64", "fp32", "fp16"])
def test_ulp_matches_numpy_spacing(name):
    fmt = FORMATS[name]
    rng = np.random.default_rng(4)
    x = (rng.uniform(1, 2, 200) * 2.0 ** rng.integers(-20, 15, 200)).astype(DTYPES[name])
    np.testing.assert_array_equal(fmt.ulp(x), np.abs(np.spacing(x)).astype(np.float64))


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_ulp_of_one_value_is_the_gap_to_the_next_value_as_for_arrays(name):
    """A single value takes a shorter path; it must give the gap itself (from the format's
    bits) and what an array of it gives, bit for bit: every finite value of the narrow formats,
    their negatives, random magnitudes over the float64 range, subnormals, zeros, inf, NaN."""
    fmt = FORMATS[name]
    rng = np.random.default_rng(6)
    spread = rng.uniform(1, 2, 400) * 2.0 ** rng.integers(-1074, 1023, 400)
    values = np.concatenate([spread, -spread, [0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324,
                                               fmt.smallest_subnormal, fmt.max]])
    if name in NARROW:
        values = np.concatenate([values, finite_values(name)])
    single = [fmt.ulp(float(v)) for v in values]
    assert all(type(u) is np.float64 for u in single)
    np.testing.assert_array_equal(np.array(single), fmt.ulp(values))
    narrow = values[np.abs(values) < 1e30][:50].astype(np.float32)
    np.testing.assert_array_equal([fmt.ulp(v) for v in narrow], fmt.ulp(narrow))
    if name in NARROW:  # against the format's own next value, as the test above
        view = UINT[fmt.bits]
        positive = np.unique(finite_values(name)[finite_values(name) > 0])[:-1]
        following = positive.astype(fmt.dtype).view(view) + view(1)
        gap = following.view(fmt.dtype).astype(np.float64) - positive
        np.testing.assert_array_equal([fmt.ulp(float(v)) for v in positive], gap)


def test_ulp_between_grid_points():
    assert FORMATS["fp16"].ulp(1000.5) == 0.5  # 512 <= x < 1024: 2^(9 - 10)
    assert FORMATS["bf16"].ulp(-3.0) == 2**-6
    assert FORMATS["fp8-e4m3"].ulp(1e-3) == 2**-9  # below the smallest normal 2^-6
    assert FORMATS["fp8-e5m2"].ulp(300.0) == 64.0  # 256 <= x < 512: 2^(8 - 2)


def test_get_format_accepts_names_and_formats():
    for name in FORMAT_NAMES:
        fmt = get_format(name)
        assert isinstance(fmt, Format) and fmt.name == name
        assert get_format(fmt) is fmt


@pytest.mark.parametrize("bad,error,match", [
    ("bf32", ValueError, r"^unknown format 'bf32'; expected one of fp64, fp32, fp16, bf16, "
                         r"fp8-e4m3, fp8-e5m2 \(did you mean '(bf16|fp32)'\?\)$"),
    ("fp8_e4m3", ValueError, r"did you mean 'fp8-e4m3'\?"),
    ("float16", ValueError, r"unknown format 'float16'"),
    (ml_dtypes.bfloat16, TypeError, r"pass 'bf16', not "),
    (np.dtype(ml_dtypes.float8_e4m3fn), TypeError, r"pass 'fp8-e4m3', not "),
    (np.float16, TypeError, r"pass 'fp16', not "),
    (ml_dtypes.float8_e4m3, TypeError, r"expected a format name"),
    (None, TypeError, r"expected a format name but got format=None \(type=NoneType\)"),
    (16, TypeError, r"expected one of fp64, fp32"),
])
def test_get_format_errors(bad, error, match):
    with pytest.raises(error, match=match) as info:
        get_format(bad)
    assert "\n" not in str(info.value)
