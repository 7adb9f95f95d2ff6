"""The `kinks` regime's second rule: a pre-activation sits at a kink only where every dtype computes it exactly.

The regime (`strategies.vae.regime_params`, `pin_kinks`) makes pre-activations exactly 0 on purpose, where every
dtype computes them exactly: dyadic weights {−1, 0, 1}·2^−k and integer inputs give short dyadic sums (the
first hidden layer of the stack that reads x or z, and relu's zeros carried through zero biases). Elsewhere
the same small dyadic weights make exact cancellations common: after leaky_relu, elu or softplus (whose
values 0.01·y, e^y − 1, log(1 + e^y) no dtype computes exactly), or behind z = μ + σ·ε (σ = e^{ℓ/2} is
rounded), a pre-activation y = Σ_j W_ij h_j + b_i can be exactly 0 in float64 (e.g. h₃ = h₂ + h₄ and
W = (…, 1, −1, 1, …)·¼) while a conforming bfloat16 backend, computing the same sum from rounded h, lands at
±2^−9·M and takes the other one-sided derivative: leaky_relu′ is 0.01 on one side and 1 on the other, so its
gradient differs from the reference's by far more than any roundoff bound. No tolerance can tell that from a
wrong kink convention, so the example must not ask it.

`clear_inexact_kinks` walks the network in float64 as the reference does and tracks, per pre-activation entry,
whether every dtype computes it exactly (`exact`: all inputs it reads through a nonzero weight exact, and the
value representable in each of `vaespec.spec.dtypes.FORMATS`); each hidden pre-activation that is not exact must
lie at least `margin(depth)`·M from 0 (M = |W|·M_h + |b|, the tolerance policy's magnitude; `margin` the
policy's own relative bound SAFETY·γ after the `depth` rounded results behind it, in bfloat16, the narrowest
dtype), else its unit's bias is moved by the smallest signed power of two ±2^e (still exact in every dtype)
after which every one of its inexact entries does. So no dtype's rounding that the policy allows can carry such
a pre-activation across its kink, and the exact zeros, the regime's purpose, stay where they are (a moved
unit's exact entries move with it: soundness first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vaespec.reference import network
from vaespec.reference.activations import get_activation
from vaespec.reference.conv import ConvStack, conv2d, conv_transpose2d
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.dtypes import FORMATS, round_to
from vaespec.spec.tolerances import SAFETY, UNIT_ROUNDOFF, gamma

NARROW = tuple(d for d in FORMATS if d != "float64")
WIDEST_ROUNDOFF = max(UNIT_ROUNDOFF[d] for d in NARROW)  # bfloat16's 2^−8
ACCUMULATION = 128  # float32 accumulations along the path (dot products of ≤ 8·3² terms per layer), generously


def margin(depth: int) -> float:
    """The policy's relative forward bound after `depth` rounded results, in the narrowest dtype with float32
    accumulation: SAFETY · (γ_depth(u_bfloat16) + γ_{depth + ACCUMULATION}(u_float32)) (docs/tolerances.md).
    A pre-activation y of magnitude M that no dtype computes exactly is off its kink in every dtype once
    |y| ≥ margin(depth) · M."""
    return SAFETY * (gamma(depth, WIDEST_ROUNDOFF) + gamma(depth + ACCUMULATION, UNIT_ROUNDOFF["float32"]))


# The activations whose value at an exactly computed y every dtype computes exactly: for all y, or for y ≥ 0.
EXACT_EVERYWHERE = ("relu", "identity")
EXACT_AT_OR_ABOVE_ZERO = ("leaky_relu", "elu")


def representable(value: np.ndarray) -> np.ndarray:
    """Entrywise: `value` is exactly a number of every narrow dtype (float32, bfloat16, float16)."""
    return np.logical_and.reduce([round_to(d, value) == value for d in NARROW])


def exact_activation(name: str, pre: np.ndarray) -> np.ndarray:
    """Entrywise: act(pre) is computed exactly from an exact pre (relu, identity; leaky_relu and elu at y ≥ 0)."""
    if name in EXACT_EVERYWHERE:
        return np.ones(pre.shape, dtype=bool)
    if name in EXACT_AT_OR_ABOVE_ZERO:
        return pre >= 0
    return np.zeros(pre.shape, dtype=bool)


Linear = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _dense(h: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return h @ kernel + bias


def _unit_axis(kind: str) -> int:
    """The axis of a layer's output that its bias indexes: the last for a dense layer, channels (1) for a conv."""
    return -1 if kind == "dense" else 1


