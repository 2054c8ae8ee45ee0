"""Sweeps and the result store: grid order, resuming after an interruption or a kill, torn lines,
worker processes; and the report built from the rows."""

from __future__ import annotations

import collections
import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import _sweep_cells
import numpy as np
import pytest

from numerics import Cell, ResultStore, Sweep, grid, run_sweep
from numerics.errors import InvalidArgument
from numerics.sweep.store import ArtifactStore, pack_tree, unpack_tree
from theorems import Report

TESTS = Path(__file__).resolve().parent


def expected_rows(cells) -> list[dict]:
    """The rows of ``_sweep_cells.evaluate``, written out again."""
    return [{**cell.as_dict(), "quantity": quantity, "value": value}
            for cell in cells
            for quantity, value in (("square", cell.as_dict()["n"] ** 2),
                                    ("half", cell.as_dict()["n"] / 2))]


@pytest.fixture
def evaluations(tmp_path, monkeypatch):
    """Count how often each cell is evaluated, across processes, through a log file."""
    log = tmp_path / "evaluations.log"
    monkeypatch.setenv("SWEEP_TEST_LOG", str(log))
    monkeypatch.delenv("SWEEP_TEST_FAIL_AT", raising=False)
    monkeypatch.delenv("SWEEP_TEST_DELAY", raising=False)

    def counts() -> collections.Counter:
        if not log.exists():
            return collections.Counter()
        return collections.Counter(
            json.dumps(json.loads(line), sort_keys=True)
            for line in log.read_text(encoding="utf-8").splitlines())

    return counts


def stored_lines(path: Path) -> list[dict]:
    """Every line of a store, which must all be complete JSON records."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def assert_each_cell_stored_once(path: Path, cells) -> None:
    keys = [record["key"] for record in stored_lines(path)]
    assert sorted(keys) == sorted(cell.key for cell in cells)


def test_grid_is_the_product_with_the_last_axis_fastest():
    cells = grid(n=[1, 2], format=["fp16", "bf16"], seed=[0, 1, 2])
    assert [c.as_dict() for c in cells] == [
        {"n": n, "format": f, "seed": s}
        for n in (1, 2) for f in ("fp16", "bf16") for s in (0, 1, 2)]
    assert list(cells[0].as_dict()) == ["n", "format", "seed"]
    assert cells[0] == Cell.of(n=1, format="fp16", seed=0)
    assert cells[0].key == '{"format": "fp16", "n": 1, "seed": 0}'
    assert len({c.key for c in cells}) == len(cells) == 12


def test_empty_grids_and_bad_workers_raise():
    with pytest.raises(ValueError, match=r"^format=\[\] is empty; give at least one value$"):
        grid(n=[1], format=[])
    with pytest.raises(ValueError, match=r"^cells=\[\] is empty"):
        run_sweep([], _sweep_cells.evaluate)
    with pytest.raises(ValueError, match=r"^workers=0 must be a positive integer$"):
        run_sweep(grid(n=[1]), _sweep_cells.evaluate, workers=0)


def test_rows_come_back_in_cell_order(evaluations):
    cells = grid(n=[3, 1, 2], format=["bf16", "fp16"])
    assert run_sweep(cells, _sweep_cells.evaluate) == expected_rows(cells)
    assert set(evaluations().values()) == {1}


def test_a_rerun_skips_finished_cells(tmp_path, evaluations):
    cells = grid(n=list(range(1, 9)), format=["bf16"])
    path = tmp_path / "sweep.cells.jsonl"
    first = run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    second = run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    assert first == second == expected_rows(cells)
    assert len(evaluations()) == len(cells) and set(evaluations().values()) == {1}
    assert_each_cell_stored_once(path, cells)
    # a larger grid computes only the new cells
    more = grid(n=list(range(1, 11)), format=["bf16"])
    assert run_sweep(more, _sweep_cells.evaluate, store=ResultStore(path)) == expected_rows(more)
    assert len(evaluations()) == 10 and set(evaluations().values()) == {1}


def test_a_sweep_interrupted_by_an_error_resumes(tmp_path, evaluations, monkeypatch):
    cells = grid(n=list(range(1, 11)), seed=[0])
    path = tmp_path / "sweep.cells.jsonl"
    monkeypatch.setenv("SWEEP_TEST_FAIL_AT", "6")
    with pytest.raises(RuntimeError, match="fails on purpose"):
        run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    assert [record["key"] for record in stored_lines(path)] == [c.key for c in cells[:5]]
    monkeypatch.delenv("SWEEP_TEST_FAIL_AT")
    rows = run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    assert rows == expected_rows(cells)
    assert_each_cell_stored_once(path, cells)
    counts = evaluations()
    assert [counts[c.key] for c in cells] == [1] * 5 + [2] + [1] * 4


KILLED_SWEEP = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    import _sweep_cells
    from numerics import ResultStore, grid, run_sweep
    run_sweep(grid(n=list(range(1, 41)), seed=[0]), _sweep_cells.evaluate,
              store=ResultStore(sys.argv[1]))
""")


