"""The array backend: NumPy everywhere, CuPy where a GPU exists.

Kernels start with ``xp = array_namespace(x)`` and use only ``xp.*`` afterwards. The backend is
chosen once, at the edge, by :func:`get_backend` (argument, else ``THEOREMS_BACKEND``, else
``numpy``). Detecting CuPy never imports it (``array_api_compat.is_cupy_array`` looks in
``sys.modules``).
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

import numpy as np
from array_api_compat import is_cupy_array

from numerics.errors import InvalidArgument, InvalidType

__all__ = ["BACKENDS", "array_namespace", "get_backend", "is_numpy_namespace", "to_numpy",
    "to_python"]


BACKENDS: tuple[str, ...] = ("numpy", "cupy")


def _is_cupy_array(x) -> bool:
    return is_cupy_array(x)


def array_namespace(*arrays) -> ModuleType:
    """Return the module (``numpy`` or ``cupy``) that owns ``arrays``; Python scalars are NumPy.

    Detection is ``array_api_compat``'s (it never imports CuPy). The namespace returned is the
    library module itself, not the standard's wrapper: the kernels use NumPy-API functions the
    array API standard lacks (``frexp``, ``ldexp``, ``errstate``, in-format ``cumsum`` over
    ``ml_dtypes`` types), which CuPy provides with the same meaning.
    """
    if "cupy" not in sys.modules:  # nothing can be a CuPy array (the same test as below)
        return np
    on_gpu = [_is_cupy_array(a) for a in arrays]
    if any(on_gpu) and not all(on_gpu):
        raise InvalidType("arrays from numpy and cupy in one call; move them to one backend")
    if on_gpu and all(on_gpu):
        return sys.modules["cupy"]
    return np


def is_numpy_namespace(xp: ModuleType) -> bool:
    return xp is np


def get_backend(name: str | None = None) -> ModuleType:
    """Return the array module for ``name`` (``numpy`` or ``cupy``; default from the environment).

    Raises :class:`InvalidArgument` for an unknown name, or when CuPy or a CUDA device is
    missing.
    """
    from numerics._validate import check_choice

    if name is None:
        name = os.environ.get("THEOREMS_BACKEND") or "numpy"
    check_choice(name, BACKENDS, "backend")
    if name == "numpy":
        return np
    try:
        import cupy
    except ImportError:
        raise InvalidArgument("backend='cupy' needs CuPy; install theorems[gpu] on a machine with "
                              "a "
                              "CUDA GPU, or use backend='numpy'") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CUDA runtime missing or broken: the same answer for the user
        count = 0
    if count < 1:
        raise InvalidArgument("backend='cupy' found no CUDA device; use backend='numpy'")
    return cupy


def to_numpy(x, dtype=None) -> np.ndarray:
    """Return ``x`` as a NumPy array (copying from the GPU when needed); with ``dtype``, a new
    array of that dtype."""
    host = x.get() if _is_cupy_array(x) else np.asarray(x)
    return host if dtype is None else host.astype(dtype)


def to_python(x):
    """Return a NumPy or CuPy scalar, or a 0-d array, as the Python ``float``, ``int`` or
    ``bool`` it holds (a ``bfloat16`` as ``float``); anything else unchanged. REPL functions
    return through it, so ``f(0.5)`` prints ``0.62``, not ``np.float64(0.62)``."""
    if _is_cupy_array(x) and x.ndim == 0:
        x = x.get()
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    if isinstance(x, np.generic):
        value = x.item()
        return float(value) if not isinstance(value, bool | int | float | complex) else value
    return x
