"""Derivation for Velickovic, Barbero, Perivolaropoulos, Osindero, Pascanu, "Perplexity Cannot
Always Tell Right from Wrong" (arXiv:2601.22950, 2026): the iso-perplexity analysis of Sec. 4
(Eqs. 10-11), Remark 3.4, and Lemma 3.1 with its printed bound and a corrected one.

Symbols (the paper's letters; ``pplx`` is log-perplexity, the mean negative log-likelihood):

- ``a``: accuracy; ``gamma``: probability on the wrong class (confidence ``1 - gamma``, Eq. 10).
- ``Delta``: a confidence shift, ``gamma' = gamma - Delta``; ``s = Delta / gamma`` in [0, 1).
- ``a'``: the critical accuracy (Eq. 11) at which the shifted model has the same perplexity.
- ``c``, ``V``: probability on the argmax token and vocabulary size (the V-token model).
- ``theta``: sampling temperature (Remark 3.4).
- Lemma 3.1: ``N`` string length, ``margin`` the confidence margin of Eq. 5, ``floor`` the
  probability floor (``log T >= log floor``), ``eta`` the continuity tolerance, ``xi`` the target
  gap.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from proofs.derivation import Derivation
from proofs.steps import Step, eq, ge, gt, le, lt

a, a_new = sp.symbols("a a_new", positive=True)
gamma, gamma_new, Delta = sp.symbols("gamma gamma_new Delta", positive=True)
s, t, u, v, r = sp.symbols("s t u v r", nonnegative=True)
c, V, theta = sp.symbols("c V theta", positive=True)
N, eta, xi, floor, margin = sp.symbols("N eta xi floor margin", positive=True)
b_ = sp.Symbol("b", positive=True)  # b = 1 - a where positivity of 1 - a is needed
g_ = sp.Symbol("g", positive=True)  # g = 1 - gamma likewise
x1, x2 = sp.symbols("x1 x2", real=True)
w_ = sp.Symbol("w", positive=True)  # a value of gamma between gamma' and gamma


def log_perplexity(accuracy, wrong):
    """Eq. 10: ``-a log(1 - gamma) - (1 - a) log(gamma)``."""
    return -accuracy * sp.log(1 - wrong) - (1 - accuracy) * sp.log(wrong)


def _expected_nll(accuracy, wrong):
    """Mean NLL over a dataset: a fraction ``a`` of items gets ``1 - gamma`` on the true class,
    the rest get ``gamma``; computed as a sum over the two outcomes, not typed in as Eq. 10."""
    outcomes = {"right": (accuracy, 1 - wrong), "wrong": (1 - accuracy, wrong)}
    return sum(frequency * -sp.log(p) for frequency, p in outcomes.values())


def _solve_critical_accuracy():
    unknown = sp.Symbol("a_prime")
    solutions = sp.solve(sp.Eq(_expected_nll(a, gamma), _expected_nll(unknown, gamma - Delta)),
                         unknown)
    if len(solutions) != 1:
        raise ArithmeticError(f"expected one solution for a', got {solutions}")
    return solutions[0]


#: Eq. 11 as printed: a' = (pplx_{a,gamma} + log(gamma - Delta)) /
#: (log(gamma - Delta) - log(1 - gamma + Delta)).
EQ11_PRINTED = ((log_perplexity(a, gamma) + sp.log(gamma - Delta))
                / (sp.log(gamma - Delta) - sp.log(1 - gamma + Delta)))


def critical_accuracy_expr(accuracy=a, wrong=gamma, shift=s):
    """Eq. 11 with ``Delta = s * gamma``."""
    return EQ11_PRINTED.subs({a: accuracy, gamma: wrong}).subs(Delta, shift * wrong)


def _eq10_11_steps() -> list[Step]:
    solved = _solve_critical_accuracy()
    slope = sp.diff(EQ11_PRINTED, Delta).subs(Delta, 0)
    crit_new = ((log_perplexity(a, gamma) + sp.log(gamma_new))
                / (sp.log(gamma_new) - sp.log(1 - gamma_new)))
    return [
        Step("1", eq(_expected_nll(a, gamma), log_perplexity(a, gamma)), cite="Eq. 10",
             note="mean NLL of the homogeneous-confidence model"),
        Step("2", eq(solved, EQ11_PRINTED), cite="Eq. 11", uses=("1",),
             show="Eq(solve(pplx(a, gamma) = pplx(a', gamma - Delta), a'), Eq. 11)"),
        Step("3", eq(EQ11_PRINTED.subs(Delta, 0), a), cite="Sec. 4.1", uses=("2",),
             note="no shift, no change: a' = a"),
        Step("4", eq(sp.Limit(critical_accuracy_expr(), s, 1, "-"), 1), by="limit",
             cite="Sec. 4.1", uses=("2",), note="a perfectly confident model must be perfect"),
        Step("5a", eq(sp.diff(log_perplexity(a, gamma), a), sp.log(gamma) - sp.log(1 - gamma)),
             cite="Sec. 4.1", note="d pplx / d a"),
        Step("5b", ge(sp.log(1 + t), 0), by="monotone", box={t: (0, sp.oo)}, cite="Sec. 4.1",
             note="gamma = 1/(2 + t) < 1/2 gives log(gamma/(1 - gamma)) = -log(1 + t) < 0"),
        Step("6", eq(slope, (a + gamma - 1) / (gamma * (1 - gamma)
                                              * (sp.log(gamma) - sp.log(1 - gamma)))),
             cite="free lunch", uses=("2",), show="Eq(Derivative(a', Delta) at Delta = 0, "
                                                  "(a + gamma - 1)/(gamma*(1 - gamma)*"
                                                  "log(gamma/(1 - gamma))))"),
        Step("7", eq(slope * gamma * (1 - gamma) * (sp.log(gamma) - sp.log(1 - gamma)),
                     a + gamma - 1), uses=("5b", "6"), cite="free lunch",
             show="Eq(slope * gamma*(1 - gamma)*log(gamma/(1 - gamma)), a + gamma - 1)",
             note="the factor is negative, so a' < a for small shifts iff a > 1 - gamma"),
        Step("7b", eq(EQ11_PRINTED - a,
                      (log_perplexity(a, gamma) - log_perplexity(a, gamma - Delta))
                      / (sp.log(gamma - Delta) - sp.log(1 - gamma + Delta))), cite="free lunch",
             uses=("2",), show="Eq(a' - a, (pplx(a, gamma) - pplx(a, gamma - Delta))/"
                               "log((gamma - Delta)/(1 - gamma + Delta)))",
             note="a' < a exactly when the shifted model at the same accuracy has lower pplx"),
        Step("7c", eq(sp.diff(log_perplexity(a, w_), w_), (a * w_ - (1 - a) * (1 - w_))
                      / (w_ * (1 - w_))), cite="free lunch",
             note="pplx falls as gamma falls while gamma > 1 - a: the free-lunch region is "
                  "a*gamma' > (1 - a)(1 - gamma'), which the certificate checks on boxes"),
        Step("8a", eq(sp.solve(sp.diff(log_perplexity(a, gamma), gamma), gamma)[0], 1 - a),
             cite="calibration", show="Eq(solve(Derivative(pplx, gamma), gamma), [1 - a])",
             note="d pplx / d gamma = 0 only at gamma* = 1 - a"),
        Step("8b", gt(a / g_**2 + b_ / gamma**2, 0), cite="calibration",
             note="d^2 pplx / d gamma^2 = a/(1-gamma)^2 + (1-a)/gamma^2 > 0: a minimum"),
        Step("9a", eq(log_perplexity(a_new, 1 - a_new),
                      -a_new * sp.log(a_new) - (1 - a_new) * sp.log(1 - a_new)),
             cite="lowest accuracy", note="a calibrated model's pplx is the binary entropy H_b"),
        Step("9b", eq(sp.diff(log_perplexity(a_new, gamma_new), gamma_new)
                      .subs(gamma_new, 1 - a_new), 0), cite="lowest accuracy",
             show="Eq(Derivative(pplx(a', gamma'), gamma') at gamma' = 1 - a', 0)",
             note="on an iso-curve da'/dgamma' = -(d pplx/d gamma')/(d pplx/d a') vanishes "
                  "where gamma' = 1 - a': the least accepted a' solves H_b(a') = pplx_{a,gamma}"),
        Step("10", eq(log_perplexity(a_new, gamma_new) - log_perplexity(a, gamma),
                      (a_new - crit_new) * (sp.log(gamma_new) - sp.log(1 - gamma_new))),
             cite="selection rule", uses=("2", "5b"),
             note="with gamma' < 1/2 the factor is negative: lower pplx iff a_new > a'"),
    ]


def _vocabulary_steps() -> list[Step]:
    loss = -a * sp.log(c) - (1 - a) * sp.log((1 - c) / (V - 1))
    unknown = sp.Symbol("a_prime")
    c2 = sp.Symbol("c_new", positive=True)
    solved = sp.solve(sp.Eq(loss, loss.subs(c, c2).subs(a, unknown)), unknown)[0]
    typed = (loss + sp.log((1 - c2) / (V - 1))) / (sp.log((1 - c2) / (V - 1)) - sp.log(c2))
    tau = gamma ** (1 / theta) / ((1 - gamma) ** (1 / theta) + gamma ** (1 / theta))
    return [
        Step("11a", eq(loss.subs({V: 2, c: 1 - gamma}), log_perplexity(a, gamma)),
             cite="V tokens", note="probability c on the argmax, the rest uniform over V - 1"),
        Step("11b", eq(solved, typed), cite="V tokens", show="Eq(solve(L(a, c) = L(a', c'), a'), "
                                                           "(L + log((1-c')/(V-1)))/"
                                                           "(log((1-c')/(V-1)) - log(c')))"),
        Step("11c", eq(sp.solve(sp.diff(loss, c), c)[0], a), cite="V tokens",
             show="Eq(solve(Derivative(L(a, c), c), c), [a])",
             note="the calibrated confidence c* = a minimises L"),
        Step("12a", eq(tau.subs(theta, 1), gamma), cite="Remark 3.4", note="Eq. 7 at theta = 1",
             show="Eq(gamma**(1/theta)/((1 - gamma)**(1/theta) + gamma**(1/theta)) at theta = 1, "
                  "gamma)"),
        Step("12b", eq(1 - tau, (1 - gamma) ** (1 / theta)
                       / ((1 - gamma) ** (1 / theta) + gamma ** (1 / theta))),
             cite="Remark 3.4", note="temperature only renames gamma: folded in w.l.o.g."),
        Step("13", ge((r + t) - (1 - (1 - r) * (1 - t)), 0), cite="Remark 3.5",
             note="Boole's inequality, induction step: 1 - P_k <= r, error t at step k + 1"),
    ]


def printed_lemma_bound(n=N, eps=margin, eps_floor=floor):
    """App. A, step 5, as printed: -(1/n)(log(1/2 + eps) - log(floor) + (n - 1) eps)."""
    return -(sp.log(sp.Rational(1, 2) + eps) - sp.log(eps_floor) + (n - 1) * eps) / n


def printed_oversmoothing(eps=margin, eps_floor=floor, target=xi):
    """Eq. 17's "oversmoothing" size as printed: (eps - log(1/2 + eps) + log floor)/(xi + eps)."""
    return (eps - sp.log(sp.Rational(1, 2) + eps) + sp.log(eps_floor)) / (target + eps)


