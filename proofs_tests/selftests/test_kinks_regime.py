"""The `kinks` regime (`strategies.vae.regime_params`, `pin_kinks`, `strategies.kinks`): its exact zeros stay at their
kinks, and a pre-activation no dtype computes exactly is kept off them by the policy's bound, so a conforming
backend in a narrow dtype is never asked for the float64 side of a kink it cannot see.

The case below is the one that exposed it (`forward_gradient_matches_reference`, Torch bfloat16, 18.7×): in the
decoder, y₃ = y₂ + y₄ (kernel columns (−1, 0), (−1, 1), (0, 1)) and the next layer's unit 6 reads them with
weights (1, −1, 1)·¼ and two equal columns with (−1, 1)·¼, so its pre-activation is exactly 0 in real arithmetic
and in float64; leaky_relu's 0.01·y and the rounded σ = e^{ℓ/2} leave bfloat16 a few ulps off 0, on the side
where leaky_relu′ = 1 instead of 0.01.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from vaespec.proofs_tests.laws.compare import LawViolation
from vaespec.proofs_tests.laws.differential import check_gradient
from vaespec.proofs_tests.strategies.kinks import clear_inexact_kinks, margin
from vaespec.proofs_tests.strategies.vae import network_examples
from vaespec.proofs_tests.strategies.vq import vq_examples
from vaespec.reference import network
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture

ARCH = Architecture(input_size=4, latent_size=2, encoder_sizes=(8,), decoder_sizes=(6, 8), activation="leaky_relu")
# name -> (scale, integer entries): every parameter an integer over a power of two (the regime's dyadic weights)
PARAMS = {
    "encoder_dense_0.kernel": (4, [[1, 0, -1, -1, -1, 0, 1, -1], [1, -1, -1, -1, -1, 0, -1, 1],
                                   [0, 1, 0, 0, 1, -1, 1, 1], [0, -1, 1, -1, 0, -1, -1, 1]]),
    "encoder_dense_0.bias": (4, [-2, -2, 4, 0, 1, -1, -3, 1]),
    "mu.kernel": (8, [[1, -1], [-1, -1], [0, -1], [0, -1], [0, 1], [0, 0], [1, -1], [0, 1]]),
    "mu.bias": (8, [0, 0]),
    "log_var.kernel": (8, [[-1, 1], [0, 1], [1, -1], [1, 0], [0, -1], [0, 0], [-1, 1], [1, 0]]),
    "log_var.bias": (8, [-1, 0]),
    "decoder_dense_0.kernel": (2, [[1, 1, -1, -1, 0, 1], [1, 1, 0, 1, 1, 1]]),
    "decoder_dense_0.bias": (2, [0] * 6),
    "decoder_dense_1.kernel": (4, [[0, 0, 1, 0, 0, 0, -1, -1], [1, 1, -1, -1, -1, -1, 0, -1],
                                   [1, 0, -1, 0, 1, 0, 1, -1], [-1, -1, -1, 1, -1, 1, -1, -1],
                                   [0, 0, 1, 1, 1, 1, 1, -1], [0, -1, -1, -1, 0, 0, 1, -1]]),
    "decoder_dense_1.bias": (4, [0, 0, 0, -1, 0, 0, 0, 0]),
    "decoder_output.kernel": (8, [[1, 0, -1, 0], [1, 0, 0, 0], [1, 0, 1, 1], [-1, 1, -1, -1], [-1, 1, 1, -1],
                                  [1, 0, 1, 1], [0, -1, -1, -1], [-1, 0, 0, -1]]),
    "decoder_output.bias": (8, [0] * 4),
}


def _case() -> dict:
    params = {name: np.array(entries, dtype=np.float64) / scale for name, (scale, entries) in PARAMS.items()}
    x = np.array([[1.0, 1.0, 1.0, -2.0], [1.0, 1.0, 1.0, 1.0]])
    return {"arch": ARCH, "params": params, "x": x, "eps": np.array([[-1.0, -1.0], [1.0, -1.0]])}


def _decoder_preactivations(args) -> list[np.ndarray]:
    params, act = args["params"], network.decoder(ARCH).activation
    mu, log_var = network.apply(network.encoder(ARCH), params, args["x"])
    z = mu + np.exp(0.5 * log_var) * args["eps"]
    _, tape = network.hidden_forward(params, network.decoder(ARCH).hidden, act, z)
    return tape.preactivations


def _torch(dtype: str):
    torch = pytest.importorskip("torch")
    from vaespec.impl.backend import TorchBackend

    return TorchBackend(device="cpu", dtype=getattr(torch, dtype))


def test_the_cancellation_is_a_false_alarm_before_and_cleared_after():
    args = _case()
    assert _decoder_preactivations(args)[1][1, 6] == 0.0  # exactly at leaky_relu's kink, in float64
    cotangent = np.ones((2, 4))
    with pytest.raises(LawViolation, match="decoder_dense_1.bias"):
        check_gradient(_torch("bfloat16"), "forward", args, cotangent)
    cleared = copy.deepcopy(args)
    moves = clear_inexact_kinks(ARCH, cleared["params"], x=cleared["x"], eps=cleared["eps"])
    assert ("decoder_dense_1", 6) in {(name, unit) for name, unit, _ in moves}
    assert all(k.startswith("decoder") for k, _, _ in moves)  # the encoder's first layer (exact) is untouched
    for dtype in ("bfloat16", "float32", "float64"):
        assert check_gradient(_torch(dtype), "forward", cleared, cotangent) <= 1.0
    # the pinned layer still meets every kink at row 0
    pre = cleared["x"] @ cleared["params"]["encoder_dense_0.kernel"] + cleared["params"]["encoder_dense_0.bias"]
    assert np.all(pre[0] == 0.0)


def test_margin_is_the_policys_bound():
    from vaespec.spec.tolerances import SAFETY, UNIT_ROUNDOFF, gamma

    assert margin(7) == pytest.approx(SAFETY * gamma(7, UNIT_ROUNDOFF["bfloat16"]), rel=1e-3)
    assert 0 < margin(1) < margin(8) < 0.2


KINKS = settings(max_examples=12, derandomize=True, database=None, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _pinned_zeros(arch, params, x) -> np.ndarray:
    """The first encoder layer's pre-activations at row 0 (pinned to 0 for a dense network)."""
    name = arch.encoder_layers()[0][0]
    return x[0] @ params[f"{name}.kernel"] + params[f"{name}.bias"]


@KINKS
@given(example=network_examples(fields=("x", "eps")).filter(lambda e: e.extra["regime"] == "kinks"))
def test_kinks_examples_are_cleared_and_keep_their_pins(example):
    """A drawn kinks example needs no further move (the walk is at its fixed point), and a dense one's first
    layer still meets every kink at row 0."""
    a = example.args
    params = copy.deepcopy(a["params"])
    assert clear_inexact_kinks(a["arch"], params, x=a["x"], eps=a["eps"]) == []
    if not isinstance(a["arch"], ConvArchitecture) and a["arch"].encoder_layers():
        assert np.all(_pinned_zeros(a["arch"], a["params"], a["x"]) == 0.0)


@KINKS
@given(example=vq_examples(fields=("arch", "params", "codebook", "x")).filter(lambda e: e.extra["regime"] == "kinks"))
def test_vq_kinks_examples_are_cleared(example):
    a = example.args
    assert isinstance(a["arch"], (VQArchitecture, ConvVQArchitecture))
    params = copy.deepcopy(a["params"])
    assert clear_inexact_kinks(a["arch"], params, x=a["x"], codebook=a["codebook"]) == []
