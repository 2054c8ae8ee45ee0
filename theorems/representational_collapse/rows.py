"""The rows of the representational-collapse sweep: the paper's bounds (:func:`paper`), the one
row builder (:func:`row`, every row judged by :func:`theorems.verdicts.judge` with the evidence
measured on that row), and the rows of the input families (:func:`family_rows`); the other
experiments' rows are in :mod:`theorems.representational_collapse.lemmas`.

Every bound constant is the paper's, read through :data:`proofs.representational_collapse.PAPER`
(its functions lambdified once per mutation in force, :func:`paper`), so a changed paper
quantity changes the rows. Rows of a format other than fp64 carry the a priori rounding
``tolerance_ulps`` of :mod:`numerics.error_bounds` where the compared value is computed by one
kernel (softmax outputs, an attention output); a precision effect beyond it is explained only by
an in-format sum measured to be off by more than one ulp or to stall on that row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import sympy as sp

from numerics import get_backend, get_format, get_policy, to_numpy
from numerics.error_bounds import softmax_error
from numerics.evidence import bitwise_equal
from numerics.representational_collapse import (
    FAMILIES,
    TOKEN,
    collapse_model,
    collapse_statistics,
    decay_constant,
    distinct_rows,
    equal_rows,
    family_prefix,
    fit_rate,
    gap_bound,
    identity_residual,
    lemma_b1_terms,
    one_layer_terms,
    predict_collapse,
    prediction_statistics,
    state_gaps,
    unit_roundoff_model,
)
from numerics.representational_collapse.branch_error import branch_errors, error_profile
from numerics.representational_collapse.branches import branch_forward
from numerics.representational_collapse.kernel_evidence import (
    attention_evidence,
    combine_evidence,
    softmax_terms,
    sum_evidence,
    valid_logits,
)
from numerics.sweep.store import pack_tree, unpack_tree
from proofs.representational_collapse import (
    PAPER,
    abar,
    alternating_tv_closed,
    b1_bound,
    b1_rate,
    b2_bound,
    one_layer_bound,
    oversquashing_constant,
)
from theorems.verdicts import judge

__all__ = ["JACOBIAN_ULPS", "NAME", "Paper", "RATE_MIN_SIZE", "RATE_TOLERANCE", "base_columns",
    "family_group", "family_profile", "family_rows", "gap_rows", "lemma_b1_rows",
    "one_layer_rows", "paper", "plain", "row", "sample_lengths", "ulps"]


NAME = "representational-collapse"
#: Decay exponents are fitted over n in [N/8, N] and must reach the paper's order minus this
#: finite-window allowance (the local exponent approaches the order at rate O(1/n)).
RATE_TOLERANCE = 0.25
RATE_MIN_SIZE = 64
#: The fp64 Jacobians and bounds of Theorem B.5 are products of at most 2L + 2 matrices of
#: width <= 16: a few dozen ulps apart at most when equal in exact arithmetic.
JACOBIAN_ULPS = 64.0


@dataclass(frozen=True)
class Paper:
    """The paper's bounds as NumPy functions, built from :data:`PAPER` (see :func:`paper`)."""

    rate: object  # (n, delta) -> e^delta / (n + 1), Lemma B.1
    b1: object  # (n, B) -> e^{2B} / (n + 1), Lemma B.1 for |x_i| <= B
    b2: object  # (n, B, sum|Delta|) -> (2 e^{2B} / n) sum|Delta|, Lemma B.2
    one_layer: object  # (n, B, V) -> 2 V e^{2B} / (n + 1), Thm B.3 one layer
    abar: object  # (alpha, beta1, delta) -> alpha/beta1 + delta, Thm B.5
    constant: object  # (L, sigma, beta2, beta3) -> (sigma/beta2 + 1)^L / beta3, Thm B.5
    alternating: float  # 2 (e - 1)/(e + 1), Prop. B.4
    tv_factor: float  # Lemma B.2's 2
    value_factor: float  # ||u_a - m|| <= 2 V
    order: float  # repeated tokens: Theta(1/n^2)
    order_varied: float  # varied tokens: Theta(1/n)


