"""The independent port's Bayesian chapter, and the three estimators its laws call.

Written apart from `vaespec.impl.evidence` and the reference: the evidence is
`torch.distributions.LowRankMultivariateNormal(b, cov_factor=W, cov_diag=σ²)` (its capacitance
form, neither the reference's Woodbury algebra nor the impl's D×D Cholesky); the posterior is
`torch.linalg.solve` and `torch.linalg.inv`; the log importance weights are differences of
`torch.distributions` log densities (prior, posterior, decoder) rather than the spec's cancelled
form ½Σ(lv + ε² − z²).
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Bernoulli, LowRankMultivariateNormal, Normal

from .bodies import Bodies
from .independent_vae import decode, encode, reparameterize


def _evidence(a):
    w, b = a["weight"], a["bias"]
    var = torch.full_like(b, math.exp(a["noise_log_var"]))
    return (LowRankMultivariateNormal(b, cov_factor=w, cov_diag=var, validate_args=False).log_prob(a["x"]),)


def _posterior(a):
    w = a["weight"]
    var = math.exp(a["noise_log_var"])
    m = w.T @ w + var * torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    return torch.linalg.solve(m, w.T @ (a["x"] - a["bias"]).T).T, var * torch.linalg.inv(m)


def _log_weights(a):
    mu, log_var = encode(a["arch"], a["params"], a["x"])
    sigma = torch.exp(0.5 * log_var)
    z = reparameterize(mu, log_var, a["eps"])
    x_hat = decode(a["arch"], a["params"], z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)  # addmm is 2-D
    if a["likelihood"] == "gaussian":
        scale = torch.exp(0.5 * a["decoder_log_var"]).expand_as(x_hat)
        log_lik = Normal(x_hat, scale, validate_args=False).log_prob(a["x"]).sum(-1)
    else:
        log_lik = Bernoulli(logits=x_hat, validate_args=False).log_prob(a["x"]).sum(-1)
    prior = Normal(torch.zeros_like(z), torch.ones_like(z), validate_args=False).log_prob(z).sum(-1)
    posterior = Normal(mu, sigma, validate_args=False).log_prob(z).sum(-1)
    return log_lik + prior - posterior


BAYES = Bodies()
BAYES.add("linear_gaussian_log_evidence", _evidence)
BAYES.add("linear_gaussian_posterior", _posterior)
# the estimators the Bayesian laws evaluate the exact evidence against
BAYES.add("log_importance_weights", lambda a: (_log_weights(a),))
BAYES.add("elbo", lambda a: (_log_weights(a).mean(0),))
BAYES.add("iwae_bound", lambda a: (torch.logsumexp(_log_weights(a), 0) - math.log(a["eps"].shape[0]),))