def test_a_killed_sweep_resumes_and_stores_every_cell_once(tmp_path, evaluations):
    cells = grid(n=list(range(1, 41)), seed=[0])
    path = tmp_path / "sweep.cells.jsonl"
    env = {**os.environ, "SWEEP_TEST_DELAY": "0.05"}
    process = subprocess.Popen([sys.executable, "-c", KILLED_SWEEP, str(path), str(TESTS)],
                               env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 8:
                break
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    finished = ResultStore(path).load()
    assert 8 <= len(finished) < len(cells)
    rows = run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    assert rows == expected_rows(cells)
    assert_each_cell_stored_once(path, cells)
    counts = evaluations()
    assert all(counts[c.key] >= 1 for c in cells)
    assert sum(counts[c.key] for c in cells) <= len(cells) + 1  # at most the cell in flight
    assert all(counts[key] == 1 for key in finished)


def test_a_torn_last_line_is_ignored_and_recomputed(tmp_path, evaluations):
    cells = grid(n=list(range(1, 7)))
    path = tmp_path / "sweep.cells.jsonl"
    run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")
    assert set(ResultStore(path).load()) == {c.key for c in cells[:-1]}
    rows = run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path))
    assert rows == expected_rows(cells)
    assert_each_cell_stored_once(path, cells)
    assert [evaluations()[c.key] for c in cells] == [1] * 5 + [2]


def test_cells_from_other_code_are_recomputed(tmp_path, evaluations):
    cells = grid(n=[1, 2])
    path = tmp_path / "sweep.cells.jsonl"
    run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path, version="a"))
    assert ResultStore(path, version="b").load() == {}
    run_sweep(cells, _sweep_cells.evaluate, store=ResultStore(path, version="b"))
    assert set(evaluations().values()) == {2}
    assert len(ResultStore(path, version="a").load()) == 2


def test_store_keeps_non_finite_numbers_and_numpy_scalars(tmp_path):
    import numpy as np

    store = ResultStore(tmp_path / "deep" / "store.jsonl")
    store.append("k", [{"a": np.float32(0.5), "b": math.inf, "c": np.int64(3), "d": None}])
    (rows,) = store.load().values()
    assert rows == [{"a": 0.5, "b": math.inf, "c": 3, "d": None}]
    with pytest.raises(TypeError, match="cannot store"):
        store.append("j", [{"a": object()}])


def test_two_workers_give_the_same_rows_as_one(tmp_path, evaluations):
    cells = grid(n=list(range(1, 9)), format=["fp16", "bf16"])
    one = run_sweep(cells, _sweep_cells.evaluate, workers=1)
    path = tmp_path / "two.cells.jsonl"
    two = Sweep(tuple(cells), _sweep_cells.evaluate, ResultStore(path), workers=2).run()
    assert two == one == expected_rows(cells)
    assert_each_cell_stored_once(path, cells)
    assert all(evaluations()[c.key] == 2 for c in cells)


def test_progress_bar_does_not_change_the_rows(tmp_path):
    cells = grid(n=[1, 2, 3])
    assert run_sweep(cells, _sweep_cells.evaluate, progress=True) == expected_rows(cells)


REPORT_ROWS = [
    {"theorem": "t", "format": "bf16", "policy": "hw", "quantity": "q", "verdict": "holds",
     "mechanism": "", "margin_ulps": 0.5, "margin_rel": 0.25},
    {"theorem": "t", "format": "bf16", "policy": "strict", "quantity": "q",
     "verdict": "precision-effect", "mechanism": "underflow", "margin_ulps": -3.0,
     "margin_rel": -1.0},
    {"theorem": "t", "format": "bf16", "policy": "strict", "quantity": "q", "verdict": "holds",
     "mechanism": "", "margin_ulps": 2.0, "margin_rel": 0.5},
]


