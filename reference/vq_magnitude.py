"""Magnitudes of the VQ chapter for the tolerance policy (see `vaespec.reference.magnitude`).

`magnitude(f, args)` is structured like `f`'s output and `vjp_magnitude(f, args, ȳ)` like its
VJP: each entry is the computation redone on absolute values, what `vaespec.spec.tolerances`
multiplies by γ_n. Both honour `args["indices"]` (the code choices to condition on). Integer
outputs (indices, usage, counts of dead codes, steps) and keys are exact: their entry is 0.

    vq_encode         the encoder on |x|, |W|, |b| (as `encode`)
    quantize          |z_e| + |e_k|  (the straight-through sum z_e + (e_k − z_e) rounds at that size)
    aux losses        mean_{b,d} (|z_e| + |e_k|)²
    vq_forward        the decoder's magnitude at |e_k| + M(z_e): z_q carries the rounding of z_e's size
    vq_loss           R's magnitude at that decoder output, plus (1 + w) · mean (M(z_e) + |e_k|)²
    laplace_smooth    the value itself (every operand is ≥ 0: nothing cancels)
    ema_update        counts′ (≥ 0); γ|sums| + (1−γ)·Σ|z_e|; e′: that over (1 − γᵗ)·Ñ, |e| for kept rows
    codebook_health   perplexity · (H + 2), H the entropy: each p log p errs at |p log p| + p, exp adds 1
    init_codebook, reset_dead_codes: |the returned codebook| (rows are copied, never computed)

**EMA debiasing.** 1 − γᵗ cancels for γ near 1 (condition (1 + γᵗ)/(1 − γᵗ)), but Ŝ and N̂ are
divided by the same computed value, so its error cancels in e′ = Ŝ/Ñ up to the ε-smoothing's
share K·ε/(ΣN̂ + K·ε) of Ñ; the magnitudes therefore carry no condition factor.
"""

from __future__ import annotations

import numpy as np
from vaespec.spec.conventions import get_convention
from vaespec.spec.init import init_codebook

from . import mlp, vae, vq
from .activations import get_activation
from .magnitude import (  # by name: the package's attribute `magnitude` is the function
    _abs_backward,
    _abs_decode_backward,
    _abs_head_backward,
    _abs_hidden,
    _decode,
    _reconstruction,
    _scales,
    _zeros,
)

FUNCTIONS = ("vq_encode", "quantize", "codebook_loss", "commitment_loss", "vq_forward", "vq_loss", "init_codebook",
             "laplace_smooth", "ema_update", "codebook_health", "reset_dead_codes")
VJP_FUNCTIONS = ("vq_encode", "quantize", "codebook_loss", "commitment_loss", "vq_forward", "vq_loss")


def _encoder(arch, params, m_x):
    """M(z_e): the encoder on magnitudes."""
    act = get_activation(arch.activation)
    m_h = mlp.hidden_magnitude(params, [n for n, _, _ in arch.encoder_layers()], act, m_x)
    return mlp.dense_magnitude(params, "encoder_to_embedding", m_h)


def _network(arch, params, codebook, x, indices):
    """(z_e, k, M(z_e), M(z_q) = |e_k| + M(z_e)) of the VQ network at x."""
    z_e = vq._vq_encode(arch, params, x)
    k = vq._choose(z_e, codebook, indices)
    m_z_e = _encoder(arch, params, np.abs(x))
    return z_e, k, m_z_e, np.abs(codebook[k]) + m_z_e


def _ema(a):
    codebook, counts, sums, z_e = a["codebook"], a["ema_counts"], a["ema_sums"], a["z_e"]
    if not a["training"]:
        return np.abs(codebook), np.abs(counts), np.abs(sums), 0.0
    gamma, t = float(a["decay"]), int(a["ema_step"]) + 1
    k = vq._choose(z_e, codebook, a.get("indices"))
    n = np.bincount(k, minlength=codebook.shape[0]).astype(np.float64)
    s_abs = np.zeros_like(codebook, dtype=np.float64)
    np.add.at(s_abs, k, np.abs(z_e))
    m_counts = gamma * np.abs(counts) + (1.0 - gamma) * n
    m_sums = gamma * np.abs(sums) + (1.0 - gamma) * s_abs
    debias = 1.0 - gamma**t
    smoothed = vq._laplace(m_counts / debias, float(a["epsilon"]))
    used = smoothed > 0
    m_codebook = np.abs(codebook).astype(np.float64)
    m_codebook[used] = m_sums[used] / debias / smoothed[used, None]
    return m_codebook, m_counts, m_sums, 0.0


