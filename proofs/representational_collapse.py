"""Derivation of representational collapse and over-squashing: Barbero et al., "Transformers need
glasses! Information over-squashing in language tasks", NeurIPS 2024 (arXiv 2406.04267 v2).

Every number the paper (or the notes' quantitative form of its limits) states is an entry of
:data:`PAPER` and is read by reference; each paper step derives its own value and compares it with
the paper's by equality or a chain, so a changed quantity breaks a named step. Generic facts of a
norm (the triangle inequality, absolute homogeneity, submultiplicativity) are hypotheses of the
setting; generic algebra (``e^t - 1 <= t e^t``, the matrix-product index identity) is printed as a
helper.

Scope of each check: Lemmas B.1-B.2, Theorem B.3 (one layer), Prop. B.4, Prop. 6.1/B.9 and
Cor. B.10 are checked for a symbolic length ``n``; Theorem 5.1/B.5's per-layer factor for any
layer and any ``j >= i``, its path sum at depth ``L = 2`` (the constant for general ``L`` is the
same per-layer factor to the power ``L``, not checked by induction here); Lemma B.6's eigenvector
and diagonal entries for every row ``r`` of every size, Lemma B.7's row sums and signs for a
symbolic size; the triangular eigenvalue identity at sizes 2 to 5, the associativity it rests on
at sizes 2 to 4, and Prop. B.8's limit for uniform causal attention at sizes 2 to 5.

Symbols (the paper's letters where it has them):

- ``norm``: the norm of the statements (``|.|`` on numbers, ``||.||_1`` on vectors, the operator
  norm on Jacobians); ``n`` a sequence length; ``B`` a bound on every logit.
- Lemma B.1: ``x* = [a b c]``: its first ``n`` entries ``[a b]`` are the logits ``x(k)``, its last
  ``c``, all in ``[m, M]`` with spread ``delta = M - m``; ``E[k] = e^{x_k}``, ``Z = sum_k E[k]``;
  ``alpha* = softmax(x*)_{n+1} = e^c/(Z + e^c)``.
- Lemma B.2: ``x(k)``, ``x*(k)`` the logits and ``E[k]``, ``E*[k] = e^{x*_k}``;
  ``Z``, ``Z*`` the softmax sums; ``TV = sum_k |E[k]/Z - E*[k]/Z*|`` (the paper's Eq. (2), no
  1/2); ``D = sum_k |E[k] - E*[k]|``; for each ``k``, ``lo[k] = min(x_k, x*_k)`` and
  ``t[k] = |Delta_k|``, ``Delta_k = x*_k - x_k``, with ``Sigma = sum_k t[k]``.
- Theorem B.3, one layer, no positional encoding: the query is the repeated token ``a`` = token
  ``n``; ``x(k)`` its logits on keys ``1..n`` (the same for both sequences) and ``c`` its logit on
  the copy (so ``x*`` is Lemma B.1's, and ``alpha* = alpha*_{n+1,n+1}``), ``u[k]`` the values,
  ``V`` a bound on their norms, ``v_a`` the residual; ``z_n``, ``z*_{n+1}`` the outputs, ``m`` the
  short query's attention output, ``Delta_n`` the gap.
- Theorem 5.1/B.5: ``J[l, j, i] = dv_j^(l+1)/dv_i^(l)``; ``alpha[l, j, i]`` the attention
  (held fixed), ``delta[j, i]`` the Kronecker delta, ``Abar[l, j, i] = alpha/beta1 + delta``;
  ``sigma`` the MLPs' Lipschitz constant ``sigma_psi``; ``beta1``, ``beta2``, ``beta3`` the
  norms' constants; at depth two ``J_ni = ||dy_n/dv_i^(0)|| = ||J_norm3 sum_{i<=k<=n}
  J[1, n, k] J[0, k, i]||`` (the chain rule over the causal paths) and
  ``P_ni = (Abar^(1) Abar^(0))_{n,i}``.
- Prop. B.8, Lemmas B.6/B.7: ``Lambda(r, j)`` a causal attention row ``r``; Prop. B.9 / Cor. B.10:
  ``n0``, ``n1`` the counts of zeros and ones, ``K_r`` a readout's Lipschitz constant.
- The threshold model (the notes', not the paper's): ``K/n^p`` a gap, ``u |x|`` the rounding
  threshold.
"""

from __future__ import annotations

import functools

import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, gt, le, lt

__all__ = ["B", "Delta_n", "E", "J_ni", "PAPER", "P_ni", "SYMBOLS", "Sigma", "V", "Z", "abar",
    "alpha", "alpha_star", "alternating_tv_closed", "b1_bound", "b1_rate", "b2_bound", "beta1",
    "beta2", "beta3", "derivation", "i", "j", "k", "n", "norm", "one_layer_bound",
    "oversquashing_constant", "sigma", "unit_roundoff_bf16", "x"]


n = sp.Symbol("n", positive=True, integer=True)
i, j, k = sp.symbols("i j k", positive=True, integer=True)
B = sp.Symbol("B", nonnegative=True)
V = sp.Symbol("V", nonnegative=True)
alpha = sp.Symbol("alpha", nonnegative=True)
beta1, beta2, beta3 = sp.symbols("beta1 beta2 beta3", positive=True)
sigma = sp.Symbol("sigma", nonnegative=True)
Sigma = sp.Symbol("Sigma", nonnegative=True)

norm = sp.Function("norm", nonnegative=True)
#: Generic variables of the norm's hypotheses (scalars c, d; elements p, q; a sequence u(k)).
_c, _d = sp.symbols("c d", real=True)
_p, _q = sp.symbols("p q")
_lo, _hi = sp.symbols("lo hi", integer=True)
_seq = sp.Function("w")
#: The logits x(k), their exponentials E[k] = e^{x_k} (indexed: it keeps the sums light) and sum Z.
x = sp.Function("x", real=True)
E = sp.IndexedBase("E", positive=True)
Z = sp.Symbol("Z", positive=True)
#: softmax(x*)_{n+1} = alpha*_{n+1,n+1}: Lemma B.1's last weight, Theorem B.3's weight on the copy.
alpha_star = sp.Symbol("alpha_star", positive=True)
#: Argument of a monotone map in ``apply`` steps.
_s = sp.Symbol("s", real=True)
_sp = sp.Symbol("s", positive=True)
_sn = sp.Symbol("s", nonnegative=True)

