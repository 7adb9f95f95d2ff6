"""Activations in float64 with their derivatives and magnitude bounds.

Each entry gives `value(y)`, `derivative(y)` (the derivative torch uses at kinks:
relu'(0) = 0, leaky_relu'(0) = 0.01), `magnitude(m)`: an upper bound on |act(y)| given
|y| ≤ m, and `curvature`: an upper bound on |act''| over the reals (0 for piecewise-linear
activations). The last two feed the tolerance policy: a backend evaluates act' at a
pre-activation that errs by δ, so its act' errs by up to curvature · δ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vaespec.spec.architecture import ELU_ALPHA, LEAKY_RELU_SLOPE, check_activation

_erf = np.frompyfunc(math.erf, 1, 1)
_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def erf(y: np.ndarray) -> np.ndarray:
    """Elementwise erf via the C library's correctly-rounded-in-practice `math.erf`."""
    return _erf(y).astype(np.float64)


def sigmoid(y: np.ndarray) -> np.ndarray:
    """σ(y) = 1/(1 + exp(−y)), evaluated without overflow for either sign."""
    e = np.exp(-np.abs(y))
    return np.where(y >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _gelu(y):
    return 0.5 * y * (1.0 + erf(y / _SQRT2))


def _gelu_derivative(y):
    return 0.5 * (1.0 + erf(y / _SQRT2)) + y * _INV_SQRT_2PI * np.exp(-0.5 * y * y)


def _silu_derivative(y):
    s = sigmoid(y)
    return s * (1.0 + y * (1.0 - s))


@dataclass(frozen=True)
class Activation:
    name: str
    value: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    magnitude: Callable[[np.ndarray], np.ndarray]
    curvature: float = 0.0


def _same(m):
    return m


ACTIVATION_FUNCTIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", lambda y: np.maximum(y, 0.0), lambda y: (y > 0).astype(np.float64), _same),
        Activation("gelu", _gelu, _gelu_derivative, _same, 2 * _INV_SQRT_2PI),
        Activation("silu", lambda y: y * sigmoid(y), _silu_derivative, _same, 0.5),
        Activation("tanh", np.tanh, lambda y: 1.0 - np.tanh(y) ** 2, _same, 4 / (3 * math.sqrt(3))),
        Activation("sigmoid", sigmoid, lambda y: sigmoid(y) * (1.0 - sigmoid(y)), np.ones_like, math.sqrt(3) / 18),
        Activation("elu", lambda y: np.where(y > 0, y, ELU_ALPHA * np.expm1(np.minimum(y, 0.0))),
                   lambda y: np.where(y > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(y, 0.0))), _same, ELU_ALPHA),
        Activation("leaky_relu", lambda y: np.where(y > 0, y, LEAKY_RELU_SLOPE * y),
                   lambda y: np.where(y > 0, 1.0, LEAKY_RELU_SLOPE), _same),
        Activation("softplus", lambda y: np.maximum(y, 0.0) + np.log1p(np.exp(-np.abs(y))), sigmoid,
                   lambda m: m + math.log(2.0), 0.25),
        Activation("identity", lambda y: y, np.ones_like, _same),
    )
}


def get_activation(name: str) -> Activation:
    """The activation named `name` (see `vaespec.spec.architecture.ACTIVATIONS`)."""
    return ACTIVATION_FUNCTIONS[check_activation(name)]
