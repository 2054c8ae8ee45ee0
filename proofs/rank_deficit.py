"""Derivation for Masarczyk, Ostaszewski, Cheng, Trzcinski, Lucchi, Pascanu, "Unpacking Softmax:
How Temperature Drives Representation Collapse, Compression and Generalization" (arXiv:2506.01562,
2025): the softmax Jacobian, the small-norm expansion, Prop. 3.1 (spectrum against column
similarity), Prop. 3.2 (rank-2 logits fit any labels), the rank of a linear layer's gradient and
the two ways logits grow.

The paper's full text could not be read. What is known of it comes from its abstract and from the
public reviews of its ICLR 2026 resubmission; the notes (``rank_deficit.md``) say which statements
are confirmed to exist. Every step's citation says where it stands:

- ``[R]``: a statement the reviewers attribute to the paper, its exact wording unconfirmed;
- ``[recon]``: a reconstruction written to match the reviewers' description (Prop. 3.1's bound and
  its equality case, Prop. 3.2's circle construction and loss bound, the gradient factorisation),
  checked like any other step;
- ``[std]``: a standard fact the paper leans on (the Jacobian, the cross-entropy derivatives, the
  small-norm expansion).

Every number is a :data:`PAPER` quantity, read by reference here and by the numeric checker.

Symbols: ``T`` temperature; ``z_i`` logits and ``p_i`` their softmax probabilities (``C = 3``
for the matrix facts, ``C = 4`` for the spectrum of the uniform case); ``S`` a softmaxed matrix with
columns ``s_j``; ``sigma1`` its top singular value; ``alpha`` the circle's scale; ``C`` classes;
``cosine[k]`` the cosine of the angle from the true class to class ``k`` on the circle.
"""

from __future__ import annotations

import sympy as sp

from proofs.derivation import Derivation
from proofs.quantities import Quantities, Quantity
from proofs.steps import Step, eq, ge, gt, le

_LOOSER = "a larger constant only loosens a true upper bound; the statement stays true"


__all__ = ["C", "CE", "P", "PAPER", "Q", "SYMBOLS", "T", "Z", "alpha", "circle_loss_bound",
    "circle_margin", "cosine", "derivation", "goal", "h1", "h2", "jacobian_entry", "k", "lam",
    "others_sum", "p", "p1", "p2", "p3", "phi", "prop31_bound", "psi", "s1", "s2", "sigma1",
    "softmax_expr", "t", "tail", "u", "x", "y", "z1", "z2", "z3"]


PAPER = Quantities("rank-deficit", [
    Quantity("eq1.exponent", -1, "exponent", "Eq. (1) [A]",
             "softmax_T(e)_i = exp(e_i T^-1) / sum_k exp(e_k T^-1)"),
    Quantity("jac.exponent", -1, "exponent", "notes 2.7 [std]",
             "J = (diag p - p p^T) T^-1"),
    Quantity("jac.norm_bound", sp.Rational(1, 2), "constant", "notes 2.7 [std]",
             "||diag p - p p^T||_op <= 1/2", exempt={"x1.01": _LOOSER}),
    Quantity("uniform.eigenvalue", 1, "constant", "notes 2.7 [std]",
             "uniform p: eigenvalues 1/C (multiplicity C - 1) and 0"),
    Quantity("trace.one", 1, "constant", "notes 2.7 [std]", "tr(diag p - p p^T) = 1 - ||p||^2"),
    Quantity("ce.grad_exponent", -1, "exponent", "notes 2.7 [std]",
             "d/dz [-log p_y] = (p - e_y) T^-1"),
    Quantity("ce.hessian_exponent", -2, "exponent", "notes 2.7 [std]",
             "the Hessian in z is (diag p - p p^T) T^-2"),
    Quantity("expansion.coefficient", 1, "constant", "notes 2.1 [std]",
             "softmax(z/T) = 1/C + 1 * (Pi z)/(C T) + O(1/T^2)"),
    Quantity("p31.half", sp.Rational(1, 2), "constant", "Prop. 3.1 [recon]",
             "sum_{k>=2} sigma_k^2 <= (1/(2C)) sum_{j,k} ||s_j - s_k||^2",
             exempt={"x1.01": _LOOSER}),
    Quantity("p32.angle", 2 * sp.pi, "constant", "Prop. 3.2 [recon]",
             "class c at angle 2 pi c / C",
             exempt={"x0.99": "a smaller step round the circle still separates the classes: "
                              "the nearest class is one step away and the bound uses that "
                              "step, so the statement stays true"}),
    Quantity("p32.offset", 1, "index", "Prop. 3.2 [recon]",
             "the C - 1 other classes of the loss bound"),
    Quantity("p32.margin_one", 1, "constant", "Prop. 3.2 [recon]",
             "the margin alpha (1 - cos(2 pi / C))"),
    Quantity("norm.power", 2, "exponent", "[R] W2C, notes 2.4",
             "||W h||^2 = sum_k sigma_k^2 (v_k^T h)^2"),
])

