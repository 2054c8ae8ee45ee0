"""rank-deficit: rank measures and their noise floor, the softmax Jacobian, the circle of Prop. 3.2,
the softmax rank curve, training runs, the derivation, the sweep and the audit.

Expected values come from SciPy's ``gesvd`` singular values (a different LAPACK algorithm from
NumPy's ``gesdd``), SciPy's entropy, exact SymPy ranks, mpmath at 40 digits, explicit loops over
column pairs, and plain NumPy forward passes.
"""

from __future__ import annotations

import math
import subprocess
import sys

import ml_dtypes
import mpmath
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import sympy as sp

import theorems
import theorems.rank_deficit as rd
from numerics.datasets import load_dataset
from numerics.errors import InvalidArgument
from numerics.models.mlp import random_mlp
from numerics.rank_deficit import pairwise_column_distance, tail_energy
from numerics.train import Optimiser, fit_classifier
from proofs import rank_deficit as proof
from theorems.verdicts import mechanism_holds

THEOREM = theorems.get("rank-deficit")
DTYPES = {"fp32": np.float32, "fp16": np.float16, "bf16": ml_dtypes.bfloat16,
          "fp8-e4m3": ml_dtypes.float8_e4m3fn, "fp8-e5m2": ml_dtypes.float8_e5m2}


def _svdvals(M: np.ndarray) -> np.ndarray:
    return scipy.linalg.svd(M, compute_uv=False, lapack_driver="gesvd")


def _low_rank(rank: int, rows: int = 200, cols: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, cols))


# --- rank measures -------------------------------------------------------------------------------

@pytest.mark.parametrize("rank", [1, 2, 3, 7])
def test_numerical_rank_counts_singular_values_above_the_threshold(rank):
    M = _low_rank(rank) + 1e-9 * _low_rank(10, seed=1)
    centred = M - M.mean(axis=0)
    sigma = _svdvals(centred)
    for threshold in (1e-3, 1e-2, 1e-12):
        expected = int(np.sum(sigma > threshold * sigma[0]))
        assert rd.numerical_rank(M, threshold) == expected
    assert rd.numerical_rank(M, 1e-3) == rank


def test_numerical_rank_of_an_exact_integer_matrix_matches_sympy():
    rng = np.random.default_rng(3)
    M = rng.integers(-3, 4, (6, 2)) @ rng.integers(-3, 4, (2, 5))
    assert rd.numerical_rank(M, 1e-9, center=False) == sp.Matrix(M.tolist()).rank() == 2


def test_effective_rank_is_roy_vetterli():
    M = _low_rank(5, seed=4)
    sigma = _svdvals(M - M.mean(axis=0))
    expected = math.exp(scipy.stats.entropy(sigma / sigma.sum()))
    assert rd.effective_rank(M) == pytest.approx(expected, rel=1e-12)
    # uncentred, and a batch of matrices gives one value per matrix
    batch = np.stack([M, 2 * _low_rank(2, seed=5)])
    values = rd.effective_rank(batch, center=False)
    for got, matrix in zip(values, batch, strict=True):
        s = _svdvals(matrix)
        assert got == pytest.approx(math.exp(scipy.stats.entropy(s / s.sum())), rel=1e-12)


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2"])
def test_the_noise_floor_bounds_what_storage_does_to_every_singular_value(fmt):
    # Weyl: |sigma_k(stored) - sigma_k(exact)| <= ||E||_2, which the floor bounds a priori
    for seed in range(5):
        M = _low_rank(3 + seed, seed=seed) * 0.5
        stored = M.astype(DTYPES[fmt]).astype(np.float64)
        exact, rounded = _svdvals(M - M.mean(axis=0)), _svdvals(stored - stored.mean(axis=0))
        assert np.max(np.abs(exact - rounded)) <= rd.noise_floor(M, fmt)


