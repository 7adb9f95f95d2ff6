"""The VQ-VAE's network functions in float64: vq_encode, vq_forward and vq_loss, each with its VJP,
magnitude and VJP magnitude side by side (the quantizer and codebook: `vq`).

`arch` is the dense `VQArchitecture` (x [B, input], z_e [B, D]) or a `ConvVQArchitecture` (x [B, C, H, W],
z_e [B, H′, W′, D] channels-last, indices [B, H′, W′]): `network.encoder(arch)` and `network.decoder(arch)`
choose the stack by its type (`vaespec.reference.conv.ConvStack`), and every formula below reads z_e as its
N = B·H′·W′ vectors (`vq_codes`), so the code is the same for both.

    vq_encode(x)   act(…act(x·W₀ + b₀)…)·W_emb + b_emb        VJP: the encoder's backward pass
    vq_forward(x)  (decode(C[k]), k), k the nearest codes of   decoder backward to z̄_q = z̄_e (straight-through),
                   vq_encode(x); decode is the VAE's decoder   then the encoder's; C̄ = 0
    vq_loss        R(x̂, x) + codebook_loss + w · commitment    as vq_forward, the codebook term to C, w·g to z_e

Magnitudes: vq_encode the encoder on |x|, |W|, |b|; vq_forward the decoder's magnitude at
|e_k| + M(z_e) (z_q carries the rounding of z_e's size); vq_loss R's magnitude at that decoder
output plus (1 + w) · mean (M(z_e) + |e_k|)². Functions that pick codes take `indices` as `vq`'s do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.contract import validate_args, validate_vjp
from vaespec.spec.conventions import Convention, get_convention
from vaespec.spec.shapes import Float, Int
from vaespec.spec.vq import DEFAULT_COMMITMENT_WEIGHT

from . import network
from .boundary import finite, finite_gradients, zero_gradients
from .function import ReferenceFunction
from .losses import reconstruction, reconstruction_backward, reconstruction_backward_magnitude, reconstruction_magnitude
from .vq_codes import aux, aux_gradient, choose, scatter


# ----------------------------------------------------------------------------- vq_encode
def vq_encode(arch: VQArchitecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"]
              ) -> Float[np.ndarray, "batch embedding"]:
    """Encoder: `z_e = act(…act(x·W₀ + b₀)…)·W_emb + b_emb` (`encoder_to_embedding` is linear).

    **Arguments** `arch` (a `VQArchitecture`), `params` (at least the encoder's layout), `x` [B, input].
    **Returns** `z_e` float64 [B, embedding].
    """
    a = validate_args("vq_encode", {"arch": arch, "params": params, "x": x})
    return finite("vq_encode", network.apply(network.encoder(arch), a["params"], a["x"])[0])


def vq_encode_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "x"}` gradients of `vq_encode` for the cotangent z̄_e [B, embedding]."""
    a, (d_z_e,) = validate_vjp("vq_encode", args, cotangent)
    arch, params, x = a["arch"], a["params"], a["x"]
    vq_encode(arch, params, x)  # the forward's domain (a finite result) is the VJP's
    grads = zero_gradients(params)
    dx = network.backward(network.encoder(arch), params, x, (d_z_e,), grads)
    return finite_gradients("vq_encode", {"params": grads, "x": dx})


def vq_encode_magnitude(args):
    """M(z_e): the encoder on |x|, |W|, |b|."""
    a = validate_args("vq_encode", args)
    return network.magnitude(network.encoder(a["arch"]), a["params"], np.abs(a["x"]))[0]


def vq_encode_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("vq_encode", args, cotangent)
    grads = zero_gradients(a["params"])
    dx = network.magnitude_backward(network.encoder(a["arch"]), a["params"], a["x"], np.abs(a["x"]),
                                    (np.abs(np.asarray(ct, dtype=np.float64)),), grads)
    return {"params": grads, "x": dx}


VQ_ENCODE = ReferenceFunction("vq_encode", vq_encode, vq_encode_magnitude, vq_encode_vjp, vq_encode_vjp_magnitude)


# ----------------------------------------------------------------------------- vq_forward
def _network(arch, params, codebook, x, indices):
    """(x̂, k, z_e) of vq_forward."""
    z_e = network.apply(network.encoder(arch), params, x)[0]
    k = choose(z_e, codebook, indices)
    return network.apply(network.decoder(arch), params, codebook[k])[0], k, z_e


def _network_magnitude(arch, params, codebook, x, indices):
    """(k, M(z_e), M(z_q) = |e_k| + M(z_e)) of the VQ network at x."""
    z_e = network.apply(network.encoder(arch), params, x)[0]
    k = choose(z_e, codebook, indices)
    m_z_e = network.magnitude(network.encoder(arch), params, np.abs(x))[0]
    return k, m_z_e, np.abs(codebook[k]) + m_z_e


def _through_decoder(arch, params, codebook, x, indices, d_x_hat, commitment_weight=None, d_loss=0.0):
    """Backward of vq_forward (plus, given a commitment weight, the auxiliary terms of vq_loss):
    (parameter gradients, C̄, x̄ without x's direct term)."""
    grads = zero_gradients(params)
    z_e = network.apply(network.encoder(arch), params, x)[0]
    k = choose(z_e, codebook, indices)
    d_z_q = network.backward(network.decoder(arch), params, codebook[k], (d_x_hat,), grads)
    d_codebook = np.zeros_like(codebook, dtype=np.float64)
    d_z_e = d_z_q  # straight-through: the decoder's input gradient reaches z_e unchanged
    if commitment_weight is not None:
        g = aux_gradient(z_e, codebook, k, d_loss)
        d_codebook = scatter(codebook, k, -g)         # codebook term (weight 1)
        d_z_e = d_z_e + commitment_weight * g         # commitment term (weight w)
    return grads, d_codebook, network.backward(network.encoder(arch), params, x, (d_z_e,), grads)


def vq_forward(arch: VQArchitecture, params: Mapping[str, np.ndarray], codebook: Float[np.ndarray, "codes embedding"],
               x: Float[np.ndarray, "batch input"], *, indices: np.ndarray | None = None
               ) -> tuple[Float[np.ndarray, "batch output"], Int[np.ndarray, " batch"]]:
    """`vq_forward(x) = (decode(C[k]), k)`, k the nearest codes of `z_e = vq_encode(x)`.

    `decode` is the VAE chapter's decoder (`latent_size` = `embedding_dim`).

    **Arguments** `arch`, `params` (the whole layout), `codebook` [K, D] (K = arch.num_embeddings),
    `x` [B, input]; `indices` (keyword, int [B]): use these codes.
    **Returns** `(x̂` float64 [B, output], `indices` int64 [B]).
    """
    a = validate_args("vq_forward", {"arch": arch, "params": params, "codebook": codebook, "x": x})
    x_hat, k, _ = _network(arch, a["params"], a["codebook"], a["x"], indices)
    return finite("vq_forward", (x_hat, k))


def vq_forward_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "codebook": 0, "x"}` gradients of `vq_forward` for the cotangent x̄̂ [B, output]."""
    a, (d_x_hat,) = validate_vjp("vq_forward", args, cotangent)
    arch, params, x = a["arch"], a["params"], a["x"]
    vq_forward(arch, params, a["codebook"], x, indices=a.get("indices"))
    grads, d_codebook, dx = _through_decoder(arch, params, a["codebook"], x, a.get("indices"), d_x_hat)
    return finite_gradients("vq_forward", {"params": grads, "codebook": d_codebook, "x": dx})


def vq_forward_magnitude(args):
    """`(M(x̂), 0)`: the decoder's magnitude at M(z_q)."""
    a = validate_args("vq_forward", args)
    arch, params, x = a["arch"], a["params"], a["x"]
    k, _, m_z_q = _network_magnitude(arch, params, a["codebook"], x, a.get("indices"))
    return network.magnitude(network.decoder(arch), params, m_z_q)[0], np.zeros(k.shape)


def vq_forward_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("vq_forward", args, cotangent)
    arch, params, x, codebook = a["arch"], a["params"], a["x"], a["codebook"]
    grads = zero_gradients(params)
    k, _, m_z_q = _network_magnitude(arch, params, codebook, x, a.get("indices"))
    d_z_q = network.magnitude_backward(network.decoder(arch), params, codebook[k], m_z_q,
                                       (np.abs(np.asarray(ct, dtype=np.float64)),), grads)
    dx = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x), (d_z_q,), grads)
    return {"params": grads, "codebook": np.zeros_like(codebook, dtype=np.float64), "x": dx}


VQ_FORWARD = ReferenceFunction("vq_forward", vq_forward, vq_forward_magnitude, vq_forward_vjp,
                               vq_forward_vjp_magnitude)


# ----------------------------------------------------------------------------- vq_loss
def vq_loss(arch: VQArchitecture, params: Mapping[str, np.ndarray], codebook: Float[np.ndarray, "codes embedding"],
            x: Float[np.ndarray, "batch input"], commitment_weight: float = DEFAULT_COMMITMENT_WEIGHT,
            convention: Convention | str | None = None, *, indices: np.ndarray | None = None) -> Float[np.ndarray, ""]:
    """`loss = R(x̂, x) + L_cb(z_e, C) + w · L_commit(z_e, C)`, `(x̂, k) = vq_forward(x)`, `z_e = vq_encode(x)`.

    `R` is the VAE's `reconstruction_loss` under `convention`; the auxiliary losses are means
    over B × D whatever the convention.

    **Arguments** `arch`, `params`, `codebook`, `x` as `vq_forward`; `commitment_weight` w ≥ 0;
    `convention` a preset name or `Convention`; `indices` (keyword, int [B]): use these codes.
    **Returns** a float64 0-d array.
    """
    checked = validate_args("vq_loss", {"arch": arch, "params": params, "codebook": codebook, "x": x,
                                        "commitment_weight": commitment_weight, "convention": convention})
    params, codebook, x = checked["params"], checked["codebook"], checked["x"]
    x_hat, k, z_e = _network(arch, params, codebook, x, indices)
    term = aux(z_e, codebook, k)
    return finite("vq_loss", np.asarray(reconstruction(x_hat, x, checked["convention"]) + term
                                        + checked["commitment_weight"] * term))


def vq_loss_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "codebook", "x"}` gradients of `vq_loss` for the scalar cotangent ȳ."""
    a, (d_loss,) = validate_vjp("vq_loss", args, cotangent)
    arch, params, codebook, x = a["arch"], a["params"], a["codebook"], a["x"]
    vq_loss(arch, params, codebook, x, a["commitment_weight"], a["convention"], indices=a.get("indices"))
    x_hat, k, _ = _network(arch, params, codebook, x, a.get("indices"))
    d_x_hat, d_x_direct = reconstruction_backward(x_hat, x, a["convention"], d_loss)
    grads, d_codebook, dx = _through_decoder(arch, params, codebook, x, k, d_x_hat, a["commitment_weight"], d_loss)
    return finite_gradients("vq_loss", {"params": grads, "codebook": d_codebook, "x": dx + d_x_direct})


def vq_loss_magnitude(args):
    """R's magnitude at x̂ with M(x̂) the decoder's at M(z_q), plus (1 + w) · mean (M(z_e) + |e_k|)²."""
    a = validate_args("vq_loss", args)
    arch, params, codebook, x = a["arch"], a["params"], a["codebook"], a["x"]
    k, m_z_e, m_z_q = _network_magnitude(arch, params, codebook, x, a.get("indices"))
    m_x_hat = network.magnitude(network.decoder(arch), params, m_z_q)[0]
    x_hat = network.apply(network.decoder(arch), params, codebook[k])[0]
    m_aux = np.mean((m_z_e + np.abs(codebook[k])) ** 2)
    c = get_convention(a["convention"])
    return np.asarray(reconstruction_magnitude(x_hat, m_x_hat, x, c) + (1.0 + a["commitment_weight"]) * m_aux)


def vq_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("vq_loss", args, cotangent)
    ct = np.abs(np.asarray(ct, dtype=np.float64))
    arch, params, codebook, x = a["arch"], a["params"], a["codebook"], a["x"]
    grads = zero_gradients(params)
    k, m_z_e, m_z_q = _network_magnitude(arch, params, codebook, x, a.get("indices"))
    c = get_convention(a["convention"])
    x_hat = network.apply(network.decoder(arch), params, codebook[k])[0]
    m_x_hat = network.magnitude(network.decoder(arch), params, m_z_q)[0]
    d_x_hat = reconstruction_backward_magnitude(c, x_hat.shape, ct, np.abs(x_hat - x) + m_x_hat)
    d_z_q = network.magnitude_backward(network.decoder(arch), params, codebook[k], m_z_q, (d_x_hat,), grads)
    g = ct * (2.0 / m_z_e.size) * (m_z_e + np.abs(codebook[k]))
    dx = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x),
                                    (d_z_q + a["commitment_weight"] * g,), grads)
    return {"params": grads, "codebook": scatter(codebook, k, g), "x": dx + d_x_hat}


VQ_LOSS = ReferenceFunction("vq_loss", vq_loss, vq_loss_magnitude, vq_loss_vjp, vq_loss_vjp_magnitude)

REFERENCE_FUNCTIONS = (VQ_ENCODE, VQ_FORWARD, VQ_LOSS)
