"""The :class:`Theorem` base class: statement, derivation, certificate, sweep, figure.

A theorem module subclasses :class:`Theorem` and provides:

- ``name``, ``title``, ``source`` and ``statement``;
- ``derive()`` (its ``proofs`` module's derivation) and ``certify()``;
- ``axes(quick)``: the default sweep grid, a dict of axis name to values, which must include
  ``sizes``, ``formats``, ``policies`` and ``seeds``;
- ``evaluate``: a module-level function ``params -> rows`` run once per cell (in workers);
- ``figure(out_dir, *, quick, width, report)`` (``report``: a run of its sweep, whose rows a
  figure may draw from) and ``counterexample(...)``.

The base class validates sweep arguments eagerly (:meth:`Theorem.plan`, before any work starts),
builds a :class:`numerics.Sweep` with a result store under ``out``, runs it (:meth:`Theorem.run`)
and wraps the rows in a :class:`Report`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

from numerics import (
    BACKENDS,
    FORMAT_NAMES,
    POLICY_NAMES,
    Cell,
    ResultStore,
    Sweep,
    executor_spec,
    grid,
)
from numerics._validate import (
    InvalidArgument,
    check_choice,
    check_int,
    check_nonempty,
    check_writable_directory,
)
from theorems.report import Report


@dataclass(frozen=True)
class Statement:
    """What a theorem claims: its hypotheses and conclusion, in text and in LaTeX."""

    hypotheses: tuple[str, ...]
    conclusion: str
    latex: str

    def __str__(self) -> str:
        lines = [f"  assume {h}" for h in self.hypotheses]
        return "\n".join([*lines, f"  then   {self.conclusion}"])

    def _repr_latex_(self) -> str:
        return self.latex


class Theorem(ABC):
    """A result with a checked derivation and a numeric checker. Subclass once per theorem.

    A subclass must define ``derive``, ``axes``, ``evaluate`` (a static method, run once per cell
    in workers), ``figure`` and ``counterexample``; ``certify``, ``cells``, ``findings``,
    ``group``/``prepare`` and ``audit_grid`` have defaults. Instantiating a subclass that misses
    one of the five is a ``TypeError`` naming it.

    ``quantities`` is the theorem's table of paper quantities (its ``proofs`` module's
    ``PAPER``), which the mutation audit changes one at a time; ``audit_exempt`` maps a mutation
    (``"b1.shift +1"``, ``"gap<=bound 1% tighter"``) to the reason it leaves the statement true.
    """

    name: str = ""
    title: str = ""
    source: str = ""
    statement: Statement
    max_size: int = 2**26
    quantities = None
    audit_exempt: dict[str, str] = {}
    #: ``group(params) -> dict | None``: the shared setup a cell needs (an fp64 reference, a
    #: dataset); ``prepare(group) -> dict of arrays`` computes it once per group, and
    #: ``evaluate(params, artifact)`` receives it. Both ``None``: cells share nothing.
    group = None
    prepare = None
    #: Whether :meth:`figure` draws from a report's rows (``verify`` then draws it once the sweep
    #: is done) or computes its own data (``verify`` draws it while the sweeps run).
    figure_reads_report: bool = False

    @abstractmethod
    def derive(self):
        """Return the checked :class:`proofs.Derivation` of this theorem."""

    def certify(self):
        """Return the :class:`proofs.Certificate` over the theorem's default parameter box, or
        ``None`` for a theorem without an inequality to certify over a box."""
        return None

    @abstractmethod
    def axes(self, quick: bool) -> dict[str, list]:
        """Return the default sweep grid: ``sizes``, ``formats``, ``policies``, ``seeds``, ..."""

    @staticmethod
    @abstractmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one cell (run in a worker): its rows, each judged by
        :func:`theorems.verdicts.judge` (see :data:`theorems.report.ROW_KEYS`)."""

    @abstractmethod
    def figure(self, out_dir: str | os.PathLike, *, quick: bool = True,
               width: str = "columnwidth", report: Report | None = None):
        """Write ``<name>.tex``, ``<name>-figure-data.csv`` and ``<name>.pdf`` into ``out_dir``,
        laid out for ``width`` (:func:`theorems.figures.check_width`). ``report``: a run of
        this theorem's sweep; a figure whose data its rows already hold is drawn from them
        instead of computing them again, so that it shows the sweep's own numbers (a float32
        training run computed again under another BLAS thread count rounds its products in
        another order and can differ in the fourth digit)."""

    def cells(self, axes: dict[str, list]) -> list[Cell]:
        """Return the sweep's cells for validated axes (singular names: ``n``, ``format``,
        ``policy``, ``seed``, ``backend``, ...): by default their Cartesian product."""
        return grid(**axes)

    def findings(self, report: Report) -> str:
        """Return text summarising what a report found beyond its table (empty by default)."""
        return ""

    @abstractmethod
    def counterexample(self, **kwargs):
        """Return a witness for what the theorem refutes, or for a mis-stated bound."""

    def audit_grid(self) -> dict:
        """The ``check`` arguments the mutation audit runs under each mutation (the quick grid,
        in-process, by default)."""
        return {"quick": True, "workers": 1}

    def audit(self, *, quantities: bool = True, bounds: bool = True, workers: int = 1):
        """Mutate every paper quantity and tighten every numeric bound by 1%; return the
        :class:`theorems.audit.Audit` saying which step or rows caught each mutation
        (``workers`` processes run the mutations side by side)."""
        from theorems.audit import run_audit

        return run_audit(self, quantities=quantities, bounds=bounds, workers=workers)

    def plan(
        self,
        *,
        sizes: Sequence[int] | None = None,
        formats: Sequence[str] | None = None,
        policies: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        backend: str | None = None,
        out: str | os.PathLike | None = None,
        workers: int = 1,
        dask: int | None = None,
        scheduler: str | None = None,
        quick: bool = False,
        **axes,
    ) -> Sweep:
        """Validate sweep arguments and return the :class:`numerics.Sweep`; no work is done here
        (``out`` is checked to be a writable directory).

        Every other grid axis of the theorem is a keyword too (``spread=[0, 4]``,
        ``pe=["rope"]``, ``train=False``; :meth:`parameters` lists them): its values replace the
        default grid's, validated by :meth:`axis_values`.

        With ``out``, the sweep's store is ``<out>/<name>.cells.jsonl``. Cells run in-process,
        on ``workers`` local processes, on a local Dask cluster of ``dask`` workers, or on the
        Dask cluster at ``scheduler``.
        """
        given = axes
        axes = dict(self.axes(bool(quick)))
        settable = self.parameters()
        for name, values in given.items():
            if name not in settable:
                known = ", ".join(settable) or "none"
                raise InvalidArgument(f"{self.name} has no axis {name!r}; its axes besides "
                                      f"sizes, formats, policies and seeds: {known}")
            axes[name] = self.axis_values(name, values)
        self.check_axes(axes)
        if sizes is not None:
            axes["sizes"] = [check_int(n, "n", min=1, max=self.max_size)
                             for n in check_nonempty(sizes, "sizes")]
        if formats is not None:
            axes["formats"] = [check_choice(f, FORMAT_NAMES, "format")
                               for f in check_nonempty(formats, "formats")]
        if policies is not None:
            axes["policies"] = [check_choice(p, POLICY_NAMES, "policy")
                                for p in check_nonempty(policies, "policies")]
        if seeds is not None:
            axes["seeds"] = [check_int(s, "seed", min=0) for s in check_nonempty(seeds, "seeds")]
        backend = backend or os.environ.get("THEOREMS_BACKEND") or "numpy"
        check_choice(backend, BACKENDS, "backend")
        if backend == "cupy":
            from numerics import get_backend

            get_backend("cupy")
        engine = executor_spec(workers=workers, dask=dask, scheduler=scheduler)
        if out is not None:
            check_writable_directory(out, "out")
        singular = {"sizes": "n", "formats": "format", "policies": "policy", "seeds": "seed"}
        # a repeated value would evaluate and store the same cell twice
        named = {singular.get(k, k): list(dict.fromkeys(v)) for k, v in axes.items()}
        cells = self.cells({**named, "backend": [backend]})
        store = (ResultStore(Path(out) / f"{self.name}.cells.jsonl", version=self.code_version())
                 if out is not None else None)
        return Sweep(tuple(cells), type(self).evaluate, store,
                     engine.workers or 1, self.name,
                     engine, type(self).group, type(self).prepare)

    def run(self, sweep: Sweep, *, progress: bool = False) -> Report:
        """Run a validated sweep; return its :class:`Report`, and a CSV next to the store."""
        report = Report(self.name, sweep.run(progress=progress))
        if sweep.store is not None:
            report.to_csv(sweep.store.path.parent / f"{self.name}.csv")
        return report

    def check(
        self,
        *,
        sizes: Sequence[int] | None = None,
        formats: Sequence[str] | None = None,
        policies: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        backend: str | None = None,
        out: str | os.PathLike | None = None,
        workers: int = 1,
        dask: int | None = None,
        scheduler: str | None = None,
        quick: bool = False,
        progress: bool = False,
        **axes,
    ) -> Report:
        """Sweep sizes x formats x policies x seeds (x theorem axes) and return the :class:`Report`.

        The theorem's other axes are keywords too (:meth:`parameters`; ``spread=[0, 4]``).
        With ``out``, finished cells are stored in ``<out>/<name>.cells.jsonl`` as they finish
        (a rerun skips them) and the rows are written to ``<out>/<name>.csv``.
        """
        sweep = self.plan(sizes=sizes, formats=formats, policies=policies, seeds=seeds,
                          backend=backend, out=out, workers=workers, dask=dask,
                          scheduler=scheduler, quick=quick, **axes)
        return self.run(sweep, progress=progress)

    #: Axes of :meth:`axes` set by the grid itself (``quick``), not by a caller.
    internal_axes: tuple[str, ...] = ("quick",)

    def parameters(self) -> dict[str, list]:
        """The grid axes a caller may set besides sizes, formats, policies and seeds, each with
        its values in the quick and the full grid (so ``check(spread=[0, 4])``, or
        ``--axis spread=0,4`` on the command line)."""
        quick, full = self.axes(True), self.axes(False)
        fixed = {"sizes", "formats", "policies", "seeds", *self.internal_axes}
        return {name: list(dict.fromkeys([*quick.get(name, []), *full[name]]))
                for name in full if name not in fixed}

    def axis_values(self, name: str, values) -> list:
        """Validate a caller's values for axis ``name`` against the kind of its defaults:
        choices for names (``pe``), positive integers for counts (``d``), finite numbers for
        reals (``spread``, positive where every default is), booleans for switches; an axis
        whose default is one tuple (a set run inside one cell) takes the values as that set."""
        defaults = self.parameters()[name]
        grouped = all(isinstance(d, tuple) for d in defaults)
        if isinstance(values, str | bool | int | float) or values is None:
            values = [values]
        values = check_nonempty(values, name)
        members = [v for d in defaults for v in d] if grouped else defaults
        checked = [_axis_value(name, value, members) for value in values]
        return [tuple(dict.fromkeys(checked))] if grouped else checked

    def check_axes(self, axes: dict[str, list]) -> None:
        """Refuse, before any work starts, axis values that are valid one by one but not
        together (none by default)."""
        return None

    def code_version(self) -> str:
        """A hash of the code that computes this theorem's rows: every project module in the
        import closure of the theorem's module (its ``proofs`` and ``numerics`` modules and the
        shared ones they import), so editing one theorem leaves the others' stored cells valid
        and editing a derivation a check reads invalidates them."""
        digest = hashlib.sha256()
        for name, path in import_closure(type(self).__module__):
            digest.update(name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:16]

    @property
    def stem(self) -> str:
        return self.name.replace("-", "_")

    def __repr__(self) -> str:
        return f"<Theorem {self.name}: {self.title}>"

    def __str__(self) -> str:
        return f"{self.name}  ({self.source})\n{self.statement}"

    def _repr_html_(self) -> str:
        assumptions = "".join(f"<li>{escape(h)}</li>" for h in self.statement.hypotheses)
        return (f"<div><p><b>{escape(self.name)}</b>: {escape(self.title)}<br>"
                f"<i>{escape(self.source)}</i></p><p>{escape(self.statement.latex)}</p>"
                f"<p>assume:</p><ul>{assumptions}</ul>"
                f"<p>then: {escape(self.statement.conclusion)}</p></div>")

    def _repr_latex_(self) -> str:
        return self.statement.latex

    #: What tab completion offers on a theorem: the user's verbs and facts, not the machinery
    #: the command line and the sweep use (``plan``, ``run``, ``cells``, ``evaluate``, ...).
    _PUBLIC = ("name", "title", "source", "statement", "derive", "certify", "check", "figure",
               "counterexample", "findings", "audit", "parameters", "axes", "quantities")

    def __dir__(self) -> list[str]:
        return sorted(self._PUBLIC)


