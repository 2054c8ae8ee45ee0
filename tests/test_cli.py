"""The command line (exit statuses, files written, resuming) and the pytest plugin."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _sweep_cells
import pytest
import sympy as sp

import theorems
import theorems.cli as cli
from proofs import Derivation, Step, certify, ge, gt
from theorems import Report, Statement, Theorem
from theorems._theorem import parse_sizes
from theorems.figures import Panel, Series, write_figure

pytest_plugins = ["pytester"]

SD = "softmax-dispersion"
x = sp.Symbol("x", real=True)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "THEOREMS_BACKEND"}
    return subprocess.run([sys.executable, "-m", "theorems", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_list():
    done = run_cli("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == theorems.names()
    for line, name in zip(lines, theorems.names(), strict=True):
        assert theorems.get(name).title in line


def test_derive_and_certify():
    derive = run_cli("derive", SD)
    assert derive.returncode == 0, derive.stdout + derive.stderr
    assert derive.stdout.startswith(SD) and derive.stderr == ""
    certificate = run_cli("certify", SD)
    assert certificate.returncode == 0, certificate.stdout + certificate.stderr
    assert certificate.stdout.startswith("proved: ")


def test_check_writes_the_store_and_the_csv_and_resumes(tmp_path):
    args = ("check", SD, "--sizes", "2,16", "--formats", "bf16", "--policies", "hw", "strict",
            "--out", str(tmp_path))
    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    # one in-process worker (this CLI's pid), every cell of the sweep counted
    ran = [line for line in done.stdout.splitlines() if line.startswith("cells ran on ")]
    assert len(ran) == 1 and ran[0].startswith("cells ran on 1 worker (host:pid): ")
    store, table = tmp_path / f"{SD}.cells.jsonl", tmp_path / f"{SD}.csv"
    assert store.is_file() and table.is_file()
    sweep = theorems.get(SD).plan(sizes=[2, 16], formats=["bf16"], policies=["hw", "strict"])
    keys = [json.loads(line)["key"] for line in store.read_text(encoding="utf-8").splitlines()]
    assert sorted(keys) == sorted(cell.key for cell in sweep.cells)
    assert f": {len(sweep.cells)} cells, " in ran[0]
    with table.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["format"] for r in rows} == {"bf16"}
    assert {r["policy"] for r in rows} == {"hw", "strict"}
    assert {int(r["n"]) for r in rows} == {2, 16}
    assert {r["verdict"] for r in rows} <= {"holds", "precision-effect"}
    first = table.read_bytes()
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert store.read_text(encoding="utf-8").count("\n") == len(sweep.cells)  # nothing redone
    assert table.read_bytes() == first


class FakeTheorem(Theorem):
    """A theorem whose derivation, certificate and sweep are chosen by the test."""

    name = "fake"
    title = "a stand-in"
    source = "nowhere"
    statement = Statement(("x real",), "exp(x) >= x", "$e^x \\ge x$")

    def __init__(self, *, step_ok=True, certificate_ok=True, report_ok=True,
                 interrupt=False):
        self.step_ok, self.certificate_ok = step_ok, certificate_ok
        self.report_ok, self.interrupt = report_ok, interrupt

    def derive(self):
        """A one-step derivation, true or false."""
        claim = gt(sp.exp(x), 0) if self.step_ok else gt(-sp.exp(x), 0)
        return Derivation.check("fake", source="nowhere", hypotheses={}, goal=claim,
                                steps=[Step("1", claim)])

    def certify(self):
        """A certificate, proved or refuted."""
        claim = ge(sp.exp(x), x) if self.certificate_ok else ge(x, sp.exp(x))
        return certify(claim, {x: (-2, 2)})

    def axes(self, quick):
        """One cell."""
        return {"sizes": [2], "formats": ["bf16"], "policies": ["hw"], "seeds": [0]}

    @staticmethod
    def evaluate(params):
        """Never called: ``run`` makes the rows."""
        return []

    def counterexample(self, **kwargs):
        """None to give."""
        return None

    def run(self, sweep, *, progress=False):
        """Rows chosen by the test; or an interruption."""
        if self.interrupt:
            raise KeyboardInterrupt
        verdict = "holds" if self.report_ok else "violated"
        return Report("fake", [{"theorem": "fake", "format": "bf16", "policy": "hw",
                                "quantity": "q", "verdict": verdict, "mechanism": "",
                                "margin_ulps": 1.0}])

    def plan(self, **kwargs):
        """No sweep is needed: ``run`` makes the rows."""
        return None

    def figure(self, out_dir, *, quick=True, width="columnwidth", report=None):
        """A one-series figure."""
        panel = Panel("fake", "$x$", "$y$", (Series("s", (1.0, 2.0), (1.0, 4.0)),))
        return write_figure(out_dir, self.name, [panel], width=width)


@pytest.mark.parametrize("theorem,verb,status", [
    (FakeTheorem(), "derive", 0),
    (FakeTheorem(step_ok=False), "derive", 1),
    (FakeTheorem(), "certify", 0),
    (FakeTheorem(certificate_ok=False), "certify", 1),
    (FakeTheorem(), "check", 0),
    (FakeTheorem(report_ok=False), "check", 1),
    (FakeTheorem(interrupt=True), "check", 130),
], ids=["derive-ok", "derive-fails", "certify-ok", "certify-refuted", "check-ok",
        "check-violated", "check-interrupted"])
def test_exit_status(monkeypatch, capsys, theorem, verb, status):
    monkeypatch.setattr(cli, "get", lambda name: theorem)
    assert cli.main([verb, "fake"]) == status
    err = capsys.readouterr().err
    if status == 130:
        assert err.startswith("theorems: interrupted;") and len(err.splitlines()) == 1


def test_a_store_another_run_holds_is_one_line_and_exit_2(tmp_path, capsys):
    from numerics import ResultStore

    theorem = theorems.get("softmax-dispersion")
    store = ResultStore(tmp_path / "softmax-dispersion.cells.jsonl")
    with store.lock():
        assert cli.main(["check", "softmax-dispersion", "--sizes", "2", "--formats", "fp64",
                         "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"theorems: error: {store.path} is being written by another run (pid "
                   f"{os.getpid()}); wait for it to finish or pass another --out"]
    assert theorem.name in store.path.name and not store.path.exists()


def test_an_environment_error_during_the_work_is_one_line_and_exit_2(monkeypatch, capsys):
    class FullDisk(FakeTheorem):
        def run(self, sweep, *, progress=False):
            """The disk fills while the store is written."""
            raise OSError(28, "No space left on device", "out/x.cells.jsonl")

    monkeypatch.setattr(cli, "get", lambda name: FullDisk())
    assert cli.main(["check", "fake"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["theorems: error: No space left on device (out/x.cells.jsonl); every cell "
                   "finished before it is kept, and the same command resumes"]


def test_a_bug_exits_3_with_its_traceback(monkeypatch, capsys):
    class Broken(FakeTheorem):
        def derive(self):
            """A bug inside the work."""
            raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "get", lambda name: Broken())
    assert cli.main(["derive", "fake"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err
    assert err.splitlines()[-1].startswith("theorems: internal error")


def test_figure_writes_three_files(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "get", lambda name: FakeTheorem())
    assert cli.main(["figure", "fake", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    names = ("fake.tex", "fake-figure-data.csv", "fake.pdf")  # fake.csv is check's rows
    assert printed == [str(tmp_path / name) for name in names]
    assert all((tmp_path / name).is_file() for name in names)


@pytest.mark.parametrize("theorem,status", [
    (FakeTheorem(), 0),
    (FakeTheorem(step_ok=False), 1),
    (FakeTheorem(certificate_ok=False), 1),
    (FakeTheorem(report_ok=False), 1),
], ids=["ok", "step-fails", "certificate-refuted", "bound-violated"])
@pytest.mark.parametrize("workers", ["1", "2"], ids=["in-process", "side-by-side"])
def test_verify_derives_certifies_checks_and_draws(monkeypatch, capsys, tmp_path, theorem,
                                                   status, workers):
    monkeypatch.setattr(cli, "names", lambda: ["fake"])
    monkeypatch.setattr(cli, "get", lambda name: theorem)
    assert cli.main(["verify", "--quick", "--workers", workers, "--out", str(tmp_path)]) \
        == status
    written = {path.name for path in (tmp_path / "fake").iterdir()}
    assert {"derivation.txt", "derivation.tex", "certificate.txt", "figure"} <= written
    # the figure's CSV lives apart from the rows' CSV (both are named after the theorem)
    drawn = {path.name for path in (tmp_path / "fake" / "figure").iterdir()}
    assert {"fake.tex", "fake-figure-data.csv", "fake.pdf"} <= drawn
    last = capsys.readouterr().out.splitlines()[-3]
    assert last.split()[0] == "fake" and last.split()[-1] == ("ok" if status == 0 else "FAILED")


class PooledTheorem(FakeTheorem):
    """A theorem whose sweep runs for real (four cells, in workers)."""

    evaluate = staticmethod(_sweep_cells.judged_where)
    plan, run = Theorem.plan, Theorem.run

    def __init__(self, name):
        super().__init__()
        self.name = name

    def axes(self, quick):
        """Four cells."""
        return {"sizes": [1, 2, 3, 4], "formats": ["bf16"], "policies": ["hw"], "seeds": [0]}


def test_verify_runs_every_sweep_on_one_pool_of_workers(monkeypatch, capsys, tmp_path):
    from numerics.sweep import ExecutorSpec

    opened = []
    real_open = ExecutorSpec.open

    def recording(self, **kwargs):
        opened.append((self.engine, self.workers))
        return real_open(self, **kwargs)

    monkeypatch.setattr(ExecutorSpec, "open", recording)
    pooled = {name: PooledTheorem(name) for name in ("one", "two")}
    monkeypatch.setattr(cli, "names", lambda: list(pooled))
    monkeypatch.setattr(cli, "get", pooled.__getitem__)
    assert cli.main(["verify", "--quick", "--workers", "2", "--out", str(tmp_path)]) == 0
    assert opened == [("processes", 2)]  # once for the run, not once per sweep
    pids = set()
    for name in pooled:
        with (tmp_path / name / f"{name}.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert sorted(int(row["n"]) for row in rows) == [1, 2, 3, 4]
        pids |= {int(row["pid"]) for row in rows}
    assert len(pids) <= 2 and os.getpid() not in pids


def test_verify_runs_the_sweeps_side_by_side_on_the_pool(monkeypatch, capsys, tmp_path):
    """The first theorem's one cell holds only if the second theorem's cell runs while it
    waits: one sweep after another would leave it waiting (and violated)."""

    class Waits(PooledTheorem):
        evaluate = staticmethod(_sweep_cells.judged_after_peer)

        def axes(self, quick):
            """One cell."""
            return {"sizes": [1], "formats": ["bf16"], "policies": ["hw"], "seeds": [0]}

    class Marks(Waits):
        evaluate = staticmethod(_sweep_cells.marks_peer)

    monkeypatch.setenv("SWEEP_TEST_PEER", str(tmp_path))
    theorems_by_name = {"one": Waits("one"), "two": Marks("two")}
    monkeypatch.setattr(cli, "names", lambda: list(theorems_by_name))
    monkeypatch.setattr(cli, "get", theorems_by_name.__getitem__)
    assert cli.main(["verify", "--quick", "--workers", "2", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    # printed in the registry's order, each theorem's block whole
    assert out.index("== one") < out.index("== two") < out.index("done at")


def test_verify_stops_at_a_store_another_run_holds_before_finishing_the_others(
        monkeypatch, capsys, tmp_path):
    from numerics import ResultStore

    pooled = {name: PooledTheorem(name) for name in ("one", "two", "three")}
    monkeypatch.setattr(cli, "names", lambda: list(pooled))
    monkeypatch.setattr(cli, "get", pooled.__getitem__)
    prepared = []
    real = cli._before_report

    def slowly(theorem, *args):
        prepared.append(theorem.name)
        time.sleep(1.5)  # the sweeps meanwhile: the second one refuses its store at once
        return real(theorem, *args)

    monkeypatch.setattr(cli, "_before_report", slowly)
    held = ResultStore(tmp_path / "two" / "two.cells.jsonl")
    with held.lock():
        assert cli.main(["verify", "--quick", "--workers", "2", "--out", str(tmp_path)]) == 2
    assert prepared in ([], ["one"])  # not after every other theorem's certificate and figure
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is being written by another run" in err[0]


VERIFY_INTERRUPTED = textwrap.dedent("""
    import signal
    import sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[2])
    import _sweep_cells
    from test_cli import PooledTheorem
    from theorems import cli

    class Slow(PooledTheorem):
        evaluate = staticmethod(_sweep_cells.judged_slowly)

        def axes(self, quick):
            return {"sizes": list(range(1, 200)), "formats": ["bf16"], "policies": ["hw"],
                    "seeds": [0]}

    slow = {name: Slow(name) for name in ("one", "two")}
    cli.names = lambda: list(slow)
    cli.get = slow.__getitem__
    sys.exit(cli.main(["verify", "--quick", "--workers", "2", "--out", sys.argv[1]]))
