"""Derivation for the amortisation gap of sparse autoencoders: no one-pass encoder
``ReLU(W D s + b)`` recovers every K-sparse nonnegative code when ``N > M`` and ``K >= 2``, while
per-sample inference (FISTA, Beck & Teboulle 2009) converges at ``O(1/k^2)``; with the
compressed-sensing facts the experiments lean on (spark, mutual coherence, the Welch bound, the
rule for the measurement dimension ``m``) and the smallest example (three atoms at 120 degrees).

Sources, as the notes (``sae_amortisation.md``) give them; every step's citation says which:

- ``[prop]``: the proposition and its proof (notes 5.5), the reconstruction consistent with
  O'Neill, Gumran & Klindt (ICML 2025), whose verbatim theorem is not available; the K = 1
  counterexample and the TopK and linear-probe variants come with it. The statement refuted at
  K = 1 is the paraphrase of secondary sources (notes 5.5), not the paper's own text;
- ``[corr]``: the correction to the smallest example (notes 5.5): spark 3 <= 2K, and exact
  recovery needs nonnegative codes on a positively spanning dictionary;
- ``[BT]``: Beck & Teboulle, SIAM J. Imaging Sci. 2(1), 2009 (notes 2.1, 5.2): the proximal
  step, the momentum sequence, Thm 3.1 (ISTA) and Thm 4.4 (FISTA); the notes give these theorem
  and lemma numbers from memory (UNCONFIRMED), so every such citation says
  ``[BT, numbering unconfirmed]``;
- ``[CS]``: standard compressed-sensing results (notes 5.1): spark uniqueness (Donoho & Elad
  2003), the coherence condition, the Welch bound;
- ``[REPO]``: the experiments' rule for ``m`` and their grid (notes 1).

Every number is a :data:`PAPER` quantity, read by reference here and, through the plain helpers
that follow the table (:func:`compressed_sensing_dim`, :func:`fista_rate_bound`, ...), by the
numeric checker.

Symbols:

- the proposition (``N = 3`` atoms in ``M = 2`` dimensions): ``D`` (``D00`` .. ``D12``) the
  dictionary, ``W`` (``W00`` .. ``W21``) the encoder, ``G = W D`` (``g00`` .. ``g22``), ``b``
  (``b0`` .. ``b2``) the bias, ``Delta = det G``, ``s0 .. s2`` a point of a support's open box;
  ``P`` (``P00`` .. ``P21``) a linear probe with offset ``u0 .. u2``, ``H = P D`` (``h00`` ..
  ``h22``), ``DeltaP = det H``;
- the frames: ``phi`` the angle between consecutive atoms of the 120-degree frame, ``psi`` that of
  the half-plane frame (0, 50, 100 degrees); ``a, b, t`` nonnegative code entries, ``c0 .. c2``
  code magnitudes;
- FISTA: ``L`` the Lipschitz constant of the gradient, ``eta`` the step, ``lam`` the l1 weight,
  ``tau`` the threshold, ``v`` the point the prox is taken at, ``k`` the iteration,
  ``t``, ``tp`` and ``t1`` the momentum terms ``t_k``, ``t_{k-1}`` and ``t_1``, ``F(j)`` and
  ``Fa(k)`` the objective at the ISTA and FISTA iterates, ``Fs`` its minimum,
  ``r(j) = ||z_j - z*||^2``, ``d2 = ||z_0 - z*||^2``;
- compressed sensing: ``n`` atoms, ``m`` dimensions, ``K`` the sparsity, ``mu`` the mutual
  coherence, ``spark`` the spark, ``c(p)`` the ``n (n - 1)`` off-diagonal Gram entries, ``Soff``
  their sum of squares, ``F2 = ||D^T D||_F^2``, ``trG`` its trace.
"""

from __future__ import annotations

import itertools
import math
import numbers

import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, gt, le, lt

_HALF_PLANE = ("any three atoms at 0, psi, 2 psi with 0 < 2 psi < pi lie in a half-plane and their "
               "cones overlap the same way: 49.5 and 50.5 degrees give the same counterexample")
_FLOOR = ("the floor k + 1 never binds on the experiments' grid: ceil(2 k ln(n/k)) >= 33 > 12 "
          "there, so m is unchanged")


__all__ = ["ATOMS", "B", "C", "CS_SIZES", "D", "DIMENSIONS", "Delta", "DeltaP", "F", "F2", "Fa",
    "Fs", "G", "H", "K", "L", "P", "PAPER", "S", "SYMBOLS", "Soff", "U", "W", "a", "b_", "c",
    "coherence_certifies", "compressed_sensing_dim", "csc", "d2", "derivation", "eta",
    "fista_rate_bound", "frame_120", "goal", "ista_rate_bound", "j", "k", "lam", "m", "mu", "mu0",
    "n", "p", "phi", "psi", "r", "spark", "t", "t_", "t_one", "tau", "tp", "trG", "v", "w", "w0",
    "welch_bound", "z", "zr"]


