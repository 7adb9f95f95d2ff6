"""The sizes the strategies draw (batch, features, latent, widths, codes, …), and the fixed-shape mode.

A port that compiles once per input shape (JAX's `jit`, `torch.compile`, TorchScript, XLA) pays a
compile for every new shape Hypothesis draws. With fixed shapes on (`vaespec check --fixed-shapes`,
`pytest --vaespec-fixed-shapes`), each example draws one of three shape profiles (`PROFILES`) and
every size of that example follows it: the least value its strategy allows, the middle one, or the
greatest; every hidden layer of a stack has the same width. Drawing each size's end independently
would still combine into hundreds of shapes per function (input × latent × widths × batch); tied to
one profile, a function meets at most three shapes per architecture family while every value stays
random. Off (the default), the draws are exactly `st.integers`.
The mode is read when an example is drawn, so strategies built at import time follow it.
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st

_MODE = {"fixed": False}

# The strategy factories (here and in `strategies.vae`, `.quantizers`) are called inside composite strategies,
# once per example drawn; each call used to build a new strategy that Hypothesis then validated and inspected
# again (`validate`, `is_empty`, …: ~8 % of a law run). Strategies are immutable, so one object per distinct
# argument serves every draw alike.
strategy_cache = functools.lru_cache(maxsize=4096)


def use_fixed_shapes(on: bool = True) -> None:
    """Turn the fixed-shape mode on or off for this process."""
    _MODE["fixed"] = bool(on)


def fixed_shapes() -> bool:
    """Whether the fixed-shape mode is on."""
    return _MODE["fixed"]


# The fixed-shape profiles: where in [low, high] every size of one example lies.
PROFILES = ("least", "middle", "greatest")
# One draw per example, shared by every `size` of that example (Hypothesis's `shared` strategy).
_PROFILE = st.shared(st.sampled_from(PROFILES), key="vaespec.fixed-shape-profile")


def _at(profile: str, low: int, high: int) -> int:
    return {"least": low, "middle": (low + high) // 2, "greatest": high}[profile] if high > low else low


def size(low: int, high: int):
    """A size in [low, high]: any (default), or under fixed shapes the end or middle of the range that
    the example's shape profile names (`PROFILES`), the same profile for every size of the example."""
    return _size(_MODE["fixed"], low, high)


@strategy_cache  # one strategy per range and mode, not one per draw
def _size(fixed: bool, low: int, high: int):
    if not fixed:
        return st.integers(low, high)
    return _PROFILE.map(lambda profile: _at(profile, low, high))


def layer_widths(max_layers: int, max_width: int, min_layers: int = 0):
    """Hidden-layer widths, `min_layers` to `max_layers` layers of 1 to `max_width` units (fixed shapes:
    as many layers and as wide as the example's profile says, every layer the same width)."""
    return _layer_widths(_MODE["fixed"], max_layers, max_width, min_layers)


@strategy_cache
def _layer_widths(fixed: bool, max_layers: int, max_width: int, min_layers: int):
    if not fixed:
        return st.lists(st.integers(1, max_width), min_size=min_layers, max_size=max_layers)
    return st.tuples(size(min_layers, max_layers), size(1, max_width)).map(lambda lw: [lw[1]] * lw[0])
