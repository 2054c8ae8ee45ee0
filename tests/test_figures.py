"""Figures: pgfplots source laid out for a width, tidy CSV and a PDF preview; every theorem's
figure fits a two-column paper's column and a one-column article's text width."""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import theorems
from numerics.errors import InvalidArgument
from theorems import _figure_layout as layout
from theorems import cli, figures
from theorems._theorem import draw_figure
from theorems.figures import (
    Key,
    Mark,
    Panel,
    Series,
    check_width,
    compile_with_pdflatex,
    standalone_document,
    to_pgfplots,
    write_figure,
)

PANELS = [
    Panel("size_sweep 50% & more", "$n$", r"$\alpha_{\max}$", (
        Series("observed_bf16", (2.0, 4.0, 8.0, 16.0), (0.5, 0.25, 0.0, 0.0625), "marks", 0),
        Series("bound #1", (2.0, 4.0, 8.0, 16.0), (0.6, 0.3, 0.15, math.nan), "line", 1),
    ), marks=(("n = 8", 8.0),)),
    Panel("linear", "$x$", "$y$", (
        Series("negative values", (-1.0, 0.0, 1.0), (-2.5, 0.0, 2.5), "dashed", 2),
        Series("tail #2_x", (-1.0, 1.0), (1e-300, 1e300), "dotted", 9),
        Series("", (-1.0, 1.0), (0.5, 0.5), "line", 3),
    ), xmode="normal", ymode="normal"),
    Panel("no legend", "$x$", "$y$", (Series("hidden", (1.0, 2.0), (1.0, 2.0)),), legend=False),
]


