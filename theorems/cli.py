"""The ``theorems`` command: one verb per use.

Exit status: 0 when everything claimed holds; 1 when a bound is violated, a step fails or an
audit misses a mutation; 2 for bad usage or an environment problem (an unwritable or full
``--out``, a store another run holds, an unreachable cluster: one ``theorems: error: ...`` line
on stderr, never a traceback; arguments and ``--out`` are checked before any work starts); 130
when interrupted by Ctrl-C (SIGINT) and 143 by SIGTERM, finished cells kept; 3 for an internal
error (a bug: its traceback is shown).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from functools import partial
from pathlib import Path

from numerics import FORMAT_NAMES
from numerics._validate import InvalidArgument
from theorems._registry import get, names
from theorems._theorem import draw_figure, parse_sizes

__all__ = ["INTERNAL_ERROR", "INTERRUPTED", "TERMINATED", "USAGE_ERROR", "describe_grid", "main"]


USAGE_ERROR = 2
INTERNAL_ERROR = 3
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
TERMINATED = 143  # 128 + SIGTERM


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [part for value in values for part in value.replace(",", " ").split()]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="theorems", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)
    verbs.add_parser("list", help="list the registered theorems")
    derive = verbs.add_parser("derive", help="check a theorem's derivation step by step")
    derive.add_argument("name")
    derive.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    certify = verbs.add_parser("certify", help="certify a theorem's inequality over its box")
    certify.add_argument("name")
    check = verbs.add_parser("check", help="sweep sizes, formats and policies numerically")
    check.add_argument("name")
    check.add_argument("--sizes", nargs="+", help="sizes, e.g. 2,16,2^10 or 2..2^16")
    check.add_argument("--formats", nargs="+", help=" ".join(FORMAT_NAMES))
    check.add_argument("--policies", nargs="+", help="hw strict")
    check.add_argument("--seeds", nargs="+", help="integer seeds")
    check.add_argument("--backend", help="numpy (default) or cupy")
    check.add_argument("--out", help="directory for the result store and CSV")
    check.add_argument("--workers", default="1", help="worker processes")
    check.add_argument("--dask", help="start a local Dask cluster of N workers")
    check.add_argument("--scheduler", help="run on the Dask cluster at this address "
                                           "(tcp://host:8786)")
    check.add_argument("--quick", action="store_true", help="the small grid")
    check.add_argument("--axis", action="append", metavar="NAME=V1,V2",
                       help="set one of the theorem's other grid axes (repeatable), e.g. "
                            "--axis spread=1,8 --axis pe=rope; the grid line a check prints "
                            "first names them")
    audit = verbs.add_parser("audit", help="mutate every paper quantity and bound; report "
                                           "which step or rows catch each")
    audit.add_argument("name")
    audit.add_argument("--workers", default=str(min(2, os.cpu_count() or 1)),
                       help="worker processes, each running one mutation at a time (default: "
                            "up to 2)")
    figure = verbs.add_parser("figure", help="write the theorem's pgfplots figure")
    figure.add_argument("name")
    figure.add_argument("--out", required=True, help="output directory")
    figure.add_argument("--quick", action="store_true", help="the small grid")
    figure.add_argument("--width", default="columnwidth",
                        help="columnwidth (default), textwidth, linewidth or a TeX length (8.5cm)")
    verify = verbs.add_parser("verify", help="derive + certify + check + figure, every theorem")
    verify.add_argument("--quick", action="store_true", help="the small grids (minutes)")
    verify.add_argument("--out", default="theorems-out", help="output directory")
    verify.add_argument("--workers", default=str(min(2, os.cpu_count() or 1)),
                        help="worker processes")
    verify.add_argument("--dask", help="start a local Dask cluster of N workers")
    verify.add_argument("--scheduler", help="run on the Dask cluster at this address")
    report = verbs.add_parser("report", help="write a LaTeX verification report (and its PDF "
                                             "where pdflatex exists) for a paper's appendix")
    report.add_argument("names", nargs="*", help="theorems to include (default: every one)")
    report.add_argument("--out", required=True, help="output directory")
    report.add_argument("--quick", action="store_true", help="the small grids")
    report.add_argument("--no-audit", action="store_true",
                        help="leave out the mutation audit unless one is stored for this code")
    report.add_argument("--workers", default="1",
                        help="worker processes (for the sweeps and the mutation audits)")
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        args = _parser().parse_args(argv)
        work = _prepare(args)
        return work()
    except (_UsageError, InvalidArgument) as exc:
        print(f"theorems: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as exc:  # the environment: a full disk, permissions, an unreachable cluster
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"theorems: error: {exc.strerror or exc}{where}; every cell finished before it "
              f"is kept, and the same command resumes", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt as exc:
        print("theorems: interrupted; finished cells are stored under --out, and the same "
              "command resumes from them", file=sys.stderr)
        return TERMINATED if isinstance(exc, _Terminated) else INTERRUPTED
    except Exception:  # a bug: show where
        traceback.print_exc()
        print("theorems: internal error (a bug; the traceback above says where)",
              file=sys.stderr)
        return INTERNAL_ERROR
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def _prepare(args):
    """Validate everything the verb needs and return the work to do, as a function."""
    if args.verb == "list":
        return _list
    if args.verb == "verify":
        engine = _engine(args)
        theorems = [get(name) for name in names()]
        sweeps = [t.plan(quick=args.quick, out=Path(args.out) / t.name, **engine)
                  for t in theorems]
        from numerics import executor_spec

        pool = executor_spec(**engine)  # one pool of workers for every theorem's sweep
        return lambda: _verify(theorems, sweeps, Path(args.out), args.quick, pool)
    if args.verb == "report":
        chosen = [get(name) for name in dict.fromkeys(args.names or names())]
        engine = {"workers": _int(args.workers, "workers")}
        plans = {t.name: t.plan(quick=args.quick, out=Path(args.out) / t.name, **engine)
                 for t in chosen}
        return lambda: _report(chosen, plans, Path(args.out), args.quick, not args.no_audit,
                               engine["workers"])
    theorem = get(args.name)
    if args.verb == "derive":
        return lambda: _derive(theorem, args.latex)
    if args.verb == "certify":
        return lambda: _certify(theorem)
    if args.verb == "audit":
        workers = _int(args.workers, "workers")
        return lambda: _audit(theorem, workers)
    if args.verb == "figure":
        return lambda: _figure(theorem, Path(args.out), args.quick, args.width)
    sizes = _split(args.sizes)
    sweep = theorem.plan(
        sizes=[n for s in sizes for n in parse_sizes(s)] if sizes is not None else None,
        formats=_split(args.formats),
        policies=_split(args.policies),
        seeds=[_int(s, "seed") for s in _split(args.seeds)] if args.seeds else None,
        backend=args.backend,
        out=args.out,
        quick=args.quick,
        **_engine(args),
        **_axes(args.axis),
    )
    return lambda: _check(theorem, sweep)


def _axes(options: list[str] | None) -> dict[str, list[str]]:
    """``["spread=1,8", "pe=rope"]`` -> ``{"spread": ["1", "8"], "pe": ["rope"]}``; the
    theorem reads each value as its axis's kind."""
    axes: dict[str, list[str]] = {}
    for option in options or []:
        name, sep, values = option.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise InvalidArgument(f"--axis {option!r}: expected NAME=V1,V2 (e.g. spread=1,8)")
        if name.strip() in axes:
            raise InvalidArgument(f"--axis {name.strip()} is given twice; list its values once")
        axes[name.strip()] = [v for v in values.replace(",", " ").split()]
    return axes


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{name}={text!r} must be an integer") from None