_PACKAGES = ("theorems", "numerics", "proofs")


def import_closure(module: str) -> list[tuple[str, Path]]:
    """The project modules ``module`` imports, directly or not, with their source files, sorted
    by name. Imports are read from the source (also those inside functions), not executed.

    A package entered only as the parent of an imported module contributes its ``__init__`` file
    but not the siblings it re-exports: ``import numerics.models.transformer`` does not make the
    theorem depend on ``numerics.models.sae``.
    """
    found: dict[str, Path] = {}
    followed: set[str] = set()
    todo = [(module, True)]
    while todo:
        name, follow = todo.pop()
        if name.split(".")[0] not in _PACKAGES or (name in found and not follow) \
                or name in followed:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue  # an attribute imported from a package, not a module
        path = Path(spec.origin)
        found[name] = path
        parts = name.split(".")
        todo += [(".".join(parts[:i]), False) for i in range(1, len(parts))]  # parent packages
        if not follow:
            continue
        followed.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        stat = path.stat()
        todo += [(imported, True) for imported in
                 _imports(str(path), package, stat.st_mtime_ns, stat.st_size)]
    return sorted(found.items())


@functools.lru_cache(maxsize=1024)
def _imports(path: str, package: str, mtime_ns: int, size: int) -> tuple[str, ...]:
    """The module names a source file imports (absolute), parsed once per version of the file
    (its modification time and size are in the key): the theorems share most of their
    closures, and ``verify`` hashes each of them twice."""
    names = []
    for node in import_statements(Path(path).read_text(encoding="utf-8")):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return tuple(names)


