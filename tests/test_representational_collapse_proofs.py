"""representational-collapse, the derivation: complete with its goal discharged, the printed
statements with their status, every paper-quantity mutation broken by a named step, and step
claims checked numerically at random points.

The numeric checks are independent of the derivation: mpmath at 40 digits on random logits,
values and matrices (softmax, attention outputs, total variation, operator norms by SVD,
finite differences, matrix powers), never the SymPy expressions the steps check.
"""

from __future__ import annotations

import random

import mpmath
import pytest
import sympy as sp

from proofs.representational_collapse import (
    PAPER,
    abar,
    alternating_tv_closed,
    b1_bound,
    b1_rate,
    b2_bound,
    derivation,
    one_layer_bound,
    oversquashing_constant,
    unit_roundoff_bf16,
)

QUANTITIES = {
    "b1.shift": ("index", 1), "b1.spread_factor": ("exponent", 2),
    "b2.constant": ("constant", 2), "b2.exponent": ("exponent", 2),
    "b3.value_factor": ("constant", 2), "gap.order": ("exponent", 2),
    "gap.order_varied": ("exponent", 1), "b4.factor": ("constant", 2),
    "b4.numerator_sign": ("sign", -1), "b4.denominator_sign": ("sign", 1),
    "b4.printed_shift": ("constant", 1), "c.residual": ("constant", 1),
    "c.beta3_exponent": ("exponent", -1), "abar.identity": ("constant", 1),
    "b8.beta3_root": ("constant", 4), "threshold.unit_exponent": ("exponent", -8),
}

#: For each quantity, the paper step its mutations must break (both directions).
BROKEN_BY = {
    "b1.shift": "B1.rate", "b1.spread_factor": "B1.spread", "b2.constant": "B2.rate",
    "b2.exponent": "B2.rate", "b3.value_factor": "B3.gap", "gap.order": "B3.rep_order",
    "gap.order_varied": "B3.sep_order", "b4.factor": "B4.TV", "b4.numerator_sign": "B4.TV",
    "b4.denominator_sign": "B4.TV", "c.residual": "B5.layer", "c.beta3_exponent": "B5.constant",
    "abar.identity": "B5.mix", "b8.beta3_root": "B8.factor",
    "threshold.unit_exponent": "P.repeated",
}

PRINTED = {"T5.1'": "inconsistent", "B5'": "inconsistent", "B5.sigma'": "refuted",
           "B4'": "refuted", "B3'": "inconsistent"}

DIGITS = 40


@pytest.fixture(scope="module")
def checked():
    return derivation()


def test_the_derivation_is_complete_and_discharges_its_goal(checked):
    assert checked.ok and checked.complete
    assert checked.goal_step == "goal" and checked.steps[-1].label == "goal"
    assert checked.steps[-1].by == "chain" and checked.steps[-1].step.role == "paper"
    assert checked.step("goal").consumed == ("B3.gap", "B5.bound")
    assert checked.unused == ()
    assert all(r.status == "checked" for r in checked.steps)
    assert len(checked.paper_steps) > 100 and len(checked.algebra_steps) >= 4
    summary = checked.summary()
    assert "goal discharged by (goal)" in summary and "derivation complete" in summary
    assert "2 refuted, 3 inconsistent" in summary and "NOT shown" not in summary


def test_paper_steps_use_the_methods_that_check_from_named_premises(checked):
    by = {r.label: r.by for r in checked.steps}
    assert by["B1.lemma"] == "chain" and by["B2.lemma"] == "chain" and by["B3.gap"] == "chain"
    assert by["B1.sum"] == "sum" and by["B1.c_high"] == "apply" and by["B3.u_a"] == "instance"
    assert by["B5.bound"] == "chain" and by["B5.layer1"] == "instance"
    # the derived rate is compared with the paper's by equality, from the spread's definition
    assert checked.step("B1.rate").consumed == ("h_B1_delta",)
    assert set(checked.step("B1.lemma").consumed) == {"h_B1_alpha", "B1.top", "B1.bottom",
                                                        "B1.rate"}
    # Theorem B.3's weight on the copy is Lemma B.1's last weight, used by reference
    assert checked.step("B3.gap_w").consumed == ("B1.bound",)


