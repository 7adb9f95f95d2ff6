"""The reference's hand-written VJPs against central finite differences, in float64.

The check, its tolerance (derived, not tuned) and its exact steps are
`vaespec.proofs_tests.selftests.finite_differences` (the one checker of every chapter's VJPs):
⟨vjp(f, x, ȳ), v⟩ ≈ ⟨ȳ, f(x + hv) − f(x − hv)⟩ / 2h along a random direction v over every differentiable input,
within RTOL = 10⁻⁶ of the size of the terms.

**Kinks.** relu and leaky_relu have a kink at 0 and elu a jump in f'' there: a finite
difference straddling the kink errs by O(1) (relu, leaky_relu) or O(h) ≈ 1.5·10⁻⁶
(elu, more than RTOL). The network sweep therefore uses the smooth activations only.
That loses nothing: the backward pass (`mlp.hidden_backward`) is generic in the
activation — it multiplies by `act.derivative(pre)` — so the chain rule is covered by
any activation, and each activation's derivative (kinked ones included, away from
the kink, plus the torch conventions at 0) is checked separately below. This is
simpler and as honest as filtering examples whose pre-activations come near 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.strategies.vae import architectures, cotangents, examples_for, network_examples
from vaespec.reference import ACTIVATION_FUNCTIONS, REFERENCE, ReferenceBackend, init_params, magnitude, vjp
from vaespec.spec.architecture import ACTIVATIONS, ELU_ALPHA, LEAKY_RELU_SLOPE, Architecture
from vaespec.spec.contract import FUNCTIONS, VAE_FUNCTIONS, call

from .finite_differences import KINKED, RTOL, SMOOTH, H, U, direction, elementwise_derivative
from .finite_differences import directional_check as directional_check_at

BACKEND = ReferenceBackend()


def _strategy(function: str):
    """examples_for(function), with the network functions restricted to smooth activations."""
    if function in ("reparameterize", "kl_divergence", "reconstruction_loss"):
        return examples_for(function)
    return architectures(activations=SMOOTH).flatmap(lambda arch: network_examples(arch=arch))


def directional_check(function: str, args, cotangent, seed: int):
    """(fd, ⟨vjp, v⟩, tolerance) for one random direction (`selftests.finite_differences`)."""
    step = direction(args, FUNCTIONS[function].differentiable, seed)
    return directional_check_at(step, lambda p: call(BACKEND, function, p), vjp(function, step.base, cotangent),
                                cotangent, lambda p: magnitude(function, p))


@pytest.mark.parametrize("function", sorted(VAE_FUNCTIONS))  # other chapters: test_reference_vq, …
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    example = data.draw(_strategy(function), label="example")
    args = example.args
    cotangent = data.draw(cotangents(function, call(BACKEND, function, args)), label="cotangent")
    seed = data.draw(st.integers(0, 2**32 - 1), label="direction seed")
    fd, dot, tolerance = directional_check(function, args, cotangent, seed)
    assert abs(fd - dot) <= tolerance, (
        f"{function}: ⟨vjp, v⟩ = {dot!r} but the central difference gives {fd!r}; "
        f"|difference| = {abs(fd - dot):.3e} > tolerance {tolerance:.3e}")


def test_directional_check_detects_a_wrong_gradient(monkeypatch):
    # Negative control: a 1% error in one parameter gradient must fail the same check.
    arch = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(5,), activation="tanh")
    rng = np.random.default_rng(0)
    args = {"arch": arch, "params": init_params(arch, 0), "x": rng.standard_normal((4, 3)),
            "eps": rng.standard_normal((4, 2)), "beta": 0.5, "convention": "elbo"}
    fd, dot, tolerance = directional_check("loss", args, 1.0, seed=7)
    assert abs(fd - dot) <= tolerance
    original = REFERENCE["loss"].vjp

    def wrong(*a, **k):
        out = original(*a, **k)
        out["params"]["decoder_output.bias"] = out["params"]["decoder_output.bias"] * 1.01
        return out

    monkeypatch.setitem(REFERENCE, "loss", dataclasses.replace(REFERENCE["loss"], vjp=wrong))
    fd, dot, tolerance = directional_check("loss", args, 1.0, seed=7)
    assert abs(fd - dot) > tolerance


# ----------------------------------------------------------------------------- activations
GRID = np.linspace(-6.0, 6.0, 241)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_central_differences(name):
    act = ACTIVATION_FUNCTIONS[name]
    # Kinked activations: stay 1e-3 ≫ h away from 0 so no difference straddles the kink.
    y = GRID[np.abs(GRID) > 1e-3] if name in KINKED else GRID
    fd = elementwise_derivative(act.value, y, H * np.maximum(1.0, np.abs(y)))
    # Truncation h²|f'''|/6 with |f'''| ≤ 2 here, rounding u·|f|/h: ≈ 4e-11·(1 + |f|); 1e4 margin.
    tolerance = RTOL * (1.0 + np.abs(act.value(y)))
    error = np.abs(fd - act.derivative(y))
    worst = int(np.argmax(error / tolerance))
    assert np.all(error <= tolerance), f"{name}'({y[worst]!r}) = {act.derivative(y)[worst]!r}, FD gives {fd[worst]!r}"


def test_kink_conventions_follow_torch():
    zero = np.array([0.0, -0.0])
    assert ACTIVATION_FUNCTIONS["relu"].derivative(zero).tolist() == [0.0, 0.0]
    assert ACTIVATION_FUNCTIONS["leaky_relu"].derivative(zero).tolist() == [LEAKY_RELU_SLOPE] * 2 == [0.01] * 2
    assert ACTIVATION_FUNCTIONS["elu"].derivative(zero).tolist() == [ELU_ALPHA] * 2  # C¹: both sides give 1
    assert ACTIVATION_FUNCTIONS["relu"].value(zero).tolist() == [0.0, 0.0]


ULPS = 4 * 2.0**-53  # each formula below takes at most four roundings


@pytest.mark.parametrize("name, y, expected", [
    ("gelu", 1.0, 0.8413447460685429),          # Φ(1)
    ("gelu", -1.0, -0.15865525393145707),       # −(1 − Φ(1))
    ("softplus", 0.0, math.log(2.0)),
    ("softplus", -40.0, math.exp(-40.0)),       # log1p(e⁻⁴⁰) = e⁻⁴⁰ to first order
    ("silu", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
    ("sigmoid", -800.0, 0.0),                   # no overflow warning, no NaN
    ("elu", -1.0, math.exp(-1.0) - 1.0),
    ("tanh", 0.5, math.tanh(0.5)),
    ("leaky_relu", -2.0, -0.02),
    ("relu", -2.0, 0.0),
    ("identity", -2.5, -2.5),
])
def test_activation_values_at_known_points(name, y, expected):
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is correct
        got = float(ACTIVATION_FUNCTIONS[name].value(np.array([y]))[0])
    assert got == pytest.approx(expected, rel=ULPS, abs=0.0), f"{name}({y}) = {got!r}, expected {expected!r}"


def test_activations_match_scipy():
    special = pytest.importorskip("scipy.special")
    y = np.linspace(-30.0, 30.0, 601)
    phi = np.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    expected = {
        "gelu": (y * special.ndtr(y), special.ndtr(y) + y * phi),
        "silu": (y * special.expit(y), special.expit(y) * (1 + y * special.expit(-y))),
        "sigmoid": (special.expit(y), special.expit(y) * special.expit(-y)),
        "softplus": (-special.log_expit(-y), special.expit(y)),
        "tanh": (np.tanh(y), 1.0 / np.cosh(y) ** 2),
        "elu": (np.where(y > 0, y, np.expm1(y)), np.where(y > 0, 1.0, np.exp(y))),
    }
    # Each side is a few correctly-rounded-in-practice operations: relative error ≤ 16u.
    # Formulas of the form 1 ± s with s → ∓1 (1 + erf, 1 − tanh², 1 − σ) lose absolute
    # accuracy u, then multiplied by at most |y|: absolute floor 4u·(1 + |y|).
    rtol, atol = 16 * U, 4 * U * (1.0 + np.abs(y))
    for name, (value, derivative) in expected.items():
        act = ACTIVATION_FUNCTIONS[name]
        for label, got, want in ((name, act.value(y), value), (name + "'", act.derivative(y), derivative)):
            bad = np.abs(got - want) > rtol * np.abs(want) + atol
            assert not bad.any(), f"{label}({y[bad][0]!r}) = {got[bad][0]!r}, scipy gives {want[bad][0]!r}"
