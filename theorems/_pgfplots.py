"""The pgfplots source of a figure (see :mod:`theorems.figures`).

The ``.tex`` typesets its ``tikzpicture`` twice inside a group. The first pass draws no data
(ranges and ticks are explicit, so data cannot move anything) and measures what the document's
fonts make of the labels: how far tick labels and axis labels reach left and right of each axis,
each legend's width in one column and the picture's height. The second pass sizes the axes from
those measurements so that the picture is exactly the requested width and (down to an aspect of
0.4) no taller than 0.9 ``\\textheight``, gives each legend as many columns as its width holds,
and draws everything.
"""

from __future__ import annotations

import math

from theorems import _figure_layout as grid

_COLOURS = ("blue", "red", "black", "teal", "orange", "violet", "brown", "gray")
_PLOT_STYLES = {"line": "no marks", "dashed": "no marks, dashed",
                "dotted": "no marks, densely dotted",
                "marks": "only marks, mark=*, mark size=0.8pt"}
_STYLE = (
    "/pgfplots/theorems panel/.style={scale only axis, anchor=north west, "
    "width=\\theoremsaxiswidth, height=\\theoremsaxisheight, clip mode=individual, "
    "title style={font=\\footnotesize, yshift=-2pt}, label style={font=\\footnotesize}, "
    "tick label style={font=\\scriptsize}, every axis plot/.append style={line width=0.6pt}, "
    "scaled ticks=false, name=theorems-axis}, "
    "/pgfplots/theorems legend/.style={hide axis, scale only axis, width=1pt, height=1pt, "
    "xmin=0, xmax=1, ymin=0, ymax=1, anchor=north, name=theorems-legend, "
    "legend cell align=left, legend style={at={(0.5,1)}, anchor=north, font=\\scriptsize, "
    "draw=none, fill=none, inner sep=1pt, /tikz/every even column/.append style="
    "{column sep=6pt}}}"
)
# After each axis (pass 1): its overhangs left and right of the axis box, kept as maxima over
# the first column (left), the last column (right) and each pair of neighbouring axes (their sum,
# per gap: #3 names the gap to the axis on the left). Titles and
# axis labels are shrunk to their axis's length where longer (\theoremsfit), so the overhangs
# do not depend on the axis size that the second pass changes.
_MEASURE = r"""\def\theoremsmeasure#1#2#3{%
\pgfextractx{\dimen0}{\pgfpointanchor{theorems-axis}{south west}}%
\pgfextractx{\dimen2}{\pgfpointanchor{theorems-axis}{outer south west}}%
\advance\dimen0 by -\dimen2
\pgfextractx{\dimen2}{\pgfpointanchor{theorems-axis}{outer south east}}%
\pgfextractx{\dimen4}{\pgfpointanchor{theorems-axis}{south east}}%
\advance\dimen2 by -\dimen4
\ifnum#1=1 \ifdim\dimen0>\theoremsneedleft\relax\xdef\theoremsneedleft{\the\dimen0}\fi\fi
\ifnum#2=1 \ifdim\dimen2>\theoremsneedright\relax\xdef\theoremsneedright{\the\dimen2}\fi\fi
\ifx&#3&\else\advance\dimen0 by \theoremsprevright\relax
\ifdim\dimen0>\csname theoremsneedspacing#3\endcsname\relax
\expandafter\xdef\csname theoremsneedspacing#3\endcsname{\the\dimen0}\fi\fi
\xdef\theoremsprevright{\the\dimen2}}%
\def\theoremsmeasurelegend#1{%
\pgfextractx{\dimen0}{\pgfpointanchor{theorems-legend}{outer east}}%
\pgfextractx{\dimen2}{\pgfpointanchor{theorems-legend}{outer west}}%
\advance\dimen0 by -\dimen2
\expandafter\xdef\csname theoremslegend#1\endcsname{\the\dimen0}%
\pgfextracty{\dimen0}{\pgfpointanchor{theorems-legend}{outer north}}%
\pgfextracty{\dimen2}{\pgfpointanchor{theorems-legend}{outer south}}%
\advance\dimen0 by -\dimen2
\expandafter\xdef\csname theoremslegendheight#1\endcsname{\the\dimen0}}%
\def\theoremslegendcolumns#1#2#3{% legend #1: #2 entries in a width of #3 (6pt between columns)
\expandafter\let\expandafter\theoremslegendwidth\csname theoremslegend#1\endcsname
\expandafter\let\expandafter\theoremslegendheight\csname theoremslegendheight#1\endcsname
\pgfmathtruncatemacro\theoremscolumns{max(1,min(#2,floor((#3+6pt)/(\theoremslegendwidth+6pt))))}%
\pgfmathtruncatemacro\theoremsrows{ceil(#2/\theoremscolumns)}%
\pgfmathtruncatemacro\theoremscolumns{ceil(#2/\theoremsrows)}%
\expandafter\let\csname theoremscolumns#1\endcsname\theoremscolumns
\pgfmathsetlengthmacro\theoremslegendwidth{\theoremscolumns*(\theoremslegendwidth+6pt)-6pt}%
\expandafter\let\csname theoremslegend#1\endcsname\theoremslegendwidth
\pgfmathsetlengthmacro\theoremsheight{\theoremsheight-\theoremslegendheight*(1-\theoremsrows/#2)}}%
\def\theoremsfit#1#2{\sbox0{#2}\ifdim\wd0>#1\relax\resizebox{#1}{!}{\usebox0}%
\else\usebox0\fi}%"""


