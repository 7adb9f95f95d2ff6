"""Dense stacks in float64: the forward pass, its hand-written backward, and both on magnitudes.

A layer is `y = x · W + b` with `W` of shape [in, out]; its backward pass is
`W̄ = xᵀ · ȳ`, `b̄ = Σ_batch ȳ`, `x̄ = ȳ · Wᵀ`, and through an activation
`ȳ_pre = ȳ_post ⊙ act′(y_pre)`. A `Stack` is hidden layers (each followed by the
activation) topped by linear heads that all read the last hidden layer: the VAE's
encoder (heads μ and log σ²), the VQ-VAE's encoder (z_e) and the decoder (x̂). Every
network function of every chapter is built from `apply`, `backward`, `magnitude` and
`magnitude_backward` on these stacks.

On magnitudes (the tolerance policy's M, `vaespec.spec.tolerances`): a layer maps M to
`M · |W| + |b|` and an activation to its `Activation.magnitude` bound; the backward pass
runs on `|W|ᵀ` and `|act′(pre)| + curvature · M_pre` (act′ is evaluated at a
pre-activation that errs by γ·M_pre), and weight gradients `W̄ = hᵀ · ȳ` use the forward
magnitude of h (they err by δhᵀ · ȳ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture

from .activations import Activation, get_activation
from .conv import ConvStack


@dataclass
class Tape:
    """What the backward pass needs: each layer's input and pre-activation."""

    inputs: list[np.ndarray]
    preactivations: list[np.ndarray]


@dataclass(frozen=True)
class Stack:
    """Hidden layers `hidden` (by parameter name), then the linear `heads`, with one activation."""

    hidden: tuple[str, ...]
    heads: tuple[str, ...]
    activation: Activation


def encoder(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture) -> Stack | ConvStack:
    """The encoder of an `Architecture` (heads mu, log_var) or a `VQArchitecture` (head encoder_to_embedding);
    a `ConvArchitecture`'s is a `vaespec.reference.conv.ConvStack` (convolutions, then the heads), and so is a
    `ConvVQArchitecture`'s (convolutions, the 1×1 one to the embedding, z_e channels-last)."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        return ConvStack(arch, "encoder")
    return Stack(tuple(n for n, _, _ in arch.encoder_layers()), tuple(arch.HEADS), get_activation(arch.activation))


def decoder(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture) -> Stack | ConvStack:
    """The decoder: hidden layers, then the linear output head (no output activation); a `ConvArchitecture`'s
    is a `ConvStack` (the dense layer, then the transposed convolutions), a `ConvVQArchitecture`'s too (z_q
    channels-first again, the 1×1 convolution, the transposed convolutions)."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        return ConvStack(arch, "decoder")
    return Stack(tuple(n for n, _, _ in arch.decoder_layers()), ("decoder_output",), get_activation(arch.activation))


# ----------------------------------------------------------------------------- one layer
def dense(params: Mapping[str, np.ndarray], name: str, x: np.ndarray) -> np.ndarray:
    """y = x · W + b for the layer `name`."""
    return x @ params[f"{name}.kernel"] + params[f"{name}.bias"]


def dense_backward(params: Mapping[str, np.ndarray], name: str, x: np.ndarray, dy: np.ndarray,
                   grads: dict) -> np.ndarray:
    """Accumulate W̄ = xᵀ·ȳ, b̄ = Σ ȳ into `grads`; return x̄ = ȳ·Wᵀ."""
    grads[f"{name}.kernel"] = x.T @ dy
    grads[f"{name}.bias"] = dy.sum(axis=0)
    return dy @ params[f"{name}.kernel"].T


def dense_magnitude(params: Mapping[str, np.ndarray], name: str, m: np.ndarray) -> np.ndarray:
    """M · |W| + |b|."""
    return m @ np.abs(params[f"{name}.kernel"]) + np.abs(params[f"{name}.bias"])


def hidden_forward(params: Mapping[str, np.ndarray], names: Sequence[str], act: Activation,
                   x: np.ndarray) -> tuple[np.ndarray, Tape]:
    """h = act(…act(x·W₀ + b₀)…) through the layers `names`, recording a tape."""
    tape = Tape([], [])
    h = x
    for name in names:
        tape.inputs.append(h)
        pre = dense(params, name, h)
        tape.preactivations.append(pre)
        h = act.value(pre)
    return h, tape