def _engine(args) -> dict:
    return {"workers": _int(args.workers, "workers"),
            "dask": _int(args.dask, "dask") if args.dask is not None else None,
            "scheduler": args.scheduler}


def _list() -> int:
    from theorems._registry import listing

    for name, title, source in listing():  # imports no theorem module
        print(f"{name:<28} {title}  ({source})")
    return 0


def _derive(theorem, latex: bool) -> int:
    derivation = theorem.derive()
    text = derivation.to_latex() if latex else str(derivation)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(text.encode(encoding, "replace").decode(encoding))  # '?' where a terminal lacks ≤, θ
    return 0 if derivation.ok else 1


def _certify(theorem) -> int:
    certificate = theorem.certify()
    print(certificate if certificate is not None else f"{theorem.name} has no certificate")
    return 0 if certificate is None or certificate.ok else 1


def _audit(theorem, workers: int) -> int:
    audit = theorem.audit(workers=workers)
    print(audit)
    return 0 if audit.ok else 1


def _check(theorem, sweep) -> int:
    if getattr(sweep, "cells", None) is not None:  # a stand-in plan may carry no cells
        print(describe_grid(theorem, sweep.cells), flush=True)
    report = theorem.run(sweep, progress=sys.stderr.isatty())
    print(report)
    findings = theorem.findings(report)
    if findings:
        print(findings)
    spread = _spread(sweep)
    if spread:
        print(spread)
    return 0 if report.ok else 1


