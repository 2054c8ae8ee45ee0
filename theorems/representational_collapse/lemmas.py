"""The rows of the representational-collapse sweep beyond the input families: Fig. 9 against
Lemma B.2 and Prop. B.4's alternating pair (every format), the extremal instances on which the
collapse bounds are attained (fp64), and Theorem B.5's Jacobian, its per-layer terms and Prop.
B.8's constants (fp64). Every row through :func:`theorems.representational_collapse.rows.row`.
"""

from __future__ import annotations

import numpy as np

from numerics import get_backend, get_format, get_policy
from numerics.representational_collapse import (
    EXTREMAL_LOGIT,
    EXTREMAL_SHIFT,
    FIG9_K,
    FIG9_NOISE,
    TOKEN,
    extremal_collapse_model,
    extremal_prefix,
)
from numerics.representational_collapse.branches import branch_forward
from numerics.representational_collapse.kernel_evidence import (
    combine_evidence,
    softmax_terms,
    sum_evidence,
)
from numerics.representational_collapse.oversquashing import (
    OVERSQUASHING_LENGTH,
    extremal_oversquashing_model,
    layer_block_terms,
    oversquashing_bound_values,
    oversquashing_model,
    oversquashing_terms,
)
from numerics.representational_collapse.softmax_pairs import (
    alternating_logits,
    fig9_logits,
    lemma_b2_extremal_logits,
    softmax_pair_tv,
)
from proofs.representational_collapse import PAPER
from theorems.representational_collapse.rows import (
    JACOBIAN_ULPS,
    base_columns,
    gap_rows,
    lemma_b1_rows,
    one_layer_rows,
    paper,
    plain,
    row,
    sample_lengths,
    ulps,
)

# --- softmax pairs: Fig. 9 (Lemma B.2) and Prop. B.4 ----------------------------------------


__all__ = ["extremal_rows", "lemma_b2_rows", "oversquashing_rows", "pair_evidence",
    "proposition_b8_rows", "softmax_rows"]


def softmax_rows(params: dict) -> list[dict]:
    xp = get_backend(params["backend"])
    fmt, policy = get_format(params["format"]), get_policy(params["policy"])
    base = {**base_columns(params, fmt, policy), "instance": "random"}
    bounds = paper()
    lengths = np.asarray(sample_lengths(params["n"]))
    pair = fig9_logits(params["n"], k=FIG9_K, noise=FIG9_NOISE, seed=params["seed"])
    rows = lemma_b2_rows(base, pair, lengths, fmt, policy, bounds, xp, k=FIG9_K,
                          noise=FIG9_NOISE)
    even = lengths[lengths % 2 == 0]
    result = softmax_pair_tv(alternating_logits(int(even.max())), even, fmt, policy, xp=xp)
    for index, n in enumerate(even):
        measured = pair_evidence(result["stored"], int(n), fmt, policy)
        for relation in (">=", "<="):
            rows.append(row({**base, "experiment": "alternating-softmax"}, n,
                            quantity="alternating-tv", observed=result["observed"][index],
                            exact=result["exact"][index], bound=bounds.alternating,
                            relation=relation,
                            tolerance_ulps=ulps(result["tolerance"][index],
                                                 bounds.alternating, fmt),
                            evidence=measured))
    return rows


def lemma_b2_rows(base, pair, lengths, fmt, policy, bounds, xp, **extra) -> list[dict]:
    result = softmax_pair_tv(pair, lengths, fmt, policy, xp=xp)
    stored = result["stored"]
    rows = []
    for index, n in enumerate(lengths):
        magnitude = float(np.abs(stored[:, :n]).max())
        total = float(np.abs(stored[1, :n] - stored[0, :n]).sum())
        limit = float(bounds.b2(float(n), magnitude, total))
        rows.append(row(base, n, quantity="tv<=lemma-b2", observed=result["observed"][index],
                        exact=result["exact"][index], bound=limit, relation="<=",
                        tolerance_ulps=ulps(result["tolerance"][index], limit, fmt),
                        evidence=pair_evidence(stored, int(n), fmt, policy),
                        underflow=int(result["underflow"][index]), **extra))
    return rows


def pair_evidence(stored, n: int, fmt, policy):
    def measured():
        return combine_evidence(*(sum_evidence(softmax_terms(stored[side, :n], fmt, policy),
                                               fmt, policy) for side in (0, 1)))
    return measured


# --- extremal instances: where the bounds are attained ----------------------------------------