def source(panels, *, width: str, length: str, nominal: float, columns: int | None,
           name: str) -> str:
    """The ``.tex`` of ``panels`` for the TeX length ``length`` (``nominal`` points)."""
    plan = grid.layout(panels, nominal, columns)
    c = plan.columns
    gaps = [_gap(m) for m in range(c - 1)]
    grid_width = "+".join([f"{c}*\\theoremsaxiswidth", *gaps])
    body = [f"\\begin{{tikzpicture}}[{_STYLE}]%"]
    for r, row in enumerate(plan.rows):
        if r == 0:
            body.append("\\path (0pt,0pt) coordinate (theorems-row);")
        else:
            body.append("\\path (0pt,0pt |- current bounding box.south) ++(0pt,-3pt) "
                        "coordinate (theorems-row);")
        for position, index in enumerate(row):
            placed = plan.placed[index]
            body.append(f"\\path (theorems-row) ++({{{_x(position, len(row), c)}}},"
                        f"-{grid.TITLE:g}pt) coordinate (theorems-panel);")
            body += _axis(panels[index], placed, plan)
            full = len(row) == c
            first, last = int(full and position == 0), int(full and position == c - 1)
            gap = chr(ord("a") + position - 1) if position else ""
            body.append(f"\\theoremsmeasure{{{first}}}{{{last}}}{{{gap}}}%")
        below = [item for item in plan.legends if item.row == r]
        if below:
            body.append("\\path (0pt,0pt |- current bounding box.south) "
                        "coordinate (theorems-below);")
        for item in below:
            members = [p for p, i in enumerate(row) if i in plan.groups[item.group].members]
            if item.count == c:  # alone in its row: centred under the grid
                centre = f"\\theoremsleft+({grid_width})/2"
            else:
                centre = (f"({_x(members[0], len(row), c)}+{_x(members[-1], len(row), c)}"
                          f"+\\theoremsaxiswidth)/2")
            body.append(f"\\expandafter\\let\\expandafter\\theoremslegendwidth"
                        f"\\csname theoremslegend{item.group}\\endcsname")
            half = "\\theoremslegendwidth/2"
            body.append(f"\\path ({{max({half},min({length}-1pt-{half},{centre}))}},0pt |- "
                        f"theorems-below) ++(0pt,-3pt) coordinate (theorems-panel);")
            body.append(f"\\expandafter\\let\\expandafter\\theoremscolumns"
                        f"\\csname theoremscolumns{item.group}\\endcsname")
            body += _legend(plan.groups[item.group].keys)
            body.append(f"\\theoremsmeasurelegend{{{item.group}}}%")
    body.append("\\end{tikzpicture}}%")
    # 1pt to spare: pgfmath rounds, and TeX reports a box 0.1pt too wide
    axis_width = "-".join([f"({length}-1pt-\\theoremsleft-\\theoremsright", *gaps]) + f")/{c}"
    guesses = "".join(f"\\def{g}{{{plan.spacing:g}pt}}" for g in gaps)
    needs = "".join(f"\\expandafter\\gdef\\csname theoremsneedspacing{g[-1]}\\endcsname{{0pt}}"
                    for g in gaps)
    spacings = "".join(f"\\pgfmathsetlengthmacro{g}{{\\csname theoremsneedspacing{g[-1]}"
                       f"\\endcsname+{grid.GAP:g}pt}}" for g in gaps)
    lines = [
        f"% {name}: generated by theorems for width={width} ({length}); \\input it in a "
        f"figure.",
        "% Preamble: \\usepackage{pgfplots} and \\pgfplotsset{compat=1.16} (or newer).",
        "% Typeset twice: once to measure the labels, once to draw at exactly the width.",
        "\\begingroup",
        _MEASURE,
        "\\def\\theoremsdata#1{}%",
        "\\def\\theoremsfigure{%",
        *body,
        f"\\def\\theoremsleft{{{grid.LEFT:g}pt}}\\def\\theoremsright{{{grid.RIGHT:g}pt}}"
        f"{guesses}%",
        *(f"\\expandafter\\def\\csname theoremslegend{item.group}\\endcsname"
          f"{{{item.width:.1f}pt}}\\expandafter\\def\\csname theoremscolumns{item.group}"
          f"\\endcsname{{1}}%" for item in plan.legends),
        f"\\pgfmathsetlengthmacro\\theoremsaxiswidth{{{axis_width}}}%",
        f"\\pgfmathsetlengthmacro\\theoremsaxisheight{{{grid.ASPECT:g}*\\theoremsaxiswidth}}%",
        f"\\gdef\\theoremsneedleft{{0pt}}\\gdef\\theoremsneedright{{0pt}}"
        f"\\gdef\\theoremsprevright{{0pt}}{needs}%",
        "\\setbox0=\\hbox{\\theoremsfigure}%",
        "\\edef\\theoremsheight{\\the\\dimexpr\\ht0+\\dp0\\relax}%",
        *(f"\\theoremslegendcolumns{{{item.group}}}{{{len(plan.groups[item.group].keys)}}}"
          f"{{{_room(item, length, c)}}}%" for item in plan.legends),
        f"\\let\\theoremsleft\\theoremsneedleft\\let\\theoremsright\\theoremsneedright"
        f"{spacings}%",
        f"\\pgfmathsetlengthmacro\\theoremsaxiswidth{{{axis_width}}}%",
        f"\\pgfmathsetlengthmacro\\theoremsaxisheight{{max({grid.MIN_ASPECT:g}*"
        f"\\theoremsaxiswidth,min({grid.ASPECT:g}*\\theoremsaxiswidth,\\theoremsaxisheight+"
        f"(0.9\\textheight-\\theoremsheight)/{len(plan.rows)}))}}%",
        "\\def\\theoremsdata#1{#1}%",
        "\\theoremsfigure",
        "\\endgroup",
    ]
    return "\n".join(lines) + "\n"


