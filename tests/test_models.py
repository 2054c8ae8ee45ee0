"""The shared models (MLP with a cross-entropy head at a temperature, sparse autoencoders) against
independent computations: mpmath at 40 digits for the MLP and its loss, per-row loops with a full
sort for the SAE encoders, exact identities for the decoder's column handling."""

from __future__ import annotations

import importlib
import inspect
import math

import mpmath
import numpy as np
import pytest
from _devices import cupy_or_skip

from numerics.errors import InvalidArgument
from numerics.formats import FORMAT_NAMES, get_format
from numerics.models import (
    activation,
    activation_derivative,
    cross_entropy,
    mlp_forward,
    normalise_columns,
    random_mlp,
    random_sae,
    sae_forward,
    sae_loss,
    tangent_projection,
)
from numerics.policies import POLICY_NAMES


def _mp_gelu(x):
    c = mpmath.sqrt(2 / mpmath.pi)
    return x / 2 * (1 + mpmath.tanh(c * (x + mpmath.mpf("0.044715") * x**3)))


def _mp_mlp(model, X, name):
    """Every layer's features and the logits, entry by entry in mpmath."""
    phi = (lambda v: max(v, 0)) if name == "relu" else _mp_gelu
    h = [[mpmath.mpf(float(v)) for v in row] for row in X]
    features = []
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        a = [[mpmath.fsum(mpmath.mpf(float(w[o, j])) * row[j] for j in range(w.shape[1]))
              + mpmath.mpf(float(b[o])) for o in range(w.shape[0])] for row in h]
        if i == len(model.weights) - 1:
            return features, a
        h = [[phi(v) for v in row] for row in a]
        features.append(h)
    raise AssertionError


@pytest.fixture(autouse=True)
def _forty_digits():
    with mpmath.workdps(40):
        yield


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_mlp_forward_matches_mpmath(name):
    model = random_mlp((3, 5, 4, 3), activation=name, init="uniform", seed=2)
    X = np.random.default_rng(7).standard_normal((4, 3))
    out = mlp_forward(model, X, "fp64")
    want_features, want_logits = _mp_mlp(model, X, name)
    assert len(out.features) == 2
    for got, want in zip(out.features, want_features, strict=True):
        np.testing.assert_allclose(got, np.array(want, dtype=float), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out.logits, np.array(want_logits, dtype=float), rtol=1e-13,
                               atol=1e-15)


def test_gelu_and_its_derivative_match_mpmath():
    a = np.linspace(-6, 6, 97)
    got = activation(a, "gelu", "fp64", "hw")
    slope = activation_derivative(a, "gelu", "fp64", "hw")
    for value, want, d in zip(a, got, slope, strict=True):
        x = mpmath.mpf(float(value))
        assert abs(want - float(_mp_gelu(x))) <= 1e-15 * max(1.0, abs(float(want)))
        assert abs(d - float(mpmath.diff(_mp_gelu, x))) <= 1e-14
    np.testing.assert_array_equal(activation_derivative(a, "relu", "fp64", "hw"), a > 0)


@pytest.mark.parametrize("temperature", [1.0, 0.25, 7.0])
def test_cross_entropy_matches_mpmath(temperature):
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((6, 5)) * 4
    y = rng.integers(0, 5, 6)
    T = mpmath.mpf(temperature)
    terms = [mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(float(v)) / T) for v in row))
             - mpmath.mpf(float(row[label])) / T for row, label in zip(Z, y, strict=True)]
    want = float(mpmath.fsum(terms) / len(terms))
    got = cross_entropy(Z, y, "fp64", temperature=temperature)
    assert got.dtype == np.float64 and abs(float(got) - want) <= 1e-14 * abs(want)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_mlp_results_stay_in_the_format(fmt, policy):
    model = random_mlp((4, 6, 3), activation="gelu", seed=0)
    X = np.random.default_rng(0).standard_normal((5, 4))
    out = mlp_forward(model, X, fmt, policy)
    storage = get_format(fmt).dtype
    assert out.logits.dtype == storage and all(h.dtype == storage for h in out.features)
    loss = cross_entropy(out.logits, np.array([0, 1, 2, 0, 1]), fmt, policy, temperature=3.0)
    assert loss.dtype == storage and loss.shape == ()
    rounded = get_format(fmt).round(np.asarray(out.z, dtype=np.float64))
    np.testing.assert_array_equal(np.asarray(out.z, dtype=np.float64), rounded)


