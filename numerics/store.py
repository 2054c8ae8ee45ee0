"""An append-only result store: one JSON line per finished cell.

Each line is written, flushed and fsynced as soon as its cell finishes, so a sweep that is killed
loses at most the cell in flight. A torn last line (a kill mid-write) is ignored on reading, and
the cell it held is simply computed again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class ResultStore:
    """Finished cells of sweeps, keyed by the cell's canonical JSON key, in one ``.jsonl`` file.

    ``version`` identifies the code that computed the rows; lines written by other code are
    ignored on reading, so a changed checker never reuses stale cells.
    """

    def __init__(self, path: str | os.PathLike, *, version: str = ""):
        self.path = Path(path)
        self.version = version

    def load(self) -> dict[str, list[dict]]:
        """Return ``{key: rows}`` for every complete line on disk (the last one wins)."""
        done: dict[str, list[dict]] = {}
        if not self.path.exists():
            return done
        with self.path.open("r", encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break  # torn final write
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("version", "") == self.version:
                    done[record["key"]] = record["rows"]
        return done

    def append(self, key: str, rows: list[dict]) -> None:
        """Write one finished cell durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        record = {"key": key, "version": self.version, "rows": rows}
        line = json.dumps(record, allow_nan=True, default=_plain) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def _drop_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
            data = handle.seek(0) or handle.read()
            handle.truncate(data.rfind(b"\n") + 1)


def _plain(value):
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot store {type(value).__name__} in a result row")
