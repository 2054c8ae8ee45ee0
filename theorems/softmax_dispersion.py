"""Softmax dispersion: Velickovic, Perivolaropoulos, Barbero, Pascanu, "Softmax is not Enough (for
Sharp Size Generalisation)", ICML 2025, Lemma 2.1 and the adaptive temperature of its Fig. 4.

Lemma 2.1: if every logit lies in ``[m, M]`` and ``theta > 0``, then every coefficient of
``softmax_theta(e)`` (eq. (1)) lies in ``[e^{-d}/n, e^{d}/n]`` with ``d = (M - m)/theta``, so all
coefficients are Theta(1/n) and attention disperses as ``n`` grows. The tight form is
``1/(1 + (n-1)e^{d}) <= alpha_i <= 1/(1 + (n-1)e^{-d})``, attained by one logit at one end and the
rest at the other.

Symbols: ``n`` items; ``spread = delta = M - m``; ``temperature = theta``; ``d = delta/theta``;
``alpha_max``/``alpha_min`` the largest/smallest coefficient; ``H`` the row entropy in nats;
``beta = 1/theta`` the adaptive inverse temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import mpmath
import numpy as np

from numerics import get_backend, get_format, get_policy, softmax
from numerics._validate import check_int, check_real
from numerics.backend import array_namespace
from numerics.kernels import load_finite
from numerics.softmax_dispersion import (
    FAMILIES,
    coefficient_extremes,
    family_logits,
    predicted_extremes,
    reference_extremes,
)
from proofs import certify
from proofs.softmax_dispersion import derivation, paper_upper, tight_upper
from theorems._theorem import Statement, Theorem
from theorems.figures import Panel, Series, write_figure

#: The JAX listing's polynomial, highest degree first (jnp.polyval order).
POLY_FIT = (-0.037, 0.481, -2.3, 4.917, -1.791)
#: The listing's entropy epsilon: H = -sum p log(p + 1e-9).
ENTROPY_EPSILON = 1e-9
#: The listing's gate: rows with H <= 0.5 keep beta = 1.
ENTROPY_GATE = 0.5
SPREADS = (1.0, 4.0, 16.0)


def paper_bounds(n, spread, temperature=1.0):
    """Return Lemma 2.1's ``(e^{-d}/n, e^{d}/n)`` with ``d = spread / temperature``."""
    n, d = _size_and_d(n, spread, temperature)
    return np.exp(-d) / n, np.exp(d) / n


def max_weight_bound(n, spread, temperature=1.0):
    """Return the tight bound ``1/(1 + (n-1)e^{-d})`` on the largest coefficient.

    Attained by one logit at ``M`` and ``n - 1`` at ``m``; never above ``e^{d}/n``.
    """
    n, d = _size_and_d(n, spread, temperature)
    return 1.0 / (1.0 + (n - 1) * np.exp(-d))


def min_weight_bound(n, spread, temperature=1.0):
    """Return the tight bound ``1/(1 + (n-1)e^{d})`` on the smallest coefficient."""
    n, d = _size_and_d(n, spread, temperature)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + (n - 1) * np.exp(d))


def min_size_for_dispersion(target, spread, temperature=1.0):
    """Return the smallest ``n`` at which no logits of that spread reach ``alpha_max >= target``.

    From ``1/(1 + (n-1)e^{-d}) < target``: ``n = floor(1 + e^{d}(1/target - 1)) + 1``.
    """
    target = np.asarray(target, dtype=np.float64)
    if np.any((target <= 0) | (target > 1)) or not np.all(np.isfinite(target)):
        raise ValueError(f"target={target.tolist()!r} must lie in (0, 1]")
    _, d = _size_and_d(1, spread, temperature)
    with np.errstate(over="ignore"):
        size = np.floor(1.0 + np.exp(d) * (1.0 / target - 1.0)) + 1.0
    return size.astype(np.int64) if size.ndim else int(size)


def adaptive_beta(entropy):
    """Return the listing's ``beta(H)``: ``max(polyval(POLY_FIT, H), 1)`` if ``H > 0.5``, else 1."""
    xp = array_namespace(entropy)
    h = xp.asarray(entropy, dtype=xp.float64)
    poly = xp.zeros_like(h)
    for coefficient in POLY_FIT:  # Horner, highest degree first as jnp.polyval
        poly = poly * h + coefficient
    return xp.where(h > ENTROPY_GATE, xp.maximum(poly, 1.0), 1.0)


