"""Training: every hand-written backward pass against central differences in fp64 (through the
harness) and against SymPy differentiation on a tiny network; the straight-through estimator
against its defining formula and an exact difference identity; the optimisers against updates
computed by hand in Python floats and ml_dtypes scalars; and a wrong gradient caught (negative
control)."""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy

from numerics.errors import InvalidArgument
from numerics.formats import FORMAT_NAMES, get_format
from numerics.models import (
    cross_entropy,
    mlp_forward,
    random_mlp,
    random_sae,
    sae_forward,
    sae_loss,
)
from numerics.policies import POLICY_NAMES
from numerics.train import (
    OPTIMISERS,
    Optimiser,
    gradcheck,
    init_state,
    mlp_backward,
    optimiser_step,
    sae_backward,
)


def _mlp_problem(activation, sizes=(3, 5, 4, 3), samples=6, seed=0):
    model = random_mlp(sizes, activation=activation, init="uniform", seed=seed)
    rng = np.random.default_rng(seed + 100)
    return model, rng.standard_normal((samples, sizes[0])), rng.integers(0, sizes[-1], samples)


def _mlp_loss(model, X, y, temperature):
    def loss(params):
        out = mlp_forward(model.with_params(params), X, "fp64")
        return float(cross_entropy(out.logits, y, "fp64", temperature=temperature))
    return loss


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("temperature", [1.0, 0.5, 10.0])
def test_mlp_backward_matches_central_differences(activation, temperature):
    model, X, y = _mlp_problem(activation, sizes=(3, 6, 5, 4, 3))
    grads = mlp_backward(model, mlp_forward(model, X, "fp64"), y, temperature=temperature)
    check = gradcheck(_mlp_loss(model, X, y, temperature), model.params, grads)
    assert check.checked == sum(p.size for p in model.params)
    assert check.ok(1e-6), str(check)


def _sae_problem(kind, seed=0, bandwidth=1e-3):
    rng = np.random.default_rng(seed)
    sae = random_sae(4, 7, kind=kind, k=3 if kind == "topk" else None, seed=seed)
    params = [p + 0.2 * rng.standard_normal(p.shape) for p in sae.params[:4]]
    if kind == "jumprelu":
        params.append(np.log(rng.uniform(0.05, 0.4, 7)))
    sae = dataclasses.replace(sae.with_params(params), bandwidth=bandwidth)
    return sae, rng.standard_normal((9, 4))


@pytest.mark.parametrize("kind", ["relu", "topk", "jumprelu"])
def test_sae_backward_matches_central_differences(kind):
    sae, X = _sae_problem(kind)
    grads = sae_backward(sae, sae_forward(sae, X, "fp64"), X, gamma=0.05)
    # JumpReLU's threshold has a straight-through gradient, not a derivative: checked below
    names = sae.names[:4]

    def loss(params):
        full = list(params.values()) + list(sae.params[4:])
        return sae_loss(sae.with_params(full), X, "fp64", gamma=0.05).total

    check = gradcheck(loss, {n: getattr(sae, n) for n in names},
                      dict(zip(names, grads[:4], strict=True)))
    assert check.ok(1e-6), str(check)


