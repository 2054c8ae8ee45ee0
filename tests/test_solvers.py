"""Solvers: batched ISTA/FISTA against the closed form of an orthonormal dictionary (the soft
threshold), against SciPy's L-BFGS-B on the split (smooth, bound-constrained) lasso, and against
scikit-learn's coordinate descent where it is installed; the two factorisations against each
other; ISTA's monotone objective and both convergence rates (with a negative control); the fused
fp32/hw loop against a plain NumPy loop, and every other format and policy against a frozen copy
of the policy-generic loop; DL-FISTA's atoms, update and stopping rule; Hungarian matching against
brute force over permutations."""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest
from _devices import cupy_or_skip
from scipy.optimize import minimize

from numerics._arithmetic import literal, rounder
from numerics.datasets import compositional_sparse
from numerics.errors import InvalidArgument
from numerics.formats import get_format
from numerics.kernels import load_finite
from numerics.policies import POLICY_NAMES, get_policy
from numerics.solvers import (
    dictionary_learning,
    fista,
    hungarian,
    ista,
    lasso_dual_bound,
    lasso_objective,
    lipschitz_constant,
    matched_cosines,
    mcc,
)

LAM = 0.1


def _problem(m=8, n=20, samples=5, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((m, n))
    D /= np.linalg.norm(D, axis=0)
    Z = np.where(rng.random((samples, n)) < 0.2, rng.uniform(0.2, 1.0, (samples, n)), 0.0)
    return D, Z @ D.T + 0.05 * rng.standard_normal((samples, m))


def _soft_threshold(c, tau, nonneg):
    return np.maximum(c - tau, 0) if nonneg else np.sign(c) * np.maximum(np.abs(c) - tau, 0)


@pytest.mark.parametrize("nonneg", [False, True])
def test_orthonormal_dictionary_is_solved_by_the_soft_threshold(nonneg):
    # with D^T D = I, ||x - D z||^2 = ||x - D D^T x||^2 + ||D^T x - z||^2: the lasso separates and
    # its solution is the soft threshold of D^T x; ISTA with L = 1 reaches it in one step
    rng = np.random.default_rng(1)
    D = np.linalg.qr(rng.standard_normal((10, 6)))[0]
    X = rng.standard_normal((7, 10)) * 0.5
    want = _soft_threshold(X @ D, LAM, nonneg)
    assert lipschitz_constant(D) == pytest.approx(1.0, rel=1e-14)
    one = ista(X, D, LAM, iterations=1, nonneg=nonneg, fmt="fp64")
    np.testing.assert_allclose(one.codes, want, rtol=1e-14, atol=1e-15)
    assert np.count_nonzero(want == 0) >= 5  # the threshold is active somewhere
    many = fista(X, D, LAM, iterations=40, nonneg=nonneg, fmt="fp64")
    np.testing.assert_allclose(many.codes, want, rtol=1e-13, atol=1e-15)


def _scipy_lasso(x, D, lam, nonneg):
    """The lasso as a smooth problem in z = u - w with u, w >= 0, solved by L-BFGS-B."""
    n = D.shape[1]

    def value_and_gradient(uw):
        z = uw[:n] - (0 if nonneg else uw[n:])
        r = D @ z - x
        g = D.T @ r
        grad = np.concatenate([g + lam, -g + lam]) if not nonneg else g + lam
        return 0.5 * r @ r + lam * uw.sum(), grad

    size = n if nonneg else 2 * n
    result = minimize(value_and_gradient, np.zeros(size), jac=True, method="L-BFGS-B",
                      bounds=[(0, None)] * size,
                      options={"ftol": 1e-16, "gtol": 1e-13, "maxiter": 20000})
    return result.x[:n] - (0 if nonneg else result.x[n:])


@pytest.mark.parametrize("nonneg", [False, True])
def test_fista_matches_scipy(nonneg):
    D, X = _problem()
    got = fista(X, D, LAM, iterations=3000, nonneg=nonneg, fmt="fp64")
    want = np.array([_scipy_lasso(x, D, LAM, nonneg) for x in X])
    F_got = lasso_objective(X, D, got.codes, LAM, nonneg=nonneg)
    F_want = lasso_objective(X, D, want, LAM, nonneg=nonneg)
    assert (F_got <= F_want + 1e-11).all()
    np.testing.assert_allclose(got.codes, want, atol=1e-5)
    np.testing.assert_allclose(got.objective[-1], F_got, rtol=1e-13)


@pytest.mark.parametrize("nonneg", [False, True])
def test_fista_matches_scikit_learn(nonneg):
    linear_model = pytest.importorskip("sklearn.linear_model")
    D, X = _problem(seed=2)
    got = fista(X, D, LAM, iterations=3000, nonneg=nonneg, fmt="fp64")
    m = D.shape[0]
    for x, z in zip(X, got.codes, strict=True):
        # scikit-learn minimises ||x - D z||^2 / (2 m) + alpha ||z||_1: alpha = lambda / m
        lasso = linear_model.Lasso(alpha=LAM / m, fit_intercept=False, tol=1e-14,
                                   max_iter=10**6, positive=nonneg).fit(D, x)
        np.testing.assert_allclose(z, lasso.coef_, atol=1e-5)


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("momentum", [False, True])
def test_both_factorisations_give_the_same_iterates(nonneg, momentum):
    D, X = _problem(m=6, n=15, samples=8, seed=3)
    runs = [fista(X, D, LAM, iterations=60, nonneg=nonneg, momentum=momentum, form=form,
                  fmt="fp64") for form in ("gram", "factored")]
    assert [r.form for r in runs] == ["gram", "factored"]
    np.testing.assert_allclose(runs[0].codes, runs[1].codes, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(runs[0].objective, runs[1].objective, rtol=1e-12)


def test_form_auto_takes_the_cheaper_product():
    rng = np.random.default_rng(0)
    assert fista(rng.random((3, 10)), rng.random((10, 19)), iterations=1).form == "gram"
    assert fista(rng.random((3, 10)), rng.random((10, 20)), iterations=1).form == "factored"


def test_ista_objective_never_increases():
    D, X = _problem(m=10, n=40, samples=30, seed=4)
    run = ista(X, D, LAM, iterations=200, fmt="fp64")
    start = lasso_objective(X, D, np.zeros((30, 40)), LAM)
    F = np.vstack([start, run.objective])
    assert (np.diff(F, axis=0) <= 1e-13 * F[:-1]).all()
    assert (F[-1] < 0.9 * F[0]).all()


def test_convergence_rates_hold_and_a_faster_rate_is_refuted():
    D, X = _problem(m=10, n=40, samples=12, seed=5)
    L = lipschitz_constant(D)
    best = fista(X, D, LAM, iterations=20000, fmt="fp64")
    F_star = lasso_objective(X, D, best.codes, LAM)
    distance = np.sum(best.codes**2, axis=1)  # ||z_0 - z*||^2 with z_0 = 0
    k = np.arange(1, 201)[:, None]
    gap_fista = fista(X, D, LAM, iterations=200, fmt="fp64").objective - F_star
    gap_ista = ista(X, D, LAM, iterations=200, fmt="fp64").objective - F_star
    slack = 1e-12
    assert (gap_fista <= 2 * L * distance / (k + 1) ** 2 + slack).all()  # Beck-Teboulle Thm 4.4
    assert (gap_ista <= L * distance / (2 * k) + slack).all()  # Thm 3.1
    # negative control: a rate one power faster than 1/k^2 fails somewhere
    assert (gap_fista > 2 * L * distance / (k + 1) ** 3 + slack).any()


def test_warm_start_at_the_solution_stays():
    D, X = _problem(seed=6)
    solution = fista(X, D, LAM, iterations=5000, fmt="fp64").codes
    warm = fista(X, D, LAM, iterations=3, init=solution, fmt="fp64")
    np.testing.assert_allclose(warm.codes, solution, atol=1e-9)


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_codes_stay_in_the_format(fmt, policy):
    D, X = _problem(m=6, n=10, samples=4, seed=7)
    f = get_format(fmt)
    run = fista(X, D, LAM, iterations=30, nonneg=True, fmt=fmt, policy=policy)
    assert run.codes.dtype == f.dtype and run.objective.shape == (30, 4)
    exact = fista(X, D, LAM, iterations=30, nonneg=True, fmt="fp64").codes
    F64 = lasso_objective(X, D, exact, LAM)
    reached = lasso_objective(X, D, run.codes.astype(np.float64), LAM)
    # the same 30 iterations in fp64 reach an objective within a few units of roundoff of it
    assert (np.abs(reached - F64) <= 20 * f.unit_roundoff * F64).all()
    assert (run.codes.astype(np.float64) >= 0).all()


def test_lipschitz_constant_and_objective():
    D, X = _problem(seed=8)
    assert lipschitz_constant(D) == pytest.approx(np.linalg.norm(D, 2) ** 2, rel=1e-13)
    assert lipschitz_constant(np.zeros((3, 4))) == 1e-8
    Z = np.random.default_rng(0).standard_normal((X.shape[0], D.shape[1]))
    want = [0.5 * np.sum((x - D @ z) ** 2) + LAM * np.abs(z).sum() for x, z in zip(X, Z,
                                                                               strict=True)]
    np.testing.assert_allclose(lasso_objective(X, D, Z, LAM), want, rtol=1e-14)
    assert np.isinf(lasso_objective(X, D, Z, LAM, nonneg=True)).all()


@pytest.mark.parametrize("shape", [(1, 1), (3, 3), (5, 5), (6, 6), (4, 6), (6, 4)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hungarian_matches_brute_force(shape, seed):
    S = np.random.default_rng(seed).standard_normal(shape)
    rows, cols = hungarian(S)
    assert len(rows) == min(shape) and len(set(cols)) == len(cols)
    small, large = min(shape), max(shape)
    best = max(sum(S[i, p[i]] if shape[0] <= shape[1] else S[p[i], i] for i in range(small))
               for p in itertools.permutations(range(large), small))
    assert S[rows, cols].sum() == pytest.approx(best, rel=1e-12)
    worst = min(sum(S[i, p[i]] if shape[0] <= shape[1] else S[p[i], i] for i in range(small))
                for p in itertools.permutations(range(large), small))
    rows, cols = hungarian(S, maximize=False)
    assert S[rows, cols].sum() == pytest.approx(worst, rel=1e-12)


def test_matched_cosines_recover_a_permuted_rescaled_dictionary():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((12, 9))
    perm = rng.permutation(9)
    scales = rng.uniform(0.5, 2.0, 9) * rng.choice([-1.0, 1.0], 9)
    D = A[:, perm] * scales
    match = matched_cosines(A, D)
    np.testing.assert_array_equal(match.rows, np.arange(9))
    np.testing.assert_array_equal(perm[match.cols], np.arange(9))
    np.testing.assert_allclose(match.cosines, 1.0, rtol=1e-14)
    np.testing.assert_allclose(match.norm_ratios, np.abs(scales[match.cols]), rtol=1e-14)
    assert match.mean_cosine == pytest.approx(1.0, rel=1e-14)
    random = matched_cosines(A, rng.standard_normal((12, 30)))
    assert len(random.rows) == 9 and random.mean_cosine < 0.9
    assert repr(match) == "ColumnMatching(9 pairs, mean |cos| 1, 9 with |cos| > 0.9)"
    shown = repr(random)
    assert shown.startswith("ColumnMatching(9 pairs, mean |cos| 0.") and "\n" not in shown


@pytest.mark.gpu
def test_cupy_matches_numpy():
    cupy = cupy_or_skip()
    D, X = _problem(m=6, n=15, samples=8, seed=9)
    for form in ("gram", "factored"):
        want = fista(X, D, LAM, iterations=50, form=form, fmt="fp64")
        got = fista(cupy.asarray(X), cupy.asarray(D), LAM, iterations=50, form=form, fmt="fp64")
        np.testing.assert_allclose(cupy.asnumpy(got.codes), want.codes, atol=1e-12)
    match = matched_cosines(cupy.asarray(D), cupy.asarray(D[:, ::-1]))
    np.testing.assert_allclose(match.cosines, 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fista(np.ones((3, 4)), np.ones((5, 6))), "expected \\(samples, m\\)"),
        (lambda: fista(np.ones((3, 4)), np.ones((4, 6)), lam=-1), "lam=-1.0 must be >= 0"),
        (lambda: fista(np.ones((3, 4)), np.ones((4, 6)), iterations=0), "iterations=0"),
        (lambda: fista(np.ones((3, 4)), np.ones((4, 6)), form="svd"), "unknown form"),
        (lambda: fista(np.ones((3, 4)), np.ones((4, 6)), init=np.ones((3, 5))),
         "init has shape"),
        (lambda: fista(np.ones((3, 4)), np.full((4, 6), np.inf)), "24 infinite values in D"),
        (lambda: fista(np.full((3, 4), 1e3), np.ones((4, 6)), fmt="fp8-e4m3"),
         "X overflow fp8-e4m3"),
        (lambda: dictionary_learning(np.ones((3, 4)), 0), "n_atoms=0 must be a positive"),
        (lambda: dictionary_learning(np.ones((3, 4)), 2.5), "expected int but got n_atoms=2.5"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, rounds=0), "rounds=0"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, fista_iterations=0),
         "fista_iterations=0"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, tol=-1), "tol=-1.0 must be >= 0"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, lam=-0.1), "lam=-0.1 must be >= 0"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, min_rounds=-1), "min_rounds=-1"),
        (lambda: dictionary_learning(np.ones(4), 5), "expected \\(samples, m\\)"),
        (lambda: dictionary_learning(np.full((3, 4), np.nan), 5), "12 NaN values in X"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, init=np.ones((4, 6))),
         "init has shape \\(4, 6\\); expected \\(m, n_atoms\\)"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, record=3), "got record=3"),
        (lambda: dictionary_learning(np.ones((3, 4)), 5, fmt="fp31"), "unknown format"),
        (lambda: hungarian(np.ones(3)), "2-D"),
        (lambda: hungarian(np.array([[1.0, np.nan]])), "non-finite"),
        (lambda: matched_cosines(np.ones((3, 2)), np.ones((4, 2))), "same m"),
        (lambda: mcc(np.ones((3, 2)), np.ones((4, 2))), "same number"),
        (lambda: mcc(np.ones((3, 2)), np.ones((3, 2)), split="iid"), "unknown split"),
        (lambda: mcc(np.ones((3, 2)), np.full((3, 2), np.nan)), "NaN"),
        (lambda: mcc(np.ones((3, 2)), np.ones((3, 2))), "no columns"),
    ],
)
def test_bad_input_is_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def _mcc_by_permutations(true: np.ndarray, pred: np.ndarray) -> float:
    """The best mean |Pearson r| over all one-to-one assignments (SciPy pearsonr, brute force)."""
    from scipy.stats import pearsonr

    width = true.shape[1]
    r = np.array([[abs(pearsonr(true[:, i], pred[:, j])[0]) for j in range(width)]
                  for i in range(width)])
    return max(np.mean(r[np.arange(width), list(p)])
               for p in itertools.permutations(range(width)))