#: Every number the notes state, read by reference in the derivation and the numeric checker.
PAPER = Quantities("sae-amortisation", [
    Quantity("cs.c", 2, "constant", "notes 1 [REPO]",
             "m = max(k + 1, ceil(c k ln(n/k))) with c = 2"),
    Quantity("cs.floor", 1, "index", "notes 1 [REPO]", "m >= k + 1",
             exempt={"-1": _FLOOR, "+1": _FLOOR}),
    Quantity("cs.k", 10, "index", "notes 1 [REPO]", "k = 10 active latents on the n grid"),
    *[Quantity(f"cs.m.{size}", value, "index", "notes 1 [REPO]", f"m at n = {size}, k = 10")
      for size, value in ((50, 33), (100, 47), (500, 79), (1000, 93), (5000, 125),
                          (10000, 139))],
    Quantity("fista.rate", 2, "constant", "Thm 4.4 [BT, numbering unconfirmed]",
             "F(z_k) - F* <= 2 L ||z_0 - z*||^2 / (k + 1)^2"),
    Quantity("ista.rate", sp.Rational(1, 2), "constant",
             "Thm 3.1 [BT, numbering unconfirmed]",
             "F(z_k) - F* <= (1/2) L ||z_0 - z*||^2 / k"),
    Quantity("fista.momentum", 4, "constant", "notes 2.1 [BT]",
             "t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2"),
    Quantity("prox.threshold", 1, "constant", "notes 2.1 [BT]",
             "the prox of lam ||.||_1 at step eta thresholds at 1 * eta * lam"),
    Quantity("coherence.half", sp.Rational(1, 2), "constant", "notes 5.1 [CS]",
             "K < (1/2)(1 + 1/mu) certifies K-sparse recovery"),
    Quantity("spark.half", sp.Rational(1, 2), "constant", "notes 5.1 [CS]",
             "||z||_0 < (1/2) spark(D): z is the unique sparsest code"),
    Quantity("mp.angle", 2 * sp.pi / 3, "constant", "notes 5.5 [prop]",
             "three unit atoms at 120 degrees in the plane"),
    Quantity("mp.halfplane", 5 * sp.pi / 18, "constant", "notes 5.5 [corr]",
             "atoms at 0, 50, 100 degrees: a half-plane",
             exempt={"x0.99": _HALF_PLANE, "x1.01": _HALF_PLANE}),
    Quantity("prop.K", 2, "index", "notes 5.5 [prop]",
             "the smallest sparsity K for which no one-pass encoder is exact"),
])

#: The experiments' grid of atom counts (notes 1); the table's m values are quantities.
CS_SIZES = (50, 100, 500, 1000, 5000, 10000)
ATOMS, DIMENSIONS = 3, 2  # the proposition's smallest case, N = 3 > M = 2

# --- the proposition ------------------------------------------------------------------------
W = sp.Matrix(ATOMS, DIMENSIONS, lambda i, j: sp.Symbol(f"W{i}{j}", real=True))
P = sp.Matrix(ATOMS, DIMENSIONS, lambda i, j: sp.Symbol(f"P{i}{j}", real=True))
D = sp.Matrix(DIMENSIONS, ATOMS, lambda i, j: sp.Symbol(f"D{i}{j}", real=True))
G = sp.Matrix(ATOMS, ATOMS, lambda i, j: sp.Symbol(f"g{i}{j}", real=True))
H = sp.Matrix(ATOMS, ATOMS, lambda i, j: sp.Symbol(f"h{i}{j}", real=True))
B = sp.symbols("b0:3", real=True)
U = sp.symbols("u0:3", real=True)  # the probe's offset
Delta = sp.Symbol("Delta", real=True)  # det G, defined by hypothesis det
DeltaP = sp.Symbol("DeltaP", real=True)  # det H, defined by hypothesis pdet
S = sp.symbols("s0:3", positive=True)
# --- the frames -------------------------------------------------------------------------------
phi, psi = sp.symbols("phi psi", real=True)
a, b_, t_ = sp.symbols("a b t", positive=True)
C = sp.symbols("c0:3", real=True)
# --- FISTA ------------------------------------------------------------------------------------
L, eta, lam = sp.symbols("L eta lambda", positive=True)
tau = sp.Symbol("tau", positive=True)
v = sp.Symbol("v", real=True)
w = sp.Symbol("w", positive=True)
w0 = sp.Symbol("w", nonnegative=True)
z = sp.Symbol("z", nonnegative=True)
zr = sp.Symbol("z", real=True)
k = sp.Symbol("k", positive=True, integer=True)
j = sp.Symbol("j", positive=True, integer=True)
t, tp, t_one = sp.symbols("t tp t1", positive=True)
d2 = sp.Symbol("d2", nonnegative=True)
Fs = sp.Symbol("Fs", real=True)
F, Fa, r = sp.Function("F", real=True), sp.Function("Fa", real=True), sp.Function("r", real=True)
# --- compressed sensing -----------------------------------------------------------------------
n, m = sp.symbols("n m", positive=True, integer=True)
K = sp.Symbol("K", positive=True, integer=True)
mu = sp.Symbol("mu", positive=True)
mu0 = sp.Symbol("mu", nonnegative=True)
spark = sp.Symbol("spark", positive=True, integer=True)
p = sp.Symbol("p", positive=True, integer=True)
c = sp.Function("c")
Soff, F2 = sp.symbols("Soff F2", nonnegative=True)
trG = sp.Symbol("trG", real=True)
csc = sp.Symbol("c", positive=True)  # the rule's constant, defined by hypothesis cs
_x = sp.Symbol("x", real=True)
_y = sp.Symbol("y", nonnegative=True)
_q = sp.Symbol("q", positive=True)

