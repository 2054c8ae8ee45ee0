"""Executors: where a sweep's tasks run. One interface, three engines.

- ``serial``: in this process, in order;
- ``processes``: a local pool of spawned worker processes (``--workers N``);
- ``dask``: a Dask distributed cluster, either a ``LocalCluster`` of N worker processes started for
  the sweep (``--dask N``) or an existing one (``--scheduler tcp://host:8786``). Needs the
  ``distributed`` extra. Dask reschedules the task of a worker that dies mid-cell.

An executor runs ``function(*arguments)`` for a dict of tasks and yields ``(token, result)`` as
each finishes, in any order. It never writes results anywhere: the sweep's driver is the only
writer of the store, so an interrupted or distributed sweep keeps the store's guarantees.

A sweep given an :class:`ExecutorSpec` starts its executor and stops it when done. A sweep given
an executor already open (``with spec.open() as pool``) borrows it and leaves it running, so
several sweeps (``theorems verify``) share one pool of workers, each of which imports the
theorems' code once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass

from numerics._validate import InvalidArgument, check_int

__all__ = ["DaskExecutor", "ENGINES", "Executor", "ExecutorSpec", "ProcessExecutor",
    "SerialExecutor", "executor_spec"]


ENGINES = ("serial", "processes", "dask")


@dataclass(frozen=True)
class ExecutorSpec:
    """Plain data naming an engine and its size, so a sweep can be planned (and validated)
    before any process or cluster is started."""

    engine: str = "serial"
    workers: int = 1
    scheduler: str | None = None

    def open(self, *, preload: Sequence[str] = ()) -> Executor:
        """The executor this spec names, to enter as a context manager. With ``preload`` (the
        modules holding the sweeps' ``evaluate``), local worker processes start as it is entered
        rather than at its first task, and import those modules while this process works."""
        if self.engine == "serial" or (self.engine == "processes" and self.workers == 1):
            return SerialExecutor()
        if self.engine == "processes":
            return ProcessExecutor(self.workers, preload=tuple(preload))
        return DaskExecutor(workers=self.workers, scheduler=self.scheduler)


def executor_spec(*, workers: int = 1, dask: int | None = None,
                  scheduler: str | None = None) -> ExecutorSpec:
    """Validate the engine arguments of a sweep: at most one of ``dask`` and ``scheduler``."""
    workers = check_int(workers, "workers", min=1, max=1024)
    if dask is not None and scheduler is not None:
        raise InvalidArgument("give either dask=N (a local cluster) or scheduler=ADDRESS "
                              "(an existing one), not both")
    if dask is not None or scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise InvalidArgument("the Dask engine needs the distributed extra; install it with "
                                  "pip install 'theorems[distributed]'") from None
        if scheduler is not None:
            if not isinstance(scheduler, str) or "://" not in scheduler:
                raise InvalidArgument(f"scheduler={scheduler!r} is not an address; expected "
                                      f"one such as tcp://host:8786")
            return ExecutorSpec("dask", 0, scheduler)
        return ExecutorSpec("dask", check_int(dask, "dask", min=1, max=1024))
    return ExecutorSpec("processes" if workers > 1 else "serial", workers)


class Executor(ABC):
    """Runs tasks; a context manager that owns its workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def share(self, value):
        """A handle to ``value`` that tasks can take as an argument (sent once where possible)."""
        return value

    @abstractmethod
    def run(self, function: Callable, tasks: dict) -> Iterator[tuple[object, object]]:
        """Yield ``(token, function(*tasks[token]))`` for every task, as each one finishes."""


class SerialExecutor(Executor):
    """In this process, in order."""

    def run(self, function, tasks):
        for token, arguments in tasks.items():
            yield token, function(*arguments)


class ProcessExecutor(Executor):
    """A pool of ``workers`` spawned processes on this machine."""

    def __init__(self, workers: int, *, preload: tuple[str, ...] = ()):
        self.workers = workers
        self.preload = preload
        self._pool = None
        self._stopped = threading.Event()

    def __enter__(self):
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                         initializer=_start_worker,
                                         initargs=(os.getpid(), threads, self.preload))
        if self.preload:  # start every worker now: they import while this process works
            for _ in range(self.workers):
                self._pool.submit(_identity, None)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # interrupted or failed: stop the cells in flight now
            self._stopped.set()
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def run(self, function, tasks):
        pending = {self._pool.submit(function, *arguments): token
                   for token, arguments in tasks.items()}
        # no cancel() of the rest when a sweep stops early: a sweep stops on an error or an
        # interrupt, which ends the pool too (``__exit__`` terminates its workers), and under
        # Python 3.11 the pool's manager thread raises InvalidStateError when it fails a future
        # already cancelled
        while pending:
            # a sweep run from another thread (``theorems verify``) is not told when the pool
            # is stopped under it: the futures of terminated workers may never finish
            finished, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if not finished and self._stopped.is_set():
                raise RuntimeError("the pool was stopped before these cells finished")
            for future in finished:
                yield pending.pop(future), future.result()