def test_strict_accumulation_is_worse_than_hw_in_bf16():
    # a 512-wide layer: bf16 sequential sums carry ~sqrt(512) more rounding than fp32 sums
    model = random_mlp((512, 64), seed=1)
    X = np.random.default_rng(1).standard_normal((64, 512))
    exact = mlp_forward(model, X, "fp64").logits
    hw = np.abs(mlp_forward(model, X, "bf16", "hw").logits.astype(np.float64) - exact)
    strict = np.abs(mlp_forward(model, X, "bf16", "strict").logits.astype(np.float64) - exact)
    scale = np.abs(exact).max()
    assert hw.max() <= 2.0**-8 * scale  # one rounding of the output: half an ulp
    assert strict.mean() > 3 * hw.mean()


def test_random_mlp_is_seeded_and_scaled():
    a, b = random_mlp((256, 256, 10), seed=5), random_mlp((256, 256, 10), seed=5)
    assert all(np.array_equal(p, q) for p, q in zip(a.params, b.params, strict=True))
    assert not np.array_equal(a.weights[0], random_mlp((256, 256, 10), seed=6).weights[0])
    assert abs(a.weights[0].std() / math.sqrt(2 / 256) - 1) < 0.02  # 65536 draws: sd ~0.3%
    u = random_mlp((50, 20), init="uniform", scale=2.0, seed=0)
    assert np.abs(u.weights[0]).max() <= 2.0 / math.sqrt(50)
    assert np.abs(u.biases[0]).max() <= 1.0 / math.sqrt(50)
    assert a.sizes == (256, 256, 10) and len(a.params) == 4


def test_sae_initialisation():
    sae = random_sae(8, 20, kind="jumprelu", seed=4)
    assert np.abs(sae.W_enc).max() <= 1 / math.sqrt(8)
    np.testing.assert_allclose(np.linalg.norm(sae.W_dec, axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(sae.W_dec * np.linalg.norm(sae.W_enc, axis=1), sae.W_enc.T,
                               rtol=1e-14)
    assert not sae.b_enc.any() and not sae.b_dec.any()
    np.testing.assert_allclose(np.exp(sae.log_threshold), 1e-3, rtol=1e-15)
    assert sae.names[-1] == "log_threshold" and len(sae.params) == 5


def _reference_codes(sae, X, k=None, theta=None):
    """Codes by a per-row loop with a full sort (not a partition)."""
    pre = (X - sae.b_dec) @ sae.W_enc.T + sae.b_enc
    codes = np.zeros_like(pre)
    for b, row in enumerate(pre):
        order = np.argsort(-row, kind="stable") if k else np.arange(row.size)
        for j in order[: k or row.size]:
            u = max(row[j], 0.0)
            if theta is None or u > theta[j]:
                codes[b, j] = u
    return pre, codes


@pytest.mark.parametrize("kind", ["relu", "topk", "jumprelu"])
def test_sae_forward_and_loss(kind):
    rng = np.random.default_rng(11)
    sae = random_sae(6, 9, kind=kind, k=3 if kind == "topk" else None, seed=2)
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in sae.params[:4]]
    if kind == "jumprelu":
        params.append(np.log(rng.uniform(0.05, 0.3, 9)))
    sae = sae.with_params(params)
    X = rng.standard_normal((7, 6))
    theta = np.exp(sae.log_threshold) if kind == "jumprelu" else None
    pre, codes = _reference_codes(sae, X, sae.k, theta)
    out = sae_forward(sae, X, "fp64")
    np.testing.assert_allclose(out.pre, pre, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(out.codes > 0, codes > 0)
    np.testing.assert_allclose(out.codes, codes, rtol=1e-13, atol=1e-15)
    recon = codes @ sae.W_dec.T + sae.b_dec
    mse = math.fsum(((recon - X) ** 2).ravel()) / X.size
    reg = {"relu": codes.sum() / 7, "topk": 0.0, "jumprelu": (codes > 0).sum() / 7}[kind]
    loss = sae_loss(sae, X, "fp64", gamma=0.01)
    assert loss.mse == pytest.approx(mse, rel=1e-13)
    assert loss.reg == pytest.approx(reg, rel=1e-13)
    assert loss.total == pytest.approx(mse + 0.01 * reg, rel=1e-13)
    if kind == "topk":
        assert ((out.codes > 0).sum(axis=1) <= 3).all()


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "fp8-e5m2"])
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_sae_in_a_format(fmt, policy):
    sae = random_sae(5, 12, kind="topk", k=2, seed=0)
    X = np.random.default_rng(2).standard_normal((4, 5))
    out = sae_forward(sae, X, fmt, policy)
    for array in (out.pre, out.codes, out.reconstruction):
        as64 = np.asarray(array, dtype=np.float64)
        np.testing.assert_array_equal(as64, get_format(fmt).round(as64))
    assert normalise_columns(sae.W_dec, fmt, policy).dtype == get_format(fmt).dtype