def test_every_quantity_is_in_the_table_and_read(checked):
    assert {q.name: (q.kind, int(q.value)) for q in PAPER} == QUANTITIES
    assert PAPER.unread == []
    exempt = [f"{q.name} {label}" for q in PAPER for label in q.exempt]
    assert exempt == ["b4.printed_shift x0.99", "b4.printed_shift x1.01"]


def test_printed_statements_fail_with_their_status(checked):
    assert {r.label: r.step.erratum for r in checked.printed} == PRINTED
    assert all(r.status == "failed" for r in checked.printed)
    assert checked.errata == {"refuted": 2, "inconsistent": 3}
    # a refuted statement comes with a witness that breaks the statement itself
    assert checked.step("B5.sigma'").witness == {"alpha": 0.0, "sigma": 0.0}
    assert checked.step("B4'").witness == {"h": 1.0}


@pytest.mark.parametrize("mutation", [m for m in PAPER.mutations() if not m.exempt], ids=str)
def test_each_mutation_breaks_a_named_step(mutation):
    with PAPER.mutated(mutation):
        broken = derivation()
    failed = [r.label for r in broken.steps if r.status != "checked"]
    assert BROKEN_BY[mutation.name] in failed
    assert not broken.ok


@pytest.mark.parametrize("mutation", [m for m in PAPER.mutations() if m.exempt], ids=str)
def test_an_exempt_mutation_leaves_the_printed_statement_refuted(mutation):
    with PAPER.mutated(mutation):
        mutated = derivation()
    assert mutated.ok and mutated.step("B4'").status == "failed"


def test_the_mutated_table_restores_itself():
    mutation = PAPER.mutations()[0]
    with PAPER.mutated(mutation):
        assert b1_rate(5, 0) != sp.Rational(1, 6)
    assert b1_rate(5, 0) == sp.Rational(1, 6)


# numeric spot checks at random points ---------------------------------------------------


def _softmax(logits):
    weights = [mpmath.exp(v) for v in logits]
    total = mpmath.fsum(weights)
    return [w / total for w in weights]


def _value(expr, **point):
    return mpmath.mpf(sp.N(expr.subs({sp.Symbol(k, **_assumptions(k)): v
                                      for k, v in point.items()}), DIGITS))


def _assumptions(name):
    return {"n": dict(positive=True, integer=True), "B": dict(nonnegative=True),
            "V": dict(nonnegative=True), "Sigma": dict(nonnegative=True)}.get(name, {})


@pytest.mark.parametrize("seed", range(6))
def test_lemma_b1_rate_at_random_logits(seed):
    rng = random.Random(seed)
    size = rng.randint(1, 40)
    with mpmath.workdps(DIGITS):
        entries = [mpmath.mpf(rng.uniform(-3, 3)) for _ in range(size + 1)]
        weight = _softmax(entries)[-1]
        spread = max(entries) - min(entries)
        bound = max(abs(v) for v in entries)
        assert weight <= mpmath.exp(spread) / (size + 1)
        assert mpmath.almosteq(_value(b1_rate(sp.Symbol("n", positive=True, integer=True),
                                              sp.Float(spread, DIGITS)), n=size),
                               mpmath.exp(spread) / (size + 1), 1e-30)
        assert weight <= _value(b1_bound(sp.Integer(size), sp.Float(bound, DIGITS)))
        # the shorter softmax's last entry is strictly larger (the first part of the lemma)
        shorter = entries[:size - 1] + entries[size:]
        assert _softmax(shorter)[-1] > weight


