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