@PAPER.cache
def paper() -> Paper:
    """The paper's bounds with the quantities (and any mutation) now in force."""
    n, spread, bound, total, values, weight, b1s, kron, layers, sig, b2s, b3s = sp.symbols(
        "n delta B Sigma V alpha beta1 delta_ji L sigma beta2 beta3", positive=True)

    def numeric(arguments, expression):
        return sp.lambdify(arguments, expression, "numpy")

    return Paper(
        rate=numeric((n, spread), b1_rate(n, spread)),
        b1=numeric((n, bound), b1_bound(n, bound)),
        b2=numeric((n, bound, total), b2_bound(n, bound, total)),
        one_layer=numeric((n, bound, values), one_layer_bound(n, bound, values)),
        abar=numeric((weight, b1s, kron), abar(weight, b1s, kron)),
        constant=numeric((layers, sig, b2s, b3s), oversquashing_constant(layers, sig, b2s, b3s)),
        alternating=float(alternating_tv_closed()),
        tv_factor=PAPER.value("b2.constant"),
        value_factor=PAPER.value("b3.value_factor"),
        order=PAPER.value("gap.order"),
        order_varied=PAPER.value("gap.order_varied"),
    )


def row(base: dict, n: int, *, quantity: str, observed, exact, bound, relation: str,
        tolerance_ulps: float = 0.0, evidence=None, **extra) -> dict:
    """One judged row. ``evidence`` is a dict, or a function measuring it on the row's data,
    called only for a precision effect (so rows that hold carry no evidence columns)."""
    verdict = judge(quantity=quantity, observed=plain(observed), exact=plain(exact),
                    bound=plain(bound), relation=relation, format=base["format"],
                    tolerance_ulps=float(tolerance_ulps),
                    evidence=evidence if isinstance(evidence, dict) else None)
    if verdict["verdict"] == "precision-effect" and callable(evidence):
        verdict = judge(quantity=quantity, observed=plain(observed), exact=plain(exact),
                        bound=plain(bound), relation=relation, format=base["format"],
                        tolerance_ulps=float(tolerance_ulps), evidence=evidence())
    return {**base, "n": int(n), **verdict, **extra}


def sample_lengths(size: int) -> list[int]:
    """The lengths a cell reports: powers of two up to ``size``, and ``size``."""
    return sorted({2**j for j in range(size.bit_length()) if 2**j <= size} | {size})


# --- the input families ---------------------------------------------------------------------

def family_group(params: dict) -> dict | None:
    """The setup a family cell shares with the other formats and policies of its model and
    prefix (``None`` for the other experiments)."""
    if params["experiment"] not in FAMILIES:
        return None
    return {key: params[key] for key in ("experiment", "n", "d", "layers", "pe", "seed")}


def family_profile(group: dict) -> dict:
    """A family group's artifact: the exact magnitudes of its pass (:func:`branch_error.
    error_profile <numerics.representational_collapse.branch_error.error_profile>`, a few MB and
    the costliest shared part), packed for the artifact store. The fp64 reference states and
    trace are recomputed per worker instead (:func:`_reference`): about ten times larger, and
    cheaper to recompute than to store and move."""
    model = collapse_model(d=group["d"], layers=group["layers"], pe=group["pe"],
                           seed=group["seed"])
    prefix = family_prefix(group["experiment"], group["n"], seed=group["seed"])
    return pack_tree(error_profile(model, prefix, TOKEN))