def adaptive_temperature_softmax(logits, fmt="fp32", policy="hw", *, axis=-1, return_beta=False):
    """The paper's ``adaptive_temperature_softmax`` (Fig. 4), in a format under a policy.

    ``p = softmax(e)``; ``H = sum -p log(p + 1e-9)`` (nats); ``beta = max(beta(H), 1)`` where
    ``H > 0.5``, else 1; returns ``softmax(beta * e)`` (and ``(beta, H)`` if ``return_beta``). The
    entropy is computed as the listing computes it: under ``strict`` in fp16, ``1e-9`` rounds to 0,
    ``0 * log 0`` is NaN, the gate ``NaN > 0.5`` is false, and such rows silently keep beta = 1.
    """
    fmt, policy = get_format(fmt), get_policy(policy)
    xp = array_namespace(logits)
    x = load_finite(logits, fmt, policy, "logits")
    p = policy.load(softmax(x, fmt, policy, axis=axis), fmt)
    epsilon = policy.step(xp.asarray(ENTROPY_EPSILON, dtype=p.dtype), fmt)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = policy.step(xp.log(policy.step(p + epsilon, fmt)), fmt)
        terms = policy.step(-p * log_p, fmt)
    entropy = policy.sum(terms, fmt, axis=axis, keepdims=True)
    beta = adaptive_beta(policy.step(entropy, fmt)).astype(x.dtype)
    out = softmax(policy.step(x * beta, fmt), fmt, policy, axis=axis)
    return (out, beta, entropy) if return_beta else out


def sharpness_gap(fmt, policy="hw"):
    """Return ``(zero_gap, one_gap)``: the smallest logit gap ``g`` (in units of the temperature,
    representable in ``fmt``) at which ``softmax([0, -g])`` is exactly ``[1, 0]``, and the smallest
    at which the top weight alone rounds to exactly 1.

    Found by bisection over the format's bit patterns (31 or 63 halvings at most); both
    predicates are monotone in ``g``.
    """
    fmt, policy = get_format(fmt), get_policy(policy)

    def top_is_one(g):
        return float(softmax(np.array([0.0, -g]), fmt, policy)[0].astype(np.float64)) == 1.0

    def exact_one_hot(g):
        y = softmax(np.array([0.0, -g]), fmt, policy).astype(np.float64)
        return y[0] == 1.0 and y[1] == 0.0

    return _least_true(exact_one_hot, fmt), _least_true(top_is_one, fmt)


def thresholds(report) -> list[dict]:
    """For worst-case rows: the first size at which each precision effect is observed, next to
    the first size at which the rounding model predicts it, per format, policy, family, spread and
    quantity (seed 0 or the first seed, temperature 1)."""
    groups: dict[tuple, dict] = {}
    for row in sorted(report.rows, key=lambda r: r["n"]):
        if row["family"] == "random" or row["temperature"] != 1.0 or row["predicted"] is None:
            continue
        key = (row["format"], row["policy"], row["family"], row["spread"], row["quantity"])
        entry = groups.setdefault(key, {"observed_n": None, "predicted_n": None, "mechanism": ""})
        if row["verdict"] == "precision-effect" and entry["observed_n"] is None:
            entry["observed_n"], entry["mechanism"] = row["n"], row["mechanism"]
        if row["predicted"] and entry["predicted_n"] is None:
            entry["predicted_n"] = row["n"]
    return [dict(zip(("format", "policy", "family", "spread", "quantity"), key, strict=True),
                 **entry) for key, entry in groups.items()
            if entry["observed_n"] is not None or entry["predicted_n"] is not None]


@dataclass(frozen=True)
class Counterexample:
    """A witness: concrete logits, the coefficient they give (exact), and the claim they break."""

    claim: str
    n: int
    spread: float
    temperature: float
    logits: np.ndarray
    value: float
    bound: float

    def __str__(self) -> str:
        return (f"{self.claim}: n={self.n}, spread={self.spread:g}, theta={self.temperature:g} "
                f"gives {self.value:.6g} against {self.bound:.6g}")