#: What each letter of the derivation means: the legend printed with it. A symbol as a key is
#: matched with its assumptions (the same name plays two roles in places), a string by name or
#: as a glob pattern.
SYMBOLS = {
    "norm": "the norm of the statements: |.| on numbers, ||.||_1 on vectors, the operator norm "
            "on Jacobians",
    "p": "a vector (the norm's axioms)",
    "q": "a vector (the norm's axioms)",
    _c: "a number (the norm's axioms); in Lemma B.1 and Thm B.3 the last logit of x*, the "
        "query's logit on the copy",
    sp.Symbol("c", positive=True, integer=True): "the number of copies of a in a block (Thm "
                                                 "B.3, varied tokens)",
    _d: "a number (the norm's axioms)",
    sp.Symbol("d", nonnegative=True, integer=True): "j - i: how far position j lies after "
                                                    "position i (Thm 5.1/B.5)",
    "w": "w(k): a sequence of vectors (the triangle inequality for sums)",
    _lo: "the first index of a sum (the triangle inequality for sums)",
    "hi": "the last index of a sum (the triangle inequality for sums)",
    "lo": "lo[k] = min(x(k), x_star(k)) (Lemma B.2)",
    "n": "the length of the shorter sequence",
    "i": "a position",
    "j": "a position; the index of a sum over positions",
    "k": "a position; the index of a sum over positions",
    "x": "x(k): the logits of the shorter sequence",
    "x_star": "x_star(k): the logits of the longer sequence (Lemma B.2)",
    sp.Symbol("m", real=True): "the smallest logit (Lemma B.1)",
    "M": "the largest logit (Lemma B.1)",
    sp.Symbol("m"): "the shorter sequence's attention output, sum_k E[k] u[k]/Z (Thm B.3)",
    "alpha_star": "softmax(x*)_{n+1} = e^c/(Z + e^c): the weight on the last entry of x* "
                  "(Lemma B.1), on the copy (Thm B.3)",
    "Z": "the softmax sum of the shorter sequence, sum_k E[k]",
    "Z_star": "the softmax sum of the longer sequence, sum_k E_star[k] (Lemma B.2)",
    sp.Symbol("delta", nonnegative=True): "the spread of the logits, M - m (Lemma B.1)",
    B: "a bound on every logit, |x(k)| <= B",
    "B": "B[k, j]: the entries of a row-stochastic matrix (Lemma B.7)",
    "E": "E[k] = e^{x(k)}: the exponentiated logits",
    "E_star": "E_star[k] = e^{x_star(k)} (Lemma B.2)",
    "D": "sum_k |E[k] - E_star[k]| (Lemma B.2)",
    "Sigma": "sum_k t[k]: the total change of the logits (Lemma B.2)",
    "t": "t[k] = |x_star(k) - x(k)|: the change of logit k (Lemma B.2)",
    "u": "u[k]: the values the attention mixes (Thm B.3)",
    "V": "a bound on the values' norms, ||u[k]|| <= V (Thm B.3)",
    "z_n": "the output at the last position of the shorter sequence (Thm B.3)",
    "v_a": "the residual: the repeated token a's own value (Thm B.3)",
    "z*_{n+1}": "the output at the last position of the longer sequence (Thm B.3)",
    "dz": "z*_{n+1} - z_n (Thm B.3)",
    "Delta_n": "the gap ||z*_{n+1} - z_n|| between the two last states (Thm B.3)",
    "g_rep": "the gap for a prompt followed by r copies of a (Thm B.3)",
    "E_a": "e^{x_a}: the exponentiated logit of the token a",
    "S_P": "the prompt's softmax sum",
    "r": "the number of copies of a, or of blocks (Thm B.3); a row of the attention (Lemma "
         "B.6, Prop. B.8)",
    "M_P": "the prompt's weighted value sum, sum over the prompt of e^{x_i} u_i",
    "u_a": "the value of the token a",
    "W": "S_P u_a - M_P = sum over the prompt of e^{x_i} (u_a - u_i)",
    "g_sep": "the gap for r blocks of c copies of a and one separator (Thm B.3)",
    "Z_sep": "the softmax sum of the r blocks",
    "M_sep": "the weighted value sum of the r blocks",
    "E_s": "e^{x_s}: the exponentiated logit of the separator",
    "u_s": "the value of the separator",
    "Z_alt": "the softmax sum of x = (1, 0, 1, 0, ...) (Prop. B.4)",
    "Z*_alt": "the softmax sum of x* = (0, 1, 0, 1, ...) (Prop. B.4)",
    "h": "half the length, n = 2h (Prop. B.4)",
    "TV_alt": "the total variation between softmax(x) and softmax(x*) (Prop. B.4)",
    "J": "J[l, j, i] = dv_j^(l+1)/dv_i^(l): a layer's Jacobian (Thm 5.1/B.5)",
    "l": "a layer",
    "I": "the identity",
    "J_norm1": "J_norm1(l, i): the Jacobian of layer l's first normalisation at position i",
    "J_norm2": "J_norm2(l, j): the Jacobian of layer l's second normalisation at position j",
    "J_norm3": "the Jacobian of the final normalisation",
    "J_psi": "J_psi(l, j): the Jacobian of layer l's MLP psi at position j",
    "delta": "delta[j, i]: the Kronecker delta",
    "alpha": "alpha[l, j, i]: the attention of position j on position i at layer l, held fixed",
    alpha: "an attention weight alpha_{j,i} (Thm 5.1 as printed)",
    "beta1": "the constant of the first normalisation: its Jacobian's norm is at most 1/beta1",
    "beta2": "the constant of the second normalisation: its Jacobian's norm is at most 1/beta2",
    "beta3": "the constant of the final normalisation: its Jacobian's norm is at most 1/beta3",
    "sigma": "sigma_psi: the Lipschitz constant of the MLPs",
    "Abar": "Abar[l, j, i] = alpha[l, j, i]/beta1 + delta[j, i] (Thm B.5)",
    "J_ni": "||dy_n/dv_i^(0)|| at depth two: how much the last output moves with input i",
    "P_ni": "(Abar^(1) Abar^(0))_{n,i}: the sum over the causal paths from i to n",
    "Lambda": "Lambda(r, j): the causal attention of row r on column j (Prop. B.8)",
    "R": "R(r) = sum_{j<r} Lambda(r, j): row r's weight off the diagonal (Lemma B.6)",
    "A": "A[r, k]: the entries of a row-stochastic matrix (Lemma B.7)",
    "f_short": "a readout of the shorter sequence's last state (Cor. B.10)",
    "f_long": "the same readout of the longer sequence's last state (Cor. B.10)",
    "K_r": "the readout's Lipschitz constant (Cor. B.10)",
    "K": "the constant of a gap K/n^p (threshold model)",
    "x_mag": "|x|: the magnitude of the state (threshold model)",
    "S": "sum_{k<n} e^{x_k}: the part of the softmax sums both sequences share (Lemma B.1)",
    sp.Symbol("b", real=True): "the entry x* adds (Lemma B.1)",
    sp.Function("a"): "a(r, k): the entries of a lower-triangular matrix (the index identity)",
    sp.Function("b"): "b(k, j): the entries of a lower-triangular matrix (the index identity)",
    "kk": "the index of a sum (the index identity)",
    "lambda": "an eigenvalue (Lemma B.6)",
    "a_[0-9][0-9]": "the entries of a lower-triangular matrix (the eigenvalue identity)",
    "L": "the depth (Prop. B.8's limit)",
    "n_0": "the number of zeros (Prop. 6.1/B.9)",
    "n_1": "the number of ones (Prop. 6.1/B.9)",
    "v_one": "the value of a one (Prop. 6.1/B.9)",
    "v_zero": "the value of a zero (Prop. 6.1/B.9)",
    "s_[01][01]": "s_ab: the attention score of a query a on a key b, a and b in {0, 1} (Prop. "
                  "6.1/B.9)",
    "delta_ji": "the Kronecker delta delta[j, i] (Thm 5.1 as printed)",
    "psi": "the MLP's output (Thm B.3 as printed)",
    "z_l": "the attention output z^(l) (Thm B.3 as printed)",
    "v_l": "the layer's input v^(l) (Thm B.3 as printed)",
}

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


def _norm_facts() -> list[tuple[str, sp.Basic]]:
    """The norm of the statements: triangle inequality with absolute homogeneity, over two terms
    and over a finite sum, and submultiplicativity (for the Jacobians' operator norm)."""
    return [
        ("h_norm", le(norm(_c * _p + _d * _q), sp.Abs(_c) * norm(_p) + sp.Abs(_d) * norm(_q))),
        ("h_norm_sum", le(norm(sp.Sum(_seq(k), (k, _lo, _hi))),
                          sp.Sum(norm(_seq(k)), (k, _lo, _hi)))),
        ("h_norm_mul", le(norm(_p * _q), norm(_p) * norm(_q))),
    ]


# Lemma B.1 ----------------------------------------------------------------------------------


