"""Figures for papers: pgfplots source that ``\\input``s into a paper, the data as CSV, and a PDF.

A figure is a list of :class:`Panel` s, each a list of :class:`Series`. :func:`write_figure`
writes, for a ``width`` (``columnwidth``, the default: one column of a two-column paper;
``textwidth``; ``linewidth``; or a TeX length such as ``8.5cm`` or ``3.3in``):

- ``<name>.tex``: one ``tikzpicture`` whose panels are laid out on a grid that fits the width,
  computed from the document's own ``\\columnwidth`` (or ``\\textwidth``, ...). Panels that plot
  the same quantities share axis ranges and one legend, placed below them; a point that falls
  off an axis (zero or negative on a log axis, infinite, NaN) is marked by a triangle at the
  axis edge with the number of such points. The paper's preamble needs only
  ``\\usepackage{pgfplots}`` (set ``\\pgfplotsset{compat=1.16}`` or newer). The coordinates are
  inlined, so it compiles from whatever directory the paper lives in.
- ``<name>-figure-data.csv``: the data, tidy (panel, series, x, y), every point including those
  off the axes. (``check --out`` writes the sweep's rows to ``<name>.csv``.)
- ``<name>.pdf``: a preview: the ``.tex`` itself compiled by ``pdflatex`` at the width when
  ``pdflatex`` and pgfplots are installed, else the same panels drawn by matplotlib.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from numerics.errors import InvalidArgument
from theorems import _figure_layout as grid
from theorems import _pgfplots

_MPL_COLOURS = ("tab:blue", "tab:red", "black", "teal", "tab:orange", "tab:purple", "tab:brown",
                "tab:gray")
__all__ = ["FigureFiles", "KEY_STYLES", "Key", "MAX_WIDTH", "MIN_WIDTH", "Mark", "Panel",
    "STYLES", "Series", "WIDTHS", "check_width", "compile_with_pdflatex", "pgfplots_installed",
    "standalone_document", "to_pgfplots", "write_figure"]


STYLES = ("line", "dashed", "dotted", "marks")
KEY_STYLES = (*STYLES, "vline")
#: Named widths: the TeX length, and the narrowest usual value (points) that decides the layout
#: and sizes the preview: ``article``'s two-column ``\columnwidth`` and one-column ``\textwidth``.
WIDTHS = {"columnwidth": ("\\columnwidth", 229.5), "textwidth": ("\\textwidth", 345.0),
          "linewidth": ("\\linewidth", 229.5)}
_UNITS = {"pt": 1.0, "bp": 72.27 / 72, "mm": 72.27 / 25.4, "cm": 72.27 / 2.54, "in": 72.27}
MIN_WIDTH, MAX_WIDTH = 120.0, 1500.0  # points: one panel at least, a poster at most


@dataclass(frozen=True)
class Series:
    """One curve: ``label`` (LaTeX; ``$...$`` for maths; empty: no legend entry), coordinates,
    ``style`` (line, dashed, dotted, marks), colour index."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    style: str = "line"
    colour: int = 0


@dataclass(frozen=True)
class Key:
    """A legend entry of its own: ``style`` as a series' or ``vline`` (a reference line); used
    where colour and line style mean different things (colour a parameter, style a quantity)."""

    label: str
    style: str = "line"
    colour: int = 2


@dataclass(frozen=True)
class Mark:
    """A vertical reference line at ``x`` with a short ``label``; grey, or a series' colour."""

    label: str
    x: float
    colour: int | None = None


