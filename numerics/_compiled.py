"""Compiled (numba) loops: the ``strict`` policy's sequential in-format sums and matrix products,
and one-pass rounding, storing and widening of large arrays (:mod:`numerics.formats` and
:meth:`numerics.policies.Policy.load` use them from ``COMPILED_MIN_SIZE`` elements on).

Each loop does, element by element and in the same order, exactly the operations of an array
reference (``_reference_sequential_sum`` and ``_reference_matmul`` in :mod:`numerics.policies`;
the casts and :func:`numerics.formats.round_by_quantum` in :mod:`numerics.formats`), so the
results are the same bits: the arithmetic is the container's (float32, or float64 for fp64; no
fastmath, so no fused multiply-adds and no reassociation) and every rounding of a float32 to a
narrow format is the one the reference's casts perform, done on the float32 bit pattern:

- normal range: add ``2^(s-1) - 1`` plus the lowest kept bit to the pattern and clear the
  ``s = 23 - man_bits`` dropped bits (nearest, ties to even; a carry moves into the exponent);
- subnormal range of the format: ``(|x| + M) - M`` with ``M = q 2^23`` and ``q`` the smallest
  subnormal: the float32 sum lies in ``[M, 2M)``, where the float32 spacing is ``q``, so the
  addition itself rounds ``|x|`` to a multiple of ``q`` (ties to even), and the subtraction is
  exact;
- beyond the largest finite value: infinity, or NaN in a format without one (``fn``);
- NaN: as the reference's cast leaves it (``NAN_*`` below);
- bf16, whose exponent field is float32's: the first rule alone, subnormals and overflow
  included.

Widening a stored array reads every value from a table of the library cast of each bit pattern.

This module imports numba, so the modules that use it import it only when they need it. numba
compiles each loop on its first call and caches the machine code on disk.
"""

from __future__ import annotations

from functools import cache

import numba
import numpy as np

from numerics.formats import Format

#: What a rounding does to a NaN: keep its bits (the float32 -> fp16 rounding of
#: ``numerics.formats``), make it the quiet NaN of its sign (ml_dtypes' casts to bf16 and fp8),
#: or keep its sign and top 10 payload bits (NumPy's float32 -> float16 cast, which keeps a
#: payload that would vanish a NaN by setting its lowest bit).
NAN_KEEP, NAN_QUIET, NAN_HALF = 0, 1, 2

_jit = numba.njit(cache=True, nogil=True)
_u32 = np.uint32


@cache
def rounding_parameters(fmt: Format, *, cast: bool) -> tuple:
    """The float32 bit-pattern constants of rounding to ``fmt`` (exponent range within
    float32's): ``(shared, s, 2^(s-1) - 1, kept-bits mask, smallest normal, largest finite,
    overflow pattern, M, NaN rule)`` with ``s = 23 - man_bits``; ``shared`` when ``fmt`` has
    float32's own exponent field and infinities (bf16).

    ``cast``: NaN as NumPy's or ml_dtypes' cast treats it (the ``strict`` sum, which adds in the
    storage dtype), else as :func:`numerics.formats.round_to` does (the ``strict`` product)."""
    def bits(value: float) -> np.uint32:
        return np.array(value, dtype=np.float32).view(np.uint32)[()]

    shared = fmt.exp_bits == 8 and fmt.bias == 127 and fmt.has_inf and fmt.man_bits < 23
    shift = 23 - fmt.man_bits
    overflow = 0x7F800000 if fmt.has_inf else 0x7FC00000  # infinity, or the quiet NaN
    nan = (NAN_HALF if cast else NAN_KEEP) if fmt.dtype == np.float16 else NAN_QUIET
    magic = np.float32(fmt.smallest_subnormal * 2.0**23)  # M = q 2^23: float32 spacing q there
    return (shared, _u32(shift), _u32((1 << (shift - 1)) - 1),
            _u32((0xFFFFFFFF >> shift) << shift), bits(fmt.smallest_normal), bits(fmt.max),
            _u32(overflow), magic, nan)


