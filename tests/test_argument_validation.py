"""Bad input: one table of bad calls to the public API, each a ValueError or TypeError with a
one-line message; then the same mistakes on the command line, each one stderr line and exit 2."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import pytest
import sympy as sp

import theorems
import theorems.softmax_dispersion as sd
from numerics import entropy as entropy_kernel
from numerics import get_backend, get_format, get_policy, grid, logsumexp, run_sweep, softmax
from numerics._validate import check_row_stochastic
from proofs import certify, ge

THEOREM = theorems.get("softmax-dispersion")
x = sp.Symbol("x", real=True)
HAS_CUPY = importlib.util.find_spec("cupy") is not None


def e(function, match, *, cli=None, cli_match=None, marks=(), **kwargs):
    """One bad call: ``function(**kwargs)`` must raise with a message matching ``match``; ``cli``
    is the same mistake on the command line (its message matching ``cli_match`` or ``match``)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    name = getattr(function, "__qualname__", repr(function))
    return pytest.param(function, kwargs, match, cli, cli_match or match, marks=marks,
                        id=f"{name}({shown})")


def noop(params):
    return []


SD = "softmax-dispersion"
CHECK = THEOREM.check
BAD_CALLS = [
    # the sweep arguments of Theorem.check, validated before any work
    e(CHECK, r"^n=0 must be a positive integer$", sizes=[0], cli=["check", SD, "--sizes", "0"]),
    e(CHECK, r"^n=-4 must be a positive integer$", sizes=[16, -4]),
    e(CHECK, r"^n=1073741824 must be an integer <= 67108864$", sizes=[2**30],
      cli=["check", SD, "--sizes", "2^30"]),
    e(CHECK, r"^expected int but got n=2\.5 \(type=float\)$", sizes=[2.5],
      cli=["check", SD, "--sizes", "2.5"], cli_match=r"^sizes='2\.5' is not a size"),
    e(CHECK, r"^sizes='2,16' is a string; pass a list such as \['2,16'\]$", sizes="2,16"),
    e(CHECK, r"^expected int but got n='16' \(type=str\)$", sizes=["16"]),
    e(CHECK, r"^formats='bf16' is a string; pass a list such as \['bf16'\]$", formats="bf16"),
    e(CHECK, r"^policies='hw' is a string", policies="hw"),
    e(CHECK, r"^sizes=\[\] is empty; give at least one value$", sizes=[],
      cli=["check", SD, "--sizes", ""]),
    e(CHECK, r"^unknown format 'bf32'; expected one of fp64, fp32, fp16, bf16, fp8-e4m3, "
             r"fp8-e5m2 \(did you mean '(bf16|fp32)'\?\)$", formats=["bf16", "bf32"],
      cli=["check", SD, "--formats", "bf16", "bf32"]),
    e(CHECK, r"expected str but got format=.*bfloat16.*bf16", formats=[ml_dtypes.bfloat16]),
    e(CHECK, r"^formats=\[\] is empty", formats=[], cli=["check", SD, "--formats", ""]),
    e(CHECK, r"^unknown policy 'fast'; expected one of hw, strict$", policies=["fast"],
      cli=["check", SD, "--policies", "fast"]),
    e(CHECK, r"^policies=\[\] is empty", policies=[], cli=["check", SD, "--policies", ""]),
    e(CHECK, r"^seeds=\[\] is empty", seeds=[], cli=["check", SD, "--seeds", ""]),
    e(CHECK, r"^seed=-1 must be an integer >= 0$", seeds=[-1],
      cli=["check", SD, "--seeds", "-1"]),
    e(CHECK, r"^expected int but got seed=0\.5", seeds=[0.5],
      cli=["check", SD, "--seeds", "0.5"], cli_match=r"^seed='0\.5' must be an integer$"),
    e(CHECK, r"^unknown backend 'torch'; expected one of numpy, cupy$", backend="torch",
      cli=["check", SD, "--backend", "torch"]),
    e(CHECK, r"^backend='cupy' needs CuPy", backend="cupy", cli=["check", SD, "--backend", "cupy"],
      marks=pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed")),
    e(CHECK, r"^workers=0 must be a positive integer$", workers=0,
      cli=["check", SD, "--workers", "0"]),
    e(CHECK, r"^expected int but got workers=1\.5", workers=1.5,
      cli=["check", SD, "--workers", "1.5"], cli_match=r"^workers='1\.5' must be an integer$"),
    # the registry
    e(theorems.get, r"^unknown theorem 'softmax-dispersal'; .*did you mean 'softmax-dispersion'",
      name="softmax-dispersal", cli=["derive", "softmax-dispersal"]),
    e(theorems.get, r"^unknown theorem 'softmax'", name="softmax", cli=["certify", "softmax"]),
    # formats, policies, backends
    e(get_format, r"^pass 'bf16', not ", fmt=ml_dtypes.bfloat16),
    e(get_format, r"did you mean 'fp8-e4m3'", fmt="fp8_e4m3"),
    e(get_policy, r"^unknown policy 'strcit'; expected one of hw, strict \(did you mean "
                  r"'strict'\?\)$", policy="strcit"),
    e(get_backend, r"^unknown backend 'jax'", name="jax"),
    # kernels
    e(softmax, r"^1 NaN value in logits \(first at index 1\); pass finite logits$",
      logits=[0.0, np.nan]),
    e(softmax, r"^1 infinite value in logits \(first at index 0\)",
      logits=[np.inf, 0.0], fmt="bf16"),
    e(softmax, r"^logits overflow fp16 \(max 65504\) at index 1", logits=[0.0, 7e4], fmt="fp16"),
    e(softmax, r"^logits are empty; pass at least one value$", logits=[]),
    e(softmax, r"^temperature=0\.0 must be > 0$", logits=[0.0, 1.0], temperature=0.0),
    e(softmax, r"^pass 'fp8-e4m3', not ", logits=[0.0], fmt=ml_dtypes.float8_e4m3fn),
    e(logsumexp, r"^2 NaN values in logits \(first at index 0\)",
      logits=[np.nan, 1.0, np.nan], policy="strict"),
    e(entropy_kernel, r"^1 NaN value in probabilities", p=[0.5, np.nan]),
    # row-stochastic matrices
    e(check_row_stochastic, r"^P is not row-stochastic: row 0 sums to 0\.9 \(atol=1e-12\)$",
      P=[[0.5, 0.4], [0.5, 0.5]]),
    e(check_row_stochastic, r"^A is not row-stochastic: row 1 sums to 1\.001",
      P=np.array([[1.0, 0.0], [0.5, 0.501]]), name="A"),
    e(check_row_stochastic, r"^P is not row-stochastic: entry \(0, 1\) = -0\.5 < 0$",
      P=[[1.5, -0.5], [0.5, 0.5]]),
    e(check_row_stochastic, r"^P has shape \(2,\); expected a 2-D matrix$", P=[0.5, 0.5]),
    e(check_row_stochastic, r"^1 NaN value in P", P=[[np.nan, 1.0]]),
    # certificates
    e(certify, r"^box\['x'\]=\(1\.0, 0\.0\) must be a finite range with lo <= hi$",
      claim=ge(sp.exp(x), x), box={x: (1, 0)}),
    e(certify, r"^box\['x'\]=\(0\.0, inf\) must be a finite range", claim=ge(sp.exp(x), x),
      box={"x": (0, float("inf"))}),
    e(certify, r"^box has no range for x; give x=\(lo, hi\)$", claim=ge(sp.exp(x), x),
      box={"y": (0, 1)}),
    e(certify, r"^expected an inequality or an expression but got claim=Eq\(x, 1\)$",
      claim=sp.Eq(x, 1), box={x: (0, 1)}),
    # sweeps
    e(grid, r"^n=\[\] is empty; give at least one value$", n=[], seed=[0]),
    e(run_sweep, r"^cells=\[\] is empty", cells=[], evaluate=noop),
    e(run_sweep, r"^workers=0 must be a positive integer$", cells=grid(n=[1]), evaluate=noop,
      workers=0),
    # the softmax-dispersion REPL functions
    e(sd.paper_bounds, r"^n=0 must be a positive integer$", n=0, spread=1.0),
    e(sd.max_weight_bound, r"^n=-3 must be a positive integer$", n=-3, spread=1.0),
    e(sd.min_weight_bound, r"^n=2\.5 must be a positive integer$", n=2.5, spread=1.0),
    e(sd.max_weight_bound, r"^spread=-1\.0 must be finite and >= 0$", n=4, spread=-1.0),
    e(sd.paper_bounds, r"^spread=\[1\.0, -2\.0\] must be finite and >= 0$", n=4,
      spread=[1.0, -2.0]),
    e(sd.min_weight_bound, r"^temperature=0\.0 must be finite and > 0$", n=4, spread=1.0,
      temperature=0.0),
    e(sd.min_size_for_dispersion, r"^spread=-2\.0 must be finite and >= 0$", target=0.9,
      spread=-2.0),
    e(sd.min_size_for_dispersion, r"^target=0\.0 must lie in \(0, 1\]$", target=0.0,
      spread=1.0),
    e(sd.sharpness_gap, r"^unknown format 'bf32'", fmt="bf32"),
    e(sd.adaptive_temperature_softmax, r"^1 NaN value in logits", logits=[0.0, np.nan]),
    e(THEOREM.counterexample, r"^spread=-1\.0 must be >= 0$", spread=-1.0),
    e(THEOREM.counterexample, r"^sharpness=0\.0 must be > 0$", sharpness=0.0),
]


@pytest.mark.parametrize("function,kwargs,match,cli,cli_match", BAD_CALLS)
def test_bad_call_raises_one_line(function, kwargs, match, cli, cli_match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        function(**kwargs)
    assert "\n" not in str(info.value)


def test_validation_comes_before_any_work(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ValueError):
        THEOREM.check(sizes=[2, 0], out=out)
    with pytest.raises(ValueError):
        THEOREM.check(sizes=[2], workers=0, out=out)
    assert not out.exists()


def test_the_backend_from_the_environment_is_validated(monkeypatch):
    monkeypatch.setenv("THEOREMS_BACKEND", "torch")
    with pytest.raises(ValueError, match=r"^unknown backend 'torch'; expected one of numpy"):
        THEOREM.check(sizes=[2])
    with pytest.raises(ValueError, match=r"^unknown backend 'torch'"):
        get_backend()
    monkeypatch.delenv("THEOREMS_BACKEND")
    assert get_backend() is np


CLI_ROWS = [param for param in BAD_CALLS if param.values[3] is not None]
CLI_ROWS += [
    pytest.param(None, {}, None, ["frobnicate"], r"^argument verb: invalid choice: 'frobnicate'",
                 id="cli-unknown-verb"),
    pytest.param(None, {}, None, ["check", SD, "--sizes"],
                 r"^argument --sizes: expected at least one argument$", id="cli-missing-value"),
    pytest.param(None, {}, None, ["figure", SD], r"required: --out", id="cli-figure-no-out"),
    pytest.param(None, {}, None, ["check"], r"required: name", id="cli-check-no-name"),
    pytest.param(None, {}, None, ["verify", "--workers", "0", "--out", "OUT"],
                 r"^workers=0 must be a positive integer$", id="cli-verify-workers"),
    pytest.param(None, {}, None, ["figure", "softmax-dispersal", "--out", "OUT"],
                 r"^unknown theorem 'softmax-dispersal'", id="cli-figure-unknown"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "0", "--out", "OUT"],
                 r"^n=0 must be a positive integer$", id="cli-no-output-on-bad-input"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "9^999999999", "--out", "OUT"],
                 r"^sizes='9\^999999999' is above 2\^62", id="cli-huge-power"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "2..2^100000000", "--out", "OUT"],
                 r"is above 2\^62", id="cli-huge-range"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "2", "--out", "/proc/theorems-x"],
                 r"^out='/proc/theorems-x' is not a writable directory", id="cli-unwritable-out"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "2", "--out", ""],
                 r"^out='' is not a directory path", id="cli-empty-out"),
    pytest.param(None, {}, None, ["check", SD, "--sizes", "2", "--dask", "2", "--scheduler",
                                  "tcp://localhost:1", "--out", "OUT"], r"not both",
                 id="cli-dask-and-scheduler"),
    pytest.param(None, {}, None, ["verify", "--out", "/proc/theorems-x"],
                 r"^out='/proc/theorems-x/softmax-dispersion' is not a writable directory",
                 id="cli-verify-unwritable-out"),
]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Run every command line of the table, a few subprocesses at a time."""
    out = tmp_path_factory.mktemp("cli") / "out"
    env = {k: v for k, v in os.environ.items() if k != "THEOREMS_BACKEND"}

    def run(param):
        args = [str(out) if arg == "OUT" else arg for arg in param.values[3]]
        done = subprocess.run([sys.executable, "-m", "theorems", *args], capture_output=True,
                              text=True, env=env, timeout=300)
        return param.id, (done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(run, CLI_ROWS))
    return results, out


@pytest.mark.parametrize("function,kwargs,match,cli,cli_match", CLI_ROWS)
def test_cli_prints_one_error_line_and_exits_2(cli_runs, request, function, kwargs, match, cli,
                                               cli_match):
    results, out = cli_runs
    status, stdout, stderr = results[request.node.callspec.id]
    lines = stderr.splitlines()
    assert status == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("theorems: error: ")
    message = lines[0].removeprefix("theorems: error: ")
    assert re.search(cli_match, message), message
    assert stdout == ""
    assert not out.exists()
