"""Convolutions in float64 with hand-written VJPs, and the convolutional VAE built from them (issue 15).

The layout is `vaespec.spec.conv`'s: images `[B, C, H, W]`, kernels `[kh, kw, in, out]`, torch's
`Conv2d` (cross-correlation) and `ConvTranspose2d` (its adjoint) with stride s and padding p.

    conv2d(x, K, b)            y[b,o,i,j] = b[o] + Σ_{c,p,q} x̃[b, c, s i + p, s j + q] K[p,q,c,o]
      VJP                      K̄[p,q,c,o] = Σ_{b,i,j} x̃[b,c,s i+p,s j+q] ȳ[b,o,i,j];  b̄ = Σ_{b,i,j} ȳ
                               x̃̄[b,c,s i+p,s j+q] += Σ_o K[p,q,c,o] ȳ[b,o,i,j]  (then the padding cropped)
    conv_transpose2d(x, K, b)  ỹ[b,o,s i+p,s j+q] += Σ_c x[b,c,i,j] K[p,q,c,o];  y = crop_p(ỹ) + b[o]
      VJP                      ỹ̄ = ȳ zero-padded by p;  x̄[b,c,i,j] = Σ_{p,q,o} ỹ̄[b,o,s i+p,s j+q] K[p,q,c,o]
                               K̄[p,q,c,o] = Σ_{b,i,j} x[b,c,i,j] ỹ̄[b,o,s i+p,s j+q];  b̄ = Σ ȳ

The transposed convolution's forward is the convolution's input VJP and its VJP is a convolution:
the two share `_windows` (the strided kh×kw windows) and `_scatter` (their adjoint).
Magnitudes (the tolerance policy's M): both ops are bilinear, so M is the op on |x|, |K|, |b|; the VJP's
magnitude is the VJP on |K| and on the input's forward magnitude M_in (K̄ = M_in ⋆ |ȳ|, x̄ = |K| ⋆ |ȳ|), through
an activation |ȳ| ⊙ (|act′(pre)| + curvature·M_pre), as `vaespec.reference.network`'s dense rules.

`ConvStack` is the encoder or decoder with `network.Stack`'s operations (apply, backward, magnitude,
magnitude_backward): `network.encoder(arch)` returns one for a `ConvArchitecture`, so the VAE chapter's
reference functions (`vaespec.reference.vae`: encode … loss, their VJPs and magnitudes) run on it unchanged.

The convolutional VQ-VAE (`vaespec.spec.conv_vq.ConvVQArchitecture`) is a `ConvStack` too, with no dense layer:

    encoder  h = act(conv(… act(conv(x)) …));  z_e = moveaxis(conv₁ₓ₁(h), 1, −1)        [B, H′, W′, E]
      VJP    h̄_emb = moveaxis(z̄_e, −1, 1), then the convolutions' VJPs
    decoder  x̂ = deconv_out(… act(deconv(act(conv₁ₓ₁(moveaxis(z_q, −1, 1))))) …)    [B, C, H, W]
      VJP    the convolutions' VJPs, then z̄_q = moveaxis(h̄, 1, −1)

A transposition's VJP is the inverse transposition (a permutation of entries, no arithmetic); a 1×1
convolution is `conv2d` with k = 1, s = 1, p = 0. So vq_encode, vq_forward, vq_loss and decode
(`vaespec.reference.vq_network`, `vaespec.reference.vae`) run on it unchanged as well.
`selftests/test_reference_conv.py` checks every VJP against central differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.conv import ConvArchitecture, check_conv_params
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.errors import ShapeError
from vaespec.spec.shapes import check_array

from .activations import get_activation

Params = Mapping[str, np.ndarray]
ConvNet = ConvArchitecture | ConvVQArchitecture


# ----------------------------------------------------------------------------- windows
def _windows(x: np.ndarray, k: int, stride: int, out: tuple[int, int]) -> np.ndarray:
    """[B, C, Ho, Wo, k, k]: the kh×kw window of each output position (a read-only strided view)."""
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return view[:, :, : (out[0] - 1) * stride + 1: stride, : (out[1] - 1) * stride + 1: stride]


def _scatter(windows: np.ndarray, shape: tuple[int, ...], stride: int) -> np.ndarray:
    """The adjoint of `_windows`: each window's entries added back at their places in an array of `shape`."""
    out = np.zeros(shape)
    ho, wo, k = windows.shape[2], windows.shape[3], windows.shape[4]
    for p in range(k):
        for q in range(k):
            out[:, :, p: p + (ho - 1) * stride + 1: stride, q: q + (wo - 1) * stride + 1: stride] += windows[..., p, q]
    return out


