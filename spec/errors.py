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


def show(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, for error messages. Never raises: a hostile value
    (a 10⁵-digit integer, a `__repr__` that fails) must not turn a clear error into another one."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - any failure of a foreign __repr__
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(value: object) -> str:
    """A short description of `value` for error messages: type, shape and dtype (never raises)."""
    try:
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        if shape is not None:
            return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    except Exception:  # noqa: BLE001, S110 - a foreign object whose shape is not a sequence
        pass
    return f"{type(value).__name__} {show(value)}"