def test_decoder_column_handling():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((6, 10)) * rng.uniform(0.1, 5, 10)
    unit = normalise_columns(A)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=0), 1.0, rtol=1e-15)
    np.testing.assert_allclose(unit * np.linalg.norm(A, axis=0), A, rtol=1e-14)
    G = rng.standard_normal((6, 10))
    P = tangent_projection(G, unit)
    np.testing.assert_allclose(np.sum(P * unit, axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(tangent_projection(P, unit), P, atol=1e-14)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: random_mlp((3,)), "at least an input"),
        (lambda: random_mlp((3, 0)), "sizes\\[1\\]=0"),
        (lambda: random_mlp((3, 2), activation="tanh"), "unknown activation"),
        (lambda: activation(np.ones(2), "gelu2", "fp32", "hw"), "did you mean 'gelu'"),
        (lambda: mlp_forward(random_mlp((3, 2)), np.ones((4, 2))), "expected \\(samples, 3\\)"),
        (lambda: cross_entropy(np.ones((2, 3)), np.array([0, 3])), "classes 0..2"),
        (lambda: cross_entropy(np.ones((2, 3)), np.array([0.0, 1.0])), "integer class"),
        (lambda: cross_entropy(np.ones((2, 3)), np.array([0, 1]), temperature=0), "temperature"),
        (lambda: random_sae(4, 6, kind="topk"), "k=None"),
        (lambda: random_sae(4, 6, kind="topk", k=7), "k=7"),
        (lambda: random_sae(4, 6, kind="pursuit"), "unknown kind"),
        (lambda: sae_forward(random_sae(4, 6), np.ones((2, 5))), "expected \\(samples, 4\\)"),
        (lambda: random_mlp((3, 2)).with_params([np.ones((2, 3))]), "expected 2"),
        (lambda: mlp_forward(random_mlp((2, 2)), np.array([[np.nan, 1.0]])),
         "1 NaN value in X"),
        (lambda: sae_forward(random_sae(2, 3), np.array([[1e5, 1.0]]), "fp16"),
         "X overflow fp16"),
    ],
)
def test_bad_input_is_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.gpu
def test_cupy_matches_numpy():
    cupy = cupy_or_skip()
    model = random_mlp((4, 8, 3), activation="gelu", seed=0)
    gpu = random_mlp((4, 8, 3), activation="gelu", seed=0, backend="cupy")
    X = np.random.default_rng(0).standard_normal((5, 4))
    for fmt in ("fp64", "bf16"):
        want = mlp_forward(model, X, fmt).logits.astype(np.float64)
        got = cupy.asnumpy(mlp_forward(gpu, cupy.asarray(X), fmt).logits).astype(np.float64)
        np.testing.assert_allclose(got, want, rtol=2.0**-7, atol=1e-12)
    sae = random_sae(4, 6, kind="topk", k=2, seed=0, backend="cupy")
    codes = sae_forward(sae, cupy.asarray(X), "fp32").codes
    assert int((codes > 0).sum(axis=1).max()) <= 2


@pytest.mark.parametrize("package", ["numerics.models", "numerics.train", "numerics.solvers"])
def test_facades_export_documented_names(package):
    module = importlib.import_module(package)
    assert module.__doc__ and sorted(module.__all__) == sorted(set(module.__all__))
    public = {name for name in dir(module) if not name.startswith("_")}
    public -= {name for name in public if inspect.ismodule(getattr(module, name))}
    assert public == set(module.__all__)
    for name in module.__all__:
        value = getattr(module, name)
        if callable(value):
            assert inspect.getdoc(value), f"{package}.{name} has no docstring"


def test_layer_norm_jacobian_matches_mpmath_derivatives():
    from numerics.models.layers import layer_norm_jacobian

    x, gain, eps = [0.3, -1.2, 2.0, 0.7], [1.0, 2.0, 0.5, 1.5], 1e-5

    def norm(a, *values):
        values = list(values)
        mean = mpmath.fsum(values) / len(values)
        var = mpmath.fsum((v - mean) ** 2 for v in values) / len(values)
        return gain[a] * (values[a] - mean) / mpmath.sqrt(var + eps)

    jacobian = layer_norm_jacobian(np.array(x), np.array(gain), eps=eps)
    with mpmath.workdps(30):
        for a in range(4):
            for b in range(4):
                order = tuple(int(i == b) for i in range(4))
                exact = mpmath.diff(lambda *v, a=a: norm(a, *v), x, order)
                assert jacobian[a, b] == pytest.approx(float(exact), rel=1e-12, abs=1e-14)
