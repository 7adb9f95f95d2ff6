"""Torch activations against the spec formulas, in float64, values and derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaespec.impl.activations import ACTIVATION_FUNCTIONS, get_activation
from vaespec.spec.architecture import ACTIVATIONS
from vaespec.spec.errors import ConfigError

POINTS = np.array([-30.0, -21.0, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 21.0, 30.0])


def _sigmoid(y):
    return 1.0 / (1.0 + math.exp(-y))


# The spec's formulas (vaespec.spec.architecture.ACTIVATIONS), one point at a time, in float64.
FORMULAS = {
    "relu": lambda y: max(y, 0.0),
    "gelu": lambda y: y / 2 * (1 + math.erf(y / math.sqrt(2))),
    "silu": lambda y: y * _sigmoid(y),
    "tanh": math.tanh,
    "sigmoid": _sigmoid,
    "elu": lambda y: y if y > 0 else math.expm1(y),
    "leaky_relu": lambda y: y if y > 0 else 0.01 * y,
    "softplus": lambda y: max(y, 0.0) + math.log1p(math.exp(-abs(y))),
    "identity": lambda y: y,
}


def test_exactly_the_spec_activations():
    assert set(ACTIVATION_FUNCTIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_values_match_the_formula(name, device):
    got = get_activation(name)(torch.tensor(POINTS, dtype=torch.float64, device=device)).cpu().numpy()
    expected = np.array([FORMULAS[name](y) for y in POINTS])
    np.testing.assert_allclose(got, expected, rtol=4 * 2.0**-52, atol=1e-300)


def test_softplus_follows_the_formula_beyond_torchs_threshold():
    # F.softplus returns x itself above 20; the spec formula adds log1p(exp(-x)) ≈ 2e-9 at 20
    x = torch.tensor([20.5], dtype=torch.float64)
    assert get_activation("softplus")(x).item() == 20.5 + math.log1p(math.exp(-20.5)) != 20.5


@pytest.mark.parametrize("name, point, slope", [
    ("relu", 0.0, 0.0),
    ("leaky_relu", 0.0, 0.01),
    ("elu", 0.0, 1.0),
    ("softplus", 0.0, 0.5),  # σ(0): the where-form keeps torch's subgradients from giving 1
    ("softplus", -40.0, _sigmoid(-40.0)),
    ("softplus", 40.0, _sigmoid(40.0)),
    ("gelu", 0.0, 0.5),
    ("identity", 3.0, 1.0),
])
def test_derivatives_at_kinks_and_extremes(name, point, slope, device):
    x = torch.tensor([point], dtype=torch.float64, device=device, requires_grad=True)
    (grad,) = torch.autograd.grad(get_activation(name)(x).sum(), x)
    assert math.isclose(grad.item(), slope, rel_tol=1e-15, abs_tol=1e-300)


def test_unknown_activation_names_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        get_activation("swish")
    assert "swish" in str(info.value) and "gelu" in str(info.value)