#: A line that starts an import statement, with its parenthesised continuation lines.
_IMPORT_LINE = re.compile(r"^[ \t]*(?:import[ \t]+[^\n]*"
                          r"|from[ \t]+[.\w]+[ \t]+import[ \t]*(?:\([^)]*\)|[^\n]*))", re.M)
#: What that line-wise reading would miss: an import after ``:`` or ``;`` on one line
#: (``try: import x``), or a line continued by a backslash.
_IMPORT_ELSEWHERE = re.compile(r"[:;][ \t]*(?:import|from)[ \t]"
                               r"|^[ \t]*(?:import|from)[ \t][^\n]*\\$", re.M)


def import_statements(source: str) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module's source, at any depth. Each line that starts one is
    parsed alone, some 25 times faster than parsing the whole module; a module where that could
    miss one (see :data:`_IMPORT_ELSEWHERE`, or a matched line that does not parse alone, such
    as a comment with a parenthesis inside a parenthesised import) is parsed whole. A test
    compares this with a walk of every project module's full syntax tree."""
    if _IMPORT_ELSEWHERE.search(source):
        return _walked_imports(source)
    found = []
    for match in _IMPORT_LINE.finditer(source):
        try:
            found += ast.parse(match.group(0).strip()).body
        except SyntaxError:
            return _walked_imports(source)
    return [node for node in found if isinstance(node, (ast.Import, ast.ImportFrom))]