def _lemma_b1() -> tuple[list, list[Step]]:
    """Lemma B.1 for ``x* = [a b c]``: its first ``n`` entries ``[a b]`` are the logits ``x(k)``
    (``E[k] = e^{x_k}``, ``Z`` their sum), its last entry is ``c``."""
    m, M = sp.symbols("m M", real=True)
    spread = sp.Symbol("delta", nonnegative=True)
    c = sp.Symbol("c", real=True)
    S0 = sp.Symbol("S", nonnegative=True)
    b0 = sp.Symbol("b", real=True)
    cite = "Lemma B.1"
    rate = cite + " (rate)"
    hypotheses = [
        ("h_B1_range", sp.And(ge(x(k), m), le(x(k), M))),
        ("h_B1_c", sp.And(ge(c, m), le(c, M))),
        ("h_B1_alpha", eq(alpha_star, sp.exp(c) / (Z + sp.exp(c)))),
        ("h_B1_delta", eq(spread, M - m)),
        ("h_B1_bounded", sp.And(le(M, B), ge(m, -B))),
    ]
    steps = [
        Step("B1.denominators", lt(S0 + sp.exp(c), S0 + sp.exp(b0) + sp.exp(c)), cite=cite,
             show="sum_{k<n} e^{a_k} + e^c < sum_{k<n} e^{a_k} + e^b + e^c",
             note="x* adds the entry b: its denominator has one more positive term"),
        Step("B1.strict", gt(sp.exp(c) / (S0 + sp.exp(c)), sp.exp(c) / (S0 + sp.exp(b0)
                                                                      + sp.exp(c))),
             by="apply", at={_sp: sp.exp(c) / _sp}, uses=("B1.denominators",), cite=cite,
             show="softmax(x)_n > softmax(x*)_{n+1}"),
        Step("B1.each_exp", ge(sp.exp(x(k)), sp.exp(m)), by="apply", at={_s: sp.exp(_s)},
             uses=("h_B1_range",), cite=rate),
        Step("B1.each", ge(E[k], sp.exp(m)), by="chain", uses=("h_E", "B1.each_exp"),
             cite=rate, note="each of the first n exponentials is >= e^m"),
        Step("B1.sum", ge(sp.Sum(E[k], (k, 1, n)), n * sp.exp(m)), by="sum", at={k: (1, n)},
             uses=("B1.each",), cite=rate),
        Step("B1.Z", ge(Z, n * sp.exp(m)), by="chain", uses=("h_Z", "B1.sum"), cite=rate),
        Step("B1.c_low", ge(sp.exp(c), sp.exp(m)), by="apply", at={_s: sp.exp(_s)},
             uses=("h_B1_c",), cite=rate),
        Step("B1.c_high", le(sp.exp(c), sp.exp(M)), by="apply", at={_s: sp.exp(_s)},
             uses=("h_B1_c",), cite=rate, note="the numerator e^c is <= e^M"),
        Step("B1.den_Z", ge(Z + sp.exp(c), n * sp.exp(m) + sp.exp(c)), by="apply",
             at={_sp: _sp + sp.exp(c)}, uses=("B1.Z",), cite=rate),
        Step("B1.den_c", ge(n * sp.exp(m) + sp.exp(c), (n + 1) * sp.exp(m)), by="apply",
             at={_sp: n * sp.exp(m) + _sp}, uses=("B1.c_low",), cite=rate),
        Step("B1.den", ge(Z + sp.exp(c), (n + 1) * sp.exp(m)), by="chain",
             uses=("B1.den_c", "B1.den_Z"), cite=rate,
             note="the denominator: n + 1 exponentials, each >= e^m"),
        Step("B1.top", le(sp.exp(c) / (Z + sp.exp(c)), sp.exp(M) / (Z + sp.exp(c))),
             by="apply", at={_s: _s / (Z + sp.exp(c))}, uses=("B1.c_high",), cite=rate),
        Step("B1.bottom", le(sp.exp(M) / (Z + sp.exp(c)), sp.exp(M) / ((n + 1) * sp.exp(m))),
             by="apply", at={_sp: sp.exp(M) / _sp}, uses=("B1.den",), cite=rate),
        Step("B1.rate", eq(sp.exp(M) / ((n + 1) * sp.exp(m)), b1_rate(n, spread)),
             uses=("h_B1_delta",), cite=rate,
             show="e^M/((n + 1) e^m) = e^delta/(n + b1.shift)",
             note="the derived rate is the paper's"),
        Step("B1.lemma", le(alpha_star, b1_rate(n, spread)), by="chain",
             uses=("B1.rate", "B1.bottom", "B1.top", "h_B1_alpha"), cite=rate,
             show="softmax(x*)_{n+1} <= e^delta/(n + 1)"),
        Step("B1.M", le(M - m, B - m), by="apply", at={_s: _s - m}, uses=("h_B1_bounded",),
             cite=rate),
        Step("B1.m", le(B - m, 2 * B), by="apply", at={_s: B - _s}, uses=("h_B1_bounded",),
             cite=rate),
        Step("B1.spread", le(spread, PAPER["b1.spread_factor"] * B), by="chain",
             uses=("h_B1_delta", "B1.M", "B1.m"), cite=rate,
             note="|x_k| <= B: the spread is at most 2B"),
        Step("B1.exp", le(b1_rate(n, spread), b1_bound(n, B)), by="apply",
             at={_s: b1_rate(n, _s)}, uses=("B1.spread",), cite=rate),
        Step("B1.bound", le(alpha_star, b1_bound(n, B)), by="chain",
             uses=("B1.lemma", "B1.exp"), cite=rate,
             show="softmax(x*)_{n+1} <= e^{2B}/(n + 1)"),
        Step("B1.vanish", eq(sp.Limit(b1_bound(n, B), n, sp.oo), 0), by="limit", cite=cite,
             note="so the extra weight is < eps for n large enough"),
    ]
    return hypotheses, steps


# Lemma B.2 ----------------------------------------------------------------------------------



def _lemma_b2() -> tuple[list, list[Step]]:
    xs = sp.Function("x_star", real=True)
    Es = sp.IndexedBase("E_star", positive=True)
    lo = sp.IndexedBase("lo", real=True)
    t = sp.IndexedBase("t", nonnegative=True)
    Zs = sp.Symbol("Z_star", positive=True)
    D = sp.Symbol("D", nonnegative=True)
    tv = sp.Sum(norm(E[k] / Z - Es[k] / Zs), (k, 1, n))  # TV(y, y*)
    tt = sp.Symbol("t", nonnegative=True)
    e, es = E[k], Es[k]
    coordinate = norm(e / Z - es / Zs)
    split = e / (Z * Zs) * norm(Z - Zs) + norm(e - es) / Zs
    cite = "Lemma B.2 (quantitative)"
    hypotheses = [
        ("h_Z", eq(Z, sp.Sum(e, (k, 1, n)))),
        ("h_B2_Zstar", eq(Zs, sp.Sum(es, (k, 1, n)))),
        ("h_B2_D", eq(D, sp.Sum(norm(e - es), (k, 1, n)))),
        ("h_B2_Sigma", eq(Sigma, sp.Sum(t[k], (k, 1, n)))),
        ("h_B2_pair", sp.And(eq(norm(e - es), sp.exp(lo[k]) * (sp.exp(t[k]) - 1)),
                             le(lo[k] + t[k], B))),
        ("h_B2_low", ge(xs(k), -B)),
        ("h_E", sp.And(eq(E[k], sp.exp(x(k))), eq(Es[k], sp.exp(xs(k))))),
    ]
    steps = [
        Step("B2.helper", le(sp.exp(tt) - 1, tt * sp.exp(tt)), by="monotone",
             box={tt: (0, sp.oo)}, role="algebra", note="e^t - 1 <= t e^t for t >= 0"),
        Step("B2.at", le(sp.exp(t[k]) - 1, t[k] * sp.exp(t[k])), by="instance",
             at={tt: t[k]}, uses=("B2.helper",), role="algebra"),
        Step("B2.scale", le(sp.exp(lo[k]) * (sp.exp(t[k]) - 1), sp.exp(lo[k]) * t[k]
                            * sp.exp(t[k])), by="apply", at={_s: sp.exp(lo[k]) * _s},
             uses=("B2.at",), cite=cite),
        Step("B2.max", le(t[k] * sp.exp(lo[k] + t[k]), t[k] * sp.exp(B)), by="apply",
             at={_s: t[k] * sp.exp(_s)}, uses=("h_B2_pair",), cite=cite,
             note="the larger logit lo + t is <= B"),
        Step("B2.coordinate", le(norm(e - es), sp.exp(B) * t[k]), by="chain",
             uses=("h_B2_pair", "B2.scale", "B2.max"), cite=cite,
             show="|e^{x_k} - e^{x*_k}| <= e^B |Delta_k|"),
        Step("B2.D_terms", le(sp.Sum(norm(e - es), (k, 1, n)), sp.Sum(sp.exp(B) * t[k],
                                                                      (k, 1, n))),
             by="sum", at={k: (1, n)}, uses=("B2.coordinate",), cite=cite),
        Step("B2.Sigma", eq(sp.Sum(sp.exp(B) * t[k], (k, 1, n)), sp.exp(B) * Sigma),
             uses=("h_B2_Sigma",), role="algebra"),
        Step("B2.D", le(D, sp.exp(B) * Sigma), by="chain",
             uses=("B2.Sigma", "B2.D_terms", "h_B2_D"), cite=cite,
             show="D <= e^B sum|Delta_k|"),
        Step("B2.low_exp", ge(sp.exp(xs(k)), sp.exp(-B)), by="apply", at={_s: sp.exp(_s)},
             uses=("h_B2_low",), cite=cite),
        Step("B2.low", ge(es, sp.exp(-B)), by="chain", uses=("h_E", "B2.low_exp"),
             cite=cite),
        Step("B2.low_sum", ge(sp.Sum(es, (k, 1, n)), n * sp.exp(-B)), by="sum",
             at={k: (1, n)}, uses=("B2.low",), cite=cite),
        Step("B2.Zstar", ge(Zs, n * sp.exp(-B)), by="chain", uses=("h_B2_Zstar", "B2.low_sum"),
             cite=cite, show="Z* >= n e^{-B}"),
        Step("B2.triangle", le(coordinate, split), by="instance",
             at={_c: -e / (Z * Zs), _p: Z - Zs, _d: 1 / Zs, _q: e - es}, uses=("h_norm",),
             cite="Lemma B.2",
             show="|e^x/Z - e^x*/Z*| <= |Z - Z*| e^x/(Z Z*) + |e^x - e^x*|/Z*",
             note="Z* e^x - Z e^x* = (Z* - Z) e^x + Z (e^x - e^x*), then the triangle "
                  "inequality"),
        Step("B2.TV_terms", le(sp.Sum(coordinate, (k, 1, n)), sp.Sum(split, (k, 1, n))),
             by="sum", at={k: (1, n)}, uses=("B2.triangle",), cite="Lemma B.2",
             show="TV <= sum_k (|Z - Z*| e^{x_k}/(Z Z*) + |e^{x_k} - e^{x*_k}|/Z*)"),
        Step("B2.split", eq(sp.Sum(split, (k, 1, n)), norm(Z - Zs) / Zs + D / Zs),
             uses=("h_Z", "h_B2_D"), cite="Lemma B.2",
             show="sum_k (...) = |Z - Z*|/Z* + D/Z*", note="sum_k e^{x_k} = Z"),
        Step("B2.Z_diff", eq(norm(Z - Zs), norm(sp.Sum(e - es, (k, 1, n)))),
             uses=("h_Z", "h_B2_Zstar"), cite="Lemma B.2 (Eq. 3)"),
        Step("B2.Z_sum", le(norm(sp.Sum(e - es, (k, 1, n))), sp.Sum(norm(e - es), (k, 1, n))),
             by="instance", at={_seq(k): e - es, _lo: 1, _hi: n}, uses=("h_norm_sum",),
             cite="Lemma B.2 (Eq. 3)"),
        Step("B2.Z_D", le(norm(Z - Zs), D), by="chain", uses=("h_B2_D", "B2.Z_sum", "B2.Z_diff"),
             cite="Lemma B.2 (Eq. 3)", show="|Z - Z*| <= D"),
        Step("B2.two", le(norm(Z - Zs) / Zs + D / Zs, 2 * D / Zs), by="apply",
             at={_sn: _sn / Zs + D / Zs}, uses=("B2.Z_D",), cite=cite),
        Step("B2.eB", le(2 * D / Zs, 2 * sp.exp(B) * Sigma / Zs), by="apply",
             at={_sn: 2 * _sn / Zs}, uses=("B2.D",), cite=cite),
        Step("B2.n", le(2 * sp.exp(B) * Sigma / Zs, 2 * sp.exp(B) * Sigma / (n * sp.exp(-B))),
             by="apply", at={_sp: 2 * sp.exp(B) * Sigma / _sp}, uses=("B2.Zstar",), cite=cite),
        Step("B2.TV_split", le(tv, norm(Z - Zs) / Zs + D / Zs), by="chain",
             uses=("B2.split", "B2.TV_terms"), cite="Lemma B.2",
             show="TV <= |Z - Z*|/Z* + D/Z*"),
        Step("B2.rate", le(norm(Z - Zs) / Zs + D / Zs, b2_bound(n, B, Sigma)), by="chain",
             uses=("B2.two", "B2.eB", "B2.n"), cite=cite,
             show="|Z - Z*|/Z* + D/Z* <= 2D/Z* <= 2 e^B Sigma/Z* <= (2 e^{2B}/n) Sigma",
             note="the derived rate is the paper's"),
        Step("B2.lemma", le(tv, b2_bound(n, B, Sigma)), by="chain",
             uses=("B2.TV_split", "B2.rate"), cite=cite,
             show="TV(y, y*) <= (2 e^{2B}/n) sum|Delta_k|"),
        Step("B2.vanish", eq(sp.Limit(b2_bound(n, B, Sigma), n, sp.oo), 0), by="limit",
             cite="Lemma B.2", note="a summable perturbation: TV -> 0"),
    ]
    return hypotheses, steps


