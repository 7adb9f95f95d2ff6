"""Dense layers in float64: forward with a tape, hand-written backward, magnitude.

`y = x · W + b` with `W` of shape [in, out]. The backward pass of a layer is
`dW = xᵀ · dy`, `db = Σ_batch dy`, `dx = dy · Wᵀ`; through an activation,
`dy_pre = dy_post ⊙ act′(y_pre)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import Activation


@dataclass
class Tape:
    """What the backward pass needs: each layer's input and pre-activation."""

    inputs: list[np.ndarray]
    preactivations: list[np.ndarray]


def dense(params, name: str, x: np.ndarray) -> np.ndarray:
    """y = x · W + b for the layer `name`."""
    return x @ params[f"{name}.kernel"] + params[f"{name}.bias"]


def dense_backward(params, name: str, x: np.ndarray, dy: np.ndarray, grads: dict) -> np.ndarray:
    """Accumulate dW = xᵀ·dy, db = Σ dy into `grads`; return dx = dy·Wᵀ."""
    grads[f"{name}.kernel"] = x.T @ dy
    grads[f"{name}.bias"] = dy.sum(axis=0)
    return dy @ params[f"{name}.kernel"].T


def hidden_forward(params, names: list[str], act: Activation, x: np.ndarray) -> tuple[np.ndarray, Tape]:
    """h = act(…act(x·W₀ + b₀)…) through the layers `names`, recording a tape."""
    tape = Tape([], [])
    h = x
    for name in names:
        tape.inputs.append(h)
        pre = dense(params, name, h)
        tape.preactivations.append(pre)
        h = act.value(pre)
    return h, tape


def hidden_backward(params, names: list[str], act: Activation, tape: Tape, dh: np.ndarray, grads: dict) -> np.ndarray:
    """Backward pass of `hidden_forward`: fills `grads`, returns d/dx."""
    for name, x, pre in reversed(list(zip(names, tape.inputs, tape.preactivations))):
        dh = dense_backward(params, name, x, dh * act.derivative(pre), grads)
    return dh


def hidden_magnitude(params, names: list[str], act: Activation, m: np.ndarray) -> np.ndarray:
    """|W|·m + |b| through each layer, then the activation's magnitude bound."""
    for name in names:
        m = act.magnitude(dense_magnitude(params, name, m))
    return m


def dense_magnitude(params, name: str, m: np.ndarray) -> np.ndarray:
    return m @ np.abs(params[f"{name}.kernel"]) + np.abs(params[f"{name}.bias"])
