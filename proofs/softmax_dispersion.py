"""Derivation of Lemma 2.1 of Velickovic et al., "Softmax is not Enough" (ICML 2025), and its
corollaries: the tight extremal bound, sharpness, entropy, temperature, spread, adaptive
temperature.

Symbols (the paper's letters where it has them):

- ``n``: number of logits; ``k = n - 1``.
- ``m <= e_i <= M``: the logit range; ``delta = M - m`` the spread; ``theta > 0`` the temperature
  (eq. (1)); ``d = delta / theta`` the spread in units of the temperature.
- ``alpha_i = softmax_theta(e)_i``; ``S = sum_{j != i} exp((e_j - e_i)/theta)``, so
  ``alpha_i = 1 / (1 + S)``.
- ``eps``: the sharpness target, ``alpha_max >= 1 - eps``.
- ``H``: entropy of a softmax row in nats; ``beta(H)``: the adaptive inverse temperature of the
  paper's JAX listing (Fig. 4), coefficients highest degree first.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from proofs.derivation import Derivation
from proofs.steps import Step, eq, ge, le, lt

n = sp.Symbol("n", positive=True, integer=True)
k = sp.Symbol("k", nonnegative=True, integer=True)
d = sp.Symbol("d", nonnegative=True)
theta = sp.Symbol("theta", positive=True)
m, M = sp.symbols("m M", real=True)
e_i = sp.Symbol("e_i", real=True)
a, b, c, s, t, w = sp.symbols("a b c s t w", nonnegative=True)
eps = sp.Symbol("epsilon", positive=True)
H = sp.Symbol("H", nonnegative=True)

#: beta(H) of the JAX listing: jnp.polyval([-0.037, 0.481, -2.3, 4.917, -1.791], H)
POLY_FIT = (sp.Rational(-37, 1000), sp.Rational(481, 1000), sp.Rational(-23, 10),
            sp.Rational(4917, 1000), sp.Rational(-1791, 1000))
beta_poly = sum(coef * H ** (len(POLY_FIT) - 1 - i) for i, coef in enumerate(POLY_FIT))

#: Where beta(H) >= 1, to four decimals (the roots are 0.84858... and 5.94452...).
BETA_ONE_LOW, BETA_ONE_HIGH = sp.Rational(8486, 10000), sp.Rational(59445, 10000)
#: An upper bound on beta(H) over H >= 0 (the maximum is 2.42139 at H = 4.4124).
BETA_MAX = sp.Rational(2422, 1000)


def tight_upper(size, spread):
    """``1 / (1 + (n - 1) e^{-d})``: the largest coefficient's exact maximum."""
    return 1 / (1 + (size - 1) * sp.exp(-spread))


def tight_lower(size, spread):
    """``1 / (1 + (n - 1) e^{d})``: the smallest coefficient's exact minimum."""
    return 1 / (1 + (size - 1) * sp.exp(spread))


def paper_upper(size, spread):
    """Lemma 2.1: ``alpha_i <= e^{d} / n``."""
    return sp.exp(spread) / size


def paper_lower(size, spread):
    """Lemma 2.1: ``alpha_i >= e^{-d} / n``."""
    return sp.exp(-spread) / size