class SoftmaxDispersion(Theorem):
    """Lemma 2.1: bounded logits force every softmax coefficient to Theta(1/n)."""

    name = "softmax-dispersion"
    title = "bounded logits force every softmax coefficient to Theta(1/n)"
    source = "Velickovic et al., Softmax is not Enough, ICML 2025, Lemma 2.1"
    statement = Statement(
        hypotheses=("m <= e_i <= M for i = 1..n", "theta > 0", "d = (M - m)/theta"),
        conclusion="1/(1 + (n-1)e^d) <= alpha_i <= 1/(1 + (n-1)e^-d), within "
                   "[e^-d/n, e^d/n]; so alpha_i = Theta(1/n)",
        latex=r"$m \le e_i \le M,\ \theta > 0 \implies \frac{e^{-\delta/\theta}}{n} \le "
              r"\frac{1}{1+(n-1)e^{\delta/\theta}} \le \mathrm{softmax}_\theta(e)_i \le "
              r"\frac{1}{1+(n-1)e^{-\delta/\theta}} \le \frac{e^{\delta/\theta}}{n}$",
    )
    max_size = 2**26

    def derive(self):
        """Return the checked derivation (:func:`proofs.softmax_dispersion.derivation`)."""
        return derivation()

    def certify(self):
        """Certify ``1/(1+(n-1)e^{-d}) <= e^{d}/n`` over ``n in [1, 2^24]``, ``d in [0, 30]``."""
        return _certificate()

    def axes(self, quick: bool) -> dict[str, list]:
        """Sizes 2..2^24 (quick: 2..2^16), all formats and policies, three spreads."""
        top = 16 if quick else 24
        return {
            "sizes": [2**j for j in range(1, top + 1)],
            "formats": ["fp64", "fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2"],
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1],
            "spread": list(SPREADS),
            "temperature": [1.0] if quick else [1.0, 0.5],
        }

    @staticmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one cell: every logit family, both extremes, against both bounds."""
        return _evaluate(params)

    def figure(self, out_dir, *, quick: bool = True):
        """Largest coefficient against ``n`` (log-log), per format, with both bounds (hw policy)."""
        return _figure(Path(out_dir), quick=quick)

    def findings(self, report) -> str:
        """Precision thresholds, predicted against observed, and each format's sharpness gaps."""
        table = thresholds(report)
        agree = sum(row["predicted_n"] == row["observed_n"] for row in table)
        lines = [f"precision thresholds (first n with the effect), worst-case logits: "
                 f"{agree} of {len(table)} as predicted"]
        for row in table[:8] + [row for row in table[8:]
                                if row["predicted_n"] != row["observed_n"]][:8]:
            lines.append(f"  {row['format']:<9} {row['policy']:<7} {row['family']:<10} "
                         f"spread {row['spread']:<4g} {row['quantity']:<17} {row['mechanism']:<24}"
                         f" observed n={row['observed_n']}, predicted n={row['predicted_n']}")
        gaps = ", ".join(f"{name} {zero:g}/{one:g}" for name, (zero, one) in
                         ((name, sharpness_gap(name, "hw")) for name in
                          sorted({row["format"] for row in report.rows})))
        lines.append(f"sharpness gaps under hw (exactly one-hot / top weight 1): {gaps}")
        return "\n".join(lines)

    def counterexample(self, *, sharpness: float = 0.9, spread: float = 4.0,
                       temperature: float = 1.0, bound=None, kind: str = "lower",
                       max_size: int = 2**20) -> Counterexample:
        """Return a witness.

        Without ``bound``: the size at which ``alpha_max >= sharpness`` becomes impossible for
        logits of that spread, and the extremal logits there (their largest coefficient, exact,
        is below ``sharpness`` and no other logits of that spread do better).
        With ``bound(n, spread, temperature)``, a claimed ``kind`` ("lower" on ``alpha_min`` or
        "upper" on ``alpha_max``) bound: the first extremal configuration that refutes it, or
        ``ValueError`` if none up to ``max_size`` does.
        """
        sharpness = check_real(sharpness, "sharpness", min=0.0, max=1.0, strict_min=True)
        spread = check_real(spread, "spread", min=0.0)
        temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
        if bound is None:
            n = min_size_for_dispersion(sharpness, spread, temperature)
            value = _exact_extreme(n, spread / temperature, top=True)
            return Counterexample(f"alpha_max >= {sharpness:g} is impossible", n, spread,
                                  temperature, family_logits("worst-max", n, spread), value,
                                  sharpness)
        if kind not in ("lower", "upper"):
            raise ValueError(f"kind={kind!r} must be 'lower' or 'upper'")
        max_size = check_int(max_size, "max_size", min=2)
        for n in sorted({2, 3, 4, 5, 8, 10} | {2**j for j in range(1, max_size.bit_length())}):
            value = _exact_extreme(n, spread / temperature, top=kind == "upper")
            claimed = float(bound(n, spread, temperature))
            if (value < claimed) if kind == "lower" else (value > claimed):
                family = "worst-min" if kind == "lower" else "worst-max"
                return Counterexample(f"claimed {kind} bound refuted", n, spread, temperature,
                                      family_logits(family, n, spread), value, claimed)
        raise ValueError(f"no extremal configuration with n <= {max_size} refutes the bound")


