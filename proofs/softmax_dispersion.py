"""Derivation of Lemma 2.1 of Velickovic et al., "Softmax is not Enough" (ICML 2025), its tight
form and corollaries, Prop. 3.1 (spread bound), Theorem 2.2 (dispersion through the layers, by
induction) and the facts the adaptive temperature of the Fig. 4 listing rests on.

Every number the paper states is in :data:`PAPER` and read by reference, here and (as plain
values) in the numeric checker.

Symbols (the paper's letters where it has them):

- ``n``: number of logits; ``e(j)``: the logits, ``m <= e(j) <= M``; ``theta > 0`` the temperature
  (eq. (1)); ``d = (M - m)/theta`` the spread in units of the temperature.
- ``alpha(i) = softmax_theta(e)_i``; ``t(j) = exp((e(j) - e(i))/theta)`` the term of item ``j``
  relative to item ``i``; ``S = sum_j t(j)`` over the ``n - 1`` other items, so
  ``alpha(i) = 1/(1 + S)`` (eq. (1) divided through by ``exp(e(i)/theta)``); ``S_top``,
  ``alpha_top`` (``S_bottom``, ``alpha_bottom``) the same for the extremal logits: ``e(i) = M``
  and every other logit ``m`` (``e(i) = m``, the others ``M``).
- ``eps``: the sharpness target, ``alpha_max >= 1 - eps``; ``H``: entropy in nats;
  ``c = ln n - d``.
- Theorem 2.2: ``l`` the layer; ``X(l)`` the largest feature norm at layer ``l`` over the ``n``
  tokens, ``Y(l)`` that of the attention outputs; ``R(l)`` the n-free bound the induction
  carries; ``sQ, sK, sV`` the largest singular values of the query, key and value maps; ``b`` and
  ``L`` the MLP's offset and Lipschitz constant (``|f(u)| <= b + L|u|``); ``Emax`` the largest
  token-embedding norm (a finite vocabulary), ``P`` a bound on the positional encodings;
  ``e(a)``/``e(bb)`` the largest/smallest logit of a head at layer ``l``.
- ``beta(H)``: the adaptive inverse temperature of the listing, ``jnp.polyval`` order (highest
  degree first).

``theta > 0`` is carried by the symbol's assumption: the ``apply`` steps that divide by ``theta``
or exponentiate ``x/theta`` are monotone only because of it.
"""

from __future__ import annotations

import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, le, lt

_ENTROPY_GATE_REASON = (
    "the gate is redundant: beta(H) < 1 on [0.495, 0.848581] (step A2 with either gate), so "
    "max(beta(H), 1) = 1 on both sides of the gate and the listing's output is unchanged")
_EPSILON_REASON = (
    "the epsilon only keeps log(p + eps) finite at p = 0: a 1% change moves H by at most "
    "n * 1e-11 nats, and 0.99e-9 and 1.01e-9 both still round to 0 in fp16 (the pitfall)")


__all__ = ["BETA_MAX", "BETA_ONE", "Emax", "H", "L", "M", "P", "PAPER", "POLY_NAMES", "R", "S",
    "SYMBOLS", "S_bottom", "S_top", "X", "Xe", "Xp", "Y", "a", "alpha", "alpha_bottom",
    "alpha_top", "b", "bb", "beta_poly", "c", "d", "derivation", "e", "eps", "i", "j", "k", "l",
    "m", "n", "paper_lower", "paper_upper", "sK", "sQ", "sV", "term_high", "term_low", "theta",
    "tight_lower", "tight_upper"]


