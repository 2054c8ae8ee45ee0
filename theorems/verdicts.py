"""The one judge of a row: ``holds``, ``violated`` or ``precision-effect``, and why.

Every theorem builds its rows through :func:`judge`. A row compares an ``observed`` value
(computed in the row's format and policy) with a ``bound`` under a ``relation``, next to the
``exact`` value of the same stored input (high precision; ``None`` when the observed value is
itself exact):

- ``holds``: the observed value meets the bound within ``tolerance_ulps`` (ulps of the format at
  the bound; strict relations get no tolerance) and the exact value meets it;
- ``violated``: the exact value breaks the bound: a real counterexample, even where the
  observed value happens to meet it;
- ``precision-effect``: only the finite-precision value breaks it. The mechanism is the first of
  :data:`MECHANISMS` whose predicate holds on the row's own numbers and measured evidence;
  when none does, the mechanism is ``unexplained`` and the report fails.

Margins come in two units, one column each: ``margin_ulps`` (distance from the bound in ulps of
the format at the bound) and ``margin_rel`` (distance over ``|bound|``); both are positive on the
side where the claim holds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

from numerics import get_format
from numerics.errors import InvalidArgument

__all__ = ["KEY", "MECHANISMS", "MECHANISM_NAMES", "Mechanism", "RELATIONS", "UNEXPLAINED",
    "judge", "mechanism_holds", "tightenable", "tightened"]


RELATIONS = ("<=", ">=", "<", ">")
UNEXPLAINED = "unexplained"


@dataclass(frozen=True)
class Mechanism:
    """A named precision mechanism, the evidence it reads, and its predicate on a row."""

    name: str
    meaning: str
    evidence: tuple[str, ...]
    predicate: Callable[[dict], bool]


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


MECHANISMS: tuple[Mechanism, ...] = (
    # evidence-specific mechanisms first: each needs a column measured on its own row
    Mechanism("noise floor",
              "the format's rounding-noise floor hides singular values above the rank "
              "threshold (floor_cut: how many)",
              ("floor_cut",), lambda r: _finite(r["observed"]) and _finite(r.get("floor_cut"))
              and r["floor_cut"] > 0),
    Mechanism("update absorption",
              "most stored weights no longer change: the optimiser's updates round away "
              "(frozen_share: the share the last step left bitwise unchanged)",
              ("frozen_share",),
              lambda r: _finite(r["observed"]) and _finite(r.get("frozen_share"))
              and r["frozen_share"] > 0.5),
    Mechanism("rounding to equality",
              "the two compared states are bitwise equal although their exact gap is positive",
              ("bitwise_equal",),
              lambda r: r.get("bitwise_equal") is True and _finite(r["exact"])
              and r["exact"] != 0),
    Mechanism("optimiser eps underflow",
              "training diverged after a step whose Adam eps is stored as 0 in the format, so "
              "a zero second moment divides 0 by 0 (adam_eps_stored, diverged_at)",
              ("adam_eps_stored", "diverged_at"),
              lambda r: r.get("adam_eps_stored") == 0 and _finite(r.get("diverged_at"))
              and r["diverged_at"] >= 1 and not _finite(r["observed"])),
    Mechanism("overflow", "the observed value is infinite or NaN where the exact one is finite",
              (), lambda r: not _finite(r["observed"]) and _finite(r["exact"])),
    Mechanism("storage rounding",
              "the inputs as stored in the format already break the bound in exact arithmetic "
              "(stored_exact: the exact value from the stored inputs)",
              ("stored_exact",), lambda r: _finite(r.get("stored_exact"))
              and not _exact_holds(r["stored_exact"], r["bound"], r["relation"] in ("<=", "<"),
                                   r["relation"] in ("<", ">"), 1e-12)),
    Mechanism("underflow", "the observed value is exactly zero where the exact one is not",
              (), lambda r: r["observed"] == 0 and _finite(r["exact"]) and r["exact"] != 0),
    Mechanism("rounding to one", "the observed value is exactly one where the exact one is not",
              (), lambda r: r["observed"] == 1 and _finite(r["exact"]) and r["exact"] != 1),
    Mechanism("accumulation stagnation",
              "a running in-format sum absorbs a nonzero term whole (stall_index: where)",
              ("stall_index",), lambda r: r.get("stall_index") is not None),
    Mechanism("accumulation rounding",
              "the in-format sum is off by more than one ulp without stalling "
              "(sum_error_ulps: by how much)",
              ("sum_error_ulps",),
              lambda r: r.get("stall_index") is None and _finite(r.get("sum_error_ulps"))
              and r["sum_error_ulps"] > 1),
    Mechanism("objective floor",
              "an iterative solver's objective stops within the rounding floor its format "
              "predicts for the stored iterate (objective_floor: that floor; floor_excess: "
              "by how much the objective passes the bound)",
              ("objective_floor", "floor_excess"),
              lambda r: _finite(r.get("objective_floor")) and _finite(r.get("floor_excess"))
              and 0 < r["floor_excess"] <= r["objective_floor"]),
    Mechanism("subnormal output", "the observed value is subnormal in the format",
              (), lambda r: _finite(r["observed"]) and r["observed"] != 0
              and abs(r["observed"]) < get_format(r["format"]).smallest_normal),
)
MECHANISM_NAMES = tuple(m.name for m in MECHANISMS)

_TIGHTENED: dict[str, float] = {}


@contextlib.contextmanager
def tightened(quantity: str, fraction: float = 0.01):
    """Within the block, rows of ``quantity`` are judged against a bound ``fraction`` tighter.

    The mutation audit uses this to ask whether a checker notices a bound 1% past the truth.
    """
    previous = _TIGHTENED.get(quantity)
    _TIGHTENED[quantity] = fraction
    try:
        yield
    finally:
        if previous is None:
            _TIGHTENED.pop(quantity, None)
        else:
            _TIGHTENED[quantity] = previous


def tightenable(relation: str, bound) -> bool:
    """Whether a row's bound can be made tighter by a fraction: a nonzero finite bound."""
    return relation in RELATIONS and _finite(bound) and bound != 0


