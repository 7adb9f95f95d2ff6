"""Deterministic parameter initialisation from an integer seed."""

from __future__ import annotations

import math

import numpy as np

from vaespec.spec.architecture import Architecture


def init_params(arch: Architecture, seed: int) -> dict[str, np.ndarray]:
    """Parameters for `arch`, deterministic in `seed` (float64).

    For each dense layer in `arch.dense_layers()` order, kernel [in, out] then bias [out]
    are drawn from U(−1/√fan_in, 1/√fan_in) (torch's nn.Linear default bound) with
    `numpy.random.default_rng(seed)`. `vaespec.impl.init.init_params` follows the same
    scheme, so the same seed gives the same network in both layers.
    """
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, fan_in, fan_out in arch.dense_layers():
        bound = 1.0 / math.sqrt(fan_in)
        params[f"{name}.kernel"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        params[f"{name}.bias"] = rng.uniform(-bound, bound, (fan_out,))
    return params