@_jit
def _round(x, rounding):  # pragma: no cover
    shared, shift, half, keep, smallest, largest, overflow, magic, nan = rounding
    # selects rather than branches, and every integer truncated back to 32 bits, so that loops
    # over it vectorize 8 lanes wide; ``shared`` is the same for a whole loop, which the
    # compiler splits in two
    u = np.float32(x).view(np.uint32)
    if shared:
        # float32's exponent field: the bit rule alone rounds subnormals (whose spacing is the
        # format's too) and carries an overflow into the infinity pattern; a NaN becomes the
        # quiet NaN of its sign, as ml_dtypes' cast makes it
        rounded = _u32(_u32(_u32(u + half) + _u32(_u32(u >> shift) & _u32(1))) & keep)
        quiet = _u32(_u32(u | _u32(0x00400000)) & _u32(0xFFC00000))
        chosen = quiet if _u32(u & _u32(0x7FFFFFFF)) > _u32(0x7F800000) else rounded
        return _u32(chosen | _u32(0)).view(np.float32)
    sign = _u32(u & _u32(0x80000000))
    a = _u32(u ^ sign)
    normal = _u32(_u32(_u32(a + half) + _u32(_u32(a >> shift) & _u32(1))) & keep)
    normal = overflow if normal > largest else normal
    tiny = np.float32(abs(x) + magic - magic).view(np.uint32)
    r = normal if a >= smallest else tiny
    payload = _u32(a & _u32(0x007FE000))
    quieted = _u32(_u32(0x7F800000) | (payload if payload != _u32(0) else _u32(0x2000)))
    not_a_number = a if nan == NAN_KEEP else (_u32(0x7FC00000) if nan == NAN_QUIET else quieted)
    r = not_a_number if a > _u32(0x7F800000) else r
    return _u32(r | sign).view(np.float32)


@_jit
def _sum_narrow(x, out, round_inputs, rounding):  # pragma: no cover
    # x: (outer, n, inner) float32, summed over its middle axis left to right into out
    # (outer, inner), each partial sum rounded to the format
    if x.shape[2] == 1:
        for o in range(x.shape[0]):
            row = x[o, :, 0]
            s = _round(row[0], rounding) if round_inputs else row[0]
            for k in range(1, row.shape[0]):
                v = _round(row[k], rounding) if round_inputs else row[k]
                s = _round(s + v, rounding)
            out[o, 0] = s
        return
    for o in range(x.shape[0]):
        acc = out[o]
        for j in range(x.shape[2]):
            v = x[o, 0, j]
            acc[j] = _round(v, rounding) if round_inputs else v
        for k in range(1, x.shape[1]):
            for j in range(x.shape[2]):
                v = x[o, k, j]
                if round_inputs:
                    v = _round(v, rounding)
                acc[j] = _round(acc[j] + v, rounding)


@_jit
def _sum_plain(x, out):  # pragma: no cover
    # the same in the container's own precision (fp32 in float32, fp64 in float64)
    for o in range(x.shape[0]):
        acc = out[o]
        for j in range(x.shape[2]):
            acc[j] = x[o, 0, j]
        for k in range(1, x.shape[1]):
            for j in range(x.shape[2]):
                acc[j] = acc[j] + x[o, k, j]


@_jit
def _last_nonfinite_rows(b, bad):  # pragma: no cover
    # bad[j]: the last row k with b[k, j] infinite or NaN, or -1
    for j in range(b.shape[1]):
        bad[j] = -1
    for k in range(b.shape[0]):
        for j in range(b.shape[1]):
            if not np.isfinite(b[k, j]):
                bad[j] = k


@_jit
def _last_nonzero(row):  # pragma: no cover
    last = row.shape[0] - 1
    while last > 0 and row[last] == 0:
        last -= 1
    return last


