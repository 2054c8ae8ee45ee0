"""The result store (one JSON line per finished cell) and the artifact store (shared setup).

Durability of the result store: each line is written and flushed to the operating system as soon
as its cell finishes, so a sweep whose process dies (an exception, Ctrl-C, SIGTERM, even SIGKILL)
loses at most the cells in flight. Reaching the disk itself (``fsync``) is batched while a sweep
holds the store (:meth:`ResultStore.lock`): at most every ``sync_interval`` seconds (1 s by
default, also when no further cell finishes), and always when the sweep ends, however it ends
(returning, raising, or interrupted by SIGINT or SIGTERM, which the command line turns into an
exception). Only a crash of the machine itself (power loss, a kernel panic) can lose the cells of
the last interval. An :meth:`~ResultStore.append` outside a sweep is fsynced at once.

A torn last line (a kill mid-write) is ignored on reading, and the cell it held is simply
computed again. Only the driver of a sweep writes either store, so worker processes or machines
never race on a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from numerics.errors import InvalidArgument

__all__ = ["ArtifactHandle", "ArtifactStore", "ResultStore", "StoreBusy", "load_npz", "pack_tree",
    "unpack_tree"]


class ResultStore:
    """Finished cells of sweeps, keyed by the cell's canonical JSON key, in one ``.jsonl`` file.

    ``version`` identifies the code that computed the rows; lines written by other code are
    ignored on reading, so a changed checker never reuses stale cells. ``sync_interval`` is the
    longest a written line waits for its fsync during a sweep (see the module docstring).
    """

    def __init__(self, path: str | os.PathLike, *, version: str = "",
                 sync_interval: float = 1.0):
        self.path = Path(path)
        self.version = version
        self.sync_interval = sync_interval
        #: how many lines the last :meth:`load` skipped as malformed (not a stored record)
        self.skipped = 0
        self._batching = False  # inside lock(): fsyncs are batched
        self._unsynced = False  # lines written since the last fsync
        self._last_sync = 0.0
        self._timer: threading.Timer | None = None
        self._sync_lock = threading.Lock()

    @contextmanager
    def lock(self):
        """Hold an advisory lock on the store for the length of a sweep: a second sweep into
        the same store refuses at once, with one line, instead of computing every cell twice.
        While it is held, fsyncs are batched; leaving it (however) syncs what is pending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise StoreBusy(f"{self.path} is being written by another run (pid {holder}); "
                                f"wait for it to finish or pass another --out") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._batching, self._last_sync = True, time.monotonic()
            try:
                yield self
            finally:
                try:
                    self.sync()
                finally:
                    with self._sync_lock:
                        self._batching = False
                        if self._timer is not None:
                            self._timer.cancel()
                            self._timer = None
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> dict[str, list[dict]]:
        """Return ``{key: rows}`` for every complete line on disk (the last one wins)."""
        return {key: record["rows"] for key, record in self._records().items()}

    def ran(self) -> dict[str, dict]:
        """Return ``{key: {"worker": "host:pid", "seconds": s}}`` for every stored cell of this
        version whose driver recorded where it ran (cells stored without it are left out)."""
        return {key: record["ran"] for key, record in self._records().items()
                if isinstance(record.get("ran"), dict)}

    def _records(self) -> dict[str, dict]:
        done: dict[str, dict] = {}
        if not self.path.exists():
            return done
        self.skipped = 0
        with self.path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # torn final write
                record = _record(raw)
                if record is None:
                    self.skipped += 1
                elif record["version"] == self.version:
                    done[record["key"]] = record
        return done

    def append(self, key: str, rows: list[dict], *, ran: dict | None = None) -> None:
        """Write one finished cell and flush it to the operating system; fsync it at once
        outside a sweep, within ``sync_interval`` seconds inside one. ``ran`` (where and how
        long the cell ran: ``{"worker": "host:pid", "seconds": s}``) is kept beside the rows,
        never in them, so rows do not depend on the executor; :meth:`ran` reads it back."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        record = {"key": key, "version": self.version, "rows": rows}
        if ran is not None:
            record["ran"] = ran
        line = json.dumps(record, allow_nan=True, default=_plain) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            with self._sync_lock:
                self._unsynced = True
            due = self._last_sync + self.sync_interval - time.monotonic()
            if not self._batching or due <= 0:
                self._sync(handle.fileno())
                return
        with self._sync_lock:
            if self._timer is None:  # a cell may be the last for a while: sync it in time
                self._timer = threading.Timer(due, self._sync_later)
                self._timer.daemon = True
                self._timer.start()

    def sync(self) -> None:
        """Fsync every line written so far (a no-op when nothing is pending)."""
        if not self._unsynced:
            return
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            self._sync(descriptor)
        finally:
            os.close(descriptor)

    def _sync_later(self) -> None:
        with self._sync_lock:
            if self._timer is threading.current_thread():
                self._timer = None  # the next line written may start another
        with contextlib.suppress(OSError):  # still pending: the next sync retries and reports it
            self.sync()

    def _sync(self, descriptor: int) -> None:
        with self._sync_lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._unsynced:
                os.fsync(descriptor)
                self._unsynced = False
                self._last_sync = time.monotonic()

    def _drop_torn_tail(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":
                return
            data = handle.seek(0) or handle.read()
            handle.truncate(data.rfind(b"\n") + 1)


def _record(raw: bytes) -> dict | None:
    """A stored line as ``{key, version, rows[, ran]}``, or ``None`` for anything else (a foreign or
    corrupted line is skipped, and its cell, if any, computed again)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("key"), str)
            and isinstance(record.get("rows"), list)
            and all(isinstance(row, dict) for row in record["rows"])):
        return None
    kept = {"key": record["key"], "version": record.get("version", ""), "rows": record["rows"]}
    if isinstance(record.get("ran"), dict):
        kept["ran"] = record["ran"]
    return kept