# Theorem B.3, one layer ---------------------------------------------------------------------

Delta_n = sp.Symbol("Delta_n", nonnegative=True)


def _theorem_b3() -> tuple[list, list[Step]]:
    u = sp.IndexedBase("u")
    v_a, z_n, z_long, m_v, dz = sp.symbols("v_a z_n z*_{n+1} m dz")
    weight = alpha_star
    c = sp.Symbol("c", real=True)
    e, last = E[k], sp.exp(c)
    mix = sp.Sum(e * u[k], (k, 1, n))
    cite = "Thm B.3, one layer"
    hypotheses = [
        ("h_B3_values", le(norm(u[k]), V)),
        ("h_B3_short", eq(z_n, mix / Z + v_a)),
        ("h_B3_long", eq(z_long, (mix + last * u[n]) / (Z + last) + v_a)),
        ("h_B3_m", eq(m_v, mix / Z)),
        ("h_B3_dz", eq(dz, z_long - z_n)),
        ("h_B3_gap", eq(Delta_n, norm(dz))),
    ]
    steps = [
        Step("B3.identity", eq(dz, weight * (u[n] - m_v)),
             uses=("h_B3_dz", "h_B3_long", "h_B3_short", "h_B1_alpha", "h_B3_m"), cite=cite,
             show="z*_{n+1} - z_n = alpha*_{n+1,n+1} (u_a - m)",
             note="the residuals v_a cancel; the extra key is the copy of a (logit c = x_n; the "
                  "bound needs only m <= c <= M)"),
        Step("B3.gap_is", eq(Delta_n, norm(weight * (u[n] - m_v))),
             uses=("h_B3_gap", "B3.identity"), cite=cite),
        Step("B3.scale", le(norm(weight * (u[n] - m_v)), weight * norm(u[n] - m_v)),
             by="instance", at={_c: weight, _p: u[n] - m_v, _d: 0, _q: 0}, uses=("h_norm",),
             cite=cite),
        Step("B3.triangle", le(norm(u[n] - m_v), norm(u[n]) + norm(m_v)), by="instance",
             at={_c: 1, _p: u[n], _d: -1, _q: m_v}, uses=("h_norm",), cite=cite),
        Step("B3.u_a", le(norm(u[n]), V), by="instance", at={k: n}, uses=("h_B3_values",),
             cite=cite),
        Step("B3.m_is", eq(norm(m_v), norm(sp.Sum(e * u[k] / Z, (k, 1, n)))), uses=("h_B3_m",),
             cite=cite),
        Step("B3.m_sum", le(norm(sp.Sum(e * u[k] / Z, (k, 1, n))),
                            sp.Sum(norm(e * u[k] / Z), (k, 1, n))), by="instance",
             at={_seq(k): e * u[k] / Z, _lo: 1, _hi: n}, uses=("h_norm_sum",), cite=cite),
        Step("B3.m_term", le(norm(e * u[k] / Z), e * norm(u[k]) / Z), by="instance",
             at={_c: e / Z, _p: u[k], _d: 0, _q: 0}, uses=("h_norm",), cite=cite),
        Step("B3.m_value", le(e * norm(u[k]) / Z, e * V / Z), by="apply",
             at={_sn: e * _sn / Z}, uses=("h_B3_values",), cite=cite),
        Step("B3.m_each", le(norm(e * u[k] / Z), e * V / Z), by="chain",
             uses=("B3.m_term", "B3.m_value"), cite=cite),
        Step("B3.m_terms", le(sp.Sum(norm(e * u[k] / Z), (k, 1, n)),
                              sp.Sum(e * V / Z, (k, 1, n))), by="sum", at={k: (1, n)},
             uses=("B3.m_each",), cite=cite),
        Step("B3.m_mass", eq(sp.Sum(e * V / Z, (k, 1, n)), V), uses=("h_Z",), cite=cite,
             note="the attention weights sum to 1"),
        Step("B3.m_split", le(norm(m_v), sp.Sum(norm(e * u[k] / Z), (k, 1, n))), by="chain",
             uses=("B3.m_sum", "B3.m_is"), cite=cite),
        Step("B3.m", le(norm(m_v), V), by="chain",
             uses=("B3.m_mass", "B3.m_terms", "B3.m_split"), cite=cite,
             show="||m|| <= V", note="m is a convex combination of the values"),
        Step("B3.add_u", le(norm(u[n]) + norm(m_v), V + norm(m_v)), by="apply",
             at={_sn: _sn + norm(m_v)}, uses=("B3.u_a",), cite=cite),
        Step("B3.add_m", le(V + norm(m_v), 2 * V), by="apply", at={_sn: V + _sn},
             uses=("B3.m",), cite=cite),
        Step("B3.u_m", le(norm(u[n] - m_v), 2 * V), by="chain",
             uses=("B3.triangle", "B3.add_u", "B3.add_m"), cite=cite, show="||u_a - m|| <= 2V"),
        Step("B3.gap_u", le(weight * norm(u[n] - m_v), 2 * V * weight), by="apply",
             at={_sn: weight * _sn}, uses=("B3.u_m",), cite=cite),
        Step("B3.gap_w", le(2 * V * weight, 2 * V * b1_bound(n, B)), by="apply",
             at={_sp: 2 * V * _sp}, uses=("B1.bound",), cite=cite + " (Lemma B.1)"),
        Step("B3.gap", le(Delta_n, one_layer_bound(n, B, V)), by="chain",
             uses=("B3.gap_is", "B3.scale", "B3.gap_u", "B3.gap_w"), cite=cite,
             show="||z_n - z*_{n+1}|| <= 2 V e^{2B}/(n + 1)"),
    ]
    return hypotheses, steps


