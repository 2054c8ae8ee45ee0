"""Paper quantities: every constant, exponent, index and sign a theorem takes from its paper.

Each is defined once, in one :class:`Quantities` table per theorem, and read by reference
(``PAPER["b1.shift"]``) in the derivation and, through plain values, in the numeric checker. The
mutation audit (:mod:`theorems.audit`) changes one entry at a time and asks whether a step or a
row notices:

- ``constant``: scaled by 0.99 and by 1.01;
- ``exponent`` and ``index``: shifted by -1 and by +1;
- ``sign``: negated.

A mutation that leaves the statement true (a constant that only loosens a bound, say) is listed
in the quantity's ``exempt`` with the reason, and the audit reports it as an exception instead of
a miss.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import sympy as sp

__all__ = ["KINDS", "Mutation", "Quantities", "Quantity"]


KINDS = ("constant", "exponent", "index", "sign")


@dataclass(frozen=True)
class Quantity:
    """One number a paper states: its registry name, value, kind, citation and meaning."""

    name: str
    value: sp.Expr
    kind: str
    cite: str = ""
    meaning: str = ""
    exempt: Mapping[str, str] = field(default_factory=dict)  # mutation label -> reason

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"quantity {self.name!r} has kind={self.kind!r}; expected one of "
                             f"{', '.join(KINDS)}")
        object.__setattr__(self, "value", sp.sympify(self.value))

    def mutations(self) -> list[Mutation]:
        """The audit's mutations of this quantity, in a fixed order."""
        value = self.value
        if self.kind == "constant":
            changes = [("x0.99", value * sp.Rational(99, 100)),
                       ("x1.01", value * sp.Rational(101, 100))]
        elif self.kind in ("exponent", "index"):
            changes = [("-1", value - 1), ("+1", value + 1)]
        else:
            changes = [("negated", -value)]
        return [Mutation(self.name, label, new, self.exempt.get(label, ""))
                for label, new in changes]


@dataclass(frozen=True)
class Mutation:
    """One changed quantity: ``name`` takes ``value`` instead of the paper's."""

    name: str
    label: str
    value: sp.Expr
    exempt: str = ""  # why this mutation leaves the statement true, if it does

    def __str__(self) -> str:
        return f"{self.name} {self.label}"


class Quantities:
    """The table of a theorem's paper quantities, with at most one mutation in force."""

    def __init__(self, theorem: str, entries: Iterable[Quantity]):
        self.theorem = theorem
        self._entries: dict[str, Quantity] = {}
        for entry in entries:
            if entry.name in self._entries:
                raise ValueError(f"quantity {entry.name!r} is defined twice in {theorem}")
            self._entries[entry.name] = entry
        self._mutation: Mutation | None = None
        self._reads: set[str] = set()

    def __getitem__(self, name: str) -> sp.Expr:
        if name not in self._entries:
            raise KeyError(f"{self.theorem} has no paper quantity {name!r}; expected one of "
                           f"{', '.join(self._entries)}")
        self._reads.add(name)
        if self._mutation is not None and self._mutation.name == name:
            return self._mutation.value
        return self._entries[name].value

    def value(self, name: str) -> float:
        """The quantity as a float, for numeric code."""
        return float(self[name])

    def __iter__(self) -> Iterator[Quantity]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def mutation(self) -> Mutation | None:
        """The mutation in force, or ``None``."""
        return self._mutation

    @property
    def unread(self) -> list[str]:
        """Quantities defined but never read: a definition nothing depends on."""
        return [name for name in self._entries if name not in self._reads]

    def mutations(self) -> list[Mutation]:
        """Every mutation of every quantity, in table order."""
        return [m for entry in self for m in entry.mutations()]

    @contextlib.contextmanager
    def mutated(self, mutation: Mutation):
        """Put ``mutation`` in force for the duration of the ``with`` block."""
        if mutation.name not in self._entries:
            raise KeyError(f"{self.theorem} has no paper quantity {mutation.name!r}")
        previous, self._mutation = self._mutation, mutation
        try:
            yield mutation
        finally:
            self._mutation = previous

    def cache(self, function: Callable) -> Callable:
        """Like :func:`functools.cache`, keyed also on the mutation in force."""
        cached = functools.cache(lambda key, *args, **kwargs: function(*args, **kwargs))

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            key = None if self._mutation is None else (self._mutation.name, self._mutation.label)
            return cached(key, *args, **kwargs)

        wrapper.cache_clear = cached.cache_clear
        return wrapper

    def __repr__(self) -> str:
        return f"<Quantities {self.theorem}: {len(self)}>"
