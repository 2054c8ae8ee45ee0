"""representational-collapse: the Transformer, the REPL functions, the derivation, the certificate,
the sweep and its negative controls, the counterexample.

Expected numbers come from a plain NumPy re-implementation of the model, per-length recomputation
(against the key/value cache), mpmath at 50 digits, exact SymPy matrices, central finite
differences (against forward-mode Jacobians), and closed forms.
"""

from __future__ import annotations

import math

import ml_dtypes
import mpmath
import numpy as np
import pytest
import sympy as sp

import theorems
import theorems.representational_collapse as rc
import theorems.representational_collapse as rows_module
from numerics import FORMATS
from numerics.representational_collapse import (
    TOKEN,
    collapse_model,
    distinct_rows,
    family_prefix,
    fig9_logits,
    fit_rate,
    oversquashing_bound_values,
    oversquashing_terms,
    predicted_collapse,
    state_gaps,
)
from numerics.transformer import (
    Layer,
    Transformer,
    alibi_slopes,
    branch_forward,
    forward,
    random_transformer,
    sinusoidal_encoding,
)
from proofs import Derivation, Step, certify, le

mpmath.mp.dps = 50
THEOREM = theorems.get("representational-collapse")
PES = ("nope", "sinusoidal", "rope", "alibi")


def plain_forward(model: Transformer, tokens) -> np.ndarray:
    """The model of Section 2 in float64 NumPy, one head at a time (no key/value cache)."""
    v = model.embedding[np.asarray(tokens)]
    positions = np.arange(len(v))

    def norm(x):
        c = x - x.mean(-1, keepdims=True)
        return c / np.sqrt((c * c).mean(-1, keepdims=True) + model.norm_eps)

    for layer in model.layers:
        h = norm(v)
        h_qk = h + sinusoidal_encoding(positions, model.d) if model.pe == "sinusoidal" else h
        heads = []
        for index in range(model.heads):
            q, k, u = h_qk @ layer.w_q[index], h_qk @ layer.w_k[index], h @ layer.w_v[index]
            if model.pe == "rope":
                angle = positions[:, None] * model.rope_base ** (
                    -np.arange(0, q.shape[1], 2) / q.shape[1])
                cos, sin = np.cos(angle), np.sin(angle)
                for x in (q, k):
                    even, odd = x[:, 0::2].copy(), x[:, 1::2].copy()
                    x[:, 0::2], x[:, 1::2] = even * cos - odd * sin, even * sin + odd * cos
            s = q @ k.T / math.sqrt(q.shape[1])
            if model.pe == "alibi":
                s -= alibi_slopes(model.heads)[index] * (positions[:, None] - positions[None, :])
            s = np.where(positions[None, :] <= positions[:, None], s, -np.inf)
            w = np.exp(s - s.max(1, keepdims=True))
            heads.append(w / w.sum(1, keepdims=True) @ u)
        z = v + np.concatenate(heads, axis=1) @ layer.w_o
        v = z + (np.maximum(norm(z) @ layer.w_1 + layer.b_1, 0) @ layer.w_2 + layer.b_2
                 if layer.has_mlp else 0)
    return v


def bits(x):
    x = np.asarray(x)
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])


# --- the Transformer ------------------------------------------------------------------------

