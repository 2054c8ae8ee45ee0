"""Derivation for Velickovic, Barbero, Perivolaropoulos, Osindero, Pascanu, "Perplexity Cannot
Always Tell Right from Wrong" (arXiv:2601.22950, 2026): the iso-perplexity analysis of Sec. 4
(Eqs. 10-11 and the selection rule), Remarks 3.4-3.5, Lemma 3.1 (printed and corrected),
Prop. 3.2, Cor. 3.3, Prop. 3.6 and Cor. 3.7.

Every number the paper states is a :data:`PAPER` quantity, read by reference here and (as plain
values) by the numeric checker, so a wrong number breaks a step or a row.

Symbols (the paper's letters; ``pplx`` is log-perplexity, the mean negative log-likelihood):

- ``a``: accuracy; ``gamma``: probability on the wrong class (confidence ``1 - gamma``, Eq. 10);
  ``gamma_p``: the shifted ``gamma' = gamma - Delta``; ``a_p``: the critical accuracy ``a'``
  (Eq. 11); ``r``: an accuracy step away from ``a'``; ``K``, ``M``: right answers out of ``M``.
- ``theta``: sampling temperature; ``rho``: the probability ``1 - gamma`` (Remark 3.4).
- Remark 3.5, Prop. 3.6: ``T[k]``, ``U[k]``: the probability of ``alpha_k`` at copy step ``k``
  after the prompt ``alpha_N|`` and ``beta_N|``; ``P``, ``Q``: the probability of the whole copy
  ``alpha_N``; ``eps``: the continuity tolerance of Prop. 3.6.
- Lemma 3.1 (corrected route of the notes, 2.3c): ``N`` length, ``margin`` the margin of Eq. 5,
  ``eta`` the continuity tolerance, ``xi`` the target gap, ``ell = -log(floor)`` for the
  probability floor, ``G`` the gap ``|pplx(alpha_N) - pplx(beta_N)|``; at a copy step ``k != j``
  ``q`` (``Q[k]``) is the smaller of the two probabilities of ``alpha_k`` and ``q + d``
  (``Q[k] + D[k]``) the larger; at ``k = j``, ``p_j`` and ``q_j`` are the probabilities of
  ``alpha_j`` and ``beta_j``.
- Cor. 3.7: ``grad`` the gradient norm of ``L(beta_N)``, ``Kj`` the Jacobian bound (App. B),
  ``e`` the largest off-``j`` error ``1 - T(x_<i)(x_i)``, ``u`` the probability of ``beta_j``.

Reconstructions (not in the paper) are marked in the steps' notes: the corrected Lemma 3.1
bound (notes 2.3c) and its constants, the strict margin fix of Prop. 3.2 (notes 2.3d), the
``i = j`` term of Cor. 3.7 (notes 2.3e); the Jacobian bound (notes 2.3f) is a hypothesis here,
as the paper asserts it without proof. Prop. 3.6's three regimes are informal and not checked.
"""

from __future__ import annotations

import itertools

import mpmath
import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, gt, le, lt

_LOOSER = "a larger constant only loosens a true upper bound; the statement stays true"


__all__ = ["D", "Delta", "E", "G", "K_jac", "K_right", "M_total", "N", "N_len", "PAPER",
    "P_alpha", "P_beta", "P_copy", "Q", "Q_copy", "SYMBOLS", "T", "U", "a", "a_new", "a_p",
    "corrected_lemma_bound", "critical_accuracy_expr", "critical_accuracy_of", "d", "derivation",
    "e_off", "ell", "eps", "eta", "floor", "gamma", "gamma_p", "grad", "k", "log_perplexity",
    "margin", "p_j", "printed_lemma_bound", "printed_oversmoothing", "q", "q_j", "r", "rho", "s",
    "t", "temperature_wrong", "theta", "u", "x", "xi", "y"]