@pytest.mark.parametrize("extra", [0, 2, -2])
def test_mcc_is_the_best_matched_correlation_with_the_references_padding(extra):
    rng = np.random.default_rng(extra + 5)
    true = np.where(rng.random((300, 5)) < 0.4, rng.random((300, 5)), 0.0)
    pred = true[:, ::-1] * rng.uniform(0.5, 2, 5) + 0.3 * rng.standard_normal((300, 5))
    if extra > 0:
        pred = np.concatenate([pred, rng.standard_normal((300, extra))], axis=1)
        # the narrower (true) side is padded with RandomState(42) noise
        padded = np.concatenate([true, np.random.RandomState(42).normal(0, 1, (300, extra))], 1)
        expected = _mcc_by_permutations(padded, pred)
    elif extra < 0:
        pred = pred[:, :extra]
        padded = np.concatenate([pred, np.random.RandomState(42).normal(0, 1, (300, -extra))], 1)
        expected = _mcc_by_permutations(true, padded)
    else:
        expected = _mcc_by_permutations(true, pred)
    assert mcc(true, pred) == pytest.approx(expected, rel=1e-12)


def test_dictionary_learning_infers_ood_codes_every_round_warm_started():
    # the reference infers the OOD codes each round with that round's dictionary (before its
    # update), warm-started from the last round's: replay that chain by hand
    rng = np.random.default_rng(4)
    X, X_ood = rng.standard_normal((60, 6)), rng.standard_normal((40, 6))
    start = rng.standard_normal((6, 9))
    learned = dictionary_learning(X, 9, rounds=4, min_rounds=10, init=start, X_ood=X_ood,
                                  fmt="fp64", record=lambda D: np.array(D))
    codes = None
    for D in [start / np.linalg.norm(start, axis=0), *learned.records[:-1]]:
        codes = fista(X_ood, D, 0.1, iterations=100, nonneg=True, init=codes, fmt="fp64",
                      track=False).codes
    assert learned.rounds == 4
    np.testing.assert_array_equal(learned.Z_ood, codes)
    assert dictionary_learning(X, 9, rounds=2, init=start).Z_ood is None
    with pytest.raises(InvalidArgument, match="X_ood has shape"):
        dictionary_learning(X, 9, rounds=2, X_ood=X_ood[:, :5])


