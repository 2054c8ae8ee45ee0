"""The registry: one ordered table of theorem stems. Registering a theorem is one line here."""

from __future__ import annotations

import importlib

from numerics._validate import check_choice

_STEMS: tuple[str, ...] = (
    "softmax_dispersion",
    "representational_collapse",
    "iso_perplexity",
    "rank_deficit",
    "sae_amortisation",
)


def names() -> list[str]:
    """Return the registered theorem names, in registry order."""
    return [stem.replace("_", "-") for stem in _STEMS]


def get(name: str):
    """Return the :class:`Theorem` called ``name``; its module is imported only now."""
    check_choice(name, names(), "theorem")
    try:
        module = importlib.import_module(f"theorems.{name.replace('-', '_')}")
    except Exception as exc:  # a broken theorem module is a bug, not a bad argument
        raise ImportError(f"theorem module for {name!r} failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc
    return module.THEOREM