@pytest.mark.parametrize("seed", range(6))
def test_lemma_b2_bound_at_random_perturbations(seed):
    rng = random.Random(100 + seed)
    size = rng.randint(2, 60)
    with mpmath.workdps(DIGITS):
        x = [mpmath.mpf(rng.uniform(-1, 1)) for _ in range(size)]
        xs = [v + mpmath.mpf(rng.uniform(-0.3, 0.3)) if k < 5 else v for k, v in enumerate(x)]
        bound = max(abs(v) for v in x + xs)
        tv = mpmath.fsum(abs(a - b) for a, b in zip(_softmax(x), _softmax(xs), strict=True))
        total = mpmath.fsum(abs(a - b) for a, b in zip(x, xs, strict=True))
        assert tv <= _value(b2_bound(sp.Integer(size), sp.Float(bound, DIGITS),
                                     sp.Float(total, DIGITS)))
        # the proof's intermediate: TV <= (|Z - Z*| + D)/Z*
        z, zs = mpmath.fsum(map(mpmath.exp, x)), mpmath.fsum(map(mpmath.exp, xs))
        d = mpmath.fsum(abs(mpmath.exp(a) - mpmath.exp(b)) for a, b in zip(x, xs, strict=True))
        assert tv <= (abs(z - zs) + d) / zs and abs(z - zs) <= d


@pytest.mark.parametrize("seed", range(6))
def test_one_layer_identity_and_bound_at_random_values(seed):
    """z*_{n+1} - z_n = alpha* (u_a - m), computed from two attention passes."""
    rng = random.Random(200 + seed)
    size, width = rng.randint(2, 30), 3
    with mpmath.workdps(DIGITS):
        logits = [mpmath.mpf(rng.uniform(-2, 2)) for _ in range(size)]
        values = [[mpmath.mpf(rng.uniform(-1, 1)) for _ in range(width)] for _ in range(size)]
        short = _softmax(logits)
        long = _softmax(logits + [logits[-1]])
        z = [mpmath.fsum(w * v[c] for w, v in zip(short, values, strict=True))
             for c in range(width)]
        z_star = [mpmath.fsum(w * v[c] for w, v in zip(long, values + [values[-1]],
                                                       strict=True)) for c in range(width)]
        gap = [a - b for a, b in zip(z_star, z, strict=True)]
        expected = [long[-1] * (values[-1][c] - z[c]) for c in range(width)]
        assert all(mpmath.almosteq(a, b, 1e-30) for a, b in zip(gap, expected, strict=True))
        bound_v = max(mpmath.fsum(abs(c) for c in v) for v in values)
        bound_b = max(abs(v) for v in logits)
        gap_l1 = mpmath.fsum(abs(g) for g in gap)
        assert gap_l1 <= _value(one_layer_bound(sp.Integer(size), sp.Float(bound_b, DIGITS),
                                                sp.Float(bound_v, DIGITS)))


def test_repeated_token_gap_is_order_n_squared():
    """A prompt then r copies of a: r^2 * gap tends to a nonzero constant (mpmath, scalar
    values)."""
    with mpmath.workdps(DIGITS):
        prompt = [(mpmath.mpf("0.3"), mpmath.mpf("-0.7")), (mpmath.mpf("-0.2"), mpmath.mpf(1))]
        token = (mpmath.mpf("0.5"), mpmath.mpf("0.25"))

        def gap(copies):
            seq = prompt + [token] * copies
            short = _softmax([s for s, _ in seq])
            long = _softmax([s for s, _ in seq] + [token[0]])
            m = mpmath.fsum(w * v for w, (_, v) in zip(short, seq, strict=True))
            m_star = mpmath.fsum(w * v for w, (_, v) in zip(long, seq + [token], strict=True))
            return m_star - m

        scaled = [r ** PAPER.value("gap.order") * gap(r) for r in (10**3, 10**4, 10**5)]
        limit = mpmath.fsum(mpmath.exp(s) * (token[1] - v) for s, v in prompt) \
            / mpmath.exp(token[0])
        assert abs(scaled[-1] - limit) < abs(scaled[0] - limit) < abs(limit) / 10


@pytest.mark.parametrize("size", [2, 4, 10, 64])
def test_alternating_total_variation(size):
    with mpmath.workdps(DIGITS):
        x = [1 - (k % 2) for k in range(size)]
        xs = [k % 2 for k in range(size)]
        tv = mpmath.fsum(abs(a - b) for a, b in zip(_softmax(x), _softmax(xs), strict=True))
        assert mpmath.almosteq(tv, mpmath.mpf(sp.N(alternating_tv_closed(), DIGITS)), 1e-30)
        # the printed intermediate n(e - 1)/((ne + 1)/2) is not the total variation
        printed = size * (mpmath.e - 1) / ((size * mpmath.e + 1) / 2)
        assert abs(printed - tv) > mpmath.mpf("1e-3")