PAPER = Quantities("iso-perplexity", [
    Quantity("eq10.right_sign", -1, "sign", "Eq. 10",
             "the sign of a log(1 - gamma): a right answer costs -log(1 - gamma)"),
    Quantity("eq10.wrong_sign", -1, "sign", "Eq. 10",
             "the sign of (1 - a) log(gamma): a wrong answer costs -log(gamma)"),
    Quantity("eq10.confidence", 1, "constant", "Eq. 10",
             "the 1 of 1 - gamma: the predicted class gets 1 - gamma"),
    Quantity("eq10.error_share", 1, "constant", "Eq. 10", "the 1 of 1 - a: the wrong share"),
    Quantity("eq11.top_sign", 1, "sign", "Eq. 11", "the sign of log(gamma - Delta) on top"),
    Quantity("eq11.bottom_sign", -1, "sign", "Eq. 11",
             "the sign of log(1 - gamma + Delta) in the denominator"),
    Quantity("eq11.confidence", 1, "constant", "Eq. 11", "the 1 of 1 - gamma + Delta"),
    Quantity("sec41.limit", 1, "constant", "Sec. 4.1",
             "a' -> 1 as Delta -> gamma: a perfectly confident model must be perfectly accurate"),
    Quantity("sec41.free_lunch_gamma", sp.Rational(2, 5), "constant", "Sec. 4.1",
             "gamma = 0.4, where the paper shows free-lunch zones",
             exempt={"x0.99": "free-lunch zones (a > 1 - gamma) exist at every gamma in "
                              "(0, 1/2); at gamma = 0.396 the zone a in [0.61, 0.99] remains",
                     "x1.01": "free-lunch zones (a > 1 - gamma) exist at every gamma in "
                              "(0, 1/2); at gamma = 0.404 the zone a in [0.61, 0.99] remains"}),
    Quantity("gamma.max", sp.Rational(1, 2), "constant", "Eq. 6, Sec. 4",
             "gamma < 1/2: the predicted class is the likelier one"),
    Quantity("eq5.half", sp.Rational(1, 2), "constant", "Eq. 5",
             "the 1/2 of the margin: T(alpha_1..n | alpha_<k)(alpha_k) > 1/2 + eps"),
    Quantity("r34.exponent", -1, "exponent", "Remark 3.4, Eq. 7",
             "theta**-1 = 1/theta: the exponent of temperature sampling"),
    Quantity("r35.coefficient", 1, "constant", "Remark 3.5", "the bound N gamma"),
    Quantity("p36.coefficient", 1, "constant", "Prop. 3.6, Eq. 8", "the bound N (gamma + eps)"),
    Quantity("a1.sign", -1, "sign", "App. A, step 5",
             "the leading minus of the printed bound -(1/n_c)(log(1/2 + eps) - log floor "
             "+ (n_c - 1) eps)"),
    Quantity("a1.offset", 1, "index", "App. A, step 5", "the 1 of n_c - 1"),
    Quantity("eq17.floor_sign", 1, "sign", "Eq. 17", "the sign of log(floor) in the numerator"),
    Quantity("eq17.half_sign", -1, "sign", "Eq. 17",
             "the sign of log(1/2 + eps) in the numerator"),
    Quantity("lemma.floor_coefficient", 1, "constant", "App. A (corrected, notes 2.3c)",
             "the k = j term differs by at most 1 * (-log floor)"),
    Quantity("lemma.two", 2, "constant", "App. A (corrected, notes 2.3c)",
             "the 2 of 2 eta (N - 1)/N: |log p - log q| <= eta/min(p, q) < 2 eta"),
    Quantity("lemma.length", 2, "constant", "App. A (corrected, notes 2.3c)",
             "the 2 of the length -2 log(floor)/xi"),
    Quantity("lemma.eta_share", sp.Rational(1, 4), "constant", "App. A (corrected, notes 2.3c)",
             "eta = min(eps, xi/4)"),
    Quantity("c37.term_bound", sp.sqrt(2), "constant", "Cor. 3.7 (notes 2.3e)",
             "||p_j - y_j|| <= sqrt(2) for the flipped position",
             exempt={"x1.01": _LOOSER}),
])

a, r = sp.symbols("a r", positive=True)
gamma, gamma_p, a_p = sp.symbols("gamma gamma_p a_p", positive=True)
Delta = sp.Symbol("Delta", positive=True)
s, t = sp.symbols("s t", nonnegative=True)
K_right, M_total = sp.symbols("K M", positive=True)
theta, rho = sp.symbols("theta rho", positive=True)
x = sp.Symbol("x", positive=True)  # the variable of a monotone map
y = sp.Symbol("y", real=True)  # likewise, where the argument may be negative
k = sp.Symbol("k", positive=True, integer=True)
N = sp.Symbol("N", positive=True, integer=True)
T, U = sp.IndexedBase("T", positive=True), sp.IndexedBase("U", positive=True)
P_copy, Q_copy, eps = sp.symbols("P Q eps", positive=True)
eta, xi, margin, ell, G = sp.symbols("eta xi margin ell G", positive=True)
q, d = sp.Symbol("q", positive=True), sp.Symbol("d", nonnegative=True)
Q, D = sp.IndexedBase("Q", positive=True), sp.IndexedBase("D", nonnegative=True)
p_j, q_j = sp.symbols("p_j q_j", positive=True)
P_alpha, P_beta = sp.symbols("P_alpha P_beta", positive=True)
grad, K_jac, e_off, u = sp.symbols("grad K_j e u", nonnegative=True)
E = sp.IndexedBase("E", nonnegative=True)
floor = sp.Symbol("floor", positive=True)

