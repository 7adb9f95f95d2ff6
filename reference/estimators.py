"""The estimators chapter in float64: likelihoods, ELBO, IWAE, reconstruct, embedding lookup, each
function's forward, VJP, magnitude and VJP magnitude side by side.

Formulas (`vaespec.spec.estimators`, docs/estimators.md):

    gaussian_log_likelihood(x̂, x, ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})
    bernoulli_log_likelihood(l, x)    = Σ_d (x_d l_d − softplus(l_d))
    log_mean_exp(w)                   = m + log Σ_k e^{w_k − m} − log K,   m = max_k w_k
    log_importance_weights            = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²)
    elbo = mean_k log w_k;  iwae_bound = log_mean_exp_k log w_k
    reconstruct(x) = decode(μ(x));  embedding_lookup(T, i) = T[i]

and their hand-written vector-Jacobian products:

    gaussian:     x̂̄ = ȳ (x − x̂) e^{−ℓ},  x̄ = −x̂̄,  ℓ̄ = ½ ȳ ((x − x̂)² e^{−ℓ} − 1)
    bernoulli:    l̄ = ȳ (x − σ(l)),  x̄ = ȳ l
    log_mean_exp: w̄_k = ȳ · softmax_k(w)
    log weights:  z̄_k = decode_vjp(ℓ̄_x̂) − ȳ_k z_k;  μ̄ = Σ_k z̄_k;  lv̄ = Σ_k (z̄_k ½σε_k + ½ ȳ_k)
    elbo:         ȳ_k = ȳ / K;  iwae: ȳ_k = ȳ · softmax_k(log w)
    embedding:    T̄ = one_hot(i)ᵀ · ȳ  (repeated indices accumulate)

**Magnitudes** (the tolerance policy's M): each computation redone on absolute values, with every
error-propagating derivative replaced by its absolute value. With r = x − x̂ and M_x̂ the
decoder's magnitude (upstream error of x̂):

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
is computed from; the network backward runs `network`'s rules on magnitudes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import validate_args, validate_vjp

from . import importance, network
from .activations import sigmoid
from .boundary import finite, finite_gradients, zero_gradients
from .function import ReferenceFunction
from .vae import decode, encode


def _rows(a: Mapping[str, Any], *names: str) -> tuple[np.ndarray, ...]:
    """The named [batch, *event] arguments as [batch, ∏event] (C order, views): a likelihood sums every event axis,
    bitwise as on the flattened example, and the particle-carrying helpers of `importance` sum the last axis."""
    return tuple(a[n].reshape(a[n].shape[0], -1) for n in names)


def _events(shape: tuple[int, ...], grads: dict) -> dict:
    """Gradients computed on the flattened rows, back in the arguments' [batch, *event] shape."""
    return {n: g.reshape(shape) for n, g in grads.items()}


def _abs(cotangent):
    return np.abs(np.asarray(cotangent, dtype=np.float64))


# ----------------------------------------------------------------------------- gaussian_log_likelihood
def gaussian_log_likelihood(x_hat, x, log_var):
    """Diagonal Gaussian decoder: `log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})`.

    **Arguments** `x_hat`, `x`, `log_var`: [batch, *event] (ℓ fixed or learned, per entry); d runs over all
    ∏event entries of an example ([batch, output] for the dense network's).
    **Returns** [batch] log-densities.
    """
    a = validate_args("gaussian_log_likelihood", {"x_hat": x_hat, "x": x, "log_var": log_var})
    return finite("gaussian_log_likelihood", importance.gaussian(*_rows(a, "x_hat", "x", "log_var")))


def gaussian_log_likelihood_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (d,) = validate_vjp("gaussian_log_likelihood", args, cotangent)
    x_hat, x, log_var = _rows(a, "x_hat", "x", "log_var")
    d_x_hat, d_x, d_lv = importance.gaussian_backward(x_hat, x, log_var, d)
    return finite_gradients("gaussian_log_likelihood",
                            _events(a["x"].shape, {"x_hat": d_x_hat, "x": d_x, "log_var": d_lv}))