#: Every number the paper states, read by reference in the derivation and the numeric checker.
PAPER = Quantities("softmax-dispersion", [
    Quantity("lemma.upper.exponent", 1, "exponent", cite="Lemma 2.1",
             meaning="alpha_i <= e^{1*d} n^-1: the power of e^d in the upper bound, and of the "
                     "largest term e^{d} of S"),
    Quantity("lemma.lower.exponent", -1, "exponent", cite="Lemma 2.1",
             meaning="alpha_i >= e^{-1*d} n^-1: the power of e^d in the lower bound, and of the "
                     "smallest term e^{-d} of S"),
    Quantity("lemma.rate", -1, "exponent", cite="Lemma 2.1",
             meaning="alpha_i = Theta(n^-1): the power of n in both bounds"),
    Quantity("lemma.others", -1, "index", cite="Lemma 2.1, tight form [D]",
             meaning="S has n + (-1) terms: every coefficient but alpha_i"),
    Quantity("prop31.factor", 2, "constant", cite="Prop. 3.1 [S]",
             meaning="delta <= 2 smax(Q) smax(K) |y| max_i |x_i|"),
    Quantity("listing.poly.H4", sp.Rational(-37, 1000), "constant", cite="Fig. 4 listing",
             meaning="coefficient of H^4 in beta(H)"),
    Quantity("listing.poly.H3", sp.Rational(481, 1000), "constant", cite="Fig. 4 listing",
             meaning="coefficient of H^3 in beta(H)"),
    Quantity("listing.poly.H2", sp.Rational(-23, 10), "constant", cite="Fig. 4 listing",
             meaning="coefficient of H^2 in beta(H)"),
    Quantity("listing.poly.H1", sp.Rational(4917, 1000), "constant", cite="Fig. 4 listing",
             meaning="coefficient of H in beta(H)"),
    Quantity("listing.poly.H0", sp.Rational(-1791, 1000), "constant", cite="Fig. 4 listing",
             meaning="constant term of beta(H)"),
    Quantity("listing.gate", sp.Rational(1, 2), "constant", cite="Fig. 4 listing",
             meaning="rows with H <= 0.5 keep beta = 1",
             exempt={"x0.99": _ENTROPY_GATE_REASON, "x1.01": _ENTROPY_GATE_REASON}),
    Quantity("listing.epsilon", sp.Rational(1, 10**9), "constant", cite="Fig. 4 listing",
             meaning="H = -sum p log(p + 1e-9)",
             exempt={"x0.99": _EPSILON_REASON, "x1.01": _EPSILON_REASON}),
])

#: The polynomial's coefficients by name, highest degree first (jnp.polyval order).
POLY_NAMES = ("listing.poly.H4", "listing.poly.H3", "listing.poly.H2", "listing.poly.H1",
              "listing.poly.H0")

n = sp.Symbol("n", positive=True, integer=True)
i, j, k = sp.symbols("i j k", positive=True, integer=True)
a, bb = sp.symbols("a bb", positive=True, integer=True)
l = sp.Symbol("l", nonnegative=True, integer=True)
d = sp.Symbol("d", real=True)
theta = sp.Symbol("theta", positive=True)
m, M = sp.symbols("m M", real=True)
e = sp.Function("e", real=True)
alpha = sp.Function("alpha", positive=True)
S = sp.Symbol("S", positive=True)
S_top, S_bottom = sp.symbols("S_top S_bottom", positive=True)
alpha_top, alpha_bottom = sp.symbols("alpha_top alpha_bottom", positive=True)
c = sp.Symbol("c", positive=True)
H = sp.Symbol("H", nonnegative=True)
eps = sp.Symbol("epsilon", positive=True)
X, Y, R = (sp.Function(name, nonnegative=True) for name in ("X", "Y", "R"))
sQ, sK, sV, L, b = sp.symbols("sQ sK sV L b", nonnegative=True)
Emax, P, Xe, Xp = sp.symbols("Emax P Xe Xp", nonnegative=True)
_x = sp.Symbol("x", real=True)
_y = sp.Symbol("y", nonnegative=True)
_s = sp.Symbol("s", positive=True)
_t = sp.Symbol("t", nonnegative=True)

