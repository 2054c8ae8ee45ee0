"""Derivation of representational collapse and over-squashing: Barbero et al., "Transformers need
glasses! Information over-squashing in language tasks", NeurIPS 2024 (arXiv 2406.04267 v2).

Symbols (the paper's letters where it has them):

- ``n``: sequence length; ``B``: a bound on every logit, ``|x_i| <= B``; ``m <= x_i <= M``
  their range and ``delta = M - m`` the spread.
- ``S``: the sum of the ``n - 1`` shared exponentials of Lemma B.1, ``p = e^b``, ``q = e^c``.
- ``Z``, ``Z*``: softmax denominators of Lemma B.2; ``D = sum |e^{x_i} - e^{x*_i}|``;
  ``Sigma = sum |Delta_i|`` with ``Delta_i = x*_i - x_i``.
- ``E = e^{x_a}`` (the repeated token's exponential), ``M_v = sum_{i<=n} e^{x_i} u_i`` (one
  coordinate of the unnormalised value sum), ``u_a`` the token's value, ``V`` a bound on values.
- Theorem 5.1/B.5: ``alpha`` an attention weight, ``beta1``/``beta2``/``beta3`` the norms'
  constants, ``sigma`` the MLP's Lipschitz constant ``sigma_psi``, ``L`` the depth.
- ``u``: a format's unit roundoff; ``K``, ``X``: the gap constant and state magnitude of the
  threshold model.
- The goal: ``Delta_n = ||z_n - z*_{n+1}||`` (one layer), ``J_ni = ||dy_n / dv_i^(0)||``,
  ``P_ni = (Abar^(L-1) ... Abar^(0))_{n,i}`` and ``C = (1/beta3) prod_l (sigma/beta2 + 1)``.
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, gt, le, lt

n = sp.Symbol("n", positive=True, integer=True)
k = sp.Symbol("k", positive=True, integer=True)
B = sp.Symbol("B", nonnegative=True)
delta = sp.Symbol("delta", nonnegative=True)
S, p, q = sp.symbols("S p q", positive=True)
r, t, w = sp.symbols("r t w", nonnegative=True)
x, y = sp.symbols("x y", real=True)
Z, Zs, E = sp.symbols("Z Z_star E", positive=True)
D, Sigma, V = sp.symbols("D Sigma V", nonnegative=True)
M_v, u_a = sp.symbols("M_v u_a", real=True)
alpha = sp.Symbol("alpha", nonnegative=True)
beta1, beta2, beta3 = sp.symbols("beta1 beta2 beta3", positive=True)
sigma = sp.Symbol("sigma", nonnegative=True)
L = sp.Symbol("L", positive=True, integer=True)
u, K, X = sp.symbols("u K X", positive=True)


#: Every number the derivation (and, through plain values, the numeric checker) takes from the
#: paper or from the notes' quantitative forms of its limits. Read by reference, never retyped.
PAPER = Quantities("representational-collapse", [
    Quantity("b1.shift", 1, "index", cite="Lemma B.1 (rate)",
             meaning="the +1 in e^delta/(n + 1): x* has n + 1 entries, each exponential >= e^m"),
    Quantity("b1.spread_factor", 2, "exponent", cite="Lemma B.1 (rate)",
             meaning="the 2 in e^{2B}/(n + 1): |x_i| <= B gives the spread delta = M - m <= 2B"),
    Quantity("b2.constant", 2, "constant", cite="Lemma B.2 (quantitative)",
             meaning="the 2 in (2 e^{2B}/n) sum|Delta_i|: TV <= |Z - Z*|/Z* + D/Z* <= 2 D/Z*"),
    Quantity("b2.exponent", 2, "exponent", cite="Lemma B.2 (quantitative)",
             meaning="the 2 in e^{2B}: D <= e^B sum|Delta_i| and 1/Z* <= e^B/n"),
    Quantity("b3.value_factor", 2, "constant", cite="Thm B.3, one layer",
             meaning="the 2 in 2 V e^{2B}/(n + 1): ||u_a - m|| <= ||u_a|| + ||m|| <= 2V"),
    Quantity("gap.order", 2, "exponent", cite="Thm B.3, repeated token",
             meaning="the gap of a prompt followed by copies of a is Theta(1/n^gap.order)"),
    Quantity("gap.order_varied", 1, "exponent", cite="Thm B.3, varied tokens",
             meaning="the gap when u_a - m does not vanish (sampled digits, separators) is "
                     "Theta(1/n^gap.order_varied)"),
    Quantity("b4.factor", 2, "constant", cite="Prop. B.4",
             meaning="the 2 in TV = 2(e - 1)/(e + 1) for the alternating pair, every even n"),
    Quantity("b4.numerator_sign", -1, "sign", cite="Prop. B.4",
             meaning="the -1 in e - 1: each coordinate differs by (e - 1)/Z"),
    Quantity("b4.denominator_sign", 1, "sign", cite="Prop. B.4",
             meaning="the +1 in e + 1: Z = Z* = (n/2)(e + 1)"),
    Quantity("b4.printed_shift", 1, "constant", cite="Prop. B.4 proof, as printed",
             meaning="the +1 in the printed intermediate denominator (ne + 1)/2 (a typo for "
                     "n(e + 1)/2)",
             exempt={"x0.99": "a typo's constant: (ne + 0.99)/2 is as wrong as (ne + 1)/2, so "
                              "the printed intermediate stays refuted; no correct step uses it",
                     "x1.01": "a typo's constant: (ne + 1.01)/2 is as wrong as (ne + 1)/2, so "
                              "the printed intermediate stays refuted; no correct step uses it"}),
    Quantity("c.residual", 1, "constant", cite="Thm B.5 proof",
             meaning="the +1 in C = (1/beta3) prod_l (sigma_psi/beta2 + 1): the residual path "
                     "v^(l+1) = psi(norm_2(z)) + z"),
    Quantity("c.beta3_exponent", -1, "exponent", cite="Thm B.5 proof",
             meaning="the power of beta3 in C: the final norm_3 contributes 1/beta3"),
    Quantity("abar.identity", 1, "constant", cite="Thm B.5 proof",
             meaning="the coefficient of delta_ji in Abar = alpha/beta1 + delta_ji: the residual "
                     "z_j = sum alpha norm_1(v) + v_j"),
    Quantity("b8.beta3_root", 4, "constant", cite="Prop. B.8",
             meaning="beta3^{1/L} = 4, so each layer's factor is (1/4)(1 + 1)(Lambda + I) = "
                     "(Lambda + I)/2"),
    Quantity("threshold.unit_exponent", -8, "exponent", cite="threshold model (notes)",
             meaning="bf16's unit roundoff u = 2^-8 (half its 2^-7 machine epsilon): states "
                     "round together once the gap is below u |x|"),
])


def b1_rate(size, spread):
    """Lemma B.1's rate: ``softmax(x*)_{n+1} <= e^{delta} / (n + 1)``; ``spread`` is ``delta``
    (``b1.spread_factor * B`` for ``|x_i| <= B``)."""
    return sp.exp(spread) / (size + PAPER["b1.shift"])


def b1_bound(size, bound):
    """Lemma B.1 for ``|x_i| <= B``: ``e^{2B} / (n + 1)``."""
    return b1_rate(size, PAPER["b1.spread_factor"] * bound)


def b2_bound(size, bound, total):
    """Lemma B.2, quantitative: ``TV(y, y*) <= (2 e^{2B} / n) sum |Delta_i|``."""
    return PAPER["b2.constant"] * sp.exp(PAPER["b2.exponent"] * bound) / size * total


def one_layer_bound(size, bound, values):
    """Theorem B.3, one layer, no positional encoding: ``||z_n - z*_{n+1}|| <= 2 V e^{2B}/(n + 1)``
    with ``V`` a bound on the value norms and ``B`` on the logits."""
    return PAPER["b3.value_factor"] * values * b1_bound(size, bound)


def alternating_tv_closed():
    """Proposition B.4: the total variation of the alternating pair for even ``n``."""
    return (PAPER["b4.factor"] * (sp.E + PAPER["b4.numerator_sign"])
            / (sp.E + PAPER["b4.denominator_sign"]))


def abar(weight, b1=None, kronecker=1):
    """One entry of ``Abar = Lambda / beta1 + I``: ``alpha/beta1 + delta_ji``."""
    b1 = beta1 if b1 is None else b1
    return weight / b1 + PAPER["abar.identity"] * kronecker


def oversquashing_constant(layers: int, sigma_psi=None, b2=None, b3=None):
    """The constant the proof of Theorem B.5 derives: ``(1/beta3) prod_l (sigma/beta2 + 1)``."""
    sigma_psi = sigma if sigma_psi is None else sigma_psi
    b2 = beta2 if b2 is None else b2
    b3 = beta3 if b3 is None else b3
    return (sigma_psi / b2 + PAPER["c.residual"]) ** layers * b3 ** PAPER["c.beta3_exponent"]


def unit_roundoff_bf16():
    """The threshold model's bf16 unit roundoff ``u = 2^-8``."""
    return sp.Integer(2) ** PAPER["threshold.unit_exponent"]


