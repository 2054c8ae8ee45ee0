"""Computer-checked derivations and precision-aware numeric checks of softmax-network results.

>>> import theorems
>>> theorems.names()[0]
'softmax-dispersion'
"""

from theorems._registry import get, names
from theorems._theorem import Statement, Theorem
from theorems.report import Report

__all__ = ["Report", "Statement", "Theorem", "get", "names"]
