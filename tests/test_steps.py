"""Steps, derivations and interval certificates.

Every method checks a true claim and never checks a false one; witnesses and certificate values
are verified independently with mpmath at 50 digits.
"""

from __future__ import annotations

import mpmath
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
)
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


def test_given_checks_only_hypotheses():
    context = Context({"h1": gt(y, 0)})
    assert check_step(Step("a", gt(y, 0), by="given"), context).status == "checked"
    assert check_step(Step("b", gt(y, 1), by="given"), context).status == "unchecked"
    assert check_step(Step("c", gt(y, 0), by="given")).status == "unchecked"


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
    d = Derivation.check("d", source="s", hypotheses={}, goal=sp.true,
                         steps=[TRUE_STEPS[0], UNDECIDABLE[0]])
    assert d.checked == 1 and not d.complete and not d.ok
    assert d.step("softplus").status == "unchecked"


def test_methods_table():
    assert set(METHODS) == {"simplify", "limit", "series", "interval", "monotone", "given"}
    with pytest.raises(ValueError, match=r"by='magic'; expected one of simplify"):
        check_step(Step("a", eq(x, x), by="magic"))


def test_checking_returns_a_new_result_and_leaves_the_step_alone():
    step = Step("a", eq(x + x, 2 * x), cite="eq. (1)")
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


H1 = gt(y, 0)


def build(*, hypotheses=(("h1", H1),), steps=(), as_printed=()):
    return Derivation.check("example", source="Example 2025, Lemma 1", hypotheses=hypotheses,
                            goal=gt(y + 1, 1), steps=steps, as_printed=as_printed)


def test_duplicate_hypothesis_names_raise():
    with pytest.raises(ValueError, match=r"^hypothesis 'h1' is defined twice; use distinct"):
        build(hypotheses=[("h1", gt(y, 0)), ("h1", ge(y, 0))])


def test_duplicate_step_labels_raise():
    step = Step("1", eq(y, y))
    with pytest.raises(ValueError, match=r"^step label '1' is used twice; use distinct labels$"):
        build(steps=[step, step])
    with pytest.raises(ValueError, match=r"step label 'h1' is used twice"):
        build(steps=[Step("h1", eq(y, y))])
    with pytest.raises(ValueError, match=r"step label '1' is used twice"):
        build(steps=[step], as_printed=[Step("1", eq(y, 1))])


def test_uses_of_an_unknown_label_raise():
    with pytest.raises(ValueError, match=r"^step '2' uses 'h9', which is not a hypothesis or "
                                         r"an earlier step$"):
        build(steps=[Step("1", eq(y, y)), Step("2", eq(y, y), uses=("1", "h9"))])
    with pytest.raises(ValueError, match="uses '2'"):  # a later step is not yet known
        build(steps=[Step("1", eq(y, y), uses=("2",)), Step("2", eq(y, y))])


def test_refuted_printed_statements_show_the_errata():
    printed = Step("2'", le(y**2, y), cite="eq. (3)")
    d = build(steps=[Step("1", gt(y + 1, 1), uses=("h1",))], as_printed=[printed])
    assert d.complete and d.errata_shown and d.ok
    assert d.step("2'").status == "failed"
    assert_refutes(printed.claim, d.step("2'").witness)
    right = build(steps=[Step("1", gt(y + 1, 1))], as_printed=[Step("2'", ge(y**2, 0))])
    assert right.complete and not right.errata_shown and not right.ok
    with pytest.raises(KeyError):
        d.step("9")


def tiny() -> Derivation:
    return Derivation.check(
        "tiny", source="Example, Lemma 1",
        hypotheses=[("h1", gt(y, 0))], goal=ge(y**2 + y, 0),
        steps=[Step("1", eq((y + 1) ** 2, y**2 + 2 * y + 1), cite="eq. (1)"),
               Step("2", gt(y, 0), by="given", uses=("h1",)),
               Step("3", ge(sp.exp(y), 1 + y), by="interval", uses=("2",), cite="eq. (2)")],
        as_printed=[Step("3'", le(y**2, y), cite="eq. (3)")],
    )


def test_derivation_prints_as_a_sequent_and_a_script():
    assert str(tiny()) == (
        "tiny  (Example, Lemma 1)\n"
        "  h1: y > 0\n"
        "  |- y**2 + y >= 0\n"
        "  (1)  Eq((y + 1)**2, y**2 + 2*y + 1)  by simplify [eq. (1)]  checked\n"
        "  (2)  y > 0                           by given      checked\n"
        "  (3)  exp(y) >= y + 1                 by interval [eq. (2)]  unchecked"
        "  no box to certify over\n"
        "  (3') as printed: y**2 <= y           by simplify [eq. (3)]  FAILED  y=2: 4.0 > 2.0\n"
        "  2 of 3 steps checked; derivation incomplete; 1 of 1 printed statements refuted"
    )
    assert repr(tiny()) == "<Derivation tiny: 2/3 checked>"


def test_derivation_latex():
    latex = tiny().to_latex()
    assert latex.startswith("\\paragraph{tiny} Goal: $y^{2} + y \\geq 0$.\n\\begin{enumerate}")
    assert latex.count("\\item") == 4 and "\\textit{as printed:}" in latex
    assert tiny()._repr_latex_().startswith("$\\begin{array}{lll}")


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
    c = certify(ge(sp.sin(x), -1), {x: (0, 1)})
    assert c.status == "unknown" and "sin" in c.detail


def test_certificate_prints():
    c = certify(ge(sp.exp(x) - 1, 0), {x: (0, 5)})
    assert str(c) == "proved: exp(x) - 1 >= 0  over  x in [0, 5]  (1 boxes)"
    assert repr(c) == "<Certificate proved: exp(x) - 1 >= 0 (1 boxes)>"
