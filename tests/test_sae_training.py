"""Training the sparse autoencoders: every kind's backward pass against central differences in
fp64 (and a matching-pursuit gradient that holds the codes fixed caught), the matching-pursuit
encoder against a per-sample loop, its per-atom gradient sums against an in-order bf16 loop, the
training loop against a per-sample re-implementation of the reference's training (AdamW, the
decoder's tangent projection, the renormalisation after epochs 0, 50, ...), the loss falling on the
compositional data, strict low-precision runs that report instead of raising, and bad input
refused in one line."""

from __future__ import annotations

import dataclasses
import math

import ml_dtypes
import numpy as np
import pytest

from numerics.datasets import compositional_sparse
from numerics.errors import InvalidArgument
from numerics.models import SAE_KINDS, random_sae, sae_forward, sae_loss
from numerics.train import SAEFit, fit_sae, gradcheck, sae_backward

_K = {"relu": None, "topk": 3, "jumprelu": None, "mp": 3}


def _problem(kind, m=5, width=9, samples=8, seed=0):
    """An SAE moved off its initialisation (decoder columns of norms far from 1) and a batch."""
    rng = np.random.default_rng(seed)
    sae = random_sae(m, width, kind=kind, k=_K[kind], seed=seed)
    params = [p + 0.2 * rng.standard_normal(p.shape) for p in sae.params[:4]]
    params[2] = params[2] * rng.uniform(0.3, 3.0, width)
    if kind == "jumprelu":
        params.append(np.log(rng.uniform(0.05, 0.4, width)))
    return sae.with_params(params), rng.standard_normal((samples, m))


@pytest.mark.parametrize("kind", SAE_KINDS)
def test_every_kind_backward_matches_central_differences(kind):
    sae, X = _problem(kind)
    grads = sae_backward(sae, sae_forward(sae, X, "fp64"), X, gamma=0.05)
    names = sae.names[:4]  # jumprelu's threshold has a straight-through estimate (test_train.py)

    def loss(params):
        full = list(params.values()) + list(sae.params[4:])
        return sae_loss(sae.with_params(full), X, "fp64", gamma=0.05).total

    check = gradcheck(loss, {n: getattr(sae, n) for n in names},
                      dict(zip(names, grads[:4], strict=True)))
    assert check.checked == sum(getattr(sae, n).size for n in names)
    assert check.ok(1e-6), str(check)
    if kind == "mp":
        assert not np.any(grads[0]) and not np.any(grads[1])  # the encoder is not used
        assert np.abs(grads[2]).max() > 1e-3


def test_mp_gradient_with_the_codes_held_fixed_is_caught():
    # negative control: differentiating only X^ = S D^T + b_d with S held fixed (as for the
    # encoders) ignores that the coefficients are correlations with the same atoms
    sae, X = _problem("mp", seed=4)
    out = sae_forward(sae, X, "fp64")
    d_recon = 2 * (out.reconstruction - X) / X.size
    norms = np.linalg.norm(sae.W_dec, axis=0)
    atoms = sae.W_dec / norms
    d_atoms = d_recon.T @ out.codes
    held = (d_atoms - atoms * np.sum(d_atoms * atoms, axis=0)) / norms

    def loss(params):
        return sae_loss(dataclasses.replace(sae, W_dec=params[0]), X, "fp64").total

    assert not gradcheck(loss, [sae.W_dec], [held]).ok(1e-2)
    assert gradcheck(loss, [sae.W_dec], [sae_backward(sae, out, X)[2]]).ok(1e-6)


def test_atom_sums_accumulate_in_order_in_the_format_under_strict():
    from numerics.formats import get_format
    from numerics.policies import get_policy
    from numerics.train.sae_backward import _sum_by_atom

    rng = np.random.default_rng(3)
    index = rng.integers(0, 6, 40)
    values = get_format("bf16").round(rng.standard_normal((40, 3)).astype(np.float32))
    got = _sum_by_atom(index, values, 7, get_format("bf16"), get_policy("strict"))
    want = np.zeros((7, 3), dtype=ml_dtypes.bfloat16)
    for i, j in enumerate(index):  # in order, each partial sum rounded to bf16
        for c in range(3):
            want[j, c] = ml_dtypes.bfloat16(float(want[j, c]) + float(values[i, c]))
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert not got[6].any() and np.isin(np.arange(6), index).all()
    wide = _sum_by_atom(index, values, 7, get_format("fp32"), get_policy("hw"))
    exact = np.zeros((7, 3))
    np.add.at(exact, index, values.astype(np.float64))
    np.testing.assert_allclose(wide, exact, rtol=1e-6, atol=1e-6)