#: What each letter of the derivation means: the legend printed with it.
SYMBOLS = {
    "n": "number of items (logits) the softmax normalises over",
    "e": "the logits, e(1), ..., e(n)",
    "i": "the item whose coefficient is bounded",
    "j": "an item; the index of a sum over items",
    "m": "the smallest logit",
    "M": "the largest logit",
    "theta": "the temperature, theta > 0 (eq. (1))",
    "d": "the spread in units of the temperature, (M - m)/theta",
    "alpha": "the softmax coefficients, alpha(i) = softmax_theta(e)_i (eq. (1))",
    "S": "the sum over the n - 1 other items of exp((e(j) - e(i))/theta); alpha(i) = 1/(1 + S)",
    "S_top": "S when e(i) = M and every other logit is m",
    "alpha_top": "alpha(i) when e(i) = M and every other logit is m",
    "S_bottom": "S when e(i) = m and every other logit is M",
    "alpha_bottom": "alpha(i) when e(i) = m and every other logit is M",
    "c": "ln n - d, a lower bound on -ln alpha(i)",
    "H": "the entropy of the coefficients, in nats",
    "epsilon": "the sharpness target: alpha_max >= 1 - epsilon",
    "t": "H - 10: beta(10 + t) has only negative coefficients (step A4)",
    "l": "a layer (Thm 2.2)",
    "X": "X(l): the largest feature norm over the n tokens at layer l",
    "Y": "Y(l): the largest attention-output norm over the n tokens at layer l",
    "R": "R(l): the bound on X(l), free of n, that the induction carries",
    "Xe": "the largest token-embedding norm among the n tokens",
    "Xp": "the largest positional-encoding norm among the n tokens",
    "Emax": "the largest token-embedding norm over the (finite) vocabulary",
    "P": "a bound on the norms of the positional encodings",
    "sQ": "the largest singular value of the query map",
    "sK": "the largest singular value of the key map",
    "sV": "the largest singular value of the value map",
    "b": "the offset of the MLP's bound |f(u)| <= b + L |u|",
    "L": "the Lipschitz constant of the MLP, |f(u)| <= b + L |u|",
    "a": "the item with the largest logit of a head at layer l, e(a)",
    "bb": "the item with the smallest logit of a head at layer l, e(bb)",
}

#: Where beta(H) = 1 (roots 0.848581996... and 5.944520827...), bracketed 1e-6 either side;
#: derived here, the notes (sec. 3) give 0.84858 and 5.94452.
BETA_ONE = ((sp.Rational(848581, 10**6), sp.Rational(848583, 10**6)),
            (sp.Rational(5944519, 10**6), sp.Rational(5944522, 10**6)))
#: An upper bound on beta(H) over H >= 0 (the maximum is 2.421388 at H = 4.412402).
BETA_MAX = sp.Rational(2422, 1000)


def term_low(spread):
    """``e^{-d}``: the smallest term ``exp((e_j - e_i)/theta)`` of ``S`` (Lemma 2.1)."""
    return sp.exp(PAPER["lemma.lower.exponent"] * spread)


def term_high(spread):
    """``e^{d}``: the largest term of ``S`` (Lemma 2.1)."""
    return sp.exp(PAPER["lemma.upper.exponent"] * spread)


def tight_upper(size, spread):
    """``1 / (1 + (n - 1) e^{-d})``: the largest coefficient's exact maximum."""
    return 1 / (1 + (size + PAPER["lemma.others"]) * term_low(spread))


def tight_lower(size, spread):
    """``1 / (1 + (n - 1) e^{d})``: the smallest coefficient's exact minimum."""
    return 1 / (1 + (size + PAPER["lemma.others"]) * term_high(spread))


def paper_upper(size, spread):
    """Lemma 2.1: ``alpha_i <= e^{d} / n``."""
    return term_high(spread) * size ** PAPER["lemma.rate"]


def paper_lower(size, spread):
    """Lemma 2.1: ``alpha_i >= e^{-d} / n``."""
    return term_low(spread) * size ** PAPER["lemma.rate"]


def beta_poly(entropy=H):
    """``beta(H)`` of the listing: ``jnp.polyval(poly_fit, H)``, highest degree first."""
    return sum(PAPER[name] * entropy ** (len(POLY_NAMES) - 1 - power)
               for power, name in enumerate(POLY_NAMES))