@pytest.fixture(autouse=True, scope="module")
def _own_figure_cache(tmp_path_factory):
    """Figures compiled here are kept in a cache of this module's own, so that no test is
    served a PDF another run compiled."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THEOREMS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def require_pdflatex() -> None:
    """Skip without pdflatex, unless under CI (``CI`` set), where its absence is a failure."""
    if shutil.which("pdflatex") is None and not os.environ.get("CI"):
        pytest.skip("pdflatex is not installed")


def test_write_figure_writes_tex_data_and_pdf(tmp_path):
    files = write_figure(tmp_path / "new" / "dir", "example", PANELS, preview="matplotlib")
    assert files.tex == tmp_path / "new" / "dir" / "example.tex"
    # check --out writes the sweep's rows to example.csv: the figure's data has its own name
    assert files.csv.name == "example-figure-data.csv" and files.pdf.name == "example.pdf"
    assert files.preview == "matplotlib" and files.pdf.read_bytes().startswith(b"%PDF")
    tex = files.tex.read_text(encoding="utf-8")
    # three panels and one legend (the first two panels' series mean different things only in
    # colour and style combinations that do not clash, so they share it; the third has none)
    assert tex.count("\\begin{axis}") == tex.count("\\end{axis}") == 4
    assert tex.count("\\addplot") == 6 and tex.count("\\addlegendentry") == 5
    assert "size\\_sweep 50\\% \\& more" in tex and "\\addlegendentry{tail \\#2\\_x}" in tex
    assert "$\\alpha_{\\max}$" in tex  # maths passes through unescaped
    coordinates = " ".join(re.findall(r"coordinates \{([^}]*)\}", tex)).lower()
    assert "(8,0)" not in coordinates and "nan" not in coordinates  # off a log axis
    assert "(0,0)" in tex  # zero is fine on linear axes
    assert "{hidden}" not in tex and "legend to name" not in tex


def test_a_key_replaces_the_series_labels_and_panels_with_one_key_share_a_legend():
    key = (Key("$\\delta = 1$", "line", 0), Key("observed", "marks"),
           Key("equal from here on", "vline"))
    panels = [Panel(f"p{i}", "$n$", "$y$", (Series(f"s{i}", (1.0, 2.0), (1.0, 2.0), "marks"),),
                    marks=(Mark("", 1.5, 0),), key=key) for i in range(4)]
    tex = to_pgfplots(panels)
    assert tex.count("\\addlegendentry") == 3 and "{s0}" not in tex
    assert "\\addlegendentry{$\\delta = 1$}" in tex
    assert tex.count("\\draw[blue, densely dotted]") == 4  # each panel's mark, in colour 0
    assert "(0.3cm,-0.12cm) -- (0.3cm,0.12cm)" in tex  # the key's vertical line


def test_points_off_the_axis_are_marked_with_their_count():
    y = (1.0, 0.0, 0.0, math.nan, 2.0, math.inf, -1.0)
    panel = Panel("p", "$n$", "$y$", (Series("s", tuple(range(1, 8)), y, "marks", 1),))
    off = [v for v in y if not (math.isfinite(v) and v > 0)]
    runs = layout.off_axis(panel)
    assert sum(run[2] for run in runs) == len(off) == 5
    assert [run[4] for run in runs] == ["zero", "nan", "infinite", "negative"]
    below = [m for m in layout.off_axis_marks(panel) if m[3] == "below"]
    assert below == [(0, 2.0, 4, "below")]  # 0, 0, NaN and -1: first at x = 2
    tex = to_pgfplots([panel])
    assert tex.count("\\fill[red]") == 2 and "{4};" in tex and "{1};" in tex
    assert "$k$ points at $0$ or $< 0$ or $\\pm\\infty$ or NaN}" in tex


def test_log_ticks_are_powers_of_two_for_sizes_and_few():
    sizes = tuple(float(2**j) for j in range(1, 25))
    panel = Panel("p", "$n$", "$y$", (Series("s", sizes, tuple(1 / n for n in sizes)),))
    plan = layout.layout([panel], 229.5)
    x, y = plan.placed[0].x, plan.placed[0].y
    assert 3 <= len(x.ticks) <= 1 + plan.axis_width // 24
    assert all(math.log2(t).is_integer() and t >= sizes[0] for t in x.ticks)
    assert x.labels == [f"$2^{{{int(math.log2(t))}}}$" for t in x.ticks]
    assert all(math.log10(t).is_integer() for t in y.ticks) and len(y.ticks) >= 3
    assert len(x.minor) == 24 - len(x.ticks)  # every other power of two


def test_mark_labels_do_not_overprint():
    marks = (Mark("first", 100.0), Mark("second", 110.0), Mark("far", 3.0))
    panel = Panel("p", "$n$", "$y$", (Series("s", (1.0, 1000.0), (1.0, 2.0)),), marks=marks)
    shifts = re.findall(r"yshift=(-?\d+)pt, font=\\tiny, text=gray", to_pgfplots([panel]))
    assert sorted(shifts) == ["-1", "-1", "-8"]  # the two close labels on two rows


@pytest.mark.parametrize("width,points", [
    ("columnwidth", 229.5), ("textwidth", 345.0), ("\\linewidth", 229.5), ("8.5cm", 241.85),
    ("3.3in", 238.49), ("240pt", 240.0), (" 100mm ", 284.53),
])
def test_widths(width, points):
    name = check_width(width)
    assert figures._width(name)[1] == pytest.approx(points, abs=0.01)


@pytest.mark.parametrize("width,match", [
    ("8.5", r"width='8.5' is not a width; expected columnwidth, textwidth, linewidth or a TeX"),
    ("wide", r"width='wide' is not a width"),
    (8.5, r"width=8.5 is not a width"),
    ("1cm", r"width='1cm' is 28pt; expected between 120pt and 1500pt"),
    ("100in", r"width='100in' is 7227pt"),
])
def test_bad_widths_are_one_line(width, match):
    with pytest.raises(InvalidArgument, match=match):
        check_width(width)


def test_cli_refuses_a_bad_width_before_any_work(capsys, tmp_path):
    status = cli.main(["figure", "iso-perplexity", "--out", str(tmp_path), "--width", "8.5"])
    err = capsys.readouterr().err.splitlines()
    assert status == 2 and len(err) == 1 and err[0].startswith("theorems: error: width='8.5'")
    assert list(tmp_path.iterdir()) == []


def test_matplotlib_preview_draws_no_minor_ticks(monkeypatch, tmp_path):
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: drawn.append(self))
    monkeypatch.setattr(figures, "pgfplots_installed", lambda: False)
    files = write_figure(tmp_path, "example", PANELS)
    assert files.preview == "matplotlib" and len(drawn) == 1
    axes = [ax for ax in drawn[0].axes if ax.axison]
    assert len(axes) == 3
    for ax in axes:
        assert isinstance(ax.xaxis.get_minor_locator(), NullLocator)
        assert isinstance(ax.yaxis.get_minor_locator(), NullLocator)


def test_csv_round_trips_the_data(tmp_path):
    files = write_figure(tmp_path, "example", PANELS, preview="matplotlib")
    with files.csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["panel", "series", "x", "y"]
    expected = [(panel.title, series.label, x, y)
                for panel in PANELS for series in panel.series
                for x, y in zip(series.x, series.y, strict=True)]
    read = [(p, s, float(x), float(y)) for p, s, x, y in rows[1:]]
    assert len(read) == len(expected)
    for got, want in zip(read, expected, strict=True):
        assert got[:3] == want[:3]
        assert got[3] == want[3] or (math.isnan(got[3]) and math.isnan(want[3]))


def test_standalone_document_inputs_the_figure():
    document = standalone_document("example.tex", "8.5cm")
    assert "\\usepackage{pgfplots}" in document and "\\input{example.tex}" in document
    assert document.index("\\begin{document}") < document.index("\\input")
    assert "\\setlength{\\columnwidth}{241.848pt}" in document


def _compile(directory, body: str, documentclass: str) -> str:
    """Compile a document with ``body`` and return its log."""
    (directory / "paper.tex").write_text(
        f"\\documentclass{documentclass}\n\\usepackage{{pgfplots}}\n"
        f"\\pgfplotsset{{compat=1.16}}\n\\begin{{document}}\n{body}\\end{{document}}\n",
        encoding="utf-8")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
                          cwd=directory, capture_output=True, text=True, timeout=600)
    log = (directory / "paper.log").read_text(encoding="utf-8", errors="replace")
    assert done.returncode == 0, done.stdout[-3000:]
    return log


def _badness(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if line.startswith(("Overfull \\hbox", "Overfull \\vbox"))
            or "Float too large" in line]


@pytest.mark.tex
@pytest.mark.parametrize("width", ["columnwidth", "textwidth", "8.5cm", "5in"])
def test_the_tex_is_exactly_as_wide_as_asked(tmp_path, width):
    """TeX measures the labels in a first pass; the figure then fills the width, 1pt spare."""
    require_pdflatex()
    files = write_figure(tmp_path, "example", PANELS, width=width)
    assert files.preview == "pgfplots" and files.pdf.read_bytes().startswith(b"%PDF")
    length = {"columnwidth": "\\columnwidth", "textwidth": "\\textwidth"}.get(width, width)
    log = _compile(tmp_path, "\\sbox0{\\input{example.tex}}"
                             f"\\typeout{{SIZES \\the\\wd0/\\the\\dimexpr{length}\\relax}}\n",
                   "[twocolumn]{article}")
    got, want = (float(v) for v in re.search(r"SIZES ([\d.]+)pt/([\d.]+)pt", log).groups())
    assert want - 1.5 <= got <= want


@pytest.mark.tex
def test_broken_tex_is_reported(tmp_path):
    require_pdflatex()
    broken = tmp_path / "broken.tex"
    broken.write_text("\\begin{tikzpicture}\\undefinedmacro\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="pdflatex failed on broken.tex"):
        compile_with_pdflatex(broken)


@pytest.mark.tex
def test_a_compiled_figure_is_kept_and_compiled_again_only_when_its_input_changes(
        tmp_path, monkeypatch):
    require_pdflatex()
    monkeypatch.setenv("THEOREMS_CACHE", str(tmp_path / "cache"))
    first = write_figure(tmp_path / "a", "example", PANELS)
    kept = list((tmp_path / "cache" / "figures").glob("*.pdf"))
    assert len(kept) == 1 and kept[0].read_bytes() == first.pdf.read_bytes()
    runs = []
    real_run = figures.subprocess.run
    monkeypatch.setattr(figures.subprocess, "run",
                        lambda args, **kw: runs.append(args[0]) or real_run(args, **kw))
    again = write_figure(tmp_path / "b", "example", PANELS)  # the same input: not compiled
    assert runs == [] and again.pdf.read_bytes() == first.pdf.read_bytes()
    moved = [replace(PANELS[0], series=[replace(PANELS[0].series[0],
                                                y=[v * 1.01 for v in PANELS[0].series[0].y]),
                                        *PANELS[0].series[1:]]), *PANELS[1:]]
    write_figure(tmp_path / "c", "example", moved)  # one series moved by 1%: compiled
    write_figure(tmp_path / "d", "example", PANELS, width="textwidth")  # another page: compiled
    assert runs == ["pdflatex", "pdflatex"]
    assert len(list((tmp_path / "cache" / "figures").glob("*.pdf"))) == 3
    monkeypatch.setenv("THEOREMS_CACHE", "off")
    write_figure(tmp_path / "e", "example", PANELS)  # no cache: compiled
    assert runs == ["pdflatex"] * 3


@pytest.mark.tex
def test_a_kept_figure_is_copied_as_a_compiled_one_and_a_vanished_one_compiled_again(
        tmp_path, monkeypatch):
    require_pdflatex()
    monkeypatch.setenv("THEOREMS_CACHE", str(tmp_path / "cache"))
    compiled = write_figure(tmp_path / "a", "example", PANELS).pdf
    kept = write_figure(tmp_path / "b", "example", PANELS).pdf
    assert kept.stat().st_mode == compiled.stat().st_mode  # not the cache's private mode
    runs = []
    real_run, real_copy = figures.subprocess.run, figures.shutil.copyfile
    monkeypatch.setattr(figures.subprocess, "run",
                        lambda args, **kw: runs.append(args[0]) or real_run(args, **kw))

    def pruned_meanwhile(source, target):  # another process dropped the entry just now
        if Path(source).parent.name == "figures":
            raise FileNotFoundError(source)
        return real_copy(source, target)

    monkeypatch.setattr(figures.shutil, "copyfile", pruned_meanwhile)
    again = write_figure(tmp_path / "c", "example", PANELS).pdf
    assert runs == ["pdflatex"] and again.read_bytes().startswith(b"%PDF")
    latin = tmp_path / "latin.tex"  # not UTF-8: pdflatex's error, not a decoding traceback
    latin.write_bytes(b"% caf\xe9\n\\begin{tikzpicture}\\undefinedmacro\n")
    with pytest.raises(RuntimeError, match="pdflatex failed on latin.tex"):
        compile_with_pdflatex(latin)


@pytest.mark.tex
def test_a_broken_figure_is_not_kept_and_an_unwritable_cache_costs_only_time(
        tmp_path, monkeypatch):
    require_pdflatex()
    monkeypatch.setenv("THEOREMS_CACHE", str(tmp_path / "cache"))
    broken = tmp_path / "broken.tex"
    broken.write_text("\\begin{tikzpicture}\\undefinedmacro\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="pdflatex failed on broken.tex"):
            compile_with_pdflatex(broken)
    assert not list(tmp_path.glob("cache/figures/*.pdf"))
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("THEOREMS_CACHE", str(blocker / "cache"))  # below a file: cannot exist
    files = write_figure(tmp_path / "out", "example", PANELS)
    assert files.pdf.read_bytes().startswith(b"%PDF")


def test_the_figure_cache_keeps_the_most_recently_used(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "KEPT_FIGURES", 3)
    pdf = tmp_path / "new.pdf"
    pdf.write_bytes(b"%PDF new")
    cache = tmp_path / "figures"
    cache.mkdir()
    for age in range(4):
        old = cache / f"{age}.pdf"
        old.write_bytes(b"%PDF old")
        os.utime(old, ns=(10**18 - age * 10**9,) * 2)  # 0.pdf the newest, 3.pdf the oldest
    figures._keep(pdf, cache / "new.pdf")
    assert sorted(p.name for p in cache.glob("*.pdf")) == ["0.pdf", "1.pdf", "new.pdf"]


@pytest.fixture(scope="module")
def theorem_figures(tmp_path_factory):
    """Every theorem's quick figure at the default width and at ``textwidth`` (the second
    reuses the first's data), in one directory."""
    require_pdflatex()
    out = tmp_path_factory.mktemp("figures")
    drawn = {}
    for name in theorems.names():
        theorem = theorems.get(name)
        drawn[name] = (theorem.figure(out / "column", quick=True),
                       theorem.figure(out / "text", quick=True, width="textwidth"))
    return out, drawn