#: What each letter of the derivation means: the legend printed with it. A symbol as a key is
#: matched with its assumptions (the same name plays two roles in places), a string by name.
SYMBOLS = {
    "a": "the accuracy: the share of right answers",
    "gamma": "the probability on the wrong class; the confidence is 1 - gamma (Eq. 10)",
    "Delta": "the confidence shift, gamma' = gamma - Delta",
    "gamma_p": "gamma' = gamma - Delta: the shifted gamma",
    "a_p": "a': the critical accuracy at gamma' (Eq. 11)",
    "r": "an accuracy step away from a'",
    "K": "the number of right answers out of M",
    "M": "the number of answers",
    "s": "the relative confidence shift, gamma' = gamma (1 - s)",
    "t": "a nonnegative number (log(1 + t) <= t)",
    "theta": "the sampling temperature (Remark 3.4)",
    "rho": "1 - gamma: the probability of the right class (Remark 3.4)",
    "k": "a copy step; the index of a sum over steps",
    "N": "the length of the sequence copied",
    "T": "T[k]: the probability of alpha_k at copy step k after the prompt alpha_N|",
    "U": "U[k]: the probability of alpha_k at copy step k after the prompt beta_N|",
    P_copy: "the probability of the whole copy alpha_N after alpha_N| (Remark 3.5)",
    Q_copy: "the probability of the whole copy alpha_N after beta_N| (Prop. 3.6)",
    "eps": "the continuity tolerance of Prop. 3.6",
    "margin": "the margin of Eq. 5",
    "eta": "the continuity tolerance (Lemma 3.1)",
    "xi": "the target log-perplexity gap (Lemma 3.1)",
    "ell": "-log(floor): the probability floor's negative log",
    "floor": "the least probability the model gives any token",
    "G": "the gap |log-perplexity(alpha_N) - log-perplexity(beta_N)| (Lemma 3.1)",
    "q": "at a copy step k != j, the smaller of the two probabilities of alpha_k",
    "d": "at a copy step k != j, the larger probability of alpha_k minus the smaller, q",
    "Q": "Q[k]: at copy step k != j, the smaller of the two probabilities of alpha_k",
    "D": "D[k]: at copy step k != j, the larger probability of alpha_k minus Q[k]",
    "p_j": "the probability of alpha_j at the flipped position j",
    "q_j": "the probability of beta_j at the flipped position j",
    "P_alpha": "the log-perplexity of alpha_N",
    "P_beta": "the log-perplexity of beta_N",
    "grad": "the gradient norm of the loss L(beta_N) (Cor. 3.7)",
    "K_j": "the bound on the Jacobian's norm, sup ||J|| <= K_j (App. B)",
    "e": "the largest error 1 - T(x_<i)(x_i) off the position j (Cor. 3.7)",
    "u": "the probability of beta_j (Cor. 3.7)",
    "E": "E[k]: the error ||p_k - y_k|| at step k (Eq. 21)",
    "x": "the variable of a monotone map",
    "y": "the variable of a monotone map",
}
# backwards-compatible names
a_new, N_len = a_p, N


def log_perplexity(accuracy, wrong):
    """Eq. 10 with the paper's signs and constants: ``-a log(1 - gamma) - (1 - a) log(gamma)``."""
    return (PAPER["eq10.right_sign"] * accuracy * sp.log(PAPER["eq10.confidence"] - wrong)
            + PAPER["eq10.wrong_sign"] * (PAPER["eq10.error_share"] - accuracy)
            * sp.log(wrong))


def critical_accuracy_of(accuracy, wrong, shifted):
    """Eq. 11 with ``gamma - Delta = shifted``: ``(pplx_{a,gamma} + log(gamma - Delta)) /
    (log(gamma - Delta) - log(1 - gamma + Delta))``."""
    return ((log_perplexity(accuracy, wrong) + PAPER["eq11.top_sign"] * sp.log(shifted))
            / (sp.log(shifted)
               + PAPER["eq11.bottom_sign"] * sp.log(PAPER["eq11.confidence"] - shifted)))


def critical_accuracy_expr(accuracy=a, wrong=gamma, shift=s):
    """Eq. 11 with ``Delta = s * gamma``."""
    return critical_accuracy_of(accuracy, wrong, wrong * (1 - shift))


def temperature_wrong(wrong=gamma, confidence=rho, temperature=theta):
    """Eq. 7's ``gamma'``: ``gamma^(1/theta) / ((1 - gamma)^(1/theta) + gamma^(1/theta))``."""
    power = temperature ** PAPER["r34.exponent"]
    return wrong**power / (confidence**power + wrong**power)


def printed_lemma_bound(n=N, eps_margin=margin, eps_floor=floor):
    """App. A, step 5, as printed: ``-(1/n)(log(1/2 + eps) - log(floor) + (n - 1) eps)``."""
    inner = (sp.log(PAPER["eq5.half"] + eps_margin) - sp.log(eps_floor)
             + (n - PAPER["a1.offset"]) * eps_margin)
    return PAPER["a1.sign"] * inner / n


def printed_oversmoothing(eps_margin=margin, eps_floor=floor, target=xi):
    """Eq. 17's "oversmoothing" size as printed: ``(eps - log(1/2 + eps) + log floor)/(xi +
    eps)``."""
    return ((eps_margin + PAPER["eq17.half_sign"] * sp.log(PAPER["eq5.half"] + eps_margin)
             + PAPER["eq17.floor_sign"] * sp.log(eps_floor)) / (target + eps_margin))


def corrected_lemma_bound(n=N, tolerance=eta, floor_nll=ell):
    """The corrected bound (notes 2.3c): ``|pplx(alpha_N) - pplx(beta_N)| <= -log(floor)/N +
    2 eta (N - 1)/N``, with ``floor_nll = -log(floor)``."""
    return (PAPER["lemma.floor_coefficient"] * floor_nll / n
            + PAPER["lemma.two"] * tolerance * (n - 1) / n)


def _dataset_nll(right, total, wrong):
    """Mean NLL of ``total`` answers of which ``right`` are right, in Sec. 4's model: the true
    class gets ``1 - gamma`` when the model is right and ``gamma`` when it is wrong."""
    return (right * -sp.log(1 - wrong) + (total - right) * -sp.log(wrong)) / total