def gaussian_log_likelihood_magnitude(args):
    a = validate_args("gaussian_log_likelihood", args)
    x_hat, x, log_var = _rows(a, "x_hat", "x", "log_var")
    return importance.gaussian_magnitude(x - x_hat, 0.0, log_var)


def gaussian_log_likelihood_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("gaussian_log_likelihood", args, cotangent)
    ct = _abs(ct)
    r, inv_var = np.abs(a["x"] - a["x_hat"]), np.exp(-a["log_var"])
    ct = ct.reshape(ct.shape + (1,) * (a["x"].ndim - 1))  # [batch, 1, …]: one per example, over its event
    d = ct * r * inv_var
    return {"x_hat": d, "x": d, "log_var": ct * 0.5 * (1.0 + r ** 2 * inv_var)}


GAUSSIAN_LOG_LIKELIHOOD = ReferenceFunction("gaussian_log_likelihood", gaussian_log_likelihood,
                                            gaussian_log_likelihood_magnitude, gaussian_log_likelihood_vjp,
                                            gaussian_log_likelihood_vjp_magnitude)


# ----------------------------------------------------------------------------- bernoulli_log_likelihood
def bernoulli_log_likelihood(logits, x):
    """Bernoulli decoder with logits: `Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d)`.

    **Arguments** `logits` [batch, *event]; `x` [batch, *event] in [0, 1]; d runs over all ∏event entries of an
    example ([batch, output] for the dense network's).
    **Returns** [batch] log-probabilities (≤ 0).
    """
    a = validate_args("bernoulli_log_likelihood", {"logits": logits, "x": x})
    return finite("bernoulli_log_likelihood", importance.bernoulli(*_rows(a, "logits", "x")))


def bernoulli_log_likelihood_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (d,) = validate_vjp("bernoulli_log_likelihood", args, cotangent)
    logits, x = _rows(a, "logits", "x")
    d_logits, d_x = importance.bernoulli_backward(logits, x, d)
    return finite_gradients("bernoulli_log_likelihood", _events(a["x"].shape, {"logits": d_logits, "x": d_x}))


def bernoulli_log_likelihood_magnitude(args):
    a = validate_args("bernoulli_log_likelihood", args)
    logits, x = _rows(a, "logits", "x")
    return importance.bernoulli_magnitude(logits, 0.0, x)


def bernoulli_log_likelihood_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("bernoulli_log_likelihood", args, cotangent)
    ct = _abs(ct)
    ct = ct.reshape(ct.shape + (1,) * (a["x"].ndim - 1))  # [batch, 1, …]: one per example, over its event
    return {"logits": ct * (np.abs(a["x"]) + sigmoid(np.abs(a["logits"]))), "x": ct * np.abs(a["logits"])}


BERNOULLI_LOG_LIKELIHOOD = ReferenceFunction("bernoulli_log_likelihood", bernoulli_log_likelihood,
                                             bernoulli_log_likelihood_magnitude, bernoulli_log_likelihood_vjp,
                                             bernoulli_log_likelihood_vjp_magnitude)


# ----------------------------------------------------------------------------- log_mean_exp
def log_mean_exp(log_weights):
    """`log (1/K Σ_k e^{w_k}) = m + log Σ_k e^{w_k − m} − log K`, m = max_k w_k (no overflow).

    **Arguments** `log_weights` [particles, batch]. **Returns** [batch].
    """
    a = validate_args("log_mean_exp", {"log_weights": log_weights})
    return finite("log_mean_exp", importance.log_mean_exp(a["log_weights"]))


def log_mean_exp_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (d,) = validate_vjp("log_mean_exp", args, cotangent)
    return finite_gradients("log_mean_exp", {"log_weights": d * importance.softmax(a["log_weights"])})


def log_mean_exp_magnitude(args):
    w = validate_args("log_mean_exp", args)["log_weights"]
    return importance.log_mean_exp_magnitude(w, np.abs(w))


def log_mean_exp_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("log_mean_exp", args, cotangent)
    w = a["log_weights"]
    return {"log_weights": importance.log_mean_exp_backward_magnitude(w, np.abs(w), _abs(ct))}


LOG_MEAN_EXP = ReferenceFunction("log_mean_exp", log_mean_exp, log_mean_exp_magnitude, log_mean_exp_vjp,
                                 log_mean_exp_vjp_magnitude)