def test_jumprelu_straight_through_threshold_gradient():
    # a wide window (bandwidth 0.2) so that several entries fall inside it
    sae, X = _sae_problem("jumprelu", seed=3, bandwidth=0.2)
    # thresholds above half the window, so zero codes stay outside it
    sae = dataclasses.replace(sae, log_threshold=np.log(np.linspace(0.15, 0.4, 7)))
    out = sae_forward(sae, X, "fp64")
    theta = np.exp(sae.log_threshold)
    unit = np.maximum(out.pre, 0)
    # the reconstruction part, entry by entry as the reference's JumpReLU.backward defines it
    d_codes = (2 * (out.reconstruction - X) / X.size) @ sae.W_dec
    want = np.zeros(7)
    for b in range(X.shape[0]):
        for j in range(7):
            if abs((unit[b, j] - theta[j]) / 0.2) <= 0.5:
                want[j] -= theta[j] / 0.2 * d_codes[b, j]
    got = sae_backward(sae, out, X, gamma=0.0)[4]
    assert np.count_nonzero(want) >= 3
    np.testing.assert_allclose(got, want * theta, rtol=1e-12, atol=1e-15)
    # the L0 part: the reference's step function sees the codes, which are 0 below theta, so its
    # estimate is exactly (R(theta + eps/2) - R(theta)) / eps, a one-sided difference of the count
    gamma = 1.0
    total = sae_backward(sae, out, X, gamma=gamma)[4]
    from_reg = total - got
    for j in range(7):
        shifted = sae.log_threshold.copy()
        shifted[j] = math.log(theta[j] + 0.1)
        up = sae_loss(dataclasses.replace(sae, log_threshold=shifted), X, "fp64", gamma=gamma)
        base = sae_loss(sae, X, "fp64", gamma=gamma)
        assert from_reg[j] == pytest.approx(theta[j] * (up.reg - base.reg) / 0.2, abs=1e-12)
    assert np.count_nonzero(from_reg) >= 1


def _sympy_mlp(activation):
    """A 2-2-2 MLP on two samples as a SymPy expression in its weight symbols."""
    W1 = sympy.Matrix(2, 2, sympy.symbols("w1_0:4"))
    b1 = sympy.Matrix(sympy.symbols("b1_0:2"))
    W2 = sympy.Matrix(2, 2, sympy.symbols("w2_0:4"))
    b2 = sympy.Matrix(sympy.symbols("b2_0:2"))
    T = sympy.Rational(3, 2)
    X = [sympy.Matrix([sympy.Rational(1, 2), -1]), sympy.Matrix([sympy.Rational(-3, 4), 2])]
    labels = [1, 0]
    c = sympy.sqrt(2 / sympy.pi)
    phi = ((lambda a: sympy.Max(0, a)) if activation == "relu" else
           (lambda a: a / 2 * (1 + sympy.tanh(c * (a + sympy.Rational(44715, 10**6) * a**3)))))
    loss = 0
    for x, label in zip(X, labels, strict=True):
        h = (W1 * x + b1).applyfunc(phi)
        z = W2 * h + b2
        loss += sympy.log(sum(sympy.exp(v / T) for v in z)) - z[label] / T
    symbols = [*W1, *b1, *W2, *b2]
    return loss / 2, symbols, np.array([[0.5, -1.0], [-0.75, 2.0]]), np.array(labels), 1.5


def _sympy_gradient(loss, symbols, values) -> list[float]:
    """Differentiate ``loss`` symbolically in each symbol, then evaluate at 30 digits."""
    derivative = sympy.lambdify(symbols, [sympy.diff(loss, s) for s in symbols], "mpmath")
    with mpmath.workdps(30):
        return [float(v) for v in derivative(*values)]


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_mlp_backward_matches_sympy(activation):
    loss, symbols, X, y, T = _sympy_mlp(activation)
    model = random_mlp((2, 2, 2), activation=activation, init="uniform", seed=4)
    values = [mpmath.mpf(float(v)) for p in model.params for v in np.ravel(p)]
    want = _sympy_gradient(loss, symbols, values)
    grads = mlp_backward(model, mlp_forward(model, X, "fp64"), y, temperature=T)
    got = np.concatenate([np.ravel(g) for g in grads])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert float(sympy.lambdify(symbols, loss, "mpmath")(*values)) == pytest.approx(
        float(cross_entropy(mlp_forward(model, X, "fp64").logits, y, "fp64", temperature=T)),
        rel=1e-13)