def _families() -> tuple[list, list[Step]]:
    """The gap's exact order for a prompt followed by copies of ``a`` (1/n^2) and for blocks of
    ``c`` copies and one separator (1/n), from the one-layer identity."""
    r, c = sp.symbols("r c", positive=True, integer=True)
    S_p, E_a, E_s = sp.symbols("S_P E_a E_s", positive=True)
    M_p, u_a, u_s, W = sp.symbols("M_P u_a u_s W", real=True)
    g_rep, g_var, Z_v, M_v = sp.symbols("g_rep g_sep Z_sep M_sep")
    hypotheses = [
        ("h_rep", eq(g_rep, (M_p + r * E_a * u_a + E_a * u_a) / (S_p + r * E_a + E_a)
                     - (M_p + r * E_a * u_a) / (S_p + r * E_a))),
        ("h_rep_W", eq(W, S_p * u_a - M_p)),
        ("h_sep", eq(g_var, (M_v + E_a * u_a) / (Z_v + E_a) - M_v / Z_v)),
        ("h_sep_Z", eq(Z_v, r * (c * E_a + E_s))),
        ("h_sep_M", eq(M_v, r * (c * E_a * u_a + E_s * u_s))),
    ]
    steps = [
        Step("B3.rep", eq(g_rep, E_a * W / ((S_p + r * E_a + E_a) * (S_p + r * E_a))),
             uses=("h_rep", "h_rep_W"), cite="Thm B.3, repeated token",
             show="gap = alpha* (u_a - m), u_a - m = W/Z, W = sum_prompt e^{x_i}(u_a - u_i)",
             note="the r copies of a drop out of u_a - m"),
        Step("B3.rep_order", eq(sp.Limit(r ** PAPER["gap.order"] * g_rep, r, sp.oo), W / E_a),
             by="limit", uses=("B3.rep",), cite="Thm B.3, repeated token",
             show="r^gap.order * gap -> W/e^{x_a}, nonzero: the gap is Theta(1/n^2)"),
        Step("B3.sep", eq(g_var, E_a * E_s * r * (u_a - u_s)
                          / ((r * (c * E_a + E_s) + E_a) * r * (c * E_a + E_s))),
             uses=("h_sep", "h_sep_Z", "h_sep_M"), cite="Thm B.3, varied tokens",
             note="u_a - m = e^{x_s}(u_a - u_s)/(c e^{x_a} + e^{x_s}) does not vanish"),
        Step("B3.sep_order", eq(sp.Limit(r ** PAPER["gap.order_varied"] * g_var, r, sp.oo),
                                E_a * E_s * (u_a - u_s) / (c * E_a + E_s) ** 2),
             by="limit", uses=("B3.sep",), cite="Thm B.3, varied tokens",
             show="r^gap.order_varied * gap -> a nonzero constant: Theta(1/n)"),
    ]
    return hypotheses, steps


# Proposition B.4 ----------------------------------------------------------------------------

_half = sp.Symbol("h", positive=True, integer=True)  # n = 2h
_Z_alt = sp.Symbol("Z_alt", positive=True)


def _proposition_b4() -> tuple[list, list[Step]]:
    Zs = sp.Symbol("Z*_alt", positive=True)
    tv = sp.Symbol("TV_alt", nonnegative=True)
    one, zero = sp.exp(1), sp.exp(0)
    pairs = (j, 1, _half)  # coordinates 2j - 1 (x = 1, x* = 0) and 2j (x = 0, x* = 1)
    hypotheses = [
        ("h_B4_Z", eq(_Z_alt, sp.Sum(one + zero, pairs))),
        ("h_B4_Zstar", eq(Zs, sp.Sum(zero + one, pairs))),
        ("h_B4_TV", eq(tv, sp.Sum(sp.Abs(one / _Z_alt - zero / Zs)
                                  + sp.Abs(zero / _Z_alt - one / Zs), pairs))),
    ]
    steps = [
        Step("B4.Z", eq(_Z_alt, _half * (sp.E + 1)), uses=("h_B4_Z",), cite="Prop. B.4",
             show="Z = n(e + 1)/2, n = 2h"),
        Step("B4.Zstar", eq(Zs, _half * (sp.E + 1)), uses=("h_B4_Zstar",), cite="Prop. B.4",
             show="Z* = n(e + 1)/2"),
        Step("B4.TV", eq(tv, alternating_tv_closed()), uses=("h_B4_TV", "B4.Z", "B4.Zstar"),
             cite="Prop. B.4", show="TV = n(e - 1)/Z = 2(e - 1)/(e + 1) for every even n",
             note="every coordinate differs by (e - 1)/Z"),
        Step("B4.positive", gt(alternating_tv_closed(), 0), cite="Prop. B.4"),
        Step("B4.no_collapse", gt(tv, 0), by="chain", uses=("B4.TV", "B4.positive"),
             cite="Prop. B.4", note="the same positive value at every even n: no decay to 0"),
    ]
    return hypotheses, steps


# Theorem 5.1 / B.5 --------------------------------------------------------------------------

J_ni, P_ni = sp.symbols("J_ni P_ni", nonnegative=True)


