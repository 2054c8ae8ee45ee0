"""Floating-point storage formats as data.

A :class:`Format` holds only its primary parameters (exponent bits, mantissa bits, bias, whether it
has infinities, how NaN is encoded, and the NumPy/ml_dtypes dtype that stores it); every other
constant is derived. One row of :data:`FORMATS` per format.

Rounding (:func:`round_to`) is round-to-nearest-even, with gradual underflow, and overflow to
infinity (IEEE formats) or to NaN (the ``fn`` formats, which have no infinity). It works on NumPy
and CuPy arrays alike, so formats that CuPy cannot store natively (bf16, fp8) are emulated there
bit-exactly in a float32 container. Large NumPy arrays are rounded and stored by one compiled
pass (:mod:`numerics._compiled`) that gives the same bits as the array operations.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import numpy as np

from numerics._validate import as_real_array, check_choice
from numerics.backend import array_namespace, is_numpy_namespace
from numerics.errors import InvalidType

__all__ = ["COMPILED_MIN_SIZE", "FORMATS", "FORMAT_NAMES", "Format", "get_format",
    "round_by_quantum", "round_to"]


#: NumPy arrays with at least this many elements are rounded (and stored) by one compiled pass;
#: smaller ones by array operations, which need no compiler and give the same bits.
COMPILED_MIN_SIZE = 4096


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: ``(-1)^s * 2^(e - bias) * 1.m`` with gradual underflow."""

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    has_inf: bool
    nan_encoding: str  # "ieee": all-ones exponent is inf/NaN; "fn": only all-ones pattern is NaN
    dtype_name: str

    @cached_property
    def dtype(self) -> np.dtype:
        """The NumPy dtype that stores this format (ml_dtypes for bf16 and fp8)."""
        return np.dtype(getattr(ml_dtypes, self.dtype_name, None) or self.dtype_name)

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def eps(self) -> float:
        """Distance from 1 to the next larger number: 2^-man_bits."""
        return 2.0**-self.man_bits

    @property
    def unit_roundoff(self) -> float:
        """Largest relative error of round-to-nearest in the normal range: eps / 2."""
        return self.eps / 2

    @cached_property
    def min_exp(self) -> int:
        """Exponent of the smallest normal number: 1 - bias."""
        return 1 - self.bias

    @cached_property
    def max_exp(self) -> int:
        """Exponent of the largest finite number."""
        top = 2**self.exp_bits - 1  # the all-ones exponent field
        return top - self.bias - (1 if self.nan_encoding == "ieee" else 0)

    @property
    def smallest_normal(self) -> float:
        return 2.0**self.min_exp

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.min_exp - self.man_bits)

    @cached_property
    def max(self) -> float:
        """Largest finite value; for "fn" formats the all-ones mantissa at the top is NaN."""
        if self.nan_encoding == "ieee":
            return (2.0 - 2.0**-self.man_bits) * 2.0**self.max_exp
        # fp8-e4m3: 448 = 1.75 * 2**8 (mantissa 110, since 111 with exponent 1111 is NaN)
        return (2.0 - 2.0 ** (1 - self.man_bits)) * 2.0**self.max_exp

    @cached_property
    def container(self) -> np.dtype:
        """The dtype in which values of this format are computed on: float64 or float32."""
        return np.dtype(np.float64) if self.exp_bits > 8 else np.dtype(np.float32)

    def ulp(self, x):
        """Return the spacing of this format at ``|x|``: ``2^(floor(log2|x|) - man_bits)``, or the
        smallest subnormal at and below the smallest normal number (and at ``x = 0``)."""
        if isinstance(x, float | np.floating):  # one value (a row's bound): the same steps
            magnitude = abs(float(x))
            exponent = math.frexp(magnitude)[1] - 1 if magnitude > 0 else self.min_exp
            return np.float64(math.ldexp(1.0, max(exponent, self.min_exp) - self.man_bits))
        xp = array_namespace(x)
        magnitude = xp.abs(xp.asarray(x, dtype=np.float64))
        _, exponent = xp.frexp(magnitude)
        exponent = xp.where(magnitude > 0, exponent - 1, self.min_exp)
        exponent = xp.maximum(exponent, self.min_exp) - self.man_bits
        return xp.ldexp(xp.ones_like(magnitude), exponent)

    def round(self, x):
        """Return ``x`` rounded to this format, in ``x``'s own (container) dtype."""
        return round_to(x, self)

    def store(self, x):
        """Return ``x`` rounded to this format in its storage dtype.

        On NumPy this is the native dtype (``ml_dtypes.bfloat16`` for bf16); on CuPy, formats that
        CuPy cannot hold natively stay in a float32 container holding exactly rounded values.
        """
        xp = array_namespace(x)
        if is_numpy_namespace(xp):
            x = xp.asarray(x)
            # one compiled pass, except float32 -> bf16 (ml_dtypes' cast is as fast) and
            # float64 -> fp16 (NumPy's cast rounds once)
            if x.size >= COMPILED_MIN_SIZE and self.dtype != self.container and (
                    (x.dtype == np.float32 and self.name != "bf16")
                    or (x.dtype == np.float64 and self.name != "fp16")):
                return _compiled().store(x, self)
            if x.dtype == np.float32 and self.dtype == np.float16:
                x = _round_float32_by_bits(x, self)  # exact values cast fast
            elif x.dtype != np.float32:
                x = round_to(x, self)  # ml_dtypes casts float64 through float32: round once first
            return x.astype(self.dtype)
        if self.name in ("fp64", "fp32", "fp16"):
            return x.astype(self.dtype)
        return round_to(x.astype(np.float32), self)

    def __str__(self) -> str:
        return self.name


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("fp64", 11, 52, 1023, True, "ieee", "float64"),
        Format("fp32", 8, 23, 127, True, "ieee", "float32"),
        Format("fp16", 5, 10, 15, True, "ieee", "float16"),
        Format("bf16", 8, 7, 127, True, "ieee", "bfloat16"),
        Format("fp8-e4m3", 4, 3, 7, False, "fn", "float8_e4m3fn"),
        Format("fp8-e5m2", 5, 2, 15, True, "ieee", "float8_e5m2"),
    )
}

FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


def get_format(fmt: str | Format) -> Format:
    """Return the :class:`Format` called ``fmt`` (a name from :data:`FORMATS`)."""
    if isinstance(fmt, Format):
        return fmt
    if not isinstance(fmt, str):
        names = {f.dtype: f.name for f in FORMATS.values()}
        try:
            hint = names.get(np.dtype(fmt)) if fmt is not None else None  # np.dtype(None): fp64
        except TypeError:
            hint = None
        if hint:
            raise InvalidType(f"pass {hint!r}, not {fmt!r}")
        raise InvalidType(f"expected a format name but got format={fmt!r} "
                          f"(type={type(fmt).__name__}); expected one of {', '.join(FORMATS)}")
    return FORMATS[check_choice(fmt, FORMAT_NAMES, "format")]


def round_to(x, fmt: Format):
    """Round every element of ``x`` to ``fmt`` (nearest, ties to even); keep ``x``'s dtype.

    Input in a narrower float dtype whose values ``fmt`` does not all contain (float16 to bf16)
    is rounded from, and returned in, float32; integer input in float64.

    On NumPy this is a cast to the format and back wherever that cast rounds once: from float32
    to any format, and from float64 to NumPy's own float16/float32. ``ml_dtypes`` casts float64
    through float32 (a double rounding: 1 + 2^-8 + 2^-30 becomes 1 in bf16, not 1 + 2^-7), so
    float64 input to bf16 and fp8, and every CuPy array, goes through :func:`round_by_quantum`.
    Arrays of at least :data:`COMPILED_MIN_SIZE` elements take one compiled pass instead, with
    the same bits; for float64 to bf16 and fp8 that pass rounds to odd in float32 first, which
    makes the second rounding exact (:func:`numerics._compiled.round_float64`).
    """
    fmt = get_format(fmt)
    xp = array_namespace(x)
    x = as_real_array(x, "x")
    if _contains(fmt, x.dtype):
        return x
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32 if x.dtype.kind in "fV" and x.dtype.itemsize < 4 else np.float64)
    if (is_numpy_namespace(xp) and x.size >= COMPILED_MIN_SIZE
            and (x.dtype == np.float32 or fmt.dtype not in (np.float16, np.float32))):
        compiled = _compiled()
        return (compiled.round_float32(x, fmt) if x.dtype == np.float32
                else compiled.round_float64(x, fmt))
    if is_numpy_namespace(xp) and x.dtype == np.float32 and fmt.dtype == np.float16:
        # NumPy's own float32 -> float16 cast takes ~80 ns per inexact subnormal
        return _round_float32_by_bits(x, fmt)
    # ml_dtypes' float8_e5m2 has kind "f" too, but like bf16 its float64 cast goes via float32
    if is_numpy_namespace(xp) and (x.dtype == np.float32
                                   or fmt.dtype in (np.float16, np.float32, np.float64)):
        with np.errstate(over="ignore", invalid="ignore"):
            return x.astype(fmt.dtype).astype(x.dtype)
    return round_by_quantum(x, fmt)


@functools.lru_cache(maxsize=256)
def _contains(fmt: Format, dtype) -> bool:
    """Whether every value of ``dtype`` is a value of ``fmt``, so that rounding changes nothing."""
    inner = next((f for f in FORMATS.values() if f.dtype == dtype), None)
    return (inner is not None and inner.man_bits <= fmt.man_bits and inner.min_exp >= fmt.min_exp
            and inner.max <= fmt.max and (fmt.has_inf or not inner.has_inf))