#: What each letter of the derivation means: the legend printed with it. A symbol as a key is
#: matched with its assumptions, a string by name or as a glob pattern of names.
SYMBOLS = {
    "D[0-9][0-9]": "D_ij: the entries of the dictionary D (2 x 3: N = 3 atoms in M = 2 "
                   "dimensions)",
    "W[0-9][0-9]": "W_ij: the entries of the encoder W (3 x 2)",
    "g[0-9][0-9]": "g_ij: the entries of G = W D",
    "b[0-9]": "b_i: the entries of the encoder's bias b",
    "s[0-9]": "s_i: a point of a support's open box (the code's entries)",
    "Delta": "det G",
    "P[0-9][0-9]": "P_ij: the entries of a linear probe P (3 x 2)",
    "u[0-9]": "u_i: the entries of the probe's offset",
    "h[0-9][0-9]": "h_ij: the entries of H = P D",
    "DeltaP": "det H",
    "phi": "the angle between consecutive atoms of the 120-degree frame",
    "psi": "the angle between consecutive atoms of the half-plane frame (0, 50, 100 degrees)",
    "a": "a nonnegative code entry",
    "b": "a nonnegative code entry",
    "t": "the momentum term t_k of FISTA; in the frames, a nonnegative code entry",
    "c[0-9]": "c_i: code magnitudes",
    "L": "the Lipschitz constant of the gradient of the smooth part",
    "eta": "the step size",
    "lambda": "the weight of the l1 penalty",
    "tau": "the threshold, eta lambda",
    "v": "the point the prox is taken at",
    w: "v - tau, where v is above the threshold",
    w0: "tau - v, where v is at or below the threshold",
    "z": "a candidate code entry of the prox",
    "k": "the iteration",
    "j": "an iteration; the index of a sum over iterations",
    "tp": "the momentum term t_{k-1}",
    "t1": "the momentum term t_1",
    "F": "F(j): the objective at the j-th ISTA iterate",
    "Fa": "Fa(k): the objective at the k-th FISTA iterate",
    "Fs": "F*: the minimum of the objective",
    "r": "r(j) = ||z_j - z*||^2: the squared distance of the j-th iterate from a minimiser",
    "d2": "||z_0 - z*||^2: the squared distance of the start from a minimiser",
    "n": "the number of atoms (latents)",
    "m": "the number of dimensions (measurements)",
    "K": "the sparsity: the number of nonzero entries of a code",
    "mu": "the mutual coherence of the dictionary",
    "spark": "the spark of the dictionary: its fewest linearly dependent columns",
    "p": "the index of an off-diagonal Gram entry",
    c: "c(p): the n (n - 1) off-diagonal entries of the Gram matrix D^T D",
    csc: "the constant of the rule m = ceil(c K ln(n/K))",
    "Soff": "the sum of squares of the off-diagonal Gram entries",
    "F2": "||D^T D||_F^2",
    "trG": "the trace of the Gram matrix D^T D",
    "x": "a real number",
    "y": "a nonnegative number",
    "q": "a positive number",
}


# --- plain helpers for the numeric checker (each reads PAPER, so a mutation reaches it) --------

def compressed_sensing_dim(n: int, k: int) -> int:
    """Return the experiments' measurement dimension ``m = max(k + 1, ceil(c k ln(n/k)))``.

    The notes' rule (sec. 1) with ``c = 2``; computed exactly, so no rounding moves the ceiling.
    Raises ``ValueError`` unless ``1 <= k < n``. Then ``m <= n`` as the experiments require:
    ``2 k ln(n/k)`` peaks at ``2n/e < n`` (``k = n/e``).
    """
    for value, name in ((n, "n"), (k, "k")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"expected int but got {name}={value!r} "
                            f"(type={type(value).__name__})")
    n, k = int(n), int(k)
    if not 1 <= k < n:
        raise ValueError(f"k={k} must satisfy 1 <= k < n={n}")
    rule = sp.ceiling(PAPER["cs.c"] * k * sp.log(sp.Rational(n, k)))
    return int(max(k + PAPER["cs.floor"], rule))


def fista_rate_bound(k, lipschitz, distance_sq):
    """Return FISTA's bound on ``F(z_k) - F*``: ``2 L ||z_0 - z*||^2 / (k + 1)^2`` (Thm 4.4;
    the notes' numbering, unconfirmed).

    Plain arithmetic, so arrays of ``k`` and ``distance_sq`` broadcast; a scalar gives a float.
    """
    _check_rate_arguments(k, lipschitz, distance_sq)
    return float(PAPER["fista.rate"]) * lipschitz * distance_sq / (k + 1) ** 2


def ista_rate_bound(k, lipschitz, distance_sq):
    """Return ISTA's bound on ``F(z_k) - F*``: ``L ||z_0 - z*||^2 / (2 k)`` (Thm 3.1; the
    notes' numbering, unconfirmed).

    Plain arithmetic, so arrays of ``k`` and ``distance_sq`` broadcast; a scalar gives a float.
    """
    _check_rate_arguments(k, lipschitz, distance_sq)
    return float(PAPER["ista.rate"]) * lipschitz * distance_sq / k


def coherence_certifies(k: int, mu: float) -> bool:
    """Whether mutual coherence ``mu`` certifies every ``k``-sparse code: ``k < (1 + 1/mu)/2``.

    Equivalently ``mu < 1/(2k - 1)``; then the code is the unique sparsest one and basis pursuit
    and OMP recover it (notes 5.1). ``mu = 0`` (orthonormal atoms) certifies every ``k``.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    if not 0 <= mu <= 1:
        raise ValueError(f"mu={mu!r} must lie in [0, 1]; it is a maximum of |cosines|")
    if mu == 0:
        return True
    return bool(k < float(PAPER["coherence.half"]) * (1 + 1 / mu))


def welch_bound(n: int, m: int) -> float:
    """Return the Welch bound ``sqrt((n - m)/(m (n - 1)))``: no ``n`` unit vectors in ``R^m``
    have a smaller mutual coherence (notes 5.1)."""
    if not (isinstance(n, numbers.Integral) and isinstance(m, numbers.Integral)) \
            or not 1 <= m < n:
        raise ValueError(f"n={n!r}, m={m!r} must be integers with 1 <= m < n")
    return math.sqrt((n - m) / (m * (n - 1)))


def frame_120() -> sp.Matrix:
    """Return the 2 x 3 dictionary of three unit atoms at 0, 120 and 240 degrees (exact)."""
    return _frame(PAPER["mp.angle"])


def _check_rate_arguments(k, lipschitz, distance_sq):
    # scalars only: arrays from the numeric checker are its own to validate
    if isinstance(k, numbers.Real) and not (isinstance(k, numbers.Integral) and k >= 1):
        raise ValueError(f"k={k!r} must be a positive integer (the iteration)")
    if isinstance(lipschitz, numbers.Real) and not lipschitz > 0:
        raise ValueError(f"lipschitz={lipschitz!r} must be positive")
    if isinstance(distance_sq, numbers.Real) and not distance_sq >= 0:
        raise ValueError(f"distance_sq={distance_sq!r} must be nonnegative")


# --- expressions the steps share --------------------------------------------------------------

def _frame(angle) -> sp.Matrix:
    return sp.Matrix(2, 3, lambda i, col: sp.cos(col * angle) if i == 0 else sp.sin(col * angle))


def _leibniz(M: sp.Matrix) -> sp.Expr:
    """``det M`` by the Leibniz formula, products left unexpanded (``det G`` and ``det H`` in
    their entries' symbols; the steps substitute ``G = W D``, ``H = P D`` or the entries found)."""
    total = sp.Integer(0)
    for perm in itertools.permutations(range(M.shape[0])):
        sign = sp.combinatorics.Permutation(list(perm)).signature()
        total += sign * sp.Mul(*[M[i, perm[i]] for i in range(M.shape[0])], evaluate=False)
    return total


def _supports(size: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(ATOMS), size))


