"""Throwaway theorem (tests only): the largest weight of a uniform softmax, in a format."""

import numpy as np

from numerics import softmax

__all__ = ["largest_weight"]


def largest_weight(size: int, fmt: str, policy: str) -> float:
    """The largest softmax weight of ``size`` equal logits, computed in ``fmt`` under ``policy``."""
    return float(np.max(np.asarray(softmax(np.zeros(size), fmt, policy), dtype=np.float64)))
