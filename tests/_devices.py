"""The CuPy module for a test, or a skip when CuPy or a CUDA device is missing."""

import pytest

from numerics.backend import get_backend
from numerics.errors import InvalidArgument


def cupy_or_skip():
    """Return ``cupy`` where it has a device; otherwise skip the calling test."""
    pytest.importorskip("cupy")
    try:
        return get_backend("cupy")
    except InvalidArgument as exc:  # CuPy without a device
        pytest.skip(str(exc))
