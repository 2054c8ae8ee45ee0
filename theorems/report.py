"""Reports: the rows of a sweep (one per cell and quantity), a verdict each, and a summary table.

Every row carries at least ``theorem``, ``format``, ``policy``, ``verdict`` (``holds``,
``violated`` or ``precision-effect``) and ``mechanism`` (empty unless a precision effect), as
:func:`theorems.verdicts.judge` writes them. A report is ``ok`` when no row is violated and every
precision effect names a mechanism whose predicate its evidence satisfies (not ``unexplained``).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from html import escape
from pathlib import Path

from theorems.verdicts import MECHANISMS, UNEXPLAINED

__all__ = ["ROW_KEYS", "Report", "SHOWN_VIOLATIONS", "VERDICTS"]


VERDICTS = ("holds", "violated", "precision-effect")
#: The violated rows a printed report lists in full (the rest are counted).
SHOWN_VIOLATIONS = 5
#: Every row has at least these columns (the judge writes the last four).
ROW_KEYS = ("theorem", "format", "policy", "quantity", "verdict", "mechanism")


@dataclass(frozen=True)
class Report:
    """The result of :meth:`Theorem.check`: ``rows`` (dicts), ``ok``, and a table when printed."""

    theorem: str
    rows: list[dict]

    def __post_init__(self):
        for index, row in enumerate(self.rows):
            missing = [key for key in ROW_KEYS if key not in row]
            if missing or row["verdict"] not in VERDICTS:
                problem = (f"lacks {', '.join(missing)}" if missing
                           else f"has verdict={row['verdict']!r}")
                raise ValueError(f"{self.theorem}: row {index} {problem}; every row needs "
                                 f"{', '.join(ROW_KEYS)} with a verdict in "
                                 f"{', '.join(VERDICTS)} (build rows with theorems.verdicts.judge)")

    @property
    def counts(self) -> dict[str, int]:
        tally = Counter(row["verdict"] for row in self.rows)
        return {verdict: tally.get(verdict, 0) for verdict in VERDICTS}

    @property
    def ok(self) -> bool:
        return all(
            row["verdict"] == "holds"
            or (row["verdict"] == "precision-effect" and row.get("mechanism")
                and row["mechanism"] != UNEXPLAINED)
            for row in self.rows
        )

    @property
    def violations(self) -> list[dict]:
        return [row for row in self.rows if row["verdict"] == "violated"]

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the rows as a tidy CSV (one row per cell and quantity) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns: list[str] = []
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        # written beside the target and renamed over it: a kill never leaves half a CSV
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                                 suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(self.rows)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        return path

    def summary_rows(self) -> list[dict]:
        """One row per (format, policy): verdict counts, mechanisms and the smallest margins
        (in ulps and relative) among the rows that hold."""
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for row in self.rows:
            groups[(row["format"], row["policy"])].append(row)
        table = []
        for (fmt, policy), rows in groups.items():
            tally = Counter(row["verdict"] for row in rows)
            mechanisms = sorted({row["mechanism"] for row in rows if row.get("mechanism")})
            held = [row for row in rows if row["verdict"] == "holds"]
            ulps = [row["margin_ulps"] for row in held if row.get("margin_ulps") is not None]
            rel = [row["margin_rel"] for row in held if row.get("margin_rel") is not None]
            table.append({
                "format": fmt, "policy": policy, "rows": len(rows),
                "holds": tally["holds"], "precision-effect": tally["precision-effect"],
                "violated": tally["violated"], "mechanisms": ", ".join(mechanisms),
                "min margin_ulps": min(ulps) if ulps else None,
                "min margin_rel": min(rel) if rel else None,
                "within tolerance": sum(1 for row in held
                                        if (row.get("margin_ulps") or 0) < 0),
            })
        return table

    def __str__(self) -> str:
        header = ["format", "policy", "rows", "holds", "precision-effect", "violated",
                  "min margin_ulps", "min margin_rel", "within tolerance", "mechanisms"]
        body = [[_cell(row[h]) for h in header] for row in self.summary_rows()]
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        lines = [f"{self.theorem}: {len(self.rows)} rows; "
                 + ", ".join(f"{v} {k}" for k, v in self.counts.items())
                 + ("" if self.ok else "  NOT OK")]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
        lines.append(self.key())
        for row in self.violations[:SHOWN_VIOLATIONS]:
            lines.append("violated: " + ", ".join(f"{k}={_cell(v)}" for k, v in row.items()))
        hidden = len(self.violations) - SHOWN_VIOLATIONS
        if hidden > 0:
            lines.append(f"... and {hidden} more violated rows (every row is in the CSV, "
                         f"Report.violations in Python)")
        return "\n".join(line.rstrip() for line in lines)

    def key(self) -> str:
        """What the summary's columns and this report's mechanisms mean: one line each."""
        seen = {row.get("mechanism") for row in self.rows}
        entries = [
            ("min margin_ulps", "the smallest distance from the bound among rows that hold, in "
             "ulps of the format at the bound; positive on the side where the claim holds, "
             "negative where a row holds within its rounding tolerance (the observed value "
             "passes the bound by less than the row's tolerance_ulps; the exact value meets "
             "it)"),
            ("min margin_rel", "the same distance over |bound|"),
            ("within tolerance", "how many rows hold that way (negative margin)"),
            *((m.name, m.meaning) for m in MECHANISMS if m.name in seen),
        ]
        if UNEXPLAINED in seen:
            entries.append((UNEXPLAINED, "no mechanism's predicate holds (fails the run)"))
        width = max(len(name) for name, _ in entries)
        return "\n".join(["key:", *(f"  {name.ljust(width)}  {meaning}"
                                    for name, meaning in entries)])

    def __repr__(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        return f"<Report {self.theorem}: {counts}>"

    def _repr_html_(self) -> str:
        """The summary as an HTML table (one row per format and policy), its key, and the
        first violations; the rows themselves are ``report.rows``."""
        summary = self.summary_rows()
        columns = list(dict.fromkeys(key for row in summary for key in row))
        head = "".join(f"<th>{escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{escape(_cell(row.get(c)))}</td>" for c in columns)
                       + "</tr>" for row in summary)
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        verdict = "ok" if self.ok else "<b>NOT OK</b>"
        violations = "".join(
            f"<li>{escape(', '.join(f'{k}={_cell(v)}' for k, v in row.items()))}</li>"
            for row in self.violations[:SHOWN_VIOLATIONS])
        return (f"<div><p><b>{escape(self.theorem)}</b>: {len(self.rows)} rows; "
                f"{escape(counts)}; {verdict}</p><table><tr>{head}</tr>{body}</table>"
                f"<details><summary>key</summary><pre>{escape(self.key())}</pre></details>"
                + (f"<p>violated:</p><ul>{violations}</ul>" if violations else "") + "</div>")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
