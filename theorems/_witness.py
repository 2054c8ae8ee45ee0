"""The base of every theorem's counterexample: one headline, the values by name, short reprs.

A counterexample is a frozen dataclass (``repr=False``, so that the short repr here stands)
that also derives from :class:`Witness` and says in :meth:`Witness.headline` what it shows.
Printed, it is that sentence, its numbers on a line or two, and its arrays by shape (the arrays
themselves stay attributes); in a notebook it is a small HTML table. ``witness["rank"]`` reads a
field as ``witness.rank`` does.
"""

from __future__ import annotations

from dataclasses import fields
from html import escape

import numpy as np

__all__ = ["Witness"]


class Witness:
    """What a theorem's ``counterexample`` returns: a dataclass whose fields are its values."""

    def headline(self) -> str:
        """One sentence: what this witness shows."""
        raise NotImplementedError

    def as_dict(self) -> dict:
        """The fields that have a value (``None`` means the field does not apply here)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def keys(self) -> list[str]:
        return list(self.as_dict())

    def __iter__(self):
        return iter(self.keys())

    def __getitem__(self, key: str):
        values = self.as_dict()
        if key not in values:
            raise KeyError(f"{key!r}; {type(self).__name__} has {', '.join(values)}")
        return values[key]

    def __str__(self) -> str:
        numbers, arrays = [], []
        for name, value in self.as_dict().items():
            if _is_array(value):
                arrays.append(f"{name} {_shape(value)}")
            elif not isinstance(value, str):  # words are the headline's to say
                numbers.append(f"{name}={_short(value)}")
        lines = [self.headline(), *_packed("", numbers)]
        if arrays:
            lines += _packed("arrays (attributes): ", arrays)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.headline()}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td style='text-align:left'>{escape(name)}</td>"
            f"<td style='text-align:left'>"
            f"{escape(_shape(value) if _is_array(value) else _short(value))}</td></tr>"
            for name, value in self.as_dict().items())
        return (f"<div><p>{escape(self.headline())}</p>"
                f"<table><tr><th>field</th><th>value</th></tr>{rows}</table></div>")


def _packed(prefix: str, items: list[str], width: int = 100) -> list[str]:
    """``items`` joined by commas into indented lines of at most ``width``, never inside one."""
    lines, current = [], "  " + prefix
    for index, item in enumerate(items):
        piece = item + ("," if index < len(items) - 1 else "")
        if len(current) + len(piece) > width and current.strip():
            lines.append(current.rstrip())
            current = "    "
        current += piece + " "
    if current.strip():
        lines.append(current.rstrip())
    return lines


def _is_array(value) -> bool:
    """A NumPy array of one or more dimensions, or a CuPy one."""
    return (isinstance(value, np.ndarray) and value.ndim > 0) \
        or hasattr(value, "__cuda_array_interface__")


def _shape(value) -> str:
    return f"[{' x '.join(map(str, value.shape))}] {value.dtype}"


def _short(value) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)