@dataclass(frozen=True)
class Panel:
    """One set of axes. ``legend=False`` leaves its series out of the legends; ``key`` replaces
    the legend entries its series' labels would give. ``marks`` are :class:`Mark` s or
    ``(label, x)`` pairs. Panels next to each other (or sharing a legend) with the same axis
    label and mode share that axis's range."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    xmode: str = "log"
    ymode: str = "log"
    marks: tuple[Mark, ...] = field(default=())
    legend: bool = True
    key: tuple[Key, ...] = field(default=())
    xbase: int = 0  # a log x axis's ticks: powers of 2 or 10; 0: 2 where every x is one

    def __post_init__(self):
        marks = tuple(m if isinstance(m, Mark) else Mark(*m) for m in self.marks)
        object.__setattr__(self, "marks", marks)


@dataclass(frozen=True)
class FigureFiles:
    """The files :func:`write_figure` wrote; ``preview`` says what drew the PDF."""

    tex: Path
    csv: Path
    pdf: Path
    preview: str = "pgfplots"


def check_width(width) -> str:
    """Return ``width`` if it is ``columnwidth``, ``textwidth``, ``linewidth`` or a TeX length
    (pt, bp, mm, cm, in) between 120pt and 1500pt; raise :class:`InvalidArgument` otherwise."""
    expected = ("expected columnwidth, textwidth, linewidth or a TeX length such as 8.5cm, "
                "3.3in or 240pt")
    if not isinstance(width, str):
        raise InvalidArgument(f"width={width!r} is not a width; {expected}")
    name = width.strip().lstrip("\\")
    if name in WIDTHS:
        return name
    length = _length_pt(name)
    if length is None:
        raise InvalidArgument(f"width={width!r} is not a width; {expected}")
    if not MIN_WIDTH <= length <= MAX_WIDTH:
        raise InvalidArgument(f"width={width!r} is {length:.0f}pt; expected between "
                              f"{MIN_WIDTH:.0f}pt and {MAX_WIDTH:.0f}pt")
    return name.replace(" ", "")


def _length_pt(text: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(pt|bp|mm|cm|in)\s*", text)
    return None if match is None else float(match[1]) * _UNITS[match[2]]


def _width(width: str) -> tuple[str, float]:
    """The TeX length and the nominal points of a checked width."""
    return WIDTHS[width] if width in WIDTHS else (width, _length_pt(width))


def write_figure(out_dir: str | os.PathLike, name: str, panels: list[Panel], *,
                 width: str = "columnwidth", columns: int | None = None,
                 preview: str = "auto") -> FigureFiles:
    """Write ``<name>.tex``, ``<name>-figure-data.csv`` and ``<name>.pdf`` into ``out_dir``.

    ``width``: see :func:`check_width`; ``columns``: panels per row (default: as many as the
    width holds, at most 3); ``preview``: ``auto`` (pgfplots when ``pdflatex`` and pgfplots are
    installed, else matplotlib), ``pgfplots`` or ``matplotlib``.
    """
    width = check_width(width)
    _check_panels(panels)
    if preview not in ("auto", "pgfplots", "matplotlib"):
        raise InvalidArgument(f"preview={preview!r} is not a preview; expected auto, pgfplots "
                              f"or matplotlib")
    if columns is not None and (not isinstance(columns, int) or columns < 1):
        raise InvalidArgument(f"columns={columns!r} must be a positive integer")
    if preview == "auto":
        preview = "pgfplots" if pgfplots_installed() else "matplotlib"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = FigureFiles(out / f"{name}.tex", out / f"{name}-figure-data.csv",
                        out / f"{name}.pdf", preview)
    files.tex.write_text(to_pgfplots(panels, width=width, columns=columns, name=name),
                         encoding="utf-8")
    with files.csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["panel", "series", "x", "y"])
        for panel in panels:
            for series in panel.series:
                for x, y in zip(series.x, series.y, strict=True):
                    writer.writerow([panel.title, series.label, repr(float(x)), repr(float(y))])
    if preview == "pgfplots":
        compile_with_pdflatex(files.tex, width=width, target=files.pdf)
    else:
        _write_pdf(files.pdf, panels, width=width, columns=columns)
    return files


def pgfplots_installed() -> bool:
    """Whether ``pdflatex`` and pgfplots are installed (the preview is then the ``.tex``);
    asked once per process."""
    return _pgfplots_sty() is not None


@functools.lru_cache(maxsize=1)
def _pgfplots_sty() -> str | None:
    """The path of ``pgfplots.sty`` where ``pdflatex`` and ``kpsewhich`` are installed too."""
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        return None
    found = subprocess.run(["kpsewhich", "pgfplots.sty"], capture_output=True, text=True)
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def _check_panels(panels) -> None:
    if isinstance(panels, Panel) or not panels:
        raise InvalidArgument(f"panels={panels!r} must be a non-empty list of Panel")
    for panel in panels:
        for mode in (panel.xmode, panel.ymode):
            if mode not in ("log", "normal", "linear"):
                raise InvalidArgument(f"axis mode {mode!r} in panel {panel.title!r}; expected "
                                      f"log, normal or linear")
        if panel.xbase not in (0, 2, 10):
            raise InvalidArgument(f"xbase={panel.xbase!r} in panel {panel.title!r}; expected "
                                  f"2, 10 or 0 (automatic)")
        for series in panel.series:
            if series.style not in STYLES:
                raise InvalidArgument(f"style {series.style!r} of series {series.label!r}; "
                                      f"expected one of {', '.join(STYLES)}")
            if len(series.x) != len(series.y):
                raise InvalidArgument(f"series {series.label!r} has {len(series.x)} x and "
                                      f"{len(series.y)} y values; expected as many of each")
        for key in panel.key:
            if key.style not in KEY_STYLES:
                raise InvalidArgument(f"style {key.style!r} of key {key.label!r}; expected one "
                                      f"of {', '.join(KEY_STYLES)}")


def to_pgfplots(panels: list[Panel], *, width: str = "columnwidth", columns: int | None = None,
                name: str = "figure") -> str:
    """Return the figure's ``.tex``: a ``tikzpicture`` of ``panels`` on a grid that fits
    ``width`` exactly (measured by TeX in a first pass), with one legend below each group of
    panels whose series mean the same."""
    width = check_width(width)
    _check_panels(panels)
    length, nominal = _width(width)
    return _pgfplots.source(panels, width=width, length=length, nominal=nominal,
                            columns=columns, name=name)


def standalone_document(tex_name: str, width: str = "columnwidth") -> str:
    """Return a LaTeX document whose one page is the figure in ``tex_name`` typeset at
    ``width`` (a named width takes its nominal size, e.g. ``\\columnwidth`` = 229.5pt); the log
    states the figure's size (``theorems figure: <width> by <height>``)."""
    width = check_width(width)
    points = _width(width)[1]
    sizes = {"textwidth": points, "columnwidth": points, "linewidth": points}
    if width == "columnwidth":
        sizes["textwidth"] = 469.0  # article's two-column \textwidth
    return (
        "\\documentclass{article}\n\\usepackage{pgfplots}\n\\pgfplotsset{compat=1.16}\n"
        "\\pagestyle{empty}\n\\begin{document}\n"
        + "".join(f"\\setlength{{\\{k}}}{{{v:g}pt}}" for k, v in sizes.items()) + "\n"
        "\\newsavebox{\\theoremsfigure}\n"
        f"\\sbox{{\\theoremsfigure}}{{\\input{{{tex_name}}}}}\n"
        "\\typeout{theorems figure: \\the\\wd\\theoremsfigure\\space by "
        "\\the\\dimexpr\\ht\\theoremsfigure+\\dp\\theoremsfigure\\relax}\n"
        "\\pdfpagewidth=\\dimexpr\\wd\\theoremsfigure+4pt\\relax\n"
        "\\pdfpageheight=\\dimexpr\\ht\\theoremsfigure+\\dp\\theoremsfigure+4pt\\relax\n"
        "\\hoffset=-1in\\voffset=-1in\n"
        "\\shipout\\vbox{\\kern2pt\\hbox{\\kern2pt\\usebox{\\theoremsfigure}}}\n"
        "\\end{document}\n"
    )