# ----------------------------------------------------------------------------- the network estimators
def log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood):
    """`log w_k = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²)`, z_k = μ + e^{½lv} ⊙ ε_k.

    **Arguments** `arch`, `params`; `x` [batch, input]; `eps` [particles, batch, latent];
    `decoder_log_var` [output] (Gaussian log σ²; unused by "bernoulli"); `likelihood`
    "gaussian" or "bernoulli" (x̂ are then logits).
    **Returns** [particles, batch].
    """
    return importance.checked_weights("log_importance_weights", {"arch": arch, "params": params, "x": x, "eps": eps,
                                                   "decoder_log_var": decoder_log_var, "likelihood": likelihood})[1]


def log_importance_weights_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (d_log_w,) = validate_vjp("log_importance_weights", args, cotangent)
    return importance.weights_backward(a, d_log_w, "log_importance_weights")


def log_importance_weights_magnitude(args):
    return importance.weights_magnitude(validate_args("log_importance_weights", args))[1]


def log_importance_weights_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("log_importance_weights", args, cotangent)
    return importance.weights_backward_magnitude(a, importance.weights_magnitude(a)[2], _abs(ct))


LOG_IMPORTANCE_WEIGHTS = ReferenceFunction("log_importance_weights", log_importance_weights,
                                           log_importance_weights_magnitude, log_importance_weights_vjp,
                                           log_importance_weights_vjp_magnitude)


def elbo(arch, params, x, eps, decoder_log_var, likelihood):
    """Monte-Carlo ELBO with K particles: `(1/K) Σ_k log w_k`; arguments as `log_importance_weights`.

    **Returns** [batch].
    """
    _, log_w = importance.checked_weights("elbo", {"arch": arch, "params": params, "x": x, "eps": eps,
                                     "decoder_log_var": decoder_log_var, "likelihood": likelihood})
    return finite("elbo", log_w.mean(axis=0))


def elbo_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """The log-weights' VJP for ȳ_k = ȳ / K."""
    a, (d,) = validate_vjp("elbo", args, cotangent)
    particles, batch = a["eps"].shape[:2]
    return importance.weights_backward(a, np.broadcast_to(d / particles, (particles, batch)), "elbo")


def elbo_magnitude(args):
    return importance.weights_magnitude(validate_args("elbo", args))[1].mean(axis=0)


def elbo_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("elbo", args, cotangent)
    particles, batch = a["eps"].shape[:2]
    return importance.weights_backward_magnitude(a, importance.weights_magnitude(a)[2],
                                       np.broadcast_to(_abs(ct) / particles, (particles, batch)))


ELBO = ReferenceFunction("elbo", elbo, elbo_magnitude, elbo_vjp, elbo_vjp_magnitude)


def iwae_bound(arch, params, x, eps, decoder_log_var, likelihood):
    """Importance-weighted bound: `log_mean_exp_k(log w_k)`; arguments as `log_importance_weights`.

    **Returns** [batch]; with many particles, the importance-sampled estimate of log p(x).
    """
    _, log_w = importance.checked_weights("iwae_bound", {"arch": arch, "params": params, "x": x, "eps": eps,
                                           "decoder_log_var": decoder_log_var, "likelihood": likelihood})
    return finite("iwae_bound", importance.log_mean_exp(log_w))


def iwae_bound_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """The log-weights' VJP for ȳ_k = ȳ · softmax_k(log w)."""
    a, (d,) = validate_vjp("iwae_bound", args, cotangent)
    log_w = importance.weights(a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"], a["likelihood"],
                               "iwae_bound")[0]
    return importance.weights_backward(a, d * importance.softmax(log_w), "iwae_bound")


def iwae_bound_magnitude(args):
    log_w, m_w, _ = importance.weights_magnitude(validate_args("iwae_bound", args))
    return importance.log_mean_exp_magnitude(log_w, m_w)


def iwae_bound_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("iwae_bound", args, cotangent)
    log_w, m_w, t = importance.weights_magnitude(a)
    return importance.weights_backward_magnitude(a, t, importance.log_mean_exp_backward_magnitude(log_w, m_w, _abs(ct)))