@pytest.mark.parametrize("pe", PES)
def test_forward_matches_a_plain_implementation(pe):
    model = random_transformer(vocab=12, d=8, layers=2, heads=2, pe=pe, seed=1)
    tokens = np.random.default_rng(0).integers(0, 12, 11)
    np.testing.assert_allclose(forward(model, tokens).states, plain_forward(model, tokens),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pe", PES)
def test_key_value_cache_equals_per_length_recomputation_in_fp64(pe):
    model = random_transformer(vocab=12, d=8, layers=2, heads=2, pe=pe, seed=2)
    prefix = np.random.default_rng(1).integers(0, 12, 9)
    result = branch_forward(model, prefix, 3, second=5)
    for n in range(1, 11):
        short = plain_forward(model, np.r_[prefix[: n - 1], 3])[-1]
        long = plain_forward(model, np.r_[prefix[: n - 1], 3, 5])[-1]
        np.testing.assert_allclose(result.short[n - 1], short, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(result.long[n - 1], long, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt,policy", [("bf16", "strict"), ("fp8-e4m3", "strict"),
                                        ("fp16", "strict"), ("bf16", "hw"), ("fp8-e5m2", "hw")])
@pytest.mark.parametrize("pe", ["nope", "rope", "alibi"])
def test_key_value_cache_is_bitwise_per_length_recomputation(fmt, policy, pe):
    model = random_transformer(vocab=12, d=8, layers=2, heads=2, pe=pe, seed=3)
    prefix = np.random.default_rng(2).integers(0, 12, 15)
    result = branch_forward(model, prefix, 4, fmt=fmt, policy=policy)
    for n in range(1, 17):
        short = forward(model, np.r_[prefix[: n - 1], 4], fmt, policy).states[-1]
        long = forward(model, np.r_[prefix[: n - 1], 4, 4], fmt, policy).states[-1]
        np.testing.assert_array_equal(bits(result.short[n - 1]), bits(short))
        np.testing.assert_array_equal(bits(result.long[n - 1]), bits(long))


def test_outputs_stay_in_the_format():
    model = random_transformer(vocab=12, d=8, seed=0)
    run = forward(model, np.arange(5), "bf16", "hw")
    assert run.states.dtype == np.dtype(ml_dtypes.bfloat16)
    assert run.outputs.dtype == np.dtype(ml_dtypes.bfloat16)
    branches = branch_forward(model, np.arange(5), 1, fmt="fp8-e4m3", policy="strict")
    assert branches.short.dtype == np.dtype(ml_dtypes.float8_e4m3fn)


def test_hand_set_weights_give_the_closed_form():
    # W_Q = W_K = 0: uniform causal attention; values W_V W_O = I; no norms, no MLP; so
    # v_i^(1) = e_i + mean_{j <= i} e_j (the running mean), for any positional encoding but ALiBi
    d = 4
    eye = np.eye(d)[None]
    layer = Layer(np.zeros((1, d, d)), np.zeros((1, d, d)), eye, np.eye(d))
    embedding = np.random.default_rng(4).normal(size=(6, d))
    model = Transformer(embedding, (layer,), pe="rope", norm="none")
    tokens = np.array([0, 3, 5, 1, 1, 2])
    e = embedding[tokens]
    expected = e + np.cumsum(e, axis=0) / np.arange(1, 7)[:, None]
    np.testing.assert_allclose(forward(model, tokens).states, expected, rtol=1e-14)


def test_fixed_attention_replaces_the_softmax():
    model = random_transformer(vocab=8, d=4, seed=0, mlp=False, norm="none",
                               value_projection=False)
    tokens = np.array([1, 2, 3])
    uniform = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    e = model.embedding[tokens]
    np.testing.assert_allclose(forward(model, tokens, attention=[uniform]).states,
                               e + uniform @ e, rtol=1e-14)


# --- REPL functions ---------------------------------------------------------------------------

def exact_tv(x, y) -> mpmath.mpf:
    zx = mpmath.fsum(mpmath.exp(v) for v in x)
    zy = mpmath.fsum(mpmath.exp(v) for v in y)
    return mpmath.fsum(abs(mpmath.exp(a) / zx - mpmath.exp(b) / zy) for a, b in zip(x, y,
                                                                                   strict=True))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 11, 64, 101])
def test_alternating_tv_against_mpmath(n):
    ones = [mpmath.mpf((i + 1) % 2) for i in range(n)]
    other = [1 - v for v in ones]
    assert rc.alternating_tv(n) == pytest.approx(float(exact_tv(ones, other)), rel=1e-13)


def test_alternating_tv_is_constant_for_even_n():
    expected = float(2 * mpmath.tanh(mpmath.mpf(1) / 2))
    np.testing.assert_allclose(rc.alternating_tv(np.arange(2, 2001, 2)), expected, rtol=1e-14)


