"""The Bayesian model of `vaespec.spec.bayes` as Pyro models, and its parameter-space log density.

`linear_gaussian_model(x, latent, noise_log_var)` is the "exact" kind: the linear decoder's
parameters θ in the contract's layout are Pyro sample sites with the prior N(0, s²) per entry,

    decoder_output.kernel ~ N(0, s²) [latent, output]     (W = kernelᵀ)
    decoder_output.bias   ~ N(0, s²) [output]

and the data enter through one factor site, `log_evidence` = Σ_n linear_gaussian_log_evidence(x_n),
the exact log p(x | θ) with z integrated out. The site is named for what it is: the surrogate
kinds of the spec ("elbo", "iwae") would be other sites, never `log_evidence`.

`bias_model(x, weight, noise_log_var)` fixes W and samples only b: the posterior is then Gaussian
in closed form (`conjugate_bias_posterior`), which the tests hold NUTS and SVI to.

quivers' `lift_from_log_prob(prog, log_prob_fn, parameter_prior_scale, …)` is what these
functions do by hand: every parameter becomes a sample site with a Normal prior, and the
program's log-probability becomes the likelihood term.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from vaespec.spec.bayes import PRIOR_SCALE

from ..evidence import linear_gaussian_log_evidence, log_normal_prior

KERNEL, BIAS, EVIDENCE_SITE = "decoder_output.kernel", "decoder_output.bias", "log_evidence"


def import_pyro():
    """`(pyro, pyro.distributions)`, or a `ConfigError` naming the missing `bayes` extra."""
    try:
        import pyro
        import pyro.distributions as dist
    except ImportError as error:  # the optional `bayes` extra
        from vaespec.spec.errors import ConfigError
        raise ConfigError("vaespec bayes needs Pyro: pip install -c constraints.txt 'vaespec[bayes]'") from error
    return pyro, dist


def _prior(dist: Any, shape: tuple[int, ...], scale: float, like: Tensor) -> Any:
    zero = torch.zeros((), dtype=like.dtype, device=like.device)
    return dist.Normal(zero, zero + scale).expand(list(shape)).to_event(len(shape))


def linear_gaussian_model(x: Tensor, latent: int, noise_log_var: float, prior_scale: float = PRIOR_SCALE) -> None:
    """Pyro model: θ = (kernel [latent, output], bias [output]) ~ N(0, s²); factor `log_evidence` =
    Σ_n log N(x_n; b, W Wᵀ + σ² I) with W = kernelᵀ, σ² = e^noise_log_var (exact)."""
    pyro, dist = import_pyro()
    output = x.shape[1]
    kernel = pyro.sample(KERNEL, _prior(dist, (latent, output), prior_scale, x))
    bias = pyro.sample(BIAS, _prior(dist, (output,), prior_scale, x))
    pyro.factor(EVIDENCE_SITE, linear_gaussian_log_evidence(x, kernel.T, bias, noise_log_var).sum())


def bias_model(x: Tensor, weight: Tensor, noise_log_var: float, prior_scale: float = PRIOR_SCALE) -> None:
    """Pyro model with W fixed: bias ~ N(0, s² I), factor `log_evidence` as `linear_gaussian_model`."""
    pyro, dist = import_pyro()
    bias = pyro.sample(BIAS, _prior(dist, (x.shape[1],), prior_scale, x))
    pyro.factor(EVIDENCE_SITE, linear_gaussian_log_evidence(x, weight, bias, noise_log_var).sum())


def log_joint(x: Tensor, theta: dict[str, Tensor], noise_log_var: float, prior_scale: float = PRIOR_SCALE) -> Tensor:
    """`log p(θ, X) = Σ_i log N(θ_i; 0, s²) + Σ_n linear_gaussian_log_evidence(x_n)` at θ, computed directly."""
    prior = sum(log_normal_prior(v, prior_scale) for v in theta.values())
    return prior + linear_gaussian_log_evidence(x, theta[KERNEL].T, theta[BIAS], noise_log_var).sum()


def conjugate_bias_posterior(x: Tensor, weight: Tensor, noise_log_var: float, prior_scale: float = PRIOR_SCALE
                             ) -> tuple[Tensor, Tensor, Tensor]:
    """The exact posterior of b in `bias_model`: x_n ~ N(b, C) iid, b ~ N(0, s² I), C = W Wᵀ + σ² I:

        Λ = I/s² + N C⁻¹,   b | X ~ N(Λ⁻¹ C⁻¹ Σ_n x_n, Λ⁻¹)

    and the mean-field Normal closest to it in KL(q ‖ p) (the optimum of SVI with `AutoNormal`):
    the same mean, standard deviations 1/√Λ_dd. Returns `(mean, covariance, mean_field_scale)`."""
    output = x.shape[1]
    eye = torch.eye(output, dtype=x.dtype)
    c_inv = torch.linalg.inv(weight @ weight.T + math.exp(noise_log_var) * eye)
    precision = eye / prior_scale ** 2 + x.shape[0] * c_inv
    covariance = torch.linalg.inv(precision)
    mean = covariance @ (c_inv @ x.sum(0))
    return mean, covariance, torch.diagonal(precision).rsqrt()


def predictive(theta: dict[str, Tensor], noise_log_var: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """One draw of x = W z + b + σ ν per posterior sample θ_s (z, ν standard normal from `generator`);
    returns `(W z + b, x)`: the noise-free decoder output and the predictive draw."""
    kernel, bias = theta[KERNEL], theta[BIAS]  # [S, latent, output], [S, output]
    z = torch.randn(kernel.shape[:2], generator=generator, dtype=kernel.dtype)
    noise = torch.randn(bias.shape, generator=generator, dtype=bias.dtype)
    mean = torch.einsum("sl,slo->so", z, kernel) + bias
    return mean, mean + math.exp(0.5 * noise_log_var) * noise