def test_a_rank_3_matrix_stored_in_bf16_has_rank_3_only_with_the_floor():
    M = _low_rank(3)
    stored = M.astype(ml_dtypes.bfloat16).astype(np.float64)
    centred = stored - stored.mean(axis=0)
    sigma = _svdvals(centred)
    # the rounding noise sits at 3e-4..9e-4 sigma_1: a threshold of 1e-4 alone counts it all
    naive = int(np.sum(sigma > 1e-4 * sigma[0]))
    assert naive == 10
    assert rd.numerical_rank(M, 1e-4, fmt="bf16") == 3
    floor = rd.noise_floor(M, "bf16")
    assert sigma[3] <= floor < sigma[2]


def test_strict_centring_adds_its_error_bound_and_gives_up_when_it_is_vacuous():
    M = _low_rank(3, rows=600)
    assert rd.noise_floor(M, "fp32", "strict") > rd.noise_floor(M, "fp32", "hw")
    # bf16: u = 2^-8, so the column means of 600 rows carry (600 + 1) u > 1: no bound at all
    assert rd.noise_floor(M, "bf16", "strict", center=True) == math.inf
    assert math.isfinite(rd.noise_floor(M[:200], "bf16", "strict"))
    assert rd.numerical_rank(M, fmt="bf16", policy="strict") == 0
    assert rd.effective_rank(M, fmt="bf16", policy="strict") == 0.0


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 3)), "expected a matrix"),
    (np.array([1.0, 2.0]), "expected a matrix"),
    (np.array([[1.0, np.nan]]), "NaN or infinite"),
    ([[1.0, 2.0], [3.0]], "M"),
    (np.ones((2, 2), dtype=complex), "M"),
    (np.broadcast_to(1.0, (2**14, 2**14)), "operations of SVD"),
    (np.full((3, 3), 1e308), "divide M by a constant"),  # its squares would overflow to rank 0
])
def test_bad_matrices_are_one_line_errors(bad, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        rd.numerical_rank(bad)
    assert "\n" not in str(info.value)


# --- softmax Jacobian, Prop. 3.1 ------------------------------------------------------------------

def test_softmax_jacobian_matches_mpmath_derivatives():
    z, T = np.array([0.3, -1.2, 2.0, 0.5]), 1.7
    J = rd.softmax_jacobian(z, T)
    with mpmath.workdps(40):
        def p(i, *args):
            values = [mpmath.exp(a / T) for a in args]
            return values[i] / mpmath.fsum(values)
        base = list(map(mpmath.mpf, z))
        for i in range(4):
            for j in range(4):
                exact = mpmath.diff(lambda v, i=i, j=j: p(i, *(base[:j] + [v] + base[j + 1:])),
                                    z[j])
                assert J[i, j] == pytest.approx(float(exact), abs=1e-15)
    assert np.allclose(J @ np.ones(4), 0, atol=1e-16)
    assert np.linalg.matrix_rank(J * T, tol=1e-12) == 3  # |supp p| - 1
    assert np.max(np.abs(np.linalg.eigvalsh(J * T))) <= 0.5


def _tail_and_bound_by_loops(S: np.ndarray) -> tuple[float, float]:
    sigma = _svdvals(S)
    pairs = sum(np.sum((S[:, j] - S[:, k]) ** 2) for j in range(S.shape[1])
                for k in range(S.shape[1]))
    return float(np.sum(sigma[1:] ** 2)), float(pairs / (2 * S.shape[1]))


@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_prop31_holds_on_random_softmaxed_matrices(scale):
    rng = np.random.default_rng(int(scale * 100))
    Z = rng.standard_normal((200, 10)) * scale
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    tail, bound = _tail_and_bound_by_loops(S)
    assert float(tail_energy(S)) == pytest.approx(tail, rel=1e-9, abs=1e-15)
    assert float(pairwise_column_distance(S)) / 20 == pytest.approx(bound, rel=1e-12)
    assert tail <= bound * (1 + 1e-12)


def test_prop31_is_an_equality_on_the_balanced_circle():
    Z = rd.circle_logits(np.arange(10), 10, 3.0)
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    tail, bound = _tail_and_bound_by_loops(S)
    assert tail == pytest.approx(bound, rel=1e-12)


# --- the circle (Prop. 3.2) -----------------------------------------------------------------------

@pytest.mark.parametrize("classes", [3, 6, 10, 97])
def test_circle_logits_have_rank_2_and_fit_every_label(classes):
    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 300)
    Z = rd.circle_logits(labels, classes, 5.0)
    assert np.linalg.matrix_rank(Z, tol=1e-9 * np.abs(Z).max()) == 2
    assert np.all(np.argmax(Z, axis=1) == labels)
    margin = Z[np.arange(300), labels][:, None] - Z
    margin[np.arange(300), labels] = np.inf
    assert margin.min() == pytest.approx(5.0 * (1 - math.cos(2 * math.pi / classes)), rel=1e-9)