def corrected_lemma_bound(n=N, tolerance=eta, eps_floor=floor):
    """The corrected bound: |pplx(alpha_N) - pplx(beta_N)| <= -log(floor)/N + 2 eta (N-1)/N."""
    return -sp.log(eps_floor) / n + 2 * tolerance * (n - 1) / n


def _lemma_steps() -> list[Step]:
    bound = corrected_lemma_bound()
    length = -2 * sp.log(floor) / xi * (1 + t)  # any N beyond -2 log(floor)/xi
    return [
        Step("14a", ge(t - sp.log(1 + t), 0), by="monotone", box={t: (0, sp.oo)},
             cite="App. A, corrected", note="log x <= x - 1: for q <= p, log p - log q <= "
                                             "(p - q)/q"),
        Step("14b", le(eta / (sp.Rational(1, 2) + r), 2 * eta), cite="App. A, corrected",
             note="q = 1/2 + r > 1/2 gives (p - q)/q <= eta/q < 2 eta for k != j"),
        Step("14c", le(-sp.log(floor * sp.exp(v)) + sp.log(sp.exp(-u)), -sp.log(floor)),
             cite="App. A, corrected", note="k = j: p = e^{-u} <= 1, q = floor*e^{v} >= floor; "
                                             "the term differs by at most -log(floor)"),
        Step("14d", eq((-sp.log(floor) + (N - 1) * 2 * eta) / N, bound), cite="App. A, corrected",
             uses=("14a", "14b", "14c", "h_triangle"),
             note="triangle inequality over the N terms of Eqs. 15-16"),
        Step("14e", eq(sp.Limit(bound, N, sp.oo), 2 * eta), by="limit", cite="App. A, corrected",
             note="the gap tends to 2 eta, not 0, unless eta is tied to xi"),
        Step("14f", le(-sp.log(floor) / length, xi / 2), cite="App. A, corrected",
             show="-log(floor)/N <= xi/2 for N = -2 log(floor)/xi * (1 + t)"),
        Step("14g", le(2 * (xi / 4) * (N - 1) / N, xi / 2), cite="App. A, corrected",
             note="eta = min(margin, xi/4): n' = max(1/delta(eta), -2 log(floor)/xi)"),
        Step("15", le(-sp.log(g_ * sp.exp(v)), -sp.log(g_)), cite="Prop. 3.2", uses=("14g",),
             note="Eq. 6: each copy term has p = (1 - gamma) e^v >= 1 - gamma = g, so "
                  "pplx(alpha_N) <= -log(1 - gamma) and pplx(beta_N) < -log(1 - gamma) + xi"),
        Step("16", eq(sp.Limit(-sp.log(1 - gamma) + xi, xi, 0).subs(gamma, 0), 0), by="limit",
             cite="Cor. 3.3", uses=("15",), show="Eq(Limit(-log(1 - 0) + xi, xi, 0), 0)",
             note="copied with certainty (gamma = 0): pplx(beta_N) -> 0"),
    ]