def _walked_imports(source: str) -> list[ast.Import | ast.ImportFrom]:
    return [node for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.Import, ast.ImportFrom))]


def _axis_value(name: str, value, defaults: list):
    """One caller's value for axis ``name``, of the same kind as the axis's defaults (a string
    from the command line is read as that kind)."""
    kinds = {type(d) for d in defaults}
    if kinds == {bool}:
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise InvalidArgument(f"{name}={value!r} must be true or false")
        return value
    if kinds == {str}:
        return check_choice(value, list(dict.fromkeys(defaults)), name)
    if kinds == {int}:
        return check_int(int(value) if isinstance(value, str) and value.strip().isdigit()
                         else value, name, min=1, max=2**31)
    if kinds <= {int, float}:
        try:
            number = float(value) if isinstance(value, str | int | float) \
                and not isinstance(value, bool) else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise InvalidArgument(f"{name}={value!r} must be a finite number")
        if min(defaults) > 0 and number <= 0:
            raise InvalidArgument(f"{name}={value!r} must be positive")
        if number < 0:
            raise InvalidArgument(f"{name}={value!r} must not be negative")
        return number
    raise InvalidArgument(f"axis {name!r} cannot be set")


def figure_report(theorem, report) -> Report | None:
    """``report`` as ``theorem.figure`` may read it: ``None``, or a :class:`Report` of this
    theorem (anything else is one :class:`InvalidArgument`)."""
    if report is None:
        return None
    if not isinstance(report, Report):
        raise InvalidArgument(f"report={type(report).__name__} is not a Report; pass what "
                              f"{theorem.name}'s check returns, or nothing")
    if report.theorem != theorem.name:
        raise InvalidArgument(f"report is {report.theorem!r}'s, not {theorem.name!r}'s")
    return report