@pytest.mark.parametrize("split", ["id", "ood"])
def test_mcc_of_sparse_codes_is_scipys_pearson_matching(split):
    # two of 200 latents active per sample (the sparse product path), a few never active (the
    # noise-padded path), codes that are a noisy, rescaled permutation
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(11)
    samples, latents = 400, 200
    true = np.zeros((samples, latents))
    for row in true:
        row[rng.choice(latents - 5, 2, replace=False)] = rng.uniform(0.5, 1.5, 2)
    assert np.count_nonzero(true) < 0.05 * true.size
    pred = np.abs(true[:, ::-1] * 2.0 + 0.05 * rng.standard_normal(true.shape))
    if split == "id":
        kept = true[:, true.var(axis=0) > 1e-8]
        noise = np.random.RandomState(42).normal(0, 1, (samples, latents - kept.shape[1]))
        kept, chosen = np.concatenate([kept, noise], axis=1), pred
    else:
        kept = true[:, np.any(true != 0, axis=0)]
        chosen = pred[:, np.sort(np.argsort(-pred.var(axis=0), kind="stable")[:kept.shape[1]])]
    r = np.abs(np.corrcoef(kept.T, chosen.T)[: kept.shape[1], kept.shape[1]:])
    rows, cols = linear_sum_assignment(r, maximize=True)
    assert mcc(true, pred, split) == pytest.approx(float(np.mean(r[rows, cols])), rel=1e-12)


