"""CuPy: the same rounding and the same kernels as on NumPy (skipped without CuPy or a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import DTYPES, NARROW

import theorems.representational_collapse as collapse
from numerics import FORMAT_NAMES, FORMATS, POLICY_NAMES, entropy, round_to, softmax, to_numpy
from numerics.formats import round_by_quantum
from numerics.models.transformer import random_transformer
from numerics.representational_collapse import TOKEN, family_prefix
from numerics.representational_collapse.branches import branch_forward

cupy = pytest.importorskip("cupy")
try:
    DEVICES = cupy.cuda.runtime.getDeviceCount()
except Exception:  # no driver or no runtime: the same as no device
    DEVICES = 0
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(DEVICES < 1, reason="no CUDA device")]

UINT = {8: np.uint8, 16: np.uint16}


def probes(dtype) -> np.ndarray:
    """Every value of each narrow format, the midpoints between neighbours and the numbers next
    to them, specials, and random bit patterns, in ``dtype``."""
    parts = []
    for name in NARROW:
        bits = 8 if name.startswith("fp8") else 16
        with np.errstate(invalid="ignore"):
            values = (np.arange(2**bits, dtype=np.uint32).astype(UINT[bits]).view(DTYPES[name])
                      .astype(np.float64))
        values = np.unique(np.abs(values[np.isfinite(values)]))
        mid = (values[:-1] + values[1:]) / 2
        parts += [values, mid, mid * (1 + 2.0**-30), mid * (1 - 2.0**-30)]
    with np.errstate(over="ignore"):
        points = np.concatenate(parts).astype(dtype)
    points = np.concatenate([points, np.nextafter(points, dtype(np.inf)),
                             np.array([np.inf, np.nan, 1e38, 3.4e38], dtype=dtype)])
    rng = np.random.default_rng(0)
    if dtype == np.float32:
        randoms = rng.integers(0, 2**32, 2**16, dtype=np.uint64).astype(np.uint32).view(dtype)
    else:
        randoms = rng.integers(0, 2**64, 2**16, dtype=np.uint64).view(dtype)
    return np.concatenate([points, -points, randoms])


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(actual), nan)
    view = np.uint32 if expected.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(actual[~nan].view(view), expected[~nan].view(view))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_round_to_on_cupy_equals_numpy(name, dtype):
    host = probes(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = round_to(host, FORMATS[name])
    for rounder in (round_to, round_by_quantum):
        device = rounder(cupy.asarray(host), FORMATS[name])
        assert isinstance(device, cupy.ndarray)
        assert_same_bits(to_numpy(device), expected)


def logits(rows: int = 4, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.normal(0, 3, (rows, n)) * np.array([[0.1], [1.0], [3.0], [10.0]])[:rows]


def as_float64(x) -> np.ndarray:
    return np.asarray(to_numpy(x)).astype(np.float64)


@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("name", FORMAT_NAMES)
def test_softmax_and_entropy_on_cupy_equal_numpy(name, policy):
    fmt = FORMATS[name]
    host = logits()
    for temperature in (1.0, 0.7):
        expected = as_float64(softmax(host, name, policy, temperature=temperature))
        got = as_float64(softmax(cupy.asarray(host), name, policy, temperature=temperature))
        compare(got, expected, fmt, policy)
    probabilities = np.random.default_rng(2).dirichlet(np.ones(300), size=4)
    expected = as_float64(entropy(probabilities, name, policy))
    got = as_float64(entropy(cupy.asarray(probabilities), name, policy))
    compare(got, expected, fmt, policy)


def compare(got, expected, fmt, policy) -> None:
    """Within one ulp of the format where it is narrower than float32 (the GPU's float32 exp and
    reduction order differ from NumPy's only below the format's resolution); within the compute
    error of a 300-term reduction and a few libm ulps for fp32 and fp64."""
    assert got.shape == expected.shape
    reduction = 0 if policy == "strict" else 2 * (16 + 3 + 2)
    ulps = 1.0 if fmt.bits < 32 else 4.0 + reduction
    close = np.abs(got - expected) <= ulps * fmt.ulp(expected)
    # CuPy's float32 kernels flush subnormal results to zero (cupy/cupy#8382): bf16 and fp32
    # values below float32's smallest normal may come back as 0 on the GPU
    tiny = float(np.finfo(np.float32).tiny)
    flushed = (fmt.container == np.float32) & (np.abs(expected) < tiny) & (got == 0)
    assert (close | flushed).all()


def test_output_stays_on_the_device():
    out = softmax(cupy.asarray(logits()), "bf16", "hw")
    assert isinstance(out, cupy.ndarray) and out.dtype == np.float32
    assert isinstance(softmax(cupy.asarray(logits()), "fp16", "strict"), cupy.ndarray)


@pytest.mark.parametrize("fmt,policy", [("fp64", "hw"), ("bf16", "strict"), ("fp8-e4m3", "hw")])
def test_branch_forward_on_cupy_equals_numpy(fmt, policy):
    model = random_transformer(vocab=32, d=8, layers=2, heads=2, pe="rope", seed=0)
    prefix = family_prefix("sampled", 40)
    host = branch_forward(model, prefix, TOKEN, fmt=fmt, policy=policy)
    device = branch_forward(model, cupy.asarray(prefix), TOKEN, fmt=fmt, policy=policy)
    for a, b in ((host.short, device.short), (host.long, device.long)):
        assert isinstance(b, cupy.ndarray)
        a, b = as_float64(a), as_float64(b)
        if policy == "strict" or fmt == "fp64":
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=0)
        else:  # a GPU's float32 matmul may sum in another order: at most a rounding apart
            assert np.all(np.abs(b - a) <= 2 * FORMATS[fmt].ulp(a))


@pytest.mark.parametrize("experiment", ["repeated", "perturbed-softmax"])
@pytest.mark.parametrize("fmt,policy", [("fp64", "hw"), ("bf16", "strict")])
def test_collapse_cells_run_on_cupy(experiment, fmt, policy):
    # the same rows; in fp64 the margins are far above a GPU's last-bit differences, so the same
    # verdicts too
    params = {"experiment": experiment, "n": 64, "format": fmt, "policy": policy, "seed": 0,
              "layers": 1, "pe": "alibi", "d": 16, "backend": "numpy"}
    if experiment == "perturbed-softmax":
        params.update(layers=None, pe=None, d=None)
    host = collapse.THEOREM.evaluate(params)
    device = collapse.THEOREM.evaluate({**params, "backend": "cupy"})
    assert [(r["quantity"], r["n"]) for r in device] == [(r["quantity"], r["n"]) for r in host]
    assert all(r["backend"] == "cupy" for r in device)
    if fmt == "fp64":
        assert [r["verdict"] for r in device] == [r["verdict"] for r in host]