def _spread(sweep) -> str | None:
    """Where the sweep's cells ran, from its store: cells and seconds per worker, and the
    longest cell (``None`` without a store or without such records)."""
    store = getattr(sweep, "store", None)
    if store is None:
        return None
    ran = store.ran()
    cells = {cell.key: cell for cell in sweep.cells if cell.key in ran}
    if not cells:
        return None
    workers: dict[str, list[float]] = {}
    for key in cells:
        workers.setdefault(ran[key]["worker"], []).append(float(ran[key]["seconds"]))
    longest = max(cells, key=lambda key: float(ran[key]["seconds"]))
    shown = ", ".join(f"{k}={v}" for k, v in cells[longest].as_dict().items()
                      if k not in ("backend",))
    parts = "; ".join(f"{worker}: {len(times)} cells, {sum(times):.1f} s"
                      for worker, times in sorted(workers.items()))
    return (f"cells ran on {len(workers)} worker{'s' if len(workers) != 1 else ''} "
            f"(host:pid): {parts}; longest {float(ran[longest]['seconds']):.1f} s ({shown})")


def _report(theorems, plans, out: Path, quick: bool, audit: bool, workers: int) -> int:
    from theorems.appendix import write_appendix

    files = write_appendix(theorems, out, quick=quick, audit=audit, plans=plans,
                           progress=sys.stderr.isatty(), workers=workers)
    print(files.tex)
    if files.pdf is not None:
        print(files.pdf)
    else:
        print("pdflatex is not installed: compile the .tex with a TeX distribution that has "
              "pgfplots", file=sys.stderr)
    return 0


def describe_grid(theorem, cells) -> str:
    """One line: how many cells, and the values each grid axis takes in them (the axes a
    caller can set named, so that no axis is swept without saying so)."""
    values: dict[str, list] = {}
    for cell in cells:
        for key, value in cell.params:
            if key != "backend":
                seen = values.setdefault(key, [])
                if value not in seen:
                    seen.append(value)
    parts = []
    for key, seen in values.items():
        shown = [_value(v) for v in seen]
        parts.append(f"{key} {', '.join(shown)}" if len(shown) <= 6
                     else f"{key} {len(shown)} values, {shown[0]} ... {shown[-1]}")
    settable = ", ".join(theorem.parameters())
    return (f"grid: {len(cells)} cells; " + "; ".join(parts)
            + (f" (set with --axis NAME=...: {settable})" if settable else ""))


def _count(number: int, noun: str) -> str:
    """``1 box``, ``3 boxes``."""
    plural = noun + ("es" if noun.endswith(("s", "x")) else "s")
    return f"{number} {noun if number == 1 else plural}"


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_value(v) for v in value) + "]"
    return str(value)


def _figure(theorem, out: Path, quick: bool, width: str) -> int:
    files = theorem.figure(out, quick=quick, width=width)
    for path in (files.tex, files.csv, files.pdf):
        print(path)
    return 0


def _verify(theorems, sweeps, out: Path, quick: bool, engine=None) -> int:
    """Verify every theorem, all sweeps on one executor opened here from the spec ``engine``
    (in-process by default): its workers start once and import every theorem's code once."""
    from numerics.sweep import ExecutorSpec

    spec = engine if engine is not None else ExecutorSpec()
    with spec.open(preload=[type(theorem).__module__ for theorem in theorems]) as pool:
        return _verify_on(theorems, sweeps, out, quick, pool)


def _on(sweep, pool):
    """``sweep`` run on the open executor ``pool`` (a theorem's own plan may be no Sweep)."""
    from dataclasses import replace

    from numerics.sweep import Sweep

    return replace(sweep, executor=pool) if isinstance(sweep, Sweep) else sweep