def _selection_steps() -> list[Step]:
    half = PAPER["gamma.max"]
    slope = sp.diff(log_perplexity(a, gamma_p), a)  # d pplx / d a at gamma', not typed in
    at_critical = log_perplexity(a_p, gamma_p)
    old = log_perplexity(a, gamma)
    shift_slope = sp.diff(critical_accuracy_of(a, gamma, gamma - Delta), Delta).subs(Delta, 0)
    return [
        Step("10", eq(log_perplexity(K_right / M_total, gamma),
                      _dataset_nll(K_right, M_total, gamma)), cite="Eq. 10",
             show="pplx(K/M, gamma) = the mean NLL of M answers, K of them right",
             note="Eq. 10 is the mean NLL of the homogeneous-confidence model at accuracy K/M"),
        Step("11", eq(at_critical, old), uses=("eq11",), cite="Eq. 11",
             show="pplx(a', gamma') = pplx(a, gamma), a' from Eq. 11",
             note="Eq. 11 solves the iso-perplexity condition"),
        Step("11a", eq(critical_accuracy_of(a, gamma, gamma), a), cite="Sec. 4.1",
             show="a' = a at Delta = 0", note="no shift, no change"),
        Step("11b", eq(sp.Limit(critical_accuracy_expr(), s, 1, "-"), PAPER["sec41.limit"]),
             by="limit", cite="Sec. 4.1", show="lim_{Delta -> gamma} a' = 1",
             note="a perfectly confident model must be perfectly accurate"),
        Step("s1", lt(1 - half, 1 - gamma_p), by="apply", uses=("h_gamma",), at={y: 1 - y},
             role="algebra"),
        Step("s2", lt(gamma_p, 1 - gamma_p), by="chain", uses=("h_gamma", "s1"),
             cite="Sec. 4", note="gamma' < 1/2 = 1 - 1/2 < 1 - gamma': the predicted class is "
                                 "the likelier"),
        Step("s3", lt(sp.log(gamma_p), sp.log(1 - gamma_p)), by="apply", uses=("s2",),
             at={x: sp.log(x)}, role="algebra"),
        Step("s4", lt(slope, 0), by="apply", uses=("s3",), at={y: y - sp.log(1 - gamma_p)},
             cite="Sec. 4", show="d pplx(a, gamma')/da < 0",
             note="d pplx/d a = log(gamma'/(1 - gamma')) < 0: accuracy lowers perplexity"),
        Step("s7", lt(at_critical + r * slope, at_critical), by="apply", uses=("s4",),
             at={y: at_critical + r * y}, cite="selection rule",
             show="pplx(a', gamma') + r d pplx/d a < pplx(a', gamma')",
             note="= pplx(a' + r, gamma'), as pplx is linear in a"),
        Step("s8", gt(at_critical - r * slope, at_critical), by="apply", uses=("s4",),
             at={y: at_critical - r * y}, cite="selection rule",
             show="pplx(a', gamma') - r d pplx/d a > pplx(a', gamma')",
             note="= pplx(a' - r, gamma'), as pplx is linear in a"),
        Step("lunch", lt(shift_slope.subs(gamma, PAPER["sec41.free_lunch_gamma"]), 0),
             by="interval", box={a: (0.61, 0.99)}, cite="Sec. 4.1",
             show="da'/dDelta < 0 at Delta = 0, gamma = 0.4, for a in [0.61, 0.99]",
             note="free lunch: a' < a for small shifts where a > 1 - gamma (slope of Eq. 11)"),
        Step("lunch'", eq(shift_slope, (a + gamma - 1)
                          / (gamma * (1 - gamma) * (sp.log(gamma) - sp.log(1 - gamma)))),
             cite="Sec. 4.1 (derived)", show="da'/dDelta at 0 = (a + gamma - 1)/"
                                             "(gamma (1 - gamma) log(gamma/(1 - gamma)))",
             note="the curve starts downwards iff a > 1 - gamma (under-confident model)"),
        Step("calib", eq(sp.diff(log_perplexity(a, gamma), gamma),
                         (gamma - (1 - a)) / (gamma * (1 - gamma))), cite="Sec. 4.2 (derived)",
             show="d pplx/d gamma = (gamma - (1 - a))/(gamma (1 - gamma))",
             note="zero only at gamma = 1 - a (calibration); on an iso-curve the least accepted "
                  "a' is where gamma' = 1 - a', i.e. H_b(a') = pplx_{a,gamma}"),
        Step("calib'", gt(sp.diff(log_perplexity(a, gamma), gamma, 2), 0), by="interval",
             box={a: (0, 1), gamma: (0.001, 0.5)}, cite="Sec. 4.2 (derived)",
             show="d^2 pplx/d gamma^2 > 0", note="convex in gamma: a minimum"),
    ]


