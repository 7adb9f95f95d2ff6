"""The exact evidence and posterior of the linear-Gaussian VAE (probabilistic PCA), in torch.

For `x = W z + b + σ·ν`, z ~ N(0, I_L), ν ~ N(0, I_D), σ² = e^ℓ:

    linear_gaussian_log_evidence(x) = log N(x; b, W Wᵀ + σ² I_D)     (D×D Cholesky, torch.distributions)
    linear_gaussian_posterior(x)    = (M⁻¹ Wᵀ (x − b), σ² M⁻¹),  M = WᵀW + σ² I_L   (L×L Cholesky)

The float64 reference computes the evidence the other way (determinant lemma and Woodbury on
the L×L matrix M), so `linear_gaussian_log_evidence_matches_reference` compares two
derivations. Both are differentiable by autograd; `vaespec.impl.bayes_bodies` puts them behind
the contract (`vaespec.spec.bayes.BayesBackend`) for `TorchBackend`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def linear_gaussian_log_evidence(x: Tensor, weight: Tensor, bias: Tensor, noise_log_var: float | Tensor) -> Tensor:
    """`log N(x; b, W Wᵀ + σ² I)` per row of `x` [..., output]; `weight` [output, latent], `bias` [output]."""
    output = weight.shape[0]
    var = torch.exp(torch.as_tensor(noise_log_var, dtype=weight.dtype, device=weight.device))
    covariance = weight @ weight.T + var * torch.eye(output, dtype=weight.dtype, device=weight.device)
    return torch.distributions.MultivariateNormal(bias, covariance_matrix=covariance).log_prob(x)


def linear_gaussian_posterior(x: Tensor, weight: Tensor, bias: Tensor, noise_log_var: float | Tensor
                              ) -> tuple[Tensor, Tensor]:
    """`(M⁻¹ Wᵀ (x − b) [batch, latent], σ² M⁻¹ [latent, latent])`, M = WᵀW + σ² I."""
    latent = weight.shape[1]
    var = torch.exp(torch.as_tensor(noise_log_var, dtype=weight.dtype, device=weight.device))
    chol = torch.linalg.cholesky(weight.T @ weight + var * torch.eye(latent, dtype=weight.dtype, device=weight.device))
    mean = torch.cholesky_solve(((x - bias) @ weight).T, chol).T
    return mean, var * torch.cholesky_inverse(chol)


def log_normal_prior(value: Tensor, scale: float) -> Tensor:
    """`Σ log N(value; 0, scale²)` over every entry (the prior on θ, `vaespec.spec.bayes.PRIOR_SCALE`)."""
    return (-0.5 * (value / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)).sum()