def _room(item: grid.Legend, length: str, columns: int) -> str:
    """The width a legend may take: the figure's, or its panels' share of it."""
    if item.count == columns:
        return f"{length}-1pt"
    return f"({length}-1pt)*{item.count}/{columns}-6pt"


def _gap(m: int) -> str:
    """The macro holding the space between columns ``m`` and ``m + 1``."""
    return f"\\theoremsspacing{chr(ord('a') + m)}"


def _x(position: int, count: int, columns: int) -> str:
    """The left edge of the axis at ``position`` in a row of ``count`` axes; a row that is not
    full is centred under the full ones."""
    terms = ["\\theoremsleft", f"{position}*\\theoremsaxiswidth",
             *(_gap(m) for m in range(position))]
    if count < columns:
        rest = "+".join([f"{columns - count}*\\theoremsaxiswidth",
                         *(_gap(m) for m in range(count - 1, columns - 1))])
        terms.append(f"({rest})/2")
    return "+".join(terms)


def _axis(panel, placed: grid.Placed, plan: grid.Layout) -> list[str]:
    options = ["theorems panel", "at={(theorems-panel)}",
               f"title={{\\theoremsfit{{\\theoremsaxiswidth}}{{{tex(panel.title)}}}}}",
               f"xmode={panel.xmode}", f"ymode={panel.ymode}"]
    for axis, letter, shown in ((placed.x, "x", placed.show_x),
                                (placed.y, "y", placed.show_y_ticks)):
        options += [f"{letter}min={axis.lo:.6g}", f"{letter}max={axis.hi:.6g}",
                    f"{letter}tick={{{','.join(f'{t:.6g}' for t in axis.ticks)}}}",
                    f"minor {letter}tick={{{','.join(f'{t:.6g}' for t in axis.minor)}}}",
                    f"{letter}ticklabels={{{','.join(axis.labels) if shown else ''}}}"]
    if placed.show_x:
        options.append(f"xlabel={{\\theoremsfit{{\\theoremsaxiswidth}}{{{tex(panel.xlabel)}}}}}")
    if placed.show_ylabel:
        options.append(f"ylabel={{\\theoremsfit{{\\theoremsaxisheight}}"
                       f"{{{tex(panel.ylabel)}}}}}")
    lines = [f"\\begin{{axis}}[{', '.join(options)}]"]
    for series in panel.series:
        points = [(x, y) for x, y in zip(series.x, series.y, strict=True)
                  if grid.plottable(x, panel.xmode) and grid.plottable(y, panel.ymode)]
        if points:
            coords = " ".join(f"({x:.9g},{y:.9g})" for x, y in points)
            lines.append(f"\\theoremsdata{{\\addplot[{colour(series.colour)}, "
                         f"{_PLOT_STYLES[series.style]}] coordinates {{{coords}}};}}")
    lines += _marks(panel, placed, plan) + _off_axis(panel, placed, plan)
    lines.append("\\end{axis}")
    return lines