def _operator_norm(matrix):
    return max(mpmath.svd_r(matrix, compute_uv=False))


@pytest.mark.parametrize("seed", range(4))
def test_layer_jacobian_factor_at_random_matrices(seed):
    """||(J_psi J_2 + I)(alpha J_1 + delta I)|| <= (sigma/beta2 + 1)(alpha/beta1 + delta), with
    each factor scaled to its assumed norm."""
    rng = random.Random(300 + seed)
    dim = 3
    with mpmath.workdps(DIGITS):
        def random_with_norm(target):
            m = mpmath.matrix([[rng.gauss(0, 1) for _ in range(dim)] for _ in range(dim)])
            return m * (target / _operator_norm(m))

        sigma, b1, b2 = rng.uniform(0, 2), rng.uniform(0.5, 2), rng.uniform(0.5, 2)
        weight, kron = rng.uniform(0, 1), rng.choice([0, 1])
        eye = mpmath.eye(dim)
        layer = (random_with_norm(sigma) * random_with_norm(1 / b2) + eye) \
            * (weight * random_with_norm(1 / b1) + kron * eye)
        factor = _value((oversquashing_constant(1, sigma, b2, 1)) * abar(weight, b1, kron))
        assert _operator_norm(layer) <= factor


def test_sigma_power_witness_by_finite_differences():
    """psi(x) = sigma x with sigma = 0 (a 0-Lipschitz MLP), norms the identity: dy_n/dv_n is
    alpha + 1 > 0 = sigma^L (alpha + delta)."""
    with mpmath.workdps(DIGITS):
        sigma, weight, rest = mpmath.mpf(0), mpmath.mpf("0.3"), mpmath.mpf("0.8")

        def output(v):
            z = weight * v + (1 - weight) * rest + v
            return sigma * z + z

        slope = mpmath.diff(output, mpmath.mpf("0.1"))
        assert mpmath.almosteq(slope, (sigma + 1) * (weight + 1), 1e-30)
        assert slope > sigma * (weight + 1)


@pytest.mark.parametrize("size", [3, 6])
def test_proposition_b8_limit_at_depth_200(size):
    with mpmath.workdps(DIGITS):
        lam = mpmath.matrix(size, size)
        for r in range(size):
            for c in range(r + 1):
                lam[r, c] = mpmath.mpf(1) / (r + 1)
        tilde = (lam + mpmath.eye(size)) * _value(oversquashing_constant(
            1, 1, 1, PAPER["b8.beta3_root"]))
        power = tilde**400
        assert all(abs(power[size - 1, c] - (1 if c == 0 else 0)) < 1e-20
                   for c in range(size))


def test_counting_ten_and_eleven_hundred_agree():
    """No mask, no positional encoding: "10" and "1100" give the same layer-1 values."""
    rng = random.Random(7)
    with mpmath.workdps(DIGITS):
        values = {0: mpmath.mpf(rng.uniform(-1, 1)), 1: mpmath.mpf(rng.uniform(-1, 1))}
        scores = {(a, b): mpmath.mpf(rng.uniform(-1, 1)) for a in (0, 1) for b in (0, 1)}

        def layer(tokens):
            out = []
            for q in tokens:
                weights = _softmax([scores[q, k] for k in tokens])
                out.append(mpmath.fsum(w * values[k] for w, k in zip(weights, tokens,
                                                                       strict=True))
                           + values[q])
            return out

        short, long = layer([1, 0]), layer([1, 1, 0, 0])
        assert mpmath.almosteq(short[0], long[0], 1e-35)
        assert mpmath.almosteq(short[1], long[2], 1e-35)


def test_threshold_examples():
    u = float(unit_roundoff_bf16())
    assert u == 2.0**-8
    assert (1 / u) ** (1 / PAPER.value("gap.order_varied")) == 256
    assert (1 / u) ** (1 / PAPER.value("gap.order")) == 16