def _sign_evident(label: str, lhs, rhs, **step) -> list[Step]:
    """``lhs <= rhs`` in two checked steps: ``rhs - lhs`` equals a factored form, and that form
    is a product and quotient of sums of non-negative terms (SymPy signs it from the symbols)."""
    form = sp.factor(sp.together(rhs - lhs))
    note, show, uses = step.pop("note", ""), step.pop("show", ""), step.pop("uses", ())
    return [
        Step(f"{label}.1", eq(rhs - lhs, form), uses=uses, note=note,
             show=show and f"{show}: rhs - lhs", **step),
        Step(f"{label}.2", ge(form, 0), uses=(f"{label}.1",),
             show=show and f"{show}: rhs - lhs >= 0", **step),
    ]


def _lemma_b1() -> list[Step]:
    big = sp.exp(B)
    exp_delta = sp.Symbol("E_delta", positive=True)  # e^delta
    return [
        Step("B1a", gt(q / (S + q), q / (S + p + q)), cite="Lemma B.1",
             note="softmax(x)_n = e^c/(S + e^c) > e^c/(S + e^b + e^c) = softmax(x*)_{n+1}"),
        Step("B1b", ge((r + k * sp.exp(-delta)) + (sp.exp(-delta) + t),
                       (k + 1) * sp.exp(-delta)), cite="Lemma B.1 (rate)",
             note="induction step: each of n + 1 exponentials is >= e^{m}; shift so m = -delta"),
        *_sign_evident("B1c", 1 / ((1 + w) * ((n + 1) / exp_delta + t)), exp_delta / (n + 1),
                       uses=("B1b",), cite="Lemma B.1 (rate)",
                       show="e^{c-M}/(sum_k e^{x_k - M}) <= e^delta/(n + 1)",
                       note="e^{c - M} = 1/(1 + w) <= 1, the denominator (n + 1)/e^delta + t"),
        *_sign_evident("B1d", big**2 / (1 + w) / (n + 1), big**2 / (n + 1), uses=("B1c.2",),
                       cite="Lemma B.1 (rate)", show="e^delta/(n + 1) <= e^{2B}/(n + 1)",
                       note="|x_i| <= B gives delta <= 2B: e^delta = e^{2B}/(1 + w)"),
        Step("B1e", eq(sp.Limit(b1_rate(n, 2 * B), n, sp.oo), 0), by="limit", uses=("B1d.2",),
             cite="Lemma B.1", note="so |softmax(x)_n - softmax(x*)_{n+1}| < eps for large n"),
        Step("B1f", eq(b1_rate(n, 2 * B), sp.O(1 / n, (n, sp.oo))), by="series",
             cite="Lemma B.1 (rate)", show="Eq(exp(2*B)/(n + 1), O(1/n))"),
    ]


