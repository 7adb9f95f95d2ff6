"""The sizes the strategies draw (batch, features, latent, widths, codes, …), and the fixed-shape mode.

A port that compiles once per input shape (JAX's `jit`, `torch.compile`, TorchScript, XLA) pays a
compile for every new shape Hypothesis draws. With fixed shapes on (`vaespec check --fixed-shapes`,
`pytest --vaespec-fixed-shapes`), every size is one of two values, the least and the greatest its
strategy allows, and every hidden layer of a stack has the same width, so a law meets a handful of
shapes while every value stays random. Off (the default), the draws are exactly `st.integers`.
The mode is read when an example is drawn, so strategies built at import time follow it.
"""

from __future__ import annotations

from hypothesis import strategies as st

_MODE = {"fixed": False}


def use_fixed_shapes(on: bool = True) -> None:
    """Turn the fixed-shape mode on or off for this process."""
    _MODE["fixed"] = bool(on)


def fixed_shapes() -> bool:
    """Whether the fixed-shape mode is on."""
    return _MODE["fixed"]


def size(low: int, high: int):
    """A size in [low, high]: any (default), or only `low` or `high` (fixed shapes)."""
    if not _MODE["fixed"]:
        return st.integers(low, high)
    return st.just(low) if high <= low else st.sampled_from((low, high))


def layer_widths(max_layers: int, max_width: int, min_layers: int = 0):
    """Hidden-layer widths, `min_layers` to `max_layers` layers of 1 to `max_width` units (fixed shapes:
    `min_layers` or `max_layers` layers, all 1 or all `max_width` wide)."""
    if not _MODE["fixed"]:
        return st.lists(st.integers(1, max_width), min_size=min_layers, max_size=max_layers)
    return st.tuples(size(min_layers, max_layers), size(1, max_width)).map(lambda lw: [lw[1]] * lw[0])