@pytest.mark.parametrize("n,k", [(50, 200), (300, 200), (2000, 200), (1000, 0)])
def test_perturbed_softmax_tv_against_mpmath(n, k):
    expected = []
    for seed in range(3):
        x, y = fig9_logits(n, k=k, noise=0.1, seed=seed)
        expected.append(exact_tv([mpmath.mpf(v) for v in x], [mpmath.mpf(v) for v in y]))
    value = rc.perturbed_softmax_tv(n, k=k, seeds=3)
    assert value == pytest.approx(float(mpmath.fsum(expected) / 3), rel=1e-12, abs=1e-300)
    if k == 0:
        assert value == 0


def test_lemma_b2_bound_holds_on_random_perturbations():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(2, 60))
        x = rng.uniform(-2, 2, n)
        y = np.clip(x + rng.normal(0, 0.3, n), -2, 2)
        big = max(np.abs(x).max(), np.abs(y).max())
        bound = 2 * math.exp(2 * big) / n * np.abs(y - x).sum()
        assert exact_tv([mpmath.mpf(v) for v in x], [mpmath.mpf(v) for v in y]) <= bound


def one_layer_identity_gap(model, tokens):
    """``alpha*_{n+1,n+1} ||W_O(u_a - m)||_1`` in mpmath for a one-layer, one-head, MLP-free NoPE
    model: the exact gap of ``[tokens, a]`` against ``[tokens, a, a]``."""
    layer = model.layers[0]
    with mpmath.workdps(50):
        rows = [[mpmath.mpf(v) for v in model.embedding[t]] for t in tokens]
        d = len(rows[0])

        def norm(r):
            mean = mpmath.fsum(r) / d
            var = mpmath.fsum((v - mean) ** 2 for v in r) / d
            return [(v - mean) / mpmath.sqrt(var + mpmath.mpf(model.norm_eps)) for v in r]

        def mul(r, w):
            return [mpmath.fsum(r[i] * mpmath.mpf(w[i, j]) for i in range(len(r)))
                    for j in range(w.shape[1])]

        h = [norm(r) for r in rows]
        q = mul(h[-1], layer.w_q[0])
        keys = [mul(r, layer.w_k[0]) for r in h]
        values = [mul(mul(r, layer.w_v[0]), layer.w_o) for r in h]
        logits = [mpmath.fsum(a * b for a, b in zip(q, k, strict=True)) /
                  mpmath.sqrt(len(q)) for k in keys]
        weights = [mpmath.exp(x) for x in logits]
        total = mpmath.fsum(weights)
        mean = [mpmath.fsum(w * v[j] for w, v in zip(weights, values, strict=True)) / total
                for j in range(d)]
        alpha = weights[-1] / (total + weights[-1])
        return float(alpha * mpmath.fsum(abs(a - m) for a, m in zip(values[-1], mean,
                                                                     strict=True)))


@pytest.mark.parametrize("family", ["repeated", "sampled"])
def test_one_layer_gap_equals_the_identity_in_mpmath(family):
    model = random_transformer(vocab=32, d=8, layers=1, seed=3, mlp=False)
    size = 40
    prefix = family_prefix(family, size, seed=3)
    gaps = state_gaps(*(lambda r: (r.short, r.long))(branch_forward(model, prefix, TOKEN)))
    for n in (2, 9, 17, 40):
        tokens = list(prefix[: n - 1]) + [TOKEN]
        assert gaps[n - 1] == pytest.approx(one_layer_identity_gap(model, tokens), rel=1e-10)


