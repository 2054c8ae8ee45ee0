"""The derivation cache: a checked derivation kept on disk, so that ``theorems verify`` does not
check the same SymPy steps again on every run.

An entry is keyed by the source of the theorem's ``proofs`` module and of every project module it
imports (:func:`theorems._theorem.import_closure`), the source of the theorem's ``derive``, and
the versions of Python, SymPy, mpmath and python-flint: editing any of them misses the cache and
checks the derivation again. The cache lives in ``$THEOREMS_CACHE``, else
``$XDG_CACHE_HOME/theorems``, else ``~/.cache/theorems``; ``THEOREMS_CACHE=off`` turns it off.
Entries are written to a temporary file and renamed into place, so processes running at once
never read half an entry; an entry that cannot be read (truncated, corrupted, from another
SymPy) is ignored and written again. The cache is never read while a paper quantity is mutated
(the mutation audit calls ``derive`` itself, and mutates the quantities in memory, which no key
could see).

SymPy re-evaluates an expression when it is unpickled (``0 < g`` with ``g`` positive comes back
as ``True``), so entries are pickled node by node: each compound expression is rebuilt from its
arguments without evaluation, exactly as it was checked and printed. Reading a pickle runs code,
so point ``THEOREMS_CACHE`` only at a directory that no one else can write.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import inspect
import io
import os
import pickle
import platform
import tempfile
from pathlib import Path

import sympy as sp

#: Changes when the layout of an entry changes, so older entries miss.
_FORMAT = "theorems-derivation-1"
_LIBRARIES = ("sympy", "mpmath", "python-flint")
_OFF = ("off", "0", "false", "no")


def cache_directory() -> Path | None:
    """Where derivations are cached, or ``None`` when ``THEOREMS_CACHE=off``."""
    setting = os.environ.get("THEOREMS_CACHE", "").strip()
    if setting.lower() in _OFF:
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "theorems"


def derivation_key(theorem) -> str | None:
    """The cache key of ``theorem``'s derivation (a hex digest), or ``None`` where the
    derivation's code cannot be hashed (no ``proofs.<stem>`` module, or a ``derive`` without
    source), which is never cached."""
    sources = _sources(theorem)
    if not sources:
        return None
    try:
        derive = inspect.getsource(type(theorem).derive)
    except (OSError, TypeError):
        return None
    digest = hashlib.sha256(_FORMAT.encode())
    digest.update(f"\0python {platform.python_implementation()} {platform.python_version()}"
                  .encode())
    for library in _LIBRARIES:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"\0{library} {version}".encode())
    for name, path in sources:
        digest.update(b"\0" + name.encode() + b"\0" + path.read_bytes())
    digest.update(b"\0derive\0" + f"{type(theorem).__module__}.{type(theorem).__qualname__}"
                  .encode() + b"\0" + derive.encode())
    return digest.hexdigest()


def _sources(theorem) -> list[tuple[str, Path]]:
    """The modules a derivation is built from: ``proofs.<stem>`` and what it imports."""
    from theorems._theorem import import_closure

    return import_closure(f"proofs.{theorem.stem}")


def cached_derivation(theorem):
    """``theorem.derive()``, read from the cache when an entry with its key is there, and
    written to it when not; the plain derivation when the cache is off, the key cannot be
    computed, or a paper quantity is mutated."""
    directory = cache_directory()
    quantities = getattr(theorem, "quantities", None)
    mutated = quantities is not None and getattr(quantities, "mutation", None) is not None
    key = derivation_key(theorem) if directory is not None and not mutated else None
    if key is None:
        return theorem.derive()
    path = directory / "derivations" / f"{theorem.stem}.{key[:24]}.pickle"
    derivation = _load(path, key)
    if derivation is None:
        derivation = theorem.derive()
        _save(path, key, derivation)
    return derivation


def _load(path: Path, key: str):
    try:
        with path.open("rb") as handle:
            entry = pickle.load(handle)
    except Exception:  # noqa: BLE001 - missing, truncated, corrupted or foreign: rebuild it
        return None
    if not (isinstance(entry, dict) and entry.get("key") == key):
        return None
    return entry.get("derivation")


def _save(path: Path, key: str, derivation) -> None:
    derivation.to_latex()  # typeset and printed now, so the entry carries both (commands
    str(derivation)  # print them on every run)
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
            {"key": key, "derivation": derivation})
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return  # something in it cannot be pickled: this derivation is simply not cached
    try:
        write_atomically(path, buffer.getvalue())
        stem = path.name.split(".", 1)[0]
        for stale in path.parent.glob(f"{stem}.*.pickle"):  # older versions of this theorem
            if stale != path:
                with contextlib.suppress(OSError):
                    stale.unlink()
    except OSError:
        pass  # an unwritable cache costs time, never a result


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place, so that processes
    reading the cache at the same time see the whole entry or none (raises ``OSError``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, sp.Basic) and not obj.is_Atom \
                and not isinstance(obj, sp.matrices.MatrixBase):
            return _rebuild, (type(obj), obj.args, _slots(obj))
        return NotImplemented


def _slots(obj: sp.Basic) -> dict:
    """The state of ``obj`` beyond its arguments: its slots (``is_commutative``) and attributes."""
    state = dict(getattr(obj, "__dict__", {}))
    for klass in type(obj).__mro__:
        slots = getattr(klass, "__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("_mhash", "_args", "_assumptions", "__dict__", "__weakref__") \
                    and hasattr(obj, name):
                state[name] = getattr(obj, name)
    return state


def _rebuild(cls, args, state):
    """A compound expression from its arguments as they were, without SymPy's evaluation."""
    obj = sp.Basic.__new__(cls, *args)
    for name, value in state.items():
        setattr(obj, name, value)
    return obj
