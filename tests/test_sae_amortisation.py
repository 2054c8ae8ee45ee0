"""sae-amortisation: the data process against the notes' invariants, the metrics against
scikit-learn and plain loops, the amortisation gap's bracket against an independent lasso solver,
the proposition's frame, and the checker's cells (which must be able to fail)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import ml_dtypes
import numpy as np
import pytest

from numerics.errors import InvalidArgument
from numerics.sae_amortisation import (
    amortisation_gap,
    auc_ood,
    feature_auc,
    linear_probe,
    support_metrics,
)
from theorems import Report
from theorems import sae_amortisation as sae
from theorems.verdicts import tightened


@pytest.fixture(scope="module")
def data100():
    return sae.make_data(100, seed=0)


# --- the data process: the notes' invariants (seed 0, n = 100, k = 10, 5000 samples) -------------

def test_make_data_matches_the_notes_invariants(data100):
    d = data100
    assert d.A.shape == (47, 100)
    assert d.Z_train.shape == (2500, 100) and d.Y_train.shape == (2500, 47)
    assert d.Z_ood.shape == (2500, 100)
    for Z in (d.Z_train, d.Z_val, d.Z_ood):
        assert np.all(np.count_nonzero(Z, axis=1) == 10)
    assert np.mean(d.Z_train[:, 0] != 0) == pytest.approx(0.5, abs=0.02)
    assert np.all(d.Z_ood[:, 0] != 0)
    assert d.labels["train"].mean() == pytest.approx(0.2504, abs=5e-5)
    assert d.labels["ood"].mean() == pytest.approx(0.5028, abs=5e-5)
    with_zero = d.Z_train[d.Z_train[:, 0] != 0]
    assert set(np.flatnonzero(np.any(with_zero != 0, axis=0))) == set(range(50))
    assert set(np.flatnonzero(np.any(d.Z_ood != 0, axis=0))) == {0, *range(50, 100)}


@pytest.mark.parametrize(("n", "m", "mu", "norm"), [(50, 33, 0.515, 4.17), (100, 47, 0.511, 5.47),
                                                    (1000, 93, 0.485, 17.76)])
def test_dictionary_coherence_and_norm_match_the_notes(n, m, mu, norm):
    A = sae.make_data(n, n_samples=4, seed=0).A
    assert A.shape == (m, n)
    G = np.abs(A.T @ A)
    np.fill_diagonal(G, 0)
    assert round(float(G.max()), 3) == mu
    assert round(float(np.linalg.norm(A, 2) ** 2), 2) == norm


# --- metrics against independent computations ----------------------------------------------------

def test_feature_auc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((300, 6))
    codes[:, 2] = np.round(codes[:, 2])  # ties
    codes[:, 4] = 0.0  # constant
    labels = rng.random(300) < 0.3
    codes[:, 1] -= 2 * labels  # informative, AUC below 1/2
    ours = feature_auc(codes, labels)
    for j in range(6):
        auc = roc_auc_score(labels, codes[:, j])
        assert ours[j] == pytest.approx(max(auc, 1 - auc), abs=1e-12)


def test_auc_ood_picks_the_feature_on_id_only():
    rng = np.random.default_rng(1)
    labels_id, labels_ood = rng.random(400) < 0.5, rng.random(400) < 0.5
    codes_id = rng.standard_normal((400, 3))
    codes_id[:, 2] += 3 * labels_id
    codes_ood = rng.standard_normal((400, 3))
    codes_ood[:, 0] += 3 * labels_ood  # the OOD-informative feature is not the one chosen
    scores = auc_ood(codes_id, labels_id, codes_ood, labels_ood)
    assert scores.feature == 2 and scores.id > 0.95 and scores.ood < 0.6


def test_support_metrics_match_a_loop():
    rng = np.random.default_rng(2)
    Z = np.where(rng.random((50, 5)) < 0.4, rng.random((50, 5)), 0.0)
    perm = np.array([3, 0, 4, 1, 2])
    codes = Z[:, perm] + np.where(rng.random((50, 5)) < 0.1, 0.5, 0.0)  # a few false actives
    scores = support_metrics(Z, codes)
    inverse = np.argsort(perm)
    precisions, recalls, f1s = [], [], []
    for i in range(50):
        true = {j for j in range(5) if Z[i, j] != 0}
        pred = {j for j in range(5) if abs(codes[i, inverse[j]]) > 1e-4}
        hit = len(true & pred)
        p = hit / len(pred) if pred else 0.0
        r = hit / len(true) if true else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    assert scores.precision == pytest.approx(np.mean(precisions))
    assert scores.recall == pytest.approx(np.mean(recalls))
    assert scores.f1 == pytest.approx(np.mean(f1s))
    assert scores.l0 == pytest.approx(np.mean(np.sum(np.abs(codes) > 1e-4, axis=1)))


def test_linear_probe_is_ridge_at_the_chosen_alpha(data100):
    d = data100
    val, ood, alpha = linear_probe(d.Y_train, d.Z_train, d.Y_val, d.Y_ood)
    assert alpha in (1e-6, 1e-4, 1e-2, 1.0, 10.0)
    Y = d.Y_train
    W = np.linalg.solve(Y.T @ Y + alpha * np.eye(Y.shape[1]), Y.T @ d.Z_train)
    np.testing.assert_allclose(val, d.Y_val @ W, atol=1e-8)
    np.testing.assert_allclose(ood, d.Y_ood @ W, atol=1e-8)


def test_amortisation_gap_brackets_an_independent_optimum():
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(3)
    D = rng.standard_normal((8, 20))
    D /= np.linalg.norm(D, axis=0)
    Z = np.where(rng.random((6, 20)) < 0.2, rng.random((6, 20)), 0.0)
    Y = Z @ D.T
    codes = np.maximum(Y @ D, 0)  # a one-pass encoder: ReLU(D^T y)
    gap = amortisation_gap(Y, codes, D, 0.1)
    for i in range(6):
        # scikit-learn minimises ||y - D w||^2 / (2 m) + alpha ||w||_1: alpha = lambda / m
        w = Lasso(alpha=0.1 / 8, fit_intercept=False, tol=1e-14, max_iter=10**6).fit(
            D, Y[i]).coef_
        optimum = 0.5 * np.sum((Y[i] - D @ w) ** 2) + 0.1 * np.sum(np.abs(w))
        true_gap = gap.encoder[i] - optimum
        assert gap.low[i] - 1e-9 <= true_gap <= gap.high[i] + 1e-9
    assert np.all(gap.high - gap.low < 1e-5)
    assert gap.certified_share == 1.0


def test_metrics_refuse_bad_input():
    with pytest.raises(InvalidArgument, match="NaN"):
        feature_auc(np.array([[np.nan], [1.0]]), [0, 1])
    with pytest.raises(InvalidArgument, match="0/1"):
        feature_auc(np.ones((2, 1)), [0, 2])
    with pytest.raises(InvalidArgument, match="shape"):
        amortisation_gap(np.ones((2, 3)), np.ones((2, 4)), np.ones((3, 5)))
    with pytest.raises(InvalidArgument, match="rows"):
        linear_probe(np.ones((3, 2)), np.ones((4, 2)))


# --- the proposition's frame ---------------------------------------------------------------------

def test_counterexample_k1_encoder_is_exact():
    witness = sae.THEOREM.counterexample(k=1)
    assert witness["max_error"] < 1e-15


def test_counterexample_k2_encoder_errs_where_basis_pursuit_is_exact():
    witness = sae.THEOREM.counterexample(k=2, restarts=4)
    assert witness["encoder_mse"] > 1e-3
    assert np.max(np.abs(witness["encoded"] - witness["s"])) > 1e-2
    assert witness["basis_pursuit_error"] < 1e-9


def test_best_encoder_beats_a_worse_one_and_is_not_exact():
    D = sae.frame()
    codes = sae.pair_codes(3, 32)
    W, b, error = sae.best_encoder(D, codes, restarts=3)
    plain = np.mean(np.sum((np.maximum(codes @ D.T @ D, 0) - codes) ** 2, axis=1))
    assert 0 < error < plain


# --- the checker ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_report():
    return sae.THEOREM.check(quick=True, benchmark=False, formats=["fp64", "bf16", "fp8-e4m3"],
                             policies=["hw", "strict"])


def test_frame_and_rate_cells_hold_or_explain(small_report):
    assert small_report.ok, [r for r in small_report.rows if r["verdict"] != "holds"]
    quantities = {r["quantity"] for r in small_report.rows}
    assert {"K=1 frame encoder exact", "basis pursuit exact (120 deg, K=2)",
            "best ReLU encoder error > 0 (120 deg, K=2)",
            "basis pursuit fails (half-plane frame)", "FISTA objective within its rate",
            "ISTA objective within its rate", "a 1/k^3 rate is broken"} <= quantities


def test_rate_rows_fail_when_the_rate_is_wrong():
    rows = sae._rates({"experiment": "rates", "n": sae.RATE_LATENTS, "format": "fp64",
                       "policy": "hw", "seed": 0, "backend": "numpy"})
    fista = next(r for r in rows if r["quantity"] == "FISTA objective within its rate")
    assert fista["verdict"] == "holds"
    # the same run judged against a bound a hundred times smaller is violated
    with tightened("FISTA objective within its rate", 0.99):
        again = sae._rates({"experiment": "rates", "n": sae.RATE_LATENTS, "format": "fp64",
                            "policy": "hw", "seed": 0, "backend": "numpy"})
    assert next(r for r in again if r["quantity"] == "FISTA objective within its rate"
                )["verdict"] == "violated"


def test_negative_control_reads_a_real_gap():
    rows = sae._rates({"experiment": "rates", "n": sae.RATE_LATENTS, "format": "fp64",
                       "policy": "hw", "seed": 0, "backend": "numpy"})
    control = next(r for r in rows if r["quantity"] == "a 1/k^3 rate is broken")
    assert control["verdict"] == "holds" and control["observed"] > 1
    assert math.isfinite(control["observed"])


def _plain_fista(X, D, lam=0.1, iterations=100):
    """The reference's FISTA in plain float32 NumPy, in the Gram form it iterates."""
    x, d = X.astype(np.float32), D.astype(np.float32)
    L = np.float32(max(np.linalg.eigvalsh(D.T @ D)[-1], 1e-8))
    gram, correlation = d.T @ d, x @ d
    z = np.zeros((X.shape[0], D.shape[1]), np.float32)
    y, t = z, 1.0
    for _ in range(iterations):
        z_next = np.maximum(y - (y @ gram - correlation) / L - lam / L, 0)
        t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
        y = z_next + np.float32((t - 1) / t_next) * (z_next - z)
        z, t = z_next, t_next
    return z