def _step(label, claim, **kwargs) -> Step:
    """A :class:`Step`; under a mutation a claim that collapsed to an identity (``e^{0 d} = 1``
    makes ``1 <= e^{0 d}`` read ``1 <= 1``) is kept as written, so that the derivation still
    builds and the mutation is caught by the steps it breaks."""
    if PAPER.mutation is not None:
        parts = claim.args if isinstance(claim, sp.And) else (claim,)
        kept = [part.func(sp.UnevaluatedExpr(part.lhs), part.rhs, evaluate=False)
                if isinstance(part, sp.core.relational.Relational) and part.lhs == part.rhs
                else part for part in parts]
        claim = sp.And(*kept, evaluate=False) if isinstance(claim, sp.And) else kept[0]
    return Step(label, claim, **kwargs)


def _term(index):
    return sp.exp((e(index) - e(i)) / theta)


def _hypotheses() -> list[tuple[str, sp.Basic]]:
    others = sp.Sum(_term(j), (j, 1, n - 1))
    A = sQ * sK * X(l) ** 2
    return [
        # Lemma 2.1
        ("h1", sp.And(le(m, e(j)), le(e(j), M))),
        ("h2", eq(d, (M - m) / theta)),
        ("h3", eq(alpha(i), 1 / (1 + S))),
        ("h4", eq(S, others)),
        ("h5", eq(sp.Sum(alpha(j), (j, 1, n)), 1)),
        # entropy corollary (for n > e^d; below it H >= c < 0 says nothing)
        ("h6", eq(c, sp.log(n) - d)),
        ("h7", eq(H, sp.Sum(-alpha(j) * sp.log(alpha(j)), (j, 1, n)))),
        # Theorem 2.2, layer l of a Transformer on n tokens (reconstruction, see the cites)
        ("g1", le(Xe, Emax)),
        ("g2", le(Xp, P)),
        ("g3", le(X(0), Xe + Xp)),
        ("g4", eq(R(0), Emax + P)),
        ("g5", le(X(l), R(l))),
        ("g6", le(Y(l), sV * X(l) * sp.Sum(alpha(j), (j, 1, n)))),
        ("g7", le(X(l + 1), b + L * (X(l) + Y(l)))),
        ("g8", eq(R(l + 1), b + L * (1 + sV) * R(l))),
        ("g9", sp.And(le(-A, e(j)), le(e(j), A))),
    ]