def test_circle_logits_of_six_classes_have_exact_rank_2():
    angles = [sp.pi * k / 3 for k in range(6)]
    exact = sp.Matrix(6, 6, lambda i, j: sp.cos(angles[j] - angles[i]))
    assert exact.rank() == 2
    assert np.allclose(rd.circle_logits(np.arange(6), 6, 1.0),
                       np.array(exact.evalf(), dtype=np.float64), atol=1e-15)


@pytest.mark.parametrize("classes,alpha", [(3, 1.0), (10, 2.5), (100, 4000.0), (1000, 1e5)])
def test_circle_loss_and_bound_against_mpmath(classes, alpha):
    with mpmath.workdps(40):
        z = [alpha * mpmath.cos(2 * mpmath.pi * c / classes) for c in range(classes)]
        exact = mpmath.log(mpmath.fsum(mpmath.exp(v - z[0]) for v in z))
        bound = mpmath.log(1 + (classes - 1) * mpmath.exp(
            -alpha * (1 - mpmath.cos(2 * mpmath.pi / classes))))
    assert rd.circle_loss(classes, alpha) == pytest.approx(float(exact), rel=1e-13)
    assert rd.circle_loss_bound(classes, alpha) == pytest.approx(float(bound), rel=1e-13)
    assert exact <= bound * (1 + mpmath.mpf(10) ** -30)
    if classes == 3:  # both other classes are one step away: the bound is attained
        assert abs(exact - bound) < mpmath.mpf(10) ** -30


def test_the_loss_bound_goes_to_zero():
    assert rd.circle_loss_bound(10, 1e4) == 0.0 and rd.circle_loss_bound(10, 1.0) > 1.0


# --- the softmax rank curve -----------------------------------------------------------------------

def test_softmax_rank_curve_rises_then_falls_to_the_argmax_classes():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((400, 2)) @ rng.standard_normal((2, 10))
    scales = np.geomspace(1e-3, 1e4, 29)
    curve = rd.softmax_rank_curve(Z, scales)
    for alpha, got in zip(scales, curve["numerical"], strict=True):
        x = alpha * Z
        S = np.exp(x - x.max(axis=1, keepdims=True))
        S /= S.sum(axis=1, keepdims=True)
        sigma = _svdvals(S)
        assert got == np.sum(sigma > 1e-3 * sigma[0]), alpha
    top = int(np.argmax(curve["numerical"]))
    assert curve["numerical"][0] < curve["peak"] and curve["numerical"][-1] < curve["peak"]
    assert 0 < top < len(scales) - 1
    assert curve["numerical"][-1] == curve["argmax_classes"] == len(set(np.argmax(Z, axis=1)))


def test_a_scale_that_overflows_the_format_has_no_rank():
    Z = _low_rank(2, rows=50)
    curve = rd.softmax_rank_curve(Z, [1.0, 1e3], fmt="fp8-e4m3")
    assert list(curve["overflow"]) == [False, True] and np.isnan(curve["numerical"][1])


# --- data and training ----------------------------------------------------------------------------

def test_digits_is_scikit_learns_split_and_standardised():
    from sklearn.datasets import load_digits

    data = load_digits()
    d = load_dataset("digits")
    assert d.X_train.shape == (1347, 64) and d.X_test.shape == (450, 64) and d.classes == 10
    assert len(d.y_train) + len(d.y_test) == len(data.target)
    assert np.allclose(d.X_train.mean(axis=0), 0, atol=1e-12)
    assert np.bincount(d.y_train).min() >= 130  # stratified


