"""Where a figure's panels go and what their axes show, shared by the pgfplots source and the
matplotlib preview: the grid of panels for a width, the legend groups (consecutive panels whose
series mean the same thing share one legend, placed below them), shared axis ranges, log ticks,
and the points that fall off an axis (zero or negative on a log axis, infinite, NaN).

Lengths are in TeX points. A width's nominal size (the narrowest usual value of
``\\columnwidth`` or ``\\textwidth``) decides the counts: panel columns and ticks, and legend
columns for the matplotlib preview. The ``.tex`` measures the rest in the document's own fonts
(:mod:`theorems._pgfplots`); the room constants below are only its first guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

LEFT = 36.0  # room left of an axis for its tick labels and its y label
GAP = 10.0  # between two axes when the right one shows no y tick labels
RIGHT = 8.0  # the last x tick label reaches past the axis by half its width
TITLE = 16.0  # a one-line \footnotesize title above the axis box
ASPECT = 0.7  # axis height / axis width
MIN_ASPECT = 0.4  # the least, where the figure would be taller than 0.9 \textheight
MIN_AXIS = 60.0  # narrowest axis worth drawing
MAX_COLUMNS = 3
LEGEND_CHAR = 3.6  # average \scriptsize character (3.57pt measured)
LEGEND_IMAGE = 18.0  # a legend image (0.6cm) with its separations (23.5pt with LEGEND_SEP)
LEGEND_SEP = 6.0  # between legend columns
_OPERATORS = {"min", "max", "log", "exp", "sin", "cos", "tanh", "arg", "det", "ln", "rank"}


@dataclass
class Group:
    """Consecutive panels that share one legend (``keys``: (label, style, colour))."""

    members: list[int]
    keys: list[tuple[str, str, int]]


@dataclass
class Axis:
    """One axis's range and its ticks (all explicit: labels, then minor ticks)."""

    mode: str
    base: int = 10  # log axes: ticks at powers of 2 or of 10
    lo: float | None = None
    hi: float | None = None
    ticks: list[float] | None = None
    labels: list[str] | None = None
    minor: list[float] = field(default_factory=list)


@dataclass
class Placed:
    """A panel's place in the grid and what it shows."""

    index: int
    row: int
    col: int
    slot: float  # the column, shifted by half the empty columns of a row that is not full
    x: Axis
    y: Axis
    show_x: bool = True  # x tick labels and x label
    show_y_ticks: bool = True
    show_ylabel: bool = True


@dataclass
class Legend:
    """A group's legend, below ``row``, centred under ``count`` slots from slot ``start``."""

    group: int
    row: int
    start: float
    count: int
    columns: int
    width: float  # estimated, points


@dataclass
class Layout:
    columns: int
    spacing: float  # between axes, nominal: LEFT + GAP where inner axes show y tick labels
    axis_width: float  # nominal
    axis_height: float  # nominal
    rows: list[list[int]]
    placed: list[Placed]
    groups: list[Group]
    legends: list[Legend]


def plottable(value: float, mode: str) -> bool:
    return math.isfinite(value) and (mode != "log" or value > 0)