def _exact_label(support, i) -> str:
    return "x" + "".join(map(str, support)) + f".{i}"


def _momentum_next(value):
    """``(1 + sqrt(1 + 4 t^2)) / 2``: the next momentum term (notes 2.1)."""
    return (1 + sp.sqrt(1 + PAPER["fista.momentum"] * value**2)) / 2


def _prox_objective(value, point):
    """``lam z + (z - v)^2 / (2 eta)``: the objective the prox step minimises."""
    return lam * value + (value - point) ** 2 / (2 * eta)


def _cs_rule(size):
    k_grid = PAPER["cs.k"]
    return sp.Max(k_grid + PAPER["cs.floor"], sp.ceiling(csc * k_grid * sp.log(
        sp.Rational(size, k_grid))))


def _fista_bound():
    return PAPER["fista.rate"] * L * d2 / (k + 1) ** 2


def _ista_bound():
    return PAPER["ista.rate"] * L * d2 / k


def _step(label, claim, **kwargs) -> Step:
    """A :class:`Step`; under a mutation a claim whose sides collapse to one number (the empty
    code of a K - 1 = 0 counterexample) is kept as written, so that the derivation still builds
    and the mutation is caught by the steps it breaks."""
    if PAPER.mutation is not None and isinstance(claim, sp.core.relational.Relational) \
            and claim.lhs == claim.rhs:
        claim = claim.func(sp.UnevaluatedExpr(claim.lhs), claim.rhs, evaluate=False)
    return Step(label, claim, **kwargs)


# --- hypotheses -------------------------------------------------------------------------------

def _exact_hypotheses():
    """Exactness on every support's open box, as the value of ``b_i``: for ``i`` in ``S`` and
    every ``s`` in ``B_S``, ``(G s + b)_i = s_i``."""
    pairs = []
    for support in _supports(PAPER["prop.K"]):
        for i in support:
            pairs.append((_exact_label(support, i),
                          eq(B[i], S[i] - sum(G[i, col] * S[col] for col in support))))
    return pairs


def _probe_hypotheses():
    """Exactness of a linear probe ``x -> P x + u`` on every 1-sparse box, as the value of
    ``u_i``: on the box of support ``{j}`` (``s = s_j e_j``), ``(H s + u)_i = s_i`` for every
    row ``i``, with no ReLU to drop (so ``K >= 1`` suffices)."""
    return [(f"y{col}.{i}", eq(U[i], (1 if i == col else 0) * S[col] - H[i, col] * S[col]))
            for col in range(ATOMS) for i in range(ATOMS)]


def _hypotheses():
    WD, PD = W * D, P * D
    return [
        *[(f"G{i}{col}", eq(G[i, col], WD[i, col])) for i in range(ATOMS)
          for col in range(ATOMS)],
        *_exact_hypotheses(),
        ("det", eq(Delta, _leibniz(G))),
        *[(f"H{i}{col}", eq(H[i, col], PD[i, col])) for i in range(ATOMS)
          for col in range(ATOMS)],
        *_probe_hypotheses(),
        ("pdet", eq(DeltaP, _leibniz(H))),
        ("frame", eq(phi, PAPER["mp.angle"])),
        ("half", eq(psi, PAPER["mp.halfplane"])),
        ("tau", eq(tau, PAPER["prox.threshold"] * eta * lam)),
        ("tnext", eq(t, _momentum_next(tp))),
        ("t1", eq(t_one, 1)),
        ("ih", le(k / 2, tp)),
        ("lemma41", le(Fa(k) - Fs, L * d2 / (2 * t**2))),
        ("lemma23", le(2 / L * (F(j) - Fs), r(j - 1) - r(j))),
        ("descent", le(F(k), F(j))),
        ("rk", ge(r(k), 0)),
        ("r0", eq(r(0), d2)),
        ("spark", lt(K, PAPER["spark.half"] * spark)),
        ("gauss", eq(spark, m + 1)),
        ("coh", lt(K, PAPER["coherence.half"] * (1 + 1 / mu))),
        ("coh_mu", lt(mu, 1 / (2 * K - 1))),
        ("entry", le(c(p) ** 2, mu0**2)),
        ("offdiag", eq(Soff, sp.Sum(c(p) ** 2, (p, 1, n * (n - 1))))),
        ("frob", eq(F2, n + Soff)),
        ("trace", eq(trG, n)),
        ("spectral", le(trG**2, m * F2)),
        ("cs", eq(csc, PAPER["cs.c"])),
    ]