def _lemma_steps() -> list[Step]:
    x = sp.Symbol("x", nonnegative=True)
    return [
        Step("1", ge(sp.exp(x), 1), by="monotone", box={x: (0, sp.oo)}, cite="Lemma 2.1 (i)",
             note="x = (e_i - m)/theta >= 0, so exp(e_i/theta) >= exp(m/theta)"),
        Step("2a", eq(sp.exp((M - e_i) / theta) * sp.exp((e_i - m) / theta),
                      sp.exp((M - m) / theta)), cite="Lemma 2.1 (ii)",
             note="each term exp((e_j - e_i)/theta) lies in [e^{-d}, e^{d}]"),
        # summing k terms each >= c: induction base S_0 = 0 and step S_{j+1} = S_j + term
        Step("2b", ge((a + k * c) + (c + b), (k + 1) * c), cite="Lemma 2.1 (ii)",
             note="induction step: S_j = j*c + a, term = c + b, a, b >= 0"),
        Step("3", ge(tight_upper(k + 1, d), 1 / (1 + k * sp.exp(-d) + a)), uses=("2b",),
             cite="tight upper", note="alpha_i = 1/(1 + S) with S = k e^{-d} + a"),
        Step("4", ge(1 / (1 + k * sp.exp(d) / (1 + a)), tight_lower(k + 1, d)), uses=("2b",),
             cite="tight lower", note="S = k e^{d}/(1 + a) <= k e^{d}"),
        Step("5", eq(sp.exp(M / theta) / (sp.exp(M / theta) + k * sp.exp(m / theta)),
                     tight_upper(k + 1, (M - m) / theta)), cite="equality case",
             note="one logit at M, n - 1 at m attains the upper bound"),
        Step("6", eq(sp.exp(m / theta) / (sp.exp(m / theta) + k * sp.exp(M / theta)),
                     tight_lower(k + 1, (M - m) / theta)), cite="equality case",
             note="one logit at m, n - 1 at M attains the lower bound"),
        Step("7a", eq(paper_upper(k + 1, d) - tight_upper(k + 1, d),
                      (sp.exp(d) - 1) * sp.exp(d) / ((k + 1) * (k + sp.exp(d)))),
             cite="tight implies Lemma 2.1"),
        Step("7b", ge(w * (1 + w) / ((k + 1) * (k + 1 + w)), 0), uses=("1", "7a"),
             cite="tight implies Lemma 2.1", note="w = e^d - 1 >= 0 by (1)"),
        Step("8a", eq(tight_lower(k + 1, d) - paper_lower(k + 1, d),
                      (1 - sp.exp(-d)) / ((k + 1) * (1 + k * sp.exp(d)))),
             cite="tight implies Lemma 2.1"),
        Step("8b", ge((w / (1 + w)) / ((k + 1) * (1 + k * (1 + w))), 0), uses=("1", "8a"),
             cite="tight implies Lemma 2.1", note="w = e^d - 1 >= 0 by (1)"),
        Step("9a", eq(sp.Limit(n * paper_upper(n, d), n, sp.oo), sp.exp(d)), by="limit",
             show="Eq(Limit(n*exp(d)/n, n, oo), exp(d))",
             cite="Lemma 2.1, Theta(1/n)"),
        Step("9b", eq(sp.Limit(n * paper_lower(n, d), n, sp.oo), sp.exp(-d)), by="limit",
             show="Eq(Limit(n*exp(-d)/n, n, oo), exp(-d))",
             cite="Lemma 2.1, Theta(1/n)"),
        Step("9c", eq(sp.Limit(n * tight_upper(n, d), n, sp.oo), sp.exp(d)), by="limit",
             cite="Theta(1/n), tight"),
        Step("9d", eq(sp.Limit(n * tight_lower(n, d), n, sp.oo), sp.exp(-d)), by="limit",
             cite="Theta(1/n), tight"),
        Step("9e", eq(tight_upper(n, d), sp.exp(d) / n + sp.O(n**-2, (n, sp.oo))),
             by="series", cite="Theta(1/n), tight"),
    ]


def _sharpness_steps() -> list[Step]:
    need = sp.log(k * (1 - eps) / eps)
    return [
        Step("10a", eq(tight_upper(k + 1, need), 1 - eps), cite="sharpness",
             note="at d = ln((n-1)(1-eps)/eps) the bound equals 1 - eps"),
        Step("10b", ge(sp.diff(tight_upper(k + 1, d), d), 0), cite="sharpness",
             note="the bound grows with d, so alpha_max >= 1 - eps needs d >= that value"),
        Step("10c", eq(tight_upper(1 + sp.exp(d), d), sp.Rational(1, 2)), cite="half mass",
             show="Eq(1/(1 + (n - 1)*exp(-d)), 1/2) at n = 1 + exp(d)", note="n_1/2 = 1 + e^{d}"),
    ]


def _entropy_steps() -> list[Step]:
    es = sp.symbols("e1:4", real=True)
    weights = [sp.exp(e / theta) for e in es]
    Z = sum(weights)
    p = [wt / Z for wt in weights]
    mean = sum(pi * e for pi, e in zip(p, es, strict=True))
    entropy = -sum(pi * sp.log(pi) for pi in p)
    variance = sum(pi * (e - mean) ** 2 for pi, e in zip(p, es, strict=True))
    free_energy = sp.log(Z) - mean / theta
    return [
        Step("11a", eq(-sp.log(sp.exp(d - s) / n) - (sp.log(n) - d), s),
             cite="entropy bound", note="alpha_i = e^{d-s}/n with s >= 0, by the upper bound"),
        Step("11b", ge(a * (c + b), a * c), cite="entropy bound",
             note="H = sum alpha_i (-ln alpha_i) and each -ln alpha_i >= ln n - d = c"),
        Step("11c", eq(sp.Limit((sp.log(n) - d) / sp.log(n), n, sp.oo), 1), by="limit",
             cite="entropy bound", note="H / ln n -> 1"),
        Step("12a", eq(sp.expand_log(entropy, force=True), free_energy), cite="temperature",
             show="Eq(H(theta), log(Z) - E_p[e]/theta)", note="n = 3, symbolic logits e1..e3"),
        Step("12b", eq(sp.diff(free_energy, theta), variance / theta**3), cite="temperature",
             show="Eq(Derivative(H(theta), theta), Var_p(e)/theta**3)", note="n = 3"),
        Step("12c", ge(variance, 0), cite="temperature", show="Var_p(e) >= 0",
             note="so entropy never falls as theta grows"),
    ]