def _legend(keys) -> list[str]:
    lines = ["\\begin{axis}[theorems legend, at={(theorems-panel)}, "
             "legend columns=\\theoremscolumns]"]
    for label, style, index in keys:
        lines.append(f"\\addlegendimage{{{_legend_image(style, index)}}}"
                     f"\\addlegendentry{{{tex(label)}}}")
    lines.append("\\end{axis}")
    return lines


def colour(index: int | None) -> str:
    return "gray" if index is None else _COLOURS[index % len(_COLOURS)]


def tex(text: str) -> str:
    """Escape TeX's special characters outside ``$...$``; maths passes through unchanged."""
    parts = text.split("$")
    if len(parts) % 2 == 0:  # an unpaired $: all of it is text
        parts = [text.replace("$", "\\$")]
    for i in range(0, len(parts), 2):
        part = parts[i].replace("\\$", "\0").replace("|", "$|$")
        for char in "_%&#":
            part = part.replace(char, "\\" + char)
        parts[i] = part.replace("\0", "\\$")
    return "$".join(parts)


def _legend_image(style: str, index: int) -> str:
    if style == "vline":
        return (f"legend image code/.code={{\\draw[{colour(index)}, densely dotted] "
                f"(0.3cm,-0.12cm) -- (0.3cm,0.12cm);}}")
    if style == "offaxis":
        return (f"legend image code/.code={{\\fill[{colour(index)}] (0.3cm,-0.08cm) -- "
                f"++(-2.2pt,3.8pt) -- ++(4.4pt,0pt) -- cycle;}}")
    return f"{colour(index)}, {_PLOT_STYLES[style]}"


