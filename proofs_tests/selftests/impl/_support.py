"""Shared helpers for the impl tests: devices, example arguments, the float32 tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.spec.architecture import Architecture
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.init import init_params
from vaespec.spec.shapes import shape_of

# CUDA cases exist everywhere and skip where there is no GPU, so a GPU run exercises them.
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]

SMALL = Architecture(input_size=5, latent_size=3, encoder_sizes=(7, 4), decoder_sizes=(6,), activation="tanh")


def contract_args(function: str, arch: Architecture = SMALL, seed: int = 0, batch: int = 4) -> dict:
    """Arguments of contract `function` by name: init params, standard normal arrays, β = 0.7."""
    rng = np.random.default_rng(seed)
    sizes = {"batch": batch, "input": arch.input_size, "latent": arch.latent_size, "output": arch.output_size}
    args = {}
    for arg in FUNCTIONS[function].args:
        if arg.kind == "array":
            args[arg.name] = rng.standard_normal(shape_of(arg.dims, sizes))
        elif arg.kind == "params":
            args[arg.name] = init_params(arch, seed)
        elif arg.kind == "arch":
            args[arg.name] = arch
        elif arg.kind == "convention":
            args[arg.name] = "elbo"
        else:  # the one scalar, β
            args[arg.name] = 0.7
    return args


def float32_tolerance(arch: Architecture) -> float:
    """Bound on |float32 − float64| relative to the largest |float64 value| of a result.

    2**-24 is float32's unit roundoff; a dot product of length n is off by at most about
    n roundings, and to first order the errors of successive layers add, so the sum of
    the fan-ins bounds the forward error in units of roundoff. The factor 64 covers the
    casts of the inputs, the activations, exp in the reparameterisation and the loss
    reductions for the moderate (standard normal, init-scale) inputs these tests use.
    """
    return 64 * 2.0**-24 * sum(fan_in for _, fan_in, _ in arch.dense_layers())