@_jit
def _matmul_narrow(a, b, a_index, b_index, out, rounding):  # pragma: no cover
    # out[t] = a[a_index[t]] @ b[b_index[t]], each product and each partial sum rounded.
    # The terms after a row's last nonzero a[i, k] are signed zeros when b[k, j] is finite, and
    # adding a zero leaves a nonzero non-NaN partial sum (a value of the format) unchanged, so
    # they are skipped there (the causal zeros of attention weights); a zero or NaN partial sum,
    # or an infinite or NaN b[k, j] later on, runs them as the reference does.
    bad = np.empty(b.shape[2], dtype=np.int64)
    for t in range(out.shape[0]):
        left, right, result = a[a_index[t]], b[b_index[t]], out[t]
        _last_nonfinite_rows(right, bad)
        for i in range(left.shape[0]):
            acc = result[i]
            last = _last_nonzero(left[i])
            aik = left[i, 0]
            for j in range(right.shape[1]):
                acc[j] = _round(aik * right[0, j], rounding)
            for k in range(1, last + 1):
                aik = left[i, k]
                for j in range(right.shape[1]):
                    p = _round(aik * right[k, j], rounding)
                    acc[j] = _round(acc[j] + p, rounding)
            for j in range(right.shape[1]):
                s = acc[j]
                if s != 0 and s == s and bad[j] <= last:
                    continue
                for k in range(last + 1, left.shape[1]):
                    p = _round(left[i, k] * right[k, j], rounding)
                    s = _round(s + p, rounding)
                acc[j] = s


@_jit
def _matmul_plain(a, b, a_index, b_index, out):  # pragma: no cover
    bad = np.empty(b.shape[2], dtype=np.int64)
    for t in range(out.shape[0]):
        left, right, result = a[a_index[t]], b[b_index[t]], out[t]
        _last_nonfinite_rows(right, bad)
        for i in range(left.shape[0]):
            acc = result[i]
            last = _last_nonzero(left[i])
            aik = left[i, 0]
            for j in range(right.shape[1]):
                acc[j] = aik * right[0, j]
            for k in range(1, last + 1):
                aik = left[i, k]
                for j in range(right.shape[1]):
                    acc[j] = acc[j] + aik * right[k, j]
            for j in range(right.shape[1]):
                s = acc[j]
                if s != 0 and s == s and bad[j] <= last:
                    continue
                for k in range(last + 1, left.shape[1]):
                    s = s + left[i, k] * right[k, j]
                acc[j] = s


def sequential_sum(x: np.ndarray, fmt: Format, axis: int) -> np.ndarray:
    """Sum ``x`` along ``axis`` left to right in ``fmt`` (each partial sum rounded), after
    storing it in ``fmt`` as NumPy's cast does; a non-empty ``axis``; returns the container."""
    narrow = fmt.dtype != fmt.container
    if x.dtype == fmt.container:
        values, round_inputs = x, narrow
    else:
        values, round_inputs = x.astype(fmt.dtype, copy=False).astype(fmt.container), False
    values = np.ascontiguousarray(values)
    axis = axis % values.ndim
    shape = values.shape
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    blocks = values.reshape(outer, shape[axis], inner)
    out = np.empty((outer, inner), dtype=fmt.container)
    if narrow:
        _sum_narrow(blocks, out, round_inputs, rounding_parameters(fmt, cast=True))
    else:
        _sum_plain(blocks, out)
    return out.reshape(shape[:axis] + shape[axis + 1:])


def sequential_matmul(a: np.ndarray, b: np.ndarray, fmt: Format) -> np.ndarray:
    """``a @ b`` (container arrays, at least 2-D, inner dimension >= 1) with the inner dimension
    run in order, every product and partial sum rounded to ``fmt``; batch dimensions broadcast."""
    m, inner, n = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    count = int(np.prod(batch))
    a_index, b_index = (
        np.ravel(np.broadcast_to(np.arange(int(np.prod(x.shape[:-2]))).reshape(x.shape[:-2]),
                                 batch)).astype(np.int64) for x in (a, b))
    left = np.ascontiguousarray(a).reshape(-1, m, inner)
    right = np.ascontiguousarray(b).reshape(-1, inner, n)
    out = np.empty((count, m, n), dtype=fmt.container)
    if fmt.dtype != fmt.container:
        _matmul_narrow(left, right, a_index, b_index, out, rounding_parameters(fmt, cast=False))
    else:
        _matmul_plain(left, right, a_index, b_index, out)
    return out.reshape(batch + (m, n))


