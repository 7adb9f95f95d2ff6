"""The estimators chapter in float64 NumPy: likelihoods, ELBO, IWAE, reconstruct, embedding lookup.

Formulas (`vaespec.spec.estimators`, docs/estimators.md):

    gaussian_log_likelihood(x̂, x, ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})
    bernoulli_log_likelihood(l, x)    = Σ_d (x_d l_d − softplus(l_d))
    log_mean_exp(w)                   = m + log Σ_k e^{w_k − m} − log K,   m = max_k w_k
    log_importance_weights            = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²)
    elbo = mean_k log w_k;  iwae_bound = log_mean_exp_k log w_k
    reconstruct(x) = decode(μ(x));  embedding_lookup(T, i) = T[i]

and their hand-written vector-Jacobian products (`vjp`):

    gaussian:     x̂̄ = ȳ (x − x̂) e^{−ℓ},  x̄ = −x̂̄,  ℓ̄ = ½ ȳ ((x − x̂)² e^{−ℓ} − 1)
    bernoulli:    l̄ = ȳ (x − σ(l)),  x̄ = ȳ l
    log_mean_exp: w̄_k = ȳ · softmax_k(w)
    log weights:  z̄_k = decode_vjp(ℓ̄_x̂) − ȳ_k z_k;  μ̄ = Σ_k z̄_k;  lv̄ = Σ_k (z̄_k ½σε_k + ½ ȳ_k)
    elbo:         ȳ_k = ȳ / K;  iwae: ȳ_k = ȳ · softmax_k(log w)
    embedding:    T̄ = one_hot(i)ᵀ · ȳ  (repeated indices accumulate)
"""

from __future__ import annotations

import numpy as np
from vaespec.spec.contract import validate_vjp
from vaespec.spec.errors import ConfigError, show
from vaespec.spec.estimators import FUNCTIONS, validate

from . import gradients, vae
from .activations import sigmoid


def _softplus(y):
    return np.maximum(y, 0.0) + np.log1p(np.exp(-np.abs(y)))


# ----------------------------------------------------------------------------- forward
def _gaussian(x_hat, x, log_var):
    # The accurate elementwise density (≤ 2 ulps of its magnitude; the one-line formula errs by ~3).
    return np.sum(vae.gaussian_log_density(x, x_hat, log_var), axis=-1)


def _bernoulli(logits, x):
    return np.sum(x * logits - _softplus(logits), axis=-1)


def _log_mean_exp(w):
    m = w.max(axis=0)
    return m + np.log(np.exp(w - m).sum(axis=0)) - np.log(w.shape[0])


def _softmax(w):
    e = np.exp(w - w.max(axis=0))
    return e / e.sum(axis=0)


def _network(arch, params, x, eps, decoder_log_var, likelihood, function="log_importance_weights"):
    """Everything the log-weights and their VJP need: (log w [K, B], tape); log w is refused if not finite."""
    particles, batch, latent = eps.shape
    mu, log_var, _ = vae._encode(arch, params, x)  # checked below as this function's intermediates, by its name
    with np.errstate(over="ignore", invalid="ignore"):
        sigma = np.exp(0.5 * log_var)
        z = mu + sigma * eps
        vae._finite(function, (mu, log_var, z))
        x_hat = vae._decode(arch, params, z.reshape(particles * batch, latent))[0].reshape(particles, batch, -1)
        vae._finite(function, x_hat)
    if likelihood == "gaussian":
        ll = _gaussian(x_hat, x, np.broadcast_to(decoder_log_var, x_hat.shape))
    else:
        ll = _bernoulli(x_hat, x)
    with np.errstate(over="ignore", invalid="ignore"):
        log_w = ll + 0.5 * np.sum(log_var + eps ** 2 - z ** 2, axis=-1)
    vae._finite(function, log_w)
    return log_w, {"mu": mu, "log_var": log_var, "sigma": sigma, "z": z, "x_hat": x_hat}


def gaussian_log_likelihood(x_hat, x, log_var):
    """Diagonal Gaussian decoder: `log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})`.

    **Arguments** `x_hat`, `x`, `log_var`: [batch, output] (ℓ fixed or learned, per entry).
    **Returns** [batch] log-densities.
    """
    a = validate("gaussian_log_likelihood", {"x_hat": x_hat, "x": x, "log_var": log_var})
    return vae._finite("gaussian_log_likelihood", _gaussian(a["x_hat"], a["x"], a["log_var"]))


def bernoulli_log_likelihood(logits, x):
    """Bernoulli decoder with logits: `Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d)`.

    **Arguments** `logits` [batch, output]; `x` [batch, output] in [0, 1].
    **Returns** [batch] log-probabilities (≤ 0).
    """
    a = validate("bernoulli_log_likelihood", {"logits": logits, "x": x})
    return vae._finite("bernoulli_log_likelihood", _bernoulli(a["logits"], a["x"]))


