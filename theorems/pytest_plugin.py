"""A pytest plugin: the ``theorem_check`` fixture runs a theorem's checks inside a user's tests.

Installed with the package (entry point ``pytest11``), so a paper's own test suite can write::

    def test_dispersion(theorem_check):
        theorem_check("softmax-dispersion", quick=True)
"""

from __future__ import annotations

import pytest

from numerics._validate import InvalidArgument
from theorems._registry import get

__all__ = ["theorem_check"]


def _run_checks(name: str, *, derive: bool = True, certify: bool = True, **check_args):
    """Derive, certify and check ``name``; fail the test with the reason when anything fails.

    The arguments are validated first, before any derivation or sweep runs; a bad one fails the
    test with its one-line message.
    """
    progress = check_args.pop("progress", False)
    problem = ""
    try:
        theorem = get(name)
        sweep = theorem.plan(**check_args)
    except (InvalidArgument, TypeError) as exc:  # TypeError: an unknown keyword
        problem = str(exc)
    if problem:  # outside the handler, so the failure shows one line and no chained traceback
        pytest.fail(f"theorem_check({name!r}): {problem}", pytrace=False)
    if derive:
        derivation = theorem.derive()
        if not derivation.ok:
            pytest.fail(f"{name}: derivation not ok\n{derivation}", pytrace=False)
    if certify:
        certificate = theorem.certify()
        if certificate is not None and not certificate.ok:
            pytest.fail(f"{name}: certificate {certificate}", pytrace=False)
    report = theorem.run(sweep, progress=progress)
    if not report.ok:
        pytest.fail(f"{name}: numeric check not ok\n{report}", pytrace=False)
    return report


@pytest.fixture
def theorem_check():
    """Return a function ``(name, **check_args) -> Report`` that fails the test on any failure."""
    return _run_checks