def _temperature_and_boole_steps() -> list[Step]:
    softmax = (sp.exp(sp.log(gamma) / theta)
               / (sp.exp(sp.log(rho) / theta) + sp.exp(sp.log(gamma) / theta)))
    boole_bound = PAPER["r35.coefficient"] * N * (1 - rho)
    sampling_bound = PAPER["p36.coefficient"] * N * (1 - rho + eps)
    return [
        Step("7", eq(temperature_wrong(), softmax), cite="Remark 3.4, Eq. 7",
             show="gamma^(1/theta)/((1 - gamma)^(1/theta) + gamma^(1/theta)) = "
                  "softmax(log p / theta)[wrong]",
             note="temperature theta maps gamma to gamma' (rho = 1 - gamma): folded into gamma "
                  "w.l.o.g."),
        Step("b1", le(1 - T[k], 1 - rho), by="apply", uses=("eq6",), at={x: 1 - x},
             cite="Remark 3.5", note="Eq. 6 leaves at most gamma = 1 - rho on the other bit"),
        Step("b2", le(sp.summation(1 - T[k], (k, 1, N)), boole_bound), by="sum", uses=("b1",),
             at={k: (1, N)}, cite="Remark 3.5"),
        Step("b3", le(1 - P_copy, boole_bound), by="chain", uses=("boole", "b2"),
             cite="Remark 3.5", note="1 - P(alpha_N | alpha_N|) <= N gamma"),
        Step("c1", le(1 - U[k], 1 - T[k] + eps), by="apply", uses=("continuity36",),
             at={y: y + 1 - T[k]}, role="algebra"),
        Step("c2", le(1 - T[k] + eps, 1 - rho + eps), by="apply", uses=("b1",),
             at={y: y + eps}, role="algebra"),
        Step("c3", le(1 - U[k], 1 - rho + eps), by="chain", uses=("c1", "c2"), cite="Prop. 3.6",
             note="after the prompt beta_N|, each other bit has at most gamma + eps"),
        Step("c4", le(sp.summation(1 - U[k], (k, 1, N)), sampling_bound), by="sum",
             uses=("c3",), at={k: (1, N)}, cite="Prop. 3.6"),
        Step("c5", le(1 - Q_copy, sampling_bound), by="chain", uses=("boole_beta", "c4"),
             cite="Prop. 3.6, Eq. 8", note="1 - P(alpha_N | beta_N|) <= N (gamma + eps): "
                                          "sampling answers beta_N with alpha_N"),
    ]


def _lemma_steps() -> list[Step]:
    half = PAPER["eq5.half"]
    two = PAPER["lemma.two"]
    bound = corrected_lemma_bound()
    k_j = sp.log(p_j) - sp.log(q_j)
    rest = sp.summation(sp.log(Q[k] + D[k]) - sp.log(Q[k]), (k, 1, N - 1))
    share, length = PAPER["lemma.eta_share"], PAPER["lemma.length"]
    coefficient = PAPER["lemma.floor_coefficient"]
    eta_part = two * share * xi * (N - 1) / N
    return [
        # Eq. 13: continuity keeps beta's copy terms above 1/2
        Step("e1", gt(q, half + margin - d), by="apply", uses=("eq5",), at={y: y - d},
             role="algebra"),
        Step("e2", le(half + margin - eta, half + margin - d), by="apply",
             uses=("continuity",), at={y: half + margin - y}, role="algebra"),
        Step("e3", le(half, half + margin - eta), by="apply", uses=("h_eta",),
             at={y: half + margin - y}, role="algebra"),
        Step("13", gt(q, half), by="chain", uses=("e1", "e2", "e3"), cite="App. A, Eq. 13",
             note="T(beta | alpha_<k)(alpha_k) > 1/2: greedy decoding copies beta as alpha"),
        Step("17", eq(printed_lemma_bound(printed_oversmoothing()), xi), cite="Eq. 17",
             show="the App. A bound at Eq. 17's size n = xi",
             note="Eq. 17's oversmoothing size is where the printed bound equals xi: the two "
                  "printed forms agree"),
        # k != j: |log p - log q| <= eta / min(p, q) < 2 eta
        Step("l1", le(sp.log(1 + t), t), by="monotone", box={t: (0, sp.oo)}, role="algebra",
             note="log x <= x - 1"),
        Step("l3", le(sp.log(1 + d / q), d / q), by="instance", uses=("l1",), at={t: d / q},
             role="algebra"),
        Step("l4", le(d / q, eta / q), by="apply", uses=("continuity",), at={x: x / q},
             role="algebra"),
        Step("l5", lt(eta / q, eta / half), by="apply", uses=("13",), at={x: eta / x},
             cite="App. A (corrected)", note="q > 1/2"),
        Step("l6", lt(sp.log(q + d) - sp.log(q), two * eta), by="chain",
             uses=("l3", "l4", "l5"), cite="App. A (corrected, notes 2.3c)",
             note="k != j: |log p - log q| <= eta/min(p, q) < 2 eta"),
        Step("l7", lt(sp.log(Q[k] + D[k]) - sp.log(Q[k]), two * eta), by="instance",
             uses=("l6",), at={q: Q[k], d: D[k]}, role="algebra"),
        Step("l8", le(rest, two * eta * (N - 1)), by="sum", uses=("l7",), at={k: (1, N - 1)},
             cite="App. A (corrected)", note="the N - 1 terms k != j"),
        # k = j: the term differs by at most -log(floor)
        Step("j1", le(k_j, -sp.log(q_j)), by="apply", uses=("prob",),
             at={x: sp.log(x) - sp.log(q_j)}, role="algebra"),
        Step("j2", le(-sp.log(q_j), ell), by="apply", uses=("floor",), at={x: -sp.log(x)},
             role="algebra"),
        Step("j3", le(k_j, coefficient * ell), by="chain", uses=("j1", "j2"),
             cite="App. A (corrected, notes 2.3c)",
             note="k = j: -log p_j in [0, log 2), -log q_j in (log 2, -log floor]"),
        # the gap, Eqs. 15-16
        Step("g1", le((k_j + rest) / N, (coefficient * ell + rest) / N), by="apply",
             uses=("j3",), at={y: (y + rest) / N}, role="algebra"),
        Step("g2", le((coefficient * ell + rest) / N, bound), by="apply", uses=("l8",),
             at={y: (coefficient * ell + y) / N}, role="algebra"),
        Step("g3", le(G, bound), by="chain", uses=("eq15_16", "g1", "g2"),
             cite="Lemma 3.1 (corrected, notes 2.3c)",
             note="|pplx(alpha_N) - pplx(beta_N)| <= -log(floor)/N + 2 eta (N - 1)/N"),
        Step("g4", eq(sp.Limit(bound, N, sp.oo), two * eta), by="limit",
             cite="notes 2.3c", note="the gap tends to 2 eta, not 0, unless eta is tied to xi"),
        # n' = max(1/delta(eta), -2 log(floor)/xi) with eta = xi/4 gives a gap < xi
        Step("n1", le(coefficient * ell / N, coefficient * ell / (length * ell / xi)),
             by="apply", uses=("h_length",), at={x: coefficient * ell / x}, role="algebra"),
        Step("n2", lt(eta_part, two * share * xi), role="algebra", note="(N - 1)/N < 1"),
        Step("n3", le(G, coefficient * ell / N + eta_part), by="instance", uses=("g3",),
             at={eta: share * xi}, cite="Lemma 3.1 (corrected)", note="eta = xi/4"),
        Step("n4", le(coefficient * ell / N + eta_part,
                      coefficient * ell / (length * ell / xi) + eta_part), by="apply",
             uses=("n1",), at={y: y + eta_part}, role="algebra"),
        Step("n5", lt(coefficient * ell / (length * ell / xi) + eta_part,
                      coefficient * ell / (length * ell / xi) + two * share * xi), by="apply",
             uses=("n2",), at={y: coefficient * ell / (length * ell / xi) + y},
             role="algebra"),
        Step("n6", lt(G, xi), by="chain", uses=("n3", "n4", "n5"),
             cite="Lemma 3.1 (corrected, notes 2.3c)",
             note="xi/2 + 2 (xi/4) = xi: N >= -2 log(floor)/xi and eta = xi/4 give a gap < xi"),
    ]