def test_mp_backward_under_strict_fp32_stays_near_fp64():
    sae, X = _problem("mp", samples=16, seed=5)
    want = sae_backward(sae, sae_forward(sae, X, "fp64"), X)
    got = sae_backward(sae, sae_forward(sae, X, "fp32", "strict"), X)
    assert got[2].dtype == np.float32
    for a, b in zip(got[2:], want[2:], strict=True):
        assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(b)


def _pursuit_by_loops(W_dec, b_dec, x, k):
    """Matching pursuit on one sample, in Python floats over the atoms."""
    m, n = W_dec.shape
    norms = [max(math.sqrt(sum(W_dec[i, j] ** 2 for i in range(m))), 1e-8) for j in range(n)]
    atoms = [[W_dec[i, j] / norms[j] for i in range(m)] for j in range(n)]
    residual = [x[i] - b_dec[i] for i in range(m)]
    codes, picked = [0.0] * n, []
    for _ in range(k):
        dots = [sum(r * a for r, a in zip(residual, atoms[j], strict=True)) for j in range(n)]
        best = max((j for j in range(n) if j not in picked), key=lambda j: abs(dots[j]))
        picked.append(best)
        codes[best] = dots[best]
        residual = [r - dots[best] * a for r, a in zip(residual, atoms[best], strict=True)]
    recon = [sum(codes[j] * atoms[j][i] for j in range(n)) + b_dec[i] for i in range(m)]
    return codes, recon, picked


@pytest.mark.parametrize("k", [1, 3, 5, 9])
def test_mp_forward_matches_a_per_sample_loop(k):
    sae, X = _problem("mp", samples=11, seed=2)
    sae = dataclasses.replace(sae, k=k)
    out = sae_forward(sae, X, "fp64")
    assert out.pre is None
    for b, x in enumerate(X):
        codes, recon, picked = _pursuit_by_loops(sae.W_dec, sae.b_dec, x, k)
        np.testing.assert_array_equal(out.pursuit.selected[b], picked)
        np.testing.assert_allclose(out.codes[b], codes, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out.reconstruction[b], recon, rtol=1e-12, atol=1e-14)
    assert (np.count_nonzero(out.codes, axis=1) == k).all()
    assert (out.codes < 0).any()  # coefficients keep their sign
    loss = sae_loss(sae, X, "fp64", gamma=1.0)
    assert loss.reg == 0.0 and loss.total == loss.mse


def test_topk_ties_go_to_the_lower_latent():
    sae, X = _problem("topk", seed=1)
    W_enc = sae.W_enc.copy()
    W_enc[[2, 6]] = 0.0  # latents 2 and 6 tie at pre = b_enc
    b_enc = np.zeros(9)
    b_enc[[2, 6]] = 50.0
    sae = dataclasses.replace(sae, W_enc=W_enc, b_enc=b_enc, k=1)
    codes = sae_forward(sae, X, "fp64").codes
    assert (codes[:, 2] == 50.0).all() and not codes[:, 6].any()
    assert (np.count_nonzero(codes, axis=1) == 1).all()


# --- the training loop against a per-sample re-implementation of the reference training -------


