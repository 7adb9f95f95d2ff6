"""What the estimators chapter's functions share (`vaespec.reference.estimators`): the likelihood sums,
log-mean-exp, and the importance-weighted network with its backward pass, on values and on magnitudes.

    gaussian(x̂, x, ℓ)   Σ_d log N(x_d; x̂_d, e^ℓ_d)      bernoulli(l, x)   Σ_d (x_d l_d − softplus(l_d))
    log_mean_exp(w)     m + log Σ_k e^{w_k − m} − log K   softmax(w)        e^{w_k − m} / Σ_j e^{w_j − m}
    weights             log w_k = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²),  z_k = μ + e^{½lv} ⊙ ε_k

with the VJPs and magnitude rules stated in `vaespec.reference.estimators`. Everything here takes
checked arguments (`validate_args`), except `checked_weights`, which checks them.
"""

from __future__ import annotations

import math

import numpy as np

from vaespec.spec.contract import validate_args
from vaespec.spec.estimators import LOG_2PI

from . import network
from .activations import sigmoid, softplus
from .boundary import finite, finite_gradients, zero_gradients
from .elementwise import gaussian_log_density
from .vae import latent_magnitude, reparameterize_backward_magnitude

_LOG_2 = math.log(2.0)


def gaussian(x_hat, x, log_var):
    # The accurate elementwise density (≤ 2 ulps of its magnitude; the one-line formula errs by ~3).
    return np.sum(gaussian_log_density(x, x_hat, log_var), axis=-1)


def gaussian_backward(x_hat, x, log_var, d):
    scaled = (x - x_hat) * np.exp(-log_var)
    d_x_hat = d[..., None] * scaled
    return d_x_hat, -d_x_hat, d[..., None] * 0.5 * ((x - x_hat) * scaled - 1.0)


def gaussian_magnitude(r, m_x_hat, log_var):
    return 0.5 * np.sum(LOG_2PI + np.abs(log_var) + (np.abs(r) + m_x_hat) ** 2 * np.exp(-log_var), axis=-1)


def bernoulli(logits, x):
    return np.sum(x * logits - softplus(logits), axis=-1)


def bernoulli_backward(logits, x, d):
    return d[..., None] * (x - sigmoid(logits)), d[..., None] * logits


def bernoulli_magnitude(logits, m_logits, x):
    return np.sum((np.abs(x) + 1.0) * (np.abs(logits) + m_logits) + _LOG_2, axis=-1)


def log_mean_exp(w):
    m = w.max(axis=0)
    return m + np.log(np.exp(w - m).sum(axis=0)) - np.log(w.shape[0])


def softmax(w):
    e = np.exp(w - w.max(axis=0))
    return e / e.sum(axis=0)


def log_mean_exp_magnitude(w, m_w):
    k = w.shape[0]
    return np.max(m_w, axis=0) + 2.0 * np.max(np.abs(w), axis=0) + math.log(k) + 1.0


def log_mean_exp_backward_magnitude(w, m_w, ct):
    m = np.max(w, axis=0)
    return ct * softmax(w) * (1.0 + np.abs(w) + np.abs(m) + math.log(w.shape[0]) + 2.0 * np.max(m_w, axis=0))


def _flat(x):
    """x [B, *event] as [B, ∏event] (C order): a conv VAE's image, scored entry by entry as the dense one's row."""
    return x.reshape(x.shape[0], -1)


def weights(arch, params, x, eps, decoder_log_var, likelihood, function="log_importance_weights"):
    """Everything the log-weights and their VJP need: (log w [K, B], tape); log w is refused if not finite."""
    particles, batch, latent = eps.shape
    mu, log_var = network.apply(network.encoder(arch), params, x)  # checked below, by this function's name
    with np.errstate(over="ignore", invalid="ignore"):
        sigma = np.exp(0.5 * log_var)
        z = mu + sigma * eps
        finite(function, (mu, log_var, z))
        x_hat = network.apply(network.decoder(arch), params, z.reshape(particles * batch, latent))[0]
        x_hat = x_hat.reshape(particles, batch, -1)  # [K, B, ∏event]: the likelihood sums every event entry
        finite(function, x_hat)
    if likelihood == "gaussian":
        ll = gaussian(x_hat, _flat(x), np.broadcast_to(decoder_log_var.reshape(-1), x_hat.shape))
    else:
        ll = bernoulli(x_hat, _flat(x))
    with np.errstate(over="ignore", invalid="ignore"):
        log_w = ll + 0.5 * np.sum(log_var + eps ** 2 - z ** 2, axis=-1)
    finite(function, log_w)
    return log_w, {"mu": mu, "log_var": log_var, "sigma": sigma, "z": z, "x_hat": x_hat}


