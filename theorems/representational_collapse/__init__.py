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

The sweep's experiments: the four input families (every format, policy, depth and encoding: the
gaps against Thm B.3's chain, distinctness, Lemma B.1's weight, the one-layer bound and identity,
the decay exponent and constant, the collapse lengths); ``perturbed-softmax`` (Fig. 9 against
Lemma B.2, Prop. B.4's pair); ``extremal`` (fp64: instances on which Lemmas B.1, B.2, the
one-layer bound and Thm B.3's chain are attained, so a 1% tighter bound is false); and
``oversquashing`` (fp64: Thm B.5's Jacobian and per-layer terms on random models and on an
instance that attains them, Prop. B.8's constants). Every bound comes from the paper's quantities
(:data:`proofs.representational_collapse.PAPER`); every row is judged by
:func:`theorems.verdicts.judge` with its evidence measured on the row.

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
from itertools import product
from pathlib import Path

import numpy as np

from numerics import Cell, get_format, get_policy, to_numpy
from numerics._validate import (
    as_real_array,
    check_choice,
    check_elements,
    check_int,
    check_nonempty,
    check_real,
)
from numerics._validate import check_row_stochastic as _check_stochastic
from numerics.errors import InvalidArgument
from numerics.models.transformer import PE_NAMES
from numerics.representational_collapse import (
    FAMILIES,
    FIG9_K,
    FIG9_NOISE,
    TOKEN,
    collapse_model,
    collapse_statistics,
    distinct_rows,
    equal_rows,
    family_prefix,
    first_true,
    state_gaps,
)
from numerics.representational_collapse.branches import branch_forward
from numerics.representational_collapse.oversquashing import (
    OVERSQUASHING_LENGTH,
    OVERSQUASHING_WIDTH,
    finite_difference_jacobian,
    oversquashing_bound_values,
    oversquashing_model,
    oversquashing_terms,
)
from numerics.representational_collapse.softmax_pairs import fig9_logits, softmax_pair_tv
from proofs import certify
from proofs.representational_collapse import PAPER, b1_bound, derivation
from theorems._theorem import Statement, Theorem
from theorems._witness import Witness
from theorems.representational_collapse.figure import write as _figure
from theorems.representational_collapse.lemmas import (
    extremal_rows,
    oversquashing_rows,
    softmax_rows,
)
from theorems.representational_collapse.rows import family_group, family_profile, family_rows, paper

__all__ = ["THEOREM", "Counterexample", "alternating_tv", "collapse_length", "collapse_lengths",
           "collapse_table", "final_state_gaps", "oversquashing_bound", "perturbed_softmax_tv"]


def __dir__() -> list[str]:  # tab completion lists the public API, not the helpers
    return sorted(__all__)


NAME = "representational-collapse"
NORMS: tuple[str, ...] = ("l1", "l2", "max")
#: ``perturbed-softmax`` holds Fig. 9 (Lemma B.2) and Prop. B.4's alternating pair; ``extremal``
#: the instances on which Lemmas B.1, B.2, the one-layer bound and Thm B.3's chain are attained.
EXPERIMENTS: tuple[str, ...] = (*FAMILIES, "perturbed-softmax", "extremal", "oversquashing")
#: The figure's families and the depths of its Prop. B.8 panel.
FIGURE_FAMILIES = ("repeated", "sampled")
FIGURE_DEPTHS = (1, 2, 4, 8, 16)
#: The audit grid: every experiment in fp64 at the quick size N = 256, where every extremal
#: instance is within 1% of its bound (the closest, Thm B.3's chain, at 0.65%).
AUDIT_SIZE = 256
#: The widest model and the deepest stack a caller's grid may ask for (``d=``, ``layers=``).
MAX_WIDTH, MAX_LAYERS = 4096, 64


def alternating_tv(n):
    """Proposition B.4's pair: ``sum_i |softmax(x)_i - softmax(x*)_i|`` for ``x = (1, 0, 1, 0,
    ...)`` and ``x* = (0, 1, 0, 1, ...)`` of length ``n`` (int or array), from the counts.

    ``x`` has ``ceil(n/2)`` ones and ``x*`` has ``floor(n/2)``, so ``Z = ceil(n/2) e +
    floor(n/2)`` and ``Z* = floor(n/2) e + ceil(n/2)``; the coordinates where ``x`` is 1 differ
    by ``|e/Z - 1/Z*|`` and the others by ``|1/Z - e/Z*|``. For even ``n`` this is the paper's
    ``2(e - 1)/(e + 1)`` for every ``n``.
    """
    given = to_numpy(as_real_array(n, "n"))
    size = given.astype(np.float64)
    if (np.any(~np.isfinite(size)) or np.any(size < 1) or np.any(size != np.floor(size))
            or np.any(size > FIG9_MAX_SIZE)):
        raise InvalidArgument(f"n={given.tolist()!r} must be a positive integer <= "
                              f"{FIG9_MAX_SIZE}"[:120])
    ones, others = np.ceil(size / 2.0), np.floor(size / 2.0)
    e = math.e
    z, z_star = ones * e + others, others * e + ones
    value = ones * np.abs(e / z - 1 / z_star) + others * np.abs(1 / z - e / z_star)
    return float(value) if value.ndim == 0 else value


#: The longest logit vector :func:`perturbed_softmax_tv` accepts (a few float64 copies of it).
FIG9_MAX_SIZE = 2**26
#: The most seeds :func:`perturbed_softmax_tv` averages over.
MAX_SEEDS = 10_000
#: The widest and deepest collapse model the REPL functions build (a d x d weight per layer).
MAX_D, MAX_LAYERS = 4096, 256


def perturbed_softmax_tv(n: int, k: int = FIG9_K, noise: float = FIG9_NOISE, seeds: int = 5, *,
                         fmt: str = "fp64", policy: str = "hw") -> float:
    """The mean over ``seeds`` of Fig. 9's total variation ``sum |y - y*|`` (Lemma B.2).

    ``x ~ U[0, 1]^n``, ``x*`` equals ``x`` plus ``U[0, noise]`` on its first ``k`` entries,
    ``y = softmax(x)``, ``y* = softmax(x*)``; seeds ``0 .. seeds - 1``.
    """
    n = check_int(n, "n", min=1, max=FIG9_MAX_SIZE)
    k = check_int(k, "k", min=0, max=FIG9_MAX_SIZE)
    noise = check_real(noise, "noise", min=0.0)
    seeds = check_int(seeds, "seeds", min=1, max=MAX_SEEDS)
    fmt, policy = get_format(fmt), get_policy(policy)
    values = [softmax_pair_tv(fig9_logits(n, k=k, noise=noise, seed=seed), [n], fmt,
                              policy)["observed"][0] for seed in range(seeds)]
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


def collapse_lengths(family: str, *, fmt: str, policy: str = "hw", n_max: int = 4096,
                     layers: int = 1, d: int = 64, pe: str = "nope", seed: int = 0) -> dict:
    """What the lengths ``n = 2..n_max`` show in ``fmt``, over those whose exact states differ:
    ``lengths``; ``equal`` (how many have bitwise equal final states) and ``share``; ``first``,
    the first such ``n``; ``stable``, the first ``n`` from which every longer one is equal (None
    if ``n_max`` is not)."""
    run, reference = _branches(family, n_max, layers=layers, d=d, pe=pe, fmt=fmt,
                               policy=policy, seed=seed, exact=True)
    equal = equal_rows(run.short, run.long)
    distinct = distinct_rows(reference.short, reference.long)
    return collapse_statistics(equal, distinct)


def collapse_length(family: str, *, fmt: str, policy: str = "hw", n_max: int = 4096,
                    layers: int = 1, d: int = 64, pe: str = "nope", seed: int = 0) -> int | None:
    """The stable collapse length: the first ``n`` from which the final states of ``v`` and
    ``v*`` are bitwise equal in ``fmt`` at every longer length up to ``n_max`` (while they differ
    in exact arithmetic), or None when the states at ``n_max`` differ. A single equal length
    before it is a coincidence of rounding (:func:`collapse_lengths` reports those)."""
    return collapse_lengths(family, fmt=fmt, policy=policy, n_max=n_max, layers=layers, d=d,
                            pe=pe, seed=seed)["stable"]


def oversquashing_bound(attention, *, beta1=1.0, beta2=1.0, beta3: float = 1.0,
                        sigma_psi=1.0) -> np.ndarray:
    """Theorem 5.1/B.5 with the constants its proof derives, for every position ``i``.

    ``attention``: the ``L`` causal (lower-triangular, row-stochastic) ``n x n`` attention matrices
    ``Lambda^(0), ..., Lambda^(L-1)``. ``beta1``, ``beta2`` and ``sigma_psi`` may be one number or
    one per layer. Returns ``C (Abar^(L-1) ... Abar^(0))_{n,i}`` for ``i = 1..n``, with
    ``Abar^(l) = Lambda^(l) / beta1^(l) + I`` and ``C = (1/beta3) prod_l (sigma_psi^(l) /
    beta2^(l) + 1)`` (the paper's quantities, :data:`proofs.representational_collapse.PAPER`):
    a bound on ``||dy_n / dv_i^(0)||``.
    """
    matrices = [to_numpy(as_real_array(matrix, f"attention[{index}]"), np.float64)
                for index, matrix in enumerate(check_nonempty(attention, "attention"))]
    size = matrices[0].shape
    for index, matrix in enumerate(matrices):
        name = f"attention[{index}]"
        if matrix.shape != size or len(size) != 2 or size[0] != size[1] or size[0] < 1:
            raise InvalidArgument(f"{name} has shape {matrix.shape}; expected a non-empty "
                                  f"square matrix like attention[0] {size}")
        _check_stochastic(matrix, name, atol=1e-9)
        if np.any(np.triu(matrix, 1) != 0):
            raise InvalidArgument(f"{name} is not causal: it has weight above the diagonal")
    layers = len(matrices)
    b1 = _per_layer(beta1, "beta1", layers, positive=True)
    b2 = _per_layer(beta2, "beta2", layers, positive=True)
    sigma = _per_layer(sigma_psi, "sigma_psi", layers, positive=False)
    b3 = check_real(beta3, "beta3", min=0.0, strict_min=True)
    bounds = paper()
    return oversquashing_bound_values(matrices, b1, b2, b3, sigma, abar=bounds.abar,
                                      constant=bounds.constant)


def _evaluate(params: dict, artifact: dict | None = None) -> list[dict]:
    """Evaluate one cell of the sweep and return its rows, each judged by
    :func:`theorems.verdicts.judge` with the evidence measured on it: per family cell the gaps
    against Thm B.3's chain, the states' distinctness, Lemma B.1's weight, the one-layer bound and
    identity (NoPE, ALiBi), the decay exponent and constant (fp64, NoPE) and the cell's collapse
    lengths; Fig. 9 against Lemma B.2 and Prop. B.4's pair; the extremal instances; Thm B.5's
    Jacobian and its per-layer terms, and Prop. B.8's constants."""
    experiment = params["experiment"]
    if experiment in FAMILIES:
        return family_rows(params, artifact)
    if experiment == "perturbed-softmax":
        return softmax_rows(params)
    if experiment == "extremal":
        return extremal_rows(params)
    return oversquashing_rows(params)


def collapse_table(report) -> list[dict]:
    """The collapse-length rows of a report, one per cell: its settings and statistics."""
    keys = ("format", "policy", "family", "d", "layers", "pe", "seed", "n_max", "lengths",
            "equal_count", "equal_share", "first_equal_n", "stable_n", "n", "verdict",
            "predicted_equal", "equal_precision", "equal_recall", "predicted_distinct",
            "distinct_precision", "distinct_recall", "undetermined", "prediction_errors",
            "error_bound_ulps", "roundoff_equal", "roundoff_precision", "roundoff_recall")
    return [{key: row.get(key) for key in keys} for row in report.rows
            if row["quantity"] == "collapse-length"]


@dataclass(frozen=True, repr=False)
class Counterexample(Witness):
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
    layers: int | None = None
    d: int | None = None
    pe: str | None = None
    seed: int | None = None

    def headline(self) -> str:
        model = (f" (d={self.d}, L={self.layers}, pe={self.pe}, seed {self.seed})"
                 if self.d is not None else "")
        return (f"{self.family}, {self.format}/{self.policy}{model}: n={self.n} gives bitwise "
                f"identical final states for {len(self.short_tokens)} and "
                f"{len(self.long_tokens)} tokens "
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
    quantities = PAPER
    audit_exempt = {
        "one-layer identity 1% tighter":
            "the bound is an a priori rounding tolerance, not the paper's: the identity's exact "
            "residual is 0, so a 1% smaller tolerance is still a true statement",
        "decay-rate 1% tighter":
            "the bound is the paper's order minus a finite-window allowance of 0.25 (the "
            "fitted exponent approaches the order from below as O(1/n)); 1% more is still below "
            "the order, a true statement; the sharp check is decay-constant",
    }

    def derive(self):
        """Return the checked derivation (:func:`proofs.representational_collapse.derivation`)."""
        return derivation()

    def certify(self):
        """Certify Lemma B.1's rate in its worst case, ``1/(1 + n e^{-2B}) <= e^{2B}/(n + 1)``
        (the new token at ``+B``, every other logit at ``-B``), over ``n in [1, 2^24]``, ``B in
        [0, 8]``."""
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
        """Cells per experiment: the input families over every axis, the softmax pairs over
        sizes, formats, policies and seeds, the extremal instances (exact, fp64) over sizes, and
        the over-squashing check (exact, fp64) over seeds, depths and encodings."""
        return _cells(axes)

    def check_axes(self, axes: dict[str, list]) -> None:
        """RoPE rotates pairs of coordinates and the sinusoidal encoding fills them in pairs:
        both need an even width; widths and depths stay at what a sweep can hold."""
        for d in axes["d"]:
            if d > MAX_WIDTH:
                raise InvalidArgument(f"d={d} is above {MAX_WIDTH}; the sweep builds an N x d "
                                      f"state per layer and format")
            for pe in axes["pe"]:
                if pe in ("rope", "sinusoidal") and d % 2:
                    raise InvalidArgument(f"pe={pe!r} needs an even d but got d={d}")
        for layers in axes["layers"]:
            if layers > MAX_LAYERS:
                raise InvalidArgument(f"layers={layers} is above {MAX_LAYERS}")

    def audit_grid(self) -> dict:
        """Every experiment in fp64 at ``N = 256``, in-process: the quick axes otherwise. Every
        paper quantity enters some row there, and each bound has a row within 1% of it."""
        return {"quick": True, "workers": 1, "sizes": [AUDIT_SIZE], "formats": ["fp64"],
                "policies": ["hw"]}

    group = staticmethod(family_group)
    prepare = staticmethod(family_profile)

    @staticmethod
    def evaluate(params: dict, artifact: dict | None = None) -> list[dict]:
        """Evaluate one cell of the sweep and return its rows; a family cell takes its group's
        exact error profile (:meth:`prepare`) as ``artifact``."""
        return _evaluate(params, artifact)

    def figure(self, out_dir, *, quick: bool = True, width: str = "columnwidth",
               report=None):
        """Gap against ``n`` per format (hw) with the unit roundoff marked; the over-squashing
        bound against position ``i`` for several depths (Prop. B.8's setting); ``width``:
        ``columnwidth``, ``textwidth``, ``linewidth`` or a TeX length. ``report`` is not read:
        the figure's sequences are its own, not the sweep's."""
        return _figure(Path(out_dir), self.name, quick=quick, width=width)

    def findings(self, report) -> str:
        """Per cell, the collapse lengths (share of lengths with bitwise equal states, first and
        stable length, the model settings); and the over-squashing bound where its hypothesis
        (attention independent of the input) does not hold."""
        table = collapse_table(report)
        collapsed = [row for row in table if row["equal_count"]]
        equal = sum(row["equal_count"] for row in table)
        decided = sum(row["predicted_equal"] + row["predicted_distinct"] for row in table)
        wrong = sum(row["prediction_errors"] for row in table)
        said = sum(row["roundoff_equal"] for row in table)
        right = sum(round((row["roundoff_precision"] or 0) * row["roundoff_equal"])
                    for row in table)
        lines = [f"collapse lengths: {len(collapsed)} of {len(table)} cells have lengths with "
                 f"bitwise equal final states (exact states differ at every n >= 2), "
                 f"{sum(row['stable_n'] is not None for row in table)} a stable length (equal "
                 f"from there to N); {len(table) - len(collapsed)} cells with none are not "
                 f"listed. In all, {equal} lengths are equal; each branch's a priori forward "
                 f"error bound decides {decided} lengths ({wrong} wrongly) and never 'equal' "
                 f"(a bound of half an ulp or more cannot); the unit-roundoff model, which "
                 f"ignores the computation's error, says 'equal' at {said} lengths, "
                 f"{right} rightly. Per cell:"]
        for row in collapsed:
            if row["stable_n"] is None:
                stable = "none"
            else:
                run = row["n_max"] - row["stable_n"] + 1
                stable = f"n={row['stable_n']} ({run} length{'s' if run != 1 else ''} to N)"
            if row["error_bound_ulps"] is None:
                predicted = "error bound vacuous, no length decided"
            else:
                predicted = (f"error bound {row['error_bound_ulps']:.3g} ulps: equal "
                             f"{row['predicted_equal']}{_share(row['equal_precision'])}, "
                             f"distinct {row['predicted_distinct']}"
                             f"{_share(row['distinct_precision'])}, undetermined "
                             f"{row['undetermined']}")
            lines.append(f"  {row['format']:<9} {row['policy']:<7} {row['family']:<12} "
                         f"d={row['d']} L={row['layers']} pe={row['pe']:<10} seed {row['seed']} "
                         f"N={row['n_max']}: equal at {row['equal_count']} of {row['lengths']} "
                         f"lengths ({row['equal_share']:.1%}), first n={row['first_equal_n']}, "
                         f"stable {stable}; {predicted}; roundoff model: equal "
                         f"{row['roundoff_equal']}{_share(row['roundoff_precision'])}, recall "
                         f"{_percent(row['roundoff_recall'])}")
        lines.append("outside Thm 5.1's hypothesis (attention depends on the input; true Jacobian "
                     "by central differences):")
        for scale in (1.0, 9.0):
            found = _varying_attention_summary(scale)
            lines.append(f"  d={OVERSQUASHING_WIDTH} L=1,2 pe=nope seed 0 n={OVERSQUASHING_LENGTH} "
                         f"logits x{scale:g}: the fixed-attention bound fails at "
                         f"{found['exceeded']} of {found['positions']} positions (largest ratio "
                         f"{found['ratio']:.3g}; difference error <= {found['error']:.1e})")
        return "\n".join(lines)

    def counterexample(self, family: str = "repeated", *, fmt: str = "bf16", policy: str = "hw",
                       n_max: int = 2048, layers: int = 1, d: int = 64, pe: str = "nope",
                       seed: int = 0) -> Counterexample:
        """Two inputs ``[x_<n, a]`` and ``[x_<n, a, a]`` (for "repeated": ``n - 8`` against
        ``n - 7`` trailing copies of ``a``, which a counting model must tell apart) whose final
        states are bitwise identical in ``fmt``, at the smallest such ``n``.

        Raises :class:`numerics.errors.InvalidArgument` if no ``n <= n_max`` collapses.
        """
        run, reference = _branches(family, n_max, layers=layers, d=d, pe=pe, fmt=fmt,
                                   policy=policy, seed=seed, exact=True)
        exact = (reference.short, reference.long)
        n = first_true(equal_rows(run.short, run.long) & distinct_rows(*exact))
        if n is None:
            raise InvalidArgument(f"no n <= {n_max} gives bitwise equal states in {fmt}/{policy}; "
                             f"raise n_max or pick a narrower format")
        tokens = np.concatenate([family_prefix(family, n, seed=seed), [TOKEN]])
        others = np.flatnonzero(tokens != TOKEN)
        copies = int(len(tokens) - others[-1] - 1) if others.size else len(tokens)
        return Counterexample(family, get_format(fmt).name, get_policy(policy).name, n, tokens,
                              np.concatenate([tokens, [TOKEN]]), to_numpy(run.short[n - 1]),
                              float(state_gaps(*exact)[n - 1]), copies, layers=layers, d=d, pe=pe,
                              seed=seed)


THEOREM = RepresentationalCollapse()


@PAPER.cache
def _certificate():
    import sympy as sp

    n, bound = sp.Symbol("n", positive=True), sp.Symbol("B", nonnegative=True)
    claim = sp.LessThan(1 / (1 + n * sp.exp(-2 * bound)), b1_bound(n, bound), evaluate=False)
    return certify(claim, {n: (1, 2**24), bound: (0, 8)})


def _branches(family, n_max, *, layers, d, pe, fmt, policy, seed, exact=False):
    """The branches of a family in ``fmt``; with ``exact``, also their fp64 reference."""
    family = check_choice(family, FAMILIES, "family")
    n_max = check_int(n_max, "n_max", min=1, max=THEOREM.max_size)
    layers = check_int(layers, "layers", min=1, max=MAX_LAYERS)
    d = check_int(d, "d", min=2, max=MAX_D)
    check_elements(2 * (n_max + 8) * d * (layers + 1), f"the states of n_max={n_max} d={d} "
                   f"layers={layers}")
    fmt, policy = get_format(fmt), get_policy(policy)
    model = collapse_model(d=d, layers=layers, pe=check_choice(pe, PE_NAMES, "pe"), seed=seed)
    prefix = family_prefix(family, n_max, seed=seed)
    run = branch_forward(model, prefix, TOKEN, fmt=fmt, policy=policy)
    for branch in ("short", "long"):
        finite = np.isfinite(to_numpy(getattr(run, branch), np.float64)).all(axis=-1)
        if not finite.all():
            raise InvalidArgument(
                f"the {branch} branch's final state overflows {fmt.name} (max {fmt.max:g}) at "
                f"n={int(np.argmin(finite)) + 1} under {policy.name}: its gaps are not numbers; "
                f"use a wider format or a smaller model")
    if not exact:
        return run
    same = (fmt.name, policy.name) == ("fp64", "hw")
    return run, run if same else branch_forward(model, prefix, TOKEN)


def _share(precision) -> str:
    return "" if precision is None else f" ({precision:.0%} right)"


def _percent(value) -> str:
    return "-" if value is None else f"{value:.0%}"


def _per_layer(value, name: str, layers: int, *, positive: bool) -> np.ndarray:
    values = to_numpy(as_real_array(value, name), np.float64)
    values = np.broadcast_to(values, (layers,)) if values.ndim == 0 else values
    if values.shape != (layers,):
        raise InvalidArgument(f"{name} has {values.size} values; expected 1 or one per layer "
                              f"({layers})")
    bad = ~np.isfinite(values) | ((values <= 0) if positive else (values < 0))
    if bad.any():
        relation = "> 0" if positive else ">= 0"
        raise InvalidArgument(f"{name}={values.tolist()!r} must be finite and {relation}")
    return values


@PAPER.cache
def _varying_attention_summary(logit_scale: float) -> dict:
    exceeded = positions = 0
    ratio = error = 0.0
    bounds = paper()
    for layers in (1, 2):
        model, tokens = oversquashing_model(layers=layers, pe="nope", seed=0,
                                            logit_scale=logit_scale)
        terms = oversquashing_terms(model, tokens)
        bound = oversquashing_bound_values([a[0] for a in terms["attention"]], terms["beta1"],
                                           terms["beta2"], terms["beta3"], terms["sigma_psi"],
                                           abar=bounds.abar, constant=bounds.constant)
        jacobian, err = finite_difference_jacobian(model, tokens)
        norms = np.linalg.norm(jacobian, 2, axis=(1, 2))
        exceeded += int(np.sum(norms > bound))
        positions += len(bound)
        ratio = max(ratio, float(np.max(norms / bound)))
        error = max(error, err)
    return {"exceeded": exceeded, "positions": positions, "ratio": ratio, "error": error}


def _cells(axes: dict[str, list]) -> list[Cell]:
    """Cells for validated axes: the families over every axis; the softmax pairs over sizes,
    formats, policies and seeds; the extremal instances and over-squashing (exact computations)
    in fp64, when fp64 is among the formats (extremal: once per size; over-squashing: once per
    seed, depth and encoding). Format and policy vary fastest, so the cells that share one fp64
    reference run one after another."""
    cells = []
    for experiment in axes["experiment"]:
        if experiment in FAMILIES:
            keys = ("n", "seed", "layers", "pe", "d", "backend", "format", "policy")
            fixed = {}
        elif experiment == "perturbed-softmax":
            keys = ("n", "seed", "backend", "format", "policy")
            fixed = {"layers": None, "pe": None, "d": None}
        elif "fp64" not in axes["format"]:
            continue
        elif experiment == "extremal":
            keys = ("n", "backend")
            fixed = {"format": "fp64", "policy": axes["policy"][0], "seed": axes["seed"][0],
                     "layers": 1, "pe": "nope", "d": 1}
        else:
            keys = ("seed", "layers", "pe", "backend")
            fixed = {"n": OVERSQUASHING_LENGTH, "format": "fp64", "policy": axes["policy"][0],
                     "d": OVERSQUASHING_WIDTH}
        for values in product(*(axes[key] for key in keys)):
            params = {"experiment": experiment, **fixed, **dict(zip(keys, values, strict=True))}
            cells.append(Cell.of(**{key: params[key] for key in
                                    ("experiment", "n", "format", "policy", "seed", "layers",
                                     "pe", "d", "backend")}))
    return cells