def test_repeated_tokens_decay_as_one_over_n_squared_in_closed_form():
    # one layer, no MLP, NoPE: with S = the prompt's exponentials and E = e^{x_a}, the gap is
    # E/(S + (r + 1)E) * S/(S + rE) * ||u_a - m_prompt|| for r copies of a: c/((n + c1)(n + c2))
    model = random_transformer(vocab=32, d=8, layers=1, seed=6, mlp=False)
    size = 2048
    result = branch_forward(model, family_prefix("repeated", size, seed=6), TOKEN, trace=True)
    gaps = state_gaps(result.short, result.long)
    lengths = np.arange(1, size + 1)
    weight = result.trace[0]["long_self"][0]
    rate = fit_rate(lengths, gaps, low=256, high=size, scale=1 / weight)
    assert rate == pytest.approx(2, abs=0.02)
    sampled = branch_forward(model, family_prefix("sampled", size, seed=6), TOKEN, trace=True)
    sampled_gaps = state_gaps(sampled.short, sampled.long)
    assert fit_rate(lengths, sampled_gaps, low=256, high=size,
                    scale=1 / sampled.trace[0]["long_self"][0]) == pytest.approx(1, abs=0.1)


def test_predicted_collapse_is_the_unit_roundoff_threshold():
    # states 1.5 (ulp 2^-7 in bf16) and gaps 1/n: equal once 1/n < 2^-8, i.e. from n = 257 on
    size = 400
    short = np.full((size, 3), 1.5)
    long = short + 1.0 / np.arange(1, size + 1)[:, None]
    flags = predicted_collapse(short, long, FORMATS["bf16"])
    assert int(np.argmax(flags)) + 1 == math.floor(1 / 2.0**-8) + 1
    flags = predicted_collapse(short, short + 1.0 / np.arange(1, size + 1)[:, None] ** 2,
                               FORMATS["bf16"])
    assert int(np.argmax(flags)) + 1 == math.floor(math.sqrt(2**8)) + 1


def test_predicted_collapse_looks_at_what_determines_the_final_state():
    # final states 1/n apart never round together in bf16 below n = 257, but a first-layer
    # attention output that already agrees fixes everything downstream, under NoPE only
    size = 64
    short = np.full((size, 3), 1.5)
    long = short + 1.0 / np.arange(1, size + 1)[:, None]
    mix = np.ones((2, size, 4))
    far = {"short_z": short, "long_z": long, "short_mix": mix, "long_mix": mix + 1.0}
    near = {"short_z": short, "long_z": long, "short_mix": mix, "long_mix": mix + 2.0**-12}
    bf16 = FORMATS["bf16"]
    assert not predicted_collapse(short, long, bf16, trace=[near, far], positional=True).any()
    assert predicted_collapse(short, long, bf16, trace=[near, far], positional=False).all()
    assert not predicted_collapse(short, long, bf16, trace=[far, far], positional=False).any()
    z_equal = {**far, "long_z": short}
    assert predicted_collapse(short, long, bf16, trace=[far, z_equal], positional=True).all()


@pytest.mark.parametrize("pe", PES)
def test_one_token_against_two_copies_agree_exactly(pe):
    # [a] against [a, a]: every value is the same, so any weights give the same state; the fp64
    # reference's own rounding must not count as a difference
    model = collapse_model(d=16, layers=2, pe=pe, seed=0)
    result = branch_forward(model, family_prefix("sampled", 32), TOKEN)
    assert state_gaps(result.short, result.long)[0] < 1e-13
    flags = distinct_rows(result.short, result.long)
    assert not flags[0] and flags[1:].all()


def test_final_state_gaps_shapes_and_norms():
    l1 = rc.final_state_gaps("sampled", 64, d=8)
    top = rc.final_state_gaps("sampled", 64, d=8, norm="max")
    assert l1.shape == (64,) and l1.dtype == np.float64
    assert np.all(top <= l1) and np.all(l1 <= 8 * top + 1e-15)
    assert l1[0] == 0  # v = [a] and v* = [a, a] have the same state without positions