def round_by_quantum(x, fmt: Format):
    """Round ``x`` to ``fmt`` with array arithmetic only (works on NumPy and CuPy alike).

    ``q = 2^(max(floor(log2|x|), 1 - bias) - man_bits)`` is the spacing of ``fmt`` at ``x``, and
    ``rint(x / q) * q`` is exact in ``x``'s dtype because ``q`` is a power of two; ``rint`` rounds
    ties to even. Results beyond ``fmt.max`` become infinity, or NaN in formats without one.
    """
    xp = array_namespace(x)
    x = xp.asarray(x)
    if not is_numpy_namespace(xp) and x.dtype in (np.float32, np.float64):
        return _cuda_rounding_kernel(xp, fmt)(x)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf pass through as themselves
        _, exponent = xp.frexp(x)  # x = m * 2**exponent with 0.5 <= |m| < 1
        exponent = xp.maximum(exponent - 1, fmt.min_exp) - fmt.man_bits
        y = xp.ldexp(xp.rint(xp.ldexp(x, -exponent)), exponent)
        overflow = xp.abs(y) > fmt.max
        if fmt.has_inf:
            y = xp.where(overflow, xp.copysign(xp.asarray(np.inf, dtype=x.dtype), x), y)
        else:
            y = xp.where(overflow | xp.isinf(x), xp.asarray(np.nan, dtype=x.dtype), y)
    return xp.where(xp.isnan(x), x, y)


def _round_float32_by_bits(x: np.ndarray, fmt: Format) -> np.ndarray:
    """Round float32 ``x`` to ``fmt`` (exponent range within float32's) with integer arithmetic.

    Normal range: add ``2^(shift-1) - 1`` plus the kept part's lowest bit to the bit pattern and
    clear the ``shift = 23 - man_bits`` dropped bits (round to nearest, ties to even). Subnormal
    range: ``rint(x / s) * s`` with ``s`` the smallest subnormal, exact in float32.
    """
    shift = 23 - fmt.man_bits
    bits = x.view(np.uint32)
    half = np.uint32((1 << (shift - 1)) - 1)
    keep = np.uint32((0xFFFFFFFF >> shift) << shift)
    rounded = ((bits + (half + ((bits >> np.uint32(shift)) & np.uint32(1)))) & keep)
    rounded = rounded.view(np.float32)
    tiny = np.float32(fmt.smallest_subnormal)
    with np.errstate(over="ignore", invalid="ignore"):
        small = np.rint(x / tiny) * tiny
        y = np.where(np.abs(x) < np.float32(fmt.smallest_normal), small, rounded)
        y = np.where(np.abs(y) > np.float32(fmt.max), np.copysign(np.float32(np.inf), x), y)
    return np.where(np.isnan(x), x, y)


def _compiled():
    from numerics import _compiled  # imports numba: only for arrays large enough to need it

    return _compiled


_CUDA_KERNELS: dict[str, object] = {}


def _cuda_rounding_kernel(cupy, fmt: Format):
    """One fused CuPy kernel doing what :func:`round_by_quantum` does with array operations."""
    if fmt.name not in _CUDA_KERNELS:
        # NVRTC has no INFINITY or NAN macros: build them from float bit patterns
        overflow = ("copysign((T)__int_as_float(0x7f800000), x)" if fmt.has_inf
                    else "(T)__int_as_float(0x7fc00000)")
        _CUDA_KERNELS[fmt.name] = cupy.ElementwiseKernel(
            "T x", "T y",
            # CuPy compiles with -ftz=true (cupy/cupy#8382), which flushes float32 subnormals in
            # every float operation and conversion; they are bf16's subnormals too, so float32
            # subnormals are decoded and encoded through their bits, and the rounding itself
            # runs in double
            f"""
            if (isnan(x)) {{ y = x; }}
            else if (isinf(x)) {{ y = {overflow}; }}
            else {{
                double d = (double)x;
                if (sizeof(T) == 4) {{
                    unsigned int bits = __float_as_uint((float)x);
                    if ((bits & 0x7f800000u) == 0u) {{
                        d = ldexp((double)(bits & 0x007fffffu), -149);
                        if (bits & 0x80000000u) d = -d;
                    }}
                }}
                int e;
                frexp(d, &e);
                e = max(e - 1, {fmt.min_exp}) - {fmt.man_bits};
                double r = ldexp(rint(ldexp(d, -e)), e);
                if (fabs(r) > {fmt.max!r}) {{ y = {overflow}; }}
                else if (sizeof(T) == 4 && r != 0.0 && fabs(r) < 1.1754943508222875e-38) {{
                    unsigned int m = (unsigned int)(fabs(r) * 7.1362384635297994e+44);  // 2^149
                    y = (T)__uint_as_float((r < 0.0 ? 0x80000000u : 0u) | m);
                }}
                else {{ y = (T)r; }}
            }}
            """,
            f"round_to_{fmt.name.replace('-', '_')}",
        )
    return _CUDA_KERNELS[fmt.name]
