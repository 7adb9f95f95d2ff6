"""Deterministic parameter initialisation from an integer seed.

Part of the spec because it belongs to the parameter layout: the reference and the Torch
implementation both use this one function, so one seed gives one network in both
layers by construction. For each dense layer in
`arch.dense_layers()` order, the kernel `[in, out]` and then the bias `[out]` are drawn
from U(−1/√fan_in, 1/√fan_in) — torch's `nn.Linear` bound — with
`numpy.random.default_rng(seed)`, in float64. A `ConvArchitecture` (`vaespec.spec.conv`) or a
`ConvVQArchitecture` (`vaespec.spec.conv_vq`) is filled in `arch.parameter_shapes()` order the same way, a
kernel `[kh, kw, in, out]`'s fan-in being `kh·kw·in` (torch's Conv2d bound; for a ConvTranspose2d torch's own
default reads the kernel's other channel axis, vaespec keeps this one rule).

The VQ-VAE's codebook is not a dense layer; `init_codebook` draws it from a key
(`vaespec.spec.keys.normal`), Edifice's N(0, 1) with default key 42.
"""

from __future__ import annotations

import math

import numpy as np

from .architecture import Architecture, VQArchitecture
from .contract import validate_args
from .conv import ConvArchitecture
from .conv_vq import ConvVQArchitecture
from .errors import ConfigError, DTypeError, describe
from .keys import MAX_DRAW, Key, as_key, normal
from .vq import DEFAULT_CODEBOOK_SEED


def init_params(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture, seed: int | Key
                ) -> dict[str, np.ndarray]:
    """Float64 parameters for every layer of `arch`, deterministic in `seed`.

    **Arguments**
    - `arch`: the architecture whose layout (`arch.parameter_shapes()`) is filled.
    - `seed`: an integer in [0, 2⁶⁴) or a `Key` (its value is the seed).

    **Returns** a dict from `"<layer>.kernel"` / `"<layer>.bias"` to float64 arrays.
    """
    if not isinstance(arch, (Architecture, VQArchitecture, ConvArchitecture, ConvVQArchitecture)):
        raise DTypeError("arch: expected a vaespec.spec.architecture.Architecture or VQArchitecture, a "
                         "vaespec.spec.conv.ConvArchitecture or a vaespec.spec.conv_vq.ConvVQArchitecture, got "
                         f"{describe(arch)}")
    rng = np.random.default_rng(as_key(seed).value)
    params: dict[str, np.ndarray] = {}
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        shapes = arch.parameter_shapes()
        for name, shape in shapes.items():
            fan_in = math.prod(shapes[name.replace(".bias", ".kernel")][:-1])
            params[name] = rng.uniform(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), shape)
        return params
    for name, fan_in, fan_out in arch.dense_layers():
        bound = 1.0 / math.sqrt(fan_in)
        params[f"{name}.kernel"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        params[f"{name}.bias"] = rng.uniform(-bound, bound, (fan_out,))
    return params


def init_codebook(num_embeddings: int, embedding_dim: int, key: int | Key = DEFAULT_CODEBOOK_SEED) -> np.ndarray:
    """The VQ-VAE codebook `C = normal(key, (K, D))[0]` ~ N(0, 1) in float64 (Edifice: key 42).

    **Arguments**
    - `num_embeddings`: K ≥ 1, the number of codebook rows.
    - `embedding_dim`: D ≥ 1, the width of each row.
    - `key`: a `Key` or an integer seed in [0, 2⁶⁴) (default 42).

    **Returns** a float64 array [K, D]; the same key gives the same codebook everywhere.
    Raises ConfigError (or DTypeError for a non-integer key) naming the bad argument.
    """
    checked = validate_args("init_codebook", {"num_embeddings": num_embeddings, "embedding_dim": embedding_dim,
                                              "key": key})
    if checked["num_embeddings"] * checked["embedding_dim"] > MAX_DRAW:
        raise ConfigError(f"num_embeddings, embedding_dim: expected K·D ≤ {MAX_DRAW} values, got "
                          f"{checked['num_embeddings']} × {checked['embedding_dim']}")
    return normal(checked["key"], (checked["num_embeddings"], checked["embedding_dim"]))[0]