def test_oracle_mcc_matches_a_plain_fista(data100):
    ours = sae.fista(data100.Y_ood, data100.A).codes
    plain = _plain_fista(data100.Y_ood, data100.A)
    assert sae.mcc(data100.Z_ood, ours, "ood") == pytest.approx(
        sae.mcc(data100.Z_ood, plain, "ood"), abs=1e-5)
    assert sae.mcc(data100.Z_ood, plain, "ood") > 0.95


def test_benchmark_cell_rows_on_a_short_run():
    rows = sae._benchmark({"experiment": "benchmark", "n": 50, "seed": 0, "epochs": 2,
                           "rounds": 2, "format": "fp32", "policy": "hw", "backend": "numpy"})
    by = {(r["quantity"], r.get("kind")): r for r in rows}
    oracle = by[("oracle MCC_OOD >= 0.95", None)]
    assert oracle["verdict"] == "holds" and oracle["chance_ood"] < sae.CHANCE_LIMIT
    # the notes' coherence at n = 50 (seed 0), which certifies only k = 1
    assert round(oracle["coherence"], 3) == 0.515 and oracle["coherence_certifies_k"] == 1
    for kind in ("relu", "topk", "jumprelu", "mp"):
        gap = by[("SAE gap > true codes' gap", kind)]
        assert gap["verdict"] == "holds" and gap["gap_high"] >= gap["observed"] > gap["bound"]
    # n = 50 is below both statements' sizes: they are not judged there
    assert not [r for r in rows if r["quantity"].startswith(("oracle - ", "SAE decoder"))]