def _confidence_steps() -> list[Step]:
    half = PAPER["eq5.half"]
    alpha_pplx = sp.summation(-sp.log(T[k]), (k, 1, N)) / N
    target = -sp.log(rho)  # -log(1 - gamma), with rho = 1 - gamma > 0 the copy probability
    gradient_bound = K_jac * (PAPER["c37.term_bound"] + (N - 1) * sp.sqrt(2) * e_off) / N
    off_j = sp.summation(E[k], (k, 1, N - 1))
    return [
        # Prop. 3.2 and Cor. 3.3
        Step("m1", gt(1 - (half - r), half + r / 2), cite="Prop. 3.2 (notes 2.3d)",
             show="1 - gamma > 1/2 + (1/2 - gamma)/2 with r = 1/2 - gamma > 0",
             note="the margin (1/2 - gamma)/2 meets Eq. 5's strict inequality"),
        Step("p1", le(-sp.log(T[k]), target), by="apply", uses=("eq6",), at={x: -sp.log(x)},
             role="algebra"),
        Step("p2", le(N * alpha_pplx, N * target), by="sum", uses=("p1",), at={k: (1, N)},
             cite="Prop. 3.2"),
        Step("p3", le(alpha_pplx, target), by="apply", uses=("p2",), at={y: y / N},
             cite="Prop. 3.2", note="pplx(alpha_N) <= -log(1 - gamma) under Eq. 6"),
        Step("p4", lt(alpha_pplx + G, alpha_pplx + xi), by="apply", uses=("n6",),
             at={y: alpha_pplx + y}, role="algebra"),
        Step("p5", le(alpha_pplx + xi, target + xi), by="apply", uses=("p3",),
             at={y: y + xi}, role="algebra"),
        Step("p6", lt(P_beta, target + xi), by="chain", uses=("gap", "p4", "p5"),
             cite="Prop. 3.2", note="pplx(beta_N) < -log(1 - gamma) + xi, beta_N miscopied"),
        Step("p7", lt(P_beta, xi), by="instance", uses=("p6",), at={rho: 1},
             cite="Cor. 3.3", note="copied with certainty (gamma = 0, rho = 1): pplx(beta_N) -> 0"),
        # Cor. 3.7
        Step("v1", le(sp.sqrt(2) * (1 - u), PAPER["c37.term_bound"]), box={u: (0, 1)},
             cite="Cor. 3.7 (notes 2.3e)",
             note="i = j: ||p_j - y_j|| = sqrt(2) (1 - T(beta_j)) stays near sqrt(2)"),
        Step("v2", le(off_j, (N - 1) * sp.sqrt(2) * e_off), by="sum", uses=("eq21",),
             at={k: (1, N - 1)}, cite="Cor. 3.7, Eq. 21"),
        Step("v3", le(K_jac * (sp.sqrt(2) * (1 - u) + off_j) / N,
                      K_jac * (PAPER["c37.term_bound"] + off_j) / N),
             by="apply", uses=("v1",), at={y: K_jac * (y + off_j) / N}, role="algebra"),
        Step("v4", le(K_jac * (PAPER["c37.term_bound"] + off_j) / N, gradient_bound),
             by="apply", uses=("v2",), at={y: K_jac * (PAPER["c37.term_bound"] + y) / N},
             role="algebra"),
        Step("v5", le(grad, gradient_bound), by="chain", uses=("eq20", "v3", "v4"),
             cite="Cor. 3.7, Eq. 20", note="the i = j term carries weight 1/N"),
        Step("v6", eq(sp.Limit(gradient_bound, N, sp.oo), sp.sqrt(2) * K_jac * e_off),
             by="limit", cite="Cor. 3.7, Eq. 22",
             note="-> 0 only as the off-j errors e -> 0 (L(alpha_N) -> 0)"),
    ]


