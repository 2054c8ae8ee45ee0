"""Interval certification: prove ``f(params) >= 0`` (or ``> 0``) over a parameter box.

The box is bisected; on each sub-box ``f`` is enclosed with ball arithmetic
(:mod:`proofs.intervals`). A sub-box is accepted when the enclosure's lower end is certainly
non-negative (positive for a strict claim). A point where ``f`` is certainly negative refutes the
claim and is returned as the witness. Boxes still open after ``max_boxes`` evaluations, or
narrower than ``min_width``, make the answer ``unknown`` and are returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy as sp
from flint import arb

from proofs import notation
from proofs._validate import check_box
from proofs.intervals import Interval, Undecided, Unsupported, evaluate

__all__ = ["STATUSES", "Certificate", "certify", "conjunction"]

STATUSES = ("proved", "refuted", "unknown")


@dataclass(frozen=True)
class Certificate:
    """The outcome of :func:`certify`: proved, refuted (with a witness) or unknown."""

    claim: sp.Basic
    box: dict[str, tuple[float, float]]
    status: str
    boxes: int
    witness: dict[str, float] | None = None
    value_at_witness: float | None = None
    open_boxes: tuple[dict[str, tuple[float, float]], ...] = field(default=())
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "proved"

    def __str__(self) -> str:
        region = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in self.box.items())
        text = f"{self.status}: {notation.text(self.claim)}  over  {region}  ({self.boxes} boxes)"
        if self.witness is not None:
            point = ", ".join(f"{k}={v:.6g}" for k, v in self.witness.items())
            text += f"; witness {point} gives {self.value_at_witness:.6g}"
        if self.status == "unknown":
            text += f"; {len(self.open_boxes)} boxes open"
            if self.detail:
                text += f" ({self.detail})"
        return text

    def __repr__(self) -> str:
        return f"<Certificate {self.status}: {notation.text(self.claim)} ({self.boxes} boxes)>"

    def _region_latex(self) -> str:
        return r",\ ".join(rf"{notation.latex(sp.Symbol(k))} \in [{lo:g}, {hi:g}]"
                           for k, (lo, hi) in self.box.items())

    def _repr_latex_(self) -> str:
        return (f"$${notation.latex(self.claim)} \\quad \\text{{for }} {self._region_latex()}"
                f" \\qquad \\text{{{self.status} ({self.boxes} boxes)}}$$")

    def _repr_html_(self) -> str:
        esc = notation.html_escape
        rows = [("claim", f"${esc(notation.latex(self.claim))}$"),
                ("over", f"${esc(self._region_latex())}$"),
                ("status", f"<b>{esc(self.status)}</b> after {self.boxes} boxes")]
        if self.witness is not None:
            point = ", ".join(f"{k} = {v:.6g}" for k, v in self.witness.items())
            rows.append(("witness", esc(f"{point}, where lhs - rhs = "
                                        f"{self.value_at_witness:.6g}")))
        if self.status == "unknown":
            rows.append(("open", esc(f"{len(self.open_boxes)} boxes" + (f": {self.detail}"
                                                                        if self.detail else ""))))
        body = "".join(f"<tr><td style='text-align:left'>{name}</td>"
                       f"<td style='text-align:left'>{value}</td></tr>" for name, value in rows)
        return f"<table>{body}</table>"


def certify(
    claim: sp.Basic,
    box: dict[sp.Symbol | str, tuple[float, float]],
    *,
    max_boxes: int = 20_000,
    min_width: float = 1e-12,
) -> Certificate:
    """Certify ``claim`` (a relational, or an expression meaning ``expr >= 0``) over ``box``.

    ``box`` maps each free symbol to a closed range ``(lo, hi)``. A range whose ratio ``hi/lo``
    exceeds 4 on the positive axis is split geometrically, so wide size ranges bisect evenly.
    """
    claim = sp.sympify(claim)
    if isinstance(claim, sp.And):
        parts = [certify(part, box, max_boxes=max_boxes, min_width=min_width)
                 for part in claim.args]
        worst = next((p for p in parts if p.status == "refuted"),
                     next((p for p in parts if p.status == "unknown"), parts[0]))
        return Certificate(claim, worst.box, worst.status, sum(p.boxes for p in parts),
                           worst.witness, worst.value_at_witness, worst.open_boxes, worst.detail)
    f, strict = _as_nonnegative(claim)
    # The factored form is algebraically equal but often free of the cancellation that makes a
    # naive enclosure too wide near a point where the claim is tight.
    forms = [f, sp.factor(sp.together(f))]
    if f.is_polynomial():
        forms.append(sp.horner(sp.expand(f)))
    symbols = sorted(f.free_symbols, key=lambda s: s.name)
    ranges = check_box(box, symbols)
    names = {s: s.name for s in symbols}
    shown = {names[s]: ranges[s] for s in symbols}
    queue = [ranges]
    count = 0
    open_boxes: list[dict] = []
    reason = ""
    while queue:
        current = queue.pop()
        count += 1
        env = {s: _interval(*current[s]) for s in symbols}
        accepted = False
        for form in forms:
            try:
                enclosure = evaluate(form, env)
            except Undecided as exc:
                reason = str(exc)
                continue
            except Unsupported as exc:
                return Certificate(claim, shown, "unknown", count, detail=str(exc),
                                   open_boxes=(shown,))
            if enclosure.is_positive() if strict else enclosure.is_nonnegative():
                accepted = True
                break
        if accepted:
            continue
        for point in _probe_points(current, symbols):
            value = _value_at(f, point)
            if value is not None and (value < 0 or (strict and value == 0)):
                witness = {names[s]: float(point[s]) for s in symbols}
                return Certificate(claim, shown, "refuted", count, witness, float(value))
        if count >= max_boxes or _width(current) < min_width:
            open_boxes.append({names[s]: current[s] for s in symbols})
            open_boxes.extend({names[s]: b[s] for s in symbols} for b in queue)
            break
        queue.extend(_bisect(current))
    status = "unknown" if open_boxes else "proved"
    return Certificate(claim, shown, status, count, open_boxes=tuple(open_boxes[:20]),
                       detail=reason if open_boxes else "")


def _as_nonnegative(claim: sp.Basic) -> tuple[sp.Expr, bool]:
    if isinstance(claim, sp.GreaterThan | sp.StrictGreaterThan):
        return claim.lhs - claim.rhs, isinstance(claim, sp.StrictGreaterThan)
    if isinstance(claim, sp.LessThan | sp.StrictLessThan):
        return claim.rhs - claim.lhs, isinstance(claim, sp.StrictLessThan)
    if isinstance(claim, sp.Expr):
        return claim, False
    raise TypeError(f"expected an inequality or an expression but got claim={claim!r}")


def _interval(lo: float, hi: float) -> Interval:
    return Interval(arb(lo), arb(hi))


def _width(ranges: dict) -> float:
    return max(hi - lo for lo, hi in ranges.values())


def _bisect(ranges: dict) -> list[dict]:
    def spread(item):
        lo, hi = item[1]
        return math.log(hi / lo) if lo > 0 and hi / lo > 4 else (hi - lo) / max(1.0, abs(lo))

    symbol, (lo, hi) = max(ranges.items(), key=spread)
    mid = math.sqrt(lo * hi) if lo > 0 and hi / lo > 4 else (lo + hi) / 2
    return [{**ranges, symbol: (lo, mid)}, {**ranges, symbol: (mid, hi)}]


def _probe_points(ranges: dict, symbols: list) -> list[dict]:
    middle = {s: (ranges[s][0] + ranges[s][1]) / 2 for s in symbols}
    low = {s: ranges[s][0] for s in symbols}
    high = {s: ranges[s][1] for s in symbols}
    return [middle, low, high]


def _value_at(f: sp.Expr, point: dict):
    try:
        enclosure = evaluate(f, {s: Interval.point(arb(v)) for s, v in point.items()})
    except (Undecided, Unsupported):
        return None
    if enclosure.is_negative():
        return float(enclosure.hi.mid())
    if enclosure.is_positive():
        return float(enclosure.lo.mid())
    if enclosure.is_nonnegative() and bool(enclosure.upper <= 0):
        return 0.0  # exactly zero, which refutes a strict claim
    return None


def conjunction(certificates: list[Certificate]) -> Certificate:
    """Combine certificates of several claims (each over its own box) into one for their ``And``.

    Proved when every part is; otherwise the first refuted part, else the first unknown one, gives
    the status, witness and open boxes. Boxes are counted over all parts.
    """
    if not certificates:
        raise ValueError("certificates=[] is empty; give at least one certificate")
    worst = next((c for c in certificates if c.status == "refuted"),
                 next((c for c in certificates if c.status == "unknown"), certificates[0]))
    box: dict[str, tuple[float, float]] = {}
    for certificate in certificates:
        for name, (lo, hi) in certificate.box.items():
            old = box.get(name, (lo, hi))
            box[name] = (min(old[0], lo), max(old[1], hi))
    return Certificate(sp.And(*(c.claim for c in certificates)), box, worst.status,
                       sum(c.boxes for c in certificates), worst.witness, worst.value_at_witness,
                       worst.open_boxes, worst.detail)