def _at(x: float, mode: str, edge: int) -> str:
    """A point at ``x`` on the bottom (0) or top (1) edge of the axis."""
    return f"({{axis cs:{x:.9g},{1 if mode == 'log' else 0}}} |- {{rel axis cs:0,{edge}}})"


def levels(spans: list[tuple[float, float]]) -> list[int]:
    """The first free row for each of several horizontal extents (relative axis units)."""
    taken: list[list[tuple[float, float]]] = []
    levels = []
    for lo, hi in spans:
        level = next((k for k, row in enumerate(taken)
                      if all(hi < a - 0.01 or lo > b + 0.01 for a, b in row)), len(taken))
        if level == len(taken):
            taken.append([])
        taken[level].append((lo, hi))
        levels.append(level)
    return levels


def relative(value: float, axis: grid.Axis) -> float:
    if axis.mode == "log":
        return math.log(value / axis.lo) / math.log(axis.hi / axis.lo)
    return (value - axis.lo) / (axis.hi - axis.lo)


def _marks(panel, placed: grid.Placed, plan: grid.Layout) -> list[str]:
    """Vertical reference lines, their labels at the top in rows that do not overprint."""
    marks = sorted((m for m in panel.marks if grid.plottable(m.x, panel.xmode)),
                   key=lambda m: m.x)
    spans, sides = [], []
    for mark in marks:
        where = relative(mark.x, placed.x)
        size = (3.2 * len(mark.label) + 3) / plan.axis_width
        right = where < 0.55
        sides.append(right)
        spans.append((where, where + size) if right else (where - size, where))
    lines = []
    for mark, right, level in zip(marks, sides, levels(spans), strict=True):
        shade = colour(mark.colour)
        lines.append(f"\\draw[{shade}, densely dotted] {_at(mark.x, panel.ymode, 0)} -- "
                     f"{_at(mark.x, panel.ymode, 1)};")
        if mark.label:
            anchor, shift = ("north west", "1pt") if right else ("north east", "-1pt")
            lines.append(f"\\node[anchor={anchor}, xshift={shift}, yshift={-1 - 7 * level}pt, "
                         f"font=\\tiny, text={shade}, fill=white, fill opacity=0.75, "
                         f"text opacity=1, inner sep=0.6pt] at {_at(mark.x, panel.ymode, 1)} "
                         f"{{{tex(mark.label)}}};")
    return lines


def _off_axis(panel, placed: grid.Placed, plan: grid.Layout) -> list[str]:
    """A triangle at the axis edge where a series first leaves the axis, with the number of
    its points off the axis; the number goes left of the triangle near the right edge."""
    marks = grid.off_axis_marks(panel)
    spans, lefts = [], []
    for _, x, count, _ in marks:
        where, size = relative(x, placed.x), (6 + 3.2 * len(str(count))) / plan.axis_width
        lefts.append(where > 0.8)
        spans.append((where - size, where + 3 / plan.axis_width) if lefts[-1]
                     else (where - 3 / plan.axis_width, where + size))
    lines = []
    for (index, x, count, side), left, level in zip(marks, lefts, levels(spans), strict=True):
        shade = colour(panel.series[index].colour)
        edge, sign = (0, 1) if side == "below" else (1, -1)
        lift = sign * (0.5 + 6 * level)
        lines.append(f"\\fill[{shade}] {_at(x, panel.ymode, edge)} ++(0pt,{lift:g}pt) -- "
                     f"++(-2.2pt,{sign * 3.8:g}pt) -- ++(4.4pt,0pt) -- cycle;")
        anchor = ("south" if side == "below" else "north") + (" east" if left else " west")
        lines.append(f"\\node[anchor={anchor}, xshift={-2.4 if left else 2.4}pt, "
                     f"yshift={lift:g}pt, font=\\tiny, text={shade}, inner sep=0.3pt] at "
                     f"{_at(x, panel.ymode, edge)} {{{count}}};")
    return lines