T = sp.Symbol("T", positive=True)
x = sp.Symbol("x", positive=True)  # 1/T in the expansion
z1, z2, z3 = Z = sp.symbols("z1 z2 z3", real=True)
p1, p2, p3 = P = sp.symbols("p1 p2 p3", positive=True)
Q = sp.symbols("q1 q2 q3", positive=True)  # softmax_T(z) by definition (hypotheses q1..q3)
p = sp.Symbol("p", positive=True)
lam = sp.Symbol("lambda")
alpha = sp.Symbol("alpha", positive=True)
C = sp.Symbol("C", positive=True, integer=True)
k = sp.Symbol("k", positive=True, integer=True)
cosine = sp.IndexedBase("cosine", real=True)
CE, tail, sigma1 = sp.symbols("CE tail sigma1", nonnegative=True)
others_sum = sp.Symbol("E", positive=True)  # sum_{k=1}^{C-1} exp(-alpha (1 - cosine[k]))
y = sp.Symbol("y", real=True)
t = sp.Symbol("t", real=True)
u = sp.Symbol("u", positive=True)  # 1/C
phi, psi = sp.symbols("phi psi", real=True)
s1, s2 = sp.symbols("s1 s2", nonnegative=True)
h1, h2 = sp.symbols("h1 h2", real=True)

#: What each letter of the derivation means: the legend printed with it (a string key is a name
#: or a glob pattern of names).
SYMBOLS = {
    "T": "the softmax temperature",
    "z[1-3]": "the logits of the three classes (C = 3)",
    "q[1-3]": "q = softmax_T(z), the probabilities of the logits z (Eq. (1))",
    "p[1-3]": "a probability vector over the three classes (C = 3)",
    "p": "a probability",
    "x": "1/T, the variable of the small-norm expansion",
    "lambda": "an eigenvalue of the softmax Jacobian",
    "S[0-9][0-9]": "S_ij: the entries of a 3 x 4 softmaxed matrix S with columns s_j",
    "sigma1": "the largest singular value of S",
    "tail": "sum_{k>=2} sigma_k^2: the spectrum of S below its top singular value",
    "alpha": "the scale of the circle's logits, z_ic = alpha cos(theta_c - theta_{y_i}) (Prop. "
             "3.2)",
    "C": "the number of classes",
    "k": "a class other than the true one; the index of a sum over classes",
    "cosine": "cosine[k]: the cosine of the angle from the true class to class k on the circle",
    "E": "the sum over the C - 1 other classes of exp(-alpha (1 - cosine[k]))",
    "CE": "the cross-entropy of a sample of the circle",
    "u": "1/C",
    "theta_y": "the angle of a sample's true class on the circle",
    "theta_c": "the angle of class c on the circle",
    "f": "f: the loss applied to each entry of the layer's output, L = sum f(Y_ij)",
    "t": "the argument of f",
    "A[0-9][0-9]": "A_ij: the entries of the layer's 2 x 2 input A",
    "W[0-9][0-9]": "W_ij: the entries of the layer's 2 x 2 weight W, Y = A W^T",
    "d[0-9][0-9]": "d_ij = f'(Y_ij): the entries of Delta = dL/dY",
    "h[12]": "the entries of a feature vector h",
    "s[12]": "the singular values of a 2 x 2 weight W",
    "phi": "the angle of W's left singular vectors",
    "psi": "the angle of W's right singular vectors",
    "y": "a real number",
}


