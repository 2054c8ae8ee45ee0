"""The representational-collapse figure: the gap against ``n`` per format, Prop. B.8's bound
against position for several depths, Theorem B.5's bound against the fixed-attention Jacobian,
and Fig. 9 (Lemma B.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from numerics import FORMAT_NAMES, get_format
from numerics.representational_collapse import (
    FIG9_K,
    FIG9_NOISE,
    TOKEN,
    collapse_model,
    collapse_statistics,
    distinct_rows,
    equal_rows,
    family_prefix,
    state_gaps,
)
from numerics.representational_collapse.branches import branch_forward
from numerics.representational_collapse.oversquashing import (
    oversquashing_bound_values,
    oversquashing_model,
    oversquashing_terms,
)
from numerics.representational_collapse.softmax_pairs import fig9_logits, softmax_pair_tv
from proofs.representational_collapse import PAPER
from theorems.figures import Key, Mark, Panel, Series, check_width, write_figure
from theorems.representational_collapse.rows import paper

__all__ = ["DEPTH_COLOURS", "DEPTH_KEY", "FIGURE_DEPTHS", "FIGURE_FAMILIES", "GAP_KEY", "write"]


#: The figure's families and the depths of its Prop. B.8 panel.
FIGURE_FAMILIES = ("repeated", "sampled")
FIGURE_DEPTHS = (1, 2, 4, 8, 16)


def write(out_dir: Path, name: str, *, quick: bool, width: str = "columnwidth"):
    """Write the figure's ``.tex``, data CSV and ``.pdf`` into ``out_dir`` at ``width``."""
    width = check_width(width)  # before the work
    return write_figure(out_dir, name, _panels(quick), width=width)


def _panels(quick: bool) -> list[Panel]:
    if quick not in _PANELS:  # drawing the figure at another width reuses its data
        size, d = (512, 16) if quick else (2048, 64)
        _PANELS[quick] = [*_gap_panels(size, d), _depth_panel(32), _jacobian_panel(),
                          _fig9_panel(2**12 if quick else 2**16)]
    return _PANELS[quick]


_PANELS: dict[bool, list[Panel]] = {}
#: The gap panels' legend: colour is the family, the style what was computed.
GAP_KEY = (Key("repeated token", "line", 0), Key("sampled tokens", "line", 1),
           Key("in the format (hw)", "marks"), Key("exact (fp64)", "line"),
           Key("unit roundoff $u$", "dashed"), Key("bitwise equal onwards", "vline"))
#: The depth panels' legend: colour is the depth, the style bound or measurement.
DEPTH_COLOURS = (0, 1, 3, 4, 5)  # not black: black is the key's colour for the styles
DEPTH_KEY = (*(Key(f"$L = {depth}$", "line", colour)
               for colour, depth in zip(DEPTH_COLOURS, FIGURE_DEPTHS, strict=True)),
             Key("bound", "line"), Key("Jacobian, measured", "marks"))


def _gap_panels(size: int, d: int) -> list[Panel]:
    model = collapse_model(d=d, layers=1, pe="nope", seed=0)
    # from n = 2: at n = 1 the gap is 0 for both families, exact and in every format
    lengths = np.unique(np.round(np.geomspace(2, size, 160)).astype(int))  # a readable .tex
    index = lengths - 1
    prefixes = {family: family_prefix(family, size) for family in FIGURE_FAMILIES}
    exact = {family: branch_forward(model, prefix, TOKEN) for family, prefix in prefixes.items()}
    panels = []
    for fmt_name in FORMAT_NAMES:
        fmt, series, marks = get_format(fmt_name), [], []
        for colour, family in enumerate(FIGURE_FAMILIES):
            run = branch_forward(model, prefixes[family], TOKEN, fmt=fmt, policy="hw")
            gaps = state_gaps(run.short, run.long, "max")
            series.append(Series(f"{family}, {fmt_name}", tuple(lengths), tuple(gaps[index]),
                                 "marks", colour))
            reference = state_gaps(exact[family].short, exact[family].long, "max")
            series.append(Series(f"{family}, exact", tuple(lengths), tuple(reference[index]),
                                 "line", colour))
            found = collapse_statistics(equal_rows(run.short, run.long),
                                        distinct_rows(exact[family].short, exact[family].long))
            if found["stable"] is not None:
                marks.append(Mark("", float(found["stable"]), colour))
        series.append(Series("unit roundoff $u$", (float(lengths[0]), float(size)),
                             (fmt.unit_roundoff, fmt.unit_roundoff), "dashed", 2))
        panels.append(Panel(f"{fmt_name} (hw)", "$n$", r"$\|v_n - v^*_{n+1}\|_\infty$",
                            tuple(series), marks=tuple(marks), key=GAP_KEY, xbase=2))
    return panels