def magnitude(function: str, args):
    """Error scale of the VQ `function` at `args`, structured like its output (0 for exact outputs)."""
    a = args
    if function == "vq_encode":
        return _encoder(a["arch"], a["params"], np.abs(a["x"]))
    if function in ("quantize", "codebook_loss", "commitment_loss"):
        z_e, codebook = a["z_e"], a["codebook"]
        k = vq._choose(z_e, codebook, a.get("indices"))
        m = np.abs(z_e) + np.abs(codebook[k])
        return (m, np.zeros(z_e.shape[0])) if function == "quantize" else np.asarray(np.mean(m * m))
    if function in ("vq_forward", "vq_loss"):
        arch, params, codebook, x = a["arch"], a["params"], a["codebook"], a["x"]
        _, k, m_z_e, m_z_q = _network(arch, params, codebook, x, a.get("indices"))
        m_x_hat = _decode(arch, params, m_z_q)
        if function == "vq_forward":
            return m_x_hat, np.zeros(x.shape[0])
        x_hat = vae._decode(arch, params, codebook[k])[0]
        aux = np.mean((m_z_e + np.abs(codebook[k])) ** 2)
        c = get_convention(a["convention"])
        return np.asarray(_reconstruction(x_hat, m_x_hat, x, c) + (1.0 + a["commitment_weight"]) * aux)
    if function == "init_codebook":
        return np.abs(init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"]))
    if function == "laplace_smooth":
        return vq._laplace(np.abs(a["counts"]), float(a["epsilon"]))
    if function == "ema_update":
        return _ema(a)
    if function == "codebook_health":
        _, perplexity, _ = vq.codebook_health(a["indices"], a["num_embeddings"])
        return np.zeros(a["num_embeddings"]), perplexity * (np.log(perplexity) + 2.0), 0.0
    if function == "reset_dead_codes":
        return np.abs(vq.reset_dead_codes(a["codebook"], a["usage"], a["z_e"], a["key"])[0]), 0.0
    raise KeyError(function)


# ----------------------------------------------------------------------------- gradients
def _abs_encoder_backward(arch, params, x, m_x, d_z_e, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.encoder_layers()]
    layers, _, m_h = _abs_hidden(params, names, act, x, m_x)
    dh = _abs_head_backward(params, "encoder_to_embedding", m_h, d_z_e, grads)
    return _abs_backward(params, names, act, layers, dh, grads)


def _scatter(codebook, k, rows):
    out = np.zeros_like(codebook, dtype=np.float64)
    np.add.at(out, k, rows)
    return out


def vjp_magnitude(function: str, args, cotangent):
    """Error scale of `vjp(function, args, cotangent)` for the VQ `function`, structured like its result.

    The backward pass on absolute values (`magnitude.vjp_magnitude`); the auxiliary losses'
    derivative 2/(B·D)·(z_e − e_k) has magnitude 2/(B·D)·(|z_e| + |e_k|), and the
    straight-through copy z̄_e = z̄_q is exact.
    """
    a = args
    ct = np.abs(np.asarray(cotangent, dtype=np.float64))
    if function in ("quantize", "codebook_loss", "commitment_loss"):
        z_e, codebook = a["z_e"], a["codebook"]
        zeros_z, zeros_c = np.zeros_like(z_e, dtype=np.float64), np.zeros_like(codebook, dtype=np.float64)
        if function == "quantize":
            vq._choose(z_e, codebook, a.get("indices"))
            return {"z_e": ct * np.ones_like(z_e), "codebook": zeros_c}
        k = vq._choose(z_e, codebook, a.get("indices"))
        g = ct * (2.0 / z_e.size) * (np.abs(z_e) + np.abs(codebook[k]))
        if function == "codebook_loss":
            return {"z_e": zeros_z, "codebook": _scatter(codebook, k, g)}
        return {"z_e": g, "codebook": zeros_c}
    arch, params, x = a["arch"], a["params"], a["x"]
    grads = _zeros(params)
    if function == "vq_encode":
        return {"params": grads, "x": _abs_encoder_backward(arch, params, x, np.abs(x), ct, grads)}
    codebook = a["codebook"]
    _, k, m_z_e, m_z_q = _network(arch, params, codebook, x, a.get("indices"))
    if function == "vq_forward":
        d_z_q = _abs_decode_backward(arch, params, codebook[k], m_z_q, ct, grads)
        dx = _abs_encoder_backward(arch, params, x, np.abs(x), d_z_q, grads)
        return {"params": grads, "codebook": np.zeros_like(codebook, dtype=np.float64), "x": dx}
    if function != "vq_loss":
        raise KeyError(function)
    c = get_convention(a["convention"])
    x_hat = vae._decode(arch, params, codebook[k])[0]
    m_x_hat = _decode(arch, params, m_z_q)
    d_x_hat = 2 * c.reconstruction_scale * ct * _scales(
        c, x_hat.shape, c.reconstruction_feature_reduction, c.reconstruction_batch_reduction
    ) * (np.abs(x_hat - x) + m_x_hat)
    d_z_q = _abs_decode_backward(arch, params, codebook[k], m_z_q, d_x_hat, grads)
    g = ct * (2.0 / m_z_e.size) * (m_z_e + np.abs(codebook[k]))
    dx = _abs_encoder_backward(arch, params, x, np.abs(x), d_z_q + a["commitment_weight"] * g, grads)
    return {"params": grads, "codebook": _scatter(codebook, k, g), "x": dx + d_x_hat}