def extremal_rows(params: dict) -> list[dict]:
    """fp64: Lemma B.1, the one-layer bound and Theorem B.3's chain on
    :func:`numerics.representational_collapse.extremal_collapse_model`, and Lemma B.2 on
    :func:`numerics.representational_collapse.lemma_b2_extremal_logits`: each bound is attained
    up to ``O(1/n)``, so 1% tighter is false from moderate ``n`` on."""
    fmt, policy = get_format("fp64"), get_policy("hw")
    base = {**base_columns(params, fmt, policy), "instance": "extremal"}
    size, bounds = params["n"], paper()
    model = extremal_collapse_model()
    run = branch_forward(model, extremal_prefix(size), TOKEN, trace=True)
    rows = gap_rows(base, model, run, run, fmt, policy, bounds)
    rows += lemma_b1_rows(base, run, run, fmt, policy, bounds)
    rows += one_layer_rows(base, model, run, run, fmt, policy, bounds)
    lengths = np.asarray(sample_lengths(size))
    pair = lemma_b2_extremal_logits(size, bound=EXTREMAL_LOGIT, shift=EXTREMAL_SHIFT)
    rows += lemma_b2_rows(base, pair, lengths, fmt, policy, bounds, np)
    return [r for r in rows if r["quantity"] not in ("distinct", "one-layer identity")]


# --- over-squashing: Theorem B.5 and Prop. B.8 ------------------------------------------------

def oversquashing_rows(params: dict) -> list[dict]:
    fmt, policy = get_format("fp64"), get_policy(params["policy"])
    base = {**base_columns(params, fmt, policy), "backend": "numpy"}  # small and exact: on the host
    bounds = paper()
    rows = []
    models = [("random", *oversquashing_model(layers=params["layers"], pe=params["pe"],
                                              seed=params["seed"]))]
    if params["pe"] == "nope":  # the instance has no positions to encode (width 3, one token)
        models.append(("extremal", *extremal_oversquashing_model(layers=params["layers"])))
    for instance, model, tokens in models:
        terms = oversquashing_terms(model, tokens)
        attention = [a[0] for a in terms["attention"]]
        limit = oversquashing_bound_values(attention, terms["beta1"], terms["beta2"],
                                           terms["beta3"], terms["sigma_psi"],
                                           abar=bounds.abar, constant=bounds.constant)
        norms = np.linalg.norm(terms["jacobian"], 2, axis=(1, 2))
        where = {**base, "instance": instance, "attention": "fixed"}
        for i, (value, bound) in enumerate(zip(norms, limit, strict=True), start=1):
            rows.append(row(where, OVERSQUASHING_LENGTH, quantity="jacobian<=bound",
                            observed=value, exact=None, bound=bound, relation="<=",
                            tolerance_ulps=JACOBIAN_ULPS, position=i))
        for layer, blocks in enumerate(terms["blocks"]):
            term = layer_block_terms(terms["attention"][layer], terms["beta1"][layer],
                                     terms["beta2"][layer], terms["sigma_psi"][layer],
                                     abar=bounds.abar, constant=bounds.constant)
            block_norms = np.linalg.norm(blocks, 2, axis=(2, 3))
            causal = np.tril(np.ones_like(term, dtype=bool))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(causal, block_norms / term, -np.inf)
            j, i = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
            rows.append(row(where, OVERSQUASHING_LENGTH, quantity="layer-jacobian<=term",
                            observed=block_norms[j, i], exact=None, bound=term[j, i],
                            relation="<=", tolerance_ulps=JACOBIAN_ULPS, layer=layer,
                            position=int(i) + 1, query=int(j) + 1,
                            upper_blocks=plain(np.abs(np.where(causal, 0.0, block_norms))
                                                .max())))
    rows += proposition_b8_rows(base, params["layers"], bounds)
    return rows


def proposition_b8_rows(base, layers: int, bounds) -> list[dict]:
    """Prop. B.8's constants (``beta1 = beta2 = sigma_psi = 1``, ``beta3^{1/L} = 4``) make the
    bound ``(((Lambda + I)/2)^L)_{n,i}``: Theorem B.5's bound with them against that power,
    uniform causal attention, at the first and the last position."""
    size = OVERSQUASHING_LENGTH
    uniform = np.tril(np.ones((size, size))) / np.arange(1, size + 1)[:, None]
    root = PAPER.value("b8.beta3_root")
    limit = oversquashing_bound_values([uniform] * layers, np.ones(layers), np.ones(layers),
                                       root**layers, np.ones(layers), abar=bounds.abar,
                                       constant=bounds.constant)
    power = np.linalg.matrix_power((uniform + np.eye(size)) / 2, layers)[-1]
    rows = []
    for i in (1, size):
        for relation in ("<=", ">="):
            rows.append(row({**base, "instance": "uniform"}, size, quantity="prop-b8 bound",
                            observed=power[i - 1], exact=None, bound=limit[i - 1],
                            relation=relation, tolerance_ulps=JACOBIAN_ULPS, position=i))
    return rows