def test_report_counts_and_verdict():
    report = Report("t", list(REPORT_ROWS))
    assert report.counts == {"holds": 2, "violated": 0, "precision-effect": 1}
    assert list(report.counts) == ["holds", "violated", "precision-effect"]
    assert report.ok and report.violations == []
    unnamed = Report("t", [{**REPORT_ROWS[1], "mechanism": ""}])
    assert not unnamed.ok  # a precision effect must name its mechanism
    unexplained = Report("t", [{**REPORT_ROWS[1], "mechanism": "unexplained"}])
    assert not unexplained.ok
    violated = Report("t", [*REPORT_ROWS, {**REPORT_ROWS[0], "verdict": "violated"}])
    assert not violated.ok and len(violated.violations) == 1
    assert report.summary_rows() == [
        {"format": "bf16", "policy": "hw", "rows": 1, "holds": 1, "precision-effect": 0,
         "violated": 0, "mechanisms": "", "min margin_ulps": 0.5, "min margin_rel": 0.25,
         "within tolerance": 0},
        {"format": "bf16", "policy": "strict", "rows": 2, "holds": 1, "precision-effect": 1,
         "violated": 0, "mechanisms": "underflow", "min margin_ulps": 2.0,
         "min margin_rel": 0.5, "within tolerance": 0},
    ]


@pytest.mark.parametrize("row,problem", [
    ({"theorem": "t", "format": "bf16", "policy": "hw", "verdict": "holds", "mechanism": ""},
     "row 0 lacks quantity"),
    ({**REPORT_ROWS[0], "verdict": "fine"}, "row 0 has verdict='fine'"),
])
def test_a_row_outside_the_schema_is_refused(row, problem):
    with pytest.raises(ValueError, match=problem):
        Report("t", [row])


def test_report_csv_round_trips(tmp_path):
    rows = [*REPORT_ROWS, {**REPORT_ROWS[0], "extra": "x, y"}]
    path = Report("t", rows).to_csv(tmp_path / "sub" / "t.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["theorem", "format", "policy", "quantity", "verdict", "mechanism",
                             "margin_ulps", "margin_rel", "extra"]
    assert [float(r["margin_ulps"]) for r in read] == [r["margin_ulps"] for r in rows]
    assert read[-1]["extra"] == "x, y" and read[0]["extra"] == ""


def test_report_prints_a_table():
    assert str(Report("t", list(REPORT_ROWS))) == (
        "t: 3 rows; 2 holds, 0 violated, 1 precision-effect\n"
        "format  policy  rows  holds  precision-effect  violated  min margin_ulps  min margin_rel"
        "  within tolerance  mechanisms\n"
        "bf16    hw      1     1      0                 0         0.5              0.25"
        "            0\n"
        "bf16    strict  2     1      1                 0         2                0.5"
        "             0                 underflow\n"
        "key:\n"
        "  min margin_ulps   the smallest distance from the bound among rows that hold, in ulps "
        "of the format at the bound; positive on the side where the claim holds, negative where "
        "a row holds within its rounding tolerance (the observed value passes the bound by less "
        "than the row's tolerance_ulps; the exact value meets it)\n"
        "  min margin_rel    the same distance over |bound|\n"
        "  within tolerance  how many rows hold that way (negative margin)\n"
        "  underflow         the observed value is exactly zero where the exact one is not"
    )
    assert repr(Report("t", list(REPORT_ROWS))) == (
        "<Report t: 2 holds, 0 violated, 1 precision-effect>")


def shared_rows(cells) -> list[dict]:
    return [{**row, "offset": 10.0 * (row["n"] % 2 + 1)} for row in expected_rows(cells)]


