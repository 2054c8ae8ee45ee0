"""Iso-perplexity: Velickovic, Barbero, Perivolaropoulos, Osindero, Pascanu, "Perplexity Cannot
Always Tell Right from Wrong" (arXiv:2601.22950, 2026), Sec. 3-4 and App. A-B.

The homogeneous-confidence model puts ``1 - gamma`` on its predicted class; at accuracy ``a`` its
log-perplexity is ``pplx = -a log(1 - gamma) - (1 - a) log(gamma)`` (Eq. 10). A model whose
confidence grows by ``Delta = s * gamma`` has the same perplexity at the critical accuracy ``a'``
(Eq. 11); perplexity prefers it iff its accuracy exceeds ``a'``. Where ``a > 1 - gamma`` a small
confidence increase lowers perplexity even at lower accuracy (a "free lunch"). Lemma 3.1: a
model with compact positional encodings that copies a long string ``alpha`` confidently gives a
one-bit change ``beta`` almost the same perplexity while copying it wrongly; the printed bound is
negative, the corrected one is ``-log(floor)/N + 2 eta (N-1)/N``. Remark 3.5, Prop. 3.6 (sampling)
and Cor. 3.7 (vanishing gradients) are checked on the same copy model, made more confident.

Every number the paper states is read from :data:`proofs.iso_perplexity.PAPER`, here as plain
values, so the mutation audit reaches the rows too.

Symbols: ``a`` accuracy; ``gamma`` wrong-class probability, in (0, 1/2); ``s`` normalised
confidence shift in [0, 1); ``a'`` critical accuracy; ``N`` sequence or string length; ``j`` the
flipped position of ``beta``; ``eta`` the continuity tolerance; ``floor`` the least probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from numerics import FORMAT_NAMES, get_backend, get_format, get_policy, to_numpy
from numerics._validate import as_real_array
from numerics.backend import to_python
from numerics.errors import InvalidArgument, InvalidType
from numerics.evidence import bitwise_equal, error_in_ulps, stall_index
from numerics.iso_perplexity import (
    ONE,
    SEPARATOR,
    ZERO,
    copy_log_perplexity,
    copy_model_probabilities,
    copy_readout,
    copy_transformer,
    log_perplexity_surface,
    log_perplexity_terms,
    model_selection,
    sequence_log_perplexity,
)
from numerics.kernels import sequential_total
from numerics.models.transformer import forward
from numerics.sweep import Cell
from proofs import certify, conjunction, gt, lt
from proofs import iso_perplexity as proof
from proofs.iso_perplexity import PAPER
from theorems._theorem import Statement, Theorem
from theorems._witness import Witness
from theorems.figures import Key, Panel, Series, check_width, write_figure
from theorems.verdicts import judge

__all__ = ["THEOREM", "ModelPair", "corrected_bound", "critical_accuracy", "free_lunch",
           "log_perplexity", "lowest_accepted_accuracy"]


def __dir__() -> list[str]:  # tab completion lists the public API, not the helpers
    return sorted(__all__)


#: The sequence experiment's two models: A is right 90% of the time at confidence 0.95, B hedges
#: with a constant per-token NLL 5% above A's perplexity (so A is truly better).
MODEL_A = {"accuracy": 0.9, "gamma": 0.05, "wrong_every": 10}
B_OVER_A = 1.05
#: The copy experiment's model weight (margin sigma(2) - 1/2 = 0.38 on the constant string).
COPY_WEIGHT = 4.0
#: The more confident copy model of Remark 3.5, Prop. 3.6 and Cor. 3.7 (wrong bit ~1.1e-7).
CONFIDENT_WEIGHT = 16.0
#: Up to this length the copy cells also run the model's full forward pass (O(N^2)).
FORWARD_CHECK_MAX = 1024
#: The finest surface a caller's grid may ask for (``resolution=``: points per side).
MAX_RESOLUTION = 512
_LOOSE = ("{} is a worst-case bound, loose by nature on this model ({}); the statement stays "
          "true 1% tighter, and the sharp rows {} carry the 1% test")


def _eq10() -> tuple[float, ...]:
    """Eq. 10's printed numbers as plain values: the signs of ``a log(1 - gamma)`` and ``(1 - a)
    log(gamma)``, and the 1s of ``1 - gamma`` and ``1 - a``."""
    return tuple(PAPER.value(name) for name in ("eq10.right_sign", "eq10.wrong_sign",
                                                "eq10.confidence", "eq10.error_share"))


def _eq11() -> tuple[float, ...]:
    """Eq. 11's printed numbers: the signs of ``log(gamma')`` on top and ``log(1 - gamma')``
    below, and the 1 of ``1 - gamma'``."""
    return tuple(PAPER.value(name) for name in ("eq11.top_sign", "eq11.bottom_sign",
                                                "eq11.confidence"))


def log_perplexity(a, gamma):
    """Eq. 10: ``-a log(1 - gamma) - (1 - a) log(gamma)`` (NumPy, mpmath or SymPy).

    Every path checks ``0 < a < 1`` and ``0 < gamma < 1/2`` (SymPy: when the values are numbers).
    """
    kind = _kind(a, gamma)
    a, gamma = _check_a_gamma(*_coerce(kind, a, gamma))
    if kind == "sympy":
        return proof.log_perplexity(a, gamma)
    right, wrong, confidence, error_share = _eq10()
    log1p, log = (mpmath.log1p, mpmath.log) if kind == "mpmath" else (np.log1p, np.log)
    return to_python(right * a * log1p((confidence - 1) - gamma)
                     + wrong * (error_share - a) * log(gamma))


def _paper_log_perplexity(a, gamma, log1p, log):
    """Eq. 10 with the paper's own constants, in the same operation order as
    :func:`log_perplexity`: the two agree bit for bit unless a paper quantity is mutated."""
    return -1 * a * log1p(0 - gamma) + -1 * (1 - a) * log(gamma)


def _logit(gamma, s, c, log1p, log, where):
    """``log(g) - log(c - g)`` at ``g = gamma (1 - s)``, to a few ulps for every ``g`` in
    ``(0, c)``. Near ``g = c/2`` the two logarithms cancel; there (``g > c/4``) it is
    ``log1p(((2 gamma - c) - 2 gamma s) / ((c - gamma) + gamma s))``: both parts of the numerator
    are <= 0 and both of the denominator > 0 when ``gamma < c/2``, so nothing cancels and ``g``
    itself (whose rounding the cancellation would amplify) is never formed there."""
    g = gamma * (1 - s)
    near = log1p(((2 * gamma - c) - 2 * gamma * s) / ((c - gamma) + gamma * s))
    far = log(gamma) + log1p(-s) - log1p((c - 1) - g)  # log g, even where g underflows
    return where(g > c / 4, near, far)


def critical_accuracy(a, gamma, s):
    """Eq. 11 with ``gamma' = gamma (1 - s)``: the accuracy at which the more confident model has
    the same perplexity; perplexity prefers it iff its accuracy is above this.

    Computed as ``(a logit(gamma) + log1p(-s)) / logit(gamma')``, Eq. 11 with the cancellation
    taken out: the printed numerator ``pplx + log gamma'`` and denominator ``log gamma' -
    log(1 - gamma')`` both vanish as ``gamma' -> 1/2``, and evaluated as printed lose every
    digit there (``critical_accuracy(0.3, 0.5 - 2^-54, 0)`` would give 0.5, not 0.3). Both
    terms of the numerator are <= 0 and each logit is within a few ulps (:func:`_logit`), so
    the result is within a few tens of ulps of the exact value on the whole domain (tested
    against mpmath at 60 digits). Eq. 11's printed constants enter by reference: a mutated one
    adds its exact difference from the paper's.
    """
    kind = _kind(a, gamma, s)
    a, gamma, s = _coerce(kind, a, gamma, s)
    a, gamma = _check_a_gamma(a, gamma)
    s = _check_range(s, "s", 0, 1, closed_low=True)
    top, bottom, confidence = _eq11()
    if kind == "sympy":
        if any(isinstance(v, sp.Basic) and v.free_symbols for v in (a, gamma, s)):
            return proof.critical_accuracy_expr(a, gamma, s)
        # numbers: the same cancellation-free form, exact (each log1p argument is formed
        # exactly from the given numbers, so evaluating the result to any precision is safe)
        return _critical(a, gamma, s, top, bottom, confidence, lambda v: sp.log(1 + v),
                         sp.log, lambda c, x, y: x if bool(c) else y)
    if kind == "mpmath":
        with mpmath.workdps(mpmath.mp.dps + 20):
            value = _critical(a, gamma, s, top, bottom, confidence, mpmath.log1p, mpmath.log,
                              lambda c, x, y: x if c else y)
        return +value  # rounded back to the caller's precision
    with np.errstate(divide="ignore", invalid="ignore"):
        return to_python(_critical(a, gamma, s, top, bottom, confidence, np.log1p, np.log,
                                   np.where))


def _critical(a, gamma, s, top, bottom, confidence, log1p, log, where):
    shifted = gamma * (1 - s)
    mutated = (log_perplexity(a, gamma) - _paper_log_perplexity(a, gamma, log1p, log)
               + (top - 1) * (log(gamma) + log1p(-s)))  # exactly 0 with the paper's constants
    numerator = a * _logit(gamma, 0 * s, 1, log1p, log, where) + log1p(-s) + mutated
    denominator = (_logit(gamma, s, confidence, log1p, log, where)
                   + (bottom + 1) * log1p((confidence - 1) - shifted))
    return numerator / denominator


def lowest_accepted_accuracy(a, gamma):
    """Return ``(a_min, gamma_at_min)``: the least accurate model, over all confidence increases,
    that perplexity still does not reject.

    The iso-perplexity curve is lowest where the new model is calibrated (``gamma' = 1 - a'``),
    where ``H_b(a') = pplx_{a,gamma}``; if that confidence is not reachable by increasing
    confidence (``1 - a' > gamma``), the minimum is the model itself, ``(a, gamma)``. The
    NumPy path solves for the small side ``t = 1 - a'`` by bisection on ``log t``, so ``t`` (and
    ``gamma_at_min``) has a relative error of a few ulps however close ``a'`` is to 1.
    """
    kind = _kind(a, gamma)
    a, gamma = _check_a_gamma(*_coerce(kind, a, gamma))
    if kind != "numpy":
        for value, name in ((a, "a"), (gamma, "gamma")):
            if isinstance(value, sp.Basic) and value.free_symbols:
                raise InvalidType(f"{name}={value} is symbolic; the lowest accepted accuracy "
                                  f"is found numerically, so pass a number")
        with mpmath.workdps(50):
            a_m, g_m = (mpmath.mpf(x) if kind == "mpmath" else mpmath.mpf(str(sp.N(x, 60)))
                        for x in (a, gamma))
            target = log_perplexity(a_m, g_m)
            if target >= mpmath.log(2):
                best = (a_m, g_m)
            else:
                # bisection on log t, t = 1 - a' (as the NumPy path, at 50 digits): H_b(1 - t)
                # increases with t on (0, 1/2], and a root next to 1/2 needs no tolerance
                low, high = mpmath.log(mpmath.mpf(10) ** -300), mpmath.log(mpmath.mpf("0.5"))
                for _ in range(400):
                    middle = (low + high) / 2
                    t = mpmath.exp(middle)
                    if -t * mpmath.log(t) - (1 - t) * mpmath.log1p(-t) < target:
                        low = middle
                    else:
                        high = middle
                t = mpmath.exp((low + high) / 2)
                best = (1 - t, t) if t <= g_m else (a_m, g_m)
            return (sp.Float(best[0], 50), sp.Float(best[1], 50)) if kind == "sympy" else best
    target = log_perplexity(a, gamma)
    tiny = np.finfo(np.float64).tiny
    low, high = np.full(np.shape(target), np.log(tiny)), np.full(np.shape(target), np.log(0.5))
    for _ in range(64):  # bisection on log t; H_b(1 - t) increases with t on (0, 1/2]
        middle = (low + high) / 2
        t = np.exp(middle)
        entropy = -t * np.log(t) - (1 - t) * np.log1p(-t)
        below = entropy < target
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    t = np.exp((low + high) / 2)
    reachable = (target < np.log(2)) & (t <= gamma)
    return to_python(np.where(reachable, 1 - t, a)), to_python(np.where(reachable, t, gamma))


def free_lunch(a, gamma):
    """Whether a small confidence increase lowers perplexity at lower accuracy: ``a > 1 - gamma``
    (the initial slope of ``a'`` is negative exactly then)."""
    kind = _kind(a, gamma)
    a, gamma = _check_a_gamma(*_coerce(kind, a, gamma))
    if kind == "sympy":
        return sp.StrictGreaterThan(sp.sympify(a), 1 - sp.sympify(gamma))
    if kind == "mpmath":
        with mpmath.workdps(mpmath.mp.dps + 10):
            return bool(a + gamma > 1)
    # a + gamma > 1 decided exactly: the rounded sum and its error (TwoSum); 1 - sum is exact
    total = a + gamma
    error = (a - (total - (total - a))) + (gamma - (total - a))
    return to_python((total > 1) | ((total == 1) & (error > 0)))


def corrected_bound(n, floor, eta):
    """The corrected Lemma 3.1 bound ``-log(floor)/N + 2 eta (N - 1)/N`` on the perplexity gap
    between ``alpha_N`` and ``beta_N`` (``floor``: least probability; ``eta``: continuity),
    with the paper's constants; ``N >= 1`` an integer, ``0 < floor <= 1``, ``eta >= 0``."""
    given = to_numpy(as_real_array(n, "n"))
    n = given.astype(np.float64)
    if np.any(~np.isfinite(n)) or np.any(n < 1) or np.any(n != np.floor(n)):
        raise InvalidArgument(f"n={given.tolist()!r} must be a positive integer"[:120])
    floor, eta = (to_numpy(as_real_array(value, name), np.float64)
                  for value, name in ((floor, "floor"), (eta, "eta")))
    floor = _check_range(floor, "floor", 0, 1, closed_high=True)
    eta = _check_range(eta, "eta", 0, np.inf, closed_low=True)
    with np.errstate(over="ignore"):  # beyond fp64 the correctly rounded bound is inf
        return to_python(PAPER.value("lemma.floor_coefficient") * -np.log(floor) / n
                         + PAPER.value("lemma.two") * eta * ((n - 1) / n))  # no overflow


@dataclass(frozen=True, repr=False)
class ModelPair(Witness):
    """Two homogeneous-confidence models (accuracy, gamma) and the one whose log-perplexity
    (Eq. 10, exact) is lower, which selection by perplexity prefers."""

    accuracy: tuple[float, float]
    gamma: tuple[float, float]
    log_perplexity: tuple[float, float]
    preferred: int  # index of the model with the lower log-perplexity
    less_accurate: int

    @property
    def prefers_less_accurate(self) -> bool:
        return self.preferred == self.less_accurate

    def headline(self) -> str:
        other = 1 - self.preferred
        return (f"log-perplexity prefers model {self.preferred} (accuracy "
                f"{self.accuracy[self.preferred]:.4g}, gamma {self.gamma[self.preferred]:.4g}) "
                f"to model {other} (accuracy {self.accuracy[other]:.4g}, gamma "
                f"{self.gamma[other]:.4g})"
                + (", the more accurate one" if self.prefers_less_accurate else ""))

    def __str__(self) -> str:
        rows = [f"model {i}: accuracy {self.accuracy[i]:.6g}, gamma {self.gamma[i]:.6g}, "
                f"log-perplexity {self.log_perplexity[i]:.9g}" for i in (0, 1)]
        verdict = f"log-perplexity prefers model {self.preferred}"
        if self.prefers_less_accurate:
            verdict += ", the less accurate one"
        return "\n".join([*rows, verdict])


class IsoPerplexity(Theorem):
    """Perplexity cannot always tell right from wrong: iso-perplexity curves and Lemma 3.1."""

    name = "iso-perplexity"
    title = "low-perplexity wrong answers; iso-perplexity curves and the critical accuracy"
    source = "Velickovic et al., Perplexity Cannot Always Tell Right from Wrong, 2026"
    statement = Statement(
        hypotheses=("0 < a < 1", "0 < gamma < 1/2", "0 <= Delta < gamma"),
        conclusion="pplx(a_new, gamma - Delta) < pplx(a, gamma) iff a_new > a' (Eq. 11); "
                   "a' < a for small Delta iff a > 1 - gamma; a one-bit change beta_N of a "
                   "confidently copied alpha_N is miscopied with |pplx(alpha_N) - "
                   "pplx(beta_N)| <= -log(floor)/N + 2 eta (N - 1)/N (Lemma 3.1, corrected)",
        latex=r"$\mathrm{pplx}_{a_{\mathrm{new}},\gamma-\Delta} < \mathrm{pplx}_{a,\gamma} \iff "
              r"a_{\mathrm{new}} > a' = \frac{\mathrm{pplx}_{a,\gamma} + \log(\gamma-\Delta)}"
              r"{\log(\gamma-\Delta) - \log(1-\gamma+\Delta)}$",
    )
    max_size = 2**24
    quantities = PAPER
    audit_exempt = {
        "gap <= corrected bound 1% tighter": _LOOSE.format(
            "The corrected Lemma 3.1 bound", "each k != j term is bounded by 2 eta although "
            "|log p - log q| <= eta/min(p, q) and min(p, q) ~ 0.98, and the k = j term by "
            "-log(floor) although alpha's own term -log p_j adds back; 4.7-18% slack over "
            "N = 16..2^20",
            "'k = j term <= -log floor' and 'max |p - q| <= eta'"),
        "gradient <= Eq. 20 bound 1% tighter": _LOOSE.format(
            "Eq. 20 (Cauchy-Schwarz with the Jacobian bound)", "for a one-parameter readout "
            "|(p - y)^T J| = |p_1 - y_1||s| while ||p - y|| ||J|| = sqrt(2)|p_1 - y_1||s|, and "
            "the terms' signs differ; 29-44% slack", "'||p_j - y_j|| <= sqrt 2'"),
        "running mean = forward pass 1% tighter": "a rounding tolerance between two fp64 "
            "evaluations of the same model, not a bound of the paper: the two agree to about "
            "1e-16, far inside it, at 0.99x as at 1x",
    }

    def derive(self):
        """Return the checked derivation (:func:`proofs.iso_perplexity.derivation`)."""
        return proof.derivation()

    def certify(self):
        """Certify, over boxes of ``(a, gamma, s)``, the sign of ``a' - a`` on both sides of the
        free-lunch boundary and the sign that makes the selection rule a threshold."""
        return _certificate()

    def audit_grid(self) -> dict:
        """The audit's grid: lengths 16 and 4096 (where the sharp rows are within 1%), fp64
        and bf16, both policies, in-process."""
        return {"quick": True, "workers": 1, "sizes": [16, 4096], "formats": ["fp64", "bf16"]}

    def axes(self, quick: bool) -> dict[str, list]:
        """Sequence lengths 2^4..2^16 (quick) or 2^4..2^20; every format and policy."""
        top = 16 if quick else 20
        return {
            "sizes": [2**j for j in range(4, top + 1, 2)],
            "formats": list(FORMAT_NAMES),
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1, 2],
            "resolution": [24] if quick else [48],
        }

    def check_axes(self, axes: dict[str, list]) -> None:
        """The surface's resolution (grid points per side of the (a, c) square) stays between
        2 and :data:`MAX_RESOLUTION`."""
        for resolution in axes["resolution"]:
            if not 2 <= resolution <= MAX_RESOLUTION:
                raise InvalidArgument(f"resolution={resolution} must lie in [2, "
                                      f"{MAX_RESOLUTION}]")

    def cells(self, axes: dict[str, list]) -> list[Cell]:
        """One surface cell per format and policy; sequence and copy cells per size and seed."""
        cells = []
        for backend in axes["backend"]:
            for fmt in axes["format"]:
                for policy in axes["policy"]:
                    common = {"format": fmt, "policy": policy, "backend": backend}
                    for resolution in axes["resolution"]:
                        cells.append(Cell.of(experiment="surface", n=resolution, seed=0,
                                             **common))
                    for n in axes["n"]:
                        for seed in axes["seed"]:
                            for experiment in ("sequence", "copy"):
                                cells.append(Cell.of(experiment=experiment, n=n, seed=seed,
                                                     **common))
        return cells

    @staticmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one cell of the surface, sequence or copy experiment."""
        return _EXPERIMENTS[params["experiment"]](params)

    def findings(self, report) -> str:
        """Where low precision flips the model comparison, predicted against observed."""
        flips = [r for r in report.rows if r["quantity"] == "A preferred"
                 and r["verdict"] == "precision-effect"]
        lines = [f"model comparisons (A truly better than B) flipped in low precision: "
                 f"{len(flips)} cells"]
        for key in sorted({(r["format"], r["policy"]) for r in flips}):
            rows = [r for r in report.rows if (r["format"], r["policy"]) == key
                    and r["quantity"] == "A preferred"]
            observed = min(r["n"] for r in rows if r["verdict"] == "precision-effect")
            before = [r["n"] for r in rows if r["n"] < observed]
            predicted = rows[0]["predicted_n"]
            mechanism = rows[0]["mechanism"] or next(r["mechanism"] for r in rows
                                                     if r["mechanism"])
            lines.append(
                f"  {key[0]:<9} {key[1]:<7} seeds {_seeds(rows)} {mechanism:<24} last N without "
                f"a flip {max(before) if before else 'none (flips at the smallest N)'}, first "
                f"N with one {observed}; the stagnation model predicts "
                + (f"N={predicted}" if predicted else "no flip (it models in-format "
                   "accumulation only)"))
        return "\n".join(lines)

    def figure(self, out_dir, *, quick: bool = True, width: str = "columnwidth",
               report=None):
        """Critical accuracy against the confidence shift, and the Lemma 3.1 gap against N;
        ``width``: ``columnwidth``, ``textwidth``, ``linewidth`` or a TeX length. ``report`` is
        not read: the figure's curves are closed forms, not the sweep's rows."""
        return _figure(Path(out_dir), width=check_width(width))

    def counterexample(self, *, a: float = 0.5, gamma: float = 0.4, s: float | None = None
                       ) -> ModelPair:
        """Two models where perplexity prefers the less accurate one (exact, in mpmath).

        In the free-lunch region (``a > 1 - gamma``) a more confident, less accurate model has
        lower perplexity; elsewhere a more confident, more accurate model (accuracy between
        ``a`` and ``a'``) has higher perplexity than the original. ``s`` defaults to the shift
        that makes the effect largest on a grid.
        """
        a, gamma = (_as_float(x, name) for x, name in _checked_pair(a, gamma))
        if s is not None:
            s = _as_float(_check_range(*_coerce(_kind(s), s, names=("s",)), "s", 0, 1,
                                       closed_low=True), "s")
        shifts = np.linspace(0.01, 0.95, 95) if s is None else np.array([s])
        gaps = critical_accuracy(a, gamma, shifts) - a
        pick = int(np.argmin(gaps)) if free_lunch(a, gamma) else int(np.argmax(gaps))
        shift = float(shifts[pick])
        with mpmath.workdps(50):
            a_m, g_m, s_m = (mpmath.mpf(str(x)) for x in (a, gamma, shift))
            critical = critical_accuracy(a_m, g_m, s_m)
            new_accuracy = (a_m + critical) / 2
            new_gamma = g_m * (1 - s_m)
            perplexities = (log_perplexity(a_m, g_m), log_perplexity(new_accuracy, new_gamma))
        accuracies = (a, float(new_accuracy))
        preferred = int(perplexities[1] < perplexities[0])
        return ModelPair(accuracies, (gamma, float(new_gamma)),
                         tuple(float(p) for p in perplexities), preferred,
                         int(accuracies[1] < accuracies[0]))


THEOREM = IsoPerplexity()


def _kind(*values) -> str:
    if any(isinstance(v, sp.Basic) for v in values):
        return "sympy"
    if any(isinstance(v, mpmath.mpf | mpmath.mpc) for v in values):
        return "mpmath"
    return "numpy"


def _coerce(kind: str, *values, names=("a", "gamma", "s")):
    """``values`` in one kind: all SymPy, all mpmath (scalars only), or left for NumPy."""
    if kind == "numpy":
        return values
    out = []
    for value, name in zip(values, names, strict=False):
        if isinstance(value, sp.Basic | mpmath.mpf | mpmath.mpc):
            out.append(sp.sympify(value) if kind == "sympy" else value)
            continue
        array = as_real_array(value, name)
        if array.ndim != 0:
            raise InvalidType(f"{name} is an array of shape {array.shape}; with {kind} numbers "
                              f"pass real scalars of one kind")
        number = to_numpy(array, np.float64).item()
        # the float's exact binary value, carried at 60 digits among SymPy numbers
        out.append(sp.Float(number, 60) if kind == "sympy" else mpmath.mpf(number))
    return tuple(out)


def _check_range(x, name, low, high, *, closed_low=False, closed_high=False):
    """``x`` checked to be real and in the interval from ``low`` to ``high`` (open unless
    closed), whatever its kind: a NumPy array or scalar is returned as float64, an mpmath number
    or a SymPy number as itself, checked exactly; a SymPy expression with free symbols passes
    (it is symbolic)."""
    bracket = ("[" if closed_low else "(", "]" if closed_high else ")")
    interval = f"{bracket[0]}{low:g}, {high:g}{bracket[1]}"
    if isinstance(x, sp.Basic):
        if x.free_symbols:
            return x
        if not (x.is_number and x.is_extended_real is True):
            raise InvalidType(f"{name}={x} is not a real number; pass one in {interval}")
        value = x
    elif isinstance(x, mpmath.mpf):
        value = x
    elif isinstance(x, mpmath.mpc):
        raise InvalidType(f"{name}={x} is complex; pass a real number in {interval}")
    else:
        value = to_numpy(as_real_array(x, name), np.float64)
        bad = (np.isnan(value) | ((value < low) if closed_low else (value <= low))
               | ((value > high) if closed_high else (value >= high)))
        if bad.any():
            first = float(value.ravel()[int(np.flatnonzero(bad.ravel())[0])])
            raise InvalidArgument(f"{name}={first!r} must lie in {interval}")
        return value
    inside = ((value >= low) if closed_low else (value > low)) and \
        ((value <= high) if closed_high else (value < high))
    if not bool(inside):
        raise InvalidArgument(f"{name}={value} must lie in {interval}")
    return x


def _checked_pair(a, gamma):
    kind = _kind(a, gamma)
    return zip(_check_a_gamma(*_coerce(kind, a, gamma)), ("a", "gamma"), strict=True)


def _as_float(x, name: str) -> float:
    """A checked real scalar of any kind as a float (a symbolic one is refused)."""
    if isinstance(x, sp.Basic) and x.free_symbols:
        raise InvalidType(f"{name}={x} is symbolic; pass a number")
    if np.ndim(x) != 0:
        raise InvalidType(f"{name} must be a scalar, not an array of shape {np.shape(x)}")
    return float(x)


def _check_a_gamma(a, gamma):
    return _check_range(a, "a", 0.0, 1.0), _check_range(gamma, "gamma", 0.0, 0.5)


@cache
def _certificate():
    a, gamma, s = proof.a, proof.gamma, proof.s
    shifted = gamma * (1 - s)
    return conjunction([
        # free lunch: a*g > (1-a)(1-g) at g = gamma' (so on all of [gamma', gamma]) gives a' < a
        certify(gt(a * shifted - (1 - a) * (1 - shifted), 0),
                {a: (0.75, 0.95), gamma: (0.3, 0.45), s: (0.0, 0.05)}),
        # no free lunch: (1-a)(1-g) > a*g at g = gamma (so on all of (0, gamma]) gives a' > a
        certify(gt((1 - a) * (1 - gamma) - a * gamma, 0),
                {a: (0.05, 0.5), gamma: (0.05, 0.45), s: (0.0, 0.99)}),
        # the selection rule's factor log(gamma'/(1 - gamma')) is negative
        certify(lt(sp.log(shifted) - sp.log(1 - shifted), 0), {gamma: (0.01, 0.49), s: (0, 0.99)}),
    ])



def _base(params: dict, experiment: str) -> dict:
    return {"theorem": THEOREM.name, "experiment": experiment, "n": params["n"],
            "format": params["format"], "policy": params["policy"], "seed": params["seed"],
            "backend": params["backend"]}


def _accumulator(fmt, policy) -> str:
    """The format a policy adds in: the storage format (``strict``) or its container (``hw``)."""
    if policy.accumulate == "format":
        return fmt.name
    return "fp64" if fmt.container == np.float64 else "fp32"


def _stall(terms, fmt, policy) -> int | None:
    """Where a left-to-right in-format sum of ``terms`` absorbs a term; ``hw`` sums pairwise in
    float32 and has no running in-format sum (``None``)."""
    if policy.accumulate != "format":
        return None
    return stall_index(terms, fmt)


def _surface(params: dict) -> list[dict]:
    """Every pair (old model, more confident new model) on a grid: does perplexity select the new
    one exactly when its accuracy exceeds a' (Eq. 11 with the paper's numbers, against the exact
    mean NLLs), and does the format's arithmetic agree with the exact comparison?"""
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n = params["n"]
    counts = model_selection(np.linspace(0.02, 0.98, n), np.linspace(0.02, 0.48, n),
                             np.linspace(0.0, 0.9, max(2, n // 4)), fmt, policy,
                             xp=get_backend(params["backend"]), eq10=_eq10(), eq11=_eq11())
    base = _base(params, "surface")
    rows = [{**base, **judge(quantity="selection rule", observed=counts["rule_breaks"],
                             exact=None, bound=0, relation="<=", format=fmt.name,
                             evidence={"pairs": counts["pairs"]})}]
    kinds = [("tie", counts["worst_tie"], counts["ties"]),
             ("strict", counts["worst_strict"], counts["flips"] - counts["ties"])]
    flipped = [(kind, pair, count) for kind, pair, count in kinds if pair is not None]
    for kind, pair, count in flipped or [("none", counts["closest"], 0)]:
        rows.append(_selection_row(base, kind, pair, count, counts, fmt, policy))
    rows.append({**base, **judge(quantity="flips within error band", observed=counts["outside"],
                                 exact=None, bound=0, relation="<=", format=fmt.name,
                                 evidence={"flips": counts["flips"], "near": counts["near"]})})
    return rows


def _selection_row(base, kind, pair, count, counts, fmt, policy) -> dict:
    """One representative pair of a cell (the flipped pair with the largest exact gap, or the
    closest pair when nothing flips): the margin by which the format prefers the truly better
    model (exact: > 0), with the evidence measured on that pair."""
    a, g, a_new, g_new = pair
    with mpmath.workdps(30):
        exact_old, exact_new = (float(_model_nll(mpmath.mpf(x), mpmath.mpf(w)))
                                for x, w in ((a, g), (a_new, g_new)))
    values = log_perplexity_surface(np.array([a, a_new]), np.array([g, g_new]), fmt, policy)
    old_fmt, new_fmt = (float(v) for v in np.asarray(values, dtype=np.float64))
    sign = 1.0 if exact_new < exact_old else -1.0
    right, wrong = (np.asarray(x, dtype=np.float64)
                    for x in log_perplexity_terms(np.array([a, a_new]), np.array([g, g_new]),
                                                  fmt, policy))
    accumulator = _accumulator(fmt, policy)
    stalls = [stall_index([right[i], -wrong[i]], accumulator) for i in (0, 1)]
    spacing = float(fmt.ulp(min(old_fmt, new_fmt)))
    evidence = {
        "kind": kind, "pairs_of_kind": count, "pairs": counts["pairs"],
        "a": a, "gamma": g, "a_new": a_new, "gamma_new": g_new,
        "bitwise_equal": bitwise_equal(values[:1], values[1:]),
        "stall_index": next((x for x in stalls if x is not None), None),
        "sum_error_ulps": (abs(old_fmt - exact_old) + abs(new_fmt - exact_new)) / spacing,
        "least_strict_error_ulps": counts["strict_error_ulps"],
    }
    return {**base, **judge(quantity="selection in format",
                            observed=sign * (old_fmt - new_fmt),
                            exact=sign * (exact_old - exact_new), bound=0, relation=">",
                            format=fmt.name, evidence=evidence)}


def _model_nll(a, gamma):
    """The homogeneous-confidence model's mean NLL (mpmath): a share ``a`` of right answers at
    ``-log(1 - gamma)``, the rest at ``-log(gamma)``; independent of Eq. 10 as printed."""
    return a * -mpmath.log1p(-gamma) + (1 - a) * -mpmath.log(gamma)


def _tolerance_ulps(n: int, fmt, policy) -> float:
    """Rounding expected of an ``n``-term mean in ``fmt`` (ulps of the format): the final
    rounding and the division (2), plus, for ``hw``, the growth of float32 pairwise summation.
    ``strict`` sums sequentially in the format: anything beyond 2 ulps is a precision effect and
    names its mechanism."""
    if policy.accumulate != "format":
        unit = 2.0**-53 if fmt.container == np.float64 else 2.0**-24
        return 2.0 + 2 * math.ceil(math.log2(n)) * unit / fmt.unit_roundoff
    return 2.0


def _sequence(params: dict) -> list[dict]:
    """Model A (90% right at confidence 0.95) against model B (constant NLL 5% above A's
    perplexity): their log-perplexities accumulated over N tokens in the format, and A's against
    Eq. 10 at its accuracy."""
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n, seed = params["n"], params["seed"]
    gamma, every = MODEL_A["gamma"], MODEL_A["wrong_every"]
    right, wrong = -math.log1p(-gamma), -math.log(gamma)
    position = (np.arange(n) + seed) % every
    is_wrong = position == every - 1
    nll_a = np.where(is_wrong, wrong, right)
    stored_a = np.asarray(policy.load(nll_a, fmt), dtype=np.float64)
    exact_a = math.fsum(stored_a.tolist()) / n
    stored_right, stored_wrong = (float(np.asarray(policy.load(np.float64(v), fmt),
                                                   dtype=np.float64)) for v in (right, wrong))
    level_b = float(np.asarray(policy.load(np.float64(
        B_OVER_A * ((every - 1) * stored_right + stored_wrong) / every), fmt), dtype=np.float64))
    exact_b = level_b
    terms_b = np.full(n, level_b)
    in_format = [sequence_log_perplexity(xp.asarray(nll), fmt, policy) for nll in (nll_a, terms_b)]
    computed_a, computed_b = (float(to_numpy(v, np.float64)) for v in in_format)
    predicted_n = _predicted_flip(level_b, stored_wrong / every, fmt, policy)
    base = _base(params, "sequence")
    stall_a, stall_b = _stall(stored_a, fmt, policy), _stall(terms_b, fmt, policy)
    rows = [{**base, **judge(
        quantity="A preferred", observed=computed_b - computed_a, exact=exact_b - exact_a,
        bound=0, relation=">", format=fmt.name,
        evidence={"stall_index": stall_b, "stall_index_a": stall_a,
                  "bitwise_equal": bitwise_equal(to_numpy(in_format[0]), to_numpy(in_format[1])),
                  "exact_a": exact_a, "exact_b": exact_b, "computed_a": computed_a,
                  "computed_b": computed_b, "predicted_n": predicted_n,
                  "predicted": predicted_n is not None and n >= predicted_n})}]
    accuracy = mpmath.mpf(n - int(np.sum(is_wrong))) / n
    bound = _eq10_of_stored(accuracy, gamma, fmt, policy)
    evidence = {"stall_index": stall_a, "sum_error_ulps": error_in_ulps(computed_a, exact_a, fmt),
                "accuracy": float(accuracy)}
    tolerance = _tolerance_ulps(n, fmt, policy)
    for relation in ("<=", ">="):
        rows.append({**base, **judge(quantity=f"pplx_A {relation} Eq. 10", observed=computed_a,
                                     exact=exact_a, bound=bound, relation=relation,
                                     format=fmt.name, tolerance_ulps=tolerance,
                                     evidence=evidence)})
    return rows


def _eq10_of_stored(accuracy, gamma: float, fmt, policy) -> float:
    """Eq. 10 with the paper's signs and constants at ``accuracy``, each log stored in the format
    as the sequence's per-token NLLs are (mpmath)."""
    right_sign, wrong_sign, confidence, error_share = _eq10()
    stored = [float(np.asarray(policy.load(np.float64(v), fmt), dtype=np.float64))
              for v in (-math.log1p((confidence - 1) - gamma), -math.log(gamma))]
    with mpmath.workdps(30):
        return float(-right_sign * accuracy * mpmath.mpf(stored[0])
                     - wrong_sign * (error_share - accuracy) * mpmath.mpf(stored[1]))


def _seeds(rows: list[dict]) -> str:
    return ",".join(str(seed) for seed in sorted({r["seed"] for r in rows}))


def _predicted_flip(level_b: float, wrong_share: float, fmt, policy) -> int | None:
    """First N (power of 4 from 16) at which B's in-format running sum, which stagnates as
    ``sequential_total`` predicts, gives a mean below the share of A's perplexity carried by its
    wrong tokens alone (large terms keep adding long after A's small ones have stagnated)."""
    if policy.accumulate != "format":
        return None
    for n in (4**j for j in range(2, 13)):
        total_b = sequential_total(level_b, level_b, n - 1, fmt)
        if total_b / n < wrong_share:
            return n
    return None


@lru_cache(maxsize=32)
def _copy_model(n: int, seed: int) -> dict:
    """Lemma 3.1's copy model on ``alpha = 0^N`` and ``beta`` (one bit flipped at ``j``, from the
    seed): its outputs and probabilities (from the model), the same quantities from the model's
    closed form (independently), and its floor and continuity tolerance ``eta`` (analytic)."""
    alpha = np.zeros(n, dtype=np.int64)
    j = int(np.random.default_rng(seed).integers(n))
    beta = alpha.copy()
    beta[j] = ONE
    _, out_alpha, p_alpha = copy_log_perplexity(alpha, alpha, weight=COPY_WEIGHT)
    _, out_beta, p_beta = copy_log_perplexity(beta, beta, weight=COPY_WEIGHT)
    chosen_alpha = 1.0 - p_alpha
    chosen_beta = np.where(beta == ONE, p_beta, 1.0 - p_beta)
    closed = _closed_form(n, j, COPY_WEIGHT)
    return {"alpha": alpha, "beta": beta, "j": j, "out_alpha": out_alpha, "out_beta": out_beta,
            "p_alpha": p_alpha, "p_beta": p_beta, "nll_alpha": -np.log(chosen_alpha),
            "nll_beta": -np.log(chosen_beta), **closed}


def _closed_form(n: int, j: int, weight: float) -> dict:
    """The copy model in closed form: at copy step ``k`` (``m = N + k`` tokens) the logit of a 1
    is ``weight (ones - zeros)/m``, ``-weight (N + k - 1)/m`` after ``alpha`` and ``-weight
    (N + k - 3)/m`` after ``beta`` (whose one 1 is outvoted). ``floor = sigmoid(-weight)``: the
    logit lies in ``[-weight, weight]``. ``eta``: the largest ``|T(alpha|alpha_<k) - T(beta|
    alpha_<k)|``, at the first ``k != j`` (both the logit step ``2 weight/m`` and the sigmoid's
    slope fall with ``k``)."""
    first = 1 if j != 0 else 2  # the first step k != j (1-based)
    with mpmath.workdps(30):
        w, m = mpmath.mpf(weight), mpmath.mpf(n)

        def logit(shift, step):
            return -w * (m + step - shift) / (m + step)

        sig = _sigmoid
        floor_nll = mpmath.log1p(mpmath.exp(w))
        eta = sig(logit(3, first)) - sig(logit(1, first))
        k_j = (mpmath.log1p(mpmath.exp(logit(1, j + 1)))
               - mpmath.log1p(mpmath.exp(-logit(3, j + 1))))
        return {"floor_nll": float(floor_nll), "floor": float(1 / (1 + mpmath.exp(w))),
                "eta": float(eta), "exact_k_j": float(-k_j)}


def _copy(params: dict) -> list[dict]:
    """Lemma 3.1 on a real model: alpha = 0^N is copied with a margin; beta flips one bit, is
    copied as alpha (wrongly), and its perplexity gap stays within the corrected bound, with the
    floor and eta from the model's analytic form. In fp64: the proof's sharp links, Remark 3.5,
    Prop. 3.6 and Cor. 3.7 on a more confident copy model."""
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n, seed = params["n"], params["seed"]
    model = _copy_model(n, seed)
    base = _base(params, "copy")
    miscopied = bool(np.array_equal(model["out_beta"], model["alpha"])
                     and np.array_equal(model["out_alpha"], model["alpha"]))
    rows = [{**base, **judge(quantity="beta copied as alpha", observed=int(miscopied),
                             exact=None, bound=1, relation=">=", format=fmt.name,
                             evidence={"j": model["j"],
                                       "margin_min": float((1 - model["p_alpha"]).min() - 0.5)})}]
    # the gap Lemma 3.1 bounds is the model's, of its fp64 NLLs; storing them in the format is
    # part of the in-format computation
    exact_gap = abs(math.fsum(model["nll_alpha"].tolist())
                    - math.fsum(model["nll_beta"].tolist())) / n
    stored = [np.asarray(policy.load(model[key], fmt), dtype=np.float64)
              for key in ("nll_alpha", "nll_beta")]
    pplx = [float(to_numpy(sequence_log_perplexity(xp.asarray(nll), fmt, policy), np.float64))
            for nll in (model["nll_alpha"], model["nll_beta"])]
    gap = abs(pplx[0] - pplx[1])
    stalls = [_stall(terms, fmt, policy) for terms in stored]
    bound = float(corrected_bound(n, model["floor"], model["eta"]))
    with mpmath.workdps(30):
        printed = float(proof.printed_lemma_bound(n, sp.Float(0.5 - model["floor"], 30),
                                                  sp.Float(model["floor"], 30)))
    rows.append({**base, **judge(
        quantity="gap <= corrected bound", observed=gap, exact=exact_gap, bound=bound,
        relation="<=", format=fmt.name, tolerance_ulps=2.0,
        evidence={"stall_index": next((x for x in stalls if x is not None), None),
                  "sum_error_ulps": error_in_ulps(gap, exact_gap, fmt),
                  "floor": model["floor"], "eta": model["eta"], "printed_bound": printed})})
    if fmt.name == "fp64" and policy.name == "hw":
        rows += _copy_fp64_rows(base, model, n)
        if n <= FORWARD_CHECK_MAX:
            rows.append(_forward_row(base, model["beta"]))
    return rows


def _copy_fp64_rows(base: dict, model: dict, n: int) -> list[dict]:
    """The proof's links on the model (each sharp), against the analytic floor and eta."""
    j = model["j"]
    coefficient = PAPER.value("lemma.floor_coefficient")
    k_j = float(model["nll_beta"][j] - model["nll_alpha"][j])
    others = np.arange(n) != j
    differences = np.abs(model["p_alpha"] - model["p_beta"])[others]
    at = int(np.argmax(differences))
    step = int(np.flatnonzero(others)[at])
    exact_difference = _closed_difference(n, step, COPY_WEIGHT)
    spacing_ratio = float(np.spacing(model["p_alpha"].max()) / np.spacing(model["eta"]))
    rows = [
        {**base, **judge(quantity="k = j term <= -log floor", observed=k_j,
                         exact=model["exact_k_j"], bound=coefficient * model["floor_nll"],
                         relation="<=", format="fp64", tolerance_ulps=4.0,
                         evidence={"j": j})},
        {**base, **judge(quantity="max |p - q| <= eta", observed=float(differences[at]),
                         exact=exact_difference, bound=model["eta"], relation="<=",
                         format="fp64", tolerance_ulps=4.0 * spacing_ratio,
                         evidence={"at_step": step + 1})},
    ]
    return rows + _confident_rows(base, model["beta"], n)


def _closed_difference(n: int, index: int, weight: float) -> float:
    with mpmath.workdps(30):
        w, m, step = mpmath.mpf(weight), mpmath.mpf(n), index + 1
        return float(_sigmoid(-w * (m + step - 3) / (m + step))
                     - _sigmoid(-w * (m + step - 1) / (m + step)))


def _sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def _confident_rows(base: dict, beta, n: int) -> list[dict]:
    """Remark 3.5, Prop. 3.6 and Cor. 3.7 on the copy model with readout weight
    :data:`CONFIDENT_WEIGHT` (a wrong bit gets about ``sigmoid(-16) = 1.1e-7``)."""
    weight = CONFIDENT_WEIGHT
    alpha = np.zeros(n, dtype=np.int64)
    copy_prefix = np.concatenate([[SEPARATOR], alpha])
    e_alpha = copy_model_probabilities(np.concatenate([alpha, copy_prefix]),
                                       weight=weight)[n : 2 * n]
    e_beta = copy_model_probabilities(np.concatenate([beta, copy_prefix]),
                                      weight=weight)[n : 2 * n]
    with mpmath.workdps(30):
        w, m = mpmath.mpf(weight), mpmath.mpf(n)
        gamma = _sigmoid(-w * m / (m + 1))  # alpha's largest wrong-bit probability, at k = 1
        eps = _sigmoid(-w * (m - 2) / (m + 1)) - gamma  # the continuity tolerance, at k = 1
    step = np.arange(1, n + 1, dtype=np.float64)
    exact_alpha, exact_beta = (
        -math.expm1(math.fsum(np.log1p(-1 / (1 + np.exp(weight * (n + step - shift)
                                                          / (n + step)))).tolist()))
        for shift in (1, 3))  # the closed form, step by step
    r35, p36 = PAPER.value("r35.coefficient"), PAPER.value("p36.coefficient")
    rows = [
        {**base, **judge(quantity="Remark 3.5: 1 - P(alpha | alpha) <= N gamma",
                         observed=float(-np.expm1(math.fsum(np.log1p(-e_alpha).tolist()))),
                         exact=float(exact_alpha), bound=r35 * n * float(gamma), relation="<=",
                         format="fp64", tolerance_ulps=8.0,
                         evidence={"gamma": float(gamma), "weight": weight})},
        {**base, **judge(quantity="Prop. 3.6: 1 - P(alpha | beta) <= N (gamma + eps)",
                         observed=float(-np.expm1(math.fsum(np.log1p(-e_beta).tolist()))),
                         exact=float(exact_beta), bound=p36 * n * float(gamma + eps),
                         relation="<=", format="fp64", tolerance_ulps=8.0,
                         evidence={"gamma": float(gamma), "eps": float(eps), "weight": weight})},
    ]
    return rows + _gradient_rows(base, beta, n, weight)


def _gradient_rows(base: dict, beta, n: int, weight: float) -> list[dict]:
    """Cor. 3.7 on ``L(beta_N)``, the loss of the correct copy ``beta_N | beta_N`` (teacher
    forced), as a function of the readout weight: ``dL/dw = (1/N) sum_i (p_i - y_i) s_i`` with
    ``s_i`` the share difference the logit scales (``|s_i| <= 1``: the Jacobian bound ``K = 1``
    holds for this model)."""
    sequence = np.concatenate([beta, [SEPARATOR], beta])
    p_one = copy_model_probabilities(sequence, weight=weight)[n : 2 * n]
    index = np.arange(1, 2 * n + 2, dtype=np.float64)
    shares = (np.cumsum(sequence == ONE) - np.cumsum(sequence == ZERO)) / index
    s = shares[n : 2 * n]
    target = beta.astype(np.float64)
    residual = p_one - target
    gradient = abs(math.fsum((residual * s).tolist())) / n
    j = int(np.flatnonzero(beta == ONE)[0])
    with mpmath.workdps(30):
        exact_s = mpmath.mpf(1 - (n - 1 + j)) / (n + 1 + j)
        exact_pj = 1 / (1 + mpmath.exp(-weight * exact_s))
    return [
        {**base, **judge(quantity="||p_j - y_j|| <= sqrt 2",
                         observed=math.sqrt(2) * abs(residual[j]),
                         exact=float(mpmath.sqrt(2) * (1 - exact_pj)),
                         bound=PAPER.value("c37.term_bound"), relation="<=", format="fp64",
                         tolerance_ulps=4.0, evidence={"j": j, "weight": weight})},
        {**base, **judge(quantity="gradient <= Eq. 20 bound", observed=gradient, exact=None,
                         bound=math.sqrt(2) * math.fsum(np.abs(residual).tolist()) / n,
                         relation="<=", format="fp64", tolerance_ulps=4.0,
                         evidence={"jacobian_bound": float(np.max(np.abs(s))),
                                   "weight": weight})},
    ]


def _forward_row(base: dict, bits) -> dict:
    """The model's probabilities on the decoded sequence by the running mean, against a full
    forward pass of :func:`numerics.iso_perplexity.copy_transformer` (fp64; the running mean and
    the attention product sum the same ``m <= 2N + 1`` terms in different orders, so they agree to
    within ``m`` unit roundoffs of the weight-4 logit, through a sigmoid of slope <= 1/4)."""
    n = len(bits)
    sequence = np.concatenate([bits, [SEPARATOR], np.full(n, ZERO)])
    direct = copy_readout(forward(copy_transformer(), sequence).states, weight=COPY_WEIGHT)
    difference = float(np.max(np.abs(direct - copy_model_probabilities(sequence,
                                                                       weight=COPY_WEIGHT))))
    tolerance = COPY_WEIGHT * 2 * (2 * n + 1) * 2.0**-53
    return {**base, **judge(quantity="running mean = forward pass", observed=difference,
                            exact=None, bound=tolerance, relation="<=", format="fp64")}


_EXPERIMENTS = {"surface": _surface, "sequence": _sequence, "copy": _copy}


def _figure(out_dir: Path, *, width: str):
    return write_figure(out_dir, THEOREM.name, _figure_panels(), width=width)


@cache
def _figure_panels() -> tuple[Panel, ...]:
    """Critical accuracy against the shift for several ``gamma`` and several ``a`` (the free
    lunch marked), and Lemma 3.1's gap against ``N`` with the corrected bound."""
    shifts = np.linspace(0.0, 0.95, 96)
    by_gamma = [Series(f"$\\gamma = {g:g}$", tuple(shifts),
                       tuple(critical_accuracy(0.5, g, shifts)), "line", i)
                for i, g in enumerate((0.1, 0.2, 0.3, 0.4))]
    by_accuracy = []
    for i, a in enumerate((0.5, 0.6, 0.7, 0.8)):
        curve = critical_accuracy(a, 0.4, shifts)
        by_accuracy.append(Series(f"$a = {a:g}$", tuple(shifts), tuple(curve), "line", i))
        lunch = curve < a - 1e-9
        if lunch.any():
            by_accuracy.append(Series(f"free lunch, $a = {a:g}$", tuple(shifts[lunch]),
                                      tuple(curve[lunch]), "marks", i))
    accuracy_key = (*(Key(f"$a = {a:g}$", "line", i) for i, a in enumerate((0.5, 0.6, 0.7, 0.8))),
                    Key("free lunch: $a' < a$", "marks"))
    sizes = np.array([4**j for j in range(1, 10)])
    gaps, bounds = [], []
    for n in sizes:
        row = next(r for r in _copy({"n": int(n), "format": "fp64", "policy": "strict",
                                     "seed": 0, "backend": "numpy"})
                   if r["quantity"] == "gap <= corrected bound")
        gaps.append(row["exact"])
        bounds.append(row["bound"])
    return (
        Panel("$a = 0.5$", "shift $s$", "critical $a'$", tuple(by_gamma), "linear", "linear"),
        Panel("$\\gamma = 0.4$", "shift $s$", "critical $a'$", tuple(by_accuracy), "linear",
              "linear", key=accuracy_key),
        Panel("Lemma 3.1 (copy)", "$N$", "log-PPL gap",
              (Series("$|\\log \\mathrm{PPL}(\\alpha) - \\log \\mathrm{PPL}(\\beta)|$",
                      tuple(sizes), tuple(gaps), "marks", 0),
               Series("corrected bound", tuple(sizes), tuple(bounds), "line", 1))),
    )