def _theorem_b5() -> tuple[list, list[Step]]:
    layer = sp.Symbol("l", nonnegative=True, integer=True)
    jac = sp.IndexedBase("J")
    j_psi, j_n1, j_n2 = sp.Function("J_psi"), sp.Function("J_norm1"), sp.Function("J_norm2")
    att = sp.IndexedBase("alpha", nonnegative=True)
    kron = sp.IndexedBase("delta", nonnegative=True)
    bar = sp.IndexedBase("Abar", nonnegative=True)
    eye, j_n3 = sp.symbols("I J_norm3")
    a, dd = att[layer, j, i], kron[j, i]
    mlp = j_psi(layer, j) * j_n2(layer, j) + eye
    mix = a * j_n1(layer, i) + dd * eye
    factor = sigma / beta2 + PAPER["c.residual"]
    cite = "Thm B.5 proof"
    hypotheses = [
        ("h_B5_layer", eq(norm(jac[layer, j, i]), norm(mlp * mix))),
        ("h_B5_norms", sp.And(le(norm(j_psi(layer, j)), sigma),
                              le(norm(j_n2(layer, j)), 1 / beta2),
                              le(norm(j_n1(layer, i)), 1 / beta1), eq(norm(eye), 1),
                              le(norm(j_n3), 1 / beta3))),
        ("h_B5_abar", eq(bar[layer, j, i], abar(a, beta1, dd))),
    ]
    steps = [
        Step("B5.mul", le(norm(mlp * mix), norm(mlp) * norm(mix)), by="instance",
             at={_p: mlp, _q: mix}, uses=("h_norm_mul",), cite=cite,
             show="||(J_psi J_norm2 + I)(alpha J_norm1 + delta I)|| <= ||J_psi J_norm2 + I|| "
                  "||alpha J_norm1 + delta I||",
             note="dv_j^(l+1)/dv_i^(l) = (J_psi J_norm2 + I)(alpha_ji J_norm1 + delta_ji I)"),
        Step("B5.mlp_split", le(norm(mlp), norm(j_psi(layer, j) * j_n2(layer, j)) + norm(eye)),
             by="instance", at={_c: 1, _p: j_psi(layer, j) * j_n2(layer, j), _d: 1, _q: eye},
             uses=("h_norm",), cite=cite, note="the residual path adds ||I||"),
        Step("B5.mlp_mul", le(norm(j_psi(layer, j) * j_n2(layer, j)),
                              norm(j_psi(layer, j)) * norm(j_n2(layer, j))), by="instance",
             at={_p: j_psi(layer, j), _q: j_n2(layer, j)}, uses=("h_norm_mul",), cite=cite),
        Step("B5.mlp_sigma", le(norm(j_psi(layer, j)) * norm(j_n2(layer, j)),
                                sigma * norm(j_n2(layer, j))), by="apply",
             at={_sn: _sn * norm(j_n2(layer, j))}, uses=("h_B5_norms",), cite=cite),
        Step("B5.mlp_beta2", le(sigma * norm(j_n2(layer, j)), sigma / beta2), by="apply",
             at={_sn: sigma * _sn}, uses=("h_B5_norms",), cite=cite),
        Step("B5.mlp_path", le(norm(j_psi(layer, j) * j_n2(layer, j)), sigma / beta2),
             by="chain", uses=("B5.mlp_mul", "B5.mlp_sigma", "B5.mlp_beta2"), cite=cite),
        Step("B5.mlp_plus", le(norm(j_psi(layer, j) * j_n2(layer, j)) + norm(eye),
                               sigma / beta2 + norm(eye)), by="apply",
             at={_sn: _sn + norm(eye)}, uses=("B5.mlp_path",), cite=cite),
        Step("B5.mlp_eye", eq(sigma / beta2 + norm(eye), sigma / beta2 + 1), by="apply",
             at={_sn: sigma / beta2 + _sn}, uses=("h_B5_norms",), cite=cite),
        Step("B5.mlp", le(norm(mlp), sigma / beta2 + 1), by="chain",
             uses=("B5.mlp_split", "B5.mlp_plus", "B5.mlp_eye"), cite=cite,
             show="||J_psi J_norm2 + I|| <= sigma/beta2 + 1"),
        Step("B5.mix_split", le(norm(mix), a * norm(j_n1(layer, i)) + dd * norm(eye)),
             by="instance", at={_c: a, _p: j_n1(layer, i), _d: dd, _q: eye},
             uses=("h_norm",), cite=cite,
             show="||alpha J_norm1 + delta I|| <= alpha ||J_norm1|| + delta ||I||"),
        Step("B5.mix_beta1", le(a * norm(j_n1(layer, i)) + dd * norm(eye),
                                a / beta1 + dd * norm(eye)),
             by="apply", at={_sn: a * _sn + dd * norm(eye)}, uses=("h_B5_norms",), cite=cite,
             show="alpha ||J_norm1|| + delta ||I|| <= alpha/beta1 + delta ||I||"),
        Step("B5.mix_eye", eq(a / beta1 + dd * norm(eye), a / beta1 + dd), by="apply",
             at={_sn: a / beta1 + dd * _sn}, uses=("h_B5_norms",), cite=cite,
             show="alpha/beta1 + delta ||I|| = alpha/beta1 + delta"),
        Step("B5.mix", le(norm(mix), bar[layer, j, i]), by="chain",
             uses=("B5.mix_split", "B5.mix_beta1", "B5.mix_eye", "h_B5_abar"), cite=cite,
             show="||alpha_ji J_norm1 + delta_ji I|| <= alpha_ji/beta1 + delta_ji = Abar_ji"),
        Step("B5.product_mlp", le(norm(mlp) * norm(mix), (sigma / beta2 + 1) * norm(mix)),
             by="apply", at={_sn: _sn * norm(mix)}, uses=("B5.mlp",), cite=cite,
             show="||J_psi J_norm2 + I|| ||mix|| <= (sigma/beta2 + 1) ||mix||"),
        Step("B5.product_mix", le((sigma / beta2 + 1) * norm(mix),
                                  (sigma / beta2 + 1) * bar[layer, j, i]),
             by="apply", at={_sn: (sigma / beta2 + 1) * _sn}, uses=("B5.mix",), cite=cite,
             show="(sigma/beta2 + 1) ||mix|| <= (sigma/beta2 + 1) Abar_ji"),
        Step("B5.product", le(norm(mlp) * norm(mix), (sigma / beta2 + 1) * bar[layer, j, i]),
             by="chain", uses=("B5.product_mlp", "B5.product_mix"), cite=cite,
             show="||J_psi J_norm2 + I|| ||mix|| <= (sigma/beta2 + 1) Abar_ji"),
        Step("B5.layer", le(norm(jac[layer, j, i]), factor * bar[layer, j, i]),
             by="chain", uses=("h_B5_layer", "B5.mul", "B5.product"),
             cite=cite, show="||dv_j^(l+1)/dv_i^(l)|| <= (sigma/beta2 + 1) Abar^(l)_ji"),
    ]
    # the path sum at depth L = 2: y_n = norm_3(v_n^(2)), paths i <= k <= n, with n = i + d
    top = i + sp.Symbol("d", nonnegative=True, integer=True)
    path = jac[1, top, k] * jac[0, k, i]
    paths = sp.Sum(path, (k, i, top))
    a1, a0 = factor * bar[1, top, k], factor * bar[0, k, i]
    hypotheses += [
        ("h_B5_J", eq(J_ni, norm(j_n3 * paths))),
        ("h_B5_P", eq(P_ni, sp.Sum(bar[1, top, k] * bar[0, k, i], (k, i, top)))),
    ]
    cite = "Thm 5.1/B.5, L = 2"
    steps += [
        Step("B5.index", _index_identity(), role="algebra",
             show="sum_{i<=k<=n} A[n,k] B[k,i] = (A B)[n,i] for lower-triangular A, B, "
                  "size 3, every n >= i",
             note="so P_ni, the causal path sum, is the (n, i) entry of Abar^(1) Abar^(0)"),
        Step("B5.out_mul", le(norm(j_n3 * paths), norm(j_n3) * norm(paths)), by="instance",
             at={_p: j_n3, _q: paths}, uses=("h_norm_mul",), cite=cite,
             show="||J_norm3 sum_paths|| <= ||J_norm3|| ||sum_paths||"),
        Step("B5.out_beta3", le(norm(j_n3) * norm(paths), norm(paths) / beta3), by="apply",
             at={_sn: _sn * norm(paths)}, uses=("h_B5_norms",), cite=cite,
             show="||J_norm3|| ||sum_paths|| <= ||sum_paths||/beta3"),
        Step("B5.out", le(J_ni, norm(paths) / beta3), by="chain",
             uses=("B5.out_beta3", "B5.out_mul", "h_B5_J"), cite=cite,
             show="||dy_n/dv_i^(0)|| <= (1/beta3) ||sum_paths ...||"),
        Step("B5.path_sum", le(norm(paths), sp.Sum(norm(path), (k, i, top))), by="instance",
             at={_seq(k): path, _lo: i, _hi: top}, uses=("h_norm_sum",), cite=cite,
             show="||sum_{i<=k<=n} J1[n,k] J0[k,i]|| <= sum_k ||J1[n,k] J0[k,i]||"),
        Step("B5.path_mul", le(norm(path), norm(jac[1, top, k]) * norm(jac[0, k, i])),
             by="instance", at={_p: jac[1, top, k], _q: jac[0, k, i]}, uses=("h_norm_mul",),
             cite=cite),
        Step("B5.layer1", le(norm(jac[1, top, k]), a1), by="instance",
             at={layer: 1, j: top, i: k}, uses=("B5.layer",), cite=cite),
        Step("B5.layer0", le(norm(jac[0, k, i]), a0), by="instance", at={layer: 0, j: k},
             uses=("B5.layer",), cite=cite),
        Step("B5.path1", le(norm(jac[1, top, k]) * norm(jac[0, k, i]), a1 * norm(jac[0, k, i])),
             by="apply", at={_sn: _sn * norm(jac[0, k, i])}, uses=("B5.layer1",), cite=cite),
        Step("B5.path0", le(a1 * norm(jac[0, k, i]), a1 * a0), by="apply",
             at={_sn: a1 * _sn}, uses=("B5.layer0",), cite=cite),
        Step("B5.path", le(norm(path), a1 * a0), by="chain",
             uses=("B5.path_mul", "B5.path1", "B5.path0"), cite=cite,
             note="each path contributes the product of its layers' factors"),
        Step("B5.path_terms", le(sp.Sum(norm(path), (k, i, top)), sp.Sum(a1 * a0, (k, i, top))),
             by="sum", at={k: (i, top)}, uses=("B5.path",), cite=cite,
             show="sum_k ||J1[n,k] J0[k,i]|| <= sum_k (sigma/beta2 + 1)^2 Abar1[n,k] Abar0[k,i]"),
        Step("B5.all_paths", le(norm(paths), sp.Sum(a1 * a0, (k, i, top))), by="chain",
             uses=("B5.path_terms", "B5.path_sum"), cite=cite,
             show="||sum_paths|| <= sum_k (sigma/beta2 + 1)^2 Abar1[n,k] Abar0[k,i]"),
        Step("B5.all_paths3", le(norm(paths) / beta3, sp.Sum(a1 * a0, (k, i, top)) / beta3),
             by="apply", at={_s: _s / beta3}, uses=("B5.all_paths",), cite=cite,
             show="||sum_paths||/beta3 <= (1/beta3) sum_k (sigma/beta2 + 1)^2 Abar1 Abar0"),
        Step("B5.constant", eq(sp.Sum(a1 * a0, (k, i, top)) / beta3,
                               oversquashing_constant(2) * P_ni), uses=("h_B5_P",), cite=cite,
             show="(1/beta3) sum_paths prod_l (sigma/beta2 + 1) Abar = C P_ni, "
                  "C = (1/beta3) prod_l (sigma/beta2 + 1)"),
        Step("B5.bound", le(J_ni, oversquashing_constant(2) * P_ni), by="chain",
             uses=("B5.constant", "B5.all_paths3", "B5.out"), cite=cite,
             show="||dy_n/dv_i^(0)|| <= C (Abar^(1) Abar^(0))_{n,i}"),
    ]
    return hypotheses, steps


