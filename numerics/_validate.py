"""Argument checks shared by the numeric layer.

Every helper raises :class:`InvalidArgument` (a ``ValueError``) for a bad value and
:class:`InvalidType` (an ``InvalidArgument`` and a ``TypeError``) for a wrong type, with a one-line
message of the form ``<name>=<value!r> <problem>; <what is expected>``. The command line turns
exactly these into one ``theorems: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from numerics.backend import array_namespace, to_numpy
from numerics.errors import InvalidArgument, InvalidType

__all__ = ["InvalidArgument", "InvalidType"]  # with the check_* helpers below


def check_int(value, name: str, *, min: int | None = None, max: int | None = None) -> int:
    """Return ``value`` as an int, or raise if it is not an integer in ``[min, max]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidType(f"expected int but got {name}={value!r} "
                              f"(type={type(value).__name__})")
    value = int(value)
    if min is not None and value < min:
        what = "a positive integer" if min == 1 else f"an integer >= {min}"
        raise InvalidArgument(f"{name}={value} must be {what}")
    if max is not None and value > max:
        raise InvalidArgument(f"{name}={value} must be an integer <= {max}")
    return value


#: The most numbers one array a public function builds may hold (2 GiB of float64): beyond it a
#: call is refused up front instead of exhausting memory part-way.
MAX_ELEMENTS = 2**28


def check_elements(count: int, what: str) -> int:
    """Return ``count``, or raise if an array of ``count`` numbers (``what`` says which) would
    exceed :data:`MAX_ELEMENTS`."""
    if count > MAX_ELEMENTS:
        raise InvalidArgument(f"{what} would hold {count:.3g} numbers ({count * 8 / 2**30:.3g} GiB "
                              f"in float64); the limit is 2^28: use smaller sizes")
    return count


def check_real(
    value,
    name: str,
    *,
    min: float | None = None,
    max: float | None = None,
    strict_min: bool = False,
) -> float:
    """Return ``value`` as a finite float, or raise if it is not a real number in range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType(f"expected a real number but got {name}={value!r} "
                        f"(type={type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    if min is not None and (value <= min if strict_min else value < min):
        relation = ">" if strict_min else ">="
        raise InvalidArgument(f"{name}={value!r} must be {relation} {min:g}")
    if max is not None and value > max:
        raise InvalidArgument(f"{name}={value!r} must be <= {max:g}")
    return value


def check_choice(value, choices: Sequence[str], name: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise with a suggestion."""
    if not isinstance(value, str):
        raise InvalidType(f"expected str but got {name}={value!r} (type={type(value).__name__}); "
                        f"expected one of {', '.join(choices)}")
    if value in choices:
        return value
    message = f"unknown {name} {value!r}; expected one of {', '.join(choices)}"
    close = [c for c in choices if c.lower() == value.lower()]
    close = close or difflib.get_close_matches(value, choices, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    raise InvalidArgument(message)


def check_nonempty(values: Iterable, name: str) -> list:
    """Return ``values`` as a list, or raise if it is empty (or a string, not a list)."""
    if isinstance(values, str):  # list("bf16") would be four one-letter formats
        raise InvalidType(f"{name}={values!r} is a string; pass a list such as [{values!r}]")
    values = list(values)
    if not values:
        raise InvalidArgument(f"{name}=[] is empty; give at least one value")
    return values


def as_real_array(x, name: str):
    """Return ``x`` as a NumPy or CuPy array of real numbers (floats, including the narrow
    ``ml_dtypes`` ones, or integers), without copying one that already is.

    Raises :class:`InvalidType` for what would otherwise be read silently or with a library's own
    message: complex numbers (the imaginary part would be dropped), booleans, strings, ragged
    nested lists, and objects that are not real numbers.
    """
    xp = array_namespace(x)
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        if isinstance(x, str | bytes):
            raise InvalidType(f"{name}={x!r} is a string; pass real numbers")
        try:
            x = np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise InvalidType(f"{name} is not a rectangular array of real numbers "
                              f"({str(exc).splitlines()[0][:80]})") from None
    kind = x.dtype.kind
    if kind == "O":
        values = x.ravel().tolist()
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, numbers.Real)]
        if bad:
            bad = bad[0]
            raise InvalidType(f"{name} holds {bad!r} (type={type(bad).__name__}); pass real "
                              f"numbers")
        x = np.asarray([float(v) for v in values], dtype=np.float64).reshape(x.shape)
        kind = "f"
    if kind == "c":
        raise InvalidType(f"{name} is complex ({x.dtype}); pass real numbers (the imaginary "
                          f"part would be dropped)")
    if kind == "b":
        raise InvalidType(f"{name} is boolean; pass real numbers")
    if kind not in "fiuV":
        raise InvalidType(f"{name} has dtype {x.dtype} ({kind!r}); pass real numbers")
    return xp.asarray(x) if xp is not np else x


def check_finite(x, name: str):
    """Raise if the array ``x`` holds NaN or infinite values; return it unchanged."""
    host = to_numpy(x, np.float64)
    bad = ~np.isfinite(host)
    if bad.any():
        n_nan = int(np.isnan(host).sum())
        kind = "NaN" if n_nan else "infinite"
        count = n_nan if n_nan else int(bad.sum())
        first = int(np.flatnonzero(np.isnan(host) if n_nan else bad)[0])
        plural = "s" if count != 1 else ""
        raise InvalidArgument(f"{count} {kind} value{plural} in {name} (first at index {first}); "
                         f"pass finite {name}")
    return x


def check_row_stochastic(P, name: str = "P", *, atol: float = 1e-12):
    """Raise unless ``P`` is a square-or-rectangular matrix with non-negative rows summing to 1."""
    host = to_numpy(P, np.float64)
    if host.ndim != 2:
        raise InvalidArgument(f"{name} has shape {host.shape}; expected a 2-D matrix")
    check_finite(host, name)
    if (host < 0).any():
        i, j = np.argwhere(host < 0)[0]
        raise InvalidArgument(f"{name} is not row-stochastic: entry ({i}, {j}) = "
                              f"{host[i, j]:.3g} < 0")
    sums = host.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > atol)
    if bad.size:
        row = int(bad[0])
        raise InvalidArgument(f"{name} is not row-stochastic: row {row} sums to {sums[row]:.6g} "
                         f"(atol={atol:g})")
    return P


def check_writable_directory(path, name: str) -> Path:
    """Create ``path`` if needed and make sure a file can be written there, before any work."""
    if not isinstance(path, str | os.PathLike) or str(path).strip() == "":
        raise InvalidArgument(f"{name}={path!r} is not a directory path; pass a directory such "
                              f"as 'theorems-out'")
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise InvalidArgument(f"{name}={str(path)!r} is not a writable directory "
                              f"({exc.strerror or type(exc).__name__}); pass another --{name}") \
            from None
    return directory