def compile_with_pdflatex(tex: str | os.PathLike, *, width: str = "columnwidth",
                          target: str | os.PathLike | None = None) -> Path:
    """Compile the figure ``tex`` at ``width`` with ``pdflatex`` into ``target`` (default: the
    ``.tex`` with suffix ``.pdf``), a page the size of the figure; return its path.

    Raises ``RuntimeError`` with the end of the LaTeX log if compilation fails, and
    ``FileNotFoundError`` if ``pdflatex`` is not installed.
    """
    tex = Path(tex).resolve()
    document = standalone_document(tex.name, width)
    if shutil.which("pdflatex") is None:
        raise FileNotFoundError("pdflatex is not installed; install a TeX distribution "
                                "with pgfplots (Debian: texlive-pictures)")
    target = tex.with_suffix(".pdf") if target is None else Path(target)
    source = tex.read_bytes()  # read once: what is hashed is what is compiled
    kept = _compiled(document, tex.name, source)
    if kept is not None:
        try:
            shutil.copyfile(kept, target)
            with contextlib.suppress(OSError):
                os.utime(kept)  # recently used
            return target
        except OSError:  # not kept, or pruned by another process meanwhile: compile it
            pass
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / tex.name).write_bytes(source)
        (Path(tmp) / "main.tex").write_text(document, encoding="utf-8")
        done = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
             "main.tex"],
            cwd=tmp, capture_output=True, text=True, errors="replace", timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pdflatex failed on {tex.name}:\n{done.stdout[-2000:]}")
        shutil.copyfile(Path(tmp) / "main.pdf", target)
        if kept is not None:
            _keep(Path(tmp) / "main.pdf", kept)
    return target