@functools.cache
def _index_identity() -> sp.Basic:
    """``sum_{i<=k<=n} A[n,k] B[k,i] = (AB)[n,i]`` for lower-triangular ``A``, ``B`` of size 3: the
    path sum over ``i <= k <= n`` is the matrix product's entry."""
    a, b = sp.Function("a"), sp.Function("b")
    kk = sp.Symbol("kk", integer=True)
    parts = []
    for size in (3,):
        A = sp.Matrix(size, size, lambda r, c: a(r, c) if c <= r else 0)
        Bm = sp.Matrix(size, size, lambda r, c: b(r, c) if c <= r else 0)
        product = A * Bm
        parts += [eq(sp.Sum(a(row, kk) * b(kk, col), (kk, col, row)), product[row, col])
                  for row in range(size) for col in range(row + 1)]
    return sp.And(*parts)


# Proposition B.8, Lemmas B.6 and B.7 -------------------------------------------------------


def _proposition_b8() -> tuple[list, list[Step]]:
    r = sp.Symbol("r", positive=True, integer=True)
    lam = sp.Function("Lambda", nonnegative=True)
    rest = sp.Function("R", nonnegative=True)  # sum_{j<r} Lambda(r, j)
    entry, kd = sp.symbols("lambda delta_ji", nonnegative=True)
    row = sp.Sum(lam(r, j), (j, 1, r))
    tilde_row = sp.Sum((lam(r, j) + sp.KroneckerDelta(r, j)) / 2, (j, 1, r))
    first = sp.IndexedBase("A", nonnegative=True)
    second = sp.IndexedBase("B", nonnegative=True)
    b_rows = sp.Sum(second[k, j], (j, 1, n))
    hypotheses = [
        ("h_B8_row", eq(row, 1)),
        ("h_B8_first", eq(lam(1, 1), 1)),
        ("h_B8_diag", eq(lam(r, r), 1 - rest(r))),
        ("h_B8_other", gt(rest(r), 0)),
        ("h_B7_A", eq(sp.Sum(first[r, k], (k, 1, n)), 1)),
        ("h_B7_B", eq(b_rows, 1)),
    ]
    steps = [
        Step("B8.factor", eq(oversquashing_constant(1, 1, 1, PAPER["b8.beta3_root"])
                             * abar(entry, 1, kd), (entry + kd) / 2), cite="Prop. B.8",
             show="(1/beta3^{1/L})(sigma/beta2 + 1)(Lambda/beta1 + I) = (Lambda + I)/2 at "
                  "beta1 = beta2 = sigma = 1, beta3^{1/L} = 4"),
        Step("B6.triangular", _triangular_eigenvalues(), role="algebra",
             show="det(lambda I - A) = prod_r (lambda - A_rr), A lower-triangular, n = 2..5",
             note="a triangular matrix's eigenvalues are its diagonal entries"),
        Step("B6.one", eq((row + 1) / 2, 1), by="apply", at={_s: (_s + 1) / 2},
             uses=("h_B8_row",), cite="Lemma B.6"),
        Step("B6.eigenvector", eq(tilde_row, 1), by="chain", uses=("B6.one",),
             cite="Lemma B.6", show="((Lambda + I)/2) 1 = 1, every row r, every n",
             note="row-stochastic: 1 is an eigenvalue, the all-ones vector its eigenvector"),
        Step("B6.first", eq((1 + lam(1, 1)) / 2, 1), by="apply", at={_s: (1 + _s) / 2},
             uses=("h_B8_first",), cite="Lemma B.6",
             note="the first diagonal entry of (Lambda + I)/2 is 1; its first row is e_1"),
        Step("B6.rest", lt(1 - rest(r), 1), by="apply", at={_s: 1 - _s}, uses=("h_B8_other",),
             cite="Lemma B.6"),
        Step("B6.diagonal", lt(lam(r, r), 1), by="chain", uses=("h_B8_diag", "B6.rest"),
             cite="Lemma B.6", show="Lambda_rr < 1 for r >= 2",
             note="rows after the first have >= 2 nonzeros"),
        Step("B6.simple", lt((1 + lam(r, r)) / 2, 1), by="apply", at={_s: (1 + _s) / 2},
             uses=("B6.diagonal",), cite="Lemma B.6 / Prop. B.8",
             show="(1 + Lambda_rr)/2 < 1 for r >= 2: the eigenvalue 1 is simple"),
        Step("B6.nonnegative", ge((1 + lam(r, r)) / 2, sp.Rational(1, 2)), cite="Prop. B.8",
             note="every other eigenvalue lies in [1/2, 1), so its powers vanish"),
        Step("B7.assoc", _associativity(), role="algebra",
             show="sum_c sum_k A_rk B_kc = sum_k A_rk (sum_c B_kc), n = 2..4",
             note="(AB) 1 = A (B 1): the row sum of AB is A applied to B's row sums"),
        Step("B7.term", eq(first[r, k] * b_rows, first[r, k]), by="apply",
             at={_sn: first[r, k] * _sn}, uses=("h_B7_B",), cite="Lemma B.7"),
        Step("B7.terms", eq(sp.Sum(first[r, k] * b_rows, (k, 1, n)),
                            sp.Sum(first[r, k], (k, 1, n))), by="sum", at={k: (1, n)},
             uses=("B7.term",), cite="Lemma B.7"),
        Step("B7.rows", eq(sp.Sum(first[r, k] * b_rows, (k, 1, n)), 1), by="chain",
             uses=("h_B7_A", "B7.terms"), cite="Lemma B.7",
             show="(A B) 1 = A (B 1) = A 1 = 1, every n",
             note="a product of row-stochastic matrices is row-stochastic"),
        Step("B7.entries", ge(sp.Sum(first[r, k] * second[k, j], (k, 1, n)), 0),
             cite="Lemma B.7", show="(A B)_rj >= 0, every n"),
        Step("B8.limit", eq(sp.Limit(_uniform_distance(), _depth, sp.oo), 0), by="limit",
             cite="Prop. B.8",
             show="lim_{L -> oo} sum_{n=2..5} ||((Lambda + I)/2)^L - 1 e_1^T||_F^2 = 0, "
                  "uniform causal Lambda",
             note="the bound becomes sensitive to the first token only"),
    ]
    return hypotheses, steps


_depth = sp.Symbol("L", positive=True)


@functools.cache
def _triangular_eigenvalues() -> sp.Basic:
    lam = sp.Symbol("lambda")
    parts = []
    for size in range(2, 6):
        A = sp.Matrix(size, size, lambda r, c: sp.Symbol(f"a_{r}{c}") if c <= r else 0)
        parts.append(eq(sp.Determinant(sp.ImmutableMatrix(lam * sp.eye(size) - A)),
                        sp.Mul(*[lam - A[r, r] for r in range(size)])))
    return sp.And(*parts)


@functools.cache
def _associativity() -> sp.Basic:
    r = sp.Symbol("r", positive=True, integer=True)
    first, second = sp.IndexedBase("A"), sp.IndexedBase("B")
    return sp.And(*[eq(sp.Sum(first[r, k] * second[k, j], (k, 1, size), (j, 1, size)),
                       sp.Sum(first[r, k] * sp.Sum(second[k, j], (j, 1, size)), (k, 1, size)))
                    for size in range(2, 5)])


@functools.cache
def _uniform_distance() -> sp.Expr:
    total = 0
    for size in range(2, 6):
        lam = sp.Matrix(size, size, lambda r, c: sp.Rational(1, r + 1) if c <= r else 0)
        vectors, diagonal = ((lam + sp.eye(size)) / 2).diagonalize()
        power = vectors * sp.diag(*[diagonal[r, r] ** _depth for r in range(size)]) \
            * vectors.inv()
        target = sp.Matrix(size, size, lambda r, c: 1 if c == 0 else 0)
        total += sum((power - target).applyfunc(lambda e: e**2))
    return sp.powsimp(sp.expand(total), force=True)


# Proposition 6.1/B.9 and Corollary B.10 ----------------------------------------------------