_HYPOTHESIS_NOTES = {
    "G00": "G = W D for an encoder W (3 x 2) and a dictionary D (2 x 3) (likewise G01 .. G22)",
    "x01.0": "exact on the open box of support {0, 1}: s_0 > 0 there, so ReLU((G s + b)_0) = s_0 "
             "forces (G s + b)_0 = s_0 for every s in the box; a TopK encoder gives the same "
             "identity on the region where it selects the support (likewise every K-subset S and "
             "i in S)",
    "det": "Delta names det G, expanded by the Leibniz formula",
    "H00": "H = P D for a linear probe P (3 x 2) (likewise H01 .. H22)",
    "y0.0": "a linear probe x -> P x + u exact on the open box of support {0}: (H s + u)_0 = s_0 "
            "for every s = s_0 e_0 there (likewise every support {j} and every row i)",
    "pdet": "DeltaP names det H, expanded by the Leibniz formula",
    "frame": "the 120-degree frame: atoms (cos j phi, sin j phi), j = 0, 1, 2",
    "half": "the half-plane frame: atoms (cos j psi, sin j psi), psi = 50 degrees",
    "tau": "the threshold is the step times the l1 weight",
    "tnext": "the momentum update of FISTA, t_k from t_{k-1} (k >= 2)",
    "t1": "FISTA starts the momentum at t_1 = 1",
    "ih": "the induction hypothesis t_{k-1} >= k/2 (k >= 2): (T4) carries it to t_k, (T0) is the "
          "base case",
    "lemma41": "FISTA's per-iterate bound F(z_k) - F* <= L ||z_0 - z*||^2 / (2 t_k^2) "
               "(Beck & Teboulle, Lemma 4.1 and the proof of Thm 4.4; numbering unconfirmed)",
    "lemma23": "ISTA's per-iterate inequality at x = z*, y = z_{j-1} (Beck & Teboulle, Lemma 2.3; "
               "numbering unconfirmed): (2/L)(F(z_j) - F*) <= ||z_{j-1} - z*||^2 - "
               "||z_j - z*||^2",
    "descent": "ISTA is a descent method: F(z_k) <= F(z_j) for j = 1..k",
    "spark": "a K-sparse code with K < spark(D)/2",
    "gauss": "a Gaussian dictionary has spark m + 1 almost surely",
    "coh": "the coherence condition in its first form",
    "coh_mu": "the coherence condition in its second form",
    "entry": "each of the n (n - 1) off-diagonal Gram entries has |<d_i, d_j>| <= mu",
    "frob": "unit columns: the n diagonal entries of D^T D are 1",
    "trace": "unit columns: tr(D^T D) = n",
    "spectral": "(sum of eigenvalues)^2 <= rank * (sum of squared eigenvalues), rank D^T D <= m",
    "cs": "the rule's constant c",
}


# --- the proposition [prop] -------------------------------------------------------------------

def _coefficient_steps(prefix, matrix, offset, hypothesis, cite, where) -> list[Step]:
    """Coefficient matching by differentiation: ``hypothesis(i, j)`` names an identity
    ``offset_i = delta_ij s_j - m_ij s_j + ...`` that holds for every ``s`` of an open box, so it
    may be differentiated in ``s_j`` there (every point of the box has a neighbourhood in it);
    ``offset_i`` is a constant, so its derivative vanishes and ``m_ij = delta_ij``."""
    steps = []
    for i in range(ATOMS):
        for col in range(ATOMS):
            delta = 1 if i == col else 0
            slope = sp.Derivative(offset[i], S[col], evaluate=False)
            label, support = hypothesis(i, col)
            steps += [
                Step(f"{prefix}A{i}{col}", eq(matrix[i, col], delta - slope),
                     uses=(label,), cite=cite,
                     show=f"d/ds_{col} of ({where} s + {offset[i].name[0]})_{i} - s_{i} = 0 on the "
                          f"box of {set(support)}: {matrix[i, col]} = "
                          f"{'1 ' if delta else ''}- d{offset[i]}/ds_{col}",
                     note="differentiating the identity of the hypothesis, valid on the open box"),
                Step(f"{prefix}I{i}{col}", eq(matrix[i, col], delta), by="chain",
                     uses=(f"{prefix}A{i}{col}",), cite=cite,
                     show=f"{matrix[i, col]} = {delta}",
                     note=f"{offset[i]} is a constant: its derivative in s_{col} is 0"),
            ]
    return steps


def _entry_steps() -> list[Step]:
    """``G = I_3`` entry by entry, each from a support holding both ``i`` and ``j``."""
    supports = _supports(PAPER["prop.K"])

    def hypothesis(i, col):
        # a support holding both i and j; without one (K = 1) the support of i alone, where the
        # identity says nothing of g_ij
        support = next((sup for sup in supports if i in sup and col in sup),
                       next(sup for sup in supports if i in sup))
        return _exact_label(support, i), support

    return _coefficient_steps("", G, B, hypothesis, "notes 5.5, proof steps 2-4 [prop]", "G")


def _probe_steps() -> list[Step]:
    """The linear probe: ``P D = I_3`` by the same differentiation, against ``rank P D <= 2``."""
    cite = "notes 5.5, remarks [prop]"
    upper = tuple(f"PI{i}{col}" for i in range(ATOMS) for col in range(i, ATOMS))
    return [
        *_coefficient_steps("P", H, U, lambda i, col: (f"y{col}.{i}", (col,)), cite, "H"),
        Step("probeI", eq(DeltaP, 1), uses=("pdet", *upper), cite=cite,
             show="exact on every 1-sparse box: P D = I_3, so det(P D) = 1"),
        Step("probe0", eq(DeltaP, 0), uses=("pdet", *(f"H{i}{col}" for i in range(ATOMS)
                                                      for col in range(ATOMS))),
             cite=cite, show="det(P D) = 0: rank P D <= M = 2 < N = 3"),
        Step("probe", sp.And(eq(DeltaP, 1), eq(DeltaP, 0)), by="chain",
             uses=("probeI", "probe0"), cite=cite,
             show="det(P D) would be 1 and 0: no linear probe x -> P x + u is exact (K >= 1)"),
    ]


