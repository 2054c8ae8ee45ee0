"""The project's one error type for bad input (and its wrong-type variant)."""



__all__ = ["InvalidArgument", "InvalidType"]


class InvalidArgument(ValueError):
    """A bad argument: a one-line message saying what is wrong and what is expected."""


class InvalidType(InvalidArgument, TypeError):
    """An argument of the wrong type."""
