"""A cell function for the sweep tests. It lives at module level, outside the test module, so
that spawned worker processes can import it cheaply.

Environment variables steer it: ``SWEEP_TEST_LOG`` (a file that gets one line per evaluation),
``SWEEP_TEST_FAIL_AT`` (raise on the cell with this ``n``) and ``SWEEP_TEST_DELAY`` (seconds to
sleep per cell).
"""

from __future__ import annotations

import json
import os
import time


def evaluate(params: dict) -> list[dict]:
    log = os.environ.get("SWEEP_TEST_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(params, sort_keys=True) + "\n")
    if os.environ.get("SWEEP_TEST_FAIL_AT") == str(params["n"]):
        raise RuntimeError(f"cell n={params['n']} fails on purpose")
    time.sleep(float(os.environ.get("SWEEP_TEST_DELAY", "0")))
    n = params["n"]
    return [{**params, "quantity": quantity, "value": value}
            for quantity, value in (("square", n * n), ("half", n / 2))]


def group(params: dict) -> dict:
    """Cells with the same parity share their setup."""
    return {"parity": params["n"] % 2}


def prepare(group: dict) -> dict:
    """The shared setup of a group: logged, so tests can count how often it is computed."""
    log = os.environ.get("SWEEP_TEST_PREPARE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(group, sort_keys=True) + "\n")
    import numpy as np

    return {"offset": np.array([10.0 * (group["parity"] + 1)])}


def evaluate_shared(params: dict, artifact: dict) -> list[dict]:
    """Like ``evaluate``, plus the group's offset; kills its own worker process once per cell
    when ``SWEEP_TEST_KILL_DIR`` is set (a marker file records the first attempt)."""
    marker_dir = os.environ.get("SWEEP_TEST_KILL_DIR")
    if marker_dir:
        marker = os.path.join(marker_dir, f"{params['n']}.attempt")
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8") as handle:
                handle.write(str(os.getpid()))
            os._exit(1)  # the worker dies mid-cell
    rows = evaluate(params)
    return [{**row, "offset": float(artifact["offset"][0])} for row in rows]


def blas_threads() -> int:
    """The largest thread count of this process's BLAS and OpenMP pools."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


def where(params: dict) -> list[dict]:
    """One row naming the process that evaluated the cell and whether ``json.tool`` (a module
    nothing here imports, so only a pool's preload) was imported there."""
    import sys

    return [{**params, "pid": os.getpid(), "preloaded": "json.tool" in sys.modules}]


def judged_where(params: dict) -> list[dict]:
    """A report row (a bound that holds) naming the process that evaluated the cell."""
    return [{"theorem": "pooled", "n": params["n"], "format": params["format"],
             "policy": params["policy"], "quantity": "q", "verdict": "holds", "mechanism": "",
             "pid": os.getpid()}]


def judged_after_peer(params: dict) -> list[dict]:
    """A judged row that holds only if the cell of another sweep ran meanwhile: cell ``n = 1``
    waits (up to 30 s) for the marker file that ``marks_peer`` writes in ``SWEEP_TEST_PEER``."""
    marker = os.path.join(os.environ["SWEEP_TEST_PEER"], "peer")
    deadline = time.monotonic() + 30
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    row = judged_where(params)[0]
    return [{**row, "verdict": "holds" if os.path.exists(marker) else "violated"}]


def marks_peer(params: dict) -> list[dict]:
    """A judged row that holds; writes the marker ``judged_after_peer`` waits for."""
    with open(os.path.join(os.environ["SWEEP_TEST_PEER"], "peer"), "w", encoding="utf-8"):
        pass
    return judged_where(params)


def judged_slowly(params: dict) -> list[dict]:
    """``judged_where`` after ``SWEEP_TEST_DELAY`` seconds."""
    time.sleep(float(os.environ.get("SWEEP_TEST_DELAY", "0")))
    return judged_where(params)