def test_mcc_of_a_permuted_rescaled_copy_is_one_and_ood_keeps_the_active_latents():
    rng = np.random.default_rng(1)
    true = np.where(rng.random((200, 6)) < 0.5, rng.random((200, 6)), 0.0)
    true[:, 4:] = 0  # latents never active in this split
    codes = np.concatenate([true[:, [2, 0, 3, 1]] * 3.0, 1e-3 * rng.standard_normal((200, 2))], 1)
    assert mcc(true, codes, "id") < 1  # the two noise columns are matched to padding
    assert mcc(true, codes, "ood") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("nonneg", [False, True])
def test_the_dual_bound_brackets_the_optimum_scipy_finds(nonneg):
    D, X = _problem(samples=4, seed=3)
    n = D.shape[1]
    for iterations in (1, 10, 2000):
        Z = np.asarray(fista(X, D, LAM, iterations=iterations, nonneg=nonneg, fmt="fp64").codes)
        low = lasso_dual_bound(X, D, Z, LAM, nonneg=nonneg)
        high = lasso_objective(X, D, Z, LAM, nonneg=nonneg)
        for s in range(len(X)):
            # an independent optimum: L-BFGS-B on the split z = u - v (u, v >= 0)
            def f(w, x=X[s]):
                z = w[:n] - (0 if nonneg else w[n:])
                return 0.5 * np.sum((x - D @ z) ** 2) + LAM * np.sum(w)

            w0 = np.zeros(n if nonneg else 2 * n)
            best = minimize(f, w0, method="L-BFGS-B", bounds=[(0, None)] * len(w0),
                            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000}).fun
            assert low[s] <= best + 1e-9 and best <= high[s] + 1e-9
        if iterations == 2000:
            assert np.max(high - low) < 1e-9  # the duality gap closes at the optimum