def _spread_steps() -> list[Step]:
    u = sp.symbols("u1:4", real=True)
    v = sp.symbols("v1:4", real=True)
    inner = sum(x * y for x, y in zip(u, v, strict=True))
    lagrange = sum((u[i] * v[j] - u[j] * v[i]) ** 2 for i in range(3) for j in range(i + 1, 3))
    A = sp.Symbol("A", nonnegative=True)
    return [
        Step("13a", eq(sum(x**2 for x in u) * sum(y**2 for y in v) - inner**2, lagrange),
             cite="Prop. 3.1",
             show="Eq(|u|**2*|v|**2 - <u, v>**2, Sum((u_i*v_j - u_j*v_i)**2))",
             note="Lagrange's identity (R^3): Cauchy-Schwarz |<Qy,Kx>| <= |Qy| |Kx| "
                  "<= smax(Q) smax(K) |y| |x|"),
        Step("13b", ge(lagrange, 0), cite="Prop. 3.1", show="Sum((u_i*v_j - u_j*v_i)**2) >= 0"),
        Step("13c", le((A - a) - (-A + b), 2 * A), cite="Prop. 3.1",
             note="|e_i| <= A for all i gives delta = M - m <= 2A"),
    ]


def _adaptive_steps() -> list[Step]:
    return [
        Step("14a", ge(beta_poly, 1), by="interval", box={H: (BETA_ONE_LOW, BETA_ONE_HIGH)},
             cite="Fig. 4 listing", note="beta(H) >= 1 on [0.8486, 5.9445]"),
        Step("14b", lt(beta_poly, 1), by="interval",
             box={H: (0, BETA_ONE_LOW - sp.Rational(1, 10**4))},
             cite="Fig. 4 listing", note="below 0.8485 beta < 1: the H > 0.5 gate is redundant"),
        Step("14c", lt(beta_poly, 1), by="interval",
             box={H: (BETA_ONE_HIGH + sp.Rational(1, 10**4), 10)}, cite="Fig. 4 listing"),
        Step("14d", lt(sp.expand(beta_poly.subs(H, 10 + t)), 1), cite="Fig. 4 listing",
             note="H = 10 + t: every coefficient negative, so beta < 1 for all H >= 10"),
        Step("14e", le(beta_poly, BETA_MAX), by="interval", box={H: (0, 10)}, cite="Fig. 4 listing",
             note="beta* = max(beta, 1) <= 2.422 everywhere"),
        Step("14f", eq(sp.Limit(n * tight_upper(n, BETA_MAX * d), n, sp.oo),
                          sp.exp(BETA_MAX * d)), by="limit", uses=("14e",),
             cite="cannot escape", note="logits scaled by beta* <= 2.422: still Theta(1/n)"),
        Step("14g", eq(sp.log(sp.exp(BETA_ONE_HIGH + sp.Rational(1, 10**4) + d + t)) - d,
                       BETA_ONE_HIGH + sp.Rational(1, 10**4) + t), uses=("11a", "14c"),
             show="Eq(log(n) - d, 29723/5000 + t) at n = exp(29723/5000 + d + t)",
             cite="no effect", note="n >= exp(5.9446 + d) gives H >= ln n - d >= 5.9446, "
                                    "where beta <= 1: the adaptive temperature does nothing"),
    ]


@cache
def derivation() -> Derivation:
    """Check Lemma 2.1 and its corollaries step by step."""
    return Derivation.check(
        "softmax-dispersion",
        source="Velickovic et al. 2025, Lemma 2.1",
        hypotheses=[
            ("h1", sp.And(m <= e_i, e_i <= M)),
            ("h2", sp.StrictGreaterThan(theta, 0, evaluate=False)),
            ("h3", eq(d, (M - m) / theta)),
        ],
        goal=sp.And(le(sp.Symbol("alpha_max"), tight_upper(n, d)),
                    ge(sp.Symbol("alpha_min"), tight_lower(n, d))),
        steps=[*_lemma_steps(), *_sharpness_steps(), *_entropy_steps(), *_spread_steps(),
               *_adaptive_steps()],
        bound=tight_upper(n, d),
    )