@pytest.mark.parametrize("fmt, policy", [("bf16", "strict"), ("fp8-e4m3", "hw")])
def test_precision_cell_trains_every_sae_kind_in_the_format(monkeypatch, fmt, policy):
    monkeypatch.setattr(sae, "PRECISION_EPOCHS", 3)
    monkeypatch.setattr(sae, "PRECISION_SAMPLES", 100)
    sae._reference_fit.cache_clear()
    rows = sae.THEOREM.evaluate({"experiment": "precision", "n": 100, "seed": 0, "format": fmt,
                                 "policy": policy, "backend": "numpy"})
    # the fp32/hw references are kept per kind, size, seed and epochs (3 here, not 20)
    assert sae._reference_fit.cache_info().currsize == 4
    hits = sae._reference_fit.cache_info().hits
    assert sae._reference_fit("topk", 100, 0, 3).epochs == 3
    assert sae._reference_fit.cache_info().hits == hits + 1
    sae._reference_fit.cache_clear()
    quantities = [r["quantity"] for r in rows]
    assert quantities == ["oracle MCC_OOD >= 0.95 (precision)", "relu SAE loss falls",
                          "topk SAE loss falls", "jumprelu SAE loss falls", "mp SAE loss falls"]
    assert all(r["verdict"] in ("holds", "precision-effect") for r in rows), rows
    # Adam's eps as stored: rounded to bf16 when the optimiser works in the format (strict)
    stored = float(np.float32(1e-8).astype(ml_dtypes.bfloat16)) if policy == "strict" else 1e-8
    assert {r["adam_eps_stored"] for r in rows[1:]} == {stored}
    assert stored != 1e-8 or policy == "hw"
    # each SAE trained in the format: its loss fall differs from the fp32/hw run's
    assert all(r["observed"] != r["exact"] for r in rows[1:]), rows