# --- over-squashing ---------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("pe", ["nope", "rope"])
def test_fixed_attention_jacobian_against_finite_differences(layers, pe):
    model = random_transformer(vocab=32, d=4, layers=layers, seed=layers, pe=pe,
                               value_projection=False)
    tokens = np.random.default_rng(0).integers(0, 32, 6)
    terms = oversquashing_terms(model, tokens)
    inputs = model.embedding[tokens]
    step = 1e-6
    for i in range(len(tokens)):
        for c in range(model.d):
            shift = np.zeros_like(inputs)
            shift[i, c] = step
            plus = forward(model, inputs + shift, attention=terms["attention"]).outputs[-1]
            minus = forward(model, inputs - shift, attention=terms["attention"]).outputs[-1]
            np.testing.assert_allclose(terms["jacobian"][i, :, c], (plus - minus) / (2 * step),
                                       atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_theorem_b5_bound_holds_with_attention_fixed(seed):
    for layers in (1, 3):
        model = random_transformer(vocab=32, d=6, layers=layers, seed=seed,
                                   value_projection=False, pe=PES[seed])
        terms = oversquashing_terms(model, np.arange(10) + seed)
        bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                           terms["beta2"], terms["beta3"], terms["sigma_psi"])
        assert np.all(np.linalg.norm(terms["jacobian"], 2, axis=(1, 2)) <= bound)


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_oversquashing_bound_is_the_exact_matrix_power(depth):
    size = 5
    uniform = sp.Matrix(size, size, lambda i, j: sp.Rational(1, i + 1) if j <= i else 0)
    expected = ((uniform + sp.eye(size)) / 2) ** depth
    bound = rc.oversquashing_bound([np.array(uniform, dtype=float)] * depth, beta3=4.0**depth)
    np.testing.assert_allclose(bound, [float(v) for v in expected.row(size - 1)], rtol=1e-13)


def test_proposition_b8_the_bound_forgets_all_but_the_first_token():
    uniform = np.tril(np.ones((6, 6))) / np.arange(1, 7)[:, None]
    bound = rc.oversquashing_bound([uniform] * 200, beta3=4.0**200)
    assert bound[0] == pytest.approx(1, abs=1e-12) and np.all(bound[1:] < 1e-12)


# --- derivation and certificate ---------------------------------------------------------------

def test_derivation_is_complete_and_shows_the_printed_inconsistencies():
    d = THEOREM.derive()
    assert d.ok and d.complete and len(d.steps) == 35
    assert {r.by for r in d.steps} >= {"simplify", "limit", "series", "interval", "monotone",
                                       "given"}
    assert repr(d) == "<Derivation representational-collapse: 35/35 checked>"
    printed = {r.label: r for r in d.printed}
    assert set(printed) == {"T5.1'", "B5'", "B5c'", "B4'"}
    assert all(r.status == "failed" and r.witness for r in printed.values())
    w = printed["B5c'"].witness  # B.5's sigma_psi^L * (alpha + delta)/beta against the proof's
    printed_bound = w["sigma"] * (w["alpha"] + 1) / w["beta1"]
    derived = (w["sigma"] / w["beta2"] + 1) * (w["alpha"] / w["beta1"] + 1) / w["beta3"]
    assert printed_bound < derived
    k = printed["B4'"].witness["k"]  # the printed (ne + 1)/2 denominator
    assert 2 * k * (math.e - 1) / ((2 * k * math.e + 1) / 2) != pytest.approx(
        rc.alternating_tv(2 * k))


def test_derivation_negative_control():
    n, bound = sp.Symbol("n", positive=True), sp.Symbol("B", nonnegative=True)
    tight = 1 / (1 + n * sp.exp(-2 * bound))
    too_tight = Step("x", le(tight, sp.exp(2 * bound) / (n + 1) * sp.Rational(999, 1000)),
                     by="interval", box={n: (1, 2**20), bound: (0, 4)})
    d = Derivation.check("control", source="test", hypotheses={}, goal=sp.true, steps=[too_tight])
    assert not d.ok and d.steps[0].status == "failed"
    w = d.steps[0].witness
    assert 1 / (1 + w["n"] * mpmath.exp(-2 * w["B"])) > \
        mpmath.exp(2 * w["B"]) / (w["n"] + 1) * mpmath.mpf("0.999")