def draw_figure(theorem, out_dir, *, quick: bool, width: str | None = None, report=None):
    """``theorem.figure(out_dir, quick=quick, ...)`` with ``width`` (when given) and ``report``
    where its ``figure`` takes them: a theorem written before figures took a width or read a
    report still draws."""
    parameters = inspect.signature(theorem.figure).parameters
    anything = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    extra = {name: value for name, value in (("width", width), ("report", report))
             if value is not None and (anything or name in parameters)}
    return theorem.figure(out_dir, quick=quick, **extra)


def parse_sizes(text: str) -> list[int]:
    """Parse ``"2,16,2^10,2**12"`` or ``"2^1..2^16"`` (powers of two) into a list of sizes."""
    sizes: list[int] = []
    for token in filter(None, re.split(r"[,\s]+", text.strip())):
        if ".." in token:
            lo, hi = (_parse_size(t) for t in token.split("..", 1))
            sizes += [2**k for k in range(max(lo, 1).bit_length() - 1, hi.bit_length())
                      if lo <= 2**k <= hi]
        else:
            sizes.append(_parse_size(token))
    return sizes


#: No sweep goes past 2^62 items; larger sizes are refused before they are computed.
_SIZE_LIMIT_BITS = 62


def _parse_size(token: str) -> int:
    match = re.fullmatch(r"(\d{1,30})(?:(?:\^|\*\*)(\d{1,30}))?", token)
    if not match:
        raise InvalidArgument(f"sizes={token!r} is not a size; expected an integer such as 1024 "
                              f"or 2^10")
    base, power = (int(g) if g is not None else None for g in match.groups())
    if power is not None and base > 1 and power * math.log2(base) > _SIZE_LIMIT_BITS:
        raise InvalidArgument(f"sizes={token!r} is above 2^{_SIZE_LIMIT_BITS}; give a size a "
                              f"sweep can reach")
    size = base**power if power is not None else base
    if size.bit_length() > _SIZE_LIMIT_BITS:
        raise InvalidArgument(f"sizes={token!r} is above 2^{_SIZE_LIMIT_BITS}; give a size a "
                              f"sweep can reach")
    return size