def test_the_fp8_strict_oracle_is_explained_by_accumulation_rounding(monkeypatch):
    """In fp8 under strict the objective floor is undefined (n u >= 1), so the oracle row's
    mechanism must come from measured accumulation error: the row's sum_error_ulps, and an
    independent sequential fp8 sum (ml_dtypes casts, term by term) of the same product, both
    more than one ulp off float64."""
    monkeypatch.setattr(sae, "PRECISION_EPOCHS", 2)
    sae._reference_fit.cache_clear()
    try:
        rows = sae.THEOREM.evaluate({"experiment": "precision", "n": 100, "seed": 0,
                                     "format": "fp8-e5m2", "policy": "strict",
                                     "backend": "numpy"})
    finally:
        sae._reference_fit.cache_clear()
    oracle = rows[0]
    assert oracle["verdict"] == "precision-effect", oracle
    assert oracle["mechanism"] == "accumulation rounding" and oracle["sum_error_ulps"] > 1
    assert math.isinf(oracle["objective_floor"])
    # the same product, summed in fp8 term by term by ml_dtypes' casts
    e5m2 = ml_dtypes.float8_e5m2
    data = sae.make_data(100, seed=0)
    fista = sae.fista(data.Y_ood[:sae.PRECISION_SAMPLES], data.A, fmt="fp8-e5m2",
                      policy="strict", track=False)
    z = np.asarray(fista.codes).astype(np.float64)
    d = data.A.T.astype(e5m2).astype(np.float64)
    total = np.zeros((z.shape[0], d.shape[1])).astype(e5m2)
    for j in range(z.shape[1]):
        term = (z[:, j:j + 1] * d[j:j + 1, :]).astype(e5m2)
        total = (total.astype(np.float64) + term.astype(np.float64)).astype(e5m2)
    exact = z @ d
    spacing = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(exact), 2.0**-14))) - 2)
    assert np.max(np.abs(total.astype(np.float64) - exact) / spacing) > 1


def test_budget_keeps_the_reference_training_up_to_n_1000():
    assert sae.budget(1000) == (500, 100) and sae.budget(100, quick=True) == (30, 10)
    assert sae.budget(10000) == sae.REDUCED[10000]