def _pad(x: np.ndarray, padding: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x


def _crop(x: np.ndarray, padding: int) -> np.ndarray:
    return x[:, :, padding: x.shape[2] - padding, padding: x.shape[3] - padding] if padding else x


def _check(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, name: str) -> None:
    if x.ndim != 4 or kernel.ndim != 4 or kernel.shape[0] != kernel.shape[1]:
        raise ShapeError(f"{name}: expected x [batch, channels, height, width] and a square kernel [k, k, in, out], "
                         f"got shapes {x.shape} and {kernel.shape}")
    if kernel.shape[2] != x.shape[1] or bias.shape != (kernel.shape[3],):
        raise ShapeError(f"{name}: the kernel [k, k, in, out] must read x's {x.shape[1]} channels and the bias be "
                         f"[out]; got x {x.shape}, kernel {kernel.shape}, bias {bias.shape}")


# ----------------------------------------------------------------------------- conv2d
def conv_output(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """torch's Conv2d on x [B, C, H, W] with a kernel [k, k, C, O]: y [B, O, Ho, Wo]."""
    _check(x, kernel, bias, "conv2d")
    k = kernel.shape[0]
    out = (conv_output(x.shape[2], k, stride, padding), conv_output(x.shape[3], k, stride, padding))
    win = _windows(_pad(x, padding), k, stride, out)
    return np.einsum("bchwpq,pqco->bohw", win, kernel, optimize=True) + bias[None, :, None, None]


def conv2d_vjp(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int, dy: np.ndarray
               ) -> dict[str, np.ndarray]:
    """{"x": x̄, "kernel": K̄, "bias": b̄} of `conv2d` for the cotangent ȳ [B, O, Ho, Wo]."""
    k = kernel.shape[0]
    padded = _pad(x, padding)
    win = _windows(padded, k, stride, dy.shape[2:])
    d_win = np.einsum("bohw,pqco->bchwpq", dy, kernel, optimize=True)
    return {"x": _crop(_scatter(d_win, padded.shape, stride), padding),
            "kernel": np.einsum("bchwpq,bohw->pqco", win, dy, optimize=True), "bias": dy.sum(axis=(0, 2, 3))}


# ----------------------------------------------------------------------------- conv_transpose2d
def transpose_output(size: int, k: int, stride: int, padding: int) -> int:
    return (size - 1) * stride - 2 * padding + k


def conv_transpose2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """torch's ConvTranspose2d on x [B, C, H, W] with a kernel [k, k, C, O]: y [B, O, Ho, Wo]."""
    _check(x, kernel, bias, "conv_transpose2d")
    k = kernel.shape[0]
    full = (x.shape[0], kernel.shape[3], (x.shape[2] - 1) * stride + k, (x.shape[3] - 1) * stride + k)
    contributions = np.einsum("bchw,pqco->bohwpq", x, kernel, optimize=True)
    return _crop(_scatter(contributions, full, stride), padding) + bias[None, :, None, None]


def conv_transpose2d_vjp(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, padding: int,
                         dy: np.ndarray) -> dict[str, np.ndarray]:
    """{"x": x̄, "kernel": K̄, "bias": b̄} of `conv_transpose2d` for the cotangent ȳ [B, O, Ho, Wo]."""
    k = kernel.shape[0]
    win = _windows(_pad(dy, padding), k, stride, x.shape[2:])  # [B, O, H, W, k, k]
    return {"x": np.einsum("bohwpq,pqco->bchw", win, kernel, optimize=True),
            "kernel": np.einsum("bchw,bohwpq->pqco", x, win, optimize=True), "bias": dy.sum(axis=(0, 2, 3))}


# ----------------------------------------------------------------------------- the convolutional VAE
# Layers that only move entries: flattening for the dense heads, and the VQ-VAE's channels-last transpositions.
_AXES = ("flatten", "unflatten", "channels_last", "channels_first")


def _layers(arch: ConvNet, part: str) -> list[tuple[str, str, bool, int, int]]:
    """(kind, name, activated, stride, padding) in order: "conv", "dense", "deconv", and the `_AXES` kinds
    ("channels_last": [B, E, H, W] → [B, H, W, E], the ConvVQArchitecture's z_e; "channels_first": back)."""
    s, p = arch.stride, arch.padding
    deconvs = arch.decoder_deconvs()
    tail = [("deconv", n, i < len(deconvs) - 1, s, p) for i, (n, _, _) in enumerate(deconvs)]
    if isinstance(arch, ConvVQArchitecture):
        if part == "encoder":
            return ([("conv", n, True, s, p) for n, _, _ in arch.encoder_convs()]
                    + [("conv", "encoder_to_embedding", False, 1, 0), ("channels_last", "", False, 0, 0)])
        return [("channels_first", "", False, 0, 0), ("conv", "decoder_from_embedding", True, 1, 0)] + tail
    if part == "encoder":
        return [("conv", n, True, s, p) for n, _, _ in arch.encoder_convs()] + [("flatten", "", False, 0, 0)]
    return [("dense", "decoder_dense", True, 0, 0), ("unflatten", "", False, 0, 0)] + tail


def _move(arch: ConvNet, kind: str, h: np.ndarray) -> np.ndarray:
    """An `_AXES` layer on h: a reshape (flatten, unflatten, C order) or a transposition (moveaxis, never a
    reshape: it keeps each position's channels together)."""
    if kind == "flatten":
        return h.reshape(h.shape[0], -1)
    if kind == "unflatten":
        return h.reshape(h.shape[0], *arch.feature_shapes()[-1])
    if kind == "channels_last":
        return np.ascontiguousarray(np.moveaxis(h, 1, -1))
    return np.ascontiguousarray(np.moveaxis(h, -1, 1))


def _move_back(kind: str, dh: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The VJP of an `_AXES` layer whose input had `shape`: the inverse reshape or transposition."""
    if kind == "channels_last":
        return np.ascontiguousarray(np.moveaxis(dh, -1, 1))
    if kind == "channels_first":
        return np.ascontiguousarray(np.moveaxis(dh, 1, -1))
    return dh.reshape(shape)


def _apply(arch: ConvNet, params: Params, part: str, h: np.ndarray, tape: list[np.ndarray] | None = None
           ) -> np.ndarray:
    act = get_activation(arch.activation)
    for kind, name, activated, s, p in _layers(arch, part):
        if tape is not None:
            tape.append(h)
        if kind in _AXES:
            h = _move(arch, kind, h)
            continue
        kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
        if kind == "conv":
            h = conv2d(h, kernel, bias, s, p)
        elif kind == "deconv":
            h = conv_transpose2d(h, kernel, bias, s, p)
        else:
            h = h @ kernel + bias
        if tape is not None:
            tape.append(h)
        h = act.value(h) if activated else h
    return h


def _check_x(arch: ConvArchitecture, x: object, name: str = "x") -> np.ndarray:
    x = check_array(name, x, ("batch", "+event"))
    if x.ndim != 4 or x.shape[1:] != arch.input_shape:
        hint = ""
        if x.ndim == 4 and x.shape[1:] == (*arch.input_shape[1:], arch.input_shape[0]):
            hint = f"; it looks channels-last: move the channel axis to axis 1 (np.moveaxis({name}, -1, 1))"
        raise ShapeError(f"{name}: expected [batch, {', '.join(map(str, arch.input_shape))}] (batch, channels, height, "
                         f"width) for this ConvArchitecture, got shape {x.shape}{hint}")
    return x


def encode(arch: ConvArchitecture, params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(μ, log σ²) [B, L]: the convolutions (each activated), flattened in C order, then the dense heads."""
    x, params = _check_x(arch, x), check_conv_params(arch, params, "encoder")
    h = _apply(arch, params, "encoder", x)
    return h @ params["mu.kernel"] + params["mu.bias"], h @ params["log_var.kernel"] + params["log_var.bias"]


def decode(arch: ConvArchitecture, params: Params, z: np.ndarray) -> np.ndarray:
    """x̂ [B, C, H, W]: the dense layer (activated), unflattened, the transposed convolutions (the last linear)."""
    z = check_array("z", z, ("batch", "latent"), {"latent": arch.latent_size})
    params = check_conv_params(arch, params, "decoder")
    return _apply(arch, params, "decoder", z)


def _backward(arch: ConvNet, params: Params, part: str, tape: list[np.ndarray], dh: np.ndarray,
              grads: dict[str, np.ndarray]) -> np.ndarray:
    act = get_activation(arch.activation)
    for kind, name, activated, s, p in reversed(_layers(arch, part)):
        if kind in _AXES:
            dh = _move_back(kind, dh, tape.pop().shape)
            continue
        pre, h = tape.pop(), tape.pop()
        if activated:
            dh = dh * act.derivative(pre)
        kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
        if kind == "dense":
            g = {"x": dh @ kernel.T, "kernel": h.T @ dh, "bias": dh.sum(axis=0)}
        elif kind == "conv":
            g = conv2d_vjp(h, kernel, bias, s, p, dh)
        else:
            g = conv_transpose2d_vjp(h, kernel, bias, s, p, dh)
        grads[f"{name}.kernel"], grads[f"{name}.bias"] = g["kernel"], g["bias"]
        dh = g["x"]
    return dh


def encode_vjp(arch: ConvArchitecture, params: Params, x: np.ndarray, d_mu: np.ndarray, d_log_var: np.ndarray
               ) -> dict[str, Any]:
    """{"params": {name: θ̄}, "x": x̄} of `encode` for the cotangents (μ̄, lv̄)."""
    x, params = _check_x(arch, x), check_conv_params(arch, params, "encoder")
    tape: list[np.ndarray] = []
    h = _apply(arch, params, "encoder", x, tape)
    grads = {"mu.kernel": h.T @ d_mu, "mu.bias": d_mu.sum(axis=0),
             "log_var.kernel": h.T @ d_log_var, "log_var.bias": d_log_var.sum(axis=0)}
    dh = d_mu @ params["mu.kernel"].T + d_log_var @ params["log_var.kernel"].T
    dx = _backward(arch, params, "encoder", tape, dh, grads)
    return {"params": grads, "x": dx}


def decode_vjp(arch: ConvArchitecture, params: Params, z: np.ndarray, d_x_hat: np.ndarray) -> dict[str, Any]:
    """{"params": {name: θ̄}, "z": z̄} of `decode` for the cotangent x̂̄ [B, C, H, W]."""
    z = check_array("z", z, ("batch", "latent"), {"latent": arch.latent_size})
    params = check_conv_params(arch, params, "decoder")
    tape: list[np.ndarray] = []
    _apply(arch, params, "decoder", z, tape)
    grads: dict[str, np.ndarray] = {}
    dz = _backward(arch, params, "decoder", tape, d_x_hat, grads)
    return {"params": grads, "z": dz}


# ----------------------------------------------------------------------------- magnitudes
def _magnitude(arch: ConvNet, params: Params, part: str, m: np.ndarray) -> np.ndarray:
    """The layers on magnitudes: |K|, |b| and each activation's `magnitude` bound (M of the tolerance policy)."""
    act = get_activation(arch.activation)
    for kind, name, activated, s, p in _layers(arch, part):
        if kind in _AXES:
            m = _move(arch, kind, m)
            continue
        kernel, bias = np.abs(params[f"{name}.kernel"]), np.abs(params[f"{name}.bias"])
        m = (conv2d(m, kernel, bias, s, p) if kind == "conv" else conv_transpose2d(m, kernel, bias, s, p)
             if kind == "deconv" else m @ kernel + bias)
        m = act.magnitude(m) if activated else m
    return m


def encode_magnitude(arch: ConvArchitecture, params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M(μ), M(log σ²): the encoder on |x|, |θ|."""
    x, params = _check_x(arch, x), check_conv_params(arch, params, "encoder")
    h = _magnitude(arch, params, "encoder", np.abs(x))
    return (h @ np.abs(params["mu.kernel"]) + np.abs(params["mu.bias"]),
            h @ np.abs(params["log_var.kernel"]) + np.abs(params["log_var.bias"]))


def decode_magnitude(arch: ConvArchitecture, params: Params, z: np.ndarray) -> np.ndarray:
    """M(x̂): the decoder on |z|, |θ|."""
    z = check_array("z", z, ("batch", "latent"), {"latent": arch.latent_size})
    return _magnitude(arch, check_conv_params(arch, params, "decoder"), "decoder", np.abs(z))


# ----------------------------------------------------------------------------- as a network stack
def _magnitude_backward(arch: ConvNet, params: Params, part: str, x: np.ndarray, m_x: np.ndarray,
                        top: Any, grads: dict[str, np.ndarray]) -> np.ndarray:
    """`_backward` on magnitudes (`vaespec.reference.network`'s rules): through an activation
    ȳ_pre = ȳ ⊙ (|act′(pre)| + curvature·M_pre), a (transposed) convolution's VJP taken on |K| and on the input's
    forward magnitude M_in (K̄ = M_in ⋆ ȳ errs by δh ⋆ ȳ). `top(h, m_h)` gives the cotangent magnitude at the
    stack's output (the encoder's heads also fill their gradients there); returns x̄'s magnitude."""
    act = get_activation(arch.activation)
    records: list[tuple[str, str, bool, int, int, np.ndarray, Any, Any]] = []
    h, m = x, m_x
    for kind, name, activated, s, p in _layers(arch, part):
        if kind in _AXES:
            records.append((kind, name, activated, s, p, m, None, None))
            h, m = _move(arch, kind, h), _move(arch, kind, m)
            continue
        kernel, bias = params[f"{name}.kernel"], params[f"{name}.bias"]
        op = conv2d if kind == "conv" else conv_transpose2d if kind == "deconv" else None
        pre = op(h, kernel, bias, s, p) if op else h @ kernel + bias
        m_pre = (op(m, np.abs(kernel), np.abs(bias), s, p) if op else m @ np.abs(kernel) + np.abs(bias))
        records.append((kind, name, activated, s, p, m, pre, m_pre))
        h, m = (act.value(pre), act.magnitude(m_pre)) if activated else (pre, m_pre)
    dh = top(h, m)
    for kind, name, activated, s, p, m_in, pre, m_pre in reversed(records):
        if kind in _AXES:
            dh = _move_back(kind, dh, m_in.shape)
            continue
        dy = dh * (np.abs(act.derivative(pre)) + act.curvature * m_pre) if activated else dh
        kernel, bias = np.abs(params[f"{name}.kernel"]), params[f"{name}.bias"]
        if kind == "dense":
            g = {"x": dy @ kernel.T, "kernel": m_in.T @ dy, "bias": dy.sum(axis=0)}
        else:
            g = (conv2d_vjp if kind == "conv" else conv_transpose2d_vjp)(m_in, kernel, bias, s, p, dy)
        grads[f"{name}.kernel"], grads[f"{name}.bias"] = g["kernel"], g["bias"]
        dh = g["x"]
    return dh


def _heads(arch: ConvNet, params: Params, h: np.ndarray, d_heads: Any, grads: dict[str, np.ndarray],
           absolute: bool = False) -> np.ndarray:
    """The dense heads' backward at their input h (μ̄, lv̄ joining there): fills their gradients, returns h̄."""
    dh = np.zeros_like(h)
    for name, d in zip(arch.HEADS, d_heads):
        kernel = params[f"{name}.kernel"]
        grads[f"{name}.kernel"], grads[f"{name}.bias"] = h.T @ d, d.sum(axis=0)
        dh = dh + d @ (np.abs(kernel) if absolute else kernel).T
    return dh


class ConvStack:
    """The convolutional encoder (heads μ, log σ² on the flattened feature map) or decoder (its output the last
    transposed convolution) with `vaespec.reference.network`'s stack interface, so every VAE network function
    runs on a `ConvArchitecture` unchanged (`network.encoder(arch)` returns one for it); a `ConvVQArchitecture`'s
    encoder (z_e channels-last) or decoder (from z_q channels-last), with no dense head. `params` are checked."""

    def __init__(self, arch: ConvNet, part: str) -> None:
        self.arch, self.part = arch, part
        self.heads = part == "encoder" and isinstance(arch, ConvArchitecture)  # μ, log σ² on the flattened map

    def apply(self, params: Params, x: np.ndarray) -> tuple[np.ndarray, ...]:
        h = _apply(self.arch, params, self.part, x)
        if not self.heads:
            return (h,)
        return tuple(h @ params[f"{n}.kernel"] + params[f"{n}.bias"] for n in self.arch.HEADS)

    def backward(self, params: Params, x: np.ndarray, d_heads: Any, grads: dict[str, np.ndarray]) -> np.ndarray:
        tape: list[np.ndarray] = []
        h = _apply(self.arch, params, self.part, x, tape)
        dh = d_heads[0] if not self.heads else _heads(self.arch, params, h, d_heads, grads)
        return _backward(self.arch, params, self.part, tape, dh, grads)

    def magnitude(self, params: Params, m_x: np.ndarray) -> tuple[np.ndarray, ...]:
        m = _magnitude(self.arch, params, self.part, m_x)
        if not self.heads:
            return (m,)
        return tuple(m @ np.abs(params[f"{n}.kernel"]) + np.abs(params[f"{n}.bias"]) for n in self.arch.HEADS)

    def magnitude_backward(self, params: Params, x: np.ndarray, m_x: np.ndarray, d_heads: Any,
                           grads: dict[str, np.ndarray]) -> np.ndarray:
        def top(h: np.ndarray, m_h: np.ndarray) -> np.ndarray:
            if not self.heads:
                return d_heads[0]
            return _heads(self.arch, params, m_h, d_heads, grads, absolute=True)
        return _magnitude_backward(self.arch, params, self.part, x, m_x, top, grads)