def family_rows(params: dict, artifact: dict | None = None) -> list[dict]:
    """A family cell's rows; ``artifact`` is its group's :func:`family_profile` (computed here
    when absent)."""
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    size, family, pe = params["n"], params["experiment"], params["pe"]
    base = {**base_columns(params, fmt, policy), "family": family, "instance": "random"}
    model, prefix, reference = _reference(family, size, params["d"], params["layers"], pe,
                                          params["seed"], params["backend"])
    exact_run = (fmt.name, policy.name) == ("fp64", "hw")
    run = reference if exact_run else branch_forward(model, prefix, TOKEN, fmt=fmt,
                                                     policy=policy, trace=True)
    bounds = paper()
    rows = gap_rows(base, model, reference, run, fmt, policy, bounds)
    rows += lemma_b1_rows(base, run, reference, fmt, policy, bounds)
    if pe in ("nope", "alibi"):
        rows += one_layer_rows(base, model, run, reference, fmt, policy, bounds)
    if pe == "nope" and exact_run and size >= RATE_MIN_SIZE:
        rows += _decay_rows(base, model, reference, family, params["layers"], size, bounds)
    profile = unpack_tree(artifact if artifact is not None
                          else family_profile(family_group(params)))
    rows.append(_collapse_row(base, run, reference, fmt, policy, profile, pe))
    return rows


def gap_rows(base, model, reference, run, fmt, policy, bounds) -> list[dict]:
    chain = gap_bound(model, reference.trace, rate=bounds.rate, tv_factor=bounds.tv_factor,
                      value_factor=bounds.value_factor)
    limits = {"l1": chain * math.sqrt(model.d), "max": chain}
    exact = {norm: state_gaps(reference.short, reference.long, norm) for norm in ("l1", "max")}
    observed = {norm: state_gaps(run.short, run.long, norm) for norm in ("l1", "max")}
    distinct = distinct_rows(reference.short, reference.long)
    # the states' own rounding: each computed coordinate is within half an ulp of its unrounded
    # value, so the computed gap may exceed that of the unrounded states by one ulp a coordinate
    spacing = (to_numpy(fmt.ulp(to_numpy(run.short, np.float64)))
               + to_numpy(fmt.ulp(to_numpy(run.long, np.float64)))) / 2
    rounding = {"l1": spacing.sum(axis=-1), "max": spacing.max(axis=-1)}
    rows = []
    for n in sample_lengths(len(chain)):
        i = n - 1

        def measured(i=i):
            return _trace_evidence(run, i, fmt, policy)

        for norm in ("l1", "max"):
            rows.append(row(base, n, quantity=f"gap-{norm}<=bound", observed=observed[norm][i],
                            exact=exact[norm][i], bound=limits[norm][i], relation="<=",
                            tolerance_ulps=ulps(rounding[norm][i], limits[norm][i], fmt),
                            evidence=measured))
        if distinct[i]:
            short, long = to_numpy(run.short[i]), to_numpy(run.long[i])
            rows.append(row(base, n, quantity="distinct", observed=observed["max"][i],
                            exact=exact["max"][i], bound=0.0, relation=">",
                            evidence={"bitwise_equal": bitwise_equal(short, long)}))
    return rows


def lemma_b1_rows(base, run, reference, fmt, policy, bounds) -> list[dict]:
    """Lemma B.1 on the long branch's layer-0 attention: ``alpha*_{n+1,n+1} <= e^delta/(n + 1)``
    and ``<= e^{2B}/(n + 1)``, for the stored logits; ``exact`` is the weight of the exact
    softmax of the same stored logits."""
    record = run.trace[0]
    terms = lemma_b1_terms(record)
    logits = valid_logits(record, "long")
    top = np.nanmax(logits, axis=-1, keepdims=True)
    weights = np.nan_to_num(np.exp(logits - top))
    exact_weight = weights[..., -1] / weights.sum(axis=-1)
    lengths = np.arange(1, terms["weight"].shape[1] + 1, dtype=np.float64)
    rates = {"rate": bounds.rate(lengths, terms["spread"]), "bound": bounds.b1(lengths,
                                                                              terms["bound"])}
    rho, floor = softmax_error(terms["spread"], lengths + 1, fmt, policy,
                               accumulation="one-ulp")
    rho, floor = np.broadcast_to(rho, terms["weight"].shape), np.broadcast_to(floor,
                                                                             rho.shape)
    rows = []
    for n in sample_lengths(len(lengths)):
        i = n - 1
        for name, limit in rates.items():
            head = int(np.argmax(terms["weight"][:, i] / limit[:, i]))
            allowance = rho[head, i] * limit[head, i] + floor[head, i]

            def measured(head=head, i=i):
                keep = ~np.isnan(logits[head, i])
                return sum_evidence(softmax_terms(logits[head, i][keep], fmt, policy), fmt,
                                    policy)

            rows.append(row(base, n, quantity=f"b1-weight<={name}",
                            observed=terms["weight"][head, i], exact=exact_weight[head, i],
                            bound=limit[head, i], relation="<=",
                            tolerance_ulps=ulps(allowance, limit[head, i], fmt),
                            evidence=measured, head=head))
    return rows