""")


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_verify_promptly_and_keeps_every_finished_cell(tmp_path, signum, status):
    stores = [tmp_path / name / f"{name}.cells.jsonl" for name in ("one", "two")]
    env = {**os.environ, "SWEEP_TEST_DELAY": "0.2"}
    process = subprocess.Popen([sys.executable, "-c", VERIFY_INTERRUPTED, str(tmp_path),
                                str(Path(_sweep_cells.__file__).parent)],
                               env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            stores[0].exists() and stores[0].read_bytes().count(b"\n") >= 4):
        time.sleep(0.02)
    started = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - started < 10, "waited for the sweeps to finish"
    assert process.returncode == status, stderr
    assert stderr.splitlines()[-1].startswith("theorems: interrupted; finished cells")
    finished = [json.loads(line) for path in stores if path.exists()
                for line in path.read_text(encoding="utf-8").splitlines()]
    assert 4 <= len(finished) < 2 * 199
    assert all(record["rows"][0]["verdict"] == "holds" for record in finished)


@pytest.mark.parametrize("text,sizes", [
    ("2,16,2^10,2**12", [2, 16, 1024, 4096]),
    ("2..2^4", [2, 4, 8, 16]),
    ("3..20", [4, 8, 16]),
    ("1..1", [1]),
    ("16 2", [16, 2]),
])
def test_parse_sizes(text, sizes):
    assert parse_sizes(text) == sizes


@pytest.mark.parametrize("text", ["2.5", "abc", "-4", "2^", "1e3", "1" * 40])
def test_parse_sizes_rejects(text):
    with pytest.raises(ValueError, match=r"is not a size; expected an integer such as 1024"):
        parse_sizes(text)


@pytest.mark.parametrize("text", ["9^999999999", "2..2^100000000", "2^63", str(2**63)])
def test_parse_sizes_refuses_huge_sizes_without_computing_them(text):
    with pytest.raises(ValueError, match=r"is above 2\^62"):
        parse_sizes(text)


def test_theorem_and_statement_print():
    theorem = FakeTheorem()
    assert str(theorem) == "fake  (nowhere)\n  assume x real\n  then   exp(x) >= x"
    assert repr(theorem) == "<Theorem fake: a stand-in>"
    assert theorem.statement._repr_latex_() == "$e^x \\ge x$"


def test_derive_latex(capsys):
    assert cli.main(["derive", SD, "--latex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"% The derivation of {SD}") and "\\begin{align*}" in out


PLUGIN_TESTS = """
import pytest
import theorems.pytest_plugin as plugin
from theorems import Theorem