def test_certificate_and_its_negative_control():
    assert THEOREM.certify().status == "proved"
    n, bound = sp.Symbol("n", positive=True), sp.Symbol("B", nonnegative=True)
    bad = certify(le(1 / (1 + n * sp.exp(-2 * bound)),
                     sp.exp(2 * bound) / (n + 1) * sp.Rational(999, 1000)),
                  {n: (1, 2**24), bound: (0, 8)})
    assert bad.status == "refuted"
    w = bad.witness
    assert 1 / (1 + w["n"] * mpmath.exp(-2 * w["B"])) > \
        mpmath.exp(2 * w["B"]) / (w["n"] + 1) * mpmath.mpf("0.999")


# --- the sweep --------------------------------------------------------------------------------

REQUIRED = {"theorem", "n", "format", "policy", "seed", "backend", "quantity", "observed",
            "bound", "margin", "verdict", "mechanism"}


@pytest.fixture(scope="module")
def quick_report():
    return THEOREM.check(quick=True, sizes=[128])


def test_quick_check_is_ok(quick_report):
    import json

    report = quick_report
    assert report.ok and report.counts["violated"] == 0
    assert all(REQUIRED <= set(row) for row in report.rows)
    json.dumps(report.rows, allow_nan=False)
    assert all(type(value) in (int, float, str, bool) for row in report.rows
               for value in row.values() if value is not None)
    quantities = {row["quantity"] for row in report.rows}
    assert quantities == {"gap-l1<=bound", "gap-max<=bound", "distinct", "one-layer identity",
                          "decay-rate", "collapse-length", "tv<=lemma-b2", "jacobian<=bound"}
    effects = [row for row in report.rows if row["verdict"] == "precision-effect"]
    assert effects and all(row["mechanism"] for row in effects)
    assert {row["mechanism"] for row in effects} >= {"rounding to equality"}
    for row in report.rows:  # fp64 shows no precision effect, and fp64 never collapses
        if row["format"] == "fp64":
            assert row["verdict"] == "holds", row
    collapsed = [row for row in report.rows if row["quantity"] == "collapse-length"
                 and row["observed_n"] is not None]
    assert {row["format"] for row in collapsed} >= {"fp8-e4m3", "fp8-e5m2"}


def test_collapse_rows_agree_with_recomputation(quick_report):
    row = next(r for r in quick_report.rows if r["quantity"] == "collapse-length"
               and r["format"] == "fp8-e4m3" and r["policy"] == "hw"
               and r["family"] == "repeated")
    n = row["observed_n"]
    model = collapse_model(d=16, layers=1, pe="nope", seed=0)
    tokens = np.r_[family_prefix("repeated", n, seed=0), TOKEN]
    short = forward(model, tokens, "fp8-e4m3", "hw").states[-1]
    long = forward(model, np.r_[tokens, TOKEN], "fp8-e4m3", "hw").states[-1]
    np.testing.assert_array_equal(bits(short), bits(long))
    assert np.abs(forward(model, tokens).states[-1]
                  - forward(model, np.r_[tokens, TOKEN]).states[-1]).sum() > 0


def one_cell(experiment="sampled", fmt="fp64", **extra):
    params = {"experiment": experiment, "n": 128, "format": fmt, "policy": "hw", "seed": 0,
              "layers": 1, "pe": "nope", "d": 16, "backend": "numpy", **extra}
    return rows_module.evaluate(params)


def test_negative_control_gap_bound_just_below_the_exact_gap(monkeypatch):
    exact = branch_forward(collapse_model(d=16, layers=1, pe="nope", seed=0),
                           family_prefix("sampled", 128, seed=0), TOKEN)
    # the max-norm rows compare with the L2 bound itself: make it 1% below the exact max gap
    top = state_gaps(exact.short, exact.long, "max")
    monkeypatch.setattr(rows_module, "gap_bound", lambda model, trace: top * 0.99)
    rows = [row for row in one_cell() if row["quantity"] == "gap-max<=bound" and row["n"] > 1]
    assert rows and all(row["verdict"] == "violated" for row in rows)


def test_negative_control_rate_claimed_as_printed_for_repeated_tokens(monkeypatch):
    # claiming O(1/n^2) for sampled digits (the repeated-token rate) must be refuted
    monkeypatch.setattr(rows_module, "RATE_TOLERANCE", 0.25 - 1.0)
    rows = one_cell()
    rate = next(row for row in rows if row["quantity"] == "decay-rate")
    assert rate["verdict"] == "violated" and rate["exact"] < rate["bound"]