def _plain_fista(X, D, lam, *, iterations, nonneg, momentum, form, init=None):
    """FISTA in plain NumPy float32, one fresh array per operation: the loop the fused kernel
    must reproduce; returns the codes and every iterate."""
    x, d = X.astype(np.float32), D.astype(np.float32)
    L = lipschitz_constant(D)
    eta, tau = np.float32(1 / L), np.float32(lam / L)
    gram, correlation = d.T @ d, x @ d
    z = np.zeros((x.shape[0], d.shape[1]), np.float32) if init is None else init.astype(
        np.float32)
    y, t, iterates = z, 1.0, []
    for _ in range(iterations):
        grad = y @ gram - correlation if form == "gram" else (y @ d.T - x) @ d
        v = y - grad * eta
        z_next = np.maximum(v - tau, 0) if nonneg else v - np.clip(v, -tau, tau)
        if momentum:
            t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
            y = z_next + np.float32((t - 1) / t_next) * (z_next - z)
            t = t_next
        else:
            y = z_next
        z = z_next
        iterates.append(z)
    return z, iterates


@pytest.mark.parametrize("form", ["gram", "factored"])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("momentum", [False, True])
@pytest.mark.parametrize("warm", [False, True])
def test_fused_fp32_loop_matches_plain_numpy(form, nonneg, momentum, warm):
    D, X = _problem(m=8, n=30, samples=40, seed=11)
    init = np.abs(np.random.default_rng(2).standard_normal((40, 30))) * 0.1 if warm else None
    iterations = 60
    run = fista(X, D, LAM, iterations=iterations, nonneg=nonneg, momentum=momentum, form=form,
                init=init, fmt="fp32", policy="hw")
    want, iterates = _plain_fista(X, D, LAM, iterations=iterations, nonneg=nonneg,
                                  momentum=momentum, form=form, init=init)
    assert run.codes.dtype == np.float32 and run.form == form
    u = get_format("fp32").unit_roundoff
    # an iteration rounds a handful of times at the size of the iterate, the step 1/L is
    # nonexpansive and momentum at most doubles a difference: errors grow at most linearly
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(run.codes, want, rtol=0, atol=8 * iterations * u * scale)
    # the tracked objective (residuals by recurrence, no third product) is F(z_t) in float64
    # to float32 rounding: products of m = 8 terms, then an average of such residuals
    exact = np.array([lasso_objective(X, D, z.astype(np.float64), LAM) for z in iterates])
    assert run.objective.dtype == np.float32 and run.objective.shape == (iterations, 40)
    np.testing.assert_allclose(run.objective, exact, rtol=64 * u * D.shape[0])