def test_a_reduced_budget_size_measures_the_oracle_probe_and_saes_only(monkeypatch, tmp_path):
    """At a size of REDUCED (here n = 50, made one for the test: the real ones take minutes),
    the benchmark runs no DL-FISTA, no FISTA on the SAE decoders, no MCC id, matched cosines or
    gap; it judges the oracle alone; and the figure leaves those methods' points out there."""
    monkeypatch.setitem(sae.REDUCED, 50, (2, 0))
    sae._recovery.cache_clear()
    try:
        result = sae.recovery(50, 0, epochs=2, rounds=0)
        assert set(result.methods) == {"oracle", "linear probe",
                                       *(f"SAE {kind}" for kind in sae.SAE_KINDS)}
        assert all(v["mcc_id"] is None for v in result.methods.values())
        assert result.dictionaries == {} and result.gaps == {} and result.chance["id"] is None
        assert "reduced budget" in str(result)
        rows = sae.THEOREM.evaluate({"experiment": "benchmark", "n": 50, "seed": 0, "epochs": 2,
                                     "rounds": 0, "format": "fp32", "policy": "hw",
                                     "backend": "numpy"})
        assert [r["quantity"] for r in rows] == ["oracle MCC_OOD >= 0.95"]
        assert rows[0]["mcc_ood[SAE topk]"] == result.methods["SAE topk"]["mcc_ood"]
        assert not any(key.startswith("cos[") for key in rows[0])
        report = Report(sae.THEOREM.name, rows)
        assert "reduced budget: no DL-FISTA" in sae.THEOREM.findings(report)
    finally:
        sae._recovery.cache_clear()
    # the full figure from rows: DL-FISTA and the cosines end where the reduced sizes begin
    full = [n for n in sae.SIZES if n not in sae.REDUCED]
    fake = []
    for n in sae.SIZES:
        epochs, rounds = sae.budget(n)
        row = {"quantity": "oracle MCC_OOD >= 0.95", "n": n, "seed": 0, "epochs": epochs,
               "rounds": rounds, "chance_ood": 0.1, "mcc_ood[oracle]": 0.99,
               **{f"mcc_ood[SAE {kind}]": 0.3 for kind in sae.SAE_KINDS}}
        if n in full:
            row.update({"mcc_ood[DL-FISTA]": 0.4, "cos[random]": 0.3, "cos[DL-FISTA]": 0.5})
        fake.append(row)
    mcc_panel, cos_panel = sae._figure_panels(False, SimpleNamespace(rows=fake))
    by_label = {s.label: s for s in mcc_panel.series}
    assert list(by_label["oracle"].x) == [float(n) for n in sae.SIZES]
    assert list(by_label["DL-FISTA"].x) == [float(n) for n in full]
    assert list(by_label["FISTA, SAE decoder"].x) == []
    assert [list(s.x) for s in cos_panel.series if s.label == "DL-FISTA"] == [
        [float(n) for n in full]]


def test_repl_functions_refuse_bad_input():
    with pytest.raises(InvalidArgument):
        sae.make_data(5, k=10)
    with pytest.raises(InvalidArgument, match="kind"):
        sae.train_sae(np.ones((4, 3)), "gelu", 4)
    with pytest.raises(InvalidArgument):
        sae.recovery(10)
    with pytest.raises(InvalidArgument):
        sae.THEOREM.counterexample(k=3)
    with pytest.raises(InvalidArgument, match="atoms"):
        sae.pair_codes(1)
    with pytest.raises(InvalidArgument, match="restarts"):
        sae.best_encoder(sae.frame(), sae.pair_codes(3, 2), restarts=0)
    with pytest.raises(InvalidArgument, match="finite"):
        sae.basis_pursuit(sae.frame(), [[np.nan, 1.0]])
    # two atoms on one line cannot reach a point off it: no code, said in one line
    with pytest.raises(InvalidArgument, match="no nonnegative code"):
        sae.basis_pursuit([[1.0, 2.0], [0.0, 0.0]], [[1.0, 1.0]])


def test_the_gap_row_separates_an_optimal_encoder_from_the_true_codes(data100):
    # codes FISTA has converged on have no gap; the true codes keep one (the penalty shrinks
    # the lasso's minimiser): an SAE row judged against the true codes' gap can fail
    Y, A = data100.Y_val[:100], data100.A
    optimal = np.asarray(sae.fista(Y, A, iterations=3000, fmt="fp64", track=False).codes)
    converged = amortisation_gap(Y, optimal, A, 0.1, nonneg=True)
    truth = amortisation_gap(Y, data100.Z_val[:100], A, 0.1, nonneg=True)
    assert converged.mean[1] < 1e-9 < 1e-2 < truth.mean[0]


