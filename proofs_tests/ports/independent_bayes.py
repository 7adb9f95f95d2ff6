"""The independent port's Bayesian chapter (the estimators its laws call are `independent_estimators`).

Written apart from `vaespec.impl.evidence` and the reference: the evidence is
`torch.distributions.LowRankMultivariateNormal(b, cov_factor=W, cov_diag=σ²)` (its capacitance
form, neither the reference's Woodbury algebra nor the impl's D×D Cholesky); the posterior is
`torch.linalg.solve` and `torch.linalg.inv`.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import LowRankMultivariateNormal

from .bodies import Bodies


def _evidence(a):
    w, b = a["weight"], a["bias"]
    var = torch.full_like(b, math.exp(a["noise_log_var"]))
    return (LowRankMultivariateNormal(b, cov_factor=w, cov_diag=var, validate_args=False).log_prob(a["x"]),)


def _posterior(a):
    w = a["weight"]
    var = math.exp(a["noise_log_var"])
    m = w.T @ w + var * torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    return torch.linalg.solve(m, w.T @ (a["x"] - a["bias"]).T).T, var * torch.linalg.inv(m)


BAYES = Bodies()
BAYES.add("linear_gaussian_log_evidence", _evidence)
BAYES.add("linear_gaussian_posterior", _posterior)
