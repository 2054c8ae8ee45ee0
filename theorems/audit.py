"""The mutation audit: would a green run notice if the paper's numbers were wrong?

Two kinds of mutation, each applied alone:

- every paper quantity of the theorem's :class:`proofs.quantities.Quantities` table (constants
  by ±1%, exponents and indices by ±1, signs negated): the derivation is rebuilt and the audit
  grid re-run with the mutation in force. It is caught when a step stops being checked, the goal
  is no longer discharged, a printed statement is no longer shown wrong, a row is violated, or
  the check refuses the mutated number with :class:`numerics.errors.InvalidArgument` (a rate
  that is no longer positive, say). Any other exception from the mutated check is a bug and
  propagates, naming the mutation;
- every numeric bound (each ``quantity`` of the rows whose bound is a nonzero number), made 1%
  tighter: caught when the rows' exact values break it (a ``violated`` row).

A mutation that leaves the statement true is listed with the reason its quantity gives
(``Quantity.exempt``) or the theorem gives (``Theorem.audit_exempt``), and counts as an exception,
not a miss.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass

from numerics._validate import check_int
from numerics.errors import InvalidArgument
from theorems.verdicts import judge, tightenable

__all__ = ["Audit", "AuditEntry", "TIGHTER", "run_audit"]


TIGHTER = 0.01


@dataclass(frozen=True)
class AuditEntry:
    """One mutation and what caught it (``by``), or why it is exempt."""

    mutation: str
    kind: str  # "quantity" or "bound"
    caught: bool
    by: str
    exempt: str = ""

    @property
    def status(self) -> str:
        if self.caught:
            return "caught"
        return "exempt" if self.exempt else "MISSED"


@dataclass(frozen=True)
class Audit:
    """The result of :meth:`Theorem.audit`: one entry per mutation."""

    theorem: str
    entries: tuple[AuditEntry, ...]

    @property
    def missed(self) -> list[AuditEntry]:
        return [e for e in self.entries if e.status == "MISSED"]

    @property
    def ok(self) -> bool:
        """Every mutation caught, or exempt with a reason."""
        return not self.missed

    @property
    def counts(self) -> dict[str, int]:
        tally = Counter(e.status for e in self.entries)
        return {status: tally.get(status, 0) for status in ("caught", "exempt", "MISSED")}

    def __str__(self) -> str:
        width = max((len(e.mutation) for e in self.entries), default=8)
        lines = [f"{self.theorem}: mutation audit, {len(self.entries)} mutations"]
        for e in self.entries:
            reason = e.by if e.caught else (e.exempt or e.by)
            lines.append(f"  {e.mutation:<{width}}  {e.kind:<8}  {e.status:<6}  {reason}")
        counts = self.counts
        lines.append(f"  {counts['caught']} caught, {counts['exempt']} exempt (statement still "
                     f"true), {counts['MISSED']} missed")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Audit {self.theorem}: " + ", ".join(
            f"{v} {k.lower()}" for k, v in self.counts.items()) + ">"


def run_audit(theorem, *, quantities: bool = True, bounds: bool = True,
              workers: int = 1) -> Audit:
    """Audit ``theorem`` (see the module docstring); raise if the unmutated run is not green.
    ``workers`` > 1 runs the unmutated baseline and the mutations on that many worker
    processes (each alone in one, the theorem passed to it by pickling), ``1`` in this process
    one after another."""
    from numerics.sweep import ExecutorSpec

    workers = check_int(workers, "workers", min=1, max=1024)
    if workers > 1:
        _check_sendable(theorem)
    table = theorem.quantities
    mutations = list(table.mutations()) if quantities and table is not None else []
    tasks = {index: (theorem, index) for index in [None, *range(len(mutations))]}
    spec = ExecutorSpec("processes" if workers > 1 else "serial", min(workers, len(tasks)))
    outcomes = {}
    with spec.open(preload=[type(theorem).__module__]) as pool:
        for index, outcome in pool.run(_outcome, tasks):
            if index is None and (not outcome.ok or outcome.violated):
                raise ValueError(f"{theorem.name}: the unmutated derivation or audit grid is "
                                 f"not green; an audit needs a green baseline")
            outcomes[index] = outcome
    base = outcomes.pop(None)
    entries = []
    for index, mutation in enumerate(mutations):
        exempt = mutation.exempt or theorem.audit_exempt.get(str(mutation), "")
        by = _caught_by(outcomes[index], base.goal)
        entries.append(AuditEntry(str(mutation), "quantity", bool(by), by or "not caught",
                                  exempt))
    if bounds:
        for quantity in dict.fromkeys(r["quantity"] for r in base.rows
                                      if tightenable(r.get("relation", ""), r.get("bound"))):
            name = f"{quantity} {TIGHTER:.0%} tighter"
            rows = [r for r in base.rows if r["quantity"] == quantity]
            violated = sum(_tighter(r)["verdict"] == "violated" for r in rows)
            by = f"{violated} of {len(rows)} rows violated" if violated else ""
            entries.append(AuditEntry(name, "bound", bool(violated), by or "no row violated",
                                      theorem.audit_exempt.get(name, "")))
    return Audit(theorem.name, tuple(entries))


def _check_sendable(theorem) -> None:
    """A worker process receives ``theorem`` pickled and imports its class by name: a class
    defined in ``__main__`` (a script, a notebook) or inside a function cannot be sent."""
    import pickle

    cls = type(theorem)
    try:
        pickle.dumps(theorem)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise InvalidArgument(f"workers > 1 sends {cls.__qualname__} to worker processes, and "
                              f"it cannot be pickled ({exc}); define it in a module or use "
                              f"workers=1") from None
    if cls.__module__ == "__main__":
        raise InvalidArgument(f"workers > 1 needs {cls.__qualname__} importable by worker "
                              f"processes, and it is defined in __main__; define it in a "
                              f"module or use workers=1")


@dataclass(frozen=True)
class _Outcome:
    """What a derivation and audit grid showed: the steps not checked, whether the derivation
    is ok and a goal discharged, the printed statements not shown wrong, the violated rows per
    quantity (the three most frequent), the check's refusal, if any, and (for the unmutated
    baseline only) the rows."""

    broken: tuple[str, ...]
    ok: bool
    goal: bool
    unshown: tuple[str, ...]
    violated: tuple[tuple[str, int], ...]
    crash: str
    rows: tuple = ()


def _outcome(theorem, index: int | None) -> _Outcome:
    """The theorem's derivation and audit grid, unmutated (``index`` ``None``) or under the
    ``index``-th mutation of its table (run where the executor puts it: here or a worker)."""
    table = theorem.quantities
    mutation = None if index is None else list(table.mutations())[index]
    with table.mutated(mutation) if mutation is not None else contextlib.nullcontext():
        derivation = theorem.derive()
        try:
            rows = theorem.check(**theorem.audit_grid()).rows
            crash = ""
        except InvalidArgument as exc:
            if mutation is None:
                raise
            rows, crash = [], f"the check refused it: {exc}"
        except Exception as exc:
            if mutation is None:
                raise
            raise RuntimeError(f"{theorem.name}: the check crashed under the mutation "
                               f"{mutation}: {type(exc).__name__}: {exc}") from exc
    violated = Counter(r["quantity"] for r in rows if r["verdict"] == "violated")
    return _Outcome(tuple(r.label for r in derivation.steps if r.status != "checked"),
                    derivation.ok, derivation.goal_step is not None,
                    tuple(r.label for r in derivation.printed if r.status != "failed"),
                    tuple(violated.most_common(3)), crash,
                    tuple(rows) if mutation is None else ())


def _caught_by(outcome: _Outcome, base_goal: bool) -> str:
    reasons = []
    if outcome.broken:
        shown = ", ".join(f"({label})" for label in outcome.broken[:4])
        more = f" and {len(outcome.broken) - 4} more" if len(outcome.broken) > 4 else ""
        reasons.append(f"steps {shown}{more}")
    if base_goal and not outcome.goal:
        reasons.append("goal not discharged")
    if outcome.unshown:
        reasons.append("printed " + ", ".join(f"({label})" for label in outcome.unshown)
                       + " no longer shown wrong")
    if outcome.violated:
        reasons.append("rows " + ", ".join(f"{q} x{c}" for q, c in outcome.violated))
    if outcome.crash:
        reasons.append(outcome.crash)
    return "; ".join(reasons)


def _tighter(row: dict) -> dict:
    bound = row["bound"]
    upper = row["relation"] in ("<=", "<")
    bound = bound - TIGHTER * abs(bound) if upper else bound + TIGHTER * abs(bound)
    return judge(quantity=row["quantity"], observed=row["observed"], exact=row["exact"],
                 bound=bound, relation=row["relation"], format=row["format"],
                 tolerance_ulps=row.get("tolerance_ulps") or 0.0)