def _lemma_steps() -> list[Step]:
    lo, hi = term_low(d), term_high(d)
    count = n - 1  # the other items: S's range in h4
    cite = "Lemma 2.1"
    return [
        _step("1a", le(e(i), M), by="instance", at={j: i}, uses=("h1",), cite=cite,
             note="alpha_i's own logit is in [m, M] too"),
        _step("1b", le(m, e(i)), by="instance", at={j: i}, uses=("h1",), cite=cite),
        _step("2a", le(m - e(i), e(j) - e(i)), by="apply", at={_x: _x - e(i)}, uses=("h1",),
             cite=cite),
        _step("2b", le(m - M, m - e(i)), by="apply", at={_x: m - _x}, uses=("1a",), cite=cite),
        _step("2c", le(e(j) - e(i), M - e(i)), by="apply", at={_x: _x - e(i)}, uses=("h1",),
             cite=cite),
        _step("2d", le(M - e(i), M - m), by="apply", at={_x: M - _x}, uses=("1b",), cite=cite),
        _step("2", sp.And(le(m - M, e(j) - e(i)), le(e(j) - e(i), M - m)), by="chain",
             uses=("2a", "2b", "2c", "2d"), cite=cite, note="every logit gap is within the spread"),
        _step("3a", le(sp.exp((m - M) / theta), _term(j)), by="apply",
             at={_x: sp.exp(_x / theta)}, uses=("2",), cite=cite,
             note="exp(x/theta) is increasing because theta > 0"),
        _step("3b", le(_term(j), sp.exp((M - m) / theta)), by="apply",
             at={_x: sp.exp(_x / theta)}, uses=("2",), cite=cite),
        _step("3c", eq(sp.exp((m - M) / theta), lo), uses=("h2",), cite=cite,
             box={M: (0, 4), m: (-4, 0)}, note="the paper's e^{-d}"),
        _step("3d", eq(sp.exp((M - m) / theta), hi), uses=("h2",), cite=cite,
             box={M: (0, 4), m: (-4, 0)}, note="the paper's e^{d}"),
        _step("4", sp.And(le(lo, _term(j)), le(_term(j), hi)), by="chain",
             uses=("3a", "3b", "3c", "3d"), cite=cite,
             note="each term exp((e_j - e_i)/theta) lies in [e^{-d}, e^{d}]"),
        _step("5a", le(count * lo, sp.Sum(_term(j), (j, 1, count))), by="sum",
             at={j: (1, count)}, uses=("4",), cite=cite, note="over the n - 1 other items"),
        _step("5b", le(sp.Sum(_term(j), (j, 1, count)), count * hi), by="sum",
             at={j: (1, count)}, uses=("4",), cite=cite),
        _step("5", sp.And(le(count * lo, S), le(S, count * hi)), by="chain",
             uses=("h4", "5a", "5b"), cite=cite),
        _step("6a", le(1 / (1 + S), tight_upper(n, d)), by="apply", at={_y: 1 / (1 + _y)},
             uses=("5",), cite="tight form [D]", note="1/(1 + S) decreases in S"),
        _step("6b", ge(1 / (1 + S), tight_lower(n, d)), by="apply", at={_y: 1 / (1 + _y)},
             uses=("5",), cite="tight form [D]"),
        _step("7a", le(lo, 1), by="instance", at={j: i}, uses=("4",), cite=cite,
             note="alpha_i's own term is exp(0) = 1, also >= e^{-d}"),
        _step("7b", le(n * lo, 1 + count * lo), by="apply", at={_x: _x + count * lo},
             uses=("7a",), cite=cite, note="all n terms of the denominator are >= e^{-d}"),
        _step("7c", le(tight_upper(n, d), paper_upper(n, d)), by="apply", at={_s: 1 / _s},
             uses=("7b",), cite=cite, note="the tight bound implies the paper's"),
        _step("8a", le(1, hi), by="instance", at={j: i}, uses=("4",), cite=cite),
        _step("8b", le(1 + count * hi, n * hi), by="apply", at={_x: _x + count * hi},
             uses=("8a",), cite=cite),
        _step("8c", le(paper_lower(n, d), tight_lower(n, d)), by="apply", at={_s: 1 / _s},
             uses=("8b",), cite=cite),
        _step("9", sp.And(le(alpha(i), tight_upper(n, d)), ge(alpha(i), tight_lower(n, d)),
                         le(alpha(i), paper_upper(n, d)), ge(alpha(i), paper_lower(n, d))),
             by="chain", uses=("h3", "6a", "6b", "7c", "8c"), cite=cite,
             show="e^-d/n <= 1/(1 + (n-1)e^d) <= alpha_i <= 1/(1 + (n-1)e^-d) <= e^d/n"),
    ]