def one_layer_rows(base, model, run, reference, fmt, policy, bounds) -> list[dict]:
    """The one-layer bound ``||z*_{n+1} - z_n|| <= sum_h 2 V_h e^{2 B_h}/(n + 1)`` at layer 0,
    with ``B`` and ``V`` of the stored logits and values (``exact``: the exact attention of the
    same stored inputs; tolerance: the midpoints' a priori rounding), and the identity behind it
    in the format."""
    terms = one_layer_terms(model, run.trace[0], fmt, policy)
    lengths = np.arange(1, len(terms["gap"]) + 1, dtype=np.float64)
    limit = bounds.one_layer(lengths, terms["bound"], terms["values"]).sum(axis=0)
    identity = identity_residual(run.trace[0], fmt, policy)
    rows = []
    for n in sample_lengths(len(lengths)):
        i = n - 1

        def measured(i=i):
            return attention_evidence(run.trace[0], i, fmt, policy)

        rows.append(row(base, n, quantity="one-layer gap<=bound", observed=terms["gap"][i],
                        exact=terms["exact"][i], bound=limit[i], relation="<=",
                        tolerance_ulps=ulps(terms["tolerance"][i], limit[i], fmt),
                        evidence=measured))
        rows.append(row(base, n, quantity="one-layer identity",
                        observed=identity["residual"][i], exact=0.0,
                        bound=identity["tolerance"][i], relation="<=", evidence=measured))
    return rows