def test_group_artifacts_are_computed_once_and_reused_on_resume(tmp_path, monkeypatch,
                                                                evaluations):
    log = tmp_path / "prepare.log"
    monkeypatch.setenv("SWEEP_TEST_PREPARE_LOG", str(log))
    cells = grid(n=[1, 2, 3, 4, 5])
    store = ResultStore(tmp_path / "g.cells.jsonl", version="v1")
    rows = run_sweep(cells, _sweep_cells.evaluate_shared, store=store,
                     group=_sweep_cells.group, prepare=_sweep_cells.prepare)
    assert rows == shared_rows(cells)
    assert sorted(log.read_text().splitlines()) == ['{"parity": 0}', '{"parity": 1}']
    artifacts = sorted((tmp_path / "g.cells.artifacts").glob("*.npz"))
    assert len(artifacts) == 2
    # a resumed sweep with new cells reuses both artifacts from disk
    more = grid(n=[1, 2, 3, 4, 5, 6, 7])
    assert run_sweep(more, _sweep_cells.evaluate_shared, store=store, group=_sweep_cells.group,
                     prepare=_sweep_cells.prepare) == shared_rows(more)
    assert len(log.read_text().splitlines()) == 2
    assert all(count == 1 for count in evaluations().values())


@pytest.fixture(scope="module")
def dask_available():
    return pytest.importorskip("distributed")


def test_a_two_worker_local_cluster_gives_the_in_process_rows(tmp_path, dask_available):
    from numerics import executor_spec

    cells = grid(n=[1, 2, 3, 4, 5, 6])
    store = ResultStore(tmp_path / "dask.cells.jsonl")
    rows = run_sweep(cells, _sweep_cells.evaluate_shared, store=store,
                     executor=executor_spec(dask=2), group=_sweep_cells.group,
                     prepare=_sweep_cells.prepare)
    assert rows == run_sweep(cells, _sweep_cells.evaluate_shared, group=_sweep_cells.group,
                             prepare=_sweep_cells.prepare) == shared_rows(cells)
    assert_each_cell_stored_once(store.path, cells)
    assert_ran_in_workers(store, cells)


def assert_ran_in_workers(store: ResultStore, cells, *, at_least: int = 1) -> set[str]:
    """Every cell's record says it ran in a process other than this one, for a time >= 0; the
    rows themselves carry no trace of it. Returns the workers seen."""
    ran = store.ran()
    assert sorted(ran) == sorted(cell.key for cell in cells)
    workers = {record["worker"] for record in ran.values()}
    assert all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in workers)
    assert all(record["seconds"] >= 0 for record in ran.values())
    assert not any("worker" in row or "seconds" in row
                   for rows in store.load().values() for row in rows)
    assert len(workers) >= at_least
    return workers


def test_a_pool_records_which_worker_ran_each_cell_and_for_how_long(tmp_path, evaluations,
                                                                    monkeypatch):
    monkeypatch.setenv("SWEEP_TEST_DELAY", "0.3")  # long enough that both workers take cells
    cells = grid(n=[1, 2, 3, 4, 5, 6])
    store = ResultStore(tmp_path / "pool.cells.jsonl")
    run_sweep(cells, _sweep_cells.evaluate, store=store, workers=2)
    assert_ran_in_workers(store, cells, at_least=2)
    assert all(record["seconds"] >= 0.3 for record in store.ran().values())


def test_a_worker_killed_mid_cell_loses_nothing(tmp_path, monkeypatch, dask_available):
    from numerics import executor_spec

    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("SWEEP_TEST_KILL_DIR", str(markers))
    cells = grid(n=[1, 2, 3])
    store = ResultStore(tmp_path / "killed.cells.jsonl")
    rows = run_sweep(cells, _sweep_cells.evaluate_shared, store=store,
                     executor=executor_spec(dask=2), group=_sweep_cells.group,
                     prepare=_sweep_cells.prepare)
    assert rows == shared_rows(cells)
    assert sorted(p.name for p in markers.iterdir()) == ["1.attempt", "2.attempt", "3.attempt"]
    assert_each_cell_stored_once(store.path, cells)


@pytest.mark.parametrize("kwargs,match", [
    ({"dask": 2, "scheduler": "tcp://h:8786"}, "not both"),
    ({"scheduler": "localhost"}, "is not an address"),
    ({"dask": 0}, "dask=0 must be a positive integer"),
    ({"workers": 5000}, "workers=5000 must be an integer <= 1024"),
])
def test_engine_arguments_are_validated_before_any_work(kwargs, match, dask_available):
    from numerics import executor_spec
    from numerics._validate import InvalidArgument

    with pytest.raises(InvalidArgument, match=match):
        executor_spec(**kwargs)


@pytest.mark.parametrize("garbage", [b"[1, 2, 3]\n", b"\xff\xfe not utf-8\n", b'{"key": "k"}\n',
                                     b'{"key": 3, "rows": []}\n', b'{"key": "k", "rows": [1]}\n',
                                     b"null\n", b"{not json\n"])