def _goal():
    old = log_perplexity(a, gamma)
    return sp.And(lt(log_perplexity(a_p + r, gamma_p), old),
                  gt(log_perplexity(a_p - r, gamma_p), old), lt(G, xi))


def _theorem_steps() -> list[Step]:
    old = log_perplexity(a, gamma)
    return [
        Step("rule+", lt(log_perplexity(a_p + r, gamma_p), old), by="chain", uses=("s7", "11"),
             cite="Sec. 4, selection rule", show="pplx(a' + r, gamma') < pplx(a, gamma)",
             note="a model more accurate than a' at gamma' has the lower perplexity"),
        Step("rule-", gt(log_perplexity(a_p - r, gamma_p), old), by="chain", uses=("s8", "11"),
             cite="Sec. 4, selection rule", show="pplx(a' - r, gamma') > pplx(a, gamma)",
             note="a model less accurate than a' at gamma' has the higher perplexity"),
        Step("thm", _goal(), by="chain", uses=("rule+", "rule-", "n6"),
             cite="Sec. 4, Lemma 3.1",
             show="pplx(a' + r, gamma') < pplx(a, gamma) < pplx(a' - r, gamma'); "
                  "gap < xi for N >= n'",
             note="perplexity selects the new model iff its accuracy exceeds a'; a miscopied "
                  "beta_N has almost alpha_N's perplexity"),
    ]


def _hypotheses() -> list[tuple[str, sp.Basic]]:
    half = PAPER["eq5.half"]
    rest = sp.summation(sp.log(Q[k] + D[k]) - sp.log(Q[k]), (k, 1, N - 1))
    alpha_pplx = sp.summation(-sp.log(T[k]), (k, 1, N)) / N
    return [
        ("h_gamma", sp.And(lt(0, gamma_p), lt(gamma_p, PAPER["gamma.max"]))),
        ("eq11", sp.Eq(a_p, critical_accuracy_of(a, gamma, gamma_p))),
        ("eq6", ge(T[k], rho)),
        ("boole", le(1 - P_copy, sp.Sum(1 - T[k], (k, 1, N)).doit())),
        ("continuity36", le(T[k] - U[k], eps)),
        ("boole_beta", le(1 - Q_copy, sp.Sum(1 - U[k], (k, 1, N)).doit())),
        ("eq5", gt(q + d, half + margin)),
        ("continuity", le(d, eta)),
        ("h_eta", le(eta, margin)),
        ("prob", le(p_j, 1)),
        ("floor", ge(q_j, sp.exp(-ell))),
        ("eq15_16", le(G, (sp.log(p_j) - sp.log(q_j) + rest) / N)),
        ("h_length", ge(N, PAPER["lemma.length"] * ell / xi)),
        ("gap", le(P_beta, alpha_pplx + G)),
        ("eq21", le(E[k], sp.sqrt(2) * e_off)),
        ("eq20", le(grad, K_jac * (sp.sqrt(2) * (1 - u)
                                   + sp.summation(E[k], (k, 1, N - 1))) / N)),
    ]


_HYPOTHESIS_NOTES = {
    "h_gamma": "gamma' = gamma - Delta in (0, 1/2)",
    "eq11": "a' defined by Eq. 11",
    "eq6": "Eq. 6: T(alpha_1..N | alpha_<k)(alpha_k) >= rho = 1 - gamma",
    "boole": "Boole's inequality for the copy alpha_N (a generic fact)",
    "continuity36": "Pasten's continuity for N > 1/delta(eps) (Prop. 3.6)",
    "boole_beta": "Boole's inequality for the prompt beta_N|",
    "eq5": "Eq. 5 at k != j: the larger probability q + d exceeds 1/2 + margin",
    "continuity": "Pasten's continuity: d_H = 1/(N + k) < delta(eta) gives |p - q| = d <= eta",
    "h_eta": "eta = min(margin, xi/4) <= margin",
    "prob": "p_j is a probability",
    "floor": "log T >= log(floor) = -ell",
    "eq15_16": "Eqs. 15-16 matched term by term, and the triangle inequality",
    "h_length": "N >= -2 log(floor)/xi",
    "gap": "|pplx(alpha_N) - pplx(beta_N)| = G (a generic fact)",
    "eq21": "binary ||p_i - y_i|| = sqrt(2) (1 - T(x_<i)(x_i)) <= sqrt(2) e, i != j",
    "eq20": "Eqs. 19-20 with sup ||J|| <= K_j, asserted in App. B (UNCONFIRMED, notes 2.3f)",
}


