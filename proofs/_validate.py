"""The few argument checks of the proof layer."""

from __future__ import annotations

import math

import sympy as sp


def check_box(box: dict, symbols: list[sp.Symbol]) -> dict[sp.Symbol, tuple[float, float]]:
    """Return ``box`` keyed by symbol, raising unless every symbol has a finite range lo <= hi."""
    by_name = {(k.name if isinstance(k, sp.Symbol) else str(k)): v for k, v in box.items()}
    ranges = {}
    for symbol in symbols:
        if symbol.name not in by_name:
            raise ValueError(f"box has no range for {symbol.name}; give {symbol.name}=(lo, hi)")
        lo, hi = (float(v) for v in by_name[symbol.name])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise ValueError(f"box[{symbol.name!r}]=({lo!r}, {hi!r}) must be a finite range "
                             f"with lo <= hi")
        ranges[symbol] = (lo, hi)
    return ranges
