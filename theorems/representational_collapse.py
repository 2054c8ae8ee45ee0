"""Representational collapse and over-squashing: Barbero, Banino, Kapturowski, Kumaran, Araujo,
Vitvitskyi, Pascanu, Velickovic, "Transformers need glasses! Information over-squashing in language
tasks", NeurIPS 2024 (arXiv 2406.04267 v2), Lemmas B.1-B.2, Theorem 4.2/B.3, Proposition B.4,
Theorem 5.1/B.5 and Proposition B.8.

Theorem B.3: for ``v = [x_<n, a]`` and ``v* = [x_<n, a, a]`` with bounded tokens and decaying
positional encodings, ``||v_n^(L) - v*_{n+1}^(L)||_1 -> 0``. With one layer and no positional
encoding the gap is exactly ``alpha*_{n+1,n+1} ||u_a - m||`` (``m`` the short sequence's attention
output), at most ``2 V e^{2B} / (n + 1)`` (Lemma B.1); ``O(1/n^2)`` when ``x`` ends in copies of
``a``. In a format the two states become bitwise equal from some length on, so no model computed
in it can tell them apart (Corollary B.10: counting fails). Theorem B.5: with attention held fixed
and norms summarised by ``beta1, beta2, beta3``, ``||dy_n / dv_i^(0)|| <= C (Abar^(L-1) ...
Abar^(0))_{n,i}``, ``Abar = Lambda / beta1 + I``, ``C = (1/beta3) prod_l (sigma_psi / beta2 + 1)``.

Symbols: ``n`` the length of ``v`` (the sweep's size is the largest, ``N``); ``a`` the repeated
token (the digit 1); ``v_n``/``v*_{n+1}`` the final states ``v^(L)`` of the last tokens;
``alpha*_{n+1,n+1}`` the long sequence's last attention weight on itself; ``B`` a logit bound;
``TV`` the total variation without the 1/2 (the paper's Eq. (2)); ``Lambda^(l)`` the layer's
attention matrix; ``beta1``, ``beta2``, ``beta3`` the reciprocals of the largest Jacobian norms of
``norm_1``, ``norm_2``, ``norm_3``; ``sigma_psi`` the MLP's Lipschitz constant ``||W_1|| ||W_2||``;
``u`` a format's unit roundoff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import product
from pathlib import Path

import numpy as np

from numerics import FORMAT_NAMES, Cell, get_backend, get_format, get_policy, to_numpy
from numerics._validate import check_choice, check_int, check_nonempty, check_real
from numerics._validate import check_row_stochastic as _check_stochastic
from numerics.representational_collapse import (
    FAMILIES,
    FIG9_K,
    FIG9_NOISE,
    OVERSQUASHING_LENGTH,
    OVERSQUASHING_WIDTH,
    TOKEN,
    collapse_model,
    distinct_rows,
    equal_rows,
    family_prefix,
    finite_difference_jacobian,
    first_true,
    fit_rate,
    gap_bound,
    identity_residual,
    oversquashing_bound_values,
    oversquashing_model,
    oversquashing_terms,
    perturbed_softmax,
    predicted_collapse,
    state_gaps,
)
from numerics.transformer import PE_NAMES, branch_forward
from proofs import certify
from proofs.representational_collapse import derivation
from theorems._theorem import Statement, Theorem
from theorems.figures import Panel, Series, write_figure

NAME = "representational-collapse"
NORMS: tuple[str, ...] = ("l1", "l2", "max")
EXPERIMENTS: tuple[str, ...] = (*FAMILIES, "perturbed-softmax", "oversquashing")
#: Decay exponents are fitted over n in [N/8, N] and must reach the derived rate minus this.
RATE_TOLERANCE = 0.25
RATE_MIN_SIZE = 64
#: The figure's families and the depths of its Prop. B.8 panel.
FIGURE_FAMILIES = ("repeated", "sampled")
FIGURE_DEPTHS = (1, 2, 4, 8, 16)


def alternating_tv(n):
    """Proposition B.4: ``sum_i |softmax(x)_i - softmax(x*)_i|`` for ``x = (1, 0, 1, 0, ...)`` and
    ``x* = (0, 1, 0, 1, ...)`` of length ``n`` (int or array).

    For even ``n = 2m``, ``Z = Z* = m(e + 1)`` and every coordinate differs by ``(e - 1)/Z``, so the
    value is ``2(e - 1)/(e + 1) = 2 tanh(1/2)`` for every even ``n``. For odd ``n = 2m + 1``,
    ``x`` has ``m + 1`` ones and ``x*`` has ``m``: ``(m + 1)|e/Z - 1/Z*| + m|1/Z - e/Z*|`` with
    ``Z = (m + 1)e + m`` and ``Z* = me + m + 1``.
    """
    size = np.asarray(n)
    if size.dtype.kind not in "iuf" or np.any(size < 1) or np.any(size != np.floor(size)):
        raise ValueError(f"n={size.tolist()!r} must be a positive integer")
    m = np.floor(size / 2.0)
    e = math.e
    z, z_star = (m + 1) * e + m, m * e + m + 1
    odd = (m + 1) * np.abs(e / z - 1 / z_star) + m * np.abs(1 / z - e / z_star)
    value = np.where(size % 2 == 0, 2 * (e - 1) / (e + 1), odd)
    return float(value) if value.ndim == 0 else value


def perturbed_softmax_tv(n: int, k: int = FIG9_K, noise: float = FIG9_NOISE, seeds: int = 5, *,
                         fmt: str = "fp64", policy: str = "hw") -> float:
    """The mean over ``seeds`` of Fig. 9's total variation ``sum |y - y*|`` (Lemma B.2).

    ``x ~ U[0, 1]^n``, ``x*`` equals ``x`` plus ``U[0, noise]`` on its first ``k`` entries,
    ``y = softmax(x)``, ``y* = softmax(x*)``; seeds ``0 .. seeds - 1``.
    """
    n = check_int(n, "n", min=1)
    k = check_int(k, "k", min=0)
    noise = check_real(noise, "noise", min=0.0)
    seeds = check_int(seeds, "seeds", min=1)
    fmt, policy = get_format(fmt), get_policy(policy)
    values = [perturbed_softmax([n], k=k, noise=noise, seed=seed, fmt=fmt,
                                policy=policy)["observed"][0] for seed in range(seeds)]
    return float(np.mean(values))


def final_state_gaps(family: str, n_max: int, *, layers: int = 1, d: int = 64, pe: str = "nope",
                     fmt: str = "fp64", policy: str = "hw", seed: int = 0,
                     norm: str = "l1") -> np.ndarray:
    """``||v_n - v*_{n+1}||`` for ``n = 1..n_max`` (float64), from one key/value-cached pass.

    ``v = [x_<n, a]`` and ``v* = [x_<n, a, a]`` with ``x`` the named family (a prompt of 8 random
    tokens, then the family), ``v_n`` the final state ``v^(L)`` of the last token, computed in
    ``fmt`` under ``policy`` by the model of :func:`numerics.representational_collapse.
    collapse_model` with weights from ``seed``.
    """
    run = _branches(family, n_max, layers=layers, d=d, pe=pe, fmt=fmt, policy=policy, seed=seed)
    return state_gaps(run.short, run.long, check_choice(norm, NORMS, "norm"))


def collapse_length(family: str, *, fmt: str, policy: str = "hw", n_max: int = 4096,
                    layers: int = 1, d: int = 64, pe: str = "nope", seed: int = 0) -> int | None:
    """The smallest ``n >= 2`` at which the final states of ``v`` and ``v*`` are bitwise equal in
    ``fmt`` (while they differ in exact arithmetic), or None up to ``n_max``."""
    run, reference = _branches(family, n_max, layers=layers, d=d, pe=pe, fmt=fmt,
                               policy=policy, seed=seed, exact=True)
    return _first_collapse(run.short, run.long, distinct_rows(reference.short, reference.long))


def oversquashing_bound(attention, *, beta1=1.0, beta2=1.0, beta3: float = 1.0,
                        sigma_psi=1.0) -> np.ndarray:
    """Theorem 5.1/B.5 with the constants its proof derives, for every position ``i``.

    ``attention``: the ``L`` causal (lower-triangular, row-stochastic) ``n x n`` attention matrices
    ``Lambda^(0), ..., Lambda^(L-1)``. ``beta1``, ``beta2`` and ``sigma_psi`` may be one number or
    one per layer. Returns ``C (Abar^(L-1) ... Abar^(0))_{n,i}`` for ``i = 1..n``, with
    ``Abar^(l) = Lambda^(l) / beta1^(l) + I`` and ``C = (1/beta3) prod_l (sigma_psi^(l) /
    beta2^(l) + 1)``: a bound on ``||dy_n / dv_i^(0)||``.
    """
    matrices = check_nonempty(attention, "attention")
    size = np.shape(matrices[0])
    for index, matrix in enumerate(matrices):
        name = f"attention[{index}]"
        if np.shape(matrix) != size or len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"{name} has shape {np.shape(matrix)}; expected square {size}")
        _check_stochastic(matrix, name, atol=1e-9)
        if np.any(np.triu(np.asarray(matrix, dtype=np.float64), 1) != 0):
            raise ValueError(f"{name} is not causal: it has weight above the diagonal")
    layers = len(matrices)
    b1 = _per_layer(beta1, "beta1", layers, positive=True)
    b2 = _per_layer(beta2, "beta2", layers, positive=True)
    sigma = _per_layer(sigma_psi, "sigma_psi", layers, positive=False)
    b3 = check_real(beta3, "beta3", min=0.0, strict_min=True)
    return oversquashing_bound_values(matrices, b1, b2, b3, sigma)


def evaluate(params: dict) -> list[dict]:
    """Evaluate one cell of the sweep and return its rows.

    A row's verdict follows one rule: ``holds`` when the observed value satisfies the claim;
    ``violated`` when the exact (fp64) value does not either; otherwise ``precision-effect``, with
    the mechanism that explains the difference, or an empty mechanism (which makes the report
    fail) when the rounding analysis does not explain it.
    """
    experiment = params["experiment"]
    if experiment in FAMILIES:
        return _family_rows(params)
    if experiment == "perturbed-softmax":
        return _fig9_rows(params)
    return _oversquashing_rows(params)


def thresholds(report) -> list[dict]:
    """The collapse-length rows: first length with bitwise equal states, observed and predicted."""
    keys = ("format", "policy", "family", "layers", "pe", "seed", "n_max")
    return [{**{key: row[key] for key in keys}, "observed_n": row["observed_n"],
             "predicted_n": row["predicted_n"], "equal_fraction": row["equal_fraction"]}
            for row in report.rows if row["quantity"] == "collapse-length"
            and (row["observed_n"] is not None or row["predicted_n"] is not None)]


@dataclass(frozen=True)
class Counterexample:
    """Two different inputs whose final states are bitwise identical in a format."""

    family: str
    format: str
    policy: str
    n: int
    short_tokens: np.ndarray
    long_tokens: np.ndarray
    state: np.ndarray
    exact_gap: float
    copies: int

    def __str__(self) -> str:
        return (f"{self.family}, {self.format}/{self.policy}: n={self.n} gives bitwise identical "
                f"final states for {len(self.short_tokens)} and {len(self.long_tokens)} tokens "
                f"({self.copies} and {self.copies + 1} trailing copies of token {TOKEN}); "
                f"exact L1 gap {self.exact_gap:.3g}")


class RepresentationalCollapse(Theorem):
    """Theorem B.3: the last-token states of ``v`` and ``v`` with its last token repeated
    converge; in finite precision they coincide. Theorem B.5: the over-squashing bound."""

    name = NAME
    title = "last-token states of v and v+[a] converge; over-squashing bound"
    source = "Barbero et al., Transformers need glasses!, NeurIPS 2024, Thm B.3, B.5"
    statement = Statement(
        hypotheses=("v = [x_<n, a] and v* = [x_<n, a, a] with bounded tokens",
                    "bounded logits |x_i| <= B and decaying positional encodings",
                    "for Thm B.5: attention independent of the input, norms summarised by "
                    "beta1, beta2, beta3, MLPs sigma_psi-Lipschitz"),
        conclusion="||v_n^(L) - v*_{n+1}^(L)|| -> 0 (one layer: <= 2 V e^{2B}/(n + 1)), so the "
                   "two become bitwise equal in a format; ||dy_n/dv_i|| <= C "
                   "(Abar^(L-1)...Abar^(0))_{n,i}",
        latex=r"$\|v_n^{(L)} - v^{*(L)}_{n+1}\|_1 \to 0,\ \|z_n - z^*_{n+1}\| = "
              r"\alpha^*_{n+1,n+1}\|u_a - m\| \le \frac{2Ve^{2B}}{n+1};\ "
              r"\left\|\frac{\partial y_n}{\partial v_i^{(0)}}\right\| \le C\,"
              r"\big(\bar A^{(L-1)}\cdots\bar A^{(0)}\big)_{n,i}$",
    )
    max_size = 2**13

    def derive(self):
        """Return the checked derivation (:func:`proofs.representational_collapse.derivation`)."""
        return derivation()

    def certify(self):
        """Certify Lemma B.1's rate in its worst case, ``1/(1 + n e^{-2B}) <= e^{2B}/(n + 1)``,
        over ``n in [1, 2^24]``, ``B in [0, 8]``."""
        return _certificate()

    def axes(self, quick: bool) -> dict[str, list]:
        """Quick: N = 256, d = 16, one layer, NoPE. Full: N = 1024, d = 64 (the paper's width),
        one and two layers, every positional encoding, two seeds. All formats and policies."""
        return {
            "sizes": [256] if quick else [1024],
            "formats": ["fp64", "fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2"],
            "policies": ["hw", "strict"],
            "seeds": [0] if quick else [0, 1],
            "experiment": list(EXPERIMENTS),
            "layers": [1] if quick else [1, 2],
            "pe": ["nope"] if quick else list(PE_NAMES),
            "d": [16] if quick else [64],
        }

    def cells(self, axes: dict[str, list]):
        """Cells per experiment: the input families over every axis, Fig. 9 over sizes, formats,
        policies and seeds, and the over-squashing check (exact, fp64) over seeds, depths and
        encodings."""
        return _cells(axes)

    @staticmethod
    def evaluate(params: dict) -> list[dict]:
        """Evaluate one cell of the sweep and return its rows."""
        return evaluate(params)

    def figure(self, out_dir, *, quick: bool = True):
        """Gap against ``n`` per format (hw) with the unit roundoff marked; the over-squashing
        bound against position ``i`` for several depths (Prop. B.8's setting)."""
        return _figure(Path(out_dir), self.name, quick=quick)

    def findings(self, report) -> str:
        """Collapse lengths, predicted against observed, and the over-squashing bound where its
        hypothesis (attention independent of the input) does not hold."""
        table = thresholds(report)
        both = [row["observed_n"] / row["predicted_n"] for row in table
                if row["observed_n"] is not None and row["predicted_n"] is not None]
        lines = [f"collapse lengths (first n with bitwise equal states): {len(both)} cells have "
                 f"both, {sum(0.5 <= r <= 2 for r in both)} within a factor 2 of the "
                 f"unit-roundoff model and {sum(0.25 <= r <= 4 for r in both)} within 4; "
                 f"{len(table) - len(both)} have one only (equal-state share of n >= 2 shown):"]
        for row in table[:16]:
            lines.append(f"  {row['format']:<9} {row['policy']:<7} {row['family']:<12} "
                         f"L={row['layers']} {row['pe']:<10} seed {row['seed']}: "
                         f"observed n={row['observed_n']}, predicted n={row['predicted_n']}, "
                         f"equal {row['equal_fraction']:.0%}")
        lines.append("outside Thm 5.1's hypothesis (attention depends on the input; true Jacobian "
                     "by central differences), L = 1, 2:")
        for scale in (1.0, 9.0):
            found = _varying_attention_summary(scale)
            lines.append(f"  logits x{scale:g}: the fixed-attention bound fails at "
                         f"{found['exceeded']} of {found['positions']} positions (largest ratio "
                         f"{found['ratio']:.3g}; difference error <= {found['error']:.1e})")
        return "\n".join(lines)

    def counterexample(self, family: str = "repeated", *, fmt: str = "bf16", policy: str = "hw",
                       n_max: int = 2048, layers: int = 1, d: int = 64, pe: str = "nope",
                       seed: int = 0) -> Counterexample:
        """Two inputs ``[x_<n, a]`` and ``[x_<n, a, a]`` (for "repeated": ``n - 8`` against
        ``n - 7`` trailing copies of ``a``, which a counting model must tell apart) whose final
        states are bitwise identical in ``fmt``, at the smallest such ``n``.

        Raises ``ValueError`` if no ``n <= n_max`` collapses.
        """
        run, reference = _branches(family, n_max, layers=layers, d=d, pe=pe, fmt=fmt,
                                   policy=policy, seed=seed, exact=True)
        exact = (reference.short, reference.long)
        n = _first_collapse(run.short, run.long, distinct_rows(*exact))
        if n is None:
            raise ValueError(f"no n <= {n_max} gives bitwise equal states in {fmt}/{policy}; "
                             f"raise n_max or pick a narrower format")
        tokens = np.concatenate([family_prefix(family, n, seed=seed), [TOKEN]])
        others = np.flatnonzero(tokens != TOKEN)
        copies = int(len(tokens) - others[-1] - 1) if others.size else len(tokens)
        return Counterexample(family, get_format(fmt).name, get_policy(policy).name, n, tokens,
                              np.concatenate([tokens, [TOKEN]]), to_numpy(run.short[n - 1]),
                              float(state_gaps(*exact)[n - 1]), copies)


THEOREM = RepresentationalCollapse()


@cache
def _certificate():
    import sympy as sp

    n, bound = sp.Symbol("n", positive=True), sp.Symbol("B", nonnegative=True)
    claim = sp.LessThan(1 / (1 + n * sp.exp(-2 * bound)), sp.exp(2 * bound) / (n + 1),
                        evaluate=False)
    return certify(claim, {n: (1, 2**24), bound: (0, 8)})


def _branches(family, n_max, *, layers, d, pe, fmt, policy, seed, exact=False):
    """The branches of a family in ``fmt``; with ``exact``, also their fp64 reference."""
    family = check_choice(family, FAMILIES, "family")
    n_max = check_int(n_max, "n_max", min=1, max=THEOREM.max_size)
    layers = check_int(layers, "layers", min=1)
    d = check_int(d, "d", min=2)
    fmt, policy = get_format(fmt), get_policy(policy)
    model = collapse_model(d=d, layers=layers, pe=check_choice(pe, PE_NAMES, "pe"), seed=seed)
    prefix = family_prefix(family, n_max, seed=seed)
    run = branch_forward(model, prefix, TOKEN, fmt=fmt, policy=policy)
    if not exact:
        return run
    same = (fmt.name, policy.name) == ("fp64", "hw")
    return run, run if same else branch_forward(model, prefix, TOKEN)


def _first_collapse(short, long, distinct) -> int | None:
    return first_true(equal_rows(short, long) & distinct)


def _per_layer(value, name: str, layers: int, *, positive: bool) -> np.ndarray:
    values = np.broadcast_to(np.asarray(value, dtype=np.float64), (layers,)) \
        if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
    if values.shape != (layers,):
        raise ValueError(f"{name} has {values.size} values; expected 1 or one per layer "
                         f"({layers})")
    bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
    if bad.any():
        relation = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={values.tolist()!r} must be finite and {relation}")
    return values


@cache
def _varying_attention_summary(logit_scale: float) -> dict:
    exceeded = positions = 0
    ratio = error = 0.0
    for layers in (1, 2):
        model, tokens = oversquashing_model(layers=layers, pe="nope", seed=0,
                                            logit_scale=logit_scale)
        terms = oversquashing_terms(model, tokens)
        bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                           terms["beta2"], terms["beta3"], terms["sigma_psi"])
        jacobian, err = finite_difference_jacobian(model, tokens)
        norms = np.linalg.norm(jacobian, 2, axis=(1, 2))
        exceeded += int(np.sum(norms > bound))
        positions += len(bound)
        ratio = max(ratio, float(np.max(norms / bound)))
        error = max(error, err)
    return {"exceeded": exceeded, "positions": positions, "ratio": ratio, "error": error}


def _cells(axes: dict[str, list]) -> list[Cell]:
    """Cells for validated axes: the families over every axis; Fig. 9 over sizes, formats,
    policies and seeds; over-squashing (an exact computation) once per seed, depth and encoding,
    in fp64, when fp64 is among the formats. Format and policy vary fastest, so the cells that
    share one fp64 reference (:func:`_reference`) run one after another."""
    cells = []
    for experiment in axes["experiment"]:
        if experiment in FAMILIES:
            keys = ("n", "seed", "layers", "pe", "d", "backend", "format", "policy")
            fixed = {}
        elif experiment == "perturbed-softmax":
            keys = ("n", "seed", "backend", "format", "policy")
            fixed = {"layers": None, "pe": None, "d": None}
        else:
            if "fp64" not in axes["format"]:
                continue
            keys = ("seed", "layers", "pe", "backend")
            fixed = {"n": OVERSQUASHING_LENGTH, "format": "fp64", "policy": axes["policy"][0],
                     "d": OVERSQUASHING_WIDTH}
        for values in product(*(axes[key] for key in keys)):
            params = {"experiment": experiment, **fixed, **dict(zip(keys, values, strict=True))}
            cells.append(Cell.of(**{key: params[key] for key in
                                    ("experiment", "n", "format", "policy", "seed", "layers",
                                     "pe", "d", "backend")}))
    return cells


def _base(params: dict, fmt, policy) -> dict:
    return {"theorem": NAME, "experiment": params["experiment"], "n_max": params["n"],
            "format": fmt.name, "policy": policy.name, "seed": params["seed"],
            "backend": params["backend"], "layers": params["layers"], "pe": params["pe"],
            "d": params["d"]}


def _row(base: dict, n: int, quantity: str, observed, bound, exact, *, holds: bool,
         exact_holds: bool, mechanism: str, margin=None, **extra) -> dict:
    if holds:
        verdict, mechanism = "holds", ""
    elif not exact_holds:
        verdict, mechanism = "violated", ""
    else:
        verdict = "precision-effect"
    return {**base, "n": n, "quantity": quantity, "observed": _plain(observed),
            "bound": _plain(bound), "exact": _plain(exact), "margin": _plain(margin),
            "verdict": verdict, "mechanism": mechanism, **extra}


def _family_rows(params: dict) -> list[dict]:
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    size, family = params["n"], params["experiment"]
    base = {**_base(params, fmt, policy), "family": family}
    model, prefix, reference = _reference(family, size, params["d"], params["layers"],
                                          params["pe"], params["seed"], params["backend"])
    identity = params["pe"] in ("nope", "alibi")
    if (fmt.name, policy.name) == ("fp64", "hw"):
        run = reference
    else:
        run = branch_forward(model, prefix, TOKEN, fmt=fmt, policy=policy, trace=identity)
    exact = {norm: state_gaps(reference.short, reference.long, norm) for norm in ("l1", "max")}
    observed = {norm: state_gaps(run.short, run.long, norm) for norm in ("l1", "max")}
    bound_l2 = gap_bound(model, reference.trace)
    bounds = {"l1": bound_l2 * math.sqrt(model.d), "max": bound_l2}
    equal = equal_rows(run.short, run.long)
    distinct = distinct_rows(reference.short, reference.long)
    accumulates = policy.accumulate == "format"
    rows = []
    for n in _sample_lengths(size):
        i = n - 1
        for norm in ("l1", "max"):
            value, bound, truth = observed[norm][i], bounds[norm][i], exact[norm][i]
            rows.append(_row(base, n, f"gap-{norm}<=bound", value, bound, truth,
                             holds=value <= bound, exact_holds=truth <= bound,
                             mechanism=_gap_mechanism(value, n, fmt, accumulates),
                             margin=_relative(bound, value)))
        if distinct[i]:
            value = observed["max"][i]
            spacing = float(fmt.ulp(np.abs(to_numpy(reference.short[i], np.float64)).max()))
            rows.append(_row(base, n, "distinct", value, 0.0, exact["max"][i], holds=value > 0,
                             exact_holds=True, mechanism="rounding to equality",
                             margin=value / spacing, gap_in_ulps=_plain(value / spacing)))
    if identity:
        rows += _identity_rows(base, run.trace[0], reference.trace[0], fmt, policy)
    if params["pe"] == "nope" and size >= RATE_MIN_SIZE:
        weight = np.asarray(to_numpy(reference.trace[0]["long_self"], np.float64)).mean(axis=0)
        rows.append(_rate_row(base, family, params["layers"], size, weight, observed["l1"],
                              exact["l1"], fmt, accumulates))
    rows.append(_collapse_row(base, size, equal, distinct,
                              predicted_collapse(reference.short, reference.long, fmt,
                                                 trace=reference.trace,
                                                 positional=params["pe"] != "nope")))
    return rows


@lru_cache(maxsize=1)
def _reference(family: str, size: int, d: int, layers: int, pe: str, seed: int, backend: str):
    """A family cell's model, prefix and fp64 branches with their trace. Cells differing only in
    format and policy share it, so a worker computes it once for all of them."""
    xp = get_backend(backend)
    model = collapse_model(d=d, layers=layers, pe=pe, seed=seed)
    prefix = xp.asarray(family_prefix(family, size, seed=seed))
    return model, prefix, branch_forward(model, prefix, TOKEN, fmt="fp64", policy="hw",
                                         trace=True)


def _gap_mechanism(value: float, n: int, fmt, accumulates: bool) -> str:
    if value == 0:
        return "rounding to equality"
    if accumulates and (n + 1) * fmt.unit_roundoff >= 0.5:
        return "accumulation stagnation"
    return "rounding noise"


def _identity_rows(base, record, reference, fmt, policy) -> list[dict]:
    compute = fmt.unit_roundoff if policy.round_each_op else _container_unit(fmt)
    accumulate = fmt.unit_roundoff if policy.accumulate == "format" else _container_unit(fmt)
    observed = identity_residual(record, unit=fmt.unit_roundoff, compute_unit=compute,
                                 accumulate_unit=accumulate)
    exact = identity_residual(reference, unit=2.0**-53, compute_unit=2.0**-53,
                              accumulate_unit=2.0**-53)
    rows = []
    for n in _sample_lengths(len(observed["residual"])):
        i = n - 1
        tolerance = observed["tolerance"][i]
        if not math.isfinite(tolerance):
            continue  # the a priori rounding analysis is vacuous from here on
        value = observed["residual"][i]
        rows.append(_row(base, n, "one-layer identity", value, tolerance, exact["residual"][i],
                         holds=value <= tolerance,
                         exact_holds=exact["residual"][i] <= exact["tolerance"][i],
                         mechanism="", margin=_relative(tolerance, value)))
    return rows


def _rate_row(base, family, layers, size, weight, observed, exact, fmt, accumulates) -> dict:
    derived = 2 if family == "repeated" and layers == 1 else 1
    lengths = np.arange(1, size + 1)
    value = fit_rate(lengths, observed, low=size // 8, high=size, scale=1 / weight)
    truth = fit_rate(lengths, exact, low=size // 8, high=size, scale=1 / weight)
    window = lengths >= size // 8
    if np.mean(observed[window] == 0) > 0.5 or not math.isfinite(value):
        mechanism = "rounding to equality"
    else:
        mechanism = _gap_mechanism(float(observed[-1]), size, fmt, accumulates)
    floor = derived - RATE_TOLERANCE
    return _row(base, size, "decay-rate", value, floor, truth,
                holds=math.isfinite(value) and value >= floor, exact_holds=truth >= floor,
                mechanism=mechanism, margin=value - floor if math.isfinite(value) else None,
                derived_rate=derived,
                rate_in_n=_plain(fit_rate(lengths, observed, low=size // 8, high=size)))


def _collapse_row(base, size, equal, differ, predicted) -> dict:
    observed_flags = equal & differ
    predicted_flags = predicted & differ
    observed_n = first_true(observed_flags)
    predicted_n = first_true(predicted_flags)
    unequal = np.flatnonzero(~equal & differ)
    stable_n = int(unequal[-1]) + 2 if unequal.size else 2
    return _row(base, size, "collapse-length", observed_n, predicted_n, None,
                holds=observed_n is None, exact_holds=True, mechanism="rounding to equality",
                observed_n=observed_n, predicted_n=predicted_n,
                stable_n=stable_n if stable_n <= size else None,
                equal_fraction=float(np.mean(observed_flags[1:])) if size > 1 else 0.0)


def _fig9_rows(params: dict) -> list[dict]:
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    base = _base(params, fmt, policy)
    lengths = _sample_lengths(params["n"])
    result = perturbed_softmax(lengths, k=FIG9_K, noise=FIG9_NOISE, seed=params["seed"],
                               fmt=fmt, policy=policy, xp=xp)
    compute = fmt.unit_roundoff if policy.round_each_op else _container_unit(fmt)
    rows = []
    for index, n in enumerate(lengths):
        value, bound, truth = (float(result[key][index]) for key in ("observed", "bound", "exact"))
        terms = n * (fmt.unit_roundoff if policy.accumulate == "format"
                     else _container_unit(fmt))
        gamma = terms / (1 - terms) if terms < 1 else math.inf
        noise = 2 * (fmt.unit_roundoff + 3 * compute + gamma) * (1 + fmt.unit_roundoff)
        if result["underflow"][index] > 0:
            mechanism = "underflow"
        elif policy.accumulate == "format" and (terms >= 0.5 or np.any(
                np.abs(result["sums"][:, index] - 1) > 4 * fmt.eps)):
            mechanism = "accumulation stagnation"
        elif abs(value - truth) <= noise:
            mechanism = "rounding noise"
        else:
            mechanism = ""
        rows.append(_row(base, int(n), "tv<=lemma-b2", value, bound, truth, holds=value <= bound,
                         exact_holds=truth <= bound, mechanism=mechanism,
                         margin=_relative(bound, value), k=FIG9_K, noise=FIG9_NOISE,
                         underflow=int(result["underflow"][index])))
    return rows


def _oversquashing_rows(params: dict) -> list[dict]:
    fmt, policy = get_format("fp64"), get_policy(params["policy"])
    base = {**_base(params, fmt, policy), "backend": "numpy"}  # small and exact: on the host
    model, tokens = oversquashing_model(layers=params["layers"], pe=params["pe"],
                                        seed=params["seed"])
    terms = oversquashing_terms(model, tokens)
    bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                       terms["beta2"], terms["beta3"], terms["sigma_psi"])
    norms = np.linalg.norm(terms["jacobian"], 2, axis=(1, 2))
    rows = []
    for i, (value, limit) in enumerate(zip(norms, bound, strict=True), start=1):
        ok = value <= limit * (1 + 1e-9)
        rows.append(_row(base, OVERSQUASHING_LENGTH, "jacobian<=bound", value, limit, value,
                         holds=ok, exact_holds=ok, mechanism="", margin=_relative(limit, value),
                         position=i, attention="fixed",
                         constant=_plain(np.prod(terms["sigma_psi"] / terms["beta2"] + 1)
                                         / terms["beta3"])))
    return rows


def _relative(bound: float, value: float) -> float:
    """The margin ``(bound - value) / bound``; the plain difference for a zero bound."""
    return (bound - value) / bound if bound > 0 else bound - value


def _sample_lengths(size: int) -> list[int]:
    return sorted({2**j for j in range(size.bit_length()) if 2**j <= size} | {size})


def _container_unit(fmt) -> float:
    return 2.0**-53 if fmt.container == np.float64 else 2.0**-24


def _plain(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def _figure(out_dir: Path, name: str, *, quick: bool):
    """Write the figure's ``.tex``, ``.csv`` and ``.pdf`` into ``out_dir``."""
    size, d = (512, 16) if quick else (2048, 64)
    panels = _gap_panels(size, d)
    panels.append(_depth_panel(32))
    panels.append(_jacobian_panel())
    panels.append(_fig9_panel(2**12 if quick else 2**16))
    return write_figure(out_dir, name, panels)


def _gap_panels(size: int, d: int) -> list[Panel]:
    model = collapse_model(d=d, layers=1, pe="nope", seed=0)
    lengths = np.unique(np.round(np.geomspace(1, size, 160)).astype(int))  # a readable .tex
    index = lengths - 1
    prefixes = {family: family_prefix(family, size) for family in FIGURE_FAMILIES}
    exact = {family: branch_forward(model, prefix, TOKEN) for family, prefix in prefixes.items()}
    panels = []
    for fmt_name in FORMAT_NAMES:
        fmt, series, marks = get_format(fmt_name), [], []
        for colour, family in enumerate(FIGURE_FAMILIES):
            run = branch_forward(model, prefixes[family], TOKEN, fmt=fmt, policy="hw")
            gaps = state_gaps(run.short, run.long, "max")
            series.append(Series(f"{family} ({fmt_name})", tuple(lengths), tuple(gaps[index]),
                                 "marks", colour))
            reference = state_gaps(exact[family].short, exact[family].long, "max")
            series.append(Series(f"{family} (exact)", tuple(lengths), tuple(reference[index]),
                                 "line", colour))
            collapse = _first_collapse(run.short, run.long,
                                       distinct_rows(exact[family].short, exact[family].long))
            if collapse is not None:
                marks.append((f"{family} collapses", float(collapse)))
        series.append(Series("unit roundoff", (1.0, float(size)),
                             (fmt.unit_roundoff, fmt.unit_roundoff), "dashed", 2))
        panels.append(Panel(f"{fmt_name} (hw)", "$n$", r"$\|v_n - v^*_{n+1}\|_\infty$",
                            tuple(series), marks=tuple(marks)))
    return panels


def _depth_panel(size: int) -> Panel:
    """Prop. B.8: uniform causal attention, beta1 = beta2 = sigma_psi = 1, beta3 = 4^L, so the
    bound is ``(((Lambda + I)/2)^L)_{n,i}``."""
    rows = np.arange(1, size + 1)
    uniform = np.tril(np.ones((size, size))) / rows[:, None]
    series = []
    for colour, depth in enumerate(FIGURE_DEPTHS):
        bound = oversquashing_bound_values([uniform] * depth, np.ones(depth), np.ones(depth),
                                           4.0**depth, np.ones(depth))
        series.append(Series(f"L = {depth}", tuple(rows), tuple(bound), "line", colour))
    return Panel("bound, Prop. B.8", "position $i$", r"bound on $\|\partial y_n/\partial v_i\|$",
                 tuple(series), xmode="normal")


def _jacobian_panel() -> Panel:
    series = []
    for colour, depth in enumerate((1, 2)):
        model, tokens = oversquashing_model(layers=depth, pe="nope", seed=0)
        terms = oversquashing_terms(model, tokens)
        bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                           terms["beta2"], terms["beta3"], terms["sigma_psi"])
        norms = np.linalg.norm(terms["jacobian"], 2, axis=(1, 2))
        positions = tuple(range(1, len(bound) + 1))
        series += [Series(f"Thm B.5, L = {depth}", positions, tuple(bound), "line", colour),
                   Series(f"Jacobian, L = {depth}", positions, tuple(norms), "marks", colour)]
    return Panel("Thm B.5, attention fixed", "position $i$",
                 r"$\|\partial y_n/\partial v_i^{(0)}\|_2$", tuple(series), xmode="normal")


def _fig9_panel(size: int) -> Panel:
    lengths = np.array(sorted({int(round(2 ** (j / 2))) for j in range(2, 2 * size.bit_length())
                               if 2 ** (j / 2) <= size}))
    runs = [perturbed_softmax(lengths, k=FIG9_K, noise=FIG9_NOISE, seed=seed,
                              fmt=get_format("fp64"), policy="hw") for seed in range(5)]
    mean = np.mean([run["observed"] for run in runs], axis=0)
    bound = np.mean([run["bound"] for run in runs], axis=0)
    return Panel("Fig. 9, Lemma B.2", "$n$", r"$\sum_i |y_i - y^*_i|$",
                 (Series("TV, mean of 5 seeds", tuple(lengths), tuple(mean), "marks", 0),
                  Series("Lemma B.2 bound", tuple(lengths), tuple(np.minimum(bound, 2.0)),
                         "dashed", 1)))