def test_the_mixture_is_reproducible_and_seeded():
    a, b, c = (load_dataset("mixture", seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.X_train, b.X_train) and not np.array_equal(a.X_train, c.X_train)
    assert a.X_train.shape == (1000, 32) and np.bincount(a.y_test).tolist() == [50] * 10


def test_train_returns_its_network_and_numbers_a_plain_forward_pass_reproduces():
    run = rd.train("mixture", 3.0, layers=2, width=32, steps=150, record_every=50)
    assert run.train_accuracy > 0.5 and len(run.history) == 4  # chance is 0.1
    data = load_dataset("mixture")
    h = data.X_train.astype(np.float32)
    weights = [np.asarray(w, np.float32) for w in run.model.weights]
    biases = [np.asarray(b, np.float32) for b in run.model.biases]
    for w, b in zip(weights[:-1], biases[:-1], strict=True):
        h = np.maximum(h @ w.T + b, 0)
    z = h @ weights[-1].T + biases[-1]
    assert np.allclose(run.logits, z, rtol=1e-4, atol=1e-4)
    assert run.train_accuracy == np.mean(np.argmax(z, axis=1) == data.y_train)
    assert run.ranks["erank_logits"] == pytest.approx(
        math.exp(scipy.stats.entropy(_svdvals(run.logits - run.logits.mean(axis=0))
                                     / _svdvals(run.logits - run.logits.mean(axis=0)).sum())),
        rel=1e-9)


def test_a_diverging_run_is_recorded_not_raised():
    model = random_mlp([32, 16, 10], seed=0)
    data = load_dataset("mixture")
    with np.errstate(all="ignore"):
        fit = fit_classifier(model, data.X_train, data.y_train, Optimiser("sgd", lr=1e6),
                             steps=50, fmt="fp16", policy="strict")
    assert fit.diverged_at is not None and fit.diverged_at <= 50


def test_rank_falls_with_temperature_on_digits():
    sweep = rd.rank_vs_temperature((1.0, 100.0), seeds=(0,), steps=300)
    assert sweep.fall("erank_logits") > 0 and sweep.fall("erank_penultimate") > 0
    assert sweep.values("train_accuracy").min() == 1.0
    norms = sweep.values("logits_norm")
    assert norms[1, 0] > 20 * norms[0, 0]  # the raw logits grow about T-fold


# --- derivation, sweep, audit ---------------------------------------------------------------------

def test_derivation_is_complete_and_shows_both_negative_controls_wrong():
    d = proof.derivation()
    assert d.ok and d.complete and d.goal_step == "thm"
    assert d.errata == {"refuted": 2}
    assert {r.label for r in d.printed} == {"NC", "31-1%"}
    assert all("[recon]" in r.step.cite or "[std]" in r.step.cite or "[R]" in r.step.cite
               or r.step.role == "algebra" for r in d.steps)


def test_quick_check_without_training_explains_every_precision_effect():
    report = THEOREM.check(quick=True, train=False)
    assert report.ok and not report.violations
    effects = [r for r in report.rows if r["verdict"] == "precision-effect"]
    assert effects and all(mechanism_holds(r) for r in effects)
    ties = {(r["format"], r["n"]) for r in effects if r["quantity"] == "circle accuracy"
            and r["mechanism"] == "rounding to equality"}
    assert ("bf16", 100) in ties and ("fp32", 100) not in ties
    for r in report.rows:
        if r["quantity"] == "circle accuracy" and r["format"] == "bf16" and r["n"] == 100:
            assert r["bitwise_equal"] is True


def test_the_circle_ties_exactly_where_bf16_rounds_neighbours_together():
    alpha = rd.CIRCLE_MARGIN / (2 * math.sin(math.pi / 100) ** 2)
    z = rd.circle_logits(np.arange(100), 100, alpha)
    stored = z.astype(ml_dtypes.bfloat16).astype(np.float64)
    assert np.any(stored[0, 0] == stored[0, 1])  # the true class and its neighbour


def test_counterexample_refutes_the_neural_collapse_rank():
    witness = THEOREM.counterexample(classes=10, claimed_rank=9)
    assert witness["rank"] == 2 and witness["train_accuracy"] == 1.0 and witness["refutes"]
    assert witness["loss"] <= witness["loss_bound"]
    assert not THEOREM.counterexample(classes=10, claimed_rank=2)["refutes"]


def test_audit_catches_every_mutation():
    audit = THEOREM.audit(workers=2)  # the mutations side by side on 2 processes
    assert audit.ok, str(audit)
    assert {e.mutation for e in audit.entries if e.status == "exempt"} == {"p32.angle x0.99"}


@pytest.mark.parametrize("call,match", [
    (lambda: rd.circle_logits([0, 5], 3, 1.0), "labels must be"),
    (lambda: rd.circle_logits([0, 1], 3, -1.0), "alpha"),
    (lambda: rd.circle_loss_bound(1, 1.0), "classes"),
    (lambda: rd.softmax_rank_curve(np.ones((3, 3)), [0.0]), "scales"),
    (lambda: rd.train("cifar"), "dataset"),
    (lambda: rd.train(optimizer="lbfgs", steps=1), "optimizer"),
    (lambda: rd.train(temperature=0.0), "temperature"),
    (lambda: rd.numerical_rank(np.ones((3, 3)), threshold=2.0), "threshold"),
    (lambda: THEOREM.counterexample(classes=2), "classes"),
    (lambda: rd.numerical_rank(np.ones((20, 5)) * 1e5, fmt="fp16"), "overflows fp16"),
    (lambda: rd.numerical_rank([[300.0, 1], [300, 2], [300, 4]], fmt="fp8-e4m3",
                               policy="strict"), "running sum passes 448"),
    (lambda: rd.numerical_rank(np.eye(3), 1.0), "must be below 1"),
    (lambda: rd.numerical_rank(np.eye(3), center=None), "True or False"),
    (lambda: rd.softmax_jacobian(np.zeros((100, 2000))), "limit is 2\\^28"),
    (lambda: rd.softmax_rank_curve(np.ones((2, 5, 3)), [1.0]), "one matrix"),
    (lambda: rd.rank_vs_temperature(5.0), "must be a sequence"),
])
def test_bad_input_is_one_line(call, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_cli_check_of_an_unknown_format_is_one_line():
    result = subprocess.run([sys.executable, "-m", "theorems", "check", "rank-deficit",
                             "--quick", "--formats", "fp4"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_circle_loss_stays_accurate_for_a_million_classes():
    classes, alpha = 2**20, 2e13
    with mpmath.workdps(40):
        exact = mpmath.log1p(mpmath.fsum(
            mpmath.exp(-2 * alpha * mpmath.sin(mpmath.pi * k / classes) ** 2)
            for k in list(range(1, 50)) + list(range(classes - 49, classes))))
    assert rd.circle_loss(classes, alpha) == pytest.approx(float(exact), rel=1e-12)


def test_a_cached_run_is_not_returned_for_a_bool_argument():
    with pytest.raises(InvalidArgument, match="temperature"):
        rd.train("mixture", True, layers=1, width=4, steps=1)


def test_the_prop31_row_uses_the_number_of_classes_on_a_tall_matrix():
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((50, 10)) * 3
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    tail, bound = _tail_and_bound_by_loops(S)
    row = rd._prop31_row({}, S, rd.get_format("fp64"))
    assert row["observed"] == pytest.approx(tail, rel=1e-12)
    assert row["bound"] == pytest.approx(bound, rel=1e-12) and row["verdict"] == "holds"


def test_gd_undoes_the_temperature_of_the_gradient_and_adam_needs_not():
    from numerics.rank_deficit import optimiser_for

    assert optimiser_for("gd", 100.0).lr == pytest.approx(0.01 * 100.0)
    assert optimiser_for("gd", 100.0).kind == "momentum"
    assert optimiser_for("adam", 100.0).lr == 1e-3
