"""Deterministic parameter initialisation from an integer seed.

Part of the spec because it belongs to the parameter layout: the reference and the Torch
implementation both use this one function, so one seed gives one network in both
layers by construction. For each dense layer in
`arch.dense_layers()` order, the kernel `[in, out]` and then the bias `[out]` are drawn
from U(−1/√fan_in, 1/√fan_in) — torch's `nn.Linear` bound — with
`numpy.random.default_rng(seed)`, in float64.
"""

from __future__ import annotations

import math

import numpy as np

from .architecture import Architecture
from .keys import Key, as_key


def init_params(arch: Architecture, seed: int | Key) -> dict[str, np.ndarray]:
    """Float64 parameters for every layer of `arch`, deterministic in `seed`.

    **Arguments**
    - `arch`: the architecture whose layout (`arch.parameter_shapes()`) is filled.
    - `seed`: an integer in [0, 2⁶⁴) or a `Key` (its value is the seed).

    **Returns** a dict from `"<layer>.kernel"` / `"<layer>.bias"` to float64 arrays.
    """
    rng = np.random.default_rng(as_key(seed).value)
    params: dict[str, np.ndarray] = {}
    for name, fan_in, fan_out in arch.dense_layers():
        bound = 1.0 / math.sqrt(fan_in)
        params[f"{name}.kernel"] = rng.uniform(-bound, bound, (fan_in, fan_out))
        params[f"{name}.bias"] = rng.uniform(-bound, bound, (fan_out,))
    return params