@_jit
def _to_odd(v):  # pragma: no cover
    # float64 -> float32 rounded to odd (see round_float64)
    nearest = np.float32(v)
    bits = nearest.view(np.uint32)
    wide = np.float64(nearest)
    # inexact with an even last bit: the other neighbour of v, one step toward v, is odd
    move = (wide != v) & (v == v) & ((bits & _u32(1)) == _u32(0))
    step = _u32(1) if abs(wide) < abs(v) else _u32(0xFFFFFFFF)  # +1 or -1 on the pattern
    return _u32(bits + (step if move else _u32(0))).view(np.float32)


@_jit
def _encode(r, smallest, encoding):  # pragma: no cover
    # a float32 holding a value of the format (or inf, NaN) -> the format's bit pattern: the
    # exponent rebiased (normal values), the count of smallest subnormals (read off |r| + M as in
    # the rounding), or the infinity or NaN code
    rebias, shift, magic, infinity, nan_code, half_nan, top = encoding
    u = np.float32(r).view(np.uint32)
    sign = _u32(u >> _u32(31))
    a = _u32(u & _u32(0x7FFFFFFF))
    normal = _u32(_u32(a - rebias) >> shift)
    tiny = _u32(np.float32(abs(r) + magic).view(np.uint32) - np.float32(magic).view(np.uint32))
    code = normal if a >= smallest else tiny
    payload = _u32(_u32(0x7C00) | _u32(_u32(a & _u32(0x7FFFFF)) >> _u32(13)))
    nan = payload if half_nan else nan_code  # NumPy's float16 keeps the top payload bits
    code = infinity if a == _u32(0x7F800000) else code
    code = nan if a > _u32(0x7F800000) else code
    return _u32(code | _u32(sign << top))


@_jit
def _round_all(x, out, rounding):  # pragma: no cover
    for i in range(x.size):
        out[i] = _round(x[i], rounding)


@_jit
def _round_all_wide(x, out, rounding):  # pragma: no cover
    # float64 x: rounded to odd in float32, then to the format; returns whether any result is NaN
    found = False
    for i in range(x.size):
        r = _round(_to_odd(x[i]), rounding)
        out[i] = r
        found |= r != r
    return found


@_jit
def _encode_all(x, out, rounding, encoding):  # pragma: no cover
    for i in range(x.size):
        out[i] = _encode(_round(x[i], rounding), rounding[4], encoding)


@_jit
def _encode_all_wide(x, out, rounding, encoding):  # pragma: no cover
    for i in range(x.size):
        out[i] = _encode(_round(_to_odd(x[i]), rounding), rounding[4], encoding)


@cache
def encoding_parameters(fmt: Format) -> tuple:
    """Constants that turn a float32 holding a value of ``fmt`` into ``fmt``'s bit pattern."""
    with np.errstate(invalid="ignore"):
        nan_code = int(np.array(np.nan, dtype=np.float32).astype(fmt.dtype)
                       .view(f"u{fmt.bits // 8}"))
    infinity = (2**fmt.exp_bits - 1) << fmt.man_bits  # the all-ones exponent field
    return (_u32((127 - fmt.bias) << 23), _u32(23 - fmt.man_bits),
            np.float32(fmt.smallest_subnormal * 2.0**23), _u32(infinity), _u32(nan_code),
            fmt.dtype == np.float16, _u32(fmt.bits - 1))