THEOREM = SoftmaxDispersion()


@cache
def _certificate():
    import sympy as sp

    n, d = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    claim = sp.LessThan(tight_upper(n, d), paper_upper(n, d), evaluate=False)
    return certify(claim, {n: (1, 2**24), d: (0, 30)})


def _size_and_d(n, spread, temperature):
    n = np.asarray(n)
    if n.dtype.kind not in "iuf" or np.any(n < 1) or np.any(n != np.floor(n)):
        raise ValueError(f"n={n.tolist()!r} must be a positive integer")
    spread = np.asarray(spread, dtype=np.float64)
    temperature = np.asarray(temperature, dtype=np.float64)
    if np.any(~np.isfinite(spread)) or np.any(spread < 0):
        raise ValueError(f"spread={spread.tolist()!r} must be finite and >= 0")
    if np.any(~np.isfinite(temperature)) or np.any(temperature <= 0):
        raise ValueError(f"temperature={temperature.tolist()!r} must be finite and > 0")
    return n.astype(np.float64), spread / temperature


def _exact_extreme(n: int, d: float, *, top: bool) -> float:
    with mpmath.workdps(50):
        other = mpmath.exp(-d if top else d)
        return float(1 / (1 + (n - 1) * other))


def _least_true(predicate, fmt) -> float:
    """Smallest positive finite value ``g`` of ``fmt`` with ``predicate(g)`` (monotone)."""
    bits = fmt.bits
    view = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}[bits]
    finite_top = np.array([fmt.max], dtype=np.float64).astype(fmt.dtype).view(view)[0]
    low, high = 1, int(finite_top)  # bit patterns of positive finite values, increasing

    def value(pattern: int) -> float:
        return float(np.array([pattern], dtype=view).view(fmt.dtype).astype(np.float64)[0])

    if not predicate(value(high)):
        return math.inf
    while low < high:
        middle = (low + high) // 2
        if predicate(value(middle)):
            high = middle
        else:
            low = middle + 1
    return value(low)



def _evaluate(params: dict) -> list[dict]:
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n, spread, theta = params["n"], params["spread"], params["temperature"]
    base = {"theorem": THEOREM.name, "n": n, "format": fmt.name, "policy": policy.name,
            "seed": params["seed"], "backend": params["backend"], "spread": spread,
            "temperature": theta}
    tolerance = _tolerance_ulps(n, fmt, policy)
    rows = []
    for family in FAMILIES:
        logits = family_logits(family, n, spread, seed=params["seed"], xp=xp)
        observed = coefficient_extremes(logits, fmt, policy, temperature=theta)
        exact = reference_extremes(logits, fmt, temperature=theta)
        model = predicted_extremes(family, n, spread, fmt, policy, temperature=theta)
        d = observed["d"]
        context = {**base, "family": family, "d": d, "total": observed["total"],
                   "tolerance_ulps": tolerance,
                   "accumulates_in_format": policy.accumulate == "format"}
        checks = [
            ("alpha_max<=tight", "alpha_max", "upper", float(max_weight_bound(n, d))),
            ("alpha_max<=paper", "alpha_max", "upper", float(paper_bounds(n, d)[1])),
            ("alpha_min>=tight", "alpha_min", "lower", float(min_weight_bound(n, d))),
            ("alpha_min>=paper", "alpha_min", "lower", float(paper_bounds(n, d)[0])),
        ]
        if n >= 2:
            checks += [("alpha_max<1", "alpha_max", "below-one", 1.0),
                       ("alpha_min>0", "alpha_min", "above-zero", 0.0)]
        for quantity, key, kind, bound in checks:
            rows.append(_row(context, quantity, kind, observed[key], bound, exact[key],
                             model[key] if model else None, fmt, tolerance))
    return rows


