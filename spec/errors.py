"""Errors raised by every vaespec layer.

Each error names the argument, what was expected and what was given, so a port
author sees at once which input broke which rule.
"""


class VaespecError(Exception):
    """Base class of every vaespec error."""


class ShapeError(VaespecError, ValueError):
    """An array has the wrong rank or size, or an empty batch."""


class DomainError(VaespecError, ValueError):
    """A value lies outside the function's stated domain (NaN, Inf, out of range)."""


class DTypeError(VaespecError, TypeError):
    """An argument has the wrong type or dtype."""


class ConfigError(VaespecError, ValueError):
    """A builder or convention option is missing, unknown or out of range."""


def describe(value) -> str:
    """A short description of `value` for error messages: type, shape and dtype."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(value).__name__} {value!r}"
