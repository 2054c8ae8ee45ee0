"""Evidence of a kernel's in-format sums, recomputed from its stored inputs exactly as the kernels
compute them: what :func:`numerics.evidence.stall_index` and the sum's error in ulps are measured
on. :func:`softmax_terms` and :func:`sum_evidence` serve any softmax; :func:`attention_evidence`
reads one length of a :func:`.branches.branch_forward` trace layer (both branches'
denominators and weighted sums of values).
"""

from __future__ import annotations

import math

import numpy as np

from numerics.backend import to_numpy
from numerics.evidence import error_in_ulps, stall_index
from numerics.formats import Format, get_format
from numerics.kernels import softmax
from numerics.policies import Policy, get_policy

__all__ = ["attention_evidence", "combine_evidence", "softmax_terms", "sum_evidence",
    "valid_logits"]


def valid_logits(record, branch: str) -> np.ndarray:
    """A branch's logits per head and length (float64 ``(heads, N, keys)``), NaN where masked:
    the keys ``x_<n``, then ``a`` (and for the long branch ``b``)."""
    scores = to_numpy(record[f"{branch}_scores"], np.float64)
    size = scores.shape[1]
    prefix = np.arange(size - 1)[None, :] < np.arange(size)[:, None]
    tail = np.ones((size, scores.shape[2] - (size - 1)), dtype=bool)
    return np.where(np.concatenate([prefix, tail], axis=1)[None], scores, np.nan)


def softmax_terms(logits, fmt: Format | str, policy: Policy | str) -> np.ndarray:
    """The exponentials ``e_j = exp(x_j - max x)`` of stored logits as
    :func:`numerics.kernels.softmax` computes them in ``fmt`` under ``policy`` (float64 values):
    the terms its denominator sums."""
    fmt, policy = get_format(fmt), get_policy(policy)
    x = policy.load(np.asarray(logits, dtype=np.float64), fmt)
    z = policy.step(x - np.max(x), fmt)
    return np.asarray(policy.step(np.exp(z), fmt), dtype=np.float64)


def sum_evidence(terms, fmt: Format | str, policy: Policy | str, computed=None) -> dict:
    """Evidence of one sum of ``terms`` (in order) as ``policy`` computes it in ``fmt``:
    ``stall_index`` (:func:`numerics.evidence.stall_index`, only for an in-format sequential
    accumulation; None otherwise) and ``sum_error_ulps``, the policy's sum (or ``computed``)
    against the exact sum of the same terms, in ulps of the format."""
    fmt, policy = get_format(fmt), get_policy(policy)
    terms = np.asarray(terms, dtype=np.float64)
    if computed is None:
        computed = float(np.asarray(policy.sum(terms.astype(fmt.container), fmt)))
    exact = math.fsum(terms.tolist())
    sequential = policy.accumulate == "format"
    return {"stall_index": stall_index(terms, fmt) if sequential else None,
            "sum_error_ulps": error_in_ulps(float(computed), exact, fmt)}


def combine_evidence(*evidence: dict) -> dict:
    """The first stall (smallest index among sums that stall) and the largest sum error."""
    stalls = [e["stall_index"] for e in evidence if e.get("stall_index") is not None]
    errors = [e["sum_error_ulps"] for e in evidence if e.get("sum_error_ulps") is not None]
    return {"stall_index": min(stalls) if stalls else None,
            "sum_error_ulps": max(errors) if errors else None}


def attention_evidence(record, row: int, fmt: Format | str, policy: Policy | str) -> dict:
    """The in-format sums of both branches' attention at one length (``row = n - 1``) of a
    :func:`.branches.branch_forward` trace layer: each head's softmax denominator and,
    per coordinate, the weighted sum of values (terms ``w_j u_j`` rounded as the policy rounds,
    in sequence order), recomputed from the stored scores and values; combined by
    :func:`combine_evidence`."""
    fmt, policy = get_format(fmt), get_policy(policy)
    found = []
    prefix_values = to_numpy(record["prefix_value"], np.float64)
    for branch, tail in (("short", ("short_value",)), ("long", ("short_value", "long_value"))):
        logits = valid_logits(record, branch)[:, row]
        computed_mix = to_numpy(record[f"{branch}_mix"], np.float64)[:, row]
        for head in range(logits.shape[0]):
            keep = ~np.isnan(logits[head])
            terms = softmax_terms(logits[head][keep], fmt, policy)
            found.append(sum_evidence(terms, fmt, policy))
            weights = np.asarray(to_numpy(softmax(logits[head][keep], fmt, policy),
                                          np.float64))
            values = np.concatenate([prefix_values[head, :row]]
                                    + [to_numpy(record[name], np.float64)[head, row][None]
                                       for name in tail])
            products = weights[:, None] * values
            if policy.round_each_op:
                products = fmt.round(products)
            for column in range(products.shape[1]):
                found.append(sum_evidence(products[:, column], fmt, policy,
                                          computed=computed_mix[head, column]))
    return combine_evidence(*found)