def round_float32(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Float32 ``x`` rounded to a narrow ``fmt``, in float32, in one pass: what
    :func:`numerics.formats.round_to` returns (the library cast to ``fmt`` and back)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _round_all(flat, out, rounding_parameters(fmt, cast=False))
    return out.reshape(x.shape)


def round_float64(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Float64 ``x`` rounded once to ``fmt`` (bf16 or an fp8 format), in float64, in one pass:
    round to odd in float32, then to ``fmt``.

    Why that is one rounding: let ``p`` be ``fmt``'s precision and ``G`` the set of its values
    and of the midpoints between neighbours (the points where round-to-nearest changes its
    answer or meets a tie), including the midpoint above the largest finite value. Every point
    of ``G`` is a multiple of half ``fmt``'s spacing, which is at least 2^(24 - p - 1) >= 2
    float32 spacings wherever it lies (float32 has 24 bits, ``p <= 8``, and its exponent range,
    subnormals included, reaches at least 2 bits below ``fmt``'s at every magnitude), so ``G``
    consists of float32 numbers with an even last bit. If ``x`` is a float32 number, rounding to
    odd returns it. Otherwise ``x`` lies strictly between two neighbouring float32 numbers, and
    rounding to odd returns the one with an odd last bit, which is not in ``G``; the open
    interval between the neighbours holds no point of ``G`` either, so ``x`` and its image lie
    strictly between the same two consecutive points of ``G`` (or beyond the same end) and round
    to the same value of ``fmt``. A finite ``x`` beyond float32's range goes to the largest float32
    of its sign, which overflows ``fmt`` just as ``x`` does. Rounding to nearest twice instead
    can land on a point of ``G``: 1 + 2^-8 + 2^-30 becomes the tie 1 + 2^-8 in float32, then 1 in
    bf16, where one rounding gives 1 + 2^-7.

    NaN results are those of :func:`numerics.formats.round_by_quantum`: a NaN input unchanged,
    an overflow in a format without infinity the positive NaN.
    """
    flat = np.ascontiguousarray(x).reshape(-1)
    narrow = np.empty(flat.shape, dtype=np.float32)
    found = _round_all_wide(flat, narrow, rounding_parameters(fmt, cast=False))
    out = narrow.astype(np.float64)
    if found:
        nan = np.isnan(out)
        out[nan] = np.where(np.isnan(flat[nan]), flat[nan], np.nan)
    return out.reshape(x.shape)


def store(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Float32 or float64 ``x`` rounded once to a narrow ``fmt`` (bf16 or fp8 for float64) in
    its storage dtype, in one pass (float64 through float32 rounded to odd, as
    :func:`round_float64`)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, dtype=f"u{fmt.bits // 8}")
    encode = _encode_all_wide if flat.dtype == np.float64 else _encode_all
    encode(flat, out, rounding_parameters(fmt, cast=True), encoding_parameters(fmt))
    return out.view(fmt.dtype).reshape(x.shape)


@_jit
def _decode_all(codes, table, out):  # pragma: no cover
    for i in range(codes.size):
        out[i] = table[codes[i]]


@cache
def decoding_table(fmt: Format) -> np.ndarray:
    """Every bit pattern of a narrow ``fmt`` widened to float32 by the library's own cast."""
    codes = np.arange(2**fmt.bits, dtype=np.uint32).astype(f"u{fmt.bits // 8}")
    with np.errstate(invalid="ignore"):
        table = codes.view(fmt.dtype).astype(np.float32)
    table.flags.writeable = False
    return table


def widen(x: np.ndarray, fmt: Format) -> np.ndarray:
    """``x`` stored in a narrow ``fmt`` (its storage dtype) as float32, in one pass: the library
    cast ``x.astype(np.float32)``, read from a table of every bit pattern."""
    codes = np.ascontiguousarray(x).view(f"u{fmt.bits // 8}").reshape(-1)
    out = np.empty(codes.shape, dtype=np.float32)
    _decode_all(codes, decoding_table(fmt), out)
    return out.reshape(x.shape)