def _verify_on(theorems, sweeps, out: Path, quick: bool, pool) -> int:
    from numerics.sweep.executors import SerialExecutor

    start = time.perf_counter()
    if isinstance(pool, SerialExecutor):  # one theorem after another, in this process
        summary = []
        for theorem, sweep in zip(theorems, sweeps, strict=True):
            ready = _before_report(theorem, _derived(theorem, out), out, quick)
            text, row = _after_report(ready, theorem.run(_on(sweep, pool), progress=True),
                                      out, quick, start)
            print(text, flush=True)
            summary.append(row)
    else:
        summary = _side_by_side(theorems, sweeps, out, quick, pool, start)
    header = ["theorem", "steps", "errata r/i/u", "certificate", "holds/precision/violated",
              "figure", "done at", "verdict"]
    widths = [max(len(h), *(len(row[i]) for row in summary)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in summary:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print("steps: checked/total, and whether a checked step discharges the goal; errata: the "
          "paper's printed statements shown refuted / inconsistent with another printed form / "
          "from an unconfirmed copy of the paper")
    print(f"results in {out}/")
    return 0 if all(row[-1] == "ok" for row in summary) else 1


def _side_by_side(theorems, sweeps, out: Path, quick: bool, pool, start: float) -> list:
    """Check every derivation first (a step's budget limits the whole process's address space,
    so no sweep thread runs meanwhile); then hand every theorem's cells to the shared ``pool``
    at once (a thread per sweep, which only submits cells and stores results), so one theorem's
    long cells overlap the others' short ones. Meanwhile this thread checks the certificates
    and draws the figures that need no report; it finishes each theorem as its sweep ends,
    whatever the order, and prints them in the registry's order. One bar per sweep."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from numerics.sweep import progress_bars

    derivations = [_derived(theorem, out) for theorem in theorems]
    bars = progress_bars()
    threads = ThreadPoolExecutor(max_workers=len(theorems), thread_name_prefix="sweep")
    bars.start()
    try:
        say = (partial(bars.console.print, markup=False, highlight=False, soft_wrap=True,
                       emoji=False)
               if sys.stdout.isatty() and sys.stderr.isatty() else partial(print, flush=True))
        reports = {threads.submit(theorem.run, _on(sweep, pool), progress=bars): index
                   for index, (theorem, sweep) in enumerate(zip(theorems, sweeps, strict=True))}
        ready = []
        for theorem, derivation in zip(theorems, derivations, strict=True):
            _raise_failed(reports)  # a store held by another run, a full disk: say so now
            ready.append(_before_report(theorem, derivation, out, quick))
        texts, summary, printed = {}, {}, 0
        for report in as_completed(reports):
            index = reports[report]
            texts[index], summary[index] = _after_report(ready[index], report.result(), out,
                                                         quick, start)
            while printed in texts:  # every theorem up to the next unfinished one
                say(texts.pop(printed))
                printed += 1
        return [summary[index] for index in range(len(theorems))]
    finally:
        bars.stop()
        # on an error or an interrupt, do not wait here for the other sweeps: the pool's exit
        # stops their workers, which ends their threads
        threads.shutdown(wait=sys.exc_info()[0] is None, cancel_futures=True)


def _raise_failed(futures) -> None:
    """Raise the error of the first of ``futures`` that has already failed, if any."""
    for future in futures:
        if future.done() and future.exception() is not None:
            raise future.exception()


def _derived(theorem, out: Path):
    """``theorem``'s derivation, checked (or read from the cache) and written as text and
    LaTeX into ``out/NAME/``."""
    from theorems._cache import cached_derivation

    target = out / theorem.name
    target.mkdir(parents=True, exist_ok=True)
    derivation = cached_derivation(theorem)  # checked once per version of its code
    (target / "derivation.txt").write_text(str(derivation) + "\n", encoding="utf-8")
    (target / "derivation.tex").write_text(derivation.to_latex(), encoding="utf-8")
    return derivation


def _before_report(theorem, derivation, out: Path, quick: bool) -> dict:
    """What ``verify`` does for ``theorem`` besides its derivation that needs no sweep: its
    certificate, and its figure where the figure does not read the sweep."""
    target = out / theorem.name
    certificate = theorem.certify()
    if certificate is not None:
        (target / "certificate.txt").write_text(str(certificate) + "\n", encoding="utf-8")
    figure = None if getattr(theorem, "figure_reads_report", True) else draw_figure(
        theorem, target / "figure", quick=quick)
    return {"theorem": theorem, "derivation": derivation, "certificate": certificate,
            "figure": figure}


def _after_report(ready: dict, report, out: Path, quick: bool, start: float
                  ) -> tuple[str, list]:
    """Finish a theorem from :func:`_before_report`'s ``ready`` and its sweep's ``report``: the
    figure that reads the report, the findings; return what to print and its summary row."""
    theorem, derivation, certificate = ready["theorem"], ready["derivation"], ready["certificate"]
    # drawn from the report where the sweep computed its data
    figure = ready["figure"] or draw_figure(theorem, out / theorem.name / "figure", quick=quick,
                                            report=report)
    lines = [f"== {theorem.name}", derivation.summary(),
             f"certificate {certificate.status} ({_count(certificate.boxes, 'box')})"
             if certificate is not None else "certificate none", str(report)]
    findings = theorem.findings(report)
    if findings:
        lines.append(str(findings))
    ok = derivation.ok and (certificate is None or certificate.ok) and report.ok
    counts = report.counts
    errata = derivation.errata
    return "\n".join(lines), [
        theorem.name,
        f"{derivation.checked}/{len(derivation.steps)}"
        + (", goal" if derivation.goal_step else ", NO GOAL"),
        "/".join(str(errata.get(s, 0)) for s in ("refuted", "inconsistent",
                                                 "unconfirmed source")),
        f"{certificate.status} ({_count(certificate.boxes, 'box')})"
        if certificate is not None
        else "none",
        f"{counts['holds']}/{counts['precision-effect']}/{counts['violated']}",
        figure.tex.name,
        f"{time.perf_counter() - start:.1f}s",
        "ok" if ok else "FAILED",
    ]

if __name__ == "__main__":
    sys.exit(main())
