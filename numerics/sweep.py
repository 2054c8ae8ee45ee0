"""Sweeps: a grid of independent cells, run in worker processes, stored as each one finishes.

A :class:`Cell` is a dict of plain parameters (size, format, policy, seed and whatever the
theorem adds). ``evaluate(params) -> rows`` must be a module-level function, so that worker
processes can import it. Rerunning a sweep into the same store skips the cells already there, so
an interrupted sweep resumes and every cell ends up present exactly once.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import product

from numerics._validate import check_int, check_nonempty
from numerics.store import ResultStore


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


@dataclass(frozen=True)
class Sweep:
    """A validated grid of cells, the function that evaluates one cell, and where results go."""

    cells: tuple[Cell, ...]
    evaluate: Callable[[dict], list[dict]]
    store: ResultStore | None = None
    workers: int = 1
    label: str = "sweep"

    def run(self, *, progress: bool = False) -> list[dict]:
        """Run every cell not yet in the store and return all rows in cell order."""
        return run_sweep(self.cells, self.evaluate, store=self.store, workers=self.workers,
                         progress=progress, label=self.label)


def grid(**axes: Sequence) -> list[Cell]:
    """Return the Cartesian product of the named axes as cells (last axis varies fastest)."""
    names = list(axes)
    values = [check_nonempty(axes[name], name) for name in names]
    return [Cell(tuple(zip(names, combo, strict=True))) for combo in product(*values)]


def run_sweep(
    cells: Sequence[Cell],
    evaluate: Callable[[dict], list[dict]],
    *,
    store: ResultStore | None = None,
    workers: int = 1,
    progress: bool = False,
    label: str = "sweep",
) -> list[dict]:
    """Evaluate every cell (skipping those already in ``store``) and return all rows in cell order.

    With ``workers > 1`` cells run in that many spawned processes. Each finished cell is written
    to ``store`` before the next result is awaited.
    """
    cells = check_nonempty(cells, "cells")
    workers = check_int(workers, "workers", min=1)
    done = store.load() if store is not None else {}
    todo = [cell for cell in cells if cell.key not in done]
    results: dict[str, list[dict]] = {cell.key: done[cell.key] for cell in cells
                                      if cell.key in done}

    def finish(cell: Cell, rows: list[dict]) -> None:
        results[cell.key] = rows
        if store is not None:
            store.append(cell.key, rows)

    with _Progress(progress, label, total=len(cells), completed=len(cells) - len(todo)) as bar:
        if workers == 1 or len(todo) <= 1:
            for cell in todo:
                finish(cell, evaluate(cell.as_dict()))
                bar.advance()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                pending = {pool.submit(evaluate, cell.as_dict()): cell for cell in todo}
                try:
                    while pending:
                        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in finished:
                            finish(pending.pop(future), future.result())
                            bar.advance()
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    return [row for cell in cells for row in results[cell.key]]


class _Progress:
    def __init__(self, enabled: bool, label: str, *, total: int, completed: int):
        self.enabled, self.label, self.total, self.completed = enabled, label, total, completed
        self._bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self._bar = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=Console(stderr=True), transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total,
                                            completed=self.completed)
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