@pytest.mark.tex
def test_every_theorem_draws_its_figure(theorem_figures):
    out, drawn = theorem_figures
    assert list(drawn) == theorems.names()
    for name, pair in drawn.items():
        for files in pair:
            assert files.tex.name == f"{name}.tex" and files.pdf.name == f"{name}.pdf"
            assert files.csv.name == f"{name}-figure-data.csv" and files.csv.stat().st_size
            assert files.preview == "pgfplots" and files.pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.tex
def test_every_figure_fits_a_column_of_a_two_column_paper(theorem_figures):
    out, drawn = theorem_figures
    body = "".join(f"\\begin{{figure}}\\centering\\input{{{name}.tex}}"
                   f"\\caption{{The {name} figure at the default width, with a caption of two "
                   f"lines to leave room for.}}\\end{{figure}}\n\\clearpage\n"
                   for name in drawn)
    log = _compile(out / "column", body, "[twocolumn]{article}")
    assert _badness(log) == []
    assert log.count("(./") >= len(drawn)  # every figure was read


@pytest.mark.tex
def test_every_figure_fits_a_one_column_article_at_textwidth(theorem_figures):
    out, drawn = theorem_figures
    body = "".join(f"\\begin{{figure}}\\centering\\input{{{name}.tex}}"
                   f"\\caption{{The {name} figure at textwidth.}}\\end{{figure}}\n\\clearpage\n"
                   for name in drawn)
    log = _compile(out / "text", body, "{article}")
    assert _badness(log) == []