def test_a_corrupted_store_line_is_skipped_and_the_sweep_resumes(tmp_path, garbage):
    cells = grid(n=[1, 2, 3])
    store = ResultStore(tmp_path / "s.cells.jsonl")
    run_sweep(cells[:2], _sweep_cells.evaluate, store=store)
    with store.path.open("ab") as handle:
        handle.write(garbage)
    assert sorted(store.load()) == sorted(cell.key for cell in cells[:2])
    assert store.skipped == 1
    assert run_sweep(cells, _sweep_cells.evaluate, store=store) == expected_rows(cells)
    assert run_sweep(cells, _sweep_cells.evaluate, store=store) == expected_rows(cells)


def test_skipped_lines_are_reported_in_one_warning_line(tmp_path, capsys):
    store = ResultStore(tmp_path / "s.cells.jsonl")
    run_sweep(grid(n=[1]), _sweep_cells.evaluate, store=store)
    with store.path.open("ab") as handle:
        handle.write(b"[1]\n\xff\n{}\n")
    run_sweep(grid(n=[1, 2]), _sweep_cells.evaluate, store=store)
    assert capsys.readouterr().err.splitlines() == [
        f"theorems: warning: skipped 3 malformed lines in {store.path}; their cells, if any, "
        f"are computed again"]


def test_a_second_sweep_into_a_held_store_refuses_at_once(tmp_path, evaluations):
    store = ResultStore(tmp_path / "s.cells.jsonl")
    busy = rf"^{store.path} is being written by another run \(pid {os.getpid()}\)"
    with store.lock(), pytest.raises(InvalidArgument, match=busy):
        run_sweep(grid(n=[1, 2]), _sweep_cells.evaluate, store=ResultStore(store.path))
    assert not evaluations()  # refused before computing anything
    assert run_sweep(grid(n=[1, 2]), _sweep_cells.evaluate, store=store) == expected_rows(
        grid(n=[1, 2]))  # and the lock is free again


INTERRUPTED_POOL = textwrap.dedent("""
    import signal
    import sys
    # a run started in the background by a shell without job control inherits SIGINT ignored;
    # give it the interactive disposition, which is what the test is about
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, sys.argv[2])
    import _sweep_cells
    from theorems import cli
    from numerics import ResultStore, grid, run_sweep
    from numerics.sweep import executor_spec

    def work():
        run_sweep(grid(n=list(range(1, 200)), seed=[0]), _sweep_cells.evaluate,
                  store=ResultStore(sys.argv[1]), executor=executor_spec(workers=2))
        return 0
    cli._prepare = lambda args: work
    sys.exit(cli.main(["list"]))
""")


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_pool_sweep_promptly_and_keeps_every_finished_cell(
        tmp_path, signum, status):
    path = tmp_path / "sweep.cells.jsonl"
    env = {**os.environ, "SWEEP_TEST_DELAY": "0.2"}
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTED_POOL, str(path), str(TESTS)],
                               env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            path.exists() and path.read_bytes().count(b"\n") >= 4):
        time.sleep(0.02)
    workers = _children(process.pid)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert stderr.splitlines()[-1].startswith("theorems: interrupted; finished cells")
    finished = ResultStore(path).load()
    assert 4 <= len(finished) < 199
    cells = grid(n=list(range(1, 200)), seed=[0])
    assert all(finished[key] == expected_rows([c])
               for c in cells for key in [c.key] if key in finished)
    time.sleep(1)
    assert not [pid for pid in workers if _alive(pid)]  # no worker outlives the sweep