def test_relu_sae_backward_matches_sympy():
    m, width, batch = 2, 3, 2
    We = sympy.Matrix(width, m, sympy.symbols(f"we0:{width * m}"))
    be = sympy.Matrix(sympy.symbols(f"be0:{width}"))
    Wd = sympy.Matrix(m, width, sympy.symbols(f"wd0:{width * m}"))
    bd = sympy.Matrix(sympy.symbols(f"bd0:{m}"))
    X = np.array([[0.8, -0.3], [-0.5, 1.1]])
    gamma = sympy.Rational(1, 10)
    mse, reg = 0, 0
    for row in X:
        x = sympy.Matrix([sympy.Float(v, 30) for v in row])
        s = (We * (x - bd) + be).applyfunc(lambda a: sympy.Max(0, a))
        mse += sum((v**2 for v in (Wd * s + bd - x)), sympy.Integer(0))
        reg += sum(sympy.Abs(v) for v in s)
    loss = mse / (batch * m) + gamma * reg / batch
    rng = np.random.default_rng(9)
    sae = random_sae(m, width, seed=1).with_params(
        [p + 0.3 * rng.standard_normal(p.shape) for p in random_sae(m, width, seed=1).params])
    symbols = [*We, *be, *Wd, *bd]
    want = _sympy_gradient(loss, symbols,
                           [mpmath.mpf(float(v)) for p in sae.params for v in np.ravel(p)])
    grads = sae_backward(sae, sae_forward(sae, X, "fp64"), X, gamma=0.1)
    np.testing.assert_allclose(np.concatenate([np.ravel(g) for g in grads]), want, rtol=1e-12,
                               atol=1e-15)


def test_a_wrong_gradient_is_caught():
    model, X, y = _mlp_problem("relu")
    forward = mlp_forward(model, X, "fp64")
    loss = _mlp_loss(model, X, y, 3.0)
    # the gradient at T = 1 for a loss at T = 3: off by a factor of about 3
    wrong = gradcheck(loss, model.params, mlp_backward(model, forward, y, temperature=1.0))
    assert wrong.max_relative_error > 0.5 and not wrong.ok()
    # one entry nudged by 1e-4: the harness names the parameter and the index
    grads = [g.copy() for g in mlp_backward(model, forward, y, temperature=3.0)]
    grads[2][1, 0] += 1e-4
    check = gradcheck(loss, model.params, grads)
    assert (check.parameter, check.index) == (2, (1, 0)) and check.max_relative_error > 1e-3
    assert check.analytic - check.numeric == pytest.approx(1e-4, rel=1e-3)
    assert "at 2[1, 0]" in str(check)


def test_a_diverged_network_gets_nan_gradients():
    model, X, y = _mlp_problem("relu")
    broken = model.with_params([np.full_like(p, np.nan) if i == 0 else p
                                for i, p in enumerate(model.params)])
    grads = mlp_backward(broken, mlp_forward(broken, X, "fp32"), y)
    assert all(g.dtype == np.float32 and np.isnan(g).all() for g in grads)


def test_loss_scale_multiplies_every_gradient():
    model, X, y = _mlp_problem("gelu")
    out = mlp_forward(model, X, "fp64")
    plain, scaled = (mlp_backward(model, out, y, temperature=2.0, loss_scale=s) for s in (1, 8))
    assert all(np.array_equal(8 * a, b) for a, b in zip(plain, scaled, strict=True))
    sae, Y = _sae_problem("jumprelu", bandwidth=0.5)
    out = sae_forward(sae, Y, "fp64")
    plain, scaled = (sae_backward(sae, out, Y, gamma=0.1, loss_scale=s) for s in (1, 8))
    for a, b in zip(plain, scaled, strict=True):
        np.testing.assert_allclose(8 * a, b, rtol=1e-14, atol=1e-300)


def test_gradcheck_rejects_mismatched_structures():
    with pytest.raises(InvalidArgument, match="shape"):
        gradcheck(lambda p: 0.0, [np.ones(3)], [np.ones(4)])
    with pytest.raises(InvalidArgument, match="one gradient per parameter"):
        gradcheck(lambda p: 0.0, [np.ones(3)], [np.ones(3), np.ones(3)])
    with pytest.raises(InvalidArgument, match="one gradient per parameter"):
        gradcheck(lambda p: 0.0, {"a": np.ones(3)}, {"b": np.ones(3)})