def _sample_gradients(kind, P, x, batch, gamma, k, bandwidth):
    """One sample's share of d(loss)/dP, autograd's graph written out by hand (for ``mp``
    through the codes, as the reference's autograd runs, not through X^ - X = -r_k)."""
    W_e, b_e, A, b_d = P["W_enc"], P["b_enc"], P["W_dec"], P["b_dec"]
    m, n = A.shape
    G = {name: np.zeros_like(value) for name, value in P.items()}
    if kind == "mp":
        norms = np.maximum(np.linalg.norm(A, axis=0), 1e-8)
        D = A / norms
        residuals, picked, coefficients = [x - b_d], [], []
        for _ in range(k):
            z = D.T @ residuals[-1]
            j = max((i for i in range(n) if i not in picked), key=lambda i: abs(z[i]))
            picked.append(j)
            coefficients.append(z[j])
            residuals.append(residuals[-1] - z[j] * D[:, j])
        recon = sum(c * D[:, j] for c, j in zip(coefficients, picked, strict=True)) + b_d
        g = 2 * (recon - x) / (batch * m)
        dD, r_bar = np.zeros_like(D), np.zeros(m)
        for t in reversed(range(k)):
            d, c = D[:, picked[t]], coefficients[t]
            c_bar = g @ d - r_bar @ d
            dD[:, picked[t]] += c * g - c * r_bar + c_bar * residuals[t]
            r_bar = r_bar + c_bar * d
        G["W_dec"] = (dD - D * np.sum(dD * D, axis=0)) / norms
        G["b_dec"] = g - r_bar
        codes = np.zeros(n)
        codes[picked] = coefficients
        return G, recon, codes
    centred = x - b_d
    pre = W_e @ centred + b_e
    unit = np.maximum(pre, 0.0)
    if kind == "topk":
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(-pre, kind="stable")[:k]] = True
        codes = np.where(keep, unit, 0.0)
    elif kind == "jumprelu":
        theta = np.exp(np.minimum(P["log_threshold"], 20.0))
        codes = unit * (unit > theta)
    else:
        codes = unit
    recon = A @ codes + b_d
    g = 2 * (recon - x) / (batch * m)
    G["W_dec"] = np.outer(g, codes)
    d_codes = A.T @ g
    if kind == "jumprelu":
        window = np.abs((unit - theta) / bandwidth) <= 0.5
        step_window = np.abs((codes - theta) / bandwidth) <= 0.5
        d_theta = (-(theta / bandwidth) * window * d_codes
                   - (gamma / batch) / bandwidth * step_window)
        G["log_threshold"] = np.where(P["log_threshold"] <= 20.0, theta * d_theta, 0.0)
    if kind == "relu":
        d_codes = d_codes + gamma / batch * (codes > 0)
    d_pre = d_codes * (codes > 0)
    G["W_enc"] = np.outer(d_pre, centred)
    G["b_enc"] = d_pre
    G["b_dec"] = g - W_e.T @ d_pre
    return G, recon, codes


def _reference_training(sae, X, *, epochs, lr, gamma, seed, renorm_every, renorm_first=True,
                        weight_decay=0.01, batch_size=64):
    """The reference's train_sae on float64 arrays: AdamW (PyTorch's formulas), the decoder's
    gradient projected on the tangent of its columns, the columns renormalised after every epoch
    ``e`` with ``e % renorm_every == 0``; batches from ``default_rng(seed).permutation``."""
    P = {name: np.array(value, dtype=np.float64) for name, value in zip(sae.names, sae.params,
                                                                        strict=True)}
    trained = ["W_dec", "b_dec"] if sae.kind == "mp" else list(P)
    first = {name: np.zeros_like(P[name]) for name in trained}
    second = {name: np.zeros_like(P[name]) for name in trained}
    rng = np.random.default_rng(seed)
    history, t = [], 0
    for epoch in range(epochs):
        order = rng.permutation(X.shape[0])
        totals, batches = np.zeros(3), 0
        for start in range(0, X.shape[0], batch_size):
            xb = X[order[start: start + batch_size]]
            G = {name: np.zeros_like(value) for name, value in P.items()}
            mse, reg = 0.0, 0.0
            for x in xb:
                g, recon, codes = _sample_gradients(sae.kind, P, x, len(xb), gamma, sae.k,
                                                    sae.bandwidth)
                for name in G:
                    G[name] += g[name]
                mse += np.sum((recon - x) ** 2) / xb.size
                if sae.kind == "relu":
                    reg += np.sum(np.abs(codes)) / len(xb)
                elif sae.kind == "jumprelu":
                    reg += np.sum(codes > np.exp(P["log_threshold"])) / len(xb)
            totals += (mse + gamma * reg, mse, reg)
            batches += 1
            A = P["W_dec"]
            G["W_dec"] = G["W_dec"] - A * np.sum(G["W_dec"] * A, axis=0)
            t += 1
            for name in trained:
                P[name] = P[name] * (1 - lr * weight_decay)
                first[name] = 0.9 * first[name] + 0.1 * G[name]
                second[name] = 0.999 * second[name] + 0.001 * G[name] ** 2
                denom = np.sqrt(second[name]) / math.sqrt(1 - 0.999**t) + 1e-8
                P[name] = P[name] - lr / (1 - 0.9**t) * first[name] / denom
        if renorm_every and epoch % renorm_every == 0 and (epoch or renorm_first):
            P["W_dec"] = P["W_dec"] / np.maximum(np.linalg.norm(P["W_dec"], axis=0), 1e-8)
        history.append(totals / batches)
    return P, np.array(history)


