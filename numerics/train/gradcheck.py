"""Check any hand-written gradient against central differences in fp64.

For a loss ``f`` of parameter arrays ``theta`` and a claimed gradient ``g``, each checked entry
``j`` compares ``g_j`` with ``(f(theta + h e_j) - f(theta - h e_j)) / (2h)`` (error ``O(h^2)``
plus ``O(eps_64 |f| / h)`` of rounding) by the relative error
``|g_j - d_j| / max(|g_j|, |d_j|, floor)``. The difference quotient carries a rounding error of
about ``eps_64 |f| / h`` (``1e-10 |f|`` at ``h = 1e-6``), so entries smaller than ``floor``
(default ``1e-3 max(1, |f(theta)|)``) count by their absolute error over the floor instead; a
wrong gradient still shows as a large error. The check evaluates ``f`` twice per entry, so it is
meant for small problems; ``max_entries`` checks a seeded sample of each array's entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from numerics._repr import short_repr
from numerics._validate import check_int, check_real
from numerics.backend import to_numpy
from numerics.errors import InvalidArgument

__all__ = ["GradCheck", "gradcheck"]


@dataclass(frozen=True)
class GradCheck:
    """The worst entry: its relative error, which parameter (name or position) and index, the
    analytic and the numeric value; ``checked`` entries in all."""

    __repr__ = short_repr  # arrays by shape: the values stay attributes

    max_relative_error: float
    parameter: str | int
    index: tuple[int, ...]
    analytic: float
    numeric: float
    checked: int

    def ok(self, tolerance: float = 1e-6) -> bool:
        """Whether every checked entry agrees to ``tolerance``."""
        return self.max_relative_error <= tolerance

    def __str__(self) -> str:
        return (f"max relative error {self.max_relative_error:.3g} at {self.parameter}"
                f"{list(self.index)}: analytic {self.analytic:.10g}, numeric "
                f"{self.numeric:.10g} ({self.checked} entries)")


def gradcheck(loss: Callable, params, grads, *, step: float = 1e-6, floor: float | None = None,
              max_entries: int | None = None, seed: int = 0) -> GradCheck:
    """Compare ``grads`` with central differences of ``loss`` at ``params``.

    ``params`` and ``grads`` are both sequences or both mappings of arrays (NumPy or CuPy, any
    dtype); ``loss`` receives the same structure holding float64 NumPy arrays and returns a real
    number. Returns the worst entry as a :class:`GradCheck`.
    """
    step = check_real(step, "step", min=0.0, strict_min=True)
    if floor is not None:
        floor = check_real(floor, "floor", min=0.0, strict_min=True)
    seed = check_int(seed, "seed", min=0)
    if max_entries is not None:
        max_entries = check_int(max_entries, "max_entries", min=1)
    named = isinstance(params, Mapping)
    keys = list(params) if named else list(range(len(params)))
    same = (isinstance(grads, Mapping) and set(grads) == set(keys)) if named else (
        not isinstance(grads, Mapping) and len(grads) == len(keys))
    if not same:
        raise InvalidArgument(f"grads has {len(grads)} entries but params has {len(keys)}; pass "
                              f"one gradient per parameter, in the same structure")
    values = {key: to_numpy(params[key], np.float64).copy() for key in keys}
    claimed = {key: to_numpy(grads[key], np.float64) for key in keys}
    for key in keys:
        if claimed[key].shape != values[key].shape:
            raise InvalidArgument(f"grads[{key!r}] has shape {claimed[key].shape}; expected "
                                  f"{values[key].shape}, the shape of params[{key!r}]")

    def evaluate() -> float:
        current = values if named else [values[key] for key in keys]
        return float(loss(current))

    if floor is None:
        floor = 1e-3 * max(1.0, abs(evaluate()))
    rng = np.random.default_rng(seed)
    worst = None
    checked = 0
    for key in keys:
        flat = values[key].reshape(-1)  # a view: perturbing it perturbs values[key]
        entries = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            entries = np.sort(rng.choice(flat.size, max_entries, replace=False))
        for j in entries:
            original = flat[j]
            flat[j] = original + step
            up = evaluate()
            flat[j] = original - step
            down = evaluate()
            flat[j] = original
            numeric = (up - down) / (2 * step)
            analytic = float(claimed[key].reshape(-1)[j])
            error = abs(analytic - numeric) / max(abs(analytic), abs(numeric), floor)
            checked += 1
            if worst is None or error > worst[0]:
                index = tuple(int(i) for i in np.unravel_index(j, values[key].shape))
                worst = (error, key, index, analytic, numeric)
    if worst is None:
        raise InvalidArgument("params hold no entries; pass at least one non-empty array")
    return GradCheck(*worst, checked=checked)
