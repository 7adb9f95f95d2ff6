"""The VQ chapter's magnitudes bound what they scale: M ≥ |f| for every float output and
M̄ ≥ |∂| for every gradient, at the reference's own choices and at arbitrary given ones.
A magnitude below the value would make a tolerance tighter than roundoff allows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaespec.proofs_tests.laws.checking_vq import reference
from vaespec.proofs_tests.laws.compare import leaves
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.proofs_tests.strategies import vq as strategies_vq
from vaespec.reference import magnitude, vjp, vjp_magnitude
from vaespec.spec.chains import network_positions
from vaespec.spec.contract import FUNCTIONS

# Exact functions (draws, copies, counts) carry no magnitude the policy multiplies.
SCALED = sorted(f for f, spec in FUNCTIONS.items()
                if spec.chapter == "vq" and f not in ("init_codebook", "reset_dead_codes", "codebook_health"))
CHOOSING = {"quantize", "codebook_loss", "commitment_loss", "vq_forward", "vq_loss", "ema_update"}


def _draw(function, data):
    example = data.draw(strategies_vq.vq_examples())
    args = {a.name: example.args[a.name] for a in FUNCTIONS[function].args}
    indices = None
    if function in CHOOSING and data.draw(st.booleans()):  # arbitrary choices, as a backend's near-tie flips give
        indices = example.args["indices"] if "z_e" in args else None
        if function in ("vq_forward", "vq_loss"):  # one code per vector: [batch, *positions] (a conv VQ-VAE's H′, W′)
            shape = (args["x"].shape[0], *network_positions(args["arch"]))
            count, codes = int(np.prod(shape)), args["codebook"].shape[0]
            indices = np.array(data.draw(st.lists(st.integers(0, codes - 1), min_size=count, max_size=count)),
                               dtype=np.int64).reshape(shape)
    return args, indices


def _with(args, indices):
    return args if indices is None else {**args, "indices": indices}


def _float_outputs(function, value):
    """The float outputs of `function`'s result (indices, steps and keys are exact: no magnitude)."""
    outputs = FUNCTIONS[function].outputs
    values = value if len(outputs) > 1 else (value,)
    return [v for o, v in zip(outputs, values) if o.kind == "float"]


@pytest.mark.parametrize("function", SCALED)
@given(data=st.data())
def test_magnitude_bounds_value(function, data):
    args, indices = _draw(function, data)
    values = _float_outputs(function, reference(function, args, indices))
    mags = _float_outputs(function, magnitude(function, _with(args, indices)))
    for i, (value, mag) in enumerate(zip(values, mags, strict=True)):
        assert np.all(mag >= np.abs(value) * (1 - 1e-12)), (function, i, value, mag)


@pytest.mark.parametrize("function", sorted(f for f in SCALED if FUNCTIONS[f].differentiable))
@given(data=st.data())
def test_vjp_magnitude_bounds_gradient(function, data):
    args, indices = _draw(function, data)
    output = np.asarray(_float_outputs(function, reference(function, args, indices))[0])
    cotangent = data.draw(strategies.cotangents(function, output))
    grads = dict(leaves(vjp(function, _with(args, indices), cotangent)))
    mags = dict(leaves(vjp_magnitude(function, _with(args, indices), cotangent)))
    assert grads.keys() <= mags.keys(), (function, sorted(grads), sorted(mags))
    for path, grad in grads.items():
        assert np.all(mags[path] >= np.abs(grad) * (1 - 1e-12)), (function, path, grad, mags[path])