@pytest.mark.parametrize("kind", SAE_KINDS)
def test_fit_matches_the_reference_training_step_by_step(kind):
    rng = np.random.default_rng(7)
    sae = random_sae(6, 10, kind=kind, k=3 if kind in ("topk", "mp") else None, seed=3)
    if kind == "jumprelu":  # thresholds among the codes, so that the window sees some of them
        sae = dataclasses.replace(sae, log_threshold=np.log(rng.uniform(0.01, 0.2, 10)),
                                  bandwidth=0.05)
    X = rng.standard_normal((150, 6)) @ rng.standard_normal((6, 6)) * 0.5 + 0.3
    settings = {"epochs": 3, "lr": 1e-2, "gamma": 0.01, "seed": 11, "renorm_every": 2}
    fit = fit_sae(sae, X, fmt="fp64", record_every=1, **settings)
    want, history = _reference_training(sae, X, **settings)
    assert fit.steps == 9 and fit.epochs == 3 and fit.diverged_at is None
    for name, value in zip(fit.sae.names, fit.sae.params, strict=True):
        np.testing.assert_allclose(value, want[name], rtol=1e-10, atol=1e-13, err_msg=name)
    got = np.array([[h["loss"], h["mse"], h["reg"]] for h in fit.history])
    np.testing.assert_allclose(got, history, rtol=1e-11, atol=1e-15)
    assert [h["epoch"] for h in fit.history] == [0, 1, 2]
    # the renormalisation after epoch 0 is part of it: without it the run ends elsewhere
    skipped, _ = _reference_training(sae, X, renorm_first=False, **settings)
    assert np.abs(skipped["W_dec"] - want["W_dec"]).max() > 1e-5
    if kind == "mp":  # untouched, not even by weight decay
        np.testing.assert_array_equal(fit.sae.W_enc, sae.W_enc)


@pytest.mark.parametrize("kind", SAE_KINDS)
def test_loss_falls_on_the_compositional_data(kind):
    data = compositional_sparse(40, 4, 1000, seed=0)
    sae = random_sae(data.Y_train.shape[1], 40, kind=kind,
                     k=4 if kind in ("topk", "mp") else None, seed=0)
    fit = fit_sae(sae, data.Y_train, epochs=30, lr=2e-3, record_every=1)
    losses = [h["loss"] for h in fit.history]
    assert len(losses) == 30 and fit.diverged_at is None
    assert losses[-1] < 0.6 * losses[0]
    assert sae_loss(fit.sae, data.Y_train, "fp32").total < 0.6 * sae_loss(sae, data.Y_train,
                                                                            "fp32").total
    assert 0.0 <= fit.frozen_share < 0.5
    assert fit.sae.W_dec.dtype == np.float32


