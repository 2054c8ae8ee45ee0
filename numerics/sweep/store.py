"""The result store (one JSON line per finished cell) and the artifact store (shared setup).

Each line is written, flushed and fsynced as soon as its cell finishes, so a sweep that is killed
loses at most the cell in flight. A torn last line (a kill mid-write) is ignored on reading, and
the cell it held is simply computed again. Only the driver of a sweep writes either store, so
worker processes or machines never race on a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from numerics.errors import InvalidArgument


class ResultStore:
    """Finished cells of sweeps, keyed by the cell's canonical JSON key, in one ``.jsonl`` file.

    ``version`` identifies the code that computed the rows; lines written by other code are
    ignored on reading, so a changed checker never reuses stale cells.
    """

    def __init__(self, path: str | os.PathLike, *, version: str = ""):
        self.path = Path(path)
        self.version = version
        #: how many lines the last :meth:`load` skipped as malformed (not a stored record)
        self.skipped = 0

    @contextmanager
    def lock(self):
        """Hold an advisory lock on the store for the length of a sweep: a second sweep into
        the same store refuses at once, with one line, instead of computing every cell twice."""
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
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self) -> dict[str, list[dict]]:
        """Return ``{key: rows}`` for every complete line on disk (the last one wins)."""
        done: dict[str, list[dict]] = {}
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


def _record(raw: bytes) -> dict | None:
    """A stored line as ``{key, version, rows}``, or ``None`` for anything else (a foreign or
    corrupted line is skipped, and its cell, if any, computed again)."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(record, dict) and isinstance(record.get("key"), str)
            and isinstance(record.get("rows"), list)
            and all(isinstance(row, dict) for row in record["rows"])):
        return None
    return {"key": record["key"], "version": record.get("version", ""), "rows": record["rows"]}


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