def _lemma_b2() -> list[Step]:
    ex, exs = sp.symbols("e_x e_xs", positive=True)
    d0 = sp.Symbol("Delta", nonnegative=True)
    return [
        Step("B2t", le(sp.Abs(x + y), sp.Abs(x) + sp.Abs(y)), by="given", cite="Lemma B.2",
             note="the triangle inequality, used for |Z - Z*| <= D and the sum below"),
        Step("B2a", eq(ex / Z - exs / Zs, (Zs * ex - Z * exs) / (Z * Zs)), cite="Lemma B.2",
             note="each coordinate of y - y*, over the common denominator"),
        Step("B2b", eq(Zs * ex - Z * exs, (Zs - Z) * ex + Z * (ex - exs)), cite="Lemma B.2",
             note="then the triangle inequality, summed over i"),
        Step("B2c", ge(d0 * sp.exp(d0) - sp.exp(d0) + 1, 0), by="monotone",
             box={d0: (0, sp.oo)}, cite="Lemma B.2 (quantitative)",
             note="e^Delta - 1 <= Delta e^Delta, so |e^x - e^{x*}| <= e^{max(x, x*)} |Delta|"),
        Step("B2d", le(sp.exp(B - w) * d0, sp.exp(B) * d0), uses=("B2c",), box={w: (0, 10),
             B: (0, 10), d0: (0, 10)}, cite="Lemma B.2 (quantitative)",
             note="max(x, x*) = B - w <= B: D <= e^B Sigma"),
        Step("B2e", le((2 * (sp.exp(B) * Sigma - r) - t) / (n * sp.exp(-B) + w),
                       b2_bound(n, B, Sigma)), uses=("B2a", "B2b", "B2d", "B1b"),
             cite="Lemma B.2 (quantitative)",
             note="TV <= (|Z - Z*| + D)/Z* with |Z - Z*| <= D <= e^B Sigma, Z* >= n e^{-B}"),
        Step("B2f", eq(sp.Limit(b2_bound(n, B, Sigma), n, sp.oo), 0), by="limit",
             uses=("B2e",), cite="Lemma B.2", note="summable logit changes: TV -> 0 as O(1/n)"),
    ]


