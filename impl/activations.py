"""Activations in torch, exactly those named in `vaespec.spec.architecture.ACTIVATIONS`.

Each is an elementwise `Tensor -> Tensor` function, differentiable by autograd, for any
float dtype on any device. Values agree with the spec formulas to rounding, and the
derivatives torch takes at kinks are those the spec states: relu'(0) = 0,
leaky_relu'(0) = 0.01, and softplus'(0) = σ(0) = ½ (see `softplus`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vaespec.spec.architecture import ACTIVATIONS, ELU_ALPHA, LEAKY_RELU_SLOPE
from vaespec.spec.errors import ConfigError


def gelu(x: Tensor) -> Tensor:
    """x · Φ(x) = x/2 · (1 + erf(x/√2)): the exact form, not the tanh approximation."""
    return F.gelu(x, approximate="none")


def elu(x: Tensor) -> Tensor:
    """x for x > 0, else α(exp(x) − 1) with α = `ELU_ALPHA` (1)."""
    return F.elu(x, alpha=ELU_ALPHA)


def leaky_relu(x: Tensor) -> Tensor:
    """x for x > 0, else 0.01 · x; derivative 0.01 at x ≤ 0."""
    return F.leaky_relu(x, negative_slope=LEAKY_RELU_SLOPE)


def softplus(x: Tensor) -> Tensor:
    """log(1 + exp(x)) computed as max(x, 0) + log1p(exp(−|x|)), the spec's formula.

    Not `F.softplus`: with its default threshold it returns x itself for x > 20, which
    differs from the formula in the last bits. Not `clamp_min(x, 0) + log1p(exp(-x.abs()))`
    either: its value is right, but torch's subgradients at 0 (clamp_min' = 1, |x|' = 0)
    give softplus'(0) = 1 instead of σ(0) = ½. Writing both kinks with the same test
    `x > 0` makes them cancel: at 0 the derivative is 0 + σ(0) · 1 = ½, and elsewhere it is
    σ(x). Both `where` branches are finite, so no NaN leaks into the backward pass.
    """
    positive = x > 0
    return torch.where(positive, x, 0.0) + torch.log1p(torch.exp(torch.where(positive, -x, x)))


def identity(x: Tensor) -> Tensor:
    """x."""
    return x


# Module-level functions (not lambdas) so modules holding them can be pickled.
ACTIVATION_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu,
    "gelu": gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": elu,
    "leaky_relu": leaky_relu,
    "softplus": softplus,
    "identity": identity,
}
assert ACTIVATION_FUNCTIONS.keys() == ACTIVATIONS.keys(), "impl activations must match the spec's list"


def get_activation(name: str) -> Callable[[Tensor], Tensor]:
    """The activation function named `name`.

    **Arguments**
    - `name`: one of `vaespec.spec.architecture.ACTIVATIONS`.

    **Returns** an elementwise `Tensor -> Tensor` function.

    **Raises** `ConfigError` naming the valid names if `name` is unknown.
    """
    if not isinstance(name, str) or name not in ACTIVATION_FUNCTIONS:
        raise ConfigError(f"activation: expected one of {sorted(ACTIVATION_FUNCTIONS)}, got {name!r}")
    return ACTIVATION_FUNCTIONS[name]