def _depth_panel(size: int) -> Panel:
    """Prop. B.8: uniform causal attention, beta1 = beta2 = sigma_psi = 1, beta3 = 4^L, so the
    bound is ``(((Lambda + I)/2)^L)_{n,i}``."""
    rows = np.arange(1, size + 1)
    uniform = np.tril(np.ones((size, size))) / rows[:, None]
    series, bounds = [], paper()
    root = PAPER.value("b8.beta3_root")
    for colour, depth in zip(DEPTH_COLOURS, FIGURE_DEPTHS, strict=True):
        bound = oversquashing_bound_values([uniform] * depth, np.ones(depth), np.ones(depth),
                                           root**depth, np.ones(depth), abar=bounds.abar,
                                           constant=bounds.constant)
        series.append(Series(f"$L = {depth}$", tuple(rows), tuple(bound), "line", colour))
    return Panel("Prop. B.8", "position $i$", r"$\|\partial y_n/\partial v_i\|$",
                 tuple(series), xmode="normal", key=DEPTH_KEY)


def _jacobian_panel() -> Panel:
    series, bounds = [], paper()
    for colour, depth in zip(DEPTH_COLOURS, (1, 2), strict=False):
        model, tokens = oversquashing_model(layers=depth, pe="nope", seed=0)
        terms = oversquashing_terms(model, tokens)
        bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                           terms["beta2"], terms["beta3"], terms["sigma_psi"],
                                           abar=bounds.abar, constant=bounds.constant)
        norms = np.linalg.norm(terms["jacobian"], 2, axis=(1, 2))
        positions = tuple(range(1, len(bound) + 1))
        series += [Series(f"Thm B.5, $L = {depth}$", positions, tuple(bound), "line", colour),
                   Series(f"Jacobian, $L = {depth}$", positions, tuple(norms), "marks", colour)]
    return Panel("Thm B.5", "position $i$",
                 r"$\|\partial y_n/\partial v_i^{(0)}\|_2$", tuple(series), xmode="normal",
                 key=DEPTH_KEY)


def _fig9_panel(size: int) -> Panel:
    lengths = np.array(sorted({int(round(2 ** (j / 2))) for j in range(2, 2 * size.bit_length())
                               if 2 ** (j / 2) <= size}))
    bounds, tvs, limits = paper(), [], []
    for seed in range(5):
        pair = fig9_logits(size, k=FIG9_K, noise=FIG9_NOISE, seed=seed)
        tvs.append(softmax_pair_tv(pair, lengths, "fp64", "hw")["observed"])
        change = np.cumsum(np.abs(pair[1] - pair[0]))[lengths - 1]
        top = np.maximum.accumulate(np.maximum(np.abs(pair[0]), np.abs(pair[1])))[lengths - 1]
        limits.append(bounds.b2(lengths.astype(np.float64), top, change))
    mean, bound = np.mean(tvs, axis=0), np.mean(limits, axis=0)
    return Panel("Fig. 9, Lemma B.2", "$n$", r"$\sum_i |y_i - y^*_i|$",
                 (Series("mean of 5 seeds", tuple(lengths), tuple(mean), "marks", 0),
                  Series("Lemma B.2 bound", tuple(lengths), tuple(np.minimum(bound, 2.0)),
                         "dashed", 1)), xbase=2)
