"""Independent references for the numeric tests: exact rational rounding and format constants
taken from ml_dtypes/NumPy, never from the code under test."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np

#: The exact storage type of every format, written out independently of the table under test.
DTYPES = {
    "fp64": np.float64,
    "fp32": np.float32,
    "fp16": np.float16,
    "bf16": ml_dtypes.bfloat16,
    "fp8-e4m3": ml_dtypes.float8_e4m3fn,
    "fp8-e5m2": ml_dtypes.float8_e5m2,
}
NARROW = ("fp16", "bf16", "fp8-e4m3", "fp8-e5m2")


def finfo(name: str):
    return ml_dtypes.finfo(DTYPES[name])


def has_inf(name: str) -> bool:
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isinf(np.array(np.inf).astype(DTYPES[name])))


def to_fraction(value) -> Fraction:
    """A float, an int, a Fraction or a finite mpmath number, exactly."""
    if isinstance(value, mpmath.mpf):
        mantissa, exponent = value.man_exp
        return Fraction(int(mantissa)) * Fraction(2) ** int(exponent)
    return Fraction(value)


def quantum(magnitude: Fraction, name: str) -> Fraction:
    """The spacing of the format at ``magnitude > 0``: 2^(max(floor(log2 m), minexp) - nmant)."""
    info = finfo(name)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1  # now 2^exponent <= magnitude < 2^(exponent + 1)
    return Fraction(2) ** (max(exponent, info.minexp) - info.nmant)


def exact_round(x, name: str) -> float:
    """Round ``x`` (float, Fraction or mpf) to the format: nearest, ties to even, exactly.

    The format is described only by ml_dtypes' finfo: precision, smallest exponent and largest
    finite value. Overflow gives infinity, or NaN in a format without one.
    """
    if isinstance(x, float) and math.isnan(x):
        return math.nan
    if isinstance(x, float) and math.isinf(x):
        return x if has_inf(name) else math.nan
    value = to_fraction(x)
    if value == 0:
        return float(x) if isinstance(x, float) else 0.0
    sign = -1.0 if value < 0 else 1.0
    step = quantum(abs(value), name)
    rounded = round(abs(value) / step) * step  # Fraction.__round__ ties to even
    if rounded > Fraction(float(finfo(name).max)):
        return sign * math.inf if has_inf(name) else math.nan
    return math.copysign(float(rounded), sign)


def near_a_tie(x, name: str, *, relative: float = 2.0**-20) -> bool:
    """Whether ``x`` lies within ``relative * |x|`` of a rounding boundary of the format (where a
    transcendental function computed to a few float32 ulps may round either way)."""
    value = abs(to_fraction(x))
    if value == 0:
        return False
    step = quantum(value, name)
    position = value / step
    distance = abs(position - (math.floor(position) + Fraction(1, 2))) * step
    return distance < Fraction(relative) * value