@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("track", [False, True])
def test_the_sparse_residual_of_the_fused_loop_matches_plain_numpy(nonneg, track, monkeypatch):
    # 400 atoms, 3-sparse codes: after the first iterations few entries of y are nonzero, and
    # the fused loop forms y D^T from them instead of by BLAS
    rng = np.random.default_rng(5)
    D = rng.standard_normal((20, 400))
    D /= np.linalg.norm(D, axis=0)
    Z = np.zeros((64, 400))
    for row in Z:
        row[rng.choice(400, 3, replace=False)] = rng.uniform(0.5, 1.5, 3)
    X = Z @ D.T + 0.01 * rng.standard_normal((64, 20))
    module = importlib.import_module("numerics.solvers.fista")
    compiled, taken = module._compiled_sparse_residual(), []

    def counted(*args):
        taken.append(bool(compiled(*args)))
        return taken[-1]

    monkeypatch.setattr(module, "_compiled_sparse_residual", lambda: counted)
    iterations, lam = 60, 0.3
    run = fista(X, D, lam, iterations=iterations, nonneg=nonneg, form="factored", fmt="fp32",
                policy="hw", track=track)
    want, iterates = _plain_fista(X, D, lam, iterations=iterations, nonneg=nonneg,
                                  momentum=True, form="factored")
    assert sum(taken) >= iterations // 2  # the sparse product ran on most iterations
    u = get_format("fp32").unit_roundoff
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(run.codes, want, rtol=0, atol=8 * iterations * u * scale)
    if track:
        exact = np.array([lasso_objective(X, D, z.astype(np.float64), lam) for z in iterates])
        np.testing.assert_allclose(run.objective, exact, rtol=64 * u * D.shape[0])