#: Changes when what a kept PDF depends on changes, so older ones miss.
_COMPILED_FORMAT = "theorems-figure-1"


def _compiled(document: str, name: str, source: bytes) -> Path | None:
    """Where the PDF that ``pdflatex`` makes of ``document`` around the figure ``source`` is
    kept: ``figures/<sha256>.pdf`` in the derivation cache's directory, keyed by both texts and
    by the TeX installation (the paths, sizes and times of ``pdflatex``, its format file, and
    the files that carry the versions of pgf and pgfplots), so a figure whose data did not change
    is not compiled again. ``None`` when the cache is off (``THEOREMS_CACHE=off``)."""
    from theorems._cache import cache_directory

    directory = cache_directory()
    if directory is None:
        return None
    digest = hashlib.sha256(_COMPILED_FORMAT.encode())
    for program in (shutil.which("pdflatex"), _pgfplots_sty(), *_tex_installation()):
        with contextlib.suppress(OSError, TypeError):
            stat = Path(program).stat()
            digest.update(f"\0{program} {stat.st_size} {stat.st_mtime_ns}".encode())
    for part in (document.encode(), name.encode(), source):
        digest.update(b"\0" + part)
    return directory / "figures" / f"{digest.hexdigest()}.pdf"


@functools.lru_cache(maxsize=1)
def _tex_installation() -> tuple[str, ...]:
    """The files besides ``pdflatex`` and ``pgfplots.sty`` whose change changes what
    ``pdflatex`` makes of a figure: the pdfTeX format (the LaTeX kernel) and the files carrying
    the pgf and pgfplots versions (asked once per process)."""
    found = []
    for command in (["kpsewhich", "-engine=pdftex", "pdflatex.fmt"],
                    ["kpsewhich", "pgf.revision.tex", "pgfplots.revision.tex"]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
            found += [line for line in done.stdout.splitlines() if line]
    return tuple(found)


#: How many compiled figures the cache keeps (the least recently used go first).
KEPT_FIGURES = 64


def _keep(pdf: Path, kept: Path) -> None:
    """Keep a compiled PDF in the cache, dropping the least recently used beyond
    :data:`KEPT_FIGURES`; a cache that cannot be written costs time only."""
    from theorems._cache import write_atomically

    with contextlib.suppress(OSError):
        write_atomically(kept, pdf.read_bytes())
        others = sorted(kept.parent.glob("*.pdf"), key=_used)
        for stale in others[:-KEPT_FIGURES]:
            stale.unlink(missing_ok=True)


def _used(path: Path) -> int:
    """When a kept figure was last used (0 when another process removed it meanwhile)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _write_pdf(path: Path, panels: list[Panel], *, width: str, columns: int | None) -> None:
    """The matplotlib preview: the same grid, legends and marks as the ``.tex``, no minor
    ticks (slow to draw on log axes, and clutter at this size)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    nominal = _width(width)[1]
    plan = grid.layout(panels, nominal, columns)
    heights, where = [], {}
    for r in range(len(plan.rows)):
        where[r] = len(heights)
        heights.append(plan.axis_height + grid.TITLE + 30.0)
        below = [item for item in plan.legends if item.row == r]
        if below:
            rows = max(math.ceil(len(plan.groups[i.group].keys) / i.columns) for i in below)
            heights.append(10.0 * rows + 6.0)
    fig = plt.figure(figsize=(nominal / 72.27, sum(heights) / 72.27), layout="constrained")
    cells = fig.add_gridspec(len(heights), plan.columns, height_ratios=heights)
    dashes = {"line": "-", "dashed": "--", "dotted": ":", "marks": "none"}
    for placed in plan.placed:
        panel = panels[placed.index]
        ax = fig.add_subplot(cells[where[placed.row], placed.col])
        for series in panel.series:
            points = [(x, y) for x, y in zip(series.x, series.y, strict=True)
                      if grid.plottable(x, panel.xmode) and grid.plottable(y, panel.ymode)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linestyle=dashes[series.style],
                        marker="." if series.style == "marks" else None, markersize=2.5,
                        color=_mpl_colour(series.colour), linewidth=0.8)
        edge = ax.get_xaxis_transform()
        for mark in panel.marks:
            ax.axvline(mark.x, color=_mpl_colour(mark.colour), linestyle=":", linewidth=0.7)
            ax.text(mark.x, 0.97, f" {_mpl_text(mark.label)}", transform=edge, fontsize=5,
                    va="top", color=_mpl_colour(mark.colour))
        marks = grid.off_axis_marks(panel)
        spans = [(_pgfplots.relative(x, placed.x),
                  _pgfplots.relative(x, placed.x) + (8 + 3.2 * len(str(count))) / plan.axis_width)
                 for _, x, count, _ in marks]
        for (index, x, count, side), level in zip(marks, _pgfplots.levels(spans), strict=True):
            y, marker = (0.03 + 0.09 * level, "v") if side == "below" else (0.97 - 0.09 * level,
                                                                             "^")
            colour = _mpl_colour(panel.series[index].colour)
            ax.plot([x], [y], marker=marker, markersize=3.5, color=colour, transform=edge,
                    clip_on=False)
            ax.text(x, y, f"  {count}", transform=edge, fontsize=5, color=colour, va="center")
        for axis, letter, shown in ((placed.x, "x", placed.show_x),
                                    (placed.y, "y", placed.show_y_ticks)):
            getattr(ax, f"set_{letter}scale")("log" if axis.mode == "log" else "linear")
            if axis.lo is not None:
                getattr(ax, f"set_{letter}lim")(axis.lo, axis.hi)
            if axis.ticks is not None:
                getattr(ax, f"set_{letter}ticks")(axis.ticks, [_mpl_text(t) for t in axis.labels])
            getattr(ax, f"{letter}axis").set_minor_locator(NullLocator())
            if not shown:
                ax.tick_params(axis=letter, labelbottom=False, labelleft=False)
        ax.set_title(_mpl_text(panel.title), fontsize=7)
        if placed.show_x:
            ax.set_xlabel(_mpl_text(panel.xlabel), fontsize=7)
        if placed.show_ylabel:
            ax.set_ylabel(_mpl_text(panel.ylabel), fontsize=7)
        ax.tick_params(labelsize=6)
    for item in plan.legends:
        first = 0 if item.count == plan.columns else min(
            plan.placed[i].col for i in plan.groups[item.group].members
            if plan.placed[i].row == item.row)
        ax = fig.add_subplot(cells[where[item.row] + 1, first:first + item.count])
        ax.axis("off")
        handles = [_mpl_key(style, colour, Line2D) for _, style, colour in
                   plan.groups[item.group].keys]
        labels = [_mpl_text(label) for label, _, _ in plan.groups[item.group].keys]
        ax.legend(handles, labels, loc="upper center", ncol=item.columns, fontsize=5.5,
                  frameon=False, borderaxespad=0)
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)


def _mpl_colour(index: int | None) -> str:
    return "tab:gray" if index is None else _MPL_COLOURS[index % len(_MPL_COLOURS)]


def _mpl_key(style: str, colour: int, line):
    if style in ("vline", "offaxis"):
        return line([], [], linestyle="none", marker="|" if style == "vline" else "v",
                    color=_mpl_colour(colour), markersize=5)
    return line([], [], linestyle={"line": "-", "dashed": "--", "dotted": ":",
                                   "marks": "none"}[style],
                marker="." if style == "marks" else None, color=_mpl_colour(colour))


def _mpl_text(text: str) -> str:
    """A label for matplotlib's mathtext: TeX it lacks replaced; what it cannot parse, plain."""
    for tex, plain in (("\\|", "\\Vert "), ("\\tfrac", "\\frac"), ("\\,", " "),
                       ("\\texttt", "\\mathtt"), ("\\dots", "...")):
        text = text.replace(tex, plain)
    text = re.sub(r"\\(le|ge)(?![A-Za-z])", r"\\\1q", text)
    if text.count("$") % 2:
        return text.replace("$", "\\$")
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(text)
    except ValueError:
        return re.sub(r"[$\\{}^_]", "", text)
    return text