def _sharp_steps() -> list[Step]:
    """The tight bounds are attained, and the paper's constants e^{+-d} are the sharp ones."""
    lo, hi = term_low(d), term_high(d)
    count = n - 1
    cite = "tight form [D]"
    return [
        _step("10a", eq(S_top, sp.Sum(sp.exp((m - M) / theta), (j, 1, count))), by="instance",
              at={e(j): m, e(i): M, S: S_top}, uses=("h4",), cite=cite,
              note="extremal logits: alpha_i's at M, the n - 1 others at m; S_top is their S"),
        _step("10b", eq(sp.Sum(sp.exp((m - M) / theta), (j, 1, count)), count * lo), by="sum",
              at={j: (1, count)}, uses=("3c",), cite=cite),
        _step("10c", eq(S_top, count * lo), by="chain", uses=("10a", "10b"), cite=cite),
        _step("10d", eq(1 / (1 + S_top), tight_upper(n, d)), by="apply",
              at={_y: 1 / (1 + _y)}, uses=("10c",), cite=cite),
        _step("10e", eq(alpha_top, 1 / (1 + S_top)), by="instance",
              at={S: S_top, alpha(i): alpha_top}, uses=("h3",), cite=cite),
        _step("10", eq(alpha_top, tight_upper(n, d)), by="chain", uses=("10e", "10d"),
              cite=cite, note="the upper bound is attained: it is the largest coefficient's "
                              "maximum"),
        _step("11a", eq(S_bottom, sp.Sum(sp.exp((M - m) / theta), (j, 1, count))),
              by="instance", at={e(j): M, e(i): m, S: S_bottom}, uses=("h4",), cite=cite,
              note="extremal logits: alpha_i's at m, the n - 1 others at M"),
        _step("11b", eq(sp.Sum(sp.exp((M - m) / theta), (j, 1, count)), count * hi), by="sum",
              at={j: (1, count)}, uses=("3d",), cite=cite),
        _step("11c", eq(S_bottom, count * hi), by="chain", uses=("11a", "11b"), cite=cite),
        _step("11d", eq(1 / (1 + S_bottom), tight_lower(n, d)), by="apply",
              at={_y: 1 / (1 + _y)}, uses=("11c",), cite=cite),
        _step("11e", eq(alpha_bottom, 1 / (1 + S_bottom)), by="instance",
              at={S: S_bottom, alpha(i): alpha_bottom}, uses=("h3",), cite=cite),
        _step("11", eq(alpha_bottom, tight_lower(n, d)), by="chain", uses=("11e", "11d"),
              cite=cite, note="the lower bound is attained: it is the smallest coefficient's "
                              "minimum"),
        _step("12a", eq(sp.Limit(n * tight_upper(n, d), n, sp.oo), n * paper_upper(n, d)),
              by="limit", cite="Lemma 2.1, Theta(1/n)", budget_s=20,
              show="lim_{n -> oo} n/(1 + (n-1)e^-d) = n (e^d/n)",
              note="e^{d}/n is the attained maximum's asymptote: the paper's constant is sharp"),
        _step("12b", eq(sp.Limit(n * tight_lower(n, d), n, sp.oo), n * paper_lower(n, d)),
              by="limit", cite="Lemma 2.1, Theta(1/n)", budget_s=20,
              show="lim_{n -> oo} n/(1 + (n-1)e^d) = n (e^-d/n)"),
        _step("12c", eq(tight_upper(n, sp.log((n - 1) * (1 - eps) / eps)), 1 - eps),
              box={n: (2, 1000), eps: (sp.Rational(1, 100), sp.Rational(1, 2))}, budget_s=20,
              cite="sharpness [D]",
              show="1/(1 + (n-1)e^-d) = 1 - eps at d = ln((n-1)(1-eps)/eps)",
              note="alpha_max >= 1 - eps needs the spread to grow like ln n"),
    ]


def _entropy_steps() -> list[Step]:
    cite = "entropy [D]"
    return [
        _step("13a", ge(-sp.log(alpha(i)), sp.log(n) - d), by="apply", at={_s: -sp.log(_s)},
             uses=("9",), cite=cite, note="-ln is decreasing: -ln alpha_i >= -ln(e^d/n)"),
        _step("13b", ge(-sp.log(alpha(i)), c), by="chain", uses=("13a", "h6"), cite=cite),
        _step("13c", ge(-sp.log(alpha(j)), c), by="instance", at={i: j}, uses=("13b",), cite=cite),
        _step("13d", le(c * alpha(j), -alpha(j) * sp.log(alpha(j))), by="apply",
             at={_x: alpha(j) * _x}, uses=("13c",), cite=cite),
        _step("13e", le(c * sp.Sum(alpha(j), (j, 1, n)),
                       sp.Sum(-alpha(j) * sp.log(alpha(j)), (j, 1, n))), by="sum",
             at={j: (1, n)}, uses=("13d",), cite=cite),
        _step("13f", ge(c * sp.Sum(alpha(j), (j, 1, n)), c), by="apply", at={_x: c * _x},
             uses=("h5",), cite=cite, note="the coefficients sum to 1"),
        _step("13", ge(H, c), by="chain", uses=("h7", "13e", "13f"), cite=cite,
             show="H >= ln n - d", note="so H / ln n -> 1: the row tends to uniform"),
    ]


