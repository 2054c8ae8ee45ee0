"""Computer-checked derivations and precision-aware numeric checks of softmax-network results.

>>> import theorems
>>> theorems.names()[0]
'softmax-dispersion'

A facade: every name is an attribute imported on first use, so ``import theorems`` imports
nothing heavy (no NumPy, no SymPy, no theorem module). That covers ``get`` and ``names`` (the
registry), the classes ``Theorem``, ``Statement`` and ``Report``, each theorem's module
(``theorems.softmax_dispersion``, ...) and the public modules ``audit``, ``figures``,
``report`` and ``verdicts``. (No import statement here names a project module, so a module that
imports from the package does not depend on the registry's list of theorems.)
"""

import importlib

__all__ = ["Report", "Statement", "Theorem", "get", "names"]

#: Names reachable as attributes of the package, and the modules that define them.
_NAMES = {"Report": "theorems.report", "Statement": "theorems._theorem",
          "Theorem": "theorems._theorem", "get": "theorems._registry",
          "names": "theorems._registry"}
#: Public modules reachable as attributes, besides the theorems' own.
_MODULES = ("audit", "figures", "report", "verdicts")


def _submodules() -> tuple[str, ...]:
    return (*importlib.import_module("theorems._registry")._STEMS, *_MODULES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    if name in _submodules():
        return importlib.import_module(f"theorems.{name}")
    raise AttributeError(f"module 'theorems' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_submodules()})
