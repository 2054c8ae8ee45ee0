"""Compiled kernels: the ``strict`` policy's sequential sums and matrix products (numba) against
the array references they replace, bit for bit over every format, on random and adversarial
inputs (signed zeros, subnormals, ties, overflow, NaN and infinities); against exact rational
rounding step by step; and the copy-free forward against the unfused kernels it replaces.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from _reference import exact_round

from numerics import FORMAT_NAMES, FORMATS, POLICIES, POLICY_NAMES, softmax
from numerics.models import transformer as transformer_module
from numerics.models.layers import LayerOps, layer_norm
from numerics.models.transformer import forward, random_transformer
from numerics.policies import _reference_matmul, _reference_sequential_sum
from numerics.representational_collapse import TOKEN, collapse_model, family_prefix
from numerics.representational_collapse import branches as branches_module
from numerics.representational_collapse.branches import branch_forward

STRICT = POLICIES["strict"]
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def same_bits(actual, expected, *, nan_bits: bool = True) -> None:
    """Equal shape, dtype and bits; with ``nan_bits=False`` a NaN matches any NaN (where two NaNs
    meet in one addition, which one survives is the library loop's business, not the format's:
    NumPy's own float32 addition keeps the first operand's in its vector body and the second's in
    its scalar tail)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    view = UINT[expected.dtype.itemsize]
    keep = np.ones_like(nan) if nan_bits else ~nan
    mismatch = np.flatnonzero(actual[keep].view(view) != expected[keep].view(view))
    assert mismatch.size == 0, (f"{mismatch.size} of {keep.sum()} differ, first "
                                f"{actual[keep][mismatch[0]]!r} != {expected[keep][mismatch[0]]!r}")


