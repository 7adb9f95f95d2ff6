"""Magnitudes of the estimators chapter for the tolerance policy (see `vaespec.reference.magnitude`).

`magnitude(f, args)` is structured like `f`'s output and `vjp_magnitude(f, args, ȳ)` like its
VJP; each entry is the computation redone on absolute values, with every error-propagating
derivative replaced by its absolute value, which `vaespec.spec.tolerances` multiplies by γ_n.
With r = x − x̂ and M_x̂ the decoder's magnitude (upstream error of x̂):

    gaussian          ½ Σ_d (log 2π + |ℓ| + (|r| + M_x̂)² e^{−ℓ})
    bernoulli         Σ_d ((|x| + 1)(|l| + M_l) + log 2)  (|x − σ(l)| ≤ |x| + 1 carries δl)
    log_mean_exp      max_k M_w + 2 max_k |w| + log K + 1  (w − m rounds at |w| + |m|; softmax-weighted δw)
    log weights       the likelihood at x̂ = decode(z) plus ½ Σ_j (M_lv + ε² + 2 M_z²)
    elbo              mean_k of the log-weight magnitudes; iwae: log_mean_exp's rule on them
    reconstruct       the decoder's magnitude at the encoder's μ magnitude
    embedding_lookup  |table[i]|  (a copy)

Gradients: gaussian x̂̄ = |ȳ|(|r| + M_x̂)e^{−ℓ}, ℓ̄ = |ȳ|·½(1 + (|r| + M_x̂)² e^{−ℓ}); bernoulli
l̄ = |ȳ|(|x| + 1 + ¼ M_l), x̄ = |ȳ|(|l| + M_l); log_mean_exp w̄_k = |ȳ| p_k (1 + |w_k| + |m| + log K
+ 2 max_j M_w,j): exp(w_k − m) errs by |w_k − m|·u, and p_k by the forward error of the weights it
is computed from; the network backward runs `vaespec.reference.magnitude`'s rules.
"""

from __future__ import annotations

import math

import numpy as np
from vaespec.spec.estimators import LOG_2PI

from . import vae
from .activations import sigmoid
from .estimators import _network, _softmax
from vaespec.spec.estimators import FUNCTIONS
from .magnitude import (
    _abs_decode_backward,
    _abs_encode_backward,
    _abs_reparameterize_backward,
    _decode,
    _encode,
    _latent,
    _zeros,
)

_LOG_2 = math.log(2.0)


def _gaussian(r, m_x_hat, log_var):
    return 0.5 * np.sum(LOG_2PI + np.abs(log_var) + (np.abs(r) + m_x_hat) ** 2 * np.exp(-log_var), axis=-1)


def _bernoulli(logits, m_logits, x):
    return np.sum((np.abs(x) + 1.0) * (np.abs(logits) + m_logits) + _LOG_2, axis=-1)


def _lme(w, m_w):
    k = w.shape[0]
    return np.max(m_w, axis=0) + 2.0 * np.max(np.abs(w), axis=0) + math.log(k) + 1.0


def _network_magnitude(a):
    """(log w, M(log w) [K, B], tape) for the network functions."""
    arch, params, x, eps, dlv = a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"]
    particles, batch, latent = eps.shape
    log_w, t = _network(arch, params, x, eps, dlv, a["likelihood"])
    m_z, (_, m_lv) = _latent(arch, params, x, eps)
    m_x_hat = _decode(arch, params, m_z.reshape(particles * batch, latent)).reshape(t["x_hat"].shape)
    if a["likelihood"] == "gaussian":
        m_ll = _gaussian(x - t["x_hat"], m_x_hat, np.broadcast_to(dlv, m_x_hat.shape))
    else:
        m_ll = _bernoulli(t["x_hat"], m_x_hat, x)
    m_w = m_ll + 0.5 * np.sum(m_lv + eps ** 2 + 2.0 * m_z ** 2, axis=-1)
    return log_w, m_w, {**t, "m_z": m_z, "m_lv": m_lv, "m_x_hat": m_x_hat}