def _one_layer() -> list[Step]:
    z_short = M_v / Z
    z_long = (M_v + E * u_a) / (Z + E)
    weight = E / (Z + E)
    P0 = sp.Symbol("P", positive=True)
    return [
        Step("I1", eq(z_long - z_short, weight * (u_a - M_v / Z)), cite="Thm B.3, one layer",
             show="Eq(z*_{n+1} - z_n, alpha*_{n+1,n+1}*(u_a - m))",
             note="the residuals v_a cancel; m = M_v/Z is the short query's attention output"),
        *_sign_evident("I2", b1_rate(n, 2 * B) / (1 + w) * (2 * V / (1 + t)),
                       2 * V * sp.exp(2 * B) / (n + 1), uses=("I1", "B1d.2", "B2t"),
                       cite="Thm B.3, one layer",
                       show="alpha*_{n+1,n+1} ||u_a - m|| <= 2 V e^{2B}/(n + 1)",
                       note="alpha* <= e^{2B}/(n + 1) (B.1) and ||u_a - m|| <= ||u_a|| + ||m|| "
                            "<= 2V (m is a convex combination)"),
        Step("I3", eq(sp.Limit(n**2 * (b1_rate(n, 2 * B) * 2 * V * P0 * sp.exp(2 * B) / n), n,
                               sp.oo), 2 * V * P0 * sp.exp(4 * B)), by="limit",
             uses=("I2.2", "B1c.2"), cite="repeated token",
             show="Eq(Limit(n**2 * e^{2B}/(n+1) * 2 V P e^{2B}/n, n, oo), 2 V P e^{4B})",
             note="prompt of P tokens then copies of a: u_a - m = sum_prompt alpha_i (u_a - u_i), "
                  "whose mass is <= P e^{2B}/n, so the gap is O(1/n^2)"),
    ]


def _proposition_b4() -> list[Step]:
    half = sp.Symbol("m", positive=True, integer=True)
    size = 2 * half
    Zalt = half * sp.E + half
    tv = size * (sp.E - 1) / Zalt
    return [
        Step("B4a", eq(tv, alternating_tv_closed()), cite="Prop. B.4",
             show="Eq(n*(e - 1)/(n*e/2 + n/2), 2*(e - 1)/(e + 1)), n = 2m",
             note="Z = Z* = (n/2)(e + 1) and every coordinate differs by (e - 1)/Z"),
        Step("B4b", eq(alternating_tv_closed(), (2 * sp.tanh(sp.Rational(1, 2))).rewrite(sp.exp)),
             cite="Prop. B.4", show="Eq(2*(e - 1)/(e + 1), 2*tanh(1/2))"),
        Step("B4c", gt(alternating_tv_closed(), sp.Rational(9, 10)), uses=("B4a",),
             cite="Prop. B.4", note="bounded away from 0 for every even n: no collapse"),
    ]