def _tolerance_ulps(n: int, fmt, policy) -> float:
    # output rounding (<= 1 ulp across a binade edge) plus an a priori bound on the compute error,
    # in ulps of the format: a blocked pairwise sum (blocks of 128 over 8 accumulators: 16 + 3
    # roundings, then log2(n/128) levels) of positive terms, and a few elementwise operations
    unit = 2.0**-53 if fmt.container == np.float64 else 2.0**-24
    depth = 16 + 3 + max(0, math.ceil(math.log2(max(n, 2))) - 7)
    compute = 2 * (depth + 4) * unit / fmt.eps
    return 1.0 + (2.0 if policy.round_each_op else 0.0) + compute


def _row(context, quantity, kind, observed, bound, exact, model, fmt, tolerance) -> dict:
    ulp = float(fmt.ulp(bound))
    if kind == "upper":
        margin, exact_ok = (bound - observed) / ulp, exact <= bound * (1 + 1e-12)
    elif kind == "lower":
        margin, exact_ok = (observed - bound) / ulp, exact >= bound * (1 - 1e-12)
    elif kind == "below-one":
        margin, exact_ok = (1.0 - observed) / ulp, exact < 1.0
    else:
        margin, exact_ok = observed / ulp, exact > 0.0
    strict_claim = kind in ("below-one", "above-zero")
    holds = margin > 0 if strict_claim else margin >= -tolerance
    if holds:
        verdict, mechanism = "holds", ""
    elif not exact_ok:
        verdict, mechanism = "violated", ""
    else:
        verdict, mechanism = "precision-effect", _mechanism(context, kind, observed, bound, fmt)
    predicted = None
    if model is not None:
        model_margin = {"upper": bound - model, "lower": model - bound, "below-one": 1.0 - model,
                        "above-zero": model}[kind] / ulp
        predicted = not (model_margin > 0 if strict_claim else model_margin >= -tolerance)
    return {**context, "quantity": quantity, "observed": observed, "bound": bound,
            "exact": exact, "model": model, "margin": margin, "verdict": verdict,
            "mechanism": mechanism, "predicted": predicted}


def _mechanism(context, kind, observed, bound, fmt) -> str:
    if observed == 0.0 and kind in ("lower", "above-zero"):
        return "underflow"
    if observed == 1.0 and kind in ("upper", "below-one"):
        return "rounding to one"
    if min(abs(observed), abs(bound)) < fmt.smallest_normal:
        return "subnormal rounding"
    # outputs rounded once each sum to 1 within an ulp or two; more means a wrong denominator
    if context["accumulates_in_format"] and abs(context["total"] - 1.0) > 2 * fmt.eps:
        return "accumulation stagnation" if context["total"] > 1.0 else "accumulation rounding"
    return ""


def _figure(out_dir: Path, *, quick: bool):
    sizes = np.array([2**j for j in range(1, (16 if quick else 24) + 1)])
    panels = []
    names = THEOREM.axes(quick)["formats"]
    for fmt_name in names:
        fmt, series = get_format(fmt_name), []
        for colour, spread in enumerate(SPREADS):
            observed = [coefficient_extremes(family_logits("worst-max", int(n), spread), fmt,
                                             get_policy("hw"))["alpha_max"] for n in sizes]
            series += [
                Series(f"observed, spread {spread:g}", tuple(sizes), tuple(observed), "marks",
                       colour),
                Series(f"tight bound, spread {spread:g}", tuple(sizes),
                       tuple(max_weight_bound(sizes, spread)), "line", colour),
                Series(f"Lemma 2.1, spread {spread:g}", tuple(sizes),
                       tuple(np.minimum(paper_bounds(sizes, spread)[1], 1.0)), "dashed", colour),
            ]
        legend = "outer north east" if fmt_name == names[-1] else ""  # the same in every panel
        panels.append(Panel(f"{fmt_name} (hw)", "$n$", r"$\alpha_{\max}$", tuple(series),
                            legend=legend))
    return write_figure(out_dir, THEOREM.name, panels)