def test_tracking_does_not_change_the_fused_codes():
    D, X = _problem(m=8, n=30, samples=10, seed=12)
    kw = dict(iterations=40, nonneg=True, fmt="fp32")
    tracked, untracked = fista(X, D, LAM, track=True, **kw), fista(X, D, LAM, track=False, **kw)
    np.testing.assert_array_equal(tracked.codes, untracked.codes)
    assert untracked.objective is None


def _frozen_fista(X, D, lam, *, iterations, nonneg, momentum, form, fmt, policy):
    """The policy-generic loop of numerics.solvers.fista as it stood before the fused fp32 path:
    every format and policy other than fp32/hw must still give exactly its numbers."""
    fmt, policy = get_format(fmt), get_policy(policy)
    x, d = load_finite(X, fmt, policy, "X"), load_finite(D, fmt, policy, "D")
    z = np.zeros((x.shape[0], d.shape[1]), dtype=x.dtype)
    L = lipschitz_constant(d)
    r = rounder(fmt, policy)

    def c(value):
        return literal(value, x, fmt, policy)

    eta, tau, zero = c(1.0 / L), c(lam / L), np.zeros((), dtype=x.dtype)
    if form == "gram":
        gram = fmt.round(policy.matmul(d.T, d, fmt))
        correlation = fmt.round(policy.matmul(x, d, fmt))
    y, t, objective = z, 1.0, []
    for _ in range(iterations):
        if form == "gram":
            buffer = r(policy.matmul(y, gram, fmt))
            buffer = fmt.round(r(np.subtract(buffer, correlation, out=buffer)))
        else:
            residual = r(policy.matmul(y, d.T, fmt))
            residual = fmt.round(r(np.subtract(residual, x, out=residual)))
            buffer = fmt.round(policy.matmul(residual, d, fmt))
        buffer = r(np.multiply(buffer, eta, out=buffer))
        v = r(np.subtract(y, buffer, out=buffer))
        if nonneg:
            v = r(np.subtract(v, tau, out=v))
            z_next = fmt.round(np.maximum(v, zero, out=v))
        else:
            z_next = fmt.round(r(np.subtract(v, np.clip(v, -tau, tau), out=v)))
        if momentum:
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            jump = r(z_next - z)
            jump = r(np.multiply(jump, c((t - 1.0) / t_next), out=jump))
            y = fmt.round(r(np.add(jump, z_next, out=jump)))
            t = t_next
        else:
            y = z_next
        z = z_next
        res = z @ d.T - x
        objective.append(0.5 * np.sum(res * res, axis=1) + lam * np.sum(np.abs(z), axis=1))
    return policy.output(z, fmt), np.array(objective)


@pytest.mark.parametrize(("fmt", "policy"), [("fp64", "hw"), ("fp64", "strict"),
                                             ("fp32", "strict"), ("bf16", "hw"),
                                             ("fp16", "strict"), ("fp8-e4m3", "hw")])
@pytest.mark.parametrize("form", ["gram", "factored"])
@pytest.mark.parametrize("nonneg", [False, True])
def test_other_formats_and_policies_keep_the_generic_loop(fmt, policy, form, nonneg):
    D, X = _problem(m=5, n=9, samples=4, seed=13)
    kw = dict(iterations=12, nonneg=nonneg, momentum=True, form=form)
    run = fista(X, D, LAM, fmt=fmt, policy=policy, **kw)
    codes, objective = _frozen_fista(X, D, LAM, fmt=fmt, policy=policy, **kw)
    assert run.codes.dtype == codes.dtype
    np.testing.assert_array_equal(np.asarray(run.codes, np.float64),
                                  np.asarray(codes, np.float64))
    np.testing.assert_array_equal(run.objective, objective)


def _unit(D):
    return D / np.linalg.norm(D, axis=0)