def _offsets(scale: float):
    """Signed powers of two from about `scale` upwards: the bias moves tried, smallest first."""
    start = int(np.floor(np.log2(scale))) if scale > 0 else -8
    for e in range(start, start + 12):
        yield 2.0 ** e
        yield -(2.0 ** e)


def _clear_layer(op: Linear, kind: str, params: dict, name: str, h: np.ndarray, m_h: np.ndarray,
                 inexact_h: np.ndarray, moves: list, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pre, its magnitude, inexact) of hidden layer `name`, its bias moved where an inexact entry is near 0
    (|y| < limit·M; each move appended to `moves`)."""
    kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
    zero = np.zeros_like(bias)
    inexact = op(inexact_h.astype(np.float64), (kernel != 0).astype(np.float64), zero) > 0
    pre, m = op(h, kernel, bias), op(m_h, np.abs(kernel), np.abs(bias))
    inexact |= ~representable(pre)
    axis = _unit_axis(kind)
    moved = False
    for unit in range(bias.shape[0]):
        y, m_u, bad = (np.take(a, unit, axis=axis) for a in (pre, m, inexact))
        if not np.any(bad & (np.abs(y) < limit * m_u)):
            continue
        base = y - bias[unit]
        m_base = m_u - abs(bias[unit])
        for offset in _offsets(limit * float(np.max(m_u[bad]))):
            b = bias[unit] + offset
            if not representable(np.array(b)) or b == 0:
                continue
            if np.all(~bad | (np.abs(base + b) >= limit * (m_base + abs(b)))):
                bias = bias.copy()
                bias[unit] = b
                moved = True
                moves.append((name, unit, float(b)))
                break
    if moved:
        params[f"{name}.bias"] = bias
        pre, m = op(h, kernel, bias), op(m_h, np.abs(kernel), np.abs(bias))
        inexact = (op(inexact_h.astype(np.float64), (kernel != 0).astype(np.float64), zero) > 0) \
            | ~representable(pre)
    return pre, m, inexact


def _linear(kind: str, stride: int, padding: int) -> Linear:
    if kind == "conv":
        return lambda h, k, b: conv2d(h, k, b, stride, padding)
    if kind == "deconv":
        return lambda h, k, b: conv_transpose2d(h, k, b, stride, padding)
    return _dense


def _conv_layers(arch, part: str) -> list[tuple[str, str, bool, int, int]]:
    """(kind, name, activated, stride, padding) of a conv network's `part`, in order, from the architecture's
    public layer lists (spec.conv's layout: docs/math.md), with the reshapes and channel moves as kinds."""
    s, p = arch.stride, arch.padding
    deconvs = arch.decoder_deconvs()
    tail = [("deconv", n, i < len(deconvs) - 1, s, p) for i, (n, _, _) in enumerate(deconvs)]
    convs = [("conv", n, True, s, p) for n, _, _ in arch.encoder_convs()]
    if isinstance(arch, ConvVQArchitecture):
        if part == "encoder":
            return convs + [("conv", "encoder_to_embedding", False, 1, 0), ("channels_last", "", False, 0, 0)]
        return [("channels_first", "", False, 0, 0), ("conv", "decoder_from_embedding", True, 1, 0)] + tail
    if part == "encoder":
        return convs + [("flatten", "", False, 0, 0)]
    return [("dense", "decoder_dense", True, 0, 0), ("unflatten", "", False, 0, 0)] + tail


def _move(arch, kind: str, h: np.ndarray) -> np.ndarray:
    """A reshape (flatten, unflatten) or a channels transposition, as the networks apply them."""
    if kind == "flatten":
        return h.reshape(h.shape[0], -1)
    if kind == "unflatten":
        return h.reshape(h.shape[0], *arch.feature_shapes()[-1])
    return np.ascontiguousarray(np.moveaxis(h, 1, -1) if kind == "channels_last" else np.moveaxis(h, -1, 1))


def _walk(arch, params: dict, part: str, h: np.ndarray, m_h: np.ndarray, inexact: np.ndarray, moves: list,
          depth: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """Through `part` ("encoder" or "decoder") of `arch` from h (magnitude m_h, `inexact` entries, `depth`
    rounded results behind it), clearing each hidden layer (its moves appended to `moves`): the (value,
    magnitude, inexact) of each of the stack's outputs (μ, log σ²; z_e; x̂), and their depth."""
    stack = network.encoder(arch) if part == "encoder" else network.decoder(arch)
    act = get_activation(arch.activation)
    if isinstance(stack, ConvStack):
        layers: Sequence = _conv_layers(arch, part)
        heads = list(arch.HEADS) if stack.heads else []
    else:
        layers = [("dense", n, True, 0, 0) for n in stack.hidden]
        heads = list(stack.heads)
    for kind, name, activated, s, p in layers:
        if kind not in ("conv", "deconv", "dense"):
            h, m_h, inexact = _move(arch, kind, h), _move(arch, kind, m_h), _move(arch, kind, inexact)
            continue
        op = _linear(kind, s, p)
        if not activated:  # a linear output layer (the last deconv, the 1×1 conv to z_e): no kink
            kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
            inexact = op(inexact.astype(np.float64), (kernel != 0).astype(np.float64), np.zeros_like(bias)) > 0
            h, m_h = op(h, kernel, bias), op(m_h, np.abs(kernel), np.abs(bias))
            inexact |= ~representable(h)
            depth += 1
            continue
        pre, m, bad = _clear_layer(op, kind, params, name, h, m_h, inexact, moves, margin(depth + 1))
        h, m_h = act.value(pre), act.magnitude(m)
        depth += 2  # the layer's result, the activation's
        inexact = bad | ~exact_activation(arch.activation, pre)
    if not heads:
        return [(h, m_h, inexact)], depth
    out = []
    for name in heads:
        kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
        value = _dense(h, kernel, bias)
        bad = (_dense(inexact.astype(np.float64), (kernel != 0).astype(np.float64), np.zeros_like(bias)) > 0) \
            | ~representable(value)
        out.append((value, _dense(m_h, np.abs(kernel), np.abs(bias)), bad))
    return out, depth + 1


def _start(value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    value = np.asarray(value, dtype=np.float64)
    return value, np.abs(value), ~representable(value)


ROUNDS = 4  # a decoder read from two inputs (z = μ + σ·ε and a drawn z): a move for one is re-checked for the other


def clear_inexact_kinks(arch, params: dict, x=None, z=None, eps=None, codebook=None) -> list[tuple[str, int, float]]:
    """Move, in place, the biases of `params` whose units have an inexactly computed pre-activation within
    `margin(depth)`·M of a kink (the module docstring), and return the moves (layer, unit, new bias). The encoder is
    walked from x; the decoder from z = μ + σ·ε when x and ε are given (the forward pass's decoder input), from
    z, and from ε when there is no x (generate's decoder input); until no bias moves (at most `ROUNDS` passes).
    A VQ-VAE's encoder is walked from x, and with `codebook` its decoder from z_q = the rows nearest z_e (the
    reference's choices in float64; rows no narrow dtype holds exactly are inexact)."""
    moves: list[tuple[str, int, float]] = []
    for _ in range(ROUNDS):
        before = len(moves)
        if x is not None:
            outputs, depth = _walk(arch, params, "encoder", *_start(x), moves)
            if eps is not None and len(outputs) == 2:
                (mu, m_mu, bad_mu), (lv, _, bad_lv) = outputs
                noise = np.asarray(eps, dtype=np.float64)
                sigma = np.exp(0.5 * lv)
                value = mu + sigma * noise
                # σ·ε is exact only where ε = 0 (σ·0 = 0) or σ = e⁰ = 1 exactly; the sum must be representable
                bad = bad_mu | ((noise != 0) & (bad_lv | (lv != 0))) | ~representable(value)
                _walk(arch, params, "decoder", value, m_mu + sigma * np.abs(noise), bad, moves, depth + 3)
            if codebook is not None and len(outputs) == 1:
                z_e = outputs[0][0]
                book = np.asarray(codebook, dtype=np.float64)
                codes = ((z_e[..., None, :] - book) ** 2).sum(-1).argmin(-1)
                _walk(arch, params, "decoder", *_start(book[codes]), moves, depth + 1)
        for start in (z, eps if x is None else None):
            if start is not None:
                _walk(arch, params, "decoder", *_start(start), moves)
        if len(moves) == before:
            break
    return moves


__all__ = ["ROUNDS", "clear_inexact_kinks", "exact_activation", "margin", "representable"]