def test_pool_workers_exit_when_the_sweep_process_is_killed(tmp_path):
    path = tmp_path / "sweep.cells.jsonl"
    env = {**os.environ, "SWEEP_TEST_DELAY": "0.2"}
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTED_POOL, str(path), str(TESTS)],
                               env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            path.exists() and path.read_bytes().count(b"\n") >= 2):
        time.sleep(0.02)
    workers = _children(process.pid)
    assert workers
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [pid for pid in workers if _alive(pid)]:
        time.sleep(0.1)
    assert not [pid for pid in workers if _alive(pid)]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        pytest.skip("needs /proc to list child processes")
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_nested_artifact_packs_to_arrays_and_back(tmp_path):
    profile = {"size": 3, "rope": True, "pe": None, "gain": float("inf"), "name": "layer",
               "layers": [{"q": np.arange(3.0), "norm": {"eps": 1e-5, "s": np.ones((2, 2))}},
                          {"q": np.zeros(0), "norm": {}}]}
    store = ArtifactStore(tmp_path)
    store.save("k", pack_tree(profile))
    back = unpack_tree(store.load("k"))
    assert back.keys() == profile.keys() and back["layers"][1]["norm"] == {}
    assert (back["size"], back["rope"], back["pe"], back["gain"], back["name"]) == (
        3, True, None, float("inf"), "layer")
    np.testing.assert_array_equal(back["layers"][0]["norm"]["s"], np.ones((2, 2)))
    np.testing.assert_array_equal(back["layers"][0]["q"], np.arange(3.0))
    # a handle loads the same arrays where the task runs
    assert unpack_tree(store.handle("k").load())["layers"][0]["norm"]["eps"] == 1e-5
    with pytest.raises(TypeError, match="cannot pack object"):
        pack_tree({"x": object()})


def test_never_more_worker_processes_than_cells(monkeypatch):
    from numerics.sweep import executors

    started = []
    real = executors.ProcessExecutor.__init__

    def recording(self, workers, **kwargs):
        started.append(workers)
        real(self, workers, **kwargs)

    monkeypatch.setattr(executors.ProcessExecutor, "__init__", recording)
    cells = grid(n=[1, 2, 3])
    assert run_sweep(cells, _sweep_cells.evaluate, workers=1000) == expected_rows(cells)
    assert started == [3]


def test_pool_workers_share_the_cores_instead_of_oversubscribing_them():
    from _sweep_cells import blas_threads

    from numerics.sweep import executors

    with executors.ProcessExecutor(2) as pool:
        counts = [count for _, count in pool.run(blas_threads, {0: (), 1: ()})]
    assert counts == [max(1, (os.cpu_count() or 1) // 2)] * 2


@pytest.fixture
def fsyncs(monkeypatch):
    """The store file's size at each fsync of it (other files' fsyncs are not recorded)."""
    sizes: dict[int, list[int]] = collections.defaultdict(list)
    real = os.fsync

    def recording(descriptor):
        real(descriptor)
        status = os.fstat(descriptor)
        sizes[status.st_ino].append(status.st_size)

    monkeypatch.setattr(os, "fsync", recording)
    return lambda path: sizes[os.stat(path).st_ino]


def test_a_sweep_fsyncs_its_store_once_per_interval_and_at_its_end(tmp_path, fsyncs):
    cells = grid(n=list(range(1, 21)))
    batched = ResultStore(tmp_path / "batched.cells.jsonl", sync_interval=3600)
    assert run_sweep(cells, _sweep_cells.evaluate, store=batched) == expected_rows(cells)
    assert fsyncs(batched.path) == [batched.path.stat().st_size]  # one, after the last line
    each = ResultStore(tmp_path / "each.cells.jsonl", sync_interval=0)
    run_sweep(cells, _sweep_cells.evaluate, store=each)
    lengths = [len(line) for line in each.path.read_bytes().splitlines(keepends=True)]
    assert fsyncs(each.path) == [sum(lengths[:i + 1]) for i in range(len(cells))]


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt],
                         ids=["error", "interrupt"])  # the command line turns SIGTERM into one
def test_a_stopped_sweep_fsyncs_every_line_it_wrote(tmp_path, fsyncs, stop):
    def evaluate(params):
        if params["n"] == 6:
            raise stop("stopped on purpose")
        return _sweep_cells.evaluate(params)

    store = ResultStore(tmp_path / "s.cells.jsonl", sync_interval=3600)
    with pytest.raises(stop, match="stopped on purpose"):
        run_sweep(grid(n=list(range(1, 11))), evaluate, store=store)
    assert len(stored_lines(store.path)) == 5
    assert fsyncs(store.path) == [store.path.stat().st_size]


def test_a_pending_line_is_fsynced_within_the_interval_without_another_cell(tmp_path, fsyncs):
    store = ResultStore(tmp_path / "s.cells.jsonl", sync_interval=0.2)
    with store.lock():
        store.append("a", [{"x": 1}])
        store.append("b", [{"x": 2}])
        size = store.path.stat().st_size
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and fsyncs(store.path)[-1:] != [size]:
            time.sleep(0.01)
        assert fsyncs(store.path)[-1:] == [size]  # while the sweep still holds the store