def _copy_model_gap_floor(n: int, weight: int = 4) -> mpmath.mpf:
    """The least perplexity gap, over every miscopied ``beta`` of length ``n``, of the copy model
    (uniform attention: ``P(next = 1) = sigmoid(weight (ones - zeros) / m)`` after ``m``
    tokens; greedy decoding copies the prompt's majority bit, ties to 0). Exhaustive, mpmath:
    the model's probabilities depend on the prompt only through its count of ones, so each
    count's per-step NLLs of a 0 and of a 1 are tabulated once."""
    with mpmath.workdps(30):
        def table(ones):
            out_one = ones > n - ones
            rows = []
            for step in range(n):
                m = n + 1 + step  # prompt, separator, outputs so far
                o = ones + (step if out_one else 0)
                z = n - ones + (0 if out_one else step)
                p_one = 1 / (1 + mpmath.exp(-weight * mpmath.mpf(o - z) / m))
                rows.append((-mpmath.log(1 - p_one), -mpmath.log(p_one)))
            return rows

        alpha = mpmath.fsum(zero for zero, _ in table(0)) / n
        least = mpmath.inf
        for ones in range(1, n):
            nll = table(ones)
            for chosen in itertools.combinations(range(n), ones):
                picked = set(chosen)
                total = mpmath.fsum(nll[k][k in picked] for k in range(n)) / n
                least = min(least, abs(total - alpha))
        return least


def _eq17_witness() -> tuple[int, sp.Float]:
    """Eq. 17's printed ``n'`` for the copy model (weight 4) and the least gap at ``n' + 1``.

    The model meets Eq. 5 with the margin ``eps = 3/8``: its least own-token probability is
    ``sigmoid(2) = 0.881 > 1/2 + 3/8`` (at ``k = 1`` of ``N = 1``). Its floor is ``sigmoid(-4)``
    (the logit lies in ``[-4, 4]``), and ``delta = 2 eps / 4`` is a valid continuity constant for
    ``eps``: one flip changes the logit by ``8/m`` and the probability by at most ``2/m``, so
    ``d_H < delta`` moves it by less than ``eps``. Target ``xi = 1/100``.
    """
    weight = 4
    with mpmath.workdps(30):
        margin_value = mpmath.mpf(3) / 8
        floor_value = 1 / (1 + mpmath.exp(weight))
        delta = 2 * margin_value / weight
        size = float(printed_oversmoothing(sp.Float(margin_value, 30), sp.Float(floor_value, 30),
                                           sp.Rational(1, 100)))
        n_prime = max(int(mpmath.ceil(1 / delta)), int(mpmath.ceil(size)))
    if n_prime > 14:
        raise ValueError(f"n'={n_prime} too long to enumerate every miscopied beta")
    return n_prime, sp.Float(_copy_model_gap_floor(n_prime + 1, weight), 30)


def _printed_steps() -> list[Step]:
    n_prime, least_gap = _eq17_witness()
    half = PAPER["eq5.half"]
    return [
        Step("a1", ge(printed_lemma_bound(), 0), by="interval",
             box={margin: (0.01, 0.49), floor: (1e-9, 0.3), N: (2, 10**6)},
             cite="App. A, step 5", erratum="unconfirmed source",
             note="it bounds an absolute value, so it must be >= 0; as converted in [S1] it is "
                  "negative. [S1] is an ar5iv-to-markdown copy and the sign is not confirmed "
                  "against the PDF"),
        Step("17'", lt(least_gap, xi), by="interval", box={xi: (0.001, 0.01)},
             cite="Eq. 17", erratum="refuted",
             show=f"min over miscopied beta of |gap| at N = n' + 1 = {n_prime + 1} "
                  f"({float(least_gap):.4f}) < xi",
             note=f"copy model (weight 4): margin 3/8, floor sigmoid(-4), "
                  f"delta = margin/2, xi = 0.01: printed n' = {n_prime}, yet every miscopied "
                  f"beta of length {n_prime + 1} has a gap >= {float(least_gap):.4f}"),
        Step("32'", gt(1 - gamma, half + margin), uses=("margin32",), cite="Prop. 3.2",
             erratum="inconsistent",
             note="Prop. 3.2 takes the margin eps = 1/2 - gamma: then 1 - gamma = 1/2 + eps, "
                  "not > as Eq. 5 asks (notes 2.3d); a smaller margin (m1) fixes it"),
        Step("21'", le(sp.sqrt(2) * (1 - u), sp.sqrt(2) / 2), by="interval",
             box={u: (0, 0.5)}, cite="Cor. 3.7, Eq. 21", erratum="refuted",
             note="Eq. 21 claims ||p_i - y_i|| -> 0 for all i; at i = j Eq. 13 keeps "
                  "T(beta_j) = u < 1/2, so ||p_j - y_j|| > sqrt(2)/2 at every N (notes 2.3e)"),
    ]


@PAPER.cache
def derivation() -> Derivation:
    """Check Eqs. 10-11 and the selection rule, Remarks 3.4-3.5, Lemma 3.1 (corrected, with the
    printed bound and size as errata), Prop. 3.2, Cor. 3.3, Prop. 3.6 and Cor. 3.7."""
    half = PAPER["eq5.half"]
    hypotheses = [*_hypotheses(), ("margin32", sp.Eq(margin, half - gamma))]
    return Derivation.check(
        "iso-perplexity",
        source="Velickovic et al. 2026, Sec. 3-4, App. A-B",
        hypotheses=hypotheses,
        goal=_goal(),
        steps=[*_selection_steps(), *_temperature_and_boole_steps(), *_lemma_steps(),
               *_confidence_steps(), *_theorem_steps()],
        bound=corrected_lemma_bound(),
        as_printed=_printed_steps(),
        symbols=SYMBOLS,
        notes=_HYPOTHESIS_NOTES,
    )
