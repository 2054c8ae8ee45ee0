"""Shared test setup: the helper modules next to the tests (``_reference``, ``_sweep_cells``)
import by name under any pytest import mode, and in spawned worker processes."""

import os
import sys
from pathlib import Path

from hypothesis import settings

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


# the fuzz campaign's sizes: a few dozen inputs per function by default; THEOREMS_FUZZ=long (or
# --hypothesis-profile=long) runs 700 per function, over 10,000 in all. The default profile draws
# the same inputs on every run, so the suite (and CI) is reproducible; the long one draws new ones.
settings.register_profile("default", max_examples=25, deadline=None, database=None,
                          derandomize=True)
settings.register_profile("long", max_examples=700, deadline=None, database=None)
settings.load_profile(os.environ.get("THEOREMS_FUZZ", "default"))


def pytest_terminal_summary(terminalreporter):
    fuzz = sys.modules.get("test_fuzz") or sys.modules.get("tests.test_fuzz")
    if fuzz is None or not fuzz.CALLS:
        return
    calls = fuzz.CALLS
    terminalreporter.write_line(f"fuzz: {sum(calls.values())} calls: " + ", ".join(
        f"{name} {count}" for name, count in sorted(calls.items())))
