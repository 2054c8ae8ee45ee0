"""``theorems report``: one LaTeX appendix per run, compiled without overfull boxes."""

import csv
import json
import shutil
from collections import Counter

import pytest

from theorems import get
from theorems.cli import main

NAME = "iso-perplexity"
#: A stored audit for the current code: the report reads it instead of running one.
ENTRIES = [{"mutation": "gamma +1%", "kind": "quantity", "status": "caught", "by": "step (eq5)"},
           {"mutation": "Eq. 10 1% tighter", "kind": "bound", "status": "exempt",
            "by": "a worst-case bound, loose by nature"}]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    (out / NAME).mkdir()
    (out / NAME / "audit.json").write_text(json.dumps(
        {"version": get(NAME).code_version(), "entries": ENTRIES}), encoding="utf-8")
    status = main(["report", NAME, "--quick", "--no-audit", "--out", str(out)])
    return status, out


def test_the_report_compiles_without_overfull_boxes(written):
    status, out = written
    assert status == 0
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    assert (out / "report.pdf").stat().st_size > 10_000
    log = (out / "report.log").read_text(encoding="utf-8", errors="replace")
    assert "Overfull \\hbox" not in log and "Overfull \\vbox" not in log


def test_the_sweep_table_counts_the_rows_csv(written):
    _, out = written
    with (out / NAME / f"{NAME}.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tally = Counter((r["format"], r["policy"], r["verdict"]) for r in rows)
    tex = (out / "report.tex").read_text(encoding="utf-8")
    line = next(text for text in tex.splitlines() if text.startswith("fp16 & strict &"))
    cells = [cell.strip() for cell in line.split("&")]
    assert cells[3:6] == [str(tally["fp16", "strict", "holds"]),
                          str(tally["fp16", "strict", "precision-effect"]),
                          str(tally["fp16", "strict", "violated"])]
    assert f"{len(rows)} rows:" in tex


def test_the_report_has_every_part_a_reviewer_needs(written):
    _, out = written
    tex = (out / "report.tex").read_text(encoding="utf-8")
    for heading in ("Statement", "Derivation", "Printed statements (errata)", "Certificate",
                    "Sweep", "Mutation audit", "Figure"):
        assert f"\\subsection*{{{heading}}}" in tex
    assert "2 mutations, 1 caught by a failing step or row, 1 exempt" in tex
    assert "\\input{iso-perplexity/figure/" in tex
    errata = get(NAME).derive().errata
    assert sum(errata.values()) == tex.count("\\mbox{(")


@pytest.mark.parametrize("argv", [["report", "no-such-theorem", "--out", "{tmp}"],
                                  ["report", NAME, "--out", "/proc/no-such-dir"],
                                  ["report", NAME]])
def test_bad_report_arguments_are_one_line(argv, tmp_path, capsys):
    status = main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("theorems: error:")