def test_negative_control_identity_tolerance(monkeypatch):
    original = rows_module.identity_residual

    def shrunk(record, **units):
        result = original(record, **units)
        return {**result, "tolerance": result["residual"] * 0.5}

    monkeypatch.setattr(rows_module, "identity_residual", shrunk)
    rows = one_cell(experiment="repeated")
    identity = [row for row in rows if row["quantity"] == "one-layer identity"]
    assert any(row["verdict"] == "violated" for row in identity)


def test_negative_control_lemma_b2_bound(monkeypatch):
    original = rows_module.perturbed_softmax

    def shrunk(*args, **kwargs):
        result = original(*args, **kwargs)
        return {**result, "bound": result["exact"] * 0.999}

    monkeypatch.setattr(rows_module, "perturbed_softmax", shrunk)
    rows = one_cell(experiment="perturbed-softmax")
    assert any(row["verdict"] == "violated" for row in rows)


def test_negative_control_theorem_b5_as_printed(monkeypatch):
    # B.5's statement: sigma_psi^L prod (Lambda + I)/beta, which drops the residual path
    def printed(attention, beta1, beta2, beta3, sigma_psi):
        product = np.eye(len(attention[0]))
        for matrix, b in zip(attention, beta1, strict=True):
            product = (matrix + np.eye(len(matrix))) / b @ product
        return np.prod(sigma_psi) * product[-1]

    def without_mlp(*, layers, pe, seed):  # psi = 0, so sigma_psi = 0: only the residual path
        model = random_transformer(vocab=32, d=8, layers=layers, pe=pe, seed=seed, mlp=False,
                                   value_projection=False)
        return model, np.arange(16)

    params = {"experiment": "oversquashing", "n": 16, "format": "fp64", "policy": "hw",
              "seed": 0, "layers": 3, "pe": "nope", "d": 8, "backend": "numpy"}
    monkeypatch.setattr(rows_module, "oversquashing_model", without_mlp)
    assert all(row["verdict"] == "holds" for row in rows_module.evaluate(params))
    monkeypatch.setattr(rows_module, "oversquashing_bound_values", printed)
    assert all(row["verdict"] == "violated" for row in rows_module.evaluate(params))


def test_cells_per_experiment():
    axes = {"n": [64], "format": ["fp64", "bf16"], "policy": ["hw", "strict"], "seed": [0],
            "experiment": list(rows_module.EXPERIMENTS), "layers": [1, 2], "pe": ["nope"],
            "d": [16], "backend": ["numpy"]}
    cells = THEOREM.cells(axes)
    count = {}
    for cell in cells:
        count[cell.as_dict()["experiment"]] = count.get(cell.as_dict()["experiment"], 0) + 1
    assert count == {"repeated": 8, "sampled": 8, "separated": 8, "alternating": 8,
                     "perturbed-softmax": 4, "oversquashing": 2}
    assert len({cell.key for cell in cells}) == len(cells)


# --- counterexample ---------------------------------------------------------------------------

def test_counterexample_counts_fail_at_the_smallest_collapsing_length():
    witness = THEOREM.counterexample("repeated", fmt="fp8-e4m3", n_max=256, d=16)
    model = collapse_model(d=16, layers=1, pe="nope", seed=0)
    short = forward(model, witness.short_tokens, "fp8-e4m3", "hw").states[-1]
    long = forward(model, witness.long_tokens, "fp8-e4m3", "hw").states[-1]
    np.testing.assert_array_equal(bits(short), bits(long))
    np.testing.assert_array_equal(bits(short), bits(witness.state))
    assert len(witness.long_tokens) == len(witness.short_tokens) + 1 == witness.n + 1
    exact = np.abs(forward(model, witness.short_tokens).states[-1]
                   - forward(model, witness.long_tokens).states[-1]).sum()
    assert exact == pytest.approx(witness.exact_gap, rel=1e-9) and exact > 0
    for n in range(2, witness.n):  # nothing shorter collapses
        tokens = np.r_[family_prefix("repeated", n, seed=0), TOKEN]
        a = forward(model, tokens, "fp8-e4m3", "hw").states[-1]
        b = forward(model, np.r_[tokens, TOKEN], "fp8-e4m3", "hw").states[-1]
        assert not np.array_equal(bits(a), bits(b))
    assert witness.copies == witness.n - 8