def _counting() -> tuple[list, list[Step]]:
    n0, n1 = sp.symbols("n_0 n_1", positive=True, integer=True)
    s00, s01, s10, s11 = sp.symbols("s_00 s_01 s_10 s_11", real=True)
    v0, v1 = sp.symbols("v_zero v_one")

    def layer(zeros, ones):
        """Layer-1 values of a zero and a one among ``zeros`` zeros and ``ones`` ones: no
        positional encoding, no causal mask, psi and norms ignored."""
        zero = (zeros * sp.exp(s00) * v0 + ones * sp.exp(s01) * v1) \
            / (zeros * sp.exp(s00) + ones * sp.exp(s01)) + v0
        one = (zeros * sp.exp(s10) * v0 + ones * sp.exp(s11) * v1) \
            / (zeros * sp.exp(s10) + ones * sp.exp(s11)) + v1
        return zero, one

    def ratio_form(zeros, ones):
        zero = (sp.exp(s00) / (sp.exp(s00) + (ones / zeros) * sp.exp(s01)) * v0
                + sp.exp(s01) / ((zeros / ones) * sp.exp(s00) + sp.exp(s01)) * v1 + v0)
        one = (sp.exp(s10) / (sp.exp(s10) + (ones / zeros) * sp.exp(s11)) * v0
               + sp.exp(s11) / ((zeros / ones) * sp.exp(s10) + sp.exp(s11)) * v1 + v1)
        return zero, one

    general = sp.And(*[eq(a, b) for a, b in zip(layer(n0, n1), ratio_form(n0, n1),
                                                  strict=True)])
    K_r = sp.Symbol("K_r", positive=True)
    f_short, f_long = sp.symbols("f_short f_long")
    hypotheses = [
        ("h_B10_readout", le(norm(f_short - f_long), K_r * Delta_n)),
        ("h_B10_long", lt(K_r * 2 * V * sp.exp(2 * B), n + 1)),
    ]
    steps = [
        Step("B9.ratio", general, cite="Prop. 6.1/B.9",
             show="z_zero, z_one = e^{s}/(e^{s} + (n1/n0) e^{s'}) v_zero + ... : functions of "
                  "n1/n0 only",
             note="for any token values and scores, so at every layer (all zeros stay equal)"),
        Step("B9.same", sp.And(*[eq(a, b) for a, b in zip(layer(1, 1), layer(2, 2),
                                                            strict=True)]),
             cite="Prop. 6.1/B.9", show='"10" and "1100" get identical layer-1 values'),
        Step("B10.lipschitz", le(K_r * Delta_n, K_r * one_layer_bound(n, B, V)), by="apply",
             at={_sn: K_r * _sn}, uses=("B3.gap",), cite="Cor. B.10"),
        Step("B10.small", lt(K_r * one_layer_bound(n, B, V), 1), by="apply",
             at={_s: _s / (n + 1)}, uses=("h_B10_long",), cite="Cor. B.10"),
        Step("B10.count", lt(norm(f_short - f_long), 1), by="chain",
             uses=("h_B10_readout", "B10.lipschitz", "B10.small"), cite="Cor. B.10",
             show="|f(v_n) - f(v*_{n+1})| < 1",
             note="the counts of [v v_a] and [v v_a v_a] differ by 1: one readout is wrong"),
    ]
    return hypotheses, steps


# The threshold model (the notes', not the paper's) -----------------------------------------


def _threshold() -> tuple[list, list[Step]]:
    K, X = sp.symbols("K x_mag", positive=True)
    u = unit_roundoff_bf16()

    def length(order):
        return (K / (u * X)) ** (1 / order)

    hypotheses = [("h_P_K", eq(K, 1)), ("h_P_x", eq(X, 1))]
    steps = [
        Step("P.decreasing", lt(sp.diff(K / n ** PAPER["gap.order"], n), 0),
             cite="threshold model", note="the gap shrinks with n: below u|x| from n* on"),
        Step("P.varied", eq(length(PAPER["gap.order_varied"]), 256),
             uses=("h_P_K", "h_P_x"), cite="threshold model", budget_s=20,
             show="n* = K/(u |x|) = 256 for a K/n gap, K = |x| = 1, u = 2^-8"),
        Step("P.repeated", eq(length(PAPER["gap.order"]), 16),
             uses=("h_P_K", "h_P_x"), cite="threshold model", budget_s=20,
             show="n* = sqrt(K/(u |x|)) = 16 for a K/n^2 gap"),
    ]
    return hypotheses, steps


# As printed ---------------------------------------------------------------------------------


def _as_printed() -> list[Step]:
    kd = sp.Symbol("delta_ji", nonnegative=True)
    box = {alpha: (0, 1), beta1: (0.5, 2), beta2: (0.5, 2), kd: (0, 1), sigma: (0, 2)}
    v_n, rest = sp.symbols("v_n rest", real=True)
    z_wit = alpha * v_n + v_n + rest  # z_n, beta1 = 1
    y_wit = sigma * z_wit + z_wit     # y_n = v_n^(1) = psi(z) + z, psi = sigma x, beta = 1
    psi, v_l, z_l = sp.symbols("psi z_l v_l")
    return [
        Step("T5.1'", eq(alpha / beta2 + kd, abar(alpha, beta1, kd)), cite="Thm 5.1, main text",
             box=box, erratum="inconsistent",
             show="alpha/beta2 + delta_ji = alpha/beta1 + delta_ji",
             note="the main text normalises by beta2, the proof by beta1; the main text's "
                  "'some constant C' can absorb the ratio"),
        Step("B5'", eq((alpha + kd) / beta1, abar(alpha, beta1, kd)), cite="Thm B.5 statement",
             box={**box, kd: (1, 1)}, erratum="inconsistent",
             show="(alpha + delta_ji)/beta = alpha/beta1 + delta_ji",
             note="B.5 divides delta_ji by beta too; a constant can absorb it"),
        Step("B5.sigma'", le(sp.diff(y_wit, v_n), sigma * (alpha + kd).subs(kd, 1)),
             cite="Thm B.5 statement", box=box, erratum="refuted",
             show="dy_n/dv_n = (sigma + 1)(alpha + 1) <= sigma^L (alpha + delta)/beta, L = 1, "
                  "psi(x) = sigma x, beta = 1",
             note="a sigma-Lipschitz psi and norms equal to their constants satisfy the "
                  "hypotheses; the residual path keeps the Jacobian above sigma^L"),
        Step("B4'", eq(2 * _half * (sp.E - 1) / ((2 * _half * sp.E + PAPER["b4.printed_shift"])
                                                 / 2), alternating_tv_closed()),
             cite="Prop. B.4 proof", erratum="refuted",
             show="n(e - 1)/((ne + 1)/2) = 2(e - 1)/(e + 1), n = 2h",
             note="the printed intermediate denominator (ne + 1)/2 (Z = n(e + 1)/2 by (B4.Z)); "
                  "the final value 2(e - 1)/(e + 1) is right"),
        Step("B3'", eq(psi + v_l, psi + z_l), cite="Thm B.3 proof", erratum="inconsistent",
             show="psi(norm_2(z)) + v^(l) = psi(norm_2(z)) + z^(l)",
             note="the proof's layer update adds v^(l); Section 2 defines it with z^(l)"),
    ]


@PAPER.cache
def derivation() -> Derivation:
    """Check Lemmas B.1-B.2, Theorem B.3 at one layer (and the gap's order for two input
    families), Prop. B.4, Theorem 5.1/B.5 at depth two, Lemmas B.6-B.7, Prop. B.8, Prop. 6.1/B.9,
    Cor. B.10 and the threshold model step by step; record the printed inconsistencies."""
    hypotheses, steps = _norm_facts(), []
    for section in (_lemma_b1, _lemma_b2, _theorem_b3, _families, _proposition_b4,
                    _theorem_b5, _proposition_b8, _counting, _threshold):
        more_hypotheses, more_steps = section()
        hypotheses += more_hypotheses
        steps += more_steps
    goal = sp.And(le(Delta_n, one_layer_bound(n, B, V)),
                  le(J_ni, oversquashing_constant(2) * P_ni))
    steps.append(Step("goal", goal, by="chain", uses=("B3.gap", "B5.bound"),
                      cite="Thm B.3 (one layer) and Thm 5.1/B.5 (L = 2)"))
    return Derivation.check(
        "representational-collapse",
        source="Barbero et al. 2024, Lemmas B.1-B.2, B.6-B.7, Thm B.3, Prop. B.4, Thm 5.1/B.5, "
               "Prop. B.8, Prop. 6.1/B.9, Cor. B.10",
        hypotheses=hypotheses,
        goal=goal,
        steps=steps,
        bound=b1_bound(n, B),
        as_printed=_as_printed(),
        symbols=SYMBOLS,
    )