IWAE_BOUND = ReferenceFunction("iwae_bound", iwae_bound, iwae_bound_magnitude, iwae_bound_vjp,
                               iwae_bound_vjp_magnitude)


# ----------------------------------------------------------------------------- reconstruct
def reconstruct(arch, params, x):
    """The reconstruction path (quivers' encoder >> decoder) at the posterior mean: `decode(μ(x))`.

    **Returns** [batch, output].
    """
    a = validate_args("reconstruct", {"arch": arch, "params": params, "x": x})
    return finite("reconstruct", decode(arch, a["params"], encode(arch, a["params"], a["x"])[0]))


def reconstruct_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """decode's VJP at μ, then encode's with lv̄ = 0."""
    a, (d_x_hat,) = validate_vjp("reconstruct", args, cotangent)
    arch, params, x = a["arch"], a["params"], a["x"]
    grads = zero_gradients(params)
    decode(arch, params, encode(arch, params, x)[0])  # the forward's domain is the VJP's
    d_mu = network.backward(network.decoder(arch), params, encode(arch, params, x)[0], (d_x_hat,), grads)
    d_x = network.backward(network.encoder(arch), params, x, (d_mu, np.zeros_like(d_mu)), grads)
    return finite_gradients("reconstruct", {"params": grads, "x": d_x})


def reconstruct_magnitude(args):
    a = validate_args("reconstruct", args)
    arch, params = a["arch"], a["params"]
    m_mu = network.magnitude(network.encoder(arch), params, np.abs(a["x"]))[0]
    return network.magnitude(network.decoder(arch), params, m_mu)[0]


def reconstruct_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("reconstruct", args, cotangent)
    arch, params, x = a["arch"], a["params"], a["x"]
    grads = zero_gradients(params)
    mu = encode(arch, params, x)[0]
    m_mu = network.magnitude(network.encoder(arch), params, np.abs(x))[0]
    d_mu = network.magnitude_backward(network.decoder(arch), params, mu, m_mu, (_abs(ct),), grads)
    dx = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x), (d_mu, 0.0 * d_mu), grads)
    return {"params": grads, "x": dx}


RECONSTRUCT = ReferenceFunction("reconstruct", reconstruct, reconstruct_magnitude, reconstruct_vjp,
                                reconstruct_vjp_magnitude)


# ----------------------------------------------------------------------------- embedding_lookup
def embedding_lookup(table, indices):
    """The first layer of a discrete-input encoder: `table[indices] = one_hot(indices) · table`.

    **Arguments** `table` [categories, embedding]; `indices` [batch] integers in [0, categories).
    **Returns** [batch, embedding].
    """
    a = validate_args("embedding_lookup", {"table": table, "indices": indices})
    return a["table"][a["indices"]]


def embedding_lookup_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`T̄ = one_hot(i)ᵀ · ȳ`: repeated indices accumulate."""
    a, (d,) = validate_vjp("embedding_lookup", args, cotangent)
    d_table = np.zeros_like(a["table"])
    np.add.at(d_table, a["indices"], d)
    return finite_gradients("embedding_lookup", {"table": d_table})


def embedding_lookup_magnitude(args):
    a = validate_args("embedding_lookup", args)
    return np.abs(a["table"][a["indices"]])


def embedding_lookup_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, (ct,) = validate_vjp("embedding_lookup", args, cotangent)
    d_table = np.zeros_like(a["table"])
    np.add.at(d_table, a["indices"], _abs(ct))
    return {"table": d_table}


EMBEDDING_LOOKUP = ReferenceFunction("embedding_lookup", embedding_lookup, embedding_lookup_magnitude,
                                     embedding_lookup_vjp, embedding_lookup_vjp_magnitude)

REFERENCE_FUNCTIONS = (GAUSSIAN_LOG_LIKELIHOOD, BERNOULLI_LOG_LIKELIHOOD, LOG_MEAN_EXP, LOG_IMPORTANCE_WEIGHTS, ELBO,
                       IWAE_BOUND, RECONSTRUCT, EMBEDDING_LOOKUP)