def _by_hand(kind, w, grads, lr, mu=0.9, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    """PyTorch's update rules, one Python float at a time."""
    w, v, m, s = float(w), 0.0, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            w -= lr * g
        elif kind == "momentum":
            v = mu * v + g
            w -= lr * v
        else:
            if kind == "adamw":
                w *= 1 - lr * wd
            m = b1 * m + (1 - b1) * g
            s = b2 * s + (1 - b2) * g * g
            w -= lr / (1 - b1**t) * (m / (math.sqrt(s) / math.sqrt(1 - b2**t) + eps))
    return w


@pytest.mark.parametrize("kind", OPTIMISERS)
@pytest.mark.parametrize(("fmt", "rtol"), [("fp64", 1e-14), ("fp32", 1e-5)])
def test_optimiser_steps_match_hand_computed_updates(kind, fmt, rtol):
    w0 = np.array([0.5, -1.25, 2.0])
    steps = [np.array([0.3, -0.2, 1.5]), np.array([-0.1, 0.4, 0.7]), np.array([0.2, 0.2, -2.0])]
    opt = Optimiser(kind, lr=0.05)
    state = init_state(opt, (w0,), fmt, "hw")
    for g in steps:
        (w,), state = optimiser_step(opt, state, (g,))
    assert w.dtype == get_format(fmt).dtype and state.count == 3
    want = [_by_hand(kind, w0[i], [g[i] for g in steps], 0.05) for i in range(3)]
    np.testing.assert_allclose(w, want, rtol=rtol)


def _bits(array) -> np.ndarray:
    array = np.asarray(array)
    return array.view(np.uint64 if array.dtype.itemsize == 8 else np.uint32)


@pytest.mark.parametrize("kind", ["adam", "adamw"])
@pytest.mark.parametrize("fmt", ["fp64", "fp32", "fp16", "bf16", "fp8-e4m3"])
def test_the_compiled_adam_step_gives_the_array_code_bits(kind, fmt, monkeypatch):
    """Under hw on NumPy, Adam(W) runs as one compiled pass; it must give every bit the array
    code gives: weights, both moments, over steps whose gradients hold signed zeros, tiny and
    huge values, infinities and NaN."""
    import numerics.train.optimisers as optimisers

    rng = np.random.default_rng(3)
    w0 = (rng.standard_normal(257) * 3, rng.standard_normal((4, 5)))
    special = np.array([0.0, -0.0, 1e-45, -1e-40, 1e-30, 3e38, -3e38, np.inf, -np.inf, np.nan])
    grads = []
    for step in range(6):
        g = rng.standard_normal(257) * 10.0 ** rng.integers(-8, 4, 257)
        if step >= 3:  # after a few clean steps, so the moments have bits worth comparing
            g[: special.size] = special
        grads.append((g, rng.standard_normal((4, 5))))
    opt = Optimiser(kind, lr=5e-4)

    def run():
        state = init_state(opt, w0, fmt, "hw")
        with np.errstate(all="ignore"):
            for g in grads:
                _, state = optimiser_step(opt, state, g, grad_scale=2.0)
        return state

    calls, compiled = [], optimisers._fused_adam
    monkeypatch.setattr(optimisers, "_fused_adam",
                        lambda *args: calls.append(1) or compiled(*args))
    fused = run()
    assert len(calls) == 2 * len(grads)  # the compiled pass ran for both parameters
    monkeypatch.setattr(optimisers, "_is_fused", lambda w, policy: False)
    plain = run()
    for got, want in zip((*fused.weights, *fused.slots["first"], *fused.slots["second"]),
                         (*plain.weights, *plain.slots["first"], *plain.slots["second"]),
                         strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(_bits(got), _bits(want))


def test_grad_scale_is_divided_out():
    opt = Optimiser("adam", lr=0.1)
    g = (np.array([0.25, -3.0]),)
    plain = optimiser_step(opt, init_state(opt, (np.ones(2),), "fp64"), g)[0]
    scaled = optimiser_step(opt, init_state(opt, (np.ones(2),), "fp64"), (g[0] * 1024,),
                            grad_scale=1024.0)[0]
    np.testing.assert_array_equal(plain[0], scaled[0])


def test_strict_sgd_rounds_every_operation_in_bf16():
    bf16 = ml_dtypes.bfloat16
    w0 = np.array([0.7, -3.3, 1e-3, 100.0])
    g = np.array([0.123, 7.77, -0.5, 0.031])
    opt = Optimiser("sgd", lr=0.01)
    (w,), _ = optimiser_step(opt, init_state(opt, (w0,), "bf16", "strict"), (g,))
    assert w.dtype == bf16
    want = [bf16(bf16(a) - bf16(bf16(0.01) * bf16(b))) for a, b in zip(w0, g, strict=True)]
    np.testing.assert_array_equal(w, np.array(want, dtype=bf16))


def test_master_weights_keep_updates_that_strict_loses():
    # lr * g = 1e-3 is below half an ulp of 1 in bf16 (2^-9): strict never moves, hw's fp32 master
    # accumulates ten steps and its bf16 copy moves
    opt = Optimiser("sgd", lr=1e-3)
    for policy, want in (("strict", 1.0),
                         ("hw", float(ml_dtypes.bfloat16(np.float32(1) - 10 * np.float32(1e-3))))):
        state = init_state(opt, (np.ones(1),), "bf16", policy)
        for _ in range(10):
            (w,), state = optimiser_step(opt, state, (np.ones(1),))
        assert float(w[0]) == want, policy
    master = np.float32(1)
    for _ in range(10):
        master = np.float32(master - np.float32(np.float32(1e-3) * np.float32(1)))
    assert state.weights[0].dtype == np.float32 and state.weights[0][0] == master


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("policy", POLICY_NAMES)
@pytest.mark.parametrize("kind", OPTIMISERS)
def test_optimiser_results_stay_in_the_format(fmt, policy, kind):
    opt = Optimiser(kind, lr=0.01)
    params = (np.linspace(-1, 1, 6).reshape(2, 3), np.array([0.5, 0.25]))
    state = init_state(opt, params, fmt, policy)
    grads = (np.full((2, 3), 0.3), np.array([-0.2, 0.1]))
    new, state = optimiser_step(opt, state, grads)
    f = get_format(fmt)
    assert all(p.dtype == f.dtype for p in new)
    if policy == "strict":
        for array in (*state.weights, *(a for slot in state.slots.values() for a in slot)):
            as64 = np.asarray(array, dtype=np.float64)
            np.testing.assert_array_equal(as64[np.isfinite(as64)],
                                          f.round(as64)[np.isfinite(as64)])


def test_training_a_small_mlp_in_bf16_reduces_the_loss():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 8)) * 3
    y = rng.integers(0, 3, 90)
    X = centres[y] + rng.standard_normal((90, 8))
    model = random_mlp((8, 16, 3), seed=0)
    opt = Optimiser("adam", lr=0.01)
    state = init_state(opt, model.params, "bf16", "hw")
    first = None
    for _ in range(60):
        out = mlp_forward(model, X, "bf16", "hw")
        loss = float(cross_entropy(out.logits, y, "bf16", "hw", temperature=2.0))
        first = loss if first is None else first
        params, state = optimiser_step(opt, state, mlp_backward(model, out, y, temperature=2.0))
        model = model.with_params(params)
    assert loss < 0.3 * first
    assert (np.argmax(out.logits.astype(np.float32), axis=1) == y).mean() > 0.95


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Optimiser("rmsprop", lr=0.1), "unknown kind"),
        (lambda: Optimiser("sgd", lr=0), "lr=0.0 must be > 0"),
        (lambda: Optimiser("adam", lr=0.1, beta1=1.0), "beta1=1.0 must be < 1"),
        (lambda: Optimiser("sgd", lr=0.1, weight_decay=0.1), "kind='adamw' only"),
        (lambda: optimiser_step(Optimiser("sgd", lr=0.1),
                                init_state(Optimiser("sgd", lr=0.1), (np.ones(2),)), ()),
         "expected 1"),
        (lambda: optimiser_step(Optimiser("sgd", lr=0.1),
                                init_state(Optimiser("sgd", lr=0.1), (np.ones(2),)),
                                (np.ones(3),)), "expected \\(2,\\)"),
    ],
)
def test_bad_input_is_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)