def _decay_rows(base, model, reference, family, layers, size, bounds) -> list[dict]:
    """fp64 only: the fitted decay exponent of the final states (a window allowance below the
    paper's order) and, sharp, the decay constant of the layer-0 midpoints with the order fixed
    against its exact value (one head)."""
    order = bounds.order if family == "repeated" else bounds.order_varied
    derived = order if family == "repeated" and layers == 1 else bounds.order_varied
    lengths = np.arange(1, size + 1)
    weight = to_numpy(reference.trace[0]["long_self"], np.float64).mean(axis=0)
    gaps = state_gaps(reference.short, reference.long, "l1")
    rate = fit_rate(lengths, gaps, low=size // 8, high=size, scale=1 / weight)
    rows = [row(base, size, quantity="decay-rate", observed=rate, exact=None,
                bound=derived - RATE_TOLERANCE, relation=">=", order=derived,
                rate_in_n=plain(fit_rate(lengths, gaps, low=size // 8, high=size)))]
    if model.heads == 1:
        found = decay_constant(model, reference.trace[0], family, order=order, low=size // 8,
                               high=size)
        for relation in ("<=", ">="):
            rows.append(row(base, size, quantity="decay-constant", observed=found["observed"],
                            exact=None, bound=found["exact"], relation=relation,
                            tolerance_ulps=ulps(found["tolerance"] * found["exact"],
                                                 found["exact"], get_format("fp64")),
                            order=order, points=found["points"]))
    return rows


def _collapse_row(base, run, reference, fmt, policy, profile, pe) -> dict:
    """The cell's collapse lengths, judged at the stable length (else the first equal length,
    else the largest): are the states there still distinct? With the statistics over the lengths
    whose exact states differ, the forward-error prediction's precision and recall for each
    verdict (:func:`numerics.representational_collapse.predict_collapse`), and the
    unit-roundoff model's, which ignores the computation's error."""
    equal = equal_rows(run.short, run.long)
    distinct = distinct_rows(reference.short, reference.long)
    stats = collapse_statistics(equal, distinct)
    size = len(equal)
    errors = branch_errors(profile, fmt, policy)
    verdicts = predict_collapse(reference.short, reference.long, errors[size - 1:2 * size - 1],
                                errors[2 * size - 1:], fmt)
    said_equal = prediction_statistics(verdicts == 1, equal, distinct)
    said_distinct = prediction_statistics(verdicts == -1, ~equal, distinct)
    roundoff = prediction_statistics(
        unit_roundoff_model(reference.short, reference.long, fmt, trace=reference.trace,
                            positional=pe != "nope"), equal, distinct)
    n = stats["stable"] or stats["first"] or size
    i = n - 1
    short, long = to_numpy(run.short[i]), to_numpy(run.long[i])
    observed = float(state_gaps(run.short[i:n], run.long[i:n], "max")[0])
    exact = float(state_gaps(reference.short[i:n], reference.long[i:n], "max")[0])
    return row(base, n, quantity="collapse-length", observed=observed, exact=exact, bound=0.0,
               relation=">", evidence={"bitwise_equal": bitwise_equal(short, long)},
               lengths=stats["lengths"], equal_count=stats["equal"],
               equal_share=stats["share"], first_equal_n=stats["first"],
               stable_n=stats["stable"],
               predicted_equal=said_equal["predicted"],
               equal_precision=said_equal["precision"], equal_recall=said_equal["recall"],
               predicted_distinct=said_distinct["predicted"],
               distinct_precision=said_distinct["precision"],
               distinct_recall=said_distinct["recall"],
               undetermined=int(np.count_nonzero((verdicts == 0) & distinct)),
               prediction_errors=(said_equal["predicted"] - said_equal["correct"]
                                  + said_distinct["predicted"] - said_distinct["correct"]),
               error_bound_ulps=_median_ulps(errors[size - 1:], profile, size, fmt),
               roundoff_equal=roundoff["predicted"], roundoff_precision=roundoff["precision"],
               roundoff_recall=roundoff["recall"])


def _median_ulps(errors, profile, size: int, fmt):
    """The median over the branches' rows of the error bound in ulps of the state (None when
    every bound is vacuous)."""
    finite = np.isfinite(errors)
    if not finite.any():
        return None
    states = np.abs(profile["states"][size - 1:]).max(axis=-1)
    return float(np.median(errors[finite] / to_numpy(fmt.ulp(states[finite]))))


@lru_cache(maxsize=4)
def _reference(family: str, size: int, d: int, layers: int, pe: str, seed: int, backend: str):
    """A family cell's model, prefix and fp64 branches with their trace. Cells differing only in
    format and policy share it; a worker keeps the last four it computed (a speed-up only: a
    cell computes it when missing, whichever worker runs it and in whatever order)."""
    xp = get_backend(backend)
    model = collapse_model(d=d, layers=layers, pe=pe, seed=seed)
    prefix = xp.asarray(family_prefix(family, size, seed=seed))
    return model, prefix, branch_forward(model, prefix, TOKEN, fmt="fp64", policy="hw",
                                         trace=True)


def _trace_evidence(run, i: int, fmt, policy) -> dict:
    return combine_evidence(*(attention_evidence(record, i, fmt, policy)
                              for record in run.trace))


# --- helpers ----------------------------------------------------------------------------------

def base_columns(params: dict, fmt, policy) -> dict:
    return {"theorem": NAME, "experiment": params["experiment"], "n_max": params["n"],
            "format": fmt.name, "policy": policy.name, "seed": params["seed"],
            "backend": params["backend"], "layers": params["layers"], "pe": params["pe"],
            "d": params["d"]}


def ulps(absolute, bound, fmt) -> float:
    """An absolute tolerance in ulps of the format at ``bound`` (0 if not finite)."""
    absolute = float(absolute)
    if not math.isfinite(absolute) or not math.isfinite(float(bound)):
        return 0.0
    return absolute / float(fmt.ulp(float(bound)))


def plain(value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None
