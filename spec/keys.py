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

from .errors import ConfigError, DTypeError, describe


@dataclass(frozen=True)
class Key:
    """A PRNG key: an integer in [0, 2⁶⁴)."""

    value: int

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, (int, np.integer)):
            raise DTypeError(f"key: expected an integer seed, got {describe(self.value)}")
        if not 0 <= int(self.value) < 2**64:
            raise ConfigError(f"key: expected a seed in [0, 2**64), got {self.value}")
        object.__setattr__(self, "value", int(self.value))


def key(seed: int) -> Key:
    """Make a key from an integer seed (like `Nx.Random.key(seed)`)."""
    return Key(seed)


def as_key(value) -> Key:
    """Accept a Key or an integer seed."""
    return value if isinstance(value, Key) else Key(value)


def split(k: Key, num: int = 2) -> tuple[Key, ...]:
    """Derive `num` independent keys from `k` (SeedSequence hashing; deterministic)."""
    k = as_key(k)
    words = np.random.SeedSequence(k.value).generate_state(num, dtype=np.uint64)
    return tuple(Key(int(w)) for w in words)


def normal(k: Key, shape: tuple[int, ...]) -> tuple[np.ndarray, Key]:
    """Standard normal float64 noise of `shape` drawn from `k`, and the next key.

    **Returns** `(eps, new_key)`; `eps` depends on `k` and `shape` only.
    """
    draw_key, new_key = split(as_key(k))
    generator = np.random.Generator(np.random.Philox(key=draw_key.value))
    return generator.standard_normal(tuple(shape)), new_key


def randint(k: Key, high: int, shape: tuple[int, ...]) -> tuple[np.ndarray, Key]:
    """Integers uniform on [0, `high`) of `shape` (int64) drawn from `k`, and the next key.

    Used by `reset_dead_codes` to pick the batch rows that replace dead codes.
    """
    if isinstance(high, bool) or not isinstance(high, (int, np.integer)) or high < 1:
        raise ConfigError(f"high: expected a positive integer, got {high!r}")
    draw_key, new_key = split(as_key(k))
    generator = np.random.Generator(np.random.Philox(key=draw_key.value))
    return generator.integers(0, int(high), size=tuple(shape), dtype=np.int64), new_key
