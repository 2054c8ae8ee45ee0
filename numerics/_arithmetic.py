"""Arithmetic inside a kernel under a policy, shared by the models, the training and the solvers.

A kernel rounds its output once to the format (``fmt.round``); inside it, ``rounder`` rounds each
operation as the policy says (after every operation under ``strict``, never under ``hw``) and
``literal`` is a constant written in the kernel: in the compute dtype under ``hw`` (as a GPU kernel
holds a float32 literal), rounded to the format under ``strict``.
"""

from __future__ import annotations

from collections.abc import Callable

from numerics.backend import array_namespace
from numerics.formats import Format
from numerics.policies import Policy


def rounder(fmt: Format, policy: Policy) -> Callable:
    """``y -> policy.step(y, fmt)``."""
    return lambda y: policy.step(y, fmt)


def literal(value: float, like, fmt: Format, policy: Policy):
    """``value`` as a 0-d array of ``like``'s namespace and dtype, rounded to ``fmt`` when the
    policy rounds every operation."""
    xp = array_namespace(like)
    return policy.step(xp.asarray(value, dtype=like.dtype), fmt)