def checked_weights(function, args):
    """(checked args, log w) of a network estimator, its intermediates checked under `function`'s name."""
    a = validate_args(function, args)
    return a, weights(a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"], a["likelihood"], function)[0]


def weights_backward(a, d_log_w, function):
    """VJP of `log_importance_weights` at the checked `a` for the cotangent `d_log_w` [K, B]."""
    arch, params, x, eps, decoder_log_var = a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"]
    particles, batch, latent = eps.shape
    _, t = weights(arch, params, x, eps, decoder_log_var, a["likelihood"], function)
    if a["likelihood"] == "gaussian":
        d_x_hat, d_x, d_lv = gaussian_backward(t["x_hat"], _flat(x),
                                                np.broadcast_to(decoder_log_var.reshape(-1), t["x_hat"].shape), d_log_w)
        d_decoder_log_var = d_lv.sum(axis=(0, 1)).reshape(decoder_log_var.shape)
    else:
        d_x_hat, d_x = bernoulli_backward(t["x_hat"], _flat(x), d_log_w)
        d_decoder_log_var = np.zeros_like(decoder_log_var)
    grads = zero_gradients(params)
    z_flat = t["z"].reshape(particles * batch, latent)
    d_z = network.backward(network.decoder(arch), params, z_flat, (d_x_hat.reshape(particles * batch, *x.shape[1:]),),
                           grads)
    d_z = d_z.reshape(particles, batch, latent) - d_log_w[..., None] * t["z"]
    d_mu = d_z.sum(axis=0)
    d_log_var = (d_z * 0.5 * t["sigma"] * eps).sum(axis=0) + 0.5 * d_log_w.sum(axis=0)[:, None]
    d_x_encoder = network.backward(network.encoder(arch), params, x, (d_mu, d_log_var), grads)
    return finite_gradients(function, {"params": grads, "x": d_x_encoder + d_x.sum(axis=0).reshape(x.shape),
                                       "decoder_log_var": d_decoder_log_var})


def weights_magnitude(a):
    """(log w, M(log w) [K, B], tape) at the checked `a`."""
    arch, params, x, eps, dlv = a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"]
    particles, batch, latent = eps.shape
    log_w, t = weights(arch, params, x, eps, dlv, a["likelihood"])
    m_z, (_, m_lv) = latent_magnitude(arch, params, x, eps)
    m_x_hat = network.magnitude(network.decoder(arch), params, m_z.reshape(particles * batch, latent))[0]
    m_x_hat = m_x_hat.reshape(t["x_hat"].shape)
    if a["likelihood"] == "gaussian":
        m_ll = gaussian_magnitude(_flat(x) - t["x_hat"], m_x_hat, np.broadcast_to(dlv.reshape(-1), m_x_hat.shape))
    else:
        m_ll = bernoulli_magnitude(t["x_hat"], m_x_hat, _flat(x))
    m_w = m_ll + 0.5 * np.sum(m_lv + eps ** 2 + 2.0 * m_z ** 2, axis=-1)
    return log_w, m_w, {**t, "m_z": m_z, "m_lv": m_lv, "m_x_hat": m_x_hat}


def weights_backward_magnitude(a, t, dm):
    """`weights_backward` on magnitudes for the cotangent magnitude `dm` [K, B]."""
    arch, params, x, eps, dlv = a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"]
    particles, batch, latent = eps.shape
    x_hat, m_x_hat, x_flat = t["x_hat"], t["m_x_hat"], _flat(x)
    if a["likelihood"] == "gaussian":
        inv_var = np.exp(-np.broadcast_to(dlv.reshape(-1), x_hat.shape))
        spread = np.abs(x_flat - x_hat) + m_x_hat
        d_x_hat = dm[..., None] * spread * inv_var
        d_x_direct = d_x_hat
        d_dlv = np.sum(dm[..., None] * 0.5 * (1.0 + spread ** 2 * inv_var), axis=(0, 1)).reshape(dlv.shape)
    else:
        d_x_hat = dm[..., None] * (np.abs(x_flat) + 1.0 + 0.25 * m_x_hat)
        d_x_direct = dm[..., None] * (np.abs(x_hat) + m_x_hat)
        d_dlv = np.zeros_like(dlv)
    grads = zero_gradients(params)
    flat = particles * batch
    d_z = network.magnitude_backward(network.decoder(arch), params, t["z"].reshape(flat, latent),
                                     t["m_z"].reshape(flat, latent), (d_x_hat.reshape(flat, *x.shape[1:]),), grads)
    d_z = d_z.reshape(particles, batch, latent) + dm[..., None] * t["m_z"]
    d_mu, d_lv = reparameterize_backward_magnitude(t["log_var"], t["m_lv"], eps, d_z)
    d_lv = d_lv.sum(axis=0) + 0.5 * dm.sum(axis=0)[:, None]
    d_x = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x), (d_mu.sum(axis=0), d_lv), grads)
    return {"params": grads, "x": d_x + d_x_direct.sum(axis=0).reshape(x.shape), "decoder_log_var": d_dlv}
