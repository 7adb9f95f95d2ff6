"""Key-passing randomness, in the style of Nx.Random and JAX.

A `Key` is an immutable 64-bit value. `normal(key, shape)` returns float64 standard
normal noise together with a *new* key, and never touches global state: the same key
gives the same noise on every machine, device and dtype (the noise is drawn in
float64 with numpy's Philox generator and only then cast). Ports in other languages
do not reproduce this stream; they check against explicit noise instead (the
contract's functions all take `eps` as an argument).

    eps, key = normal(key, (batch, latent))
    z = mu + exp(log_var / 2) * eps          # == reparameterize(mu, log_var, eps)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, DTypeError, describe, show

# Largest number of values one draw may make (2²⁸ float64s, 2 GiB), and of keys one split may derive:
# beyond them a shape is a typo or hostile, and numpy would fail with a MemoryError after trying.
MAX_DRAW = 2**28
MAX_SPLIT = 2**20


@dataclass(frozen=True)
class Key:
    """A PRNG key: an integer in [0, 2⁶⁴)."""

    value: int

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, (int, np.integer)):
            raise DTypeError(f"key: expected an integer seed, got {describe(self.value)}")
        if not 0 <= int(self.value) < 2**64:
            raise ConfigError(f"key: expected a seed in [0, 2**64), got {show(self.value)}")
        object.__setattr__(self, "value", int(self.value))


def key(seed: int) -> Key:
    """Make a key from an integer seed (like `Nx.Random.key(seed)`)."""
    return Key(seed)


def as_key(value: Key | int) -> Key:
    """Accept a Key or an integer seed."""
    return value if isinstance(value, Key) else Key(value)


def _shape(shape: object) -> tuple[int, ...]:
    """`shape` as a tuple of integers ≥ 0 whose product is at most `MAX_DRAW`, else a vaespec error."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (tuple, list)):
        raise DTypeError(f"shape: expected a tuple of integers ≥ 0, got {describe(shape)}")
    if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0 for n in shape):
        raise ConfigError(f"shape: expected a tuple of integers ≥ 0, got {show(tuple(shape))}")
    size = 1
    for n in shape:
        size *= int(n)
    if size > MAX_DRAW:
        raise ConfigError(f"shape: expected at most {MAX_DRAW} values in one draw, got {show(tuple(shape))}")
    return tuple(int(n) for n in shape)


def split(k: Key, num: int = 2) -> tuple[Key, ...]:
    """Derive `num` ≥ 1 independent keys from `k` (SeedSequence hashing; deterministic)."""
    k = as_key(k)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or not 1 <= num <= MAX_SPLIT:
        raise ConfigError(f"num: expected an integer in [1, {MAX_SPLIT}] (keys to derive), got {show(num)}")
    words = np.random.SeedSequence(k.value).generate_state(num, dtype=np.uint64)
    return tuple(Key(int(w)) for w in words)


def normal(k: Key, shape: tuple[int, ...]) -> tuple[np.ndarray, Key]:
    """Standard normal float64 noise of `shape` drawn from `k`, and the next key.

    **Returns** `(eps, new_key)`; `eps` depends on `k` and `shape` only.
    """
    shape = _shape(shape)
    draw_key, new_key = split(as_key(k))
    generator = np.random.Generator(np.random.Philox(key=draw_key.value))
    return generator.standard_normal(shape), new_key


def randint(k: Key, high: int, shape: tuple[int, ...]) -> tuple[np.ndarray, Key]:
    """Integers uniform on [0, `high`) of `shape` (int64) drawn from `k`, and the next key.

    Used by `reset_dead_codes` to pick the batch rows that replace dead codes.
    """
    if isinstance(high, bool) or not isinstance(high, (int, np.integer)) or not 1 <= high < 2**63:
        raise ConfigError(f"high: expected a positive integer, got {show(high)} (int64 results: high < 2**63)")
    shape = _shape(shape)
    draw_key, new_key = split(as_key(k))
    generator = np.random.Generator(np.random.Philox(key=draw_key.value))
    return generator.integers(0, int(high), size=shape, dtype=np.int64), new_key
