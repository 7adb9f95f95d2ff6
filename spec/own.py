"""A backend's own network: an architecture vaespec does not implement, declared by the backend (issue 15).

A port whose encoder and decoder are not vaespec's dense MLP (`Architecture`) or convolutional network
(`ConvArchitecture`) — a user's torch VAE with a GRU, LayerNorm, a residual block — declares examples of
its own network as `OwnArchitecture`s (its backend's `own_architectures`, `vaespec.proofs_tests.laws.declared`).
The structural laws (forward = decode ∘ reparameterize ∘ encode, loss = reconstruction + β·KL, batch
permutation and splitting) then run on them with x [batch, *input_shape], ε [batch, latent_size] and
parameters from the network's own initialisation at a drawn seed; a `*_matches_reference` law of a network
function is `n/a` for them: the reference does not implement the network.

The contract sees only sizes and a parameter layout: `input_shape` (the event of x; x̂ has the same shape),
`latent_size`, and `parameter_shapes()` (the backend's own names, e.g. a torch module's state-dict names,
each with its shape). `init_params(seed)` draws parameters of that layout, deterministic in `seed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, DTypeError, ShapeError, describe

Init = Callable[[int], Mapping[str, object]]


@dataclass(frozen=True)
class OwnArchitecture:
    """One example of a backend's own network (see the module doc).

    **Fields**
    - `name`: the network's label, quoted in n/a messages ("the reference does not implement <name>").
    - `input_shape`: the event of x (x [batch, *input_shape]); x̂ = decode(z) has the same shape.
    - `latent_size`: the width L of μ, log σ², ε and z [batch, L].
    - `layout`: `((parameter name, shape), …)`, the network's whole parameter layout in its own names.
    - `init`: `init(seed) -> {name: array}`, parameters of `layout` (not compared, not hashed).
    - `rounding_chain`: `(n, n_ops)` of the network's longest rounding chain (encoder then decoder) as its
      author states it: the tolerance of the laws comparing two of its evaluations (docs/tolerances.md).
    """

    name: str
    input_shape: tuple[int, ...]
    latent_size: int
    layout: tuple[tuple[str, tuple[int, ...]], ...]
    init: Init = field(compare=False, hash=False, repr=False)
    rounding_chain: tuple[int, int] = (64, 16)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"name: expected the network's non-empty label, got {self.name!r}")
        shape = self.input_shape
        if not isinstance(shape, tuple) or not shape or not all(isinstance(s, int) and s >= 1 for s in shape):
            raise ShapeError(f"input_shape: expected the event of x as a non-empty tuple of positive ints, got "
                             f"{shape!r}")
        if isinstance(self.latent_size, bool) or not isinstance(self.latent_size, int) or self.latent_size < 1:
            raise ConfigError(f"latent_size: expected a positive int, got {self.latent_size!r}")
        if not self.layout or not all(isinstance(n, str) and isinstance(s, tuple) for n, s in self.layout):
            raise ConfigError(f"layout: expected ((name, shape), …) with at least one parameter, got "
                              f"{str(self.layout)[:80]}")
        if not callable(self.init):
            raise DTypeError(f"init: expected a function seed -> {{name: array}}, got {describe(self.init)}")
        n = self.rounding_chain
        if not (isinstance(n, tuple) and len(n) == 2 and all(isinstance(v, int) and v >= 1 for v in n)):
            raise ConfigError(f"rounding_chain: expected (n, n_ops), two positive ints, got {n!r}")

    @property
    def input_size(self) -> int:
        """The number of entries of one example x: the product of `input_shape`."""
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        """x̂ has x's shape, so its size is `input_size`."""
        return self.input_size

    def parameter_shapes(self, layout: str = "all") -> dict[str, tuple[int, ...]]:
        """`{name: shape}` of the whole layout, for any part: vaespec does not know which of an own network's
        parameters the encoder reads, so every network function is handed them all."""
        return dict(self.layout)

    def init_params(self, seed: int) -> dict[str, np.ndarray]:
        """`init(seed)` as float64 arrays, checked against `layout` (a ShapeError names a differing parameter)."""
        raw = self.init(seed)
        if not isinstance(raw, Mapping):
            raise DTypeError(f"init: {self.name}'s init({seed}) returned {describe(raw)}, expected a mapping")
        expected = self.parameter_shapes()
        if set(raw) != set(expected):
            raise ShapeError(f"init: {self.name}'s init({seed}) has names differing from its layout: missing "
                             f"{sorted(set(expected) - set(raw))}, unexpected {sorted(set(raw) - set(expected))}")
        params = {}
        for key, shape in expected.items():
            value = np.asarray(raw[key], dtype=np.float64)
            if value.shape != shape:
                raise ShapeError(f"init: {self.name}'s {key} has shape {value.shape}, its layout says {shape}")
            params[key] = value
        return params