def _theorem_51() -> list[Step]:
    r1, r2, r3 = sp.symbols("r1 r2 r3", nonnegative=True)
    lam = sp.Symbol("lambda", nonnegative=True)
    dj = sp.Symbol("delta_ji", nonnegative=True)
    # s_psi = sigma/(1 + r1) <= sigma, ||J_2|| = 1/(beta2 (1 + r2)), ||J_1|| = 1/(beta1 (1 + r3))
    layer = (sigma / (1 + r1) / ((1 + r2) * beta2) + 1) * (lam / ((1 + r3) * beta1) + dj)
    a = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"a{i}{j}") if j <= i else 0)
    b = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"b{i}{j}") if j <= i else 0)
    nested = sum(b[2, k1] * a[k1, 0] for k1 in range(0, 3))
    factor = sigma / beta2 + 1
    return [
        *_sign_evident("T1", layer, (sigma / beta2 + 1) * (lam / beta1 + dj),
                       cite="Thm B.5 proof",
                       show="(s_psi j_2 + 1)(lambda j_1 + delta_ji) <= (sigma/beta2 + 1)"
                            "(lambda/beta1 + delta_ji)",
                       note="||dv_j^(l+1)/dv_i^(l)|| with s_psi <= sigma, ||J_norm2|| <= "
                            "1/beta2, ||J_norm1|| <= 1/beta1"),
        Step("T2", eq(nested, (b * a)[2, 0]), cite="Thm 5.1 (Eq. 1)",
             show="Eq(sum_{i<=k1<=n} Abar1[n,k1] Abar0[k1,i], (Abar1 Abar0)[n,i]), n = 3",
             note="the nested sum over causal paths is the (n, i) entry of the matrix product"),
        Step("T3", eq(sum(factor * b[2, k1] * factor * a[k1, 0] for k1 in range(3)) / beta3,
                      oversquashing_constant(2) * (b * a)[2, 0]), uses=("T1.2", "T2"),
             cite="Thm B.5 proof",
             show="Eq(sum_paths prod_l (sigma/beta2 + 1) Abar[l]/beta3, C (Abar1 Abar0)[n,i]), "
                  "L = 2",
             note="the per-layer factors leave the path sum as C = (1/beta3) prod_l "
                  "(sigma/beta2 + 1)"),
    ]


def _proposition_b8() -> list[Step]:
    size = 4
    lam = sp.Matrix(size, size, lambda i, j: sp.Rational(1, i + 1) if j <= i else 0)
    tilde = (lam + sp.eye(size)) / 2
    ell = sp.Symbol("L", positive=True)
    vectors, diagonal = tilde.diagonalize()
    power = vectors * sp.diag(*[diagonal[i, i] ** ell for i in range(size)]) * vectors.inv()
    target = sp.Matrix(size, size, lambda i, j: 1 if j == 0 else 0)
    distance = sp.powsimp(sp.expand(sum((power - target).applyfunc(lambda e: e**2))), force=True)
    row_sums = tilde * sp.ones(size, 1) - sp.ones(size, 1)
    gap = sp.Symbol("g", positive=True)
    return [
        Step("B8a", eq(sp.factor(tilde.charpoly().as_expr()),
                       sp.Mul(*[(sp.Symbol("lambda") - (1 + sp.Rational(1, i + 1)) / 2)
                                for i in range(size)])),
             cite="Prop. B.8", show="charpoly((Lambda + I)/2) = prod_i (lambda - (1 + "
                                    "Lambda_ii)/2), uniform Lambda, n = 4",
             note="triangular: eigenvalues (1 + Lambda_ii)/2; Lambda_11 = 1 gives 1"),
        Step("B8b", lt((1 + (1 - gap)) / 2, 1),
             cite="Prop. B.8 / Lemma B.6", show="(1 + Lambda_ii)/2 < 1, Lambda_ii = 1 - g < 1",
             note="rows after the first have >= 2 nonzeros, so Lambda_ii < 1"),
        Step("B8c", eq(sum(e**2 for e in row_sums), 0), cite="Lemma B.7",
             show="Eq((Lambda + I)/2 * 1, 1)", note="row-stochastic: 1 is a right eigenvector"),
        Step("B8d", eq(sp.Limit(distance, ell, sp.oo), 0), by="limit",
             uses=("B8a", "B8b", "B8c"), cite="Prop. B.8",
             show="Eq(Limit(||((Lambda + I)/2)**L - 1 e_1^T||_F**2, L, oo), 0), n = 4",
             note="the bound becomes sensitive to the first token only"),
    ]