def test_passes(theorem_check):
    report = theorem_check("softmax-dispersion", sizes=[2, 16], formats=["bf16"], quick=True)
    assert report.ok and report.rows
    assert {row["format"] for row in report.rows} == {"bf16"}


class Unproved(Theorem):
    name = "unproved"

    def axes(self, quick):
        return {"sizes": [2], "formats": ["fp64"], "policies": ["hw"], "seeds": [0]}

    @staticmethod
    def evaluate(params):
        return []

    def figure(self, out_dir, *, quick=True):
        return None

    def counterexample(self, **kwargs):
        return None

    def derive(self):
        from proofs import Derivation, Step, ge
        import sympy as sp
        x = sp.Symbol("x", real=True)
        claim = ge(sp.log(1 + sp.exp(x)) - x, 0)
        return Derivation.check("unproved", source="s", hypotheses={}, goal=claim,
                                steps=[Step("1", claim)])


def test_fails_when_a_step_is_unchecked(theorem_check, monkeypatch):
    monkeypatch.setattr(plugin, "get", lambda name: Unproved())
    theorem_check("unproved")


class NeverDerived(Unproved):
    def derive(self):
        raise AssertionError("derive ran before the arguments were validated")


def test_a_bad_argument_fails_before_any_work(theorem_check, monkeypatch):
    monkeypatch.setattr(plugin, "get", lambda name: NeverDerived())
    theorem_check("unproved", formats=["bf32"])
"""


def test_pytest_plugin_fixture(pytester):
    pytester.makepyfile(test_paper=PLUGIN_TESTS)
    # in a subprocess: an in-process run restores sys.modules afterwards, and numba, whose
    # typing registry outlives that, then meets its math functions registered twice
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*unproved: derivation not ok*"])
    result.stdout.fnmatch_lines(["*theorem_check('unproved'): unknown format 'bf32'; expected "
                                 "one of*"])
    assert "derive ran" not in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_a_figure_written_without_width_or_report_still_draws(tmp_path):
    from theorems._theorem import draw_figure

    class Before:
        def figure(self, out_dir, *, quick=True):
            return ("drawn", quick)

    class Now:
        def figure(self, out_dir, *, quick=True, width="columnwidth", report=None):
            return ("drawn", quick, width, report)

    assert draw_figure(Before(), tmp_path, quick=False, width="textwidth",
                       report="rows") == ("drawn", False)
    assert draw_figure(Now(), tmp_path, quick=True, width="textwidth",
                       report="rows") == ("drawn", True, "textwidth", "rows")
    assert draw_figure(Now(), tmp_path, quick=True) == ("drawn", True, "columnwidth", None)