def test_counterexample_needs_a_collapse():
    with pytest.raises(ValueError, match="no n <= 64"):
        THEOREM.counterexample("sampled", fmt="fp64", n_max=64, d=16)


# --- bad input --------------------------------------------------------------------------------

def _stochastic_but_not_causal():
    return [np.full((3, 3), 1 / 3)]


@pytest.mark.parametrize("call,match", [
    (lambda: rc.final_state_gaps("repeated", 0), "n_max=0 must be a positive integer"),
    (lambda: rc.final_state_gaps("repeated", 8, fmt="bf32"), "unknown format 'bf32'"),
    (lambda: rc.final_state_gaps("repeat", 8), "unknown family 'repeat'"),
    (lambda: rc.final_state_gaps("repeated", 8, pe="nop"), "unknown pe 'nop'"),
    (lambda: rc.final_state_gaps("repeated", 8, norm="l3"), "unknown norm 'l3'"),
    (lambda: rc.final_state_gaps("repeated", 8, policy="loose"), "unknown policy 'loose'"),
    (lambda: rc.collapse_length("repeated", fmt="bf16", n_max=2.5), "expected int"),
    (lambda: rc.alternating_tv(0), "positive integer"),
    (lambda: rc.perturbed_softmax_tv(0), "n=0 must be a positive integer"),
    (lambda: rc.perturbed_softmax_tv(10, noise=math.nan), "noise=nan must be finite"),
    (lambda: rc.oversquashing_bound([]), "attention=\\[\\] is empty"),
    (lambda: rc.oversquashing_bound([np.array([[1.0, 0], [0.5, 0.4]])]), "row 1 sums to 0.9"),
    (lambda: rc.oversquashing_bound([np.array([[1.0, 0], [np.nan, 1]])]), "NaN"),
    (lambda: rc.oversquashing_bound(_stochastic_but_not_causal()), "not causal"),
    (lambda: rc.oversquashing_bound([np.eye(2)], beta1=0.0), "beta1"),
    (lambda: rc.oversquashing_bound([np.eye(2)], beta3=-1.0), "beta3"),
    (lambda: rc.oversquashing_bound([np.eye(2)] * 2, beta2=[1, 2, 3]), "one per layer"),
    (lambda: forward(random_transformer(vocab=4, d=4), np.array([0, 9])), "outside 0..3"),
    (lambda: forward(random_transformer(vocab=4, d=4), np.array([[0.0, np.nan, 0, 0]])), "NaN"),
    (lambda: forward(random_transformer(vocab=4, d=4), np.array([0.5, 1.5])), "inputs have shape"),
    (lambda: forward(random_transformer(vocab=4, d=4), np.arange(2),
                     attention=[np.ones((1, 2, 2))]), "not row-stochastic"),
    (lambda: random_transformer(vocab=4, d=6, heads=4, pe="rope"), "even d_head"),
    (lambda: random_transformer(vocab=4, d=0), "d=0 must be a positive integer"),
    (lambda: Transformer(np.zeros((4, 3)), (Layer(np.zeros((1, 4, 2)), np.zeros((1, 4, 2)),
                                                  np.zeros((1, 4, 2)), np.zeros((2, 4))),)),
     "expected \\(heads, 3, d_head\\)"),
    (lambda: branch_forward(random_transformer(vocab=4, d=4), np.array([1]), 7), "first=7"),
    (lambda: THEOREM.check(sizes=[0]), "n=0 must be a positive integer"),
    (lambda: THEOREM.check(formats=[]), "formats=\\[\\] is empty"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
