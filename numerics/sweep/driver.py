"""The sweep driver: plans what is left to do, hands tasks to an executor, and alone writes the
stores, so a killed sweep (or a killed worker) loses no finished cell and stores none twice."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from numerics._validate import check_int, check_nonempty
from numerics.sweep.cells import Cell
from numerics.sweep.executors import Executor, ExecutorSpec, executor_spec
from numerics.sweep.store import ArtifactHandle, ArtifactStore, ResultStore

__all__ = ["Sweep", "progress_bars", "run_sweep"]


@dataclass(frozen=True)
class Sweep:
    """A validated grid of cells, the function that evaluates one cell, where results go, and
    the engine that runs it (a spec, or an executor already open that the sweep borrows).
    ``group(params)`` names the shared setup of a cell (``None``: none) and ``prepare(group)``
    computes it: a dict of arrays passed to ``evaluate(params, artifact)``.
    """

    cells: tuple[Cell, ...]
    evaluate: Callable
    store: ResultStore | None = None
    workers: int = 1
    label: str = "sweep"
    executor: ExecutorSpec | Executor = field(default_factory=ExecutorSpec)
    group: Callable[[dict], dict | None] | None = None
    prepare: Callable[[dict], dict] | None = None
    artifacts: ArtifactStore | None = None

    def run(self, *, progress=False) -> list[dict]:
        """Run every cell not yet in the store and return all rows in cell order. ``progress``:
        ``True`` for a bar on stderr, or a running ``rich.progress.Progress`` to add it to."""
        spec = self.executor if isinstance(self.executor, Executor) \
            or self.executor.engine != "serial" or self.workers == 1 \
            else executor_spec(workers=self.workers)
        return run_sweep(self.cells, self.evaluate, store=self.store, executor=spec,
                         progress=progress, label=self.label, group=self.group,
                         prepare=self.prepare, artifacts=self.artifacts)


def run_sweep(
    cells: Sequence[Cell],
    evaluate: Callable,
    *,
    store: ResultStore | None = None,
    workers: int = 1,
    executor: ExecutorSpec | Executor | None = None,
    progress=False,
    label: str = "sweep",
    group: Callable[[dict], dict | None] | None = None,
    prepare: Callable[[dict], dict] | None = None,
    artifacts: ArtifactStore | None = None,
) -> list[dict]:
    """Evaluate every cell (skipping those already in ``store``) and return all rows in cell order.

    Cells run on ``executor`` (default: ``workers`` local processes, or in-process for one): a
    spec, started and stopped here, or an open executor, borrowed and left open. Each finished
    cell is written to ``store`` by this function, before the next result is taken.
    With ``group``/``prepare``, each group's artifact is computed once (skipped if ``artifacts``
    already holds it) and every cell of the group receives it.
    """
    cells = check_nonempty(cells, "cells")
    spec = executor or executor_spec(workers=check_int(workers, "workers", min=1))
    with store.lock() if store is not None else _Nothing():
        return _run(cells, evaluate, store, spec, progress, label, group, prepare, artifacts)


def _run(cells, evaluate, store, spec, progress, label, group, prepare, artifacts) -> list[dict]:
    done = store.load() if store is not None else {}
    if store is not None and store.skipped:
        print(f"theorems: warning: skipped {store.skipped} malformed line"
              f"{'s' if store.skipped != 1 else ''} in {store.path}; their cells, if any, are "
              f"computed again", file=sys.stderr)
    todo = [cell for cell in cells if cell.key not in done]
    results: dict[str, list[dict]] = {cell.key: done[cell.key] for cell in cells
                                      if cell.key in done}
    if prepare is not None and artifacts is None:
        artifacts = ArtifactStore(store.path.parent / f"{store.path.stem}.artifacts"
                                  if store is not None else None)
    version = store.version if store is not None else ""
    groups: dict[str, dict] = {}
    group_of: dict[str, str | None] = {}
    for cell in todo:
        params = group(cell.as_dict()) if group is not None and prepare is not None else None
        key = ArtifactStore.key(label, params, version) if params is not None else None
        group_of[cell.key] = key
        if key is not None:
            groups[key] = params

    if isinstance(spec, Executor):
        engine_of_sweep = _Borrowed(spec)
    else:
        if spec.engine == "processes" and spec.workers > len(todo):
            spec = executor_spec(workers=max(1, len(todo)))  # never more processes than cells
        engine_of_sweep = spec.open() if todo else _Nothing()
    with _Progress(progress, label, total=len(cells), completed=len(cells) - len(todo)) as bar, \
            engine_of_sweep as engine:
        missing = {key: (params,) for key, params in groups.items() if key not in artifacts}
        for key, arrays in (engine.run(prepare, missing) if missing else ()):
            artifacts.save(key, arrays)
        shared = {key: engine.share(artifacts.handle(key)) for key in groups}
        tasks = {cell.key: ((evaluate, cell.as_dict(), shared[group_of[cell.key]])
                            if group_of[cell.key] is not None else (evaluate, cell.as_dict()))
                 for cell in todo}
        for key, (rows, ran) in (engine.run(_evaluate, tasks) if tasks else ()):
            results[key] = rows
            if store is not None:
                store.append(key, rows, ran=ran)
            bar.advance()
    return [row for cell in cells for row in results[cell.key]]


def _evaluate(evaluate: Callable, params: dict, *artifact) -> tuple[list[dict], dict]:
    """Run one cell in a worker, loading its group's artifact there (from a handle) if any;
    return its rows and where and how long it ran (``host:pid`` and wall seconds)."""
    start = time.perf_counter()
    if not artifact:
        rows = evaluate(params)
    else:
        shared = artifact[0]
        rows = evaluate(params, shared.load() if isinstance(shared, ArtifactHandle) else shared)
    return rows, {"worker": f"{socket.gethostname()}:{os.getpid()}",
                  "seconds": round(time.perf_counter() - start, 3)}


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class _Borrowed:
    """An executor someone else opened: used here, closed by its owner."""

    def __init__(self, executor: Executor):
        self.executor = executor

    def __enter__(self) -> Executor:
        return self.executor

    def __exit__(self, *exc):
        return None


def progress_bars():
    """A ``rich.progress.Progress`` on stderr (not started) whose bars vanish when done, shown
    only on a terminal; one per sweep, or one shared by sweeps run side by side (each adds its
    bar)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                    transient=True, redirect_stdout=False, redirect_stderr=False,
                    disable=not console.is_terminal)  # off a terminal: not even a newline


class _Progress:
    """A bar for one sweep: its own (``enabled=True``), none (``False``), or a task added to a
    ``rich.progress.Progress`` already running (several sweeps side by side, one bar each)."""

    def __init__(self, enabled, label: str, *, total: int, completed: int):
        self.enabled, self.label, self.total, self.completed = enabled, label, total, completed
        self._bar = None
        self._owned = not hasattr(enabled, "add_task")

    def __enter__(self) -> _Progress:
        if not self._owned:
            self._bar = self.enabled
        elif self.enabled:
            self._bar = progress_bars()
            self._bar.start()
        if self._bar is not None:
            self._task = self._bar.add_task(self.label, total=self.total,
                                            completed=self.completed)
        return self

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is None:
            return
        if self._owned:
            self._bar.stop()
        else:
            self._bar.remove_task(self._task)
