"""The independent port's estimators chapter: `torch.distributions` log densities throughout.

Written apart from `vaespec.impl.likelihoods`/`estimators` and the reference: the likelihoods are
`Normal(x̂, e^{ℓ/2}).log_prob` and `Bernoulli(logits=l).log_prob` (not the spec's closed forms); the
log importance weights are differences of `torch.distributions` log densities (decoder, prior,
posterior) rather than the spec's cancelled form ½Σ(lv + ε² − z²); log_mean_exp is `torch.logsumexp`;
the lookup is `torch.nn.functional.embedding`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal

from .bodies import Bodies
from .independent_vae import decode, encode, reparameterize


def _gaussian(x_hat, x, log_var, axes=(-1,)):
    return Normal(x_hat, torch.exp(0.5 * log_var), validate_args=False).log_prob(x).sum(axes)


def _bernoulli(logits, x, axes=(-1,)):
    return Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(axes)  # x in [0, 1], binary or not


def _event(x):
    """The contract's x [batch, *event]: a likelihood sums every event axis at once (the reference flattens)."""
    return tuple(range(1, x.dim()))


def _log_mean_exp(w):
    return torch.logsumexp(w, 0) - math.log(w.shape[0])


def _log_weights(a):
    mu, log_var = encode(a["arch"], a["params"], a["x"])
    sigma = torch.exp(0.5 * log_var)
    z = reparameterize(mu, log_var, a["eps"])
    event = tuple(a["x"].shape[1:])  # (D,) dense, (C, H, W) conv: x̂ [K, B, *event], scored over its event axes
    x_hat = decode(a["arch"], a["params"], z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], *event)  # addmm is 2-D
    axes = tuple(range(-len(event), 0))
    if a["likelihood"] == "gaussian":
        log_lik = _gaussian(x_hat, a["x"], a["decoder_log_var"].expand_as(x_hat), axes)
    else:
        log_lik = _bernoulli(x_hat, a["x"], axes)
    prior = Normal(torch.zeros_like(z), torch.ones_like(z), validate_args=False).log_prob(z).sum(-1)
    posterior = Normal(mu, sigma, validate_args=False).log_prob(z).sum(-1)
    return log_lik + prior - posterior


ESTIMATORS = Bodies()
ESTIMATORS.add("gaussian_log_likelihood", lambda a: (_gaussian(a["x_hat"], a["x"], a["log_var"], _event(a["x"])),))
ESTIMATORS.add("bernoulli_log_likelihood", lambda a: (_bernoulli(a["logits"], a["x"], _event(a["x"])),))
ESTIMATORS.add("log_mean_exp", lambda a: (_log_mean_exp(a["log_weights"]),))
ESTIMATORS.add("log_importance_weights", lambda a: (_log_weights(a),))
ESTIMATORS.add("elbo", lambda a: (_log_weights(a).mean(0),))
ESTIMATORS.add("iwae_bound", lambda a: (_log_mean_exp(_log_weights(a)),))
ESTIMATORS.add("reconstruct", lambda a: (decode(a["arch"], a["params"], encode(a["arch"], a["params"], a["x"])[0]),))
ESTIMATORS.add("embedding_lookup", lambda a: (F.embedding(a["indices"], a["table"]),))