def judge(
    *,
    quantity: str,
    observed,
    exact,
    bound,
    relation: str,
    format: str,
    tolerance_ulps: float = 0.0,
    exact_rtol: float = 1e-12,
    evidence: dict | None = None,
) -> dict:
    """Return the verdict columns of one row: ``quantity``, ``observed``, ``exact``, ``bound``,
    ``relation``, ``margin_ulps``, ``margin_rel``, ``tolerance_ulps``, ``verdict``,
    ``mechanism`` and the evidence (each evidence key its own column)."""
    if relation not in RELATIONS:
        raise InvalidArgument(f"relation={relation!r}; expected one of "
                              f"{', '.join(RELATIONS)}")
    fmt = get_format(format)
    observed, exact, bound = _plain(observed), _plain(exact), _plain(bound)
    if exact is None:  # the observed value was computed exactly (mpmath, fp64 of exact data)
        exact = observed
    evidence = {key: _plain(value) for key, value in (evidence or {}).items()}
    fraction = _TIGHTENED.get(quantity)
    if fraction is not None and tightenable(relation, bound):
        bound = bound - fraction * abs(bound) if relation in ("<=", "<") \
            else bound + fraction * abs(bound)
    upper = relation in ("<=", "<")
    strict = relation in ("<", ">")
    ulp = float(fmt.ulp(bound)) if _finite(bound) else math.nan
    if _finite(observed) and _finite(bound):
        signed = (bound - observed) if upper else (observed - bound)
        margin_ulps = signed / ulp
        margin_rel = signed / abs(bound) if bound != 0 else None
        holds = margin_ulps > 0 if strict else margin_ulps >= -tolerance_ulps
    else:
        margin_ulps = margin_rel = None
        holds = False
    row = {"quantity": quantity, "observed": observed, "exact": exact, "bound": bound,
           "relation": relation, "margin_ulps": margin_ulps, "margin_rel": margin_rel,
           "tolerance_ulps": tolerance_ulps, **evidence}
    exact_holds = _exact_holds(exact, bound, upper, strict, exact_rtol)
    if holds and (exact_holds or not (_finite(exact) and _finite(bound))):
        return {**row, "verdict": "holds", "mechanism": ""}
    if not exact_holds:
        # the exact value breaks the bound: a counterexample, whatever the rounded value (or
        # the tolerance) says
        return {**row, "verdict": "violated", "mechanism": ""}
    facts = {**row, "format": fmt.name}
    mechanism = next((m.name for m in MECHANISMS if m.predicate(facts)), UNEXPLAINED)
    return {**row, "verdict": "precision-effect", "mechanism": mechanism}


def mechanism_holds(row: dict) -> bool:
    """Re-test a stored row's mechanism predicate on the row's own columns."""
    match = next((m for m in MECHANISMS if m.name == row.get("mechanism")), None)
    return match is not None and bool(match.predicate(row))


def _exact_holds(exact, bound, upper: bool, strict: bool, rtol: float) -> bool:
    if not (_finite(exact) and _finite(bound)):
        return False
    slack = rtol * max(abs(bound), abs(exact))
    if upper:
        return exact < bound if strict else exact <= bound + slack
    return exact > bound if strict else exact >= bound - slack


def _plain(value):
    """A Python scalar for NumPy/CuPy scalars and 0-d arrays (so rows print and serialise)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            return value
    return value


KEY = (
    "margin_ulps: distance from the bound in ulps of the format at the bound; "
    "margin_rel: the same distance over |bound|; both positive where the claim holds. "
    "Mechanisms: " + "; ".join(f"{m.name}: {m.meaning}" for m in MECHANISMS)
    + f"; {UNEXPLAINED}: no mechanism's predicate holds on the row (the run fails)."
)