def log_mean_exp(log_weights):
    """`log (1/K Σ_k e^{w_k}) = m + log Σ_k e^{w_k − m} − log K`, m = max_k w_k (no overflow).

    **Arguments** `log_weights` [particles, batch]. **Returns** [batch].
    """
    a = validate("log_mean_exp", {"log_weights": log_weights})
    return vae._finite("log_mean_exp", _log_mean_exp(a["log_weights"]))


def log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood):
    """`log w_k = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²)`, z_k = μ + e^{½lv} ⊙ ε_k.

    **Arguments** `arch`, `params`; `x` [batch, input]; `eps` [particles, batch, latent];
    `decoder_log_var` [output] (Gaussian log σ²; unused by "bernoulli"); `likelihood`
    "gaussian" or "bernoulli" (x̂ are then logits).
    **Returns** [particles, batch].
    """
    a = validate("log_importance_weights", {"arch": arch, "params": params, "x": x, "eps": eps,
                                                "decoder_log_var": decoder_log_var, "likelihood": likelihood})
    return _network(a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"], a["likelihood"])[0]


def _checked_network(function, arch, params, x, eps, decoder_log_var, likelihood):
    a = validate(function, {"arch": arch, "params": params, "x": x, "eps": eps, "decoder_log_var": decoder_log_var,
                            "likelihood": likelihood})
    return _network(a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"], a["likelihood"], function)[0]


def elbo(arch, params, x, eps, decoder_log_var, likelihood):
    """Monte-Carlo ELBO with K particles: `(1/K) Σ_k log w_k`; arguments as `log_importance_weights`.

    **Returns** [batch].
    """
    return vae._finite("elbo", _checked_network("elbo", arch, params, x, eps, decoder_log_var, likelihood).mean(axis=0))


def iwae_bound(arch, params, x, eps, decoder_log_var, likelihood):
    """Importance-weighted bound: `log_mean_exp_k(log w_k)`; arguments as `log_importance_weights`.

    **Returns** [batch]; with many particles, the importance-sampled estimate of log p(x).
    """
    return vae._finite("iwae_bound", _log_mean_exp(_checked_network("iwae_bound", arch, params, x, eps, decoder_log_var,
                                                                     likelihood)))


def reconstruct(arch, params, x):
    """The reconstruction path (quivers' encoder >> decoder) at the posterior mean: `decode(μ(x))`.

    **Returns** [batch, output].
    """
    a = validate("reconstruct", {"arch": arch, "params": params, "x": x})
    return vae._finite("reconstruct", vae.decode(arch, a["params"], vae.encode(arch, a["params"], a["x"])[0]))


def embedding_lookup(table, indices):
    """The first layer of a discrete-input encoder: `table[indices] = one_hot(indices) · table`.

    **Arguments** `table` [categories, embedding]; `indices` [batch] integers in [0, categories).
    **Returns** [batch, embedding].
    """
    a = validate("embedding_lookup", {"table": table, "indices": indices})
    return a["table"][a["indices"]]


# ----------------------------------------------------------------------------- VJPs
def _cotangent(name, value, dims, shape):
    """A cotangent of the output's named shape (`gradients._cotangent`'s checks and messages)."""
    return gradients._cotangent(name, value, dims, dict(zip(dims, shape)))


def _gaussian_backward(x_hat, x, log_var, d):
    scaled = (x - x_hat) * np.exp(-log_var)
    d_x_hat = d[..., None] * scaled
    return d_x_hat, -d_x_hat, d[..., None] * 0.5 * ((x - x_hat) * scaled - 1.0)


def _bernoulli_backward(logits, x, d):
    return d[..., None] * (x - sigmoid(logits)), d[..., None] * logits


def _network_backward(arch, params, x, eps, decoder_log_var, likelihood, d_log_w, function):
    """VJP of `log_importance_weights` for the cotangent `d_log_w` [K, B]."""
    particles, batch, latent = eps.shape
    _, t = _network(arch, params, x, eps, decoder_log_var, likelihood, function)
    if likelihood == "gaussian":
        d_x_hat, d_x, d_lv = _gaussian_backward(t["x_hat"], x, np.broadcast_to(decoder_log_var, t["x_hat"].shape),
                                                d_log_w)
        d_decoder_log_var = d_lv.sum(axis=(0, 1))
    else:
        d_x_hat, d_x = _bernoulli_backward(t["x_hat"], x, d_log_w)
        d_decoder_log_var = np.zeros_like(decoder_log_var)
    grads = gradients._zeros(params)
    z_flat = t["z"].reshape(particles * batch, latent)
    d_z = gradients._decode_backward(arch, params, z_flat, d_x_hat.reshape(particles * batch, -1), grads)
    d_z = d_z.reshape(particles, batch, latent) - d_log_w[..., None] * t["z"]
    d_mu = d_z.sum(axis=0)
    d_log_var = (d_z * 0.5 * t["sigma"] * eps).sum(axis=0) + 0.5 * d_log_w.sum(axis=0)[:, None]
    d_x_encoder = gradients._encode_backward(arch, params, x, d_mu, d_log_var, grads)
    return {"params": grads, "x": d_x_encoder + d_x.sum(axis=0), "decoder_log_var": d_decoder_log_var}


def _network_vjp(function, a, cotangent):
    a = validate(function, a)
    arch, params, x, eps, dlv, lik = (a[k] for k in ("arch", "params", "x", "eps", "decoder_log_var", "likelihood"))
    particles, batch = eps.shape[:2]
    if function == "log_importance_weights":
        d_log_w = _cotangent("d_log_weights", cotangent, ("particles", "batch"), (particles, batch))
    else:
        d = _cotangent(f"d_{function}", cotangent, ("batch",), (batch,))
        if function == "elbo":
            d_log_w = np.broadcast_to(d / particles, (particles, batch))
        else:
            d_log_w = d * _softmax(_network(arch, params, x, eps, dlv, lik, function)[0])
    return vae._finite(function, _network_backward(arch, params, x, eps, dlv, lik, d_log_w, function), "gradient")


def _gaussian_vjp(a, cotangent):
    a = validate("gaussian_log_likelihood", a)
    d = _cotangent("d_log_prob", cotangent, ("batch",), (a["x"].shape[0],))
    d_x_hat, d_x, d_lv = _gaussian_backward(a["x_hat"], a["x"], a["log_var"], d)
    return vae._finite("gaussian_log_likelihood", {"x_hat": d_x_hat, "x": d_x, "log_var": d_lv}, "gradient")


def _bernoulli_vjp(a, cotangent):
    a = validate("bernoulli_log_likelihood", a)
    d = _cotangent("d_log_prob", cotangent, ("batch",), (a["x"].shape[0],))
    d_logits, d_x = _bernoulli_backward(a["logits"], a["x"], d)
    return vae._finite("bernoulli_log_likelihood", {"logits": d_logits, "x": d_x}, "gradient")


def _log_mean_exp_vjp(a, cotangent):
    w = validate("log_mean_exp", a)["log_weights"]
    return vae._finite("log_mean_exp", {"log_weights": _cotangent("d_estimate", cotangent, ("batch",), (w.shape[1],))
                                        * _softmax(w)}, "gradient")


def _reconstruct_vjp(a, cotangent):
    a = validate("reconstruct", a)
    arch, params, x = a["arch"], a["params"], a["x"]
    d_x_hat = _cotangent("d_x_hat", cotangent, ("batch", "output"), (x.shape[0], arch.output_size))
    grads = gradients._zeros(params)
    vae.decode(arch, params, vae.encode(arch, params, x)[0])  # the forward's domain is the VJP's
    d_mu = gradients._decode_backward(arch, params, vae.encode(arch, params, x)[0], d_x_hat, grads)
    d_x = gradients._encode_backward(arch, params, x, d_mu, np.zeros_like(d_mu), grads)
    return vae._finite("reconstruct", {"params": grads, "x": d_x}, "gradient")


def _embedding_vjp(a, cotangent):
    a = validate("embedding_lookup", a)
    table, indices = a["table"], a["indices"]
    d = _cotangent("d_embedded", cotangent, ("batch", "embedding"), (indices.shape[0], table.shape[1]))
    d_table = np.zeros_like(table)
    np.add.at(d_table, indices, d)  # repeated indices accumulate
    return vae._finite("embedding_lookup", {"table": d_table}, "gradient")


_VJPS = {
    "gaussian_log_likelihood": _gaussian_vjp,
    "bernoulli_log_likelihood": _bernoulli_vjp,
    "log_mean_exp": _log_mean_exp_vjp,
    "log_importance_weights": lambda a, ct: _network_vjp("log_importance_weights", a, ct),
    "elbo": lambda a, ct: _network_vjp("elbo", a, ct),
    "iwae_bound": lambda a, ct: _network_vjp("iwae_bound", a, ct),
    "reconstruct": _reconstruct_vjp,
    "embedding_lookup": _embedding_vjp,
}


def vjp(function: str, args, cotangent):
    """VJP of an estimators-chapter `function` at `args` (contract names): `{differentiable arg: gradient}`."""
    if not isinstance(function, str) or function not in _VJPS:
        raise ConfigError(f"function: expected one of {sorted(_VJPS)}, got {show(function)}")
    args, cotangents = validate_vjp(function, args, cotangent)
    return _VJPS[function](args, cotangents[0])


class EstimatorsReferenceMethods:
    """The estimators chapter's functions as backend methods (mixed into `ReferenceBackend`)."""

    gaussian_log_likelihood = staticmethod(gaussian_log_likelihood)
    bernoulli_log_likelihood = staticmethod(bernoulli_log_likelihood)
    log_mean_exp = staticmethod(log_mean_exp)
    log_importance_weights = staticmethod(log_importance_weights)
    elbo = staticmethod(elbo)
    iwae_bound = staticmethod(iwae_bound)
    reconstruct = staticmethod(reconstruct)
    embedding_lookup = staticmethod(embedding_lookup)