def softmax_expr(logits, i):
    """Eq. (1): ``exp(z_i T^e) / sum_k exp(z_k T^e)`` with the paper's exponent ``e = -1``."""
    scale = T ** PAPER["eq1.exponent"]
    return sp.exp(logits[i] * scale) / sum(sp.exp(v * scale) for v in logits)


def jacobian_entry(i, j, probs=P):
    """``J_ij = (delta_ij p_i - p_i p_j) T^-1``."""
    return (probs[i] * sp.KroneckerDelta(i, j) - probs[i] * probs[j]) * T ** PAPER["jac.exponent"]


def prop31_bound(S: sp.Matrix):
    """Prop. 3.1's right side ``(1/(2C)) sum_{j,k} ||s_j - s_k||^2`` for an explicit matrix."""
    cols = S.shape[1]
    pairwise = sum((S[i, j] - S[i, m]) ** 2 for i in range(S.shape[0]) for j in range(cols)
                   for m in range(cols))
    return PAPER["p31.half"] / cols * pairwise


def circle_margin(classes=C):
    """``1 - cos(2 pi / C)``: the circle's margin over ``alpha``."""
    return PAPER["p32.margin_one"] - sp.cos(PAPER["p32.angle"] / classes)


def circle_loss_bound(classes=C, scale=alpha):
    """Prop. 3.2's bound ``log(1 + (C - 1) exp(-alpha (1 - cos(2 pi / C))))``."""
    return sp.log(1 + (classes - PAPER["p32.offset"]) * sp.exp(-scale * circle_margin(classes)))


def _jacobian_steps() -> list[Step]:
    simplex = ("simplex",)
    J = [[jacobian_entry(i, j) for j in range(3)] for i in range(3)]
    probs = ("q1", "q2", "q3")
    # a diagonal and an off-diagonal entry: the others follow by permuting the classes
    derivative = sp.And(*[eq(sp.diff(softmax_expr(Z, i), Z[j]), jacobian_entry(i, j, Q))
                          for i, j in ((0, 0), (0, 1))])
    minor = J[0][0] * J[1][1] - J[0][1] * J[1][0]
    uniform = (sp.eye(4) - sp.ones(4, 4) / 4) / 4
    eig = PAPER["uniform.eigenvalue"] / 4
    loss = -sp.log(softmax_expr(Z, 0))
    grad = sp.And(*[eq(sp.diff(loss, Z[j]), (Q[j] - (1 if j == 0 else 0))
                       * T ** PAPER["ce.grad_exponent"]) for j in range(3)])
    hessian = sp.And(*[eq(sp.diff(loss, Z[i], Z[j]), (
        Q[i] * sp.KroneckerDelta(i, j) - Q[i] * Q[j]) * T ** PAPER["ce.hessian_exponent"])
        for i, j in ((0, 0), (1, 1), (0, 1), (1, 2))])  # the label's class and another
    bound = PAPER["jac.norm_bound"]
    return [
        Step("J", derivative, uses=probs[:2], cite="notes 2.7 [std]",
             show="d softmax_T(z)_i / d z_j = (delta_ij p_i - p_i p_j)/T for C = 3 (entries 11, "
                  "12)", note="the softmax Jacobian"),
        Step("J1", sp.And(*[eq(sum(J[i][j] for j in range(3)), 0) for i in range(3)]),
             uses=simplex, cite="notes 2.7 [std]", show="J 1 = 0 on the simplex",
             note="so rank J <= C - 1"),
        Step("Jrank", eq(minor, p1 * p2 * p3 * T ** (2 * PAPER["jac.exponent"])), uses=simplex,
             cite="notes 2.7 [std]", show="leading 2x2 minor of J = p1 p2 p3 / T^2",
             note="nonzero on full support, zero once p3 = 0: rank J = |supp p| - 1"),
        Step("Juniform", eq(uniform.charpoly(lam).as_expr(), lam * (lam - eig) ** 3),
             cite="notes 2.7 [std]", show="charpoly((I - 11^T/4)/4) = lambda (lambda - 1/4)^3",
             note="uniform p (logits norm -> 0): eigenvalues 1/C (C - 1 times) and 0"),
        Step("Jtrace", eq(sum(J[i][i] for i in range(3)) * T,
                          PAPER["trace.one"] - (p1**2 + p2**2 + p3**2)), uses=simplex,
             cite="notes 2.7 [std]", show="tr(diag p - p p^T) = 1 - ||p||^2"),
        Step("Jrow", eq(sum(abs(J[0][j]) for j in (1, 2)) * T + J[0][0] * T,
                        2 * p1 * (1 - p1)), uses=simplex, cite="notes 2.7 [std]",
             show="Gershgorin disc of row 1 reaches 2 p1 (1 - p1)",
             note="centre p1 - p1^2, radius p1 (p2 + p3) = p1 (1 - p1)"),
        Step("Jhalf", eq(2 * p * (1 - p), bound - (2 * p - 1) ** 2 / 2), cite="notes 2.7 [std]",
             show="2 p (1 - p) = 1/2 - (2p - 1)^2 / 2"),
        Step("Jsq", le(bound - (2 * p - 1) ** 2 / 2, bound), role="algebra"),
        Step("Jnorm", le(2 * p * (1 - p), bound), by="chain", uses=("Jsq",),
             cite="notes 2.7 [std]", show="every Gershgorin disc lies below 1/2: "
             "||diag p - p p^T||_op <= 1/2"),
        Step("grad", grad, uses=probs, cite="notes 2.7 [std]",
             show="d/dz [-log p_1] = (p - e_1)/T"),
        Step("hess", hessian, uses=probs, cite="notes 2.7 [std]",
             show="d^2/dz^2 [-log p_1] = (diag p - p p^T)/T^2"),
        Step("series", eq(softmax_expr(Z, 0).subs(T, 1 / x), sp.Rational(1, 3)
                          + PAPER["expansion.coefficient"] * x * (z1 - (z1 + z2 + z3) / 3) / 3
                          + sp.O(x**2, (x, 0))), by="series", cite="notes 2.1 [std]",
             show="softmax(z/T)_1 = 1/C + (Pi z)_1/(C T) + O(1/T^2), C = 3",
             note="stacking rows: S = 11^T/C + Z Pi/(C T) + O(1/T^2), rank 1 plus a "
                  "perturbation of rank <= rank(Z Pi) and size O(1/T)"),
    ]