def _threshold() -> list[Step]:
    gap1, gap2 = K / n, K / n**2
    star1, star2 = K / (u * X), sp.sqrt(K / (u * X))
    return [
        Step("P1", eq(gap1.subs(n, star1), u * X), cite="threshold model",
             show="Eq(K/n*, u*|x|) at n* = K/(u*|x|)",
             note="gap K/n falls to the unit roundoff of |x| at n* = K/(u|x|)"),
        Step("P2", eq(gap2.subs(n, star2), u * X), cite="threshold model",
             show="Eq(K/(n*)**2, u*|x|) at n* = sqrt(K/(u*|x|))",
             note="gap K/n^2 at n* = sqrt(K/(u|x|))"),
        Step("P3", lt(sp.diff(gap1, n), 0), cite="threshold model",
             note="the gap shrinks with n, so it stays below u|x| after n*"),
        Step("P4", eq(star1.subs({K: 1, X: 1, u: sp.Rational(1, 256)}), 256),
             cite="threshold model", show="Eq(K/(u*|x|), 256) at K = |x| = 1, u = 2**-8",
             note="bf16 (u = 2^-8), K = |x| = 1: n* = 256 for 1/n"),
        Step("P5", eq(star2.subs({K: 1, X: 1, u: sp.Rational(1, 256)}), 16),
             cite="threshold model", show="Eq(sqrt(K/(u*|x|)), 16) at K = |x| = 1, u = 2**-8",
             note="and n* = 16 for 1/n^2"),
    ]


def _as_printed() -> list[Step]:
    box = {alpha: (0, 1), beta1: (0.5, 2), beta2: (0.5, 2), beta3: (0.5, 2), sigma: (0, 2)}
    proof = (sigma / beta2 + 1) * (alpha / beta1 + 1) / beta3
    return [
        Step("T5.1'", eq(alpha / beta2 + 1, alpha / beta1 + 1), cite="Thm 5.1, main text", box=box,
             show="Eq(alpha/beta2 + delta, alpha/beta1 + delta)",
             note="the main text normalises by beta2; the proof by beta1"),
        Step("B5'", eq((alpha + 1) / beta1, alpha / beta1 + 1), cite="Thm B.5 statement",
             box=box, show="Eq((alpha + delta)/beta, alpha/beta1 + delta)",
             note="B.5 divides delta by beta too"),
        Step("B5c'", ge(sigma * (alpha + 1) / beta1, proof), cite="Thm B.5 statement", box=box,
             show="sigma**L*(alpha + delta)/beta >= (1/beta3)*(sigma/beta2 + 1)*(alpha/beta1 + "
                  "delta), L = 1, i = n",
             note="B.5's constant sigma_psi^L drops the residual path: 0 when psi = 0"),
        Step("B4'", eq(2 * k * (sp.E - 1) / ((2 * k * sp.E + 1) / 2), alternating_tv_closed()),
             cite="Prop. B.4 proof",
             show="Eq(n*(e - 1)/((n*e + 1)/2), 2*(e - 1)/(e + 1)), n = 2k",
             note="the printed intermediate denominator (ne + 1)/2 should be n(e + 1)/2"),
    ]


@cache
def derivation() -> Derivation:
    """Check Lemmas B.1 and B.2, the one-layer identity, Prop. B.4, Theorem 5.1/B.5, Prop. B.8
    and the precision threshold model step by step; record the printed inconsistencies."""
    return Derivation.check(
        "representational-collapse",
        source="Barbero et al. 2024, Lemmas B.1-B.2, Thm B.3, Prop. B.4, Thm 5.1/B.5, Prop. B.8",
        hypotheses=[
            ("h1", sp.And(-B <= x, x <= B)),
            ("h2", le(sp.Abs(x + y), sp.Abs(x) + sp.Abs(y))),
        ],
        goal=sp.And(le(sp.Symbol("Delta_n"), 2 * V * sp.exp(2 * B) / (n + 1)),
                    le(sp.Symbol("J_ni"), sp.Symbol("C") * sp.Symbol("P_ni"))),
        steps=[*_lemma_b1(), *_lemma_b2(), *_one_layer(), *_proposition_b4(), *_theorem_51(),
               *_proposition_b8(), *_threshold()],
        bound=b1_rate(n, 2 * B),
        as_printed=_as_printed(),
    )
