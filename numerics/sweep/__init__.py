"""Sweeps: a grid of independent cells, run by an executor, stored as each one finishes.

A :class:`Cell` is a dict of plain parameters (size, format, policy, seed and whatever the
theorem adds). ``evaluate(params) -> rows`` must be a module-level function, so that worker
processes and cluster workers can import it. Cells that share setup name a *group*; the group's
arrays are computed once (``prepare``), stored content-addressed beside the rows, and handed to
every cell of the group. Rerunning a sweep into the same store skips the cells (and artifacts)
already there, so an interrupted sweep resumes and every cell ends up present exactly once.
"""

from numerics.sweep.cells import Cell, grid
from numerics.sweep.driver import Sweep, progress_bars, run_sweep
from numerics.sweep.executors import ENGINES, Executor, ExecutorSpec, executor_spec
from numerics.sweep.store import ArtifactStore, ResultStore

__all__ = ["ENGINES", "ArtifactStore", "Cell", "Executor", "ExecutorSpec", "ResultStore",
           "Sweep", "executor_spec", "grid", "progress_bars", "run_sweep"]