def _proposition_steps() -> list[Step]:
    # the diagonal and the upper triangle fix det G; the lower triangle completes G = I_3
    entries = tuple(f"I{i}{col}" for i in range(ATOMS) for col in range(i, ATOMS))
    cite = "notes 5.5 [prop]"
    return [
        *_entry_steps(),
        Step("detI", eq(Delta, 1), uses=("det", *entries), cite=cite,
             show="exact on every K-sparse box: G = I_3, so det G = 1"),
        Step("rank", eq(Delta, 0), uses=("det", *(f"G{i}{col}" for i in range(ATOMS)
                                                  for col in range(ATOMS))),
             cite="notes 5.5, proof step 1 [prop]",
             show="det G = 0 for G = W D: rank W D <= M = 2 < N = 3",
             note="the 3 x 3 determinant of a (3 x 2)(2 x 3) product vanishes identically"),
        Step("prop", sp.And(eq(Delta, 1), eq(Delta, 0)), by="chain",
             uses=("detI", "rank"), cite="notes 5.5 [prop]",
             show="exactness gives det G = 1, G = W D gives det G = 0: no ReLU(W D s + b) "
                  "recovers every K-sparse nonnegative code (N = 3 > M = 2, K = 2)",
             note="a TopK encoder meets the same contradiction: exact on B_S, it returns s, whose "
                  "K positive entries lie on S, so it selects S there and (G s + b)_i = s_i for i "
                  "in S, the identity of the x hypotheses"),
        *_probe_steps(),
    ]


def _frame_steps() -> list[Step]:
    """The 120-degree frame, the correction to the smallest example, and the half-plane frame."""
    frame = _frame(phi)
    d0, d1, d2_ = (frame[:, col] for col in range(3))
    minors = [frame[:, [i, col]].det() for i, col in ((0, 1), (0, 2), (1, 2))]
    x = a * d0 + b_ * d1  # a point of the cone of atoms 0 and 1

    def cramer(first, second, point):  # the code of point on atoms (first, second)
        pair = sp.Matrix.hstack(first, second)
        return (sp.Matrix.hstack(point, second).det() / pair.det(),
                sp.Matrix.hstack(first, point).det() / pair.det())

    other = (a + t_, b_ + t_, t_)  # another nonnegative code of x: the null vector (1, 1, 1) added
    image = frame * sp.Matrix(other)
    half = _frame(psi)
    alpha = 1 / (2 * sp.cos(psi))
    cite = "notes 5.5 [corr]"
    independent = sp.And(*[gt(minor**2, 0) for minor in minors])
    dependent = sp.And(eq(sum(frame[0, :]), 0), eq(sum(frame[1, :]), 0))
    return [
        Step("C1", independent, uses=("frame",), cite=cite,
             show="every 2 x 2 minor of the 120-degree frame is nonzero",
             note="any two atoms are independent: spark(D) >= 3"),
        Step("C2", dependent, uses=("frame",), cite=cite, show="d0 + d1 + d2 = 0",
             note="all three atoms are dependent (spark(D) <= 3) and span the plane positively"),
        Step("C3a", le(ATOMS, 2 * PAPER["prop.K"]), cite=cite, show="3 <= 2K"),
        Step("C3", sp.And(*independent.args, *dependent.args, le(ATOMS, 2 * PAPER["prop.K"])),
             by="chain", uses=("C1", "C2", "C3a"), cite=cite,
             show="spark(D) = 3 <= 2K: the spark condition fails at K = 2",
             note="spark 3 is (C1) no two atoms dependent with (C2) the three dependent; the "
                  "framework has no spark method, so the claim is their conjunction with (C3a)"),
        Step("C4", sp.And(*[eq((frame * sp.Matrix([a - b_, 0, -b_]))[row], x[row])
                            for row in range(2)]), uses=("frame",), cite=cite,
             show="D (a - b, 0, -b) = a d0 + b d1: without signs, a second 2-sparse code"),
        Step("C5", sp.And(lt(cramer(d0, d2_, x)[1], 0), lt(cramer(d1, d2_, x)[1], 0)),
             uses=("frame",), cite=cite,
             show="x = a d0 + b d1 (a, b > 0) has a negative coefficient on the pairs (0, 2) and "
                  "(1, 2)",
             note="so the three pairwise cones partition the plane: one nonnegative 2-sparse "
                  "code per point"),
        Step("C6", sp.And(eq(image[0], x[0]), eq(image[1], x[1]), gt(sum(other), a + b_)),
             uses=("frame",), cite=cite,
             show="every other nonnegative code (a + t, b + t, t), t > 0, has the same image and "
                  "a larger l1 norm: nonnegative l1 recovers every code"),
        Step("C7", sp.And(eq(alpha * (half[0, 0] + half[0, 2]), half[0, 1]),
                          eq(alpha * (half[1, 0] + half[1, 2]), half[1, 1])), cite=cite,
             show="atoms at 0, psi, 2 psi: d1 = alpha (d0 + d2), alpha = 1/(2 cos psi)",
             note="for every psi: the middle atom is a combination of the outer two"),
        Step("C8", sp.And(gt(alpha, 0), gt(2 * alpha, 1)), uses=("half",), cite=cite,
             show="psi = 50 degrees: alpha > 0 and 2 alpha > 1",
             note="so d1 has two nonnegative codes, e1 and (alpha, 0, alpha); e1 has the smaller "
                  "l1 norm, so nonnegative l1 misses the 2-sparse code: the cones overlap"),
    ]


# --- FISTA [BT] -------------------------------------------------------------------------------