def test_rate_bound_matches_an_independent_optimum():
    from sklearn.linear_model import Lasso

    rows = sae._rates({"experiment": "rates", "n": sae.RATE_LATENTS, "format": "fp64",
                       "policy": "hw", "seed": 0, "backend": "numpy"})
    row = next(r for r in rows if r["quantity"] == "FISTA objective within its rate")
    d = sae.make_data(sae.RATE_LATENTS, n_samples=2 * sae.RATE_SAMPLES, seed=0)
    x, D = d.Y_val[row["worst_sample"]], d.A
    z = Lasso(alpha=0.1 / D.shape[0], fit_intercept=False, positive=True, tol=1e-14,
              max_iter=10**6).fit(D, x).coef_
    L = np.linalg.norm(D, 2) ** 2
    assert row["rate_bound"] == pytest.approx(2 * L * z @ z / (row["worst_k"] + 1) ** 2,
                                              rel=1e-6)


def test_frame_row_fails_for_an_encoder_one_percent_off(monkeypatch):
    params = {"experiment": "frame", "n": 3, "format": "fp32", "policy": "hw", "seed": 0,
              "backend": "numpy"}
    assert sae._frame(params)[0]["verdict"] == "holds"
    encode = sae._encode
    monkeypatch.setattr(sae, "_encode", lambda W, b, X, f, p: encode(1.01 * W, b, X, f, p))
    assert sae._frame(params)[0]["verdict"] != "holds"


def test_the_recipe_defaults_are_the_notes():
    import inspect

    from numerics.models.sae import random_sae
    from numerics.train.sae_loop import fit_sae

    fit = inspect.signature(fit_sae).parameters
    assert {name: fit[name].default for name in ("batch_size", "lr", "weight_decay", "gamma",
                                                 "renorm_every")} == {
        "batch_size": 64, "lr": 5e-4, "weight_decay": 0.01, "gamma": 1e-4, "renorm_every": 50}
    repl = inspect.signature(sae.train_sae).parameters
    assert all(repl[name].default == fit[name].default
               for name in ("batch_size", "lr", "weight_decay", "gamma", "renorm_every"))
    model = random_sae(16, 8, kind="jumprelu", seed=0)
    assert np.max(np.abs(np.asarray(model.W_enc))) <= 1 / 4  # Kaiming-uniform, a = sqrt 5
    assert np.max(np.abs(np.asarray(model.W_enc))) > 0.9 / 4
    assert np.allclose(np.exp(np.asarray(model.log_threshold)), 1e-3) and model.bandwidth == 1e-3
    from numerics.sae_amortisation import PROBE_ALPHAS

    assert PROBE_ALPHAS == (1e-6, 1e-4, 1e-2, 1.0, 10.0)
    # the statements' numbers as the issue states them
    assert (sae.ORACLE_FLOOR, sae.MARGIN, sae.MARGIN_FROM, sae.DICTIONARY_FROM) == (
        0.95, 0.2, 500, 1000)


def test_support_metrics_match_dictionary_atoms_as_the_reference():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((6, 5))
    perm = np.array([2, 4, 0, 1, 3])
    Z = np.where(rng.random((40, 5)) < 0.4, rng.random((40, 5)) + 0.1, 0.0)
    Z[np.arange(40), rng.integers(0, 5, 40)] = 0.5  # every sample has an active latent
    scores = support_metrics(Z, Z[:, perm], A, A[:, perm])
    assert scores.precision == scores.recall == scores.f1 == 1.0


def test_inputs_that_would_be_read_silently_are_refused():
    from numerics.errors import InvalidType

    with pytest.raises(InvalidType, match="complex"):
        feature_auc(np.ones((3, 2)) * 1j, [0, 1, 0])
    with pytest.raises(InvalidType, match="complex"):
        sae.mcc(np.ones((3, 2)), np.ones((3, 2)) * 1j)
    with pytest.raises(InvalidType):
        support_metrics([[1, 2], [3]], np.ones((2, 2)))
    with pytest.raises(InvalidArgument, match="overflows"):
        linear_probe(np.ones((3, 2)) * 1e200, np.ones((3, 2)))
    with pytest.raises(InvalidArgument, match="negative"):
        amortisation_gap(np.ones((2, 3)), -np.ones((2, 4)), np.ones((3, 4)), nonneg=True)