def test_dictionary_update_is_the_ridge_least_squares_solution_and_warm_starts():
    rng = np.random.default_rng(14)
    A = _unit(rng.standard_normal((10, 6)))
    Z_true = np.where(rng.random((200, 6)) < 0.4, rng.uniform(0.2, 1.0, (200, 6)), 0.0)
    X = Z_true @ A.T
    D0 = A + 0.3 * rng.standard_normal((10, 6))  # every atom in use: a well-posed update
    learned = dictionary_learning(X, 6, rounds=2, min_rounds=0, tol=0.0, init=D0,
                                  fista_iterations=30, fmt="fp64")
    D, codes = _unit(D0), None
    for _ in range(2):
        codes = fista(X, D, 0.1, iterations=30, nonneg=True, init=codes, fmt="fp64",
                      track=False).codes
        # min ||X^T - D Z^T||^2 + eps ||D||^2 as one least-squares problem: [Z; sqrt(eps) I]
        stacked = np.vstack([codes, np.sqrt(1e-6) * np.eye(6)])
        target = np.vstack([X, np.zeros((6, 10))])
        D_next = _unit(np.linalg.lstsq(stacked, target, rcond=None)[0].T)
        change = np.linalg.norm(D_next - D) / np.linalg.norm(D)
        D = D_next
    assert learned.rounds == 2 and not learned.converged and len(learned.changes) == 2
    np.testing.assert_allclose(learned.D, D, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(learned.Z, codes, rtol=1e-12, atol=1e-14)
    assert learned.changes[-1] == pytest.approx(change, rel=1e-8)
    np.testing.assert_allclose(np.linalg.norm(learned.D, axis=0), 1.0, rtol=1e-14)


def test_dictionary_update_with_more_atoms_than_samples_is_the_same_ridge_solution():
    # more atoms than samples: the update solves the samples x samples system instead
    rng = np.random.default_rng(15)
    X, D0 = rng.standard_normal((8, 5)), rng.standard_normal((5, 20))
    learned = dictionary_learning(X, 20, rounds=1, init=D0, lam=0.01, fmt="fp64")
    codes = fista(X, _unit(D0), 0.01, iterations=100, nonneg=True, fmt="fp64",
                  track=False).codes
    assert np.count_nonzero(codes) > 8
    stacked = np.vstack([codes, np.sqrt(1e-6) * np.eye(20)])
    target = np.vstack([X, np.zeros((20, 5))])
    D = _unit(np.linalg.lstsq(stacked, target, rcond=None)[0].T)
    np.testing.assert_allclose(learned.D, D, rtol=1e-7, atol=1e-9)


def test_dictionary_learning_recovers_atoms_better_than_a_random_dictionary():
    data = compositional_sparse(50, 3, 2000, seed=0)
    A = data.A
    random = matched_cosines(A, _unit(np.random.default_rng(1).standard_normal(A.shape)))
    learned = dictionary_learning(data.Y_val, 50, rounds=150, seed=0,
                                  record=lambda D: matched_cosines(A, D).mean_cosine)
    assert len(learned.records) == learned.rounds == len(learned.changes)
    assert learned.records[0] < learned.records[-1]  # the atoms turn towards A
    assert learned.records[-1] > random.mean_cosine + 0.2
    assert learned.Z.dtype == np.float32 and (learned.Z >= 0).all()
    # the same seed starts from the same dictionary; the codes of other data are just FISTA's
    first, again = (dictionary_learning(data.Y_val, 50, rounds=2, seed=0) for _ in range(2))
    np.testing.assert_array_equal(again.D, first.D)
    ood = fista(data.Y_ood, learned.D, 0.1, nonneg=True, track=False)
    assert ood.codes.shape == (data.Y_ood.shape[0], 50)


def test_dictionary_learning_stops_after_min_rounds_once_the_change_is_small():
    D, X = _problem(m=8, n=12, samples=50, seed=15)
    stopped = dictionary_learning(X, 12, rounds=50, tol=10.0, min_rounds=4, fista_iterations=5)
    # the reference breaks at 0-based round index r once r > min_rounds: after 6 rounds here
    assert stopped.converged and stopped.rounds == 6 and len(stopped.changes) == 6
    full = dictionary_learning(X, 12, rounds=3, tol=0.0, fista_iterations=5)
    assert not full.converged and full.rounds == 3