def magnitude(function: str, args):
    """Error scale of estimators-chapter `function` at `args`, structured like its output."""
    a = args
    if function == "gaussian_log_likelihood":
        return _gaussian(a["x"] - a["x_hat"], 0.0, a["log_var"])
    if function == "bernoulli_log_likelihood":
        return _bernoulli(a["logits"], 0.0, a["x"])
    if function == "log_mean_exp":
        return _lme(a["log_weights"], np.abs(a["log_weights"]))
    if function == "embedding_lookup":
        return np.abs(a["table"][a["indices"]])
    if function == "reconstruct":
        return _decode(a["arch"], a["params"], _encode(a["arch"], a["params"], np.abs(a["x"]))[0])
    log_w, m_w, _ = _network_magnitude(a)
    if function == "log_importance_weights":
        return m_w
    if function == "elbo":
        return m_w.mean(axis=0)
    if function == "iwae_bound":
        return _lme(log_w, m_w)
    raise KeyError(function)


def _lme_backward(w, m_w, ct):
    m = np.max(w, axis=0)
    return ct * _softmax(w) * (1.0 + np.abs(w) + np.abs(m) + math.log(w.shape[0]) + 2.0 * np.max(m_w, axis=0))


def _network_backward(a, function, ct):
    arch, params, x, eps, dlv = a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"]
    particles, batch, latent = eps.shape
    log_w, m_w, t = _network_magnitude(a)
    if function == "log_importance_weights":
        dm = ct
    elif function == "elbo":
        dm = np.broadcast_to(ct / particles, (particles, batch))
    else:
        dm = _lme_backward(log_w, m_w, ct)
    x_hat, m_x_hat = t["x_hat"], t["m_x_hat"]
    if a["likelihood"] == "gaussian":
        inv_var = np.exp(-np.broadcast_to(dlv, x_hat.shape))
        spread = np.abs(x - x_hat) + m_x_hat
        d_x_hat = dm[..., None] * spread * inv_var
        d_x_direct = d_x_hat
        d_dlv = np.sum(dm[..., None] * 0.5 * (1.0 + spread ** 2 * inv_var), axis=(0, 1))
    else:
        d_x_hat = dm[..., None] * (np.abs(x) + 1.0 + 0.25 * m_x_hat)
        d_x_direct = dm[..., None] * (np.abs(x_hat) + m_x_hat)
        d_dlv = np.zeros_like(dlv)
    grads = _zeros(params)
    flat = particles * batch
    d_z = _abs_decode_backward(arch, params, t["z"].reshape(flat, latent), t["m_z"].reshape(flat, latent),
                               d_x_hat.reshape(flat, -1), grads).reshape(particles, batch, latent)
    d_z = d_z + dm[..., None] * t["m_z"]
    d_mu, d_lv = _abs_reparameterize_backward(t["log_var"], t["m_lv"], eps, d_z)
    d_lv = d_lv.sum(axis=0) + 0.5 * dm.sum(axis=0)[:, None]
    d_x = _abs_encode_backward(arch, params, x, np.abs(x), d_mu.sum(axis=0), d_lv, grads)
    return {"params": grads, "x": d_x + d_x_direct.sum(axis=0), "decoder_log_var": d_dlv}


def vjp_magnitude(function: str, args, cotangent):
    """Error scale of `vjp(function, args, cotangent)` for an estimators-chapter function."""
    a, ct = args, np.abs(np.asarray(cotangent, dtype=np.float64))
    if function == "gaussian_log_likelihood":
        r, inv_var = np.abs(a["x"] - a["x_hat"]), np.exp(-a["log_var"])
        d = ct[:, None] * r * inv_var
        return {"x_hat": d, "x": d, "log_var": ct[:, None] * 0.5 * (1.0 + r ** 2 * inv_var)}
    if function == "bernoulli_log_likelihood":
        return {"logits": ct[:, None] * (np.abs(a["x"]) + sigmoid(np.abs(a["logits"]))),
                "x": ct[:, None] * np.abs(a["logits"])}
    if function == "log_mean_exp":
        w = a["log_weights"]
        return {"log_weights": _lme_backward(w, np.abs(w), ct)}
    if function == "embedding_lookup":
        d_table = np.zeros_like(a["table"])
        np.add.at(d_table, a["indices"], ct)
        return {"table": d_table}
    if function == "reconstruct":
        arch, params, x = a["arch"], a["params"], a["x"]
        grads = _zeros(params)
        mu = vae.encode(arch, params, x)[0]
        m_mu = _encode(arch, params, np.abs(x))[0]
        d_mu = _abs_decode_backward(arch, params, mu, m_mu, ct, grads)
        return {"params": grads, "x": _abs_encode_backward(arch, params, x, np.abs(x), d_mu, 0.0 * d_mu, grads)}
    if function in ("log_importance_weights", "elbo", "iwae_bound"):
        return _network_backward(a, function, ct)
    raise KeyError(function)
