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

from collections import Counter
from dataclasses import dataclass

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


def run_audit(theorem, *, quantities: bool = True, bounds: bool = True) -> Audit:
    """Audit ``theorem`` (see the module docstring); raise if the unmutated run is not green."""
    base_derivation = theorem.derive()
    base_rows = theorem.check(**theorem.audit_grid()).rows
    if not base_derivation.ok or any(r["verdict"] == "violated" for r in base_rows):
        raise ValueError(f"{theorem.name}: the unmutated derivation or audit grid is not green; "
                         f"an audit needs a green baseline")
    entries = []
    table = theorem.quantities
    if quantities and table is not None:
        for mutation in table.mutations():
            with table.mutated(mutation):
                derivation = theorem.derive()
                try:
                    rows = theorem.check(**theorem.audit_grid()).rows
                    crash = ""
                except InvalidArgument as exc:
                    rows, crash = [], f"the check refused it: {exc}"
                except Exception as exc:
                    raise RuntimeError(f"{theorem.name}: the check crashed under the mutation "
                                       f"{mutation}: {type(exc).__name__}: {exc}") from exc
            exempt = mutation.exempt or theorem.audit_exempt.get(str(mutation), "")
            by = "; ".join(filter(None, [_caught_by(derivation, base_derivation, rows), crash]))
            entries.append(AuditEntry(str(mutation), "quantity", bool(by), by or "not caught",
                                      exempt))
    if bounds:
        for quantity in dict.fromkeys(r["quantity"] for r in base_rows
                                      if tightenable(r.get("relation", ""), r.get("bound"))):
            name = f"{quantity} {TIGHTER:.0%} tighter"
            rows = [r for r in base_rows if r["quantity"] == quantity]
            violated = sum(_tighter(r)["verdict"] == "violated" for r in rows)
            by = f"{violated} of {len(rows)} rows violated" if violated else ""
            entries.append(AuditEntry(name, "bound", bool(violated), by or "no row violated",
                                      theorem.audit_exempt.get(name, "")))
    return Audit(theorem.name, tuple(entries))


def _caught_by(derivation, base, rows) -> str:
    reasons = []
    broken = [r.label for r in derivation.steps if r.status != "checked"]
    if broken:
        shown = ", ".join(f"({label})" for label in broken[:4])
        more = f" and {len(broken) - 4} more" if len(broken) > 4 else ""
        reasons.append(f"steps {shown}{more}")
    if derivation.goal_step is None and base.goal_step is not None:
        reasons.append("goal not discharged")
    unshown = [r.label for r in derivation.printed if r.status != "failed"]
    if unshown:
        reasons.append("printed " + ", ".join(f"({label})" for label in unshown) + " no longer "
                       "shown wrong")
    violated = Counter(r["quantity"] for r in rows if r["verdict"] == "violated")
    if violated:
        reasons.append("rows " + ", ".join(f"{q} x{c}" for q, c in violated.most_common(3)))
    return "; ".join(reasons)


def _tighter(row: dict) -> dict:
    bound = row["bound"]
    upper = row["relation"] in ("<=", "<")
    bound = bound - TIGHTER * abs(bound) if upper else bound + TIGHTER * abs(bound)
    return judge(quantity=row["quantity"], observed=row["observed"], exact=row["exact"],
                 bound=bound, relation=row["relation"], format=row["format"],
                 tolerance_ulps=row.get("tolerance_ulps") or 0.0)