def _plain(value):
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"cannot store {type(value).__name__} in a result row")


class StoreBusy(InvalidArgument):
    """Another run holds the store's lock."""


class ArtifactStore:
    """Arrays shared by a group of cells (an fp64 reference, a dataset, trained weights), one
    ``.npz`` per group, named by the hash of what computes it (content-addressed).

    With ``directory=None`` the artifacts live in memory for the life of the store.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else None
        self._memory: dict[str, dict[str, np.ndarray]] = {}

    @staticmethod
    def key(label: str, group: dict, version: str = "") -> str:
        """The content address of a group's artifact: a hash of the sweep, the group's
        parameters and the code version."""
        text = json.dumps({"label": label, "group": group, "version": version}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def path(self, key: str) -> Path | None:
        """Where the artifact ``key`` lives on disk (``None`` in memory)."""
        return self.directory / f"{key}.npz" if self.directory is not None else None

    def __contains__(self, key: str) -> bool:
        path = self.path(key)
        return key in self._memory or (path is not None and path.exists())

    def save(self, key: str, arrays: dict) -> None:
        """Store ``arrays`` (a dict of arrays) under ``key``, atomically on disk."""
        arrays = {name: np.asarray(value) for name, value in arrays.items()}
        path = self.path(key)
        if path is None:
            self._memory[key] = arrays
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)  # a kill leaves no half-written artifact behind
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def load(self, key: str) -> dict[str, np.ndarray]:
        """The arrays stored under ``key``."""
        if key in self._memory:
            return self._memory[key]
        return load_npz(self.path(key))

    def handle(self, key: str) -> ArtifactHandle:
        """A small picklable stand-in for the artifact ``key`` that a worker on this machine
        loads when its task runs (:meth:`ArtifactHandle.load`), so a sweep never holds more
        than the artifacts its running cells need."""
        path = self.path(key)
        return ArtifactHandle(key, str(path) if path is not None else None,
                              self._memory.get(key))


class ArtifactHandle:
    """The artifact of one group: a path to load in the worker, or the arrays themselves."""

    def __init__(self, key: str, path: str | None, arrays: dict | None = None):
        self.key, self.path, self.arrays = key, path, arrays

    def load(self) -> dict[str, np.ndarray]:
        if self.arrays is not None:
            return self.arrays
        return _load_cached(self.path)


def load_npz(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


_LAST: dict[str, dict] = {}


def _load_cached(path: str) -> dict[str, np.ndarray]:
    # a worker usually runs the cells of one group in a row: keep the last artifact it loaded
    if path not in _LAST:
        _LAST.clear()
        _LAST[path] = load_npz(path)
    return _LAST[path]


def pack_tree(tree) -> dict[str, np.ndarray]:
    """A nested structure of dicts (string keys), lists, arrays and JSON scalars as a flat dict
    of arrays that :meth:`ArtifactStore.save` can write; :func:`unpack_tree` inverts it."""
    arrays: dict[str, np.ndarray] = {}

    def skeleton(node, path: str):
        if isinstance(node, dict):
            if not all(isinstance(k, str) for k in node):
                raise TypeError(f"{path or 'the tree'}: only string keys can be packed")
            return {"dict": {k: skeleton(v, f"{path}/{k}") for k, v in node.items()}}
        if isinstance(node, (list, tuple)):
            return {"list": [skeleton(v, f"{path}/{i}") for i, v in enumerate(node)]}
        if isinstance(node, np.ndarray):
            arrays[path] = node
            return {"array": path}
        if node is None or isinstance(node, (bool, int, float, str)):
            return {"value": node}
        if isinstance(node, np.generic):
            return {"value": node.item()}
        raise TypeError(f"{path or 'the tree'}: cannot pack {type(node).__name__}")

    arrays["__tree__"] = np.array(json.dumps(skeleton(tree, "")))
    return arrays


def unpack_tree(arrays: dict[str, np.ndarray]):
    """The structure that :func:`pack_tree` packed into ``arrays``."""

    def build(node):
        if "dict" in node:
            return {k: build(v) for k, v in node["dict"].items()}
        if "list" in node:
            return [build(v) for v in node["list"]]
        if "array" in node:
            return arrays[node["array"]]
        return node["value"]

    return build(json.loads(str(arrays["__tree__"])))
