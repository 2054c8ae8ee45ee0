"""A short repr for result dataclasses: arrays by dtype and shape (``cupy.float32[40, 9]`` for a
device array), numbers to six digits, long sequences by length, so that a result typed at a
prompt fits a line or two (the arrays stay attributes)."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["short_repr"]

_LONG = 6  # a sequence longer than this is shown by its length


def short_repr(obj) -> str:
    """``Name(field=value, ...)`` with every value shortened (see the module docstring)."""
    values = ", ".join(f"{f.name}={_short(getattr(obj, f.name))}"
                       for f in dataclasses.fields(obj) if f.repr)
    return f"{type(obj).__name__}({values})"


def _short(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        library = type(value).__module__.split(".")[0]
        where = "" if library == "numpy" else f"{library}."  # a device array says so
        return f"{where}{value.dtype}[{', '.join(str(side) for side in value.shape)}]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return repr(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        if len(value) > _LONG:
            return f"<{len(value)} {type(value).__name__} items>"
        inner = ", ".join(_short(item) for item in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        if len(value) > _LONG:
            return f"<dict of {len(value)}>"
        return "{" + ", ".join(f"{key!r}: {_short(item)}" for key, item in value.items()) + "}"
    return repr(value)
