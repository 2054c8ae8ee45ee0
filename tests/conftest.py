"""Shared test setup: the helper modules next to the tests (``_reference``, ``_sweep_cells``)
import by name under any pytest import mode, and in spawned worker processes."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