def _layer_steps() -> list[Step]:
    """Theorem 2.2 by induction over layers, with Prop. 3.1 at each layer.

    The notes give the theorem's content from secondary sources ([S]; exact wording
    UNCONFIRMED) and a proof idea; the quantitative form (Lipschitz MLP, ``R(l)``) is our
    reconstruction ([D]): the paper needs only continuity on a compact set.
    """
    cite, prop = "Thm 2.2, reconstructed [D]", "Prop. 3.1 [S]"
    A = sQ * sK * R(l) ** 2
    spread = e(a) - e(bb)
    D = PAPER["prop31.factor"] * A / theta
    return [
        _step("14a", le(Xe + Xp, Emax + Xp), by="apply", at={_x: _x + Xp}, uses=("g1",),
             cite=cite),
        _step("14b", le(Emax + Xp, Emax + P), by="apply", at={_x: Emax + _x}, uses=("g2",),
             cite=cite),
        _step("14", le(X(0), R(0)), by="chain", uses=("g3", "14a", "14b", "g4"), cite=cite,
             note="induction base: a finite vocabulary and bounded positional encodings"),
        _step("15a", le(sV * X(l) * sp.Sum(alpha(j), (j, 1, n)), sV * X(l)), by="apply",
             at={_y: sV * X(l) * _y}, uses=("h5",), cite=cite),
        _step("15b", le(Y(l), sV * X(l)), by="chain", uses=("g6", "15a"), cite=cite,
             note="an attention output is a convex combination of bounded values"),
        _step("15c", le(b + L * (X(l) + Y(l)), b + L * (1 + sV) * X(l)), by="apply",
             at={_y: b + L * (X(l) + _y)}, uses=("15b",), cite=cite),
        _step("15d", le(b + L * (1 + sV) * X(l), b + L * (1 + sV) * R(l)), by="apply",
             at={_y: b + L * (1 + sV) * _y}, uses=("g5",), cite=cite),
        _step("15", le(X(l + 1), R(l + 1)), by="chain", uses=("g7", "15c", "15d", "g8"),
             cite=cite, note="induction step (with base 14: X(l) <= R(l) at every layer); R(l + 1) "
                             "does not involve n. The paper needs only continuous MLPs on a "
                             "compact set; |f(u)| <= b + L|u| is our quantitative form"),
        _step("16a", le(sQ * sK * X(l) ** 2, A), by="apply", at={_y: sQ * sK * _y**2},
             uses=("g5",), cite=cite),
        _step("16b", le(-A, -sQ * sK * X(l) ** 2), by="apply", at={_y: -sQ * sK * _y**2},
             uses=("g5",), cite=cite),
        _step("16", sp.And(le(-A, e(j)), le(e(j), A)), by="chain", uses=("g9", "16a", "16b"),
             cite=cite, note="the logits of layer l are bounded independently of n"),
        _step("17a", le(e(a), A), by="instance", at={j: a}, uses=("16",), cite=prop),
        _step("17b", le(-A, e(bb)), by="instance", at={j: bb}, uses=("16",), cite=prop),
        _step("17c", le(spread, A - e(bb)), by="apply", at={_x: _x - e(bb)}, uses=("17a",),
             cite=prop),
        _step("17d", le(A - e(bb), PAPER["prop31.factor"] * A), by="apply", at={_x: A - _x},
             uses=("17b",), cite=prop),
        _step("17", le(spread, PAPER["prop31.factor"] * A), by="chain", uses=("17c", "17d"),
             cite=prop, show="delta_l <= 2 sQ sK R(l)^2",
             note="delta <= 2 smax(Q) smax(K) |y| max|x_i| with |y|, |x_i| <= R(l)"),
        _step("18a", le(alpha(i), tight_upper(n, spread / theta)), by="instance",
             at={d: spread / theta}, uses=("9",), cite=cite,
             note="Lemma 2.1 at layer l, with d = delta_l/theta"),
        _step("18b", le(term_low(D), term_low(spread / theta)), by="apply",
             at={_x: term_low(_x / theta)}, uses=("17",), cite=cite),
        _step("18c", le(tight_upper(n, spread / theta), tight_upper(n, D)), by="apply",
             at={_y: 1 / (1 + (n + PAPER["lemma.others"]) * _y)}, uses=("18b",), cite=cite),
        _step("18", le(alpha(i), tight_upper(n, D)), by="chain", uses=("18a", "18c"), cite=cite,
             show="alpha_i <= 1/(1 + (n-1)exp(-2 sQ sK R(l)^2/theta))",
             note="every head of every layer disperses, with an n-free spread"),
        _step("19", eq(sp.Limit(n * tight_upper(n, D), n, sp.oo), n * paper_upper(n, D)),
             by="instance", at={d: D}, uses=("12a",), cite=cite,
             show="n * alpha_max -> exp(2 sQ sK R(l)^2/theta): Theta(1/n) at layer l"),
    ]