def test_an_append_outside_a_sweep_is_fsynced_at_once(tmp_path, fsyncs):
    store = ResultStore(tmp_path / "s.cells.jsonl", sync_interval=3600)
    store.append("a", [{"x": 1}])
    store.append("b", [{"x": 2}])
    size = store.path.stat().st_size
    assert fsyncs(store.path) == [size // 2, size]


def test_sweeps_borrow_an_open_pool_and_leave_it_open(tmp_path):
    from numerics import executor_spec

    first, second = grid(n=[1, 2, 3, 4]), grid(n=[5, 6, 7, 8])
    with executor_spec(workers=2).open(preload=["json.tool"]) as pool:
        one = run_sweep(first, _sweep_cells.where, store=ResultStore(tmp_path / "1.jsonl"),
                        executor=pool)
        two = Sweep(tuple(second), _sweep_cells.where, ResultStore(tmp_path / "2.jsonl"),
                    executor=pool).run()
        pids = {row["pid"] for row in one + two}
        assert len(pids) <= 2 and os.getpid() not in pids  # the same two workers throughout
        assert all(row["preloaded"] for row in one + two)
        assert [row["n"] for row in one + two] == list(range(1, 9))
        # the pool outlives the sweeps that borrowed it
        assert [token for token, _ in pool.run(_sweep_cells.where, {0: ({"n": 0},)})] == [0]
    assert_each_cell_stored_once(tmp_path / "2.jsonl", second)


def test_sweeps_borrow_an_open_local_cluster(tmp_path, dask_available):
    from numerics import executor_spec

    cells = grid(n=[1, 2, 3, 4])
    expected = run_sweep(cells, _sweep_cells.evaluate_shared, group=_sweep_cells.group,
                         prepare=_sweep_cells.prepare)
    with executor_spec(dask=2).open() as cluster:
        for name in ("a", "b"):
            store = ResultStore(tmp_path / f"{name}.cells.jsonl")
            assert run_sweep(cells, _sweep_cells.evaluate_shared, store=store, executor=cluster,
                             group=_sweep_cells.group, prepare=_sweep_cells.prepare) == expected
            assert_each_cell_stored_once(store.path, cells)


def _worker_environ() -> tuple:
    return (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("MALLOC_MMAP_THRESHOLD_"),
            os.environ.get("OPENBLAS_NUM_THREADS"))


def _mapped_while_holding_64_mib() -> int | None:
    """The bytes glibc maps separately (``mallinfo2().hblkhd``) for a 64 MiB array: at least
    64 MiB where it maps each large array afresh (and returns it to the kernel, which zeroes new
    pages for the next), none where the array comes from the heap; ``None`` without glibc 2.33
    or newer."""
    import ctypes
    import ctypes.util

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    try:
        mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = Mallinfo2
    before = mallinfo2().hblkhd
    held = np.ones(1 << 23)
    mapped = mallinfo2().hblkhd - before
    del held
    return mapped


def _mapped_of(_token) -> int | None:
    return _mapped_while_holding_64_mib()


def test_pool_workers_keep_large_arrays_in_the_heap():
    from numerics.sweep import executors

    here = _mapped_while_holding_64_mib()  # this process: glibc's defaults
    if here is None:
        pytest.skip("glibc's mallinfo2 is not available here")
    assert here >= 1 << 26
    with executors.ProcessExecutor(2) as pool:
        mapped = [result for _, result in pool.run(_mapped_of, {0: (0,), 1: (1,)})]
    assert mapped == [0, 0]


def test_local_cluster_workers_keep_large_arrays_in_the_heap(dask_available):
    """Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which maps every temporary above
    128 KiB afresh (page faults on each allocation); a local cluster here sets glibc to keep
    arrays up to 1 GiB in the heap instead, and keeps one BLAS thread per worker."""
    from numerics.sweep.executors import DaskExecutor

    with DaskExecutor(workers=2) as executor:
        seen = executor._client.run(_worker_environ)
        mapped = executor._client.run(_mapped_while_holding_64_mib)
    assert len(seen) == 2 and set(seen.values()) == {(str(1 << 30), str(1 << 30), "1")}
    assert set(mapped.values()) <= {0, None}