def _prop31_steps() -> list[Step]:
    S = sp.Matrix(3, 4, lambda i, j: sp.Symbol(f"S{i}{j}", real=True))
    frobenius = sum(v**2 for v in S)
    rayleigh = sum(sum(S[i, j] for j in range(4)) ** 2 for i in range(3)) / 4
    bound = prop31_bound(S)
    return [
        Step("31a", le(frobenius - sigma1**2, frobenius - rayleigh), by="apply",
             uses=("rayleigh",), at={y: frobenius - y}, role="algebra"),
        Step("31b", eq(frobenius - rayleigh, bound), cite="Prop. 3.1 [recon]",
             show="||S||_F^2 - ||S 1||^2 / C = (1/(2C)) sum_{j,k} ||s_j - s_k||^2",
             note="row by row: sum_j x_j^2 - (sum_j x_j)^2/C = (1/(2C)) sum_{j,k} (x_j - x_k)^2; "
                  "checked for a symbolic 3 x 4 matrix"),
        Step("31", le(tail, bound), by="chain", uses=("frobenius", "31a"),
             cite="Prop. 3.1 [recon]", show="sum_{k>=2} sigma_k^2 <= (1/(2C)) sum_{j,k} "
             "||s_j - s_k||^2", note="the spectral energy off the top direction is bounded by "
                                      "how dissimilar the columns are"),
        Step("31=", eq(tail, bound), uses=("frobenius", "top"),
             cite="Prop. 3.1 [recon]", show="equality when 1/sqrt(C) is a top right singular "
                                             "vector", note="one reading of 'the bound is tight'"),
    ]