def layout(panels, nominal_width: float, columns: int | None = None) -> Layout:
    """Place ``panels`` on a grid that fits ``nominal_width`` points."""
    groups = _groups(panels)
    if columns is None:
        columns = _columns(len(panels), nominal_width)
    columns = max(1, min(columns, len(panels)))
    rows, spans = _pack(groups, columns)
    placed = {}
    for r, row in enumerate(rows):
        for c, index in enumerate(row):
            panel = panels[index]
            placed[index] = Placed(index, r, c, c + (columns - len(row)) / 2, Axis(panel.xmode),
                                   Axis(panel.ymode))
    _share(panels, groups, placed, rows)
    spacing = GAP if all(not p.show_y_ticks for p in placed.values() if p.col > 0) else LEFT + GAP
    axis_width = (nominal_width - LEFT - RIGHT - (columns - 1) * spacing) / columns
    axis_height = ASPECT * axis_width
    for p in placed.values():
        _ticks(p.x, max(2, int(axis_width // 24) + 1))
        _ticks(p.y, max(2, int(axis_height // 16) + 1))
    for group in groups:
        # the kinds of points that the triangles stand for (an x off its axis has no place)
        kinds = sorted({kind for i in group.members for *_, kind in off_axis(panels[i])
                        if kind != "x"}, key=list(_KINDS).index)
        if kinds:  # a group without a legend gets one for this
            words = " or ".join(_KINDS[kind] for kind in kinds)
            group.keys.append((f"$k$ points at {words}", "offaxis", 2))
    legends = []
    for g, (row, first, last) in spans.items():
        if not groups[g].keys:
            continue
        alone = all(i in groups[g].members for i in rows[row])
        start = 0 if alone else placed[rows[row][first]].slot
        count = columns if alone else last - first + 1
        span = LEFT + count * axis_width + (count - 1) * spacing
        legends.append(Legend(g, row, start, count, *_legend_columns(groups[g].keys, span)))
    return Layout(columns, spacing, axis_width, axis_height, rows,
                  [placed[i] for i in range(len(panels))], groups, legends)


def legend_keys(panel) -> list[tuple[str, str, int]]:
    """The legend entries a panel asks for: its explicit keys, else its labelled series."""
    if not panel.legend:
        return []
    if panel.key:
        return [(k.label, k.style, k.colour) for k in panel.key]
    keys = []
    for s in panel.series:
        if s.label and (s.label, s.style, s.colour) not in keys:
            keys.append((s.label, s.style, s.colour))
    return keys


#: What puts a point off an axis, as a legend names it.
_KINDS = {"zero": "$0$", "negative": "$< 0$", "infinite": "$\\pm\\infty$", "nan": "NaN",
          "x": ""}


def off_axis(panel) -> list[tuple[int, float, int, str, str]]:
    """Runs of consecutive points of a series that cannot be drawn on the panel's axes, one
    kind per run: (series index, x where the run starts, its length, ``below``/``above``,
    kind: ``zero``, ``negative`` (log axes), ``infinite``, ``nan`` or ``x``)."""
    runs = []
    for i, s in enumerate(panel.series):
        run = None
        for x, y in zip(s.x, s.y, strict=True):
            kind = _kind(x, y, panel)
            if run is not None and kind != run[4]:
                runs.append(tuple(run))
                run = None
            if kind is None:
                continue
            if run is None:
                run = [i, x, 0, "above" if y == math.inf else "below", kind]
            run[2] += 1
        if run is not None:
            runs.append(tuple(run))
    return runs


def off_axis_marks(panel) -> list[tuple[int, float, int, str]]:
    """Per series and edge: (series index, the first x off the axis, how many points are off
    it, ``below``/``above``); points whose x is off its axis are counted, not placed."""
    found: dict[tuple[int, str], list] = {}
    for index, x, count, side, kind in off_axis(panel):
        entry = found.setdefault((index, side), [index, None, 0, side])
        entry[2] += count
        if kind != "x" and entry[1] is None:
            entry[1] = x
    return [tuple(entry) for entry in found.values() if entry[1] is not None]


def _kind(x: float, y: float, panel) -> str | None:
    if not plottable(x, panel.xmode):
        return "x"
    if plottable(y, panel.ymode):
        return None
    if math.isnan(y):
        return "nan"
    if math.isinf(y):
        return "infinite"
    return "zero" if y == 0 else "negative"


def text_width(label: str) -> float:
    """A generous estimate of a label's width in \\scriptsize, in points."""
    visible = re.sub(r"\\([A-Za-z]+)",
                     lambda m: m[1] if m[1] in _OPERATORS else "x", label)
    visible = re.sub(r"[{}$^_\\]", "", visible)
    return LEGEND_CHAR * len(visible)


def _compatible(keys: list, more: list) -> bool:
    meaning = {(style, colour): label for label, style, colour in keys}
    return all(meaning.get((style, colour), label) == label for label, style, colour in more)


def _groups(panels) -> list[Group]:
    groups: list[Group] = []
    for index, panel in enumerate(panels):
        keys = legend_keys(panel)
        last = groups[-1] if groups else None
        same_kind = last is not None and bool(last.keys) == bool(keys)
        explicit = bool(panel.key) or (last is not None and bool(panels[last.members[0]].key))
        joins = same_kind and (keys == last.keys if explicit else _compatible(last.keys, keys))
        if joins:
            last.members.append(index)
            last.keys += [k for k in keys if k not in last.keys]
        else:
            groups.append(Group([index], list(keys)))
    return groups


def _columns(count: int, width: float) -> int:
    best = 1
    for columns in range(1, MAX_COLUMNS + 1):
        # the widest spacing is the safe one for choosing
        axis = (width - LEFT - RIGHT - (columns - 1) * (LEFT + GAP)) / columns
        if axis >= MIN_AXIS:
            best = columns
    return min(best, count)


def _pack(groups: list[Group], columns: int):
    rows: list[list[int]] = []
    spans: dict[int, tuple[int, int, int]] = {}
    current: list[int] = []
    for g, group in enumerate(groups):
        k = len(group.members)
        if current and k > columns - len(current):
            rows.append(current)
            current = []
        if k <= columns - len(current):
            spans[g] = (len(rows), len(current), len(current) + k - 1)
            current += group.members
            if len(current) == columns:
                rows.append(current)
                current = []
        else:
            rows += [group.members[i:i + columns] for i in range(0, k, columns)]
            spans[g] = (len(rows) - 1, 0, columns - 1)
    if current:
        rows.append(current)
    return rows, spans


def _share(panels, groups: list[Group], placed: dict[int, Placed], rows) -> None:
    """Unify ranges across panels that plot the same quantities, and hide repeated labels."""
    parent = list(range(len(panels)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def same_y(i, j):
        return (panels[i].ylabel, panels[i].ymode) == (panels[j].ylabel, panels[j].ymode)

    for group in groups:
        for i in group.members[1:]:
            if same_y(group.members[0], i):
                parent[find(i)] = find(group.members[0])
    for row in rows:
        for left, right in zip(row, row[1:], strict=False):
            if same_y(left, right):
                parent[find(right)] = find(left)
        for left, right in zip(row, row[1:], strict=False):
            if find(left) == find(right):
                placed[right].show_y_ticks = placed[right].show_ylabel = False
    _unify([[i for i in range(len(panels)) if find(i) == root] for root in
            sorted({find(i) for i in range(len(panels))})], panels, placed, "y")
    xsets = []
    for group in groups:
        first = panels[group.members[0]]
        stacked = len({placed[i].row for i in group.members}) > 1
        if stacked and all((panels[i].xlabel, panels[i].xmode) == (first.xlabel, first.xmode)
                           for i in group.members):
            xsets.append(group.members)
            below = {(placed[i].row, placed[i].col): i for i in group.members}
            for i in group.members:
                if (placed[i].row + 1, placed[i].col) in below:
                    placed[i].show_x = False
        else:
            xsets += [[i] for i in group.members]
    _unify(xsets, panels, placed, "x")


def _unify(sets, panels, placed, axis: str) -> None:
    for members in sets:
        mode = getattr(panels[members[0]], f"{axis}mode")
        values = []
        for i in members:
            panel = panels[i]
            for s in panel.series:
                for x, y in zip(s.x, s.y, strict=True):
                    if axis == "x" and plottable(x, mode):  # off-axis points are marked at x
                        values.append(x)
                    elif plottable(x, panel.xmode) and plottable(y, mode):
                        values.append(y)
            if axis == "x":
                values += [mark.x for mark in panel.marks if plottable(mark.x, mode)]
        lo, hi = _limits(values, mode, axis)
        chosen = {panels[i].xbase for i in members} - {0} if axis == "x" else {10}
        powers = values and all(v >= 1 and math.log2(v).is_integer() for v in values)
        base = min(chosen) if chosen else (2 if powers else 10)
        for i in members:
            target = getattr(placed[i], axis)
            target.lo, target.hi, target.base = lo, hi, base


def _legend_columns(keys, span: float) -> tuple[int, float]:
    """As many legend columns as fit ``span`` (balanced), and the legend's estimated width."""
    entry = max(text_width(label) for label, _, _ in keys) + LEGEND_IMAGE + LEGEND_SEP
    columns = max(1, min(len(keys), int(span // entry)))
    rows = math.ceil(len(keys) / columns)
    columns = math.ceil(len(keys) / rows)
    return columns, columns * entry


def _limits(values: list[float], mode: str, axis: str) -> tuple[float, float]:
    if not values:
        return (1.0, 10.0) if mode == "log" else (0.0, 1.0)
    lo, hi = min(values), max(values)
    if mode == "log":
        a, b = math.log10(lo), math.log10(hi)
        pad = max((0.02 if axis == "x" else 0.05) * (b - a), 0.03)
        if b - a < 0.3:
            pad = 0.15
        return 10 ** (a - pad), 10 ** (b + pad)
    if hi == lo:
        return lo - 1.0, hi + 1.0
    pad = (0.02 if axis == "x" else 0.05) * (hi - lo)
    return lo - pad, hi + pad


_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300)


def _ticks(axis: Axis, most: int) -> None:
    """At most ``most`` ticks, explicit (so that TeX's measuring pass sees the labels). Log
    axes: powers of 2 (integer data) or 10, minor ticks at the powers between; linear axes:
    multiples of 1, 2, 2.5 or 5 times a power of ten."""
    if axis.mode != "log":
        _linear_ticks(axis, most)
        return
    lo, hi = axis.lo, axis.hi
    base = axis.base
    first = math.ceil(math.log(lo, base) - 1e-9)
    last = math.floor(math.log(hi, base) + 1e-9)
    if last - first + 1 >= 2:
        for step in _STEPS:
            exponents = [e for e in range(first, last + 1) if e % step == 0]
            if len(exponents) <= most and (len(exponents) >= 2 or step == _STEPS[-1]):
                break
        if len(exponents) < 2:
            exponents = [first, last]
            step = last - first
        axis.ticks = [float(base) ** e for e in exponents]
        axis.labels = [_power_label(base, e, axis.ticks) for e in exponents]
        if step > 1:
            axis.minor = [float(base) ** e for e in range(first, last + 1) if e not in exponents]
        elif base == 10 and last - first <= 4:
            axis.minor = [m * 10.0 ** e for e in range(first - 1, last + 1) for m in range(2, 10)
                          if lo <= m * 10.0 ** e <= hi]
        return
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)))
             for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    if len(ticks) < 2:
        ticks = [lo, hi]
    axis.ticks = ticks
    axis.labels = [f"${_plain(t)}$" for t in ticks]


def _linear_ticks(axis: Axis, most: int) -> None:
    span = axis.hi - axis.lo
    magnitude = 10.0 ** math.floor(math.log10(span / max(most - 1, 1)))
    for factor in (1, 2, 2.5, 5, 10, 20):
        step = factor * magnitude
        first, last = math.ceil(axis.lo / step - 1e-9), math.floor(axis.hi / step + 1e-9)
        if last - first + 1 <= most:
            break
    axis.ticks = [k * step for k in range(first, last + 1)]
    axis.labels = [f"${_plain(0.0 if abs(t) < 1e-9 * step else t)}$" for t in axis.ticks]


def _power_label(base: int, exponent: int, ticks: list[float]) -> str:
    if base == 2 and ticks[-1] <= 1024:
        return f"${2 ** exponent:g}$" if exponent >= 0 else f"$2^{{{exponent}}}$"
    if base == 10 and 1e-2 <= ticks[0] and ticks[-1] <= 1e3:
        return f"${_plain(10.0 ** exponent)}$"
    return f"${base}^{{{exponent}}}$"


def _plain(value: float) -> str:
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}\\cdot 10^{{{int(exponent)}}}"
    return text
