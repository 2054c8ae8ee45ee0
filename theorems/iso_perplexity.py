"""Iso-perplexity: Velickovic, Barbero, Perivolaropoulos, Osindero, Pascanu, "Perplexity Cannot
Always Tell Right from Wrong" (arXiv:2601.22950, 2026), Sec. 4 and Lemma 3.1.

The homogeneous-confidence model puts ``1 - gamma`` on its predicted class; at accuracy ``a`` its
log-perplexity is ``pplx = -a log(1 - gamma) - (1 - a) log(gamma)`` (Eq. 10). A model whose
confidence grows by ``Delta = s * gamma`` has the same perplexity at the critical accuracy ``a'``
(Eq. 11); perplexity prefers it iff its accuracy exceeds ``a'``. Where ``a > 1 - gamma`` a small
confidence increase lowers perplexity even at lower accuracy (a "free lunch"). Lemma 3.1: a
model with compact positional encodings that copies a long string ``alpha`` confidently gives a
one-bit change ``beta`` almost the same perplexity while copying it wrongly; the printed bound is
negative, the corrected one is ``-log(floor)/N + 2 eta (N-1)/N``.

Symbols: ``a`` accuracy; ``gamma`` wrong-class probability, in (0, 1/2); ``s`` normalised
confidence shift in [0, 1); ``a'`` critical accuracy; ``N`` sequence or string length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mpmath
import numpy as np
import sympy as sp

from numerics import get_backend, get_format, get_policy, to_numpy
from numerics.iso_perplexity import (
    ONE,
    SEPARATOR,
    ZERO,
    copy_log_perplexity,
    copy_model_probabilities,
    copy_readout,
    copy_transformer,
    model_selection,
    sequence_log_perplexity,
)
from numerics.kernels import sequential_total
from numerics.sweep import Cell
from numerics.transformer import forward
from proofs import certify, conjunction, gt, lt
from proofs import iso_perplexity as proof
from theorems._theorem import Statement, Theorem
from theorems.figures import Panel, Series, write_figure

#: The sequence experiment's two models: A is right 90% of the time at confidence 0.95, B hedges
#: with a constant per-token NLL 5% above A's perplexity (so A is truly better).
MODEL_A = {"accuracy": 0.9, "gamma": 0.05, "wrong_every": 10}
B_OVER_A = 1.05
#: The copy experiment's model weight (margin sigma(2) - 1/2 = 0.38 on the constant string).
COPY_WEIGHT = 4.0
#: Up to this length the copy cells also run the model's full forward pass (O(N^2)).
FORWARD_CHECK_MAX = 1024


def log_perplexity(a, gamma):
    """Eq. 10: ``-a log(1 - gamma) - (1 - a) log(gamma)`` (NumPy, mpmath or SymPy)."""
    kind = _kind(a, gamma)
    if kind == "sympy":
        return proof.log_perplexity(sp.sympify(a), sp.sympify(gamma))
    if kind == "mpmath":
        return -a * mpmath.log1p(-gamma) - (1 - a) * mpmath.log(gamma)
    a, gamma = _check_a_gamma(a, gamma)
    return -a * np.log1p(-gamma) - (1 - a) * np.log(gamma)


def critical_accuracy(a, gamma, s):
    """Eq. 11 with ``gamma' = gamma (1 - s)``: the accuracy at which the more confident model has
    the same perplexity; perplexity prefers it iff its accuracy is above this."""
    kind = _kind(a, gamma, s)
    if kind == "sympy":
        return proof.critical_accuracy_expr(*(sp.sympify(x) for x in (a, gamma, s)))
    if kind == "mpmath":
        shifted = gamma * (1 - s)
        return ((log_perplexity(a, gamma) + mpmath.log(shifted))
                / (mpmath.log(shifted) - mpmath.log1p(-shifted)))
    a, gamma = _check_a_gamma(a, gamma)
    s = _check_range(s, "s", 0.0, 1.0, closed_low=True)
    shifted = gamma * (1 - s)
    return (log_perplexity(a, gamma) + np.log(shifted)) / (np.log(shifted) - np.log1p(-shifted))


def lowest_accepted_accuracy(a, gamma):
    """Return ``(a_min, gamma_at_min)``: the least accurate model, over all confidence increases,
    that perplexity still does not reject.

    The iso-perplexity curve is lowest where the new model is calibrated (``gamma' = 1 - a'``),
    where ``H_b(a') = pplx_{a,gamma}``; if that confidence is not reachable by increasing
    confidence (``1 - a' > gamma``), the minimum is the model itself, ``(a, gamma)``.
    """
    kind = _kind(a, gamma)
    if kind != "numpy":
        with mpmath.workdps(50):
            a_m, g_m = mpmath.mpf(str(a)), mpmath.mpf(str(gamma))
            target = log_perplexity(a_m, g_m)
            if target >= mpmath.log(2):
                best = (a_m, g_m)
            else:
                root = mpmath.findroot(lambda x: -x * mpmath.log(x) - (1 - x) * mpmath.log1p(-x)
                                       - target, (mpmath.mpf("0.5"), 1 - mpmath.mpf(10) ** -40),
                                       solver="anderson")
                best = (root, 1 - root) if 1 - root <= g_m else (a_m, g_m)
            return (sp.Float(best[0], 50), sp.Float(best[1], 50)) if kind == "sympy" else best
    a, gamma = _check_a_gamma(a, gamma)
    target = log_perplexity(a, gamma)
    low, high = np.full(np.shape(target), 0.5), np.full(np.shape(target), 1.0)
    for _ in range(60):  # bisection on the decreasing binary entropy over [1/2, 1), vectorised
        middle = (low + high) / 2
        entropy = -middle * np.log(middle) - (1 - middle) * np.log1p(-middle)
        above = entropy > target
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    root = (low + high) / 2
    reachable = (target < np.log(2)) & (1 - root <= gamma)
    return np.where(reachable, root, a), np.where(reachable, 1 - root, gamma)


def free_lunch(a, gamma):
    """Whether a small confidence increase lowers perplexity at lower accuracy: ``a > 1 - gamma``
    (the initial slope of ``a'`` is negative exactly then)."""
    if _kind(a, gamma) == "sympy":
        return sp.StrictGreaterThan(sp.sympify(a), 1 - sp.sympify(gamma))
    if _kind(a, gamma) == "mpmath":
        return bool(a > 1 - gamma)
    a, gamma = _check_a_gamma(a, gamma)
    return a > 1 - gamma


def corrected_bound(n, floor, eta):
    """The corrected Lemma 3.1 bound ``-log(floor)/N + 2 eta (N - 1)/N`` on the perplexity gap
    between ``alpha_N`` and ``beta_N`` (``floor``: least probability; ``eta``: continuity)."""
    return -np.log(floor) / n + 2 * eta * (np.asarray(n) - 1) / n


@dataclass(frozen=True)
class ModelPair:
    """Two homogeneous-confidence models and which one perplexity prefers."""

    accuracy: tuple[float, float]
    gamma: tuple[float, float]
    perplexity: tuple[float, float]
    preferred: int  # index of the model with the lower perplexity
    less_accurate: int

    @property
    def prefers_less_accurate(self) -> bool:
        return self.preferred == self.less_accurate

    def __str__(self) -> str:
        rows = [f"model {i}: accuracy {self.accuracy[i]:.6g}, gamma {self.gamma[i]:.6g}, "
                f"pplx {self.perplexity[i]:.9g}" for i in (0, 1)]
        return "\n".join([*rows, f"perplexity prefers model {self.preferred}, the less "
                                 f"accurate one" if self.prefers_less_accurate else
                          f"perplexity prefers model {self.preferred}"])


class IsoPerplexity(Theorem):
    """Perplexity cannot always tell right from wrong: iso-perplexity curves and Lemma 3.1."""

    name = "iso-perplexity"
    title = "low-perplexity wrong answers; iso-perplexity curves and the critical accuracy"
    source = "Velickovic et al., Perplexity Cannot Always Tell Right from Wrong, 2026"
    statement = Statement(
        hypotheses=("0 < a < 1", "0 < gamma < 1/2", "0 <= Delta < gamma"),
        conclusion="pplx(a_new, gamma - Delta) < pplx(a, gamma) iff a_new > a' (Eq. 11); "
                   "a' < a for small Delta iff a > 1 - gamma",
        latex=r"$\mathrm{pplx}_{a_{\mathrm{new}},\gamma-\Delta} < \mathrm{pplx}_{a,\gamma} \iff "
              r"a_{\mathrm{new}} > a' = \frac{\mathrm{pplx}_{a,\gamma} + \log(\gamma-\Delta)}"
              r"{\log(\gamma-\Delta) - \log(1-\gamma+\Delta)}$",
    )
    max_size = 2**24

    def derive(self):
        """Return the checked derivation (:func:`proofs.iso_perplexity.derivation`)."""
        return proof.derivation()

    def certify(self):
        """Certify, over boxes of ``(a, gamma, s)``, the sign of ``a' - a`` on both sides of the
        free-lunch boundary and the sign that makes the selection rule a threshold."""
        return _certificate()

    def axes(self, quick: bool) -> dict[str, list]:
        """Sequence lengths 2^4..2^16 (quick) or 2^4..2^20; every format and policy."""
        top = 16 if quick else 20
        return {
            "sizes": [2**j for j in range(4, top + 1, 2)],
            "formats": ["fp64", "fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2"],
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1, 2],
            "resolution": [24] if quick else [48],
        }

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
            predicted = rows[0]["predicted_n"]
            mechanism = rows[0]["mechanism"] or next(r["mechanism"] for r in rows
                                                     if r["mechanism"])
            lines.append(f"  {key[0]:<9} {key[1]:<7} {mechanism:<24} first flip observed at "
                         f"N={observed}, predicted N={predicted or '-'}")
        return "\n".join(lines)

    def figure(self, out_dir, *, quick: bool = True):
        """Critical accuracy against the confidence shift, and the Lemma 3.1 gap against N."""
        return _figure(Path(out_dir))

    def counterexample(self, *, a: float = 0.5, gamma: float = 0.4, s: float | None = None
                       ) -> ModelPair:
        """Two models where perplexity prefers the less accurate one (exact, in mpmath).

        In the free-lunch region (``a > 1 - gamma``) a more confident, less accurate model has
        lower perplexity; elsewhere a more confident, more accurate model (accuracy between
        ``a`` and ``a'``) has higher perplexity than the original. ``s`` defaults to the shift
        that makes the effect largest on a grid.
        """
        _check_a_gamma(a, gamma)
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
    if any(isinstance(v, mpmath.mpf) for v in values):
        return "mpmath"
    return "numpy"


def _check_range(x, name, low, high, *, closed_low=False):
    x = np.asarray(x, dtype=np.float64)
    bad = np.isnan(x) | ((x < low) if closed_low else (x <= low)) | (x >= high)
    if bad.any():
        first = float(x.ravel()[int(np.flatnonzero(bad.ravel())[0])])
        bracket = "[" if closed_low else "("
        raise ValueError(f"{name}={first!r} must lie in {bracket}{low:g}, {high:g})")
    return x


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


def _row(base, quantity, observed, bound, margin, verdict, mechanism="", **extra) -> dict:
    return {**base, "quantity": quantity, "observed": observed, "bound": bound, "margin": margin,
            "verdict": verdict, "mechanism": mechanism, **extra}


def _surface(params: dict) -> list[dict]:
    """Every pair (old model, more confident new model) on a grid: does perplexity select the new
    one exactly when its accuracy exceeds a' (exact), and does the format's arithmetic agree?"""
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n = params["n"]
    counts = model_selection(np.linspace(0.02, 0.98, n), np.linspace(0.02, 0.48, n),
                             np.linspace(0.0, 0.9, max(2, n // 4)), fmt, policy,
                             xp=get_backend(params["backend"]))
    base = _base(params, "surface")
    breaks = counts["rule_breaks"]
    rows = [_row(base, "selection rule", breaks, 0, -breaks,
                 "holds" if breaks == 0 else "violated", pairs=counts["pairs"])]
    flips, near = counts["flips"], counts["near"]
    if flips == 0:
        verdict, mechanism = "holds", ""
    elif counts["outside"] == 0:
        verdict = "precision-effect"
        mechanism = "rounding to equality" if counts["ties"] == flips else "rounding"
    else:
        verdict, mechanism = "violated", ""
    rows.append(_row(base, f"selection in {fmt.name}", flips, near, near - flips, verdict,
                     mechanism, ties=counts["ties"], pairs=counts["pairs"], predicted=near > 0))
    return rows


def _sequence(params: dict) -> list[dict]:
    """Model A (90% right at confidence 0.95) against model B (constant NLL 5% above A's
    perplexity): their log-perplexities accumulated over N tokens in the format."""
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n, seed = params["n"], params["seed"]
    right, wrong = -math.log1p(-MODEL_A["gamma"]), -math.log(MODEL_A["gamma"])
    position = (np.arange(n) + seed) % MODEL_A["wrong_every"]
    nll_a = np.where(position == MODEL_A["wrong_every"] - 1, wrong, right)
    stored_a = np.asarray(policy.load(nll_a, fmt), dtype=np.float64)
    exact_a = math.fsum(stored_a.tolist()) / n
    stored_right, stored_wrong = float(stored_a.min()), float(stored_a.max())
    every = MODEL_A["wrong_every"]
    level_b = float(np.asarray(policy.load(np.float64(
        B_OVER_A * ((every - 1) * stored_right + stored_wrong) / every), fmt), dtype=np.float64))
    exact_b = level_b
    computed_a, computed_b = (
        float(to_numpy(sequence_log_perplexity(xp.asarray(nll), fmt, policy)))
        for nll in (nll_a, np.full(n, level_b)))
    predicted_n = _predicted_flip(level_b, stored_wrong / every, fmt, policy)
    base = _base(params, "sequence")
    agrees = (computed_a < computed_b) == (exact_a < exact_b)
    if agrees:
        verdict, mechanism = "holds", ""
    else:
        verdict = "precision-effect"
        mechanism = ("accumulation stagnation" if policy.accumulate == "format"
                     else "rounding to equality")
    rows = [_row(base, "A preferred", computed_b - computed_a, exact_b - exact_a,
                 (computed_b - computed_a) * np.sign(exact_b - exact_a), verdict, mechanism,
                 exact_a=exact_a, exact_b=exact_b, computed_a=computed_a, computed_b=computed_b,
                 predicted_n=predicted_n, predicted=predicted_n is not None and n >= predicted_n)]
    ulp = float(fmt.ulp(exact_a))
    unit = 2.0**-53 if fmt.container == np.float64 else 2.0**-24
    tolerance = 2.0 + 2 * (16 + 3 + max(0, math.ceil(math.log2(n)) - 7) + 2) * unit / fmt.eps
    error = abs(computed_a - exact_a) / ulp
    if error <= tolerance:
        verdict, mechanism = "holds", ""
    else:
        verdict = "precision-effect"
        mechanism = ("accumulation stagnation" if computed_a < exact_a
                     else "accumulation rounding")
    rows.append(_row(base, "pplx_A error (ulps)", error, tolerance, tolerance - error, verdict,
                     mechanism, exact_a=exact_a, computed_a=computed_a))
    return rows


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


def _copy(params: dict) -> list[dict]:
    """Lemma 3.1 on a real model: alpha = 0^N is copied with a margin; beta flips one bit, is
    copied as alpha (wrongly), and its perplexity gap shrinks within the corrected bound."""
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n = params["n"]
    alpha = np.zeros(n, dtype=np.int64)
    beta = alpha.copy()
    beta[np.random.default_rng(params["seed"]).integers(n)] = ONE
    _, out_alpha, p_alpha = copy_log_perplexity(alpha, alpha, weight=COPY_WEIGHT)
    _, out_beta, p_beta = copy_log_perplexity(beta, beta, weight=COPY_WEIGHT)
    chosen_alpha = np.where(alpha == ONE, p_alpha, 1 - p_alpha)
    chosen_beta = np.where(beta == ONE, p_beta, 1 - p_beta)
    floor = float(min(p_alpha.min(), (1 - p_alpha).min(), p_beta.min(), (1 - p_beta).min()))
    eta = float(np.max(np.abs(p_alpha - p_beta)[beta == alpha]))
    bound = corrected_bound(n, floor, eta)
    exact_gap = abs(math.fsum((-np.log(chosen_alpha)).tolist())
                    - math.fsum((-np.log(chosen_beta)).tolist())) / n
    pplx = [float(to_numpy(sequence_log_perplexity(xp.asarray(-np.log(p)), fmt, policy)))
            for p in (chosen_alpha, chosen_beta)]
    gap = abs(pplx[0] - pplx[1])
    base = _base(params, "copy")
    miscopied = bool(np.array_equal(out_beta, alpha) and np.array_equal(out_alpha, alpha))
    rows = [_row(base, "beta copied as alpha", int(miscopied), 1, int(miscopied) - 1,
                 "holds" if miscopied else "violated", margin_min=float(1 - p_alpha.max()) - 0.5)]
    slack = 2 * float(fmt.ulp(max(pplx))) * (4 if policy.round_each_op else 1)
    if gap <= bound + slack:
        verdict, mechanism = "holds", ""
    elif exact_gap <= bound:
        verdict = "precision-effect"
        mechanism = ("accumulation stagnation" if policy.accumulate == "format" else "rounding")
    else:
        verdict, mechanism = "violated", ""
    rows.append(_row(base, "gap <= corrected bound", gap, bound, bound - gap, verdict, mechanism,
                     exact_gap=exact_gap, floor=floor, eta=eta,
                     printed_bound=float(proof.printed_lemma_bound(n, 0.5 - floor, floor)
                                         .evalf())))
    if fmt.name == "fp64" and n <= FORWARD_CHECK_MAX:
        rows.append(_forward_row(base, beta))
    return rows


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
    return _row(base, "running mean = forward pass", difference, tolerance,
                tolerance - difference, "holds" if difference <= tolerance else "violated")


_EXPERIMENTS = {"surface": _surface, "sequence": _sequence, "copy": _copy}


def _figure(out_dir: Path):
    shifts = np.linspace(0.0, 0.95, 96)
    by_gamma = [Series(f"gamma = {g:g}", tuple(shifts), tuple(critical_accuracy(0.5, g, shifts)),
                       "line", i) for i, g in enumerate((0.1, 0.2, 0.3, 0.4))]
    by_accuracy = []
    for i, a in enumerate((0.5, 0.6, 0.7, 0.8)):
        curve = critical_accuracy(a, 0.4, shifts)
        by_accuracy.append(Series(f"a = {a:g}", tuple(shifts), tuple(curve), "line", i))
        lunch = curve < a - 1e-9
        if lunch.any():
            label = "" if any(s.style == "marks" for s in by_accuracy) else "free lunch: a' < a"
            by_accuracy.append(Series(label, tuple(shifts[lunch]), tuple(curve[lunch]), "marks",
                                      i))
    sizes = np.array([4**j for j in range(1, 10)])
    gaps, bounds = [], []
    for n in sizes:
        row = _copy({"n": int(n), "format": "fp64", "policy": "hw", "seed": 0,
                     "backend": "numpy"})[1]
        gaps.append(row["exact_gap"])
        bounds.append(row["bound"])
    panels = [
        Panel("a = 0.5", "normalised shift $s$", "critical accuracy $a'$", tuple(by_gamma),
              "linear", "linear", legend="north west"),
        Panel("gamma = 0.4", "normalised shift $s$", "critical accuracy $a'$",
              tuple(by_accuracy), "linear", "linear", legend="south east"),
        Panel("Lemma 3.1 copy model", "$N$", "perplexity gap",
              (Series("|pplx(alpha) - pplx(beta)|", tuple(sizes), tuple(gaps), "marks", 0),
               Series("corrected bound", tuple(sizes), tuple(bounds), "line", 1)),
              legend="south west"),
    ]
    return write_figure(out_dir, THEOREM.name, panels)