def _printed_steps() -> list[Step]:
    box = {margin: (0.01, 0.49), floor: (1e-9, 0.3), N: (2, 10**6)}
    return [
        Step("14'", ge(printed_lemma_bound(), 0), by="interval", box=box,
             cite="App. A, step 5", note="it bounds an absolute value, so it must be >= 0"),
        Step("17'", ge(printed_oversmoothing(), 0), by="interval",
             box={margin: (0.01, 0.49), floor: (1e-9, 0.3), xi: (1e-3, 1)},
             cite="Eq. 17", note="a size must be positive"),
    ]


@cache
def derivation() -> Derivation:
    """Check Eqs. 10-11, their corollaries, the V-token model, Remark 3.4 and Lemma 3.1."""
    return Derivation.check(
        "iso-perplexity",
        source="Velickovic et al. 2026, Sec. 4 and Lemma 3.1",
        hypotheses=[
            ("h1", sp.And(lt(0, a), lt(a, 1))),
            ("h2", sp.And(lt(0, gamma), lt(gamma, sp.Rational(1, 2)))),
            ("h3", sp.And(le(0, Delta), lt(Delta, gamma))),
            ("h_triangle", le(sp.Abs(x1 + x2), sp.Abs(x1) + sp.Abs(x2))),
        ],
        goal=sp.Equivalent(lt(log_perplexity(a_new, gamma - Delta), log_perplexity(a, gamma)),
                            gt(a_new, EQ11_PRINTED)),
        steps=[*_eq10_11_steps(), *_vocabulary_steps(), *_lemma_steps()],
        bound=EQ11_PRINTED,
        as_printed=_printed_steps(),
    )
