"""Softmax dispersion: Velickovic, Perivolaropoulos, Barbero, Pascanu, "Softmax is not Enough (for
Sharp Size Generalisation)", ICML 2025, Lemma 2.1 and the adaptive temperature of its Fig. 4.

Lemma 2.1: if every logit lies in ``[m, M]`` and ``theta > 0``, then every coefficient of
``softmax_theta(e)`` (eq. (1)) lies in ``[e^{-d}/n, e^{d}/n]`` with ``d = (M - m)/theta``, so all
coefficients are Theta(1/n) and attention disperses as ``n`` grows. The tight form is
``1/(1 + (n-1)e^{d}) <= alpha_i <= 1/(1 + (n-1)e^{-d})``, attained by one logit at one end and the
rest at the other; the paper's bounds are attained at ``n = 1`` or ``d = 0``.

Every number the paper states is read from :data:`proofs.softmax_dispersion.PAPER` (its exponents,
the ``n - 1`` count, the listing's coefficients, gate and epsilon), so a mutation of it reaches
the numbers checked here.

Symbols: ``n`` items; ``spread = delta = M - m``; ``temperature = theta``; ``d = delta/theta``;
``alpha_max``/``alpha_min`` the largest/smallest coefficient; ``H`` the row entropy in nats;
``beta = 1/theta`` the adaptive inverse temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import mpmath
import numpy as np

from numerics import FORMAT_NAMES, get_backend, get_format, get_policy, to_numpy
from numerics import softmax_dispersion as kernels
from numerics._validate import as_real_array, check_int, check_real
from numerics.backend import to_python
from numerics.errors import InvalidArgument
from numerics.kernels import softmax as kernels_softmax
from numerics.softmax_dispersion import (
    FAMILIES,
    coefficient_extremes,
    denominator_evidence,
    denominator_terms,
    family_logits,
    predicted_extremes,
    reference_extremes,
)
from proofs import certify
from proofs.softmax_dispersion import PAPER, POLY_NAMES, derivation, paper_upper, tight_upper
from theorems._theorem import Statement, Theorem
from theorems._witness import Witness
from theorems.figures import Key, Panel, Series, check_width, write_figure
from theorems.verdicts import judge

__all__ = ["THEOREM", "Counterexample", "adaptive_beta", "adaptive_temperature_softmax",
           "max_weight_bound", "min_size_for_dispersion", "min_weight_bound", "paper_bounds",
           "sharpness_gap", "thresholds"]


def __dir__() -> list[str]:  # tab completion lists the public API, not the helpers
    return sorted(__all__)


#: Logit spreads of the sweep; at 0 every coefficient is exactly 1/n, where Lemma 2.1's
#: e^{+-d}/n is attained.
SPREADS = (0.0, 1.0, 4.0, 16.0)
#: (quantity, coefficient, relation): the rows of every family.
CHECKS = (("alpha_max<=tight", "alpha_max", "<="), ("alpha_max<=paper", "alpha_max", "<="),
          ("alpha_min>=tight", "alpha_min", ">="), ("alpha_min>=paper", "alpha_min", ">="),
          ("alpha_max<1", "alpha_max", "<"), ("alpha_min>0", "alpha_min", ">"))


def paper_bounds(n, spread, temperature=1.0):
    """Return Lemma 2.1's ``(e^{-d}/n, e^{d}/n)`` with ``d = spread / temperature``.

    ``d`` is rounded once, so this and the tight bounds below are within about ``d + 8`` ulps
    of the exact values (a few of the smallest subnormal where they underflow)."""
    return _paper_bounds(*_size_and_d(n, spread, temperature))


def _paper_bounds(n, d):
    upper, lower, rate, _ = _lemma()
    with np.errstate(over="ignore"):
        return to_python(np.exp(lower * d) * n**rate), to_python(np.exp(upper * d) * n**rate)


def max_weight_bound(n, spread, temperature=1.0):
    """Return the tight bound ``1/(1 + (n-1)e^{-d})`` on the largest coefficient.

    Attained by one logit at ``M`` and ``n - 1`` at ``m``; never above ``e^{d}/n``.
    """
    return _max_weight_bound(*_size_and_d(n, spread, temperature))


def _max_weight_bound(n, d):
    _, lower, _, others = _lemma()
    return to_python(_one_over_one_plus(n + others, lower * d))


def min_weight_bound(n, spread, temperature=1.0):
    """Return the tight bound ``1/(1 + (n-1)e^{d})`` on the smallest coefficient."""
    return _min_weight_bound(*_size_and_d(n, spread, temperature))


def _min_weight_bound(n, d):
    upper, _, _, others = _lemma()
    return to_python(_one_over_one_plus(n + others, upper * d))


def _one_over_one_plus(count, exponent):
    """``1/(1 + count e^exponent)``, as written (a few ulps; exact where the paper's bound is
    attained, e.g. ``1/n`` at spread 0), except where that breaks: ``count = 0`` (``n = 1``) is
    exactly 1 rather than ``1/(1 + 0 * inf)``, and where ``count e^exponent`` overflows (so the
    1 is negligible and the result below the smallest normal) it is ``e^-exponent / count``,
    within one ulp of the subnormal result."""
    count, exponent = np.broadcast_arrays(np.asarray(count, np.float64),
                                          np.asarray(exponent, np.float64))
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        product = count * np.exp(exponent)
        written = 1.0 / (1.0 + product)
        tail = np.exp(-exponent) / np.where(count > 0, count, 1.0)
    value = np.where(count == 0, 1.0,
                     np.where((count > 0) & ~np.isfinite(product), tail, written))
    return value if value.ndim else value[()]


#: :func:`min_size_for_dispersion` refuses sizes with more digits than this.
MAX_SIZE_DIGITS = 10_000


def min_size_for_dispersion(target, spread, temperature=1.0):
    """Return the smallest ``n`` at which no logits of that spread reach ``alpha_max >= target``.

    From ``1/(1 + (n-1)e^{-d}) < target``: ``n = floor(1 + e^{d}(1/target - 1)) + 1``, evaluated
    in mpmath (the float ``target`` taken exactly, with 40 digits beyond the size's own, so the
    floor is never off by one), as a Python ``int`` however large, or a list of them for several
    targets.
    """
    target = _check_positive_reals(target, "target", closed_high=True, high=1.0)
    spread, temperature = _spread_and_temperature(spread, temperature)
    _, lower, _, others = _lemma()
    sizes = []
    values = np.broadcast_arrays(target, spread, temperature)
    for t_i, s_i, theta in zip(*(v.ravel().tolist() for v in values), strict=True):
        with mpmath.workdps(40):
            d = mpmath.mpf(s_i) / mpmath.mpf(theta)  # exact ratio: no float overflow
            gap = 1 / mpmath.mpf(t_i) - 1  # 0 exactly when target = 1
            # the size's number of digits, from its logarithm
            digits = 0 if gap == 0 else int(mpmath.ceil(
                max(0, -lower * d / mpmath.log(10) + mpmath.log10(gap))))
        if digits > MAX_SIZE_DIGITS:
            raise InvalidArgument(f"the size for target={t_i!r}, spread={s_i!r}, temperature="
                                  f"{theta!r} has more than {MAX_SIZE_DIGITS} digits; pass a "
                                  f"smaller spread/temperature or a larger target")
        with mpmath.workdps(40 + digits):
            d = mpmath.mpf(s_i) / mpmath.mpf(theta)
            growth = mpmath.exp(-lower * d) if gap != 0 else 0  # e^d * 0 is 0, even for d = inf
            exact = growth * (1 / mpmath.mpf(t_i) - 1) - others
            sizes.append(int(mpmath.floor(exact)) + 1)
    return sizes if values[0].ndim else sizes[0]


#: The largest entropy (nats) of a distribution over fewer than 2^64 items.
MAX_ENTROPY = 64 * math.log(2)


def adaptive_beta(entropy):
    """Return the listing's ``beta(H)``: ``max(polyval(poly_fit, H), 1)`` if ``H > 0.5``, else 1.

    ``entropy`` (nats) must lie in ``[0, 64 ln 2]``: no distribution over fewer than ``2^64``
    items has more. Inside the kernel a NaN entropy keeps beta = 1, as the listing does, but a
    caller passing one gets an error, not a silent 1.
    """
    entropy = as_real_array(entropy, "entropy")
    host = to_numpy(entropy, np.float64)
    if host.size == 0:
        raise InvalidArgument("entropy is empty; pass at least one value")
    if np.any(~np.isfinite(host)) or np.any(host < 0) or np.any(host > MAX_ENTROPY):
        raise InvalidArgument(f"entropy={_shown(host)} must lie in [0, {MAX_ENTROPY:.4g}] "
                              f"(nats)")
    return to_python(kernels.adaptive_beta(entropy, _poly_fit(), PAPER.value("listing.gate")))


def adaptive_temperature_softmax(logits, fmt="fp32", policy="hw", *, axis=-1, return_beta=False):
    """The paper's ``adaptive_temperature_softmax`` (Fig. 4), in a format under a policy.

    ``p = softmax(e)``; ``H = sum -p log(p + 1e-9)`` (nats); ``beta = max(beta(H), 1)`` where
    ``H > 0.5``, else 1; returns ``softmax(beta * e)`` (and ``(beta, H)`` if ``return_beta``). The
    entropy is computed as the listing computes it: under ``strict`` in fp16, ``1e-9`` rounds to 0,
    ``0 * log 0`` is NaN, the gate ``NaN > 0.5`` is false, and such rows silently keep beta = 1.
    """
    out, beta, entropy = kernels.adaptive_temperature_softmax(
        logits, get_format(fmt), get_policy(policy), coefficients=_poly_fit(),
        gate=PAPER.value("listing.gate"), epsilon=PAPER.value("listing.epsilon"), axis=axis)
    return (out, beta, entropy) if return_beta else out


def sharpness_gap(fmt, policy="hw"):
    """Return ``(zero_gap, one_gap)``: the smallest logit gap ``g`` (in units of the temperature,
    representable in ``fmt``) at which ``softmax([0, -g])`` is exactly ``[1, 0]``, and the smallest
    at which the top weight alone rounds to exactly 1."""
    return kernels.sharpness_gap(get_format(fmt), get_policy(policy))


def thresholds(report) -> list[dict]:
    """Where each precision effect sets in or stops, worst-case rows (seed 0, temperature 1).

    Per format, policy, family, spread and quantity with an effect somewhere on the grid: every
    grid step where the effect appears or disappears (``last_n`` without/with it, ``first_n``
    with/without it), the mechanism, and the exact integer sizes between them where the rounding
    model's verdict flips (``model_last_n``, ``model_first_n``), each re-run through the kernel
    (``kernel_agrees``: the observed verdicts at those two sizes are the model's); where it
    disagrees, the kernel's own flip (``kernel_last_n``, ``kernel_first_n``).
    """
    seed = min(row["seed"] for row in report.rows)
    groups: dict[tuple, list[dict]] = {}
    for row in report.rows:
        if row["family"] != "random" and row["temperature"] == 1.0 and row["seed"] == seed \
                and row["n"] > 1 and row["spread"] > 0:
            key = (row["format"], row["policy"], row["family"], row["spread"], row["quantity"])
            groups.setdefault(key, []).append(row)
    table = []
    for key, rows in groups.items():
        rows.sort(key=lambda r: r["n"])
        for before, after in zip(rows, rows[1:], strict=False):
            has = (before["verdict"] == "precision-effect", after["verdict"] == "precision-effect")
            if has[0] == has[1]:
                continue
            fmt_name, policy_name, family, spread, quantity = key
            model = _model_flip(family, before["n"], after["n"], spread, fmt_name, policy_name,
                                quantity)
            table.append({
                "format": fmt_name, "policy": policy_name, "family": family, "spread": spread,
                "quantity": quantity, "sets_in": has[1], "last_n": before["n"],
                "first_n": after["n"], "mechanism": (after if has[1] else before)["mechanism"],
                "grid_predicted": (before["predicted"], after["predicted"]) == (has[0], has[1]),
                **model})
    return table


@dataclass(frozen=True, repr=False)
class Counterexample(Witness):
    """A witness: concrete logits, the coefficient they give (exact), and the claim they break."""

    claim: str
    n: int
    spread: float
    temperature: float
    logits: np.ndarray
    value: float
    bound: float
    fmt: str = "fp64"
    policy: str = "hw"
    computed: float | None = None  # the same coefficient computed in fmt under policy

    def headline(self) -> str:
        return (f"{self.claim}: n={self.n}, spread={self.spread:g}, theta={self.temperature:g} "
                f"gives {self.value:.6g} (exact; {self.computed:.6g} in {self.fmt}/"
                f"{self.policy}) against {self.bound:.6g}")


class SoftmaxDispersion(Theorem):
    """Lemma 2.1: bounded logits force every softmax coefficient to Theta(1/n)."""

    name = "softmax-dispersion"
    title = "bounded logits force every softmax coefficient to Theta(1/n)"
    source = "Velickovic et al., Softmax is not Enough, ICML 2025, Lemma 2.1"
    statement = Statement(
        hypotheses=("m <= e_i <= M for i = 1..n", "theta > 0", "d = (M - m)/theta"),
        conclusion="1/(1 + (n-1)e^d) <= alpha_i <= 1/(1 + (n-1)e^-d), within "
                   "[e^-d/n, e^d/n]; so alpha_i = Theta(1/n), at every layer (Thm 2.2)",
        latex=r"$m \le e_i \le M,\ \theta > 0 \implies \frac{e^{-\delta/\theta}}{n} \le "
              r"\frac{1}{1+(n-1)e^{\delta/\theta}} \le \mathrm{softmax}_\theta(e)_i \le "
              r"\frac{1}{1+(n-1)e^{-\delta/\theta}} \le \frac{e^{\delta/\theta}}{n}$",
    )
    max_size = 2**26
    quantities = PAPER

    def derive(self):
        """Return the checked derivation (:func:`proofs.softmax_dispersion.derivation`)."""
        return derivation()

    def certify(self):
        """Certify ``1/(1+(n-1)e^{-d}) <= e^{d}/n`` over ``n in [1, 2^24]``, ``d in [0, 30]``."""
        return _certificate()

    def axes(self, quick: bool) -> dict[str, list]:
        """Sizes 1..2^24 (quick: 1..2^16), all formats and policies, four spreads (0 included)."""
        top = 16 if quick else 24
        return {
            "sizes": [1] + [2**j for j in range(1, top + 1)],
            "formats": list(FORMAT_NAMES),
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1],
            "spread": list(SPREADS),
            "temperature": [1.0] if quick else [1.0, 0.5],
        }

    def audit_grid(self) -> dict:
        """Sizes 1, 2, 64 in fp64 and bf16 under both policies, in-process: every row quantity
        has a row at its bound there (extremal families, spread 0, n = 1)."""
        return {"quick": True, "workers": 1, "sizes": [1, 2, 64], "formats": ["fp64", "bf16"]}

    @staticmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one cell: every logit family, both extremes, against both bounds."""
        return _evaluate(params)

    def figure(self, out_dir, *, quick: bool = True, width: str = "columnwidth",
               report=None):
        """Largest coefficient against ``n`` (log-log), per format, with both bounds (hw policy);
        ``width``: ``columnwidth``, ``textwidth``, ``linewidth`` or a TeX length. ``report`` is
        not read: the figure's logits are its own, not the sweep's."""
        return _figure(Path(out_dir), quick=quick, width=check_width(width))

    def findings(self, report) -> str:
        """Where each precision effect sets in or stops (grid and exact sizes, observed against
        the rounding model) and each format's sharpness gaps."""
        table = thresholds(report)
        agree = sum(row["grid_predicted"] for row in table)
        exact = [row for row in table if row["model_last_n"] is not None]
        lines = [f"precision thresholds, worst-case logits: {agree} of {len(table)} grid "
                 f"transitions as the rounding model predicts; exact sizes from the model, "
                 f"{sum(row['kernel_agrees'] for row in exact)} of {len(exact)} confirmed by "
                 f"the kernel"]
        for row in table:
            verb = "sets in" if row["sets_in"] else "stops"
            text = (f"  {row['format']:<8} {row['policy']:<6} {row['family']:<9} "
                    f"spread {row['spread']:<3g} {row['quantity']:<16} {row['mechanism']:<23} "
                    f"{verb}: last n {'without' if row['sets_in'] else 'with'} it "
                    f"{row['last_n']}, first n {'with' if row['sets_in'] else 'without'} "
                    f"{row['first_n']}")
            if row["model_last_n"] is not None and row["kernel_agrees"]:
                text += f"; exactly {row['model_last_n']} -> {row['model_first_n']}"
            elif row["model_last_n"] is not None:
                text += (f"; exactly {row['kernel_last_n']} -> {row['kernel_first_n']} (model: "
                         f"{row['model_last_n']} -> {row['model_first_n']})")
            lines.append(text)
        gaps = ", ".join(f"{name} {zero:g}/{one:g}" for name, (zero, one) in
                         ((name, sharpness_gap(name, "hw")) for name in
                          sorted({row["format"] for row in report.rows})))
        lines.append(f"sharpness gaps under hw (exactly one-hot / top weight 1): {gaps}")
        return "\n".join(lines)

    def counterexample(self, *, sharpness: float = 0.9, spread: float = 4.0,
                       temperature: float = 1.0, bound=None, kind: str = "lower",
                       max_size: int = 2**20, fmt: str = "fp64",
                       policy: str = "hw") -> Counterexample:
        """Return a witness.

        Without ``bound``: the size at which ``alpha_max >= sharpness`` becomes impossible for
        logits of that spread, and the extremal logits there (their largest coefficient, exact,
        is below ``sharpness`` and no other logits of that spread do better).
        With ``bound(n, spread, temperature)``, a claimed ``kind`` ("lower" on ``alpha_min`` or
        "upper" on ``alpha_max``) bound: the first extremal configuration that refutes it, or
        ``ValueError`` if none up to ``max_size`` does. Either way the witness also carries the
        coefficient computed from its logits in ``fmt`` under ``policy`` (``computed``).
        """
        fmt, policy = get_format(fmt).name, get_policy(policy).name

        def witness(claim, n, family, value, claimed):
            logits = family_logits(family, n, spread)
            weights = to_numpy(kernels_softmax(logits, fmt, policy, temperature=temperature),
                               np.float64)
            computed = weights.max() if family == "worst-max" else weights.min()
            return Counterexample(claim, n, spread, temperature, logits, value, claimed, fmt,
                                  policy, float(computed))

        sharpness = check_real(sharpness, "sharpness", min=0.0, max=1.0, strict_min=True)
        spread = check_real(spread, "spread", min=0.0)
        temperature = check_real(temperature, "temperature", min=0.0, strict_min=True)
        if bound is None:
            n = min_size_for_dispersion(sharpness, spread, temperature)
            value = _exact_extreme(n, spread / temperature, top=True)
            return witness(f"alpha_max >= {sharpness:g} is impossible", n, "worst-max", value,
                           sharpness)
        if kind not in ("lower", "upper"):
            raise InvalidArgument(f"kind={kind!r} must be 'lower' or 'upper'")
        max_size = check_int(max_size, "max_size", min=2)
        for n in sorted({2, 3, 4, 5, 8, 10} | {2**j for j in range(1, max_size.bit_length())}):
            value = _exact_extreme(n, spread / temperature, top=kind == "upper")
            claimed = float(bound(n, spread, temperature))
            if (value < claimed) if kind == "lower" else (value > claimed):
                family = "worst-min" if kind == "lower" else "worst-max"
                return witness(f"claimed {kind} bound refuted", n, family, value, claimed)
        raise InvalidArgument(f"no extremal configuration with n <= {max_size} refutes the bound")


THEOREM = SoftmaxDispersion()


def _lemma() -> tuple[float, float, float, float]:
    """Lemma 2.1's upper and lower exponents of e^d, the power of n, and the n - 1 offset."""
    return (PAPER.value("lemma.upper.exponent"), PAPER.value("lemma.lower.exponent"),
            PAPER.value("lemma.rate"), PAPER.value("lemma.others"))


def _poly_fit() -> tuple[float, ...]:
    return tuple(PAPER.value(name) for name in POLY_NAMES)


@PAPER.cache
def _certificate():
    import sympy as sp

    n, d = sp.Symbol("n", positive=True), sp.Symbol("d", nonnegative=True)
    claim = sp.LessThan(tight_upper(n, d), paper_upper(n, d), evaluate=False)
    return certify(claim, {n: (1, 2**24), d: (0, 30)})


def _size_and_d(n, spread, temperature):
    given = to_numpy(as_real_array(n, "n"))
    n = given.astype(np.float64)
    if np.any(~np.isfinite(n)) or np.any(n < 1) or np.any(n != np.floor(n)):
        raise InvalidArgument(f"n={_shown(given)} must be a positive integer")
    spread, temperature = _spread_and_temperature(spread, temperature)
    return n, spread / temperature


def _spread_and_temperature(spread, temperature):
    given = {name: to_numpy(as_real_array(value, name))
             for name, value in (("spread", spread), ("temperature", temperature))}
    spread, temperature = (value.astype(np.float64) for value in given.values())
    if np.any(~np.isfinite(spread)) or np.any(spread < 0):
        raise InvalidArgument(f"spread={_shown(given['spread'])} must be finite and >= 0")
    if np.any(~np.isfinite(temperature)) or np.any(temperature <= 0):
        raise InvalidArgument(f"temperature={_shown(given['temperature'])} must be finite and > 0")
    return spread, temperature


def _check_positive_reals(x, name: str, *, high: float, closed_high: bool):
    x = to_numpy(as_real_array(x, name), np.float64)
    if x.size == 0:
        raise InvalidArgument(f"{name} is empty; pass at least one value")
    if np.any(~np.isfinite(x)) or np.any(x <= 0) or np.any(x > high if closed_high
                                                            else x >= high):
        raise InvalidArgument(f"{name}={_shown(x)} must lie in (0, {high:g}"
                              f"{']' if closed_high else ')'}")
    return x


def _shown(x: np.ndarray):
    """A value for a message: the number itself, or the first offending one of an array."""
    return repr(x.item()) if x.ndim == 0 else f"{x.ravel()[:3].tolist()!r}"[:60]


def _exact_extreme(n: int, d: float, *, top: bool) -> float:
    with mpmath.workdps(50):
        other = mpmath.exp(-d if top else d)
        return float(1 / (1 + (n - 1) * other))


def _evaluate(params: dict) -> list[dict]:
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    n, spread, theta = params["n"], params["spread"], params["temperature"]
    base = {"theorem": THEOREM.name, "n": n, "format": fmt.name, "policy": policy.name,
            "seed": params["seed"], "backend": params["backend"], "spread": spread,
            "temperature": theta}
    rows = []
    for family in FAMILIES:
        # stored once: every function below reads the same vector in the format
        logits = fmt.store(family_logits(family, n, spread, seed=params["seed"], xp=xp))
        observed = coefficient_extremes(logits, fmt, policy, temperature=theta)
        tolerance = _tolerance_ulps(n, fmt, policy, observed["d"])
        exact = reference_extremes(logits, fmt, temperature=theta)
        model = predicted_extremes(family, n, spread, fmt, policy, temperature=theta)
        evidence = denominator_evidence(denominator_terms(logits, fmt, policy,
                                                          temperature=theta), fmt, policy)
        context = {**base, "family": family, "d": observed["d"], "total": observed["total"]}
        for quantity, key, relation, bound in _checks(n, observed["d"]):
            verdict = judge(quantity=quantity, observed=observed[key], exact=exact[key],
                            bound=bound, relation=relation, format=fmt.name,
                            tolerance_ulps=tolerance, evidence=evidence)
            predicted = None
            if model is not None:
                predicted = judge(quantity=quantity, observed=model[key], exact=exact[key],
                                  bound=bound, relation=relation, format=fmt.name,
                                  tolerance_ulps=tolerance)["verdict"] == "precision-effect"
            rows.append({**context, **verdict, "model": model[key] if model else None,
                         "predicted": predicted})
    return rows


def _checks(n: int, d: float) -> list[tuple[str, str, str, float]]:
    # the bounds at a cell's own size and realised spread, valid by construction: the same
    # float64 values the public functions compute after checking their arguments
    size, spread = np.asarray(float(n)), np.asarray(float(d))
    lower, upper = _paper_bounds(size, spread)
    bounds = {"alpha_max<=tight": float(_max_weight_bound(size, spread)),
              "alpha_max<=paper": float(upper),
              "alpha_min>=tight": float(_min_weight_bound(size, spread)),
              "alpha_min>=paper": float(lower),
              "alpha_max<1": 1.0, "alpha_min>0": 0.0}
    return [(quantity, key, relation, bounds[quantity]) for quantity, key, relation in CHECKS
            if n >= 2 or relation in ("<=", ">=")]


def _tolerance_ulps(n: int, fmt, policy, d: float) -> float:
    """Output rounding (<= 1 ulp across a binade edge) plus an a priori bound on the compute
    error, in ulps of the format: a blocked pairwise sum (blocks of 128 over 8 accumulators:
    16 + 3 roundings, then log2(n/128) levels) of positive terms, a few elementwise operations,
    and the exponentials' argument error: ``z = (e - max e)/theta`` carries a relative rounding,
    so ``exp(z)`` is off by up to ``|z| u <= d u`` relative (``d`` the realised spread over the
    temperature)."""
    unit = 2.0**-53 if fmt.container == np.float64 else 2.0**-24
    depth = 16 + 3 + max(0, math.ceil(math.log2(max(n, 2))) - 7)
    compute = 2 * (depth + 4 + abs(float(d))) * unit / fmt.eps
    return 1.0 + (2.0 if policy.round_each_op else 0.0) + compute


def _verdict_at(family, n, spread, fmt, policy, quantity, *, model: bool) -> bool:
    """Whether the worst-case row of ``quantity`` at size ``n`` is a precision effect, from the
    rounding model (``model``; exact values in closed form) or from the kernel."""
    if model:
        values = predicted_extremes(family, n, spread, fmt, policy)
        d = float(fmt.round(np.float64(spread / 2)) - fmt.round(np.float64(-spread / 2)))
        with mpmath.workdps(30):
            small = mpmath.exp(-mpmath.mpf(d))
            total = 1 + (n - 1) * small if family == "worst-max" else (n - 1) + small
            exact = {"alpha_max": float(1 / total), "alpha_min": float(small / total)}
    else:
        logits = family_logits(family, n, spread)
        values = coefficient_extremes(logits, fmt, policy)
        d, exact = values["d"], reference_extremes(logits, fmt)
    _, key, relation, bound = next(c for c in _checks(n, d) if c[0] == quantity)
    return judge(quantity=quantity, observed=values[key], exact=exact[key], bound=bound,
                 relation=relation, format=fmt.name,
                 tolerance_ulps=_tolerance_ulps(n, fmt, policy, d))["verdict"] == "precision-effect"


def _model_flip(family, low, high, spread, fmt_name, policy_name, quantity) -> dict:
    """Bisect the sizes between two grid points for where the model's verdict flips and re-run
    the kernel at the two sizes found; where the kernel disagrees there, bisect with the kernel
    too (``kernel_last_n``/``kernel_first_n``)."""
    fmt, policy = get_format(fmt_name), get_policy(policy_name)

    def flip(model: bool):
        verdict = lambda size: _verdict_at(family, size, spread, fmt, policy,  # noqa: E731
                                           quantity, model=model)
        start, lo, hi = verdict(low), low, high
        if verdict(hi) == start:
            return None, None, start
        while hi - lo > 1:
            middle = (lo + hi) // 2
            lo, hi = (middle, hi) if verdict(middle) == start else (lo, middle)
        return lo, hi, start

    last, first, start = flip(model=True)
    found = {"model_last_n": last, "model_first_n": first, "kernel_agrees": False,
             "kernel_last_n": None, "kernel_first_n": None}
    if last is None:
        return found
    kernel = tuple(_verdict_at(family, size, spread, fmt, policy, quantity, model=False)
                   for size in (last, first))
    found["kernel_agrees"] = kernel == (start, not start)
    if found["kernel_agrees"]:
        found["kernel_last_n"], found["kernel_first_n"] = last, first
    else:
        found["kernel_last_n"], found["kernel_first_n"], _ = flip(model=False)
    return found


def _figure(out_dir: Path, *, quick: bool, width: str):
    return write_figure(out_dir, THEOREM.name, _figure_panels(quick), width=width)


def _figure_panels(quick: bool) -> list[Panel]:
    """One panel per format: the largest coefficient of the worst-case logits against ``n``
    for each spread (colour), observed and both bounds (marks, line, dashed)."""
    sizes = np.array([2**j for j in range(1, (16 if quick else 24) + 1)])
    spreads = [(colour, s) for colour, s in zip((0, 1, 3), (s for s in SPREADS if s > 0),
                                                 strict=True)]
    key = tuple(Key(f"$\\delta = {s:g}$", "line", colour) for colour, s in spreads) + (
        Key("observed (hw)", "marks"), Key("tight bound", "line"),
        Key("Lemma 2.1: $e^{\\delta}/n$", "dashed"))
    panels = []
    for fmt_name in THEOREM.axes(quick)["formats"]:
        fmt, series = get_format(fmt_name), []
        for colour, spread in spreads:
            observed = [coefficient_extremes(family_logits("worst-max", int(n), spread), fmt,
                                             get_policy("hw"))["alpha_max"] for n in sizes]
            series += [
                Series(f"observed, $\\delta = {spread:g}$", tuple(sizes), tuple(observed),
                       "marks", colour),
                Series(f"tight bound, $\\delta = {spread:g}$", tuple(sizes),
                       tuple(max_weight_bound(sizes, spread)), "line", colour),
                Series(f"Lemma 2.1, $\\delta = {spread:g}$", tuple(sizes),
                       tuple(np.minimum(paper_bounds(sizes, spread)[1], 1.0)), "dashed", colour),
            ]
        panels.append(Panel(f"{fmt_name} (hw)", "$n$", r"$\max_i \alpha_i$", tuple(series),
                            key=key))
    return panels
