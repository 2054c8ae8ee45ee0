"""Printed output says what it leaves out."""

from theorems.report import SHOWN_VIOLATIONS, Report


def test_a_report_counts_the_violations_it_does_not_list():
    rows = [{"theorem": "t", "format": "bf16", "policy": "hw", "quantity": "q",
             "verdict": "violated", "mechanism": "", "n": n} for n in range(SHOWN_VIOLATIONS + 3)]
    lines = str(Report("t", rows)).splitlines()
    assert sum(line.startswith("violated: ") for line in lines) == SHOWN_VIOLATIONS
    assert lines[-1].startswith("... and 3 more violated rows")
    assert not str(Report("t", rows[:SHOWN_VIOLATIONS])).splitlines()[-1].startswith("...")