def test_records_follow_record_every_and_the_callback():
    data = compositional_sparse(20, 3, 300, seed=1)
    sae = random_sae(data.Y_train.shape[1], 20, kind="topk", k=3, seed=0)
    seen = []

    def record(epoch, current):
        seen.append(epoch)
        return {"decoder_norm": float(np.linalg.norm(current.W_dec))}

    fit = fit_sae(sae, data.Y_train, epochs=6, record_every=4, record=record)
    assert [h["epoch"] for h in fit.history] == seen == [0, 4, 5]
    assert fit.final["decoder_norm"] == pytest.approx(float(np.linalg.norm(fit.sae.W_dec)))
    assert isinstance(fit, SAEFit) and fit.steps == 6 * 3
    default = fit_sae(sae, data.Y_train, epochs=3).history  # the first epoch and the last
    assert [h["epoch"] for h in default] == [0, 2]


@pytest.mark.parametrize("kind", SAE_KINDS)
def test_strict_bf16_runs_and_reports(kind):
    data = compositional_sparse(20, 3, 300, seed=2)
    sae = random_sae(data.Y_train.shape[1], 20, kind=kind,
                     k=3 if kind in ("topk", "mp") else None, seed=1)
    fit = fit_sae(sae, data.Y_train, epochs=2, fmt="bf16", policy="strict", record_every=1)
    assert fit.diverged_at is None and fit.steps == 6
    assert 0.0 < fit.frozen_share < 1.0
    assert all(p.dtype == ml_dtypes.bfloat16 for p in fit.sae.params)
    assert all(math.isfinite(h["loss"]) for h in fit.history)


def test_a_diverging_run_stops_and_says_where():
    # strict fp16: Adam's eps = 1e-8 rounds to 0 (below half the smallest subnormal, 2^-25), so
    # a latent TopK never selects has 0 / 0 in its update after the first step
    data = compositional_sparse(20, 3, 300, seed=2)
    sae = random_sae(data.Y_train.shape[1], 20, kind="topk", k=3, seed=1)
    fit = fit_sae(sae, data.Y_train, epochs=5, fmt="fp16", policy="strict")
    assert fit.diverged_at == 1 and fit.steps == 1 and fit.epochs == 1
    assert fit.final["epoch"] == 0 and math.isnan(fit.final["loss"])
    assert np.isnan(fit.sae.W_enc.astype(np.float64)).any()


def _sae():
    return random_sae(4, 6, kind="topk", k=2)


_X = np.ones((10, 4))


@pytest.mark.parametrize(
    ("call", "kwargs", "match"),
    [
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 0}, "epochs=0 must be a positive integer"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 2.5}, "expected int but got epochs=2.5"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "batch_size": 0}, "batch_size=0"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "lr": 0.0}, "lr=0.0 must be > 0"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "weight_decay": -1.0},
         "weight_decay=-1.0"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "gamma": math.nan}, "gamma=nan"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "seed": -1}, "seed=-1"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "fmt": "bf32"}, "unknown format 'bf32'"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "policy": "hard"}, "unknown policy"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "renorm_every": -1}, "renorm_every=-1"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "record_every": 0}, "record_every=0"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 1, "record": "loss"},
         "expected a callable"),
        (fit_sae, {"sae": "topk", "X": _X, "epochs": 1}, "expected an SAE"),
        (fit_sae, {"sae": _sae(), "X": np.ones((10, 5)), "epochs": 1},
         "expected \\(samples, 4\\)"),
        (fit_sae, {"sae": _sae(), "X": np.full((3, 4), np.nan), "epochs": 1},
         "12 NaN values in X"),
        (fit_sae, {"sae": _sae(), "X": np.full((3, 4), 1e5), "epochs": 1, "fmt": "fp16"},
         "X overflow fp16"),
        (fit_sae, {"sae": _sae(), "X": _X, "epochs": 400_000, "batch_size": 2},
         "the limit is 1000000"),
        (random_sae, {"m": 4, "width": 6, "kind": "mp"}, "k=None"),
        (random_sae, {"m": 4, "width": 6, "kind": "mp", "k": 7}, "k=7"),
        (random_sae, {"m": 4, "width": 6, "kind": "pursuit"}, "unknown kind"),
    ],
)
def test_bad_input_is_one_line(call, kwargs, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call(**kwargs)
    assert "\n" not in str(info.value)