def _listing_steps() -> list[Step]:
    (low_1, high_1), (low_2, high_2) = BETA_ONE
    cite = "Fig. 4 listing [D]"
    return [
        _step("A1", ge(beta_poly(), 1), by="interval", box={H: (high_1, low_2)}, cite=cite,
             note="beta(H) >= 1 on [0.848583, 5.944519]"),
        _step("A2", lt(beta_poly(), 1), by="interval", box={H: (PAPER["listing.gate"], low_1)},
             cite=cite, note="beta < 1 between the gate and 0.848581: the H > 0.5 gate is "
                             "redundant, max(beta, 1) = 1 there anyway"),
        _step("A3", lt(beta_poly(), 1), by="interval", box={H: (high_2, 10)}, cite=cite,
             note="beta < 1 from 5.944522 nats: the adaptive temperature does nothing"),
        _step("A4", lt(sp.expand(beta_poly(10 + _t)), 1), cite=cite,
             show="beta(10 + t) < 1 for t >= 0",
             note="every coefficient of beta(10 + t) is negative: beta < 1 for all H >= 10"),
        _step("A5", le(beta_poly(), BETA_MAX), by="interval", box={H: (0, 10)}, cite=cite,
             note="beta* = max(beta, 1) <= 2.422 everywhere"),
        _step("A6", eq(sp.Limit(n * tight_upper(n, BETA_MAX * d), n, sp.oo),
                      n * paper_upper(n, BETA_MAX * d)), by="instance", at={d: BETA_MAX * d},
             uses=("12a",), cite=cite, show="n * alpha_max -> exp(2.422 d) under beta* <= 2.422",
             note="logits scaled by beta* <= 2.422 still have a bounded spread: Theta(1/n)"),
    ]


@PAPER.cache
def derivation() -> Derivation:
    """Check Lemma 2.1, its tight form and corollaries, Prop. 3.1 and Thm 2.2 step by step."""
    d_bounds = sp.And(le(alpha(i), tight_upper(n, d)), ge(alpha(i), tight_lower(n, d)),
                      le(alpha(i), paper_upper(n, d)), ge(alpha(i), paper_lower(n, d)))
    return Derivation.check(
        "softmax-dispersion",
        source="Velickovic et al. 2025, Lemma 2.1, Prop. 3.1, Thm 2.2; theta > 0 is the "
               "assumption on the symbol theta",
        hypotheses=_hypotheses(),
        goal=d_bounds,
        steps=[*_lemma_steps(), *_sharp_steps(), *_entropy_steps(), *_layer_steps(),
               *_listing_steps()],
        bound=tight_upper(n, d),
        symbols=SYMBOLS,
    )
