"""The registry: one ordered table of theorem stems. Registering a theorem is one line here.

Nothing here imports a theorem module (or SymPy, or NumPy) before :func:`get` is called, so
``theorems list`` answers at once: it reads titles and sources from :data:`_LISTING`, a copy of
the classes' own attributes that a test keeps equal to them. A stem missing from it is listed
from its class, by importing its module.
"""

from __future__ import annotations

import importlib

_STEMS: tuple[str, ...] = (
    "softmax_dispersion",
    "representational_collapse",
    "iso_perplexity",
    "rank_deficit",
    "sae_amortisation",
)

#: ``stem: (title, source)`` as each theorem class states them.
_LISTING: dict[str, tuple[str, str]] = {
    "softmax_dispersion": (
        "bounded logits force every softmax coefficient to Theta(1/n)",
        "Velickovic et al., Softmax is not Enough, ICML 2025, Lemma 2.1"),
    "representational_collapse": (
        "last-token states of v and v+[a] converge; over-squashing bound",
        "Barbero et al., Transformers need glasses!, NeurIPS 2024, Thm B.3, B.5"),
    "iso_perplexity": (
        "low-perplexity wrong answers; iso-perplexity curves and the critical accuracy",
        "Velickovic et al., Perplexity Cannot Always Tell Right from Wrong, 2026"),
    "rank_deficit": (
        "low-rank logits and features under softmax; temperature controls the rank",
        "Masarczyk et al., Unpacking Softmax, 2025 (reconstructed from its reviews)"),
    "sae_amortisation": (
        "one-pass SAE encoders have an amortisation gap under superposition",
        "O'Neill, Gumran & Klindt, ICML 2025; Barin Pacela, Joshi et al., arXiv:2603.28744, "
        "2026"),
}


def names() -> list[str]:
    """Return the registered theorem names, in registry order."""
    return [stem.replace("_", "-") for stem in _STEMS]


def listing() -> list[tuple[str, str, str]]:
    """Return ``(name, title, source)`` of every registered theorem, in registry order, without
    importing the theorem modules that :data:`_LISTING` describes."""
    rows = []
    for name in names():
        stem = name.replace("-", "_")
        if stem in _LISTING:
            rows.append((name, *_LISTING[stem]))
        else:
            theorem = get(name)
            rows.append((name, theorem.title, theorem.source))
    return rows


def get(name: str):
    """Return the :class:`Theorem` called ``name``; its module is imported only now."""
    from numerics._validate import check_choice

    check_choice(name, names(), "theorem")
    try:
        module = importlib.import_module(f"theorems.{name.replace('-', '_')}")
    except Exception as exc:  # a broken theorem module is a bug, not a bad argument
        raise ImportError(f"theorem module for {name!r} failed to import: "
                          f"{type(exc).__name__}: {exc}") from exc
    return module.THEOREM