@pytest.mark.tex
@pytest.mark.parametrize("name", theorems.names())
def test_derivation_latex_compiles(name, tmp_path):
    require_pdflatex()
    import subprocess

    (tmp_path / "derivation.tex").write_text(theorems.get(name).derive().to_latex())
    (tmp_path / "main.tex").write_text(
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\usepackage[margin=1cm]{geometry}\n"
        "\\begin{document}\n\\input{derivation.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "main.pdf").stat().st_size > 1000


@pytest.mark.parametrize("name, computes", [("rank-deficit", "rank_vs_temperature"),
                                            ("sae-amortisation", "recovery")])
def test_a_figure_drawn_from_a_report_is_the_figure_computed_again(tmp_path, monkeypatch, name,
                                                                   computes):
    """``verify`` draws a figure from the rows its sweep wrote; the same figure computed from
    scratch has the same numbers in every series."""
    theorem = theorems.get(name)
    module = sys.modules[type(theorem).__module__]
    report = theorem.check(quick=True, formats=["fp32"], policies=["hw"], precision=[False])
    original = getattr(module, computes)

    def not_again(*args, **kwargs):
        raise AssertionError(f"{computes} ran although the report holds its numbers")

    monkeypatch.setattr(module, "_FIGURE_PANELS", {})
    monkeypatch.setattr(module, computes, not_again)
    from_rows = theorem.figure(tmp_path / "rows", quick=True, report=report).csv
    module._FIGURE_PANELS.clear()
    monkeypatch.setattr(module, computes, original)
    again = theorem.figure(tmp_path / "again", quick=True).csv
    assert from_rows.read_text() == again.read_text()
    assert len(from_rows.read_text().splitlines()) > 4


def _sae_report(level: float) -> theorems.Report:
    """A sae-amortisation report whose quick-grid oracle rows hold made-up numbers: every
    method's MCC_OOD ``level`` and every dictionary's matched cosine ``level / 2``."""
    from theorems.report import Report

    sae = sys.modules[type(theorems.get("sae-amortisation")).__module__]
    methods = ["oracle", "linear probe", "DL-FISTA"] + [
        f"{way} {kind}" for kind in ("relu", "topk", "jumprelu", "mp")
        for way in ("SAE", "frozen", "warm")]
    rows = []
    for n in sae.QUICK_SIZES:
        epochs, rounds = sae.budget(n, quick=True)
        rows.append({"theorem": "sae-amortisation", "format": "fp32", "policy": "hw",
                     "quantity": "oracle MCC_OOD >= 0.95", "verdict": "holds", "mechanism": "",
                     "n": n, "seed": 0, "epochs": epochs, "rounds": rounds,
                     "chance_ood": 0.05,
                     **{f"mcc_ood[{name}]": level for name in methods},
                     **{f"cos[{name}]": level / 2 for name in
                        ("random", "DL-FISTA", "relu", "topk", "jumprelu", "mp")}})
    return Report("sae-amortisation", rows)


def test_each_report_draws_its_own_numbers_and_a_foreign_one_is_refused(tmp_path):
    theorem = theorems.get("sae-amortisation")
    drawn = {}
    for level in (0.25, 0.75):
        files = theorem.figure(tmp_path / str(level), quick=True, report=_sae_report(level))
        with files.csv.open(encoding="utf-8") as handle:
            drawn[level] = {(row["panel"], row["series"]): float(row["y"])
                            for row in csv.DictReader(handle)}
    for level, values in drawn.items():
        assert values[("codes (OOD split)", "oracle")] == level
        assert values[("dictionaries", "SAE relu")] == level / 2
    with pytest.raises(InvalidArgument, match="is not a Report"):
        theorem.figure(tmp_path / "x", quick=True, report=_sae_report(0.5).rows)
    other = theorems.get("rank-deficit")
    with pytest.raises(InvalidArgument, match="report is 'sae-amortisation'"):
        other.figure(tmp_path / "y", quick=True, report=_sae_report(0.5))


class _Unreadable:
    """A report whose every attribute raises: a figure that reads it fails."""

    def __getattr__(self, name):
        raise AssertionError(f"the figure read report.{name}")


@pytest.mark.parametrize("name", [n for n in theorems.names()
                                  if not theorems.get(n).figure_reads_report])
def test_a_figure_said_not_to_read_the_report_does_not(tmp_path, name):
    """``verify`` draws these while the sweeps run, without a report: the flag must be true."""
    theorem = theorems.get(name)
    files = draw_figure(theorem, tmp_path, quick=True, report=_Unreadable())
    assert files.csv.read_text() == draw_figure(theorem, tmp_path / "again", quick=True
                                                ).csv.read_text()