def hidden_backward(params: Mapping[str, np.ndarray], names: Sequence[str], act: Activation, tape: Tape,
                    dh: np.ndarray, grads: dict) -> np.ndarray:
    """Backward pass of `hidden_forward`: fills `grads`, returns x̄."""
    for name, x, pre in reversed(list(zip(names, tape.inputs, tape.preactivations))):
        dh = dense_backward(params, name, x, dh * act.derivative(pre), grads)
    return dh


def hidden_magnitude(params: Mapping[str, np.ndarray], names: Sequence[str], act: Activation,
                     m: np.ndarray) -> np.ndarray:
    """|W|·m + |b| through each layer, then the activation's magnitude bound."""
    for name in names:
        m = act.magnitude(dense_magnitude(params, name, m))
    return m


# ----------------------------------------------------------------------------- stacks
def apply(stack: Stack | ConvStack, params: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, ...]:
    """The heads' outputs `h·W_head + b_head`, h the hidden stack of x."""
    if isinstance(stack, ConvStack):
        return stack.apply(params, x)
    h, _ = hidden_forward(params, stack.hidden, stack.activation, x)
    return tuple(dense(params, head, h) for head in stack.heads)


def backward(stack: Stack | ConvStack, params: Mapping[str, np.ndarray], x: np.ndarray,
             d_heads: Sequence[np.ndarray], grads: dict) -> np.ndarray:
    """The VJP of `apply` at x for the heads' cotangents `d_heads` (one per head): fills `grads`, returns x̄.

    The forward pass is recomputed for its tape; the heads' input gradients add up at h."""
    if isinstance(stack, ConvStack):
        return stack.backward(params, x, d_heads, grads)
    h, tape = hidden_forward(params, stack.hidden, stack.activation, x)
    dh = dense_backward(params, stack.heads[0], h, d_heads[0], grads)
    for head, d in zip(stack.heads[1:], d_heads[1:]):
        dh = dh + dense_backward(params, head, h, d, grads)
    return hidden_backward(params, stack.hidden, stack.activation, tape, dh, grads)


def magnitude(stack: Stack | ConvStack, params: Mapping[str, np.ndarray], m_x: np.ndarray
              ) -> tuple[np.ndarray, ...]:
    """The heads' magnitudes for an input of magnitude `m_x` (e.g. |x|)."""
    if isinstance(stack, ConvStack):
        return stack.magnitude(params, m_x)
    m_h = hidden_magnitude(params, stack.hidden, stack.activation, m_x)
    return tuple(dense_magnitude(params, head, m_h) for head in stack.heads)


def magnitude_backward(stack: Stack | ConvStack, params: Mapping[str, np.ndarray], x: np.ndarray, m_x: np.ndarray,
                       d_heads: Sequence[np.ndarray], grads: dict) -> np.ndarray:
    """`backward` on magnitudes (the module docstring's rules) at x, whose own magnitude is `m_x`: fills `grads`
    with the weight gradients' magnitudes, returns x̄'s."""
    if isinstance(stack, ConvStack):
        return stack.magnitude_backward(params, x, m_x, d_heads, grads)
    act = stack.activation
    layers, h, m = [], x, m_x  # per hidden layer: (input magnitude, pre-activation, its magnitude)
    for name in stack.hidden:
        pre, m_pre = dense(params, name, h), dense_magnitude(params, name, m)
        layers.append((m, pre, m_pre))
        h, m = act.value(pre), act.magnitude(m_pre)
    dh = _magnitude_head(params, stack.heads[0], m, d_heads[0], grads)
    for head, d in zip(stack.heads[1:], d_heads[1:]):
        dh = dh + _magnitude_head(params, head, m, d, grads)
    for name, (m_in, pre, m_pre) in reversed(list(zip(stack.hidden, layers))):
        dy = dh * (np.abs(act.derivative(pre)) + act.curvature * m_pre)
        dh = _magnitude_head(params, name, m_in, dy, grads)
    return dh


def _magnitude_head(params, name, m_in, dy, grads):
    """One layer's backward on magnitudes: W̄ = M_inᵀ·ȳ, b̄ = Σ ȳ, x̄ = ȳ·|W|ᵀ."""
    grads[f"{name}.kernel"] = m_in.T @ dy
    grads[f"{name}.bias"] = dy.sum(axis=0)
    return dy @ np.abs(params[f"{name}.kernel"]).T
