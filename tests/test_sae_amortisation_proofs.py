"""sae-amortisation, the derivation: complete with its goal discharged, the K = 1 statement
refuted, every paper-quantity mutation broken by a named step, and the helpers the numeric
checker reads checked against independent computations.

The independent numbers come from mpmath at 50 digits (the measurement-dimension rule, the Welch
bound, the frames, the momentum sequence), exact SymPy ranks, SciPy's linear programming (l1
recovery) and NumPy on random dictionaries, never from the expressions the steps check.
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pytest
import scipy.optimize
import sympy as sp

from proofs.sae_amortisation import (
    PAPER,
    coherence_certifies,
    compressed_sensing_dim,
    derivation,
    fista_rate_bound,
    frame_120,
    ista_rate_bound,
    welch_bound,
)

DIGITS = 50

QUANTITIES = {
    "cs.c": ("constant", 2), "cs.floor": ("index", 1), "cs.k": ("index", 10),
    "cs.m.50": ("index", 33), "cs.m.100": ("index", 47), "cs.m.500": ("index", 79),
    "cs.m.1000": ("index", 93), "cs.m.5000": ("index", 125), "cs.m.10000": ("index", 139),
    "fista.rate": ("constant", 2), "ista.rate": ("constant", sp.Rational(1, 2)),
    "fista.momentum": ("constant", 4), "prox.threshold": ("constant", 1),
    "coherence.half": ("constant", sp.Rational(1, 2)),
    "spark.half": ("constant", sp.Rational(1, 2)), "mp.angle": ("constant", 2 * sp.pi / 3),
    "mp.halfplane": ("constant", 5 * sp.pi / 18), "prop.K": ("index", 2),
}

#: For each quantity, the step its mutations break (both directions).
BROKEN_BY = {
    "cs.c": "M1", "cs.k": "M1", **{f"cs.m.{n}": "M1" for n in (50, 100, 500, 1000, 5000, 10000)},
    "fista.rate": "R2", "ista.rate": "S6", "fista.momentum": "T1", "prox.threshold": "X1",
    "coherence.half": "K1", "spark.half": "U1", "mp.angle": "C2",
}

#: The notes' table (sec. 1): (n, m) -> Welch bound to three decimals.
WELCH_TABLE = {(50, 33): 0.103, (100, 47): 0.107, (1000, 93): 0.099, (10000, 139): 0.084}


@pytest.fixture(scope="module")
def checked():
    return derivation()


# --- the derivation -------------------------------------------------------------------------

def test_the_derivation_is_complete_and_discharges_its_goal(checked):
    assert checked.ok and checked.complete and checked.unused == ()
    assert checked.goal_step == "thm" and checked.steps[-1].label == "thm"
    assert all(r.status == "checked" for r in checked.steps)
    assert checked.step("thm").by == "chain" and set(checked.step("thm").consumed) == {"prop", "R3"}
    assert len(checked.paper_steps) >= 55 and len(checked.algebra_steps) == 3
    summary = checked.summary()
    assert "goal discharged by (thm)" in summary and "derivation complete" in summary
    assert "1 refuted" in summary and "NOT shown" not in summary


def test_the_k1_statement_is_refuted_by_the_120_degree_frame(checked):
    printed = checked.step("K=1")
    assert [r.label for r in checked.printed] == ["K=1"]
    assert printed.status == "failed" and printed.step.erratum == "refuted"
    # a paraphrase of secondary sources, not the paper's verbatim theorem (notes 5.5)
    assert printed.step.cite.startswith("paraphrased claim") and "unconfirmed" in printed.step.cite
    assert checked.errata == {"refuted": 1}
    assert set(printed.witness) == {"c0", "c1", "c2"}
    # the witness is a real counterexample: ReLU(c G e_i) = c e_i exactly at it
    D = frame_120()
    G = D.T * D
    for i, name in enumerate(("c0", "c1", "c2")):
        value = sp.nsimplify(printed.witness[name])
        code = sp.Matrix([value if row == i else 0 for row in range(3)])
        assert (G * code).applyfunc(lambda entry: sp.Max(0, entry)) == code


G_ENTRIES = tuple(f"G{i}{j}" for i, j in itertools.product(range(3), repeat=2))
H_ENTRIES = tuple(f"H{i}{j}" for i, j in itertools.product(range(3), repeat=2))


def test_the_proposition_reads_every_entry_of_g_from_its_own_support(checked):
    for i, j in itertools.product(range(3), repeat=2):
        entry = checked.step(f"I{i}{j}")
        assert entry.status == "checked" and entry.by == "chain"
        assert entry.consumed == (f"A{i}{j}",)
        derived = checked.step(f"A{i}{j}")
        # differentiation of the identity on the open box, not a limit s_j -> oo
        assert derived.by == "simplify" and derived.claim.rhs.has(sp.Derivative)
        (hypothesis,) = derived.consumed
        support = {int(ch) for ch in hypothesis[1:hypothesis.index(".")]}
        assert {i, j} <= support and len(support) == PAPER["prop.K"]
    assert checked.step("rank").by == "simplify"
    assert checked.step("rank").consumed == ("det", *G_ENTRIES)  # G = W D is what makes det 0
    assert checked.step("detI").consumed[0] == "det"
    assert set(checked.step("prop").consumed) == {"detI", "rank"}
    assert "GWD" not in {r.label for r in checked.steps}


def test_the_linear_probe_is_refuted_from_its_own_exactness(checked):
    for i, j in itertools.product(range(3), repeat=2):
        assert checked.step(f"PA{i}{j}").consumed == (f"y{j}.{i}",)
        assert checked.step(f"PI{i}{j}").consumed == (f"PA{i}{j}",)
    assert checked.step("probe0").consumed == ("pdet", *H_ENTRIES)
    assert checked.step("probeI").consumed[0] == "pdet"
    assert set(checked.step("probe").consumed) == {"probeI", "probe0"}


def test_the_spark_of_the_frame_rests_on_its_pairs_and_its_triple(checked):
    assert checked.step("C3").by == "chain"
    assert set(checked.step("C3").consumed) == {"C1", "C2", "C3a"}


def test_the_fista_rate_rests_on_the_momentum_induction(checked):
    assert checked.step("T0").consumed == ("t1",)
    assert set(checked.step("Tind").consumed) == {"T0", "T4"}
    assert checked.step("R1").consumed == ("Tind",)
    assert set(checked.step("R3").consumed) == {"lemma41", "R1"}
    hypotheses = {label for label, _ in checked.hypotheses}
    assert "tk" not in hypotheses and {"ih", "t1", "tnext"} <= hypotheses


def test_beck_teboulle_numbers_carry_their_caveat(checked):
    for r in checked.steps:
        if "Thm" in r.step.cite or "Lemma" in r.step.cite:
            assert "numbering unconfirmed" in r.step.cite, r.label
    cites = {q.name: q.cite for q in PAPER}
    assert all("numbering unconfirmed" in cites[name] for name in ("fista.rate", "ista.rate"))


def test_paper_steps_use_the_methods_that_check_from_named_premises(checked):
    by = {r.label: r.by for r in checked.steps}
    assert by["S1"] == by["S2"] == by["W1"] == "sum"
    assert by["T2"] == by["K1"] == by["K2"] == by["K4"] == by["S6"] == by["W8"] == "apply"
    assert by["R3"] == by["T4"] == by["W7"] == "chain"
    assert set(checked.step("T4").consumed) == {"T3", "T2", "tnext"}
    assert checked.step("M1").consumed == ("cs",)


def test_every_quantity_is_in_the_table_and_read(checked):
    assert {q.name: (q.kind, q.value) for q in PAPER} == QUANTITIES
    compressed_sensing_dim(100, 10)
    assert PAPER.unread == []
    exempt = sorted(f"{q.name} {label}" for q in PAPER for label in q.exempt)
    assert exempt == ["cs.floor +1", "cs.floor -1", "mp.halfplane x0.99", "mp.halfplane x1.01"]


@pytest.mark.parametrize("mutation", [m for m in PAPER.mutations()
                                      if not m.exempt and m.name != "prop.K"], ids=str)
def test_each_mutation_breaks_a_named_step(mutation):
    with PAPER.mutated(mutation):
        broken = derivation()
    assert not broken.ok
    assert broken.step(BROKEN_BY[mutation.name]).status != "checked"
    if mutation.name == "fista.momentum":  # the induction, hence the FISTA rate itself
        assert all(broken.step(label).status != "checked"
                   for label in ("T4", "Tind", "R1", "R3", "thm"))
    if mutation.name == "mp.angle":
        assert broken.step("C3").status != "checked"


def test_a_smaller_k_breaks_the_coefficient_matching_and_a_larger_one_the_counterexample():
    smaller, larger = (m for m in PAPER.mutations() if m.name == "prop.K")
    with PAPER.mutated(smaller):  # K = 1: no support holds two atoms
        broken = derivation()
    # A01 then differentiates b0 = s0 - g00 s0 in s1: g01 = 0 cannot follow (SymPy cannot
    # lambdify the unevaluated derivative to search a witness, so it is unchecked, not failed)
    assert not broken.ok and broken.step("A01").status != "checked"
    assert broken.step("I01").status != "checked" and broken.step("prop").status != "checked"
    assert broken.step("C3a").status == "failed"  # spark 3 <= 2K fails at K = 1
    assert broken.step("C3").status != "checked"
    with PAPER.mutated(larger):  # K = 3: the proposition still holds, but K - 1 = 2 is no
        broken = derivation()    # longer a sparsity where an encoder is exact
    assert broken.complete and not broken.ok
    assert broken.step("K=1").status == "checked"


@pytest.mark.parametrize("mutation", [m for m in PAPER.mutations() if m.exempt], ids=str)
def test_an_exempt_mutation_leaves_the_derivation_checked(mutation):
    with PAPER.mutated(mutation):
        assert derivation().ok


def test_the_helpers_follow_a_mutation_and_restore_themselves():
    by_name = {str(m): m for m in PAPER.mutations()}
    with PAPER.mutated(by_name["cs.c x1.01"]):
        assert compressed_sensing_dim(500, 10) == 80  # ceil(20.2 ln 50) = ceil(79.02)
    with PAPER.mutated(by_name["fista.rate x0.99"]):
        assert fista_rate_bound(1, 1.0, 1.0) == pytest.approx(0.495)
    with PAPER.mutated(by_name["coherence.half x1.01"]):
        assert coherence_certifies(1, 1.0)  # 1 < 1.01
    assert compressed_sensing_dim(500, 10) == 79 and fista_rate_bound(1, 1.0, 1.0) == 0.5
    assert not coherence_certifies(1, 1.0)


# --- the helpers against independent computations -------------------------------------------

def _dimension_by_mpmath(n, k, c=2):
    with mpmath.workdps(DIGITS):
        return max(k + 1, int(mpmath.ceil(c * k * mpmath.log(mpmath.mpf(n) / k))))


@pytest.mark.parametrize("n,expected", [(50, 33), (100, 47), (500, 79), (1000, 93),
                                        (5000, 125), (10000, 139)])
def test_the_measurement_dimension_matches_the_notes_table(n, expected):
    assert compressed_sensing_dim(n, 10) == _dimension_by_mpmath(n, 10) == expected


@pytest.mark.parametrize("k,expected", [(2, 25), (5, 53), (10, 93), (20, 157), (50, 300),
                                        (100, 461)])
def test_the_measurement_dimension_of_the_sparsity_sweep(k, expected):
    assert compressed_sensing_dim(1000, k) == _dimension_by_mpmath(1000, k) == expected


def test_the_measurement_dimension_on_a_grid_never_exceeds_n():
    for n in (2, 3, 7, 20, 64, 333, 4096):
        for k in sorted({*range(1, min(n, 40)), n // 3, round(n / np.e), n - 1} - {0}):
            expected = _dimension_by_mpmath(n, k)
            assert compressed_sensing_dim(n, k) == expected <= n


@pytest.mark.parametrize("size_and_dim,expected", sorted(WELCH_TABLE.items()))
def test_the_welch_bound_matches_the_notes_table(size_and_dim, expected):
    n, m = size_and_dim
    with mpmath.workdps(DIGITS):
        exact = mpmath.sqrt(mpmath.mpf(n - m) / (m * (n - 1)))
    assert welch_bound(n, m) == pytest.approx(float(exact), rel=1e-14)
    assert round(welch_bound(n, m), 3) == expected


@pytest.mark.parametrize("seed", range(4))
def test_random_unit_dictionaries_respect_the_welch_bound(seed):
    rng = np.random.default_rng(seed)
    m, n = rng.integers(2, 12), rng.integers(13, 60)
    A = rng.standard_normal((m, n))
    A /= np.linalg.norm(A, axis=0)
    gram = np.abs(A.T @ A - np.eye(n))
    assert gram.max() >= welch_bound(int(n), int(m))


def test_the_120_degree_frame_attains_the_welch_bound_exactly():
    D = frame_120()
    G = D.T * D
    coherence = max(abs(G[i, j]) for i in range(3) for j in range(3) if i != j)
    assert coherence == sp.Rational(1, 2) and welch_bound(3, 2) == 0.5
    with mpmath.workdps(DIGITS):
        for col in range(3):
            angle = 2 * mpmath.pi * col / 3
            assert mpmath.almosteq(mpmath.mpf(sp.N(D[0, col], DIGITS)), mpmath.cos(angle), 1e-45)
            assert mpmath.almosteq(mpmath.mpf(sp.N(D[1, col], DIGITS)), mpmath.sin(angle), 1e-45)


def test_the_120_degree_frame_has_spark_three():
    D = frame_120()
    assert all(D[:, list(pair)].rank() == 2 for pair in itertools.combinations(range(3), 2))
    assert D.rank() == 2 and D * sp.ones(3, 1) == sp.zeros(2, 1)


def _nonnegative_l1(D, x):
    """The nonnegative l1 minimiser min 1^T z s.t. D z = x, z >= 0 (SciPy's HiGHS)."""
    result = scipy.optimize.linprog(np.ones(D.shape[1]), A_eq=D, b_eq=x, bounds=(0, None),
                                    method="highs")
    assert result.status == 0
    return result.x


def test_nonnegative_l1_recovers_every_2_sparse_code_of_the_120_degree_frame():
    D = np.array(frame_120().evalf(20).tolist(), dtype=np.float64)
    rng = np.random.default_rng(5)
    for support in itertools.combinations(range(3), 2):
        for _ in range(20):
            code = np.zeros(3)
            code[list(support)] = rng.uniform(0.05, 1, 2)
            assert np.allclose(_nonnegative_l1(D, D @ code), code, atol=1e-9)


def test_nonnegative_l1_misses_a_code_of_the_half_plane_frame():
    psi = float(PAPER["mp.halfplane"])
    D = np.array([[np.cos(j * psi) for j in range(3)], [np.sin(j * psi) for j in range(3)]])
    alpha = 1 / (2 * np.cos(psi))
    code = np.array([alpha, 0.0, alpha])  # 2-sparse, nonnegative, with the image of e1
    assert np.allclose(D @ code, D[:, 1])
    recovered = _nonnegative_l1(D, D @ code)
    assert np.allclose(recovered, [0, 1, 0], atol=1e-9) and not np.allclose(recovered, code)


def test_no_encoder_of_rank_two_is_the_identity():
    rng = np.random.default_rng(11)
    for _ in range(50):
        G = rng.standard_normal((3, 2)) @ rng.standard_normal((2, 3))
        assert abs(np.linalg.det(G)) < 1e-12
        # the distance to I_3 is at least its smallest singular value, 1
        assert np.linalg.norm(G - np.eye(3)) >= 1 - 1e-12


def test_the_momentum_sequence_and_its_identity_by_mpmath():
    with mpmath.workdps(DIGITS):
        t = mpmath.mpf(1)
        for k in range(1, 2001):
            assert t >= mpmath.mpf(k + 1) / 2
            following = (1 + mpmath.sqrt(1 + PAPER.value("fista.momentum") * t**2)) / 2
            assert mpmath.almosteq(following**2 - following, t**2, 1e-40)
            t = following


@pytest.mark.parametrize("k", [1, 2, 10, 999])
def test_the_rate_bounds_against_their_formulas(k):
    lipschitz, distance = 3.7, 0.25
    assert fista_rate_bound(k, lipschitz, distance) == pytest.approx(
        2 * lipschitz * distance / (k + 1) ** 2, rel=1e-15)
    assert ista_rate_bound(k, lipschitz, distance) == pytest.approx(
        lipschitz * distance / (2 * k), rel=1e-15)
    if k > 1:  # FISTA's bound is the smaller one from k = 2 on
        assert fista_rate_bound(k, lipschitz, distance) < ista_rate_bound(k, lipschitz, distance)


def test_the_rate_bounds_broadcast_over_arrays():
    k = np.arange(1, 6)[:, None]
    distance = np.array([1.0, 4.0])[None, :]
    bound = fista_rate_bound(k, 2.0, distance)
    assert bound.shape == (5, 2) and bound[0, 1] == 4.0


def test_coherence_certification_against_the_second_form():
    for k in range(1, 12):
        for mu in np.linspace(0.01, 1, 200):
            assert coherence_certifies(k, float(mu)) == (mu < 1 / (2 * k - 1))
    # the notes' dictionaries (mu 0.45 .. 0.52) certify k = 1 only
    for mu in (0.515, 0.511, 0.485, 0.454):
        assert coherence_certifies(1, mu) and not coherence_certifies(2, mu)


def test_the_soft_threshold_minimises_the_prox_objective_on_a_grid():
    lam, eta = 0.1, 0.5
    tau = float(PAPER["prox.threshold"]) * eta * lam
    grid = np.linspace(0, 2, 200001)
    for v in (-1.0, 0.0, 0.02, tau, 0.3, 1.5):
        objective = lam * grid + (grid - v) ** 2 / (2 * eta)
        assert grid[np.argmin(objective)] == pytest.approx(max(v - tau, 0.0), abs=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: compressed_sensing_dim(10, 10), "1 <= k < n"),
    (lambda: compressed_sensing_dim(10, 0), "1 <= k < n"),
    (lambda: fista_rate_bound(0, 1.0, 1.0), "positive integer"),
    (lambda: ista_rate_bound(3, -1.0, 1.0), "lipschitz"),
    (lambda: ista_rate_bound(3, 1.0, -1.0), "distance_sq"),
    (lambda: coherence_certifies(0, 0.5), "positive integer"),
    (lambda: coherence_certifies(2, 1.5), "mu=1.5"),
    (lambda: welch_bound(3, 3), "1 <= m < n"),
])
def test_bad_input_is_one_line(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_a_float_size_is_a_type_error():
    with pytest.raises(TypeError, match="expected int but got n=100.0"):
        compressed_sensing_dim(100.0, 10)