def _prox_steps() -> list[Step]:
    cite = "notes 2.1 [BT]"
    above = tau + w  # v above the threshold
    below = tau - w0  # v at or below it
    return [
        Step("X1", eq(_prox_objective(z, above) - _prox_objective(above - tau, above),
                      (z - (above - tau)) ** 2 / (2 * eta)), uses=("tau",), cite=cite,
             show="v > tau: lam z + (z - v)^2/(2 eta) exceeds its value at v - tau by "
                  "(z - v + tau)^2/(2 eta)",
             note="so v - tau is the prox: the soft threshold where v > tau"),
        Step("X2", ge(_prox_objective(z, below) - _prox_objective(0, below), 0), uses=("tau",),
             cite=cite, show="v <= tau, z >= 0: the objective is smallest at z = 0",
             note="with (X1): max(v - tau, 0) is the prox of lam ||.||_1 plus z >= 0; the signed "
                  "soft threshold follows by z -> -z"),
    ]


def _momentum_steps() -> list[Step]:
    """``t_k >= (k + 1)/2`` by induction on ``k``: the base case (T0) and the induction step
    (T4), joined in (Tind), on which the FISTA rate rests."""
    cite = "notes 5.2 [BT]"
    return [
        Step("T0", le(1, t_one), uses=("t1",), cite=cite,
             show="t_1 = 1 >= (1 + 1)/2: the base case"),
        Step("T1", eq(t**2 - t, tp**2), uses=("tnext",), cite=cite,
             show="t_k^2 - t_k = t_{k-1}^2"),
        Step("T2", le(_momentum_next(k / 2), _momentum_next(tp)), by="apply",
             at={_y: _momentum_next(_y)}, uses=("ih",), cite=cite,
             show="t_{k-1} >= k/2 gives t_k >= (1 + sqrt(1 + k^2))/2",
             note="the update is increasing in t_{k-1}"),
        Step("T3a", lt(k**2, k**2 + 1), role="algebra"),
        Step("T3", le((k + 1) / 2, _momentum_next(k / 2)), by="apply",
             at={_q: (1 + sp.sqrt(_q)) / 2}, uses=("T3a",), cite=cite,
             show="(1 + sqrt(1 + k^2))/2 >= (k + 1)/2"),
        Step("T4", le((k + 1) / 2, t), by="chain", uses=("T3", "T2", "tnext"), cite=cite,
             show="t_{k-1} >= k/2 gives t_k >= (k + 1)/2: the induction step"),
        Step("Tind", sp.And(le(1, t_one), le((k + 1) / 2, t)), by="chain", uses=("T0", "T4"),
             cite=cite, show="t_k >= (k + 1)/2 for every k >= 1, by induction",
             note="the framework has no induction method: the claim joins the base case (T0) and "
                  "the induction step (T4), which together are the induction"),
    ]


def _rate_steps() -> list[Step]:
    cite_f, cite_i = "Thm 4.4 [BT, numbering unconfirmed]", "Thm 3.1 [BT, numbering unconfirmed]"
    summed = sp.summation(2 / L * (F(j) - Fs), (j, 1, k))
    return [
        Step("R1", le(L * d2 / (2 * t**2), L * d2 / (2 * ((k + 1) / 2) ** 2)), by="apply",
             at={_q: L * d2 / (2 * _q**2)}, uses=("Tind",), cite=cite_f,
             show="t_k >= (k + 1)/2 (Tind) gives L d^2 / (2 t_k^2) <= L d^2 / (2 ((k + 1)/2)^2)"),
        Step("R2", eq(L * d2 / (2 * ((k + 1) / 2) ** 2), _fista_bound()), cite=cite_f,
             show="L d^2 / (2 ((k + 1)/2)^2) = 2 L d^2 / (k + 1)^2",
             note="the rate's constant is exactly what t_k >= (k + 1)/2 gives; (R3) reaches it "
                  "from (R1) directly"),
        Step("R3", le(Fa(k) - Fs, _fista_bound()), by="chain", uses=("lemma41", "R1"),
             cite=cite_f, show="FISTA: F(z_k) - F* <= 2 L ||z_0 - z*||^2 / (k + 1)^2"),
        Step("S1", le(summed, r(0) - r(k)), by="sum", at={j: (1, k)}, uses=("lemma23",),
             cite=cite_i, note="the right side telescopes"),
        Step("S2", le(k * F(k), sp.Sum(F(j), (j, 1, k))), by="sum", at={j: (1, k)},
             uses=("descent",), cite=cite_i),
        Step("S3", le(2 / L * (k * F(k) - k * Fs), 2 / L * (sp.Sum(F(j), (j, 1, k)) - k * Fs)),
             by="apply", at={_x: 2 / L * (_x - k * Fs)}, uses=("S2",), cite=cite_i),
        Step("S4", le(r(0) - r(k), r(0)), by="apply", at={_x: r(0) - _x}, uses=("rk",),
             cite=cite_i),
        Step("S5", le(2 / L * (k * F(k) - k * Fs), d2), by="chain", uses=("S3", "S1", "S4", "r0"),
             cite=cite_i),
        Step("S6", le(F(k) - Fs, _ista_bound()), by="apply", at={_x: L * _x / (2 * k)},
             uses=("S5",), cite=cite_i, show="ISTA: F(z_k) - F* <= L ||z_0 - z*||^2 / (2 k)"),
    ]


# --- compressed sensing [CS], [REPO] ----------------------------------------------------------