def _prop32_steps() -> list[Step]:
    theta_y, theta_c = sp.symbols("theta_y theta_c", real=True)
    others = sp.Sum(sp.exp(-alpha * (1 - cosine[k])), (k, 1, C - 1)).doit()
    term = sp.exp(-alpha * circle_margin())
    return [
        Step("rank2", eq(alpha * (sp.cos(theta_y) * sp.cos(theta_c) + sp.sin(theta_y)
                                  * sp.sin(theta_c)), alpha * sp.cos(theta_c - theta_y)),
             cite="Prop. 3.2 [recon]", show="z_ic = alpha <h_i, w_c> = alpha cos(theta_c - "
                                             "theta_y): Z = alpha H W^T has rank 2",
             note="h_i = (cos, sin)(theta_{y_i}), w_c = (cos, sin)(theta_c)"),
        Step("margin", gt(circle_margin(1 / u), 0), by="interval", box={u: (1e-4, 1 / 3)},
             cite="Prop. 3.2 [recon]", show="1 - cos(2 pi / C) > 0 for 3 <= C <= 10^4",
             note="the true class beats every other by alpha (1 - cos(2 pi/C)) > 0: "
                  "100% training accuracy for any labels"),
        Step("m1", le(sp.exp(-alpha * (1 - cosine[k])), term), by="apply", uses=("nearest",),
             at={t: sp.exp(-alpha * (PAPER["p32.margin_one"] - t))}, cite="Prop. 3.2 [recon]",
             note="each other class is at least one step round the circle"),
        Step("m2", le(others, (C - PAPER["p32.offset"]) * term), by="sum", uses=("m1",),
             at={k: (1, C - 1)}, cite="Prop. 3.2 [recon]"),
        Step("m2'", le(others_sum, (C - PAPER["p32.offset"]) * term), by="chain",
             uses=("others", "m2"), role="algebra"),
        Step("m3", le(sp.log(1 + others_sum), circle_loss_bound()), by="apply", uses=("m2'",),
             at={x: sp.log(1 + x)}, role="algebra"),
        Step("32", le(CE, circle_loss_bound()), by="chain", uses=("ce", "m3"),
             cite="Prop. 3.2 [recon]", show="CE <= log(1 + (C - 1) exp(-alpha (1 - cos(2 pi/C))))"),
        Step("32lim", eq(sp.Limit(circle_loss_bound(10), alpha, sp.oo), 0), by="limit",
             cite="Prop. 3.2 [R]", show="the bound -> 0 as alpha -> oo (C = 10)",
             note="rank-2 logits drive the training loss to 0"),
    ]


def _layer() -> tuple:
    """A 2 x 2 linear layer ``Y = A W^T`` under a loss ``sum f(Y_ij)``; ``Delta_ij = f'(Y_ij)``
    are the symbols ``d_ij`` (hypotheses ``d00`` .. ``d11``)."""
    f = sp.Function("f")
    A = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"A{i}{j}", real=True))
    W = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"W{i}{j}", real=True))
    Y = A * W.T
    delta = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"d{i}{j}", real=True))
    definitions = [(f"d{i}{j}", eq(delta[i, j], sp.Subs(sp.Derivative(f(t), t), t, Y[i, j])))
                   for i in range(2) for j in range(2)]
    return sum(f(v) for v in Y), A, W, delta, definitions


def _layer_steps() -> list[Step]:
    loss, A, W, delta, definitions = _layer()
    grad = delta.T * A
    factor = sp.And(*[eq(sp.diff(loss, W[i, j]), grad[i, j]) for i in range(2) for j in range(2)])
    rotate = sp.Matrix([[sp.cos(psi), -sp.sin(psi)], [sp.sin(psi), sp.cos(psi)]])
    left = sp.Matrix([[sp.cos(phi), -sp.sin(phi)], [sp.sin(phi), sp.cos(phi)]])
    weight = left * sp.diag(s1, s2) * rotate.T
    h = sp.Matrix([h1, h2])
    power = PAPER["norm.power"]
    split = sum(s**power * (rotate[:, i].dot(h)) ** 2 for i, s in enumerate((s1, s2)))
    return [
        Step("grad_rank", factor, uses=tuple(label for label, _ in definitions),
             cite="Sec. 2.3 [Z] [recon]",
             show="dL/dW = Delta^T A for Y = A W^T (2 x 2)",
             note="so rank(dL/dW) <= min(rank Delta, rank A): low-rank features give low-rank "
                  "gradients"),
        Step("growth", eq((weight * h).dot(weight * h), split), cite="[R] W2C, notes 2.4",
             show="||W h||^2 = sum_k sigma_k^2 (v_k^T h)^2 (2 x 2 SVD)",
             note="logits grow by larger singular values or by better alignment"),
    ]