def bit_patterns(name: str, shape, rng) -> np.ndarray:
    """Uniformly random bit patterns of the format (NaN, infinities, subnormals, both zeros
    included), in its compute container."""
    fmt = FORMATS[name]
    view = UINT[fmt.bits // 8]
    raw = rng.integers(0, 2**fmt.bits, size=shape, dtype=np.uint64).astype(view)
    with np.errstate(invalid="ignore"):
        return raw.view(fmt.dtype).astype(fmt.container)


def tie_prone(name: str, shape, rng) -> np.ndarray:
    """Finite values of the format with one to three significant bits, of both signs, over
    a few binades: their sums and products meet ties (and, for the 8-bit formats, overflow and
    subnormals) often."""
    fmt = FORMATS[name]
    significand = rng.choice([1.0, 1.5, 1.25, 1.75], size=shape)
    exponent = rng.integers(-4, 5, size=shape)
    values = significand * 2.0**exponent * np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    values[rng.random(shape) < 0.05] = -0.0
    return np.asarray(fmt.round(values), dtype=fmt.container)


def extremes(name: str, shape, rng) -> np.ndarray:
    """Finite values of the format from its subnormals up to its largest value, both zeros
    included."""
    fmt = FORMATS[name]
    pool = np.array([0.0, -0.0, fmt.smallest_subnormal, 3 * fmt.smallest_subnormal,
                     fmt.smallest_normal, fmt.smallest_normal - fmt.smallest_subnormal,
                     1.0, 1 + fmt.eps, 0.5 * fmt.max, fmt.max])
    values = rng.choice(pool, size=shape) * np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return np.asarray(fmt.round(values), dtype=fmt.container)


# --- strict sums ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_sum_equals_the_reference_on_random_bit_patterns(name):
    rng = np.random.default_rng(1)
    x = bit_patterns(name, (5, 64, 3), rng)
    for axis in (0, 1, 2, -1):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = _reference_sequential_sum(x, FORMATS[name], axis)
        same_bits(STRICT.sum(x, name, axis=axis), expected, nan_bits=False)


@pytest.mark.parametrize("generator", [tie_prone, extremes])
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_sum_equals_the_reference_on_adversarial_values(name, generator):
    rng = np.random.default_rng(2)
    x = generator(name, (4, 300, 2), rng)
    for axis in (0, 1, 2):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = _reference_sequential_sum(x, FORMATS[name], axis)
        same_bits(STRICT.sum(x, name, axis=axis), expected)
        assert STRICT.sum(x, name, axis=axis, keepdims=True).shape == np.expand_dims(
            expected, axis).shape


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_sum_of_other_input_dtypes(name):
    # float64 input is stored in the format as the reference's cast does (ml_dtypes casts
    # float64 through float32), narrow dtypes are widened, integers converted
    rng = np.random.default_rng(3)
    fmt = FORMATS[name]
    for x in (rng.normal(0, 3, (3, 257)), rng.normal(0, 3, (3, 257)).astype(fmt.dtype),
              rng.integers(-5, 6, (3, 257)), rng.normal(0, 3, (3, 257)).astype(np.float32)):
        with np.errstate(over="ignore", invalid="ignore"):
            same_bits(STRICT.sum(x, name), _reference_sequential_sum(x, fmt, -1))


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_sum_of_signed_zeros_nan_and_overflow(name):
    fmt = FORMATS[name]
    rows = np.array([[-0.0, -0.0, -0.0, -0.0],  # stays -0
                     [-0.0, 0.0, -0.0, -0.0],  # -0 + +0 is +0 when rounding to nearest
                     [fmt.max, fmt.max, -fmt.max, 1.0],  # overflow, then inf - max stays inf
                     [1.0, np.nan, 2.0, 3.0],  # one NaN: its bits as the reference leaves them
                     [np.inf, -np.inf, 1.0, 1.0]], dtype=fmt.container)
    with np.errstate(over="ignore", invalid="ignore"):
        got = STRICT.sum(rows, name)
        same_bits(got, _reference_sequential_sum(rows, fmt, -1))
    assert np.signbit(got[0]) and got[0] == 0 and not np.signbit(got[1]) and got[1] == 0
    assert np.isnan(got[3]) and np.isnan(got[4])
    assert np.isinf(got[2]) if fmt.has_inf else np.isnan(got[2])


@pytest.mark.parametrize("name", ("fp16", "bf16", "fp8-e4m3", "fp8-e5m2"))
def test_strict_sum_against_exact_rounding_step_by_step(name):
    # independent of every library cast: each partial sum rounded exactly (Fraction arithmetic)
    rng = np.random.default_rng(4)
    x = tie_prone(name, (6, 40), rng)
    got = STRICT.sum(x, name).astype(np.float64)
    for row, total in zip(x.astype(np.float64), got, strict=True):
        acc = Fraction(row[0])
        for value in row[1:]:
            acc = exact_round(acc + Fraction(value), name)
            if np.isnan(acc) or np.isinf(acc):
                break
            acc = Fraction(acc)
        assert float(acc) == total or (np.isnan(float(acc)) and np.isnan(total))


def test_strict_sum_of_one_term_is_that_term():
    one = np.array([[2.5], [-0.0], [np.inf]], dtype=np.float32)
    same_bits(STRICT.sum(one, "bf16"), np.array([2.5, -0.0, np.inf], dtype=np.float32))


# --- strict matrix products ----------------------------------------------------------------

@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_matmul_equals_the_reference_on_random_bit_patterns(name):
    rng = np.random.default_rng(5)
    a, b = bit_patterns(name, (3, 7, 9), rng), bit_patterns(name, (9, 5), rng)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _reference_matmul(a, b, FORMATS[name])
        same_bits(STRICT.matmul(a, b, name), expected, nan_bits=False)


@pytest.mark.parametrize("generator", [tie_prone, extremes])
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_matmul_equals_the_reference_on_adversarial_values(name, generator):
    rng = np.random.default_rng(6)
    fmt = FORMATS[name]
    # broadcast batch dimensions, a transposed (non-contiguous) right operand, inner sizes 1 and 40
    for a_shape, b_shape in (((2, 1, 6, 40), (3, 40, 5)), ((6, 1), (1, 4)), ((5, 40), (40, 8))):
        a = generator(name, a_shape, rng)
        b = np.swapaxes(generator(name, b_shape[:-2] + b_shape[:-3:-1], rng), -1, -2)
        with np.errstate(over="ignore", invalid="ignore"):
            expected = _reference_matmul(a, b, fmt)
            # in a format without infinity an overflowing product is a NaN that can meet the
            # NaN of an earlier overflow
            same_bits(STRICT.matmul(a, b, name), expected, nan_bits=fmt.has_inf)


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_matmul_skips_causal_zeros_only_where_they_change_nothing(name):
    # lower-triangular weights: the terms after each row's last nonzero weight are skipped when
    # the partial sum is nonzero and not NaN and the remaining values are finite; rows that end
    # in an exact zero (of either sign), -0 weights in the tail, and infinite or NaN values
    # after the diagonal must still come out as the reference computes them
    rng = np.random.default_rng(7)
    fmt = FORMATS[name]
    n, d = 12, 6
    weights = np.tril(rng.uniform(0.01, 1, (n, n)))
    weights /= weights.sum(axis=1, keepdims=True)
    weights = np.asarray(fmt.round(weights), dtype=fmt.container)
    weights[3, 7] = -0.0  # a negative zero in a row's tail
    values = tie_prone(name, (n, d), rng)
    values[:, 0] = -0.0  # column 0: every product -0, so the partial sums stay -0 ...
    values[9, 0] = 0.0  # ... until the +0 from row 9, which only the tail's terms see
    values[:, 1] = 0.0
    values[10, 2] = np.inf  # 0 * inf is NaN: the tail of every row above 10 matters
    values[11, 3] = np.nan
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _reference_matmul(weights, values, fmt)
        got = STRICT.matmul(weights, values, name)
    same_bits(got, expected)
    assert np.isnan(got[:10, 2]).all() and np.isnan(got[:, 3]).all()
    assert not np.signbit(got[:, 0]).any()  # the +0 of row 9 reaches every row's sum


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_matmul_single_nan_keeps_the_reference_bits(name):
    rng = np.random.default_rng(8)
    fmt = FORMATS[name]
    for side, sign in (("left", 1.0), ("right", -1.0)):  # one NaN source per product
        a, b = tie_prone(name, (4, 6), rng), tie_prone(name, (6, 3), rng)
        (a if side == "left" else b)[1, 2] = sign * np.nan
        with np.errstate(over="ignore", invalid="ignore"):
            same_bits(STRICT.matmul(a, b, name), _reference_matmul(a, b, fmt))


@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_strict_matmul_of_stored_input_dtypes(name):
    # float64 and storage-dtype operands are cast to the container first, as before
    rng = np.random.default_rng(9)
    fmt = FORMATS[name]
    a, b = rng.normal(0, 2, (5, 7)), rng.normal(0, 2, (7, 4)).astype(fmt.dtype)
    expected = _reference_matmul(a.astype(fmt.container), b.astype(fmt.container), fmt)
    same_bits(STRICT.matmul(a, b, name), expected)


@pytest.mark.parametrize("name", ("fp16", "bf16", "fp8-e4m3", "fp8-e5m2"))
def test_loading_a_large_stored_array_is_the_library_widening(name):
    # every bit pattern, NaN payloads included, in an array large enough for the compiled pass
    fmt = FORMATS[name]
    codes = np.arange(2**fmt.bits, dtype=np.uint32).astype(UINT[fmt.bits // 8])
    stored = np.tile(codes, max(1, 2**16 // codes.size)).view(fmt.dtype).reshape(-1, 64)
    with np.errstate(invalid="ignore"):
        expected = stored.astype(np.float32)
    for policy in POLICIES.values():
        same_bits(policy.load(stored, fmt), expected)


# --- the forward: copy-free kernels against the unfused ones ----------------------------------

def unfused_softmax(logits, fmt, policy, mask):
    """The masked softmax as the three-``where`` array code computed it, stored and widened."""
    x = policy.load(logits, fmt)
    zero = np.zeros((), dtype=x.dtype)
    top = np.max(np.where(mask, x, np.asarray(-np.inf, dtype=x.dtype)), axis=-1, keepdims=True)
    z = policy.step(np.where(mask, x - top, zero), fmt)
    e = np.where(mask, policy.step(np.exp(z), fmt), zero)
    total = policy.sum(e, fmt, axis=-1, keepdims=True)
    return policy.load(policy.output(e / total, fmt), fmt)


class UnfusedOps(LayerOps):
    """The kernels of a layer as they were: every output stored in the format and widened back,
    the norm and the softmax through their public, storing entry points."""

    def out(self, y):
        return self.policy.load(self.policy.output(y, self.fmt), self.fmt)

    def norm(self, x, gain, bias):
        if self.model.norm == "none":
            return x
        return self.policy.load(layer_norm(x, gain, bias, self.fmt, self.policy,
                                           eps=self.model.norm_eps), self.fmt)

    def scores(self, q, k, query_positions, key_positions):
        s = self.matmul(q, np.swapaxes(k, -1, -2))
        s = self.step(s * self.constant(1.0 / np.sqrt(q.shape[-1]), s))
        extra = self.bias(query_positions[:, None], key_positions[None, :])
        if extra is not None:
            s = self.step(s + extra)
        return self.out(s)

    def softmax(self, scores, mask):
        return unfused_softmax(scores, self.fmt, self.policy, np.broadcast_to(mask, scores.shape))


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_masked_softmax_equals_the_three_where_version(name, policy):
    rng = np.random.default_rng(10)
    fmt = FORMATS[name]
    logits = np.asarray(fmt.round(rng.normal(0, 2, (2, 70, 70))), dtype=fmt.container)
    mask = np.tril(np.ones((70, 70), dtype=bool))
    logits[:, ~mask] = fmt.max  # masked entries that would overflow exp
    expected = unfused_softmax(logits, fmt, POLICIES[policy], mask)
    with np.errstate(over="ignore", invalid="ignore"):
        got = np.asarray(softmax(logits, name, policy, mask=mask), dtype=fmt.container)
    same_bits(got, expected)


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
@pytest.mark.parametrize("pe", ["nope", "alibi", "rope"])
def test_forward_and_branches_equal_the_unfused_kernels(name, policy, pe, monkeypatch):
    model = collapse_model(d=8, layers=2, pe=pe, seed=1, heads=2)
    prefix = family_prefix("sampled", 80)  # 80 x 80 scores: the compiled rounding passes run
    tokens = np.concatenate([prefix, [TOKEN]])

    def run():
        with np.errstate(over="ignore", invalid="ignore"):
            branches = branch_forward(model, prefix, TOKEN, fmt=name, policy=policy, trace=True)
            full = forward(model, tokens, name, policy, trace=True)
        arrays = [branches.short, branches.long, branches.short_outputs, branches.long_outputs,
                  full.states, full.outputs]
        for record in branches.trace + full.trace:
            arrays.extend(record[key] for key in sorted(record))
        return arrays

    fused = run()
    monkeypatch.setattr(transformer_module, "LayerOps", UnfusedOps)
    monkeypatch.setattr(branches_module, "LayerOps", UnfusedOps)
    unfused = run()
    assert len(fused) == len(unfused)
    for got, expected in zip(fused, unfused, strict=True):
        same_bits(got, expected)


def test_layer_norm_still_returns_the_storage_dtype():
    x = np.random.default_rng(11).normal(0, 1, (4, 6))
    for name in FORMAT_NAMES:
        y = layer_norm(x, None, None, name, "hw")
        assert y.dtype == FORMATS[name].dtype
    model = random_transformer(vocab=5, d=4, seed=0)
    assert forward(model, np.array([0, 1, 2]), "bf16").states.dtype == FORMATS["bf16"].dtype


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_a_batch_softmax_by_blocks_of_rows_on_threads_is_the_whole_array_bit_for_bit(
        name, policy, monkeypatch):
    from numerics import kernels

    fmt, rule = FORMATS[name], POLICIES[policy]
    rng = np.random.default_rng(11)
    # rows of every kind: random, ties at the maximum, signed zeros, subnormal gaps, values at
    # the format's largest finite, one row that underflows to a single one; odd row length
    logits = rng.normal(0, 3, (3, 311, 1129))
    logits[0, 0] = 0.0
    logits[0, 1, ::2] = -0.0
    logits[0, 2] = fmt.smallest_normal * rng.integers(-3, 4, 1129)
    logits[0, 3, :7] = fmt.max
    logits[0, 4] = -30.0
    logits[0, 4, 5] = 30.0
    logits = np.asarray(fmt.round(logits), dtype=fmt.container)
    whole = rule.output(kernels.softmax_in_container(logits, fmt, rule, temperature=1.25), fmt)
    blocks = []
    real = kernels._softmax_by_row_blocks
    monkeypatch.setattr(kernels, "_row_threads", lambda: 2)
    monkeypatch.setattr(kernels, "_softmax_by_row_blocks",
                        lambda *a: blocks.append(1) or real(*a))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        got = softmax(logits, name, policy, temperature=1.25)
    assert blocks and logits.size >= kernels.ROW_BLOCK_MIN_SIZE
    same_bits(got, whole)


def test_a_bad_value_in_a_blocked_batch_is_named_by_its_index_in_the_whole(monkeypatch):
    from numerics import kernels
    from numerics.errors import InvalidArgument

    monkeypatch.setattr(kernels, "_row_threads", lambda: 2)
    logits = np.zeros((1024, 1100), dtype=np.float32)
    logits[900, 17] = np.nan
    with pytest.raises(InvalidArgument, match=rf"first at index {900 * 1100 + 17}\)"):
        softmax(logits, "bf16", "hw")


def test_arrays_of_a_loaded_cupy_are_told_from_numpy_ones(monkeypatch):
    """Without CuPy imported nothing can be a CuPy array (the short path); with it, each
    argument is looked at, and a mix of the two is refused."""
    import sys
    import types

    from numerics.backend import array_namespace
    from numerics.errors import InvalidType

    assert array_namespace(np.zeros(2), 1.0) is np
    fake = types.ModuleType("cupy")
    fake.ndarray = type("ndarray", (), {})
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert array_namespace(fake.ndarray(), fake.ndarray()) is fake
    assert array_namespace(np.zeros(2), 1.0) is np
    with pytest.raises(InvalidType, match="numpy and cupy in one call"):
        array_namespace(fake.ndarray(), np.zeros(2))
