"""Cells: one point of a sweep grid, as plain JSON-serialisable parameters."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

from numerics._validate import check_nonempty

__all__ = ["Cell", "grid"]


@dataclass(frozen=True)
class Cell:
    """One point of a sweep grid: plain, JSON-serialisable parameters."""

    params: tuple[tuple[str, object], ...]

    @classmethod
    def of(cls, **params) -> Cell:
        """Return the cell with these parameters, in the order given."""
        return cls(tuple(params.items()))

    @property
    def key(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True)

    def as_dict(self) -> dict:
        """Return the parameters as a dict, in the cell's order (what ``evaluate`` receives)."""
        return dict(self.params)


def grid(**axes: Sequence) -> list[Cell]:
    """Return the Cartesian product of the named axes as cells (last axis varies fastest)."""
    names = list(axes)
    values = [check_nonempty(axes[name], name) for name in names]
    return [Cell(tuple(zip(names, combo, strict=True))) for combo in product(*values)]
