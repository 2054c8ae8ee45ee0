"""Steps, derivations and interval certificates.

Every method checks a true claim and never checks a false one; witnesses and certificate values
are verified independently with mpmath at 50 digits.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

from proofs import (
    METHODS,
    Certificate,
    Derivation,
    Step,
    StepResult,
    certify,
    check_step,
    eq,
    find_witness,
    ge,
    gt,
    le,
    lt,
    steps,
)
from proofs.quantities import Quantities, Quantity
from proofs.steps import Context

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", positive=True)
k = sp.Symbol("k", positive=True, integer=True)
h = sp.Symbol("h", negative=True)


def mp_value(expr: sp.Expr, point: dict[str, float]):
    """``expr`` at ``point`` in mpmath at 50 digits."""
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    with mpmath.workdps(50):
        return sp.lambdify(symbols, expr, "mpmath")(*(mpmath.mpf(point[s.name])
                                                      for s in symbols))


def assert_refutes(claim: sp.Basic, witness: dict[str, float]) -> None:
    lhs, rhs = mp_value(claim.lhs, witness), mp_value(claim.rhs, witness)
    with mpmath.workdps(50):
        holds = {sp.Equality: lhs == rhs, sp.GreaterThan: lhs >= rhs,
                 sp.StrictGreaterThan: lhs > rhs, sp.LessThan: lhs <= rhs,
                 sp.StrictLessThan: lhs < rhs}[type(claim)]
    assert not holds, (claim, witness, lhs, rhs)


TRUE_STEPS = [
    Step("identity", eq(sp.sin(x) ** 2 + sp.cos(x) ** 2, 1)),
    Step("expand", eq((x + 1) ** 2, x**2 + 2 * x + 1)),
    Step("sign", gt(sp.exp(x) + y, 0)),
    Step("sign-ge", ge(y**2 + 1, 1)),
    Step("and", sp.And(ge(y**2, 0), gt(y + 1, 1))),
    Step("limit", eq(sp.Limit(sp.sin(x) / x, x, 0), 1), by="limit"),
    Step("limit-oo", eq(sp.Limit((1 + 1 / y) ** y, y, sp.oo), sp.E), by="limit"),
    Step("series", eq(sp.exp(x), 1 + x + sp.O(x**2, (x, 0))), by="series"),
    Step("series-oo", eq(sp.log(1 + 1 / y), 1 / y + sp.O(y**-2, (y, sp.oo))), by="series"),
    Step("interval", ge(sp.exp(x), x), by="interval", box={x: (-5, 5)}),
    Step("interval-and", sp.And(ge(sp.exp(x), x), ge(x**2 + 1, x)), by="interval",
         box={x: (-3, 3)}),
    Step("monotone", ge(sp.log(1 + y), y - y**2 / 2), by="monotone", box={y: (0, sp.oo)}),
]


@pytest.mark.parametrize("step", TRUE_STEPS, ids=lambda s: s.label)
def test_true_claims_are_checked(step):
    result = check_step(step)
    assert isinstance(result, StepResult)
    assert result.status == "checked" and result.ok, result.detail
    assert result.by == step.by and result.step is step and result.witness is None


FALSE_STEPS = [
    Step("identity", eq((x + 1) ** 2, x**2 + 1)),
    Step("sign", ge(x**2, 2 * x)),
    Step("strict", lt(sp.exp(y), 1)),
    Step("integer", le(2**k, k**2)),
    Step("and", sp.And(ge(y**2, 0), gt(1, y))),
    Step("interval", ge(1 + x, sp.exp(x)), by="interval", box={x: (-5, 5)}),
    Step("monotone", ge(1 + y, sp.exp(y)), by="monotone", box={y: (0, sp.oo)}),
]


@pytest.mark.parametrize("step", FALSE_STEPS, ids=lambda s: s.label)
def test_false_claims_fail_with_a_witness(step):
    result = check_step(step)
    assert result.status == "failed" and not result.ok
    claim = step.claim
    if isinstance(claim, sp.And):
        claim = next(part for part in claim.args if not _holds_at(part, result.witness))
    assert_refutes(claim, result.witness)
    box = step.box or {}
    for symbol, (lo, hi) in box.items():
        assert lo <= result.witness[symbol.name] <= hi


def _holds_at(claim, point):
    try:
        assert_refutes(claim, point)
    except AssertionError:
        return True
    return False


@pytest.mark.parametrize("step,shown", [
    (Step("limit", eq(sp.Limit(sp.sin(x) / x, x, 0), 2), by="limit"), "limit = 1"),
    (Step("series", eq(sp.exp(x), 1 + 2 * x + sp.O(x**2, (x, 0))), by="series"), "-oo"),
], ids=["limit", "series"])
def test_false_limits_and_series_fail_with_the_value(step, shown):
    result = check_step(step)
    assert result.status == "failed" and shown in result.detail


UNDECIDABLE = [
    Step("softplus", ge(sp.log(1 + sp.exp(x)) - x, 0)),
    Step("square", ge(x**2 + 1, 2 * x)),  # (x - 1)^2 >= 0, which SymPy does not see
    Step("interval-no-box", ge(sp.exp(x), 1 + x), by="interval"),
    Step("interval-tight", ge(sp.exp(x), 1 + x), by="interval", box={x: (-1, 1)}),
    Step("monotone-no-box", ge(sp.log(1 + y), y - y**2 / 2), by="monotone"),
    Step("limit-shape", eq(x, 1), by="limit"),
    Step("series-shape", eq(x, 1), by="series"),
    Step("negative-symbol", le(sp.exp(h) + h, 1)),  # true for h < 0; no false witness at h > 0
]


@pytest.mark.parametrize("step", UNDECIDABLE, ids=lambda s: s.label)
def test_undecidable_claims_are_unchecked_never_checked(step):
    result = check_step(step)
    assert result.status == "unchecked" and result.witness is None
    assert result.detail


def test_a_bug_inside_a_method_is_an_error_not_unchecked(monkeypatch):
    def broken(step, context):
        raise TypeError("a bug in the method")

    monkeypatch.setitem(steps.METHODS, "limit", broken)
    with pytest.raises(RuntimeError, match="by limit failed: TypeError: a bug in the method"):
        check_step(Step("bug", eq(sp.exp(x) * 3, x + 7), by="limit"))


def test_an_undecidable_inequality_with_a_box_goes_to_interval_certification():
    step = Step("softplus", gt(sp.log(1 + sp.exp(x)) - x, 0), box={x: (-3, 3)})
    result = check_step(step)
    assert result.status == "checked" and result.by == "interval"
    false = Step("softplus-minus", ge(sp.log(1 + sp.exp(x)) - x, sp.Rational(1, 10)),
                 box={x: (-3, 3)})
    refuted = check_step(false)
    assert refuted.status == "failed" and refuted.by in ("simplify", "interval")
    assert_refutes(false.claim, refuted.witness)


def test_an_unchecked_step_makes_the_derivation_incomplete():
    d = Derivation.check("d", source="s", hypotheses={}, goal=TRUE_STEPS[0].claim,
                         steps=[TRUE_STEPS[0], UNDECIDABLE[0]])
    assert d.checked == 1 and not d.complete and not d.ok
    assert d.goal_step == "identity"
    assert d.step("softplus").status == "unchecked"


def test_methods_table():
    assert set(METHODS) == {"simplify", "chain", "instance", "apply", "sum", "limit", "series",
                            "interval", "monotone"}
    with pytest.raises(ValueError, match=r"by='magic'; expected one of simplify"):
        check_step(Step("a", eq((x + 1) ** 2, x**2 + 2 * x + 1), by="magic"))


@pytest.mark.parametrize("claim", [eq(x, x), le(y**2, y**2), sp.And(ge(y, 0), eq(x + 1, x + 1))],
                         ids=str)
def test_a_step_that_compares_an_expression_with_itself_is_refused(claim):
    with pytest.raises(ValueError, match="with itself; it cannot fail"):
        Step("v", claim)


def test_a_claim_already_true_is_refused():
    with pytest.raises(ValueError, match="already True as written"):
        Step("v", sp.Ge(y**2 + 1, 0))  # evaluates to True on construction


def test_checking_returns_a_new_result_and_leaves_the_step_alone():
    step = Step("a", eq((x + 1) ** 2, x**2 + 2 * x + 1), cite="eq. (1)")
    before = (step.label, step.claim, step.by, step.uses, step.cite, step.box)
    first, second = check_step(step), check_step(step)
    assert first == second and first is not second
    assert (step.label, step.claim, step.by, step.uses, step.cite, step.box) == before
    with pytest.raises(AttributeError):
        step.label = "b"


def test_find_witness_respects_assumptions_and_boxes():
    assert find_witness(gt(y, 0)) is None
    point, detail = find_witness(lt(x, 0))
    assert point["x"] >= 0 and "x=" in detail
    assert find_witness(lt(x, 11), {x: (0, 10)}) is None
    point, _ = find_witness(lt(x, 9), {x: (0, 10)})
    assert 9 <= point["x"] <= 10


# Lemma-2.1-shaped example: t_j >= e^{-d} for each of n - 1 terms, S their sum, a = 1/(1 + S)
n = sp.Symbol("n", positive=True, integer=True)
d = sp.Symbol("d", nonnegative=True)
S = sp.Symbol("S", positive=True)
a = sp.Symbol("a", positive=True)
j = sp.Symbol("j", positive=True, integer=True)
t = sp.Function("t")
s_ = sp.Symbol("s", positive=True)
RATE = 1 / (1 + (n - 1) * sp.exp(-d))
HYPOTHESES = [("h_term", ge(t(j), sp.exp(-d))), ("h_sum", eq(S, sp.Sum(t(j), (j, 1, n - 1)))),
              ("h_a", eq(a, 1 / (1 + S)))]


def lemma(rate=RATE, goal=None, extra=()):
    return Derivation.check(
        "lemma", source="Example 2025, Lemma 1", hypotheses=HYPOTHESES,
        goal=goal if goal is not None else le(a, rate),
        steps=[Step("sum", ge(sp.Sum(t(j), (j, 1, n - 1)), (n - 1) * sp.exp(-d)), by="sum",
                    at={j: (1, n - 1)}, uses=("h_term",)),
               Step("S", ge(S, (n - 1) * sp.exp(-d)), by="chain", uses=("h_sum", "sum")),
               Step("mono", le(1 / (1 + S), rate), by="apply", at={s_: 1 / (1 + s_)},
                    uses=("S",)),
               *extra,
               Step("goal", le(a, rate), by="chain", uses=("h_a", "mono"))])


def test_a_derivation_discharges_its_goal_from_the_steps_it_names():
    d = lemma()
    assert d.ok and d.complete and d.goal_step == "goal" and d.unused == ()
    assert [r.by for r in d.steps] == ["sum", "chain", "apply", "chain"]
    assert d.step("goal").consumed == ("h_a", "mono")
    # mpmath at a point: the bound is the value at t_j = e^{-d}, so it is attained
    with mpmath.workdps(50):
        value = 1 / (1 + 4 * mpmath.exp(-mpmath.mpf(2)))
    assert mp_value(RATE, {"n": 5, "d": 2}) == value


def test_a_wrong_rate_breaks_a_named_step():
    wrong = 1 / (1 + n * sp.exp(-d))  # n - 1 terms counted as n
    broken = lemma(rate=wrong)
    assert not broken.ok and broken.step("mono").status != "checked"
    assert broken.step("goal").status == "unchecked"
    assert "rests on (mono)" in broken.step("goal").detail
    assert broken.goal_step is None


def test_a_goal_no_step_states_is_not_discharged():
    other = lemma(goal=le(a, 1 / (1 + (n - 1) * sp.exp(-2 * d))))
    assert other.goal_step is None and not other.complete
    assert "goal NOT discharged" in other.summary()


@pytest.mark.parametrize("goal", [sp.Symbol("g"), sp.true, sp.Equivalent(ge(y, 0), gt(y, 1))],
                         ids=str)
def test_a_goal_must_be_a_relation(goal):
    with pytest.raises(ValueError, match="the goal must be a relation"):
        Derivation.check("d", source="s", hypotheses={}, goal=goal, steps=[TRUE_STEPS[0]])


def test_unused_hypotheses_and_premises_are_reported():
    extra = Step("spare", eq((y + 1) ** 2, y**2 + 2 * y + 1), uses=("h_term",))
    d = lemma(extra=[extra])
    assert d.unused == ("(spare) names h_term but does not need it",)
    assert not d.complete and "unused: (spare) names h_term" in str(d)
    unused_hypothesis = Derivation.check(
        "d", source="s", hypotheses=[*HYPOTHESES, ("h_spare", gt(y, 0))], goal=le(a, RATE),
        steps=lemma().steps and [r.step for r in lemma().steps])
    assert unused_hypothesis.unused == ("hypothesis h_spare is never used",)


def test_instance_applies_a_named_claim():
    general = Step("g", ge((1 + y) ** 3, 1 + 3 * y))
    half = sp.Rational(1, 2)
    d = Derivation.check(
        "d", source="s", hypotheses={}, goal=ge((1 + half) ** 3, 1 + 3 * half),
        steps=[general, Step("i", ge((1 + half) ** 3, 1 + 3 * half), by="instance",
                             at={y: half}, uses=("g",))])
    assert d.ok and d.step("i").consumed == ("g",)
    wrong = check_step(Step("i", ge((1 + half) ** 3, 3), by="instance",
                            at={y: sp.Rational(1, 2)}), Context({"g": general.claim}))
    assert wrong.status == "unchecked"


def test_a_chain_needs_every_link_and_strictness():
    links = {"1": le(x, x + 1), "2": lt(x + 1, x + 2)}
    assert check_step(Step("c", lt(x, x + 2), by="chain"), Context(links)).ok
    assert not check_step(Step("c", lt(x, x + 1), by="chain"), Context(links)).ok
    assert not check_step(Step("c", le(x, x + 3), by="chain"), Context(links)).ok


def test_definitions_are_substituted_and_count_as_used():
    result = check_step(Step("1", ge(S, 0)), Context({"def": eq(S, y**2)}))
    assert result.ok and result.consumed == ("def",)


def _spin(step, context):
    while True:  # a check that never ends: only the budget's timer stops it
        pass


_RESERVED = []  # bytes _hoard reserved before it was stopped, seen from this process


def _hoard(step, context):
    kept = []
    try:
        while True:  # a check that reserves without end: only the address-space budget stops it
            kept.append(np.empty(2**27, dtype=np.uint8))  # untouched pages: no time, no memory
    finally:
        _RESERVED.append(sum(block.nbytes for block in kept))


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_a_check_over_its_budget_is_unchecked_not_a_hang(monkeypatch, where):
    import threading

    import proofs.steps as steps

    monkeypatch.setitem(steps.METHODS, "spin", _spin)
    monkeypatch.setitem(steps.METHODS, "hoard", _hoard)
    spin = Step("slow", eq((y + 1) ** 2, y**2 + 2 * y + 1), by="spin", budget_s=1)
    hoard = Step("big", eq((y + 1) ** 2, y**2 + 2 * y + 1), by="hoard", budget_s=20)
    results = []

    def check_both():
        results.extend([check_step(spin), check_step(hoard)])

    if where == "main thread":  # under a timer signal and a limit on this process
        check_both()
    else:  # no timer signal reaches another thread: the check runs in a forked child
        thread = threading.Thread(target=check_both)
        thread.start()
        thread.join(timeout=60)
    assert [r.status for r in results] == ["unchecked", "unchecked"]
    assert results[0].detail.startswith("unchecked (timeout): over the 1 s budget")
    assert results[1].detail.startswith("unchecked (memory)")
    if where == "main thread":  # stopped by the 2 GiB budget, not by the machine running out
        assert 0 < _RESERVED.pop() <= steps.BUDGET_BYTES
    # and the budget leaves the process as it was: the next step checks normally
    assert check_step(Step("after", eq((y + 1) ** 2, y**2 + 2 * y + 1))).ok


def test_an_error_inside_a_method_is_raised(monkeypatch):
    import proofs.steps as steps

    def broken(step, context):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(steps.METHODS, "broken", broken)
    with pytest.raises(RuntimeError, match="ZeroDivisionError: a bug"):
        check_step(Step("b", eq((x + 1) ** 2, x**2 + 2 * x + 1), by="broken"))


w = sp.Symbol("w", real=True)
H1 = eq(w, y**2)  # a definition: steps that use it see y**2 in place of w


def build(*, hypotheses=(("h1", H1),), steps=(), as_printed=()):
    return Derivation.check("example", source="Example 2025, Lemma 1", hypotheses=hypotheses,
                            goal=gt(w + 1, 1), steps=steps, as_printed=as_printed)


SQUARE = eq((y + 1) ** 2, y**2 + 2 * y + 1)


def test_duplicate_hypothesis_names_raise():
    with pytest.raises(ValueError, match=r"^hypothesis 'h1' is defined twice; use distinct"):
        build(hypotheses=[("h1", gt(y, 0)), ("h1", ge(y, 0))])


def test_duplicate_step_labels_raise():
    step = Step("1", eq((y + 1) ** 2, y**2 + 2 * y + 1))
    with pytest.raises(ValueError, match=r"^step label '1' is used twice; use distinct labels$"):
        build(steps=[step, step])
    with pytest.raises(ValueError, match=r"step label 'h1' is used twice"):
        build(steps=[Step("h1", eq((y + 1) ** 2, y**2 + 2 * y + 1))])
    with pytest.raises(ValueError, match=r"step label '1' is used twice"):
        build(steps=[step], as_printed=[Step("1", eq(y, 1))])


def test_uses_of_an_unknown_label_raise():
    with pytest.raises(ValueError, match=r"^step '2' uses 'h9', which is not a hypothesis or "
                                         r"an earlier step$"):
        build(steps=[Step("1", SQUARE), Step("2", SQUARE, uses=("1", "h9"))])
    with pytest.raises(ValueError, match="uses '2'"):  # a later step is not yet known
        build(steps=[Step("1", SQUARE, uses=("2",)), Step("2", SQUARE)])


def test_printed_statements_carry_a_status():
    refuted = Step("2'", le(y**2, y), cite="eq. (3)")
    inconsistent = Step("3'", eq(y / 2, y / 3), cite="eq. (4)", erratum="inconsistent")
    goal = Step("1", gt(w + 1, 1), uses=("h1",))
    d = build(steps=[goal], as_printed=[refuted, inconsistent])
    assert d.complete and d.errata_shown and d.ok
    assert d.errata == {"refuted": 1, "inconsistent": 1}
    assert d.step("2'").status == "failed"
    assert_refutes(refuted.claim, d.step("2'").witness)
    assert "printed statements: 1 refuted, 1 inconsistent" in d.summary()
    right = build(steps=[goal], as_printed=[Step("2'", ge(y**2, 0))])
    assert right.complete and not right.errata_shown and not right.ok
    assert "1 NOT shown wrong" in right.summary()
    with pytest.raises(ValueError, match="erratum='wrong'; expected one of refuted"):
        Step("4'", le(y, 1), erratum="wrong")
    with pytest.raises(ValueError, match="has an erratum status but is not a printed"):
        build(steps=[goal, Step("5", le(y, 1), erratum="refuted")])
    with pytest.raises(KeyError):
        d.step("9")


def tiny() -> Derivation:
    return Derivation.check(
        "tiny", source="Example, Lemma 1",
        hypotheses=[("h1", gt(y, 0))], goal=ge(sp.exp(y), 1 + y),
        steps=[Step("1", eq((y + 1) ** 2, y**2 + 2 * y + 1), cite="eq. (1)", role="algebra"),
               Step("2", ge(sp.exp(y), 1 + y), by="interval", cite="eq. (2)", uses=("h1",),
                    note="the tangent at 0 lies below exp")],
        as_printed=[Step("3'", le(y**2, y), cite="eq. (3)")],
        symbols={"y": "a positive number"}, notes={"h1": "y is positive"},
    )


def test_derivation_prints_paper_steps_apart_from_algebra_and_errata():
    assert str(tiny()) == (
        "tiny  (Example, Lemma 1)\n"
        "  symbols:\n"
        "    y  a positive number\n"
        "  hypotheses:\n"
        "    h1: y > 0\n"
        "        y is positive\n"
        "  ⊢ e^y ≥ y + 1\n"
        "  paper steps:\n"
        "  (2)  e^y ≥ y + 1             by interval  [eq. (2)]  from h1  unchecked  no box to "
        "certify over\n"
        "       the tangent at 0 lies below exp\n"
        "  algebra helpers (true whatever the paper says):\n"
        "  (1)  (y + 1)² = y² + 2y + 1  by simplify  [eq. (1)]  checked\n"
        "  as printed in the paper:\n"
        "  (3') y² ≤ y                  by simplify  [eq. (3)]  REFUTED  y=2: 4.0 > 2.0\n"
        "  1 of 2 steps checked (1 paper, 1 algebra); goal NOT discharged; derivation "
        "incomplete; printed statements: 1 refuted"
    )
    assert repr(tiny()) == "<Derivation tiny: 1/2 checked>"


def test_derivation_latex_typesets_every_claim_as_sympy_does():
    d = tiny()
    latex = d.to_latex()
    for claim in [d.goal, *(r.claim for r in d.steps + d.printed)]:
        assert sp.latex(claim) in latex
    assert "\\texttt" not in latex and "\\begin{align*}" in latex
    assert "y is positive" in latex and "the tangent at 0 lies below exp" in latex
    assert "\\item[$y$] a positive number" in latex
    assert latex.count("\\begingroup") == latex.count("\\endgroup") == 1
    for rich in (d._repr_latex_(), d._repr_html_()):
        assert all(sp.latex(r.claim) in rich for r in d.steps + d.printed)
        assert "the tangent at 0 lies below exp" in rich and "REFUTED" in rich


def test_a_note_on_no_hypothesis_is_refused():
    with pytest.raises(ValueError, match="notes name 'h2'"):
        Derivation.check("x", source="s", hypotheses=[("h1", gt(y, 0))], goal=gt(y, 0),
                         steps=[], notes={"h2": "no such hypothesis"})


def test_quantities_are_read_by_reference_and_mutated_one_at_a_time():
    table = Quantities("example", [Quantity("shift", 1, "index", cite="eq. (1)"),
                                   Quantity("scale", sp.Rational(1, 2), "constant"),
                                   Quantity("sign", -1, "sign", exempt={"negated": "only looser"})])
    assert [str(m) for m in table.mutations()] == [
        "shift -1", "shift +1", "scale x0.99", "scale x1.01", "sign negated"]
    assert [m.value for m in table.mutations()] == [0, 2, sp.Rational(99, 200),
                                                    sp.Rational(101, 200), 1]
    assert table.mutations()[-1].exempt == "only looser"
    calls = []

    @table.cache
    def bound():
        calls.append(1)
        return 1 / (n + table["shift"])

    assert bound() == 1 / (n + 1) and bound() == 1 / (n + 1) and len(calls) == 1
    with table.mutated(table.mutations()[1]):
        assert table["shift"] == 2 and bound() == 1 / (n + 2)
    assert table["shift"] == 1 and bound() == 1 / (n + 1) and len(calls) == 2
    assert table.unread == ["scale", "sign"]
    with pytest.raises(KeyError, match="no paper quantity 'shfit'"):
        table["shfit"]
    with pytest.raises(ValueError, match="defined twice"):
        Quantities("example", [Quantity("a", 1, "index"), Quantity("a", 2, "index")])
    with pytest.raises(ValueError, match="kind='power'; expected one of constant"):
        Quantity("a", 1, "power")


def test_certify_proves_with_a_box_count():
    c = certify(ge(sp.exp(x), x), {x: (-5, 5)})
    assert isinstance(c, Certificate)
    assert c.status == "proved" and c.ok and c.boxes >= 1 and c.witness is None
    assert c.open_boxes == () and c.box == {"x": (-5.0, 5.0)}
    two = certify(ge(x * y, -1), {"x": (-1, 1), y: (0.5, 1)})
    assert two.ok


def test_certify_refutes_with_a_witness_checked_in_mpmath():
    claim = le(x**3 - x, sp.Rational(1, 3))
    c = certify(claim, {x: (-2, 2)})
    assert c.status == "refuted" and not c.ok
    assert -2 <= c.witness["x"] <= 2
    value = mp_value(claim.rhs - claim.lhs, c.witness)
    assert value < 0
    assert c.value_at_witness == pytest.approx(float(value), rel=1e-12)


def test_certify_reports_unknown_with_open_boxes():
    # log(1 + e^x) - x = log(1 + e^-x) is positive, but the naive form cancels for large x
    c = certify(gt(sp.log(1 + sp.exp(x)) - x, 0), {x: (-20, 20)}, max_boxes=50)
    assert c.status == "unknown" and not c.ok and c.witness is None
    assert c.boxes == 50 and 1 <= len(c.open_boxes) <= 20
    for box in c.open_boxes:
        lo, hi = box["x"]
        assert -20 <= lo < hi <= 20


def test_certify_and_claims():
    both = certify(sp.And(ge(sp.exp(x), x), ge(x**2 + 1, x)), {x: (-3, 3)})
    assert both.ok
    one = certify(sp.And(ge(sp.exp(x), x), ge(x, x**2)), {x: (-3, 3)})
    assert one.status == "refuted"
    assert_refutes(ge(x, x**2), one.witness)


def test_tight_inequality_at_a_box_edge():
    assert certify(ge(sp.exp(x) - 1, 0), {x: (0, 5)}).status == "proved"
    assert certify(ge(sp.log(y), 0), {y: (1, 4)}).status == "proved"
    # the strict claim is false exactly at the edge
    strict = certify(gt(sp.exp(x) - 1, 0), {x: (0, 5)})
    assert strict.status == "refuted" and strict.witness == {"x": 0.0}
    assert strict.value_at_witness == 0.0


def test_certify_an_expression_means_nonnegative():
    assert certify(sp.exp(x) - x, {x: (-3, 3)}).ok
    assert certify(x, {x: (-1, 1)}).status == "refuted"


def test_certify_without_an_interval_rule_is_unknown():
    c = certify(ge(sp.gamma(x + 1), 0), {x: (0, 1)})
    assert c.status == "unknown" and "gamma" in c.detail


def test_sine_and_cosine_enclosures_contain_every_point():
    from flint import arb

    from proofs.intervals import Interval, evaluate

    for lo, hi in [(0.0, 0.1), (1.0, 2.0), (-3.0, 4.0), (1e-4, 2.1)]:
        for f, g in ((sp.sin, mpmath.sin), (sp.cos, mpmath.cos)):
            box = evaluate(f(x), {x: Interval(arb(lo), arb(hi))})
            for point in np.linspace(lo, hi, 101):
                value = g(mpmath.mpf(point))
                assert float(box.lower) <= value <= float(box.upper), (f, lo, hi, point)
    assert certify(gt(1 - sp.cos(2 * sp.pi * x), 0), {x: (1e-4, 1 / 3)}).status == "proved"
    assert certify(gt(sp.Rational(99, 100) - sp.cos(2 * sp.pi * x), 0),
                   {x: (1e-4, 1 / 3)}).status == "refuted"


def test_certificate_prints():
    c = certify(ge(sp.exp(x) - 1, 0), {x: (0, 5)})
    assert str(c) == "proved: e^x - 1 ≥ 0  over  x in [0, 5]  (1 boxes)"
    assert repr(c) == "<Certificate proved: e^x - 1 ≥ 0 (1 boxes)>"
    for rich in (c._repr_latex_(), c._repr_html_()):
        assert sp.latex(c.claim) in rich and "proved" in rich and "[0, 5]" in rich
    refuted = certify(ge(x**2, x), {x: (-2, 2)})
    assert f"x = {refuted.witness['x']:.6g}" in refuted._repr_html_()


_r = sp.Symbol("r", real=True)
_j = sp.Symbol("j", positive=True, integer=True)
_nz = sp.Symbol("z", real=True, nonzero=True)
_M = sp.Symbol("M", real=True)
_d = sp.Symbol("d", real=True)

# false claims each matching method used to check: (step, the used claims)
UNSOUND = [
    # an instance at a value the symbol's assumptions exclude: y > 0 at y = -1
    (Step("instance-outside", gt(-1, 0), by="instance", at={y: -1}), {"L": gt(y, 0)}),
    # an equality read off an inequality
    (Step("instance-eq", eq(1, 2), by="instance", at={y: 1}), {"L": le(y, 2)}),
    (Step("apply-eq", eq(x + 1, 3), by="apply", at={x: x + 1}), {"L": le(x, 2)}),
    (Step("sum-eq", eq(sp.Sum(_j, (_j, 1, 3)), 12), by="sum", at={_j: (1, 3)}),
     {"L": le(_j, 4)}),
    # a definition d = M re-instantiated at M = 5 while d keeps its one value
    (Step("instance-definition", eq(_d, 5), by="instance", at={_M: 5}), {"h": eq(_d, _M)}),
    # y**2 increases for y > 0 only; x <= -2 lies outside
    (Step("apply-outside", le(x**2, 4), by="apply", at={y: y**2}), {"L": le(x, -2)}),
    # -1/z increases on each side of 0, not across it
    (Step("apply-gap", lt(1, -1), by="apply", at={_nz: -1 / _nz}), {"L": lt(-1, 1)}),
    # a reversed range sums with the opposite sign: j = 5..2 gives -7 <= -9
    (Step("sum-reversed", le(-7, -9), by="sum", at={_j: (5, 2)}), {"T": le(_j, _j + 1)}),
    # a strict relation summed over no terms: 0 < 0
    (Step("sum-empty", lt(sp.Sum(_j, (_j, 1, 0)), sp.Sum(_j + 1, (_j, 1, 0))), by="sum",
          at={_j: (1, 0)}), {"T": lt(_j, _j + 1)}),
    # x**3 >= 0 for x >= 0 only; x is real
    (Step("monotone-below", ge(x**3, 0), by="monotone", box={x: (0, sp.oo)}), {}),
    # exp(-1/r) = O(r**2) from the right of 0 only
    (Step("series-left", eq(sp.exp(-1 / _r), sp.O(_r**2, (_r, 0))), by="series"), {}),
]


@pytest.mark.parametrize("step,given", UNSOUND, ids=[s.label for s, _ in UNSOUND])
def test_a_false_claim_is_never_checked_by_a_matching_method(step, given):
    result = check_step(step, Context(given))
    assert result.status != "checked", result.detail


def test_sound_uses_of_the_matching_methods_still_check():
    # a reversed-looking range is fine when a used claim orders it; an empty one for <=
    i = sp.Symbol("i", positive=True, integer=True)
    n = sp.Symbol("n", positive=True, integer=True)
    ranged = Step("s", le(sp.Sum(_j, (_j, i, n)), sp.Sum(_j + 1, (_j, i, n))), by="sum",
                  at={_j: (i, n)})
    assert not check_step(ranged, Context({"T": le(_j, _j + 1)})).ok
    ordered = check_step(ranged, Context({"T": le(_j, _j + 1), "order": le(i, n)}))
    assert ordered.ok and ordered.consumed == ("T", "order")
    empty = Step("e", le(sp.Sum(_j, (_j, 1, n - 1)), sp.Sum(_j + 1, (_j, 1, n - 1))), by="sum",
                 at={_j: (1, n - 1)})
    assert check_step(empty, Context({"T": lt(_j, _j + 1)})).ok
    # 1 - y decreases on the whole line although y is declared positive
    assert check_step(Step("a", le(1 - y, 1 - x), by="apply", at={y: 1 - y}),
                      Context({"L": le(x, y)})).ok
    # log is increasing for positive arguments: the lower side y > 0 puts both sides there
    assert check_step(Step("l", le(sp.log(y), sp.log(x)), by="apply", at={y: sp.log(y)}),
                      Context({"L": le(y, x)})).ok
    assert check_step(Step("o", eq(sp.Limit(1 / y, y, 0, "+"), sp.oo), by="limit")).ok


def test_the_cache_tells_apart_symbols_that_differ_in_assumptions_only():
    real_y = sp.Symbol("y", real=True)
    given = Context({"L": gt(y**2 + 1, 1)})
    assert check_step(Step("s", gt(5, 1), by="instance", at={y: 2}), given).ok
    # real_y is not the y of L: nothing is substituted, so no instance results
    assert not check_step(Step("s", gt(5, 1), by="instance", at={real_y: 2}), given).ok


def test_a_witness_respects_the_symbols_assumptions_even_in_a_box():
    assert find_witness(ge(y, 0), {y: (-1, 1)}) is None


def test_a_claim_certified_on_a_box_holds_there_only():
    on_box = Step("box", le(x, 1), by="interval", box={x: (0, 1)})
    assert check_step(on_box).ok  # x <= 1 on [0, 1], not for every real x
    alone = Derivation.check("d", source="s", hypotheses={}, goal=le(x, 1), steps=[on_box])
    assert alone.goal_step is None and not alone.complete
    d = Derivation.check("d", source="s", hypotheses={}, goal=lt(x, 2),
                         steps=[on_box, Step("one", lt(1, 2)),
                                Step("use", lt(x, 2), by="chain", uses=("box", "one"))])
    assert d.goal_step is None and not d.complete
    assert d.step("use").status == "unchecked" and "box only" in d.step("use").detail


def test_a_goal_among_the_hypotheses_is_not_discharged():
    d = Derivation.check("d", source="s", hypotheses={"g": le(x, 1)}, goal=le(x, 1),
                         steps=[Step("restated", le(x, 1), by="chain", uses=("g",))])
    assert d.step("restated").ok and d.goal_step is None and not d.complete