#: The glibc setting Dask's nannies give their workers that a local cluster here leaves unset.
TRIM = "MALLOC_TRIM_THRESHOLD_"
#: How the workers started here allocate: glibc maps each array above 32 MiB afresh and returns
#: it to the kernel when freed, so a cell at n = 2^23 page-faults every temporary anew (a quarter
#: of a full softmax-dispersion grid's CPU time was the kernel's); these workers take arrays up to
#: 1 GiB from the heap and keep freed memory there for the next one (``mallopt``, or the same
#: settings as environment variables for Dask's nannies).
LARGE_HEAP = {"MALLOC_MMAP_THRESHOLD_": 1 << 30, "MALLOC_TRIM_THRESHOLD_": 1 << 30}


class DaskExecutor(Executor):
    """A Dask distributed cluster: a ``LocalCluster`` of ``workers`` single-threaded processes,
    or the cluster at ``scheduler``."""

    def __init__(self, *, workers: int = 0, scheduler: str | None = None):
        self.workers, self.scheduler = workers, scheduler
        self._client = self._cluster = None

    def __enter__(self):
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self._client = Client(self.scheduler, timeout="10s")
            except OSError as exc:
                raise OSError(f"cannot reach the Dask scheduler at {self.scheduler}: "
                              f"{exc}") from None
        else:
            import dask

            # Dask starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off
            # glibc's adaptive mmap threshold: every array above 128 KiB is then mapped afresh
            # and page-faulted on each allocation (14x the faults, 2.5x the time of a training
            # step measured here). Workers keep the one-thread BLAS settings and glibc's default.
            environ = {key: value for key, value in
                       dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                       if key != TRIM}
            environ.update({key: str(value) for key, value in LARGE_HEAP.items()})
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                             processes=True, dashboard_address=None)
            self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc):
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()

    def share(self, value):
        if value is None:
            return None
        # the arrays themselves (the cluster's workers may not see this machine's disk), as a
        # task rather than scattered data: if the worker holding them dies, the scheduler
        # recomputes them from the graph instead of cancelling every cell that needs them
        return self._client.submit(_identity, value.load() if hasattr(value, "load") else value,
                                   pure=False)

    def run(self, function, tasks):
        from distributed import as_completed

        futures = {self._client.submit(function, *arguments, pure=False): token
                   for token, arguments in tasks.items()}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            self._client.cancel(list(futures))
            raise


def _identity(value):
    return value


def _start_worker(parent: int, threads: int, preload: tuple[str, ...] = ()) -> None:
    """Run in each pool worker: tie its life to the parent's (:func:`_die_with_parent`), give
    its BLAS and OpenMP pools ``threads`` threads, the cores divided among the workers, and
    import ``preload``. Left at one thread per core each, N workers run N x cores threads that
    spin against each other: a sweep of matrix products on 2 workers and 2 cores then advances
    at a fraction of the speed."""
    _die_with_parent(parent)
    _keep_large_allocations()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    for module in preload:
        with contextlib.suppress(Exception):  # the first task that needs it reports the failure
            importlib.import_module(module)


def _keep_large_allocations() -> None:
    """Apply :data:`LARGE_HEAP` to this process where its C library is glibc (a no-op
    elsewhere)."""
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return
    for option, name in ((-3, "MALLOC_MMAP_THRESHOLD_"), (-1, "MALLOC_TRIM_THRESHOLD_")):
        mallopt(ctypes.c_int(option), ctypes.c_int(LARGE_HEAP[name]))  # M_MMAP_, M_TRIM_


def _libc():
    """This process's C library (raises ``OSError`` where there is none to load)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent(parent: int) -> None:
    """Run in each pool worker: end it when the sweep's process dies (even by SIGKILL), which
    would otherwise leave it computing an orphaned cell. Linux delivers SIGTERM on the parent's
    death (``PR_SET_PDEATHSIG``); elsewhere a thread polls the parent's pid."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the call above took effect
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