def _recovery_steps() -> list[Step]:
    half = PAPER["coherence.half"]
    cite = "notes 5.1 [CS]"
    return [
        Step("U1", lt(2 * K, spark), by="apply", at={_x: 2 * _x}, uses=("spark",), cite=cite,
             show="K < spark/2 gives 2K < spark(D)",
             note="two K-sparse codes of one x differ by a null vector with at most 2K < spark "
                  "nonzeros, so they are equal"),
        Step("U2", lt(2 * K, m + 1), by="chain", uses=("U1", "gauss"), cite=cite,
             show="a Gaussian D (spark m + 1) makes every K-sparse code unique once 2K <= m"),
        Step("U3", sp.And(*[lt(2 * PAPER["cs.k"], PAPER[f"cs.m.{size}"] + 1)
                            for size in CS_SIZES]), cite="notes 1 [REPO], 5.1 [CS]",
             show="2k < m + 1 on the whole grid: l0 inference is solvable there"),
        Step("K1", lt(2 * K - 1, 1 / mu), by="apply", at={_x: 2 * _x - 1}, uses=("coh",),
             cite=cite),
        Step("K2", lt(mu, 1 / (2 * K - 1)), by="apply", at={_q: 1 / _q}, uses=("K1",), cite=cite,
             show="K < (1 + 1/mu)/2 gives mu < 1/(2K - 1)"),
        Step("K3", lt(2 * K - 1, 1 / mu), by="apply", at={_q: 1 / _q}, uses=("coh_mu",),
             cite=cite),
        Step("K4", lt(K, half * (1 + 1 / mu)), by="apply", at={_x: (_x + 1) / 2}, uses=("K3",),
             cite=cite, show="mu < 1/(2K - 1) gives K < (1 + 1/mu)/2: the two forms agree"),
        Step("W1", le(sp.Sum(c(p) ** 2, (p, 1, n * (n - 1))), n * (n - 1) * mu0**2), by="sum",
             at={p: (1, n * (n - 1))}, uses=("entry",), cite=cite),
        Step("W2", le(Soff, n * (n - 1) * mu0**2), by="chain", uses=("offdiag", "W1"),
             cite=cite),
        Step("W3", le(n + Soff, n + n * (n - 1) * mu0**2), by="apply", at={_x: n + _x},
             uses=("W2",), cite=cite),
        Step("W4", le(F2, n + n * (n - 1) * mu0**2), by="chain", uses=("frob", "W3"), cite=cite,
             show="||D^T D||_F^2 <= n + n (n - 1) mu^2"),
        Step("W5", eq(trG**2, n**2), uses=("trace",), role="algebra"),
        Step("W6", le(m * F2, m * (n + n * (n - 1) * mu0**2)), by="apply", at={_x: m * _x},
             uses=("W4",), role="algebra"),
        Step("W7", le(n**2, m * (n + n * (n - 1) * mu0**2)), by="chain",
             uses=("W5", "spectral", "W6"), cite=cite,
             show="n^2 / m <= ||D^T D||_F^2 <= n + n (n - 1) mu^2"),
        Step("W8", le((n - m) / m, (n - 1) * mu0**2), by="apply", at={_x: _x / (m * n) - 1},
             uses=("W7",), cite=cite,
             show="Welch: (n - 1) mu^2 >= (n - m)/m, i.e. mu >= sqrt((n - m)/(m (n - 1)))"),
        Step("M1", sp.And(*[eq(_cs_rule(size), PAPER[f"cs.m.{size}"]) for size in CS_SIZES]),
             uses=("cs",), cite="notes 1 [REPO]",
             show="max(k + 1, ceil(2 k ln(n/k))) at k = 10, n = 50 .. 10^4: 33, 47, 79, 93, 125, "
                  "139"),
    ]


# --- the printed statement and the goal -------------------------------------------------------

def _printed_steps() -> list[Step]:
    """One sparsity below the proposition's K a one-pass encoder can be exact: the 120-degree
    frame with W = D^T, b = 0."""
    frame = _frame(phi)
    gram = (frame.T * frame).applyfunc(sp.trigsimp)  # cos((i - j) phi): the diagonal is exactly 1
    error = sp.Integer(0)
    for support in _supports(PAPER["prop.K"] - 1):
        code = sp.Matrix([C[i] if i in support else 0 for i in range(ATOMS)])
        error += sum((sp.Max(0, value) - target) ** 2
                     for value, target in zip(gram * code, code, strict=True))
    return [
        _step("K=1", gt(error, 0), by="interval", uses=("frame",),
              box={symbol: (sp.Rational(1, 10), 10) for symbol in C}, erratum="refuted",
              cite="paraphrased claim, notes 5.5; verbatim theorem unconfirmed",
              show="paraphrase: a one-pass encoder is never exact when N > M (K = 1: codes c e_i)",
              note="G = D^T D has 1 on the diagonal and -1/2 off it, so ReLU(c G e_i) = c e_i "
                   "for every c > 0: the proposition needs K >= 2"),
    ]


def goal():
    return sp.And(eq(Delta, 1), eq(Delta, 0), le(Fa(k) - Fs, _fista_bound()))


@PAPER.cache
def derivation() -> Derivation:
    """Check the proposition (N = 3, M = 2, K = 2) and its linear-probe variant (a TopK encoder
    gives the same identity on its selection region: a note on (prop), not a step), the
    120-degree and half-plane frames, the prox and the momentum induction of FISTA with both
    rates, and the compressed-sensing facts; the K = 1 claim, a paraphrase of secondary sources
    (the verbatim theorem is unconfirmed), is shown wrong."""
    return Derivation.check(
        "sae-amortisation",
        source="O'Neill et al. 2025 (reconstructed, notes 5.5); Beck & Teboulle 2009 "
               "(numbering unconfirmed)",
        hypotheses=(hypotheses := _hypotheses()),
        goal=goal(),
        steps=[*_proposition_steps(), *_frame_steps(), *_prox_steps(), *_momentum_steps(),
               *_rate_steps(), *_recovery_steps(),
               Step("thm", goal(), by="chain", uses=("prop", "R3"), cite="notes 5.5 [prop], [BT]",
                    show="no one-pass encoder is exact (det G, G = W D, would be 1 and 0), while "
                         "FISTA reaches 2 L ||z_0 - z*||^2 / (k + 1)^2")],
        bound=_fista_bound(),
        as_printed=_printed_steps(),
        symbols=SYMBOLS,
        # the support labels follow prop.K ("x01.0" at K = 2): a mutated K leaves some notes
        # without their hypothesis
        notes={label: note for label, note in _HYPOTHESIS_NOTES.items()
               if label in dict(hypotheses)},
    )