def _printed_steps() -> list[Step]:
    circle = sp.Matrix(6, 6, lambda i, j: sp.cos(sp.pi * ((j - i) % 6) / 3))
    scores = sp.Matrix(6, 6, lambda i, j: sp.exp(circle[i, j]))
    S = scores / sum(scores[0, :])  # circulant: every row has the same sum
    frobenius = sum(v**2 for v in S)
    return [
        Step("NC", ge(circle.rank(), 6 - 1), cite="Neural Collapse expectation [R]",
             erratum="refuted", show="rank of a zero-error solution >= C - 1 (C = 6)",
             note="the circle logits of C = 6 classes fit every label with rank 2"),
        Step("31-1%", le(frobenius - 1, sp.Rational(99, 100) * prop31_bound(S)),
             cite="Prop. 3.1 made 1% tighter", erratum="refuted",
             show="sum_{k>=2} sigma_k^2 <= 0.99 (1/(2C)) sum ||s_j - s_k||^2",
             note="the circulant softmax of the C = 6 circle has sigma_1 = 1 (its Perron root) "
                  "and meets Prop. 3.1 with equality"),
    ]


def _hypotheses():
    S = sp.Matrix(3, 4, lambda i, j: sp.Symbol(f"S{i}{j}", real=True))
    frobenius = sum(v**2 for v in S)
    rayleigh = sum(sum(S[i, j] for j in range(4)) ** 2 for i in range(3)) / 4
    others = sp.Sum(sp.exp(-alpha * (1 - cosine[k])), (k, 1, C - 1)).doit()
    return [
        *[(f"q{i + 1}", eq(Q[i], softmax_expr(Z, i))) for i in range(3)],
        ("simplex", eq(p3, 1 - p1 - p2)),
        ("frobenius", eq(tail, frobenius - sigma1**2)),
        ("rayleigh", ge(sigma1**2, rayleigh)),
        ("top", eq(sigma1, sp.sqrt(rayleigh))),
        ("nearest", le(cosine[k], sp.cos(PAPER["p32.angle"] / C))),
        ("others", eq(others_sum, others)),
        ("ce", eq(CE, sp.log(1 + others_sum))),
        *_layer()[4],
    ]


_HYPOTHESIS_NOTES = {
    "q1": "q = softmax_T(z), Eq. (1), C = 3 (likewise q2, q3)",
    "simplex": "p is a probability vector (C = 3)",
    "frobenius": "sum_{k>=2} sigma_k^2 = ||S||_F^2 - sigma_1^2",
    "rayleigh": "sigma_1^2 = max_{|u|=1} ||S u||^2 >= ||S 1/sqrt(C)||^2",
    "top": "the equality case: 1/sqrt(C) is a top right singular vector",
    "nearest": "for k = 1..C-1 the angle to class k is at least one step, 2 pi/C, round the "
               "circle",
    "d00": "Delta = dL/dY for a 2 x 2 layer Y = A W^T under L = sum f(Y_ij) (likewise d01..d11)",
    "others": "E names the sum of exp(-(z_y - z_c)) over the C - 1 other classes",
    "ce": "the cross-entropy of a sample of the circle: log sum_c exp(z_c - z_y)",
}


def goal():
    S = sp.Matrix(3, 4, lambda i, j: sp.Symbol(f"S{i}{j}", real=True))
    return sp.And(le(tail, prop31_bound(S)), le(CE, circle_loss_bound()))


@PAPER.cache
def derivation() -> Derivation:
    """Check the Jacobian facts, the expansion, Prop. 3.1 and 3.2 (reconstructed), the gradient
    factorisation and the norm identity; the Neural Collapse rank and a 1%-tighter Prop. 3.1 are
    the printed statements shown wrong."""
    return Derivation.check(
        "rank-deficit",
        source="Masarczyk et al. 2025, Sec. 2-3 (reconstructed from the reviews)",
        hypotheses=_hypotheses(),
        goal=goal(),
        steps=[*_jacobian_steps(), *_prop31_steps(), *_prop32_steps(), *_layer_steps(),
               Step("thm", goal(), by="chain", uses=("31", "32"),
                    cite="Prop. 3.1, Prop. 3.2 [recon]",
                    show="the softmaxed spectrum is bounded by column dissimilarity, and "
                         "rank-2 logits drive the loss to its bound")],
        bound=circle_loss_bound(),
        as_printed=_printed_steps(),
        symbols=SYMBOLS,
        notes=_HYPOTHESIS_NOTES,
    )
