"""Monte-Carlo ELBO, the IWAE bound, and the two paths of a VAE, in torch.

With `(μ, lv) = encoder(x)`, noise `eps` `[particles, batch, latent]`, z_k = μ + e^{½lv} ⊙ ε_k:

    log w_k          = log p(x | z_k) + ½ Σ_j (lv_j + ε_kj² − z_kj²)     (log p(z_k) − log q(z_k | x))
    elbo             = mean_k log w_k                                    [batch]
    iwae_bound       = logsumexp_k log w_k − log K                       [batch]
    reconstruct(x)   = decoder(μ(x))                                     (quivers' encoder >> decoder)
    generate(ε)      = decoder(ε)                                        (quivers' prior >> decoder)

`likelihood` is any callable `(x̂ [particles, batch, output], x [batch, output]) -> [particles,
batch]` (`vaespec.impl.likelihoods`). Noise is an argument: draw it with
`torch.randn(..., generator=g)` or from a key (`vaespec.impl.keys.normal_like`), never from a
hidden global generator. `EstimatorsMethods` puts these functions behind the contract
(`vaespec.spec.estimators.EstimatorsBackend`) for `TorchBackend`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from vaespec.spec.estimators import validate

from .likelihoods import bernoulli_log_likelihood, gaussian_log_likelihood

Likelihood = Callable[[Tensor, Tensor], Tensor]


def log_mean_exp(log_weights: Tensor, dim: int = 0) -> Tensor:
    """`log (1/K Σ_k e^{w_k}) = logsumexp_k(w) − log K` along `dim` (max-shifted: no overflow).

    **Arguments** `log_weights`: any tensor; `dim`: the particle axis (default 0).
    **Returns** the tensor without `dim`.
    """
    return torch.logsumexp(log_weights, dim) - math.log(log_weights.shape[dim])


def log_importance_weights(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """`log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, σ²)` for K particles.

    **Arguments**
    - `encoder`: returns `{"mu", "log_var"}` for `x`; `decoder`: maps `[..., latent]` to `[..., output]`.
    - `x`: `[batch, input]`; `eps`: `[particles, batch, latent]` standard normal noise.
    - `likelihood`: `(x̂, x) -> log p(x | z)` over the last axis.

    **Returns** `[particles, batch]`.
    """
    out = encoder(x)
    mu, log_var = out["mu"], out["log_var"]
    z = mu + torch.exp(0.5 * log_var) * eps
    # log N(z; 0, I) − log N(z; μ, σ²) = ½ Σ_j (lv_j + ε_j² − z_j²): the ½ log 2π terms cancel.
    return likelihood(decoder(z), x) + 0.5 * (log_var + eps * eps - z * z).sum(-1)


def elbo(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """Monte-Carlo ELBO with K = `eps.shape[0]` particles: `mean_k log w_k`, `[batch]`."""
    return log_importance_weights(encoder, decoder, x, eps, likelihood).mean(0)


def iwae_bound(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """Importance-weighted bound `log_mean_exp_k log w_k`, `[batch]`; with many particles, an estimate of log p(x)."""
    return log_mean_exp(log_importance_weights(encoder, decoder, x, eps, likelihood), 0)


def reconstruct(encoder, decoder, x: Tensor) -> Tensor:
    """The reconstruction path at the posterior mean: `decoder(μ(x))` (= forward(x, ε = 0))."""
    return decoder(encoder(x)["mu"])


def generate(decoder, eps: Tensor) -> Tensor:
    """The generative path: decode a prior sample, `decoder(ε)` with ε ~ N(0, I) given."""
    return decoder(eps)


def contract_likelihood(name: str, decoder_log_var: Tensor) -> Likelihood:
    """The contract's likelihood `name` as a callable: "gaussian" with `decoder_log_var`, or "bernoulli"."""
    if name == "gaussian":
        return lambda x_hat, x: gaussian_log_likelihood(x_hat, x, decoder_log_var, validate=False)
    return lambda logits, x: bernoulli_log_likelihood(logits, x, validate=False)


_NETWORK = {"log_importance_weights": log_importance_weights, "elbo": elbo, "iwae_bound": iwae_bound}


class EstimatorsMethods:
    """The estimators chapter on torch (mixed into `TorchBackend`); needs its `_evaluate`, `_call`, `_tensor`,
    `_device` and `_dtype`."""

    _device: torch.device
    _dtype: torch.dtype

    def _evaluate_estimators(self, function: str, args: Mapping[str, Any], leaves: dict | None) -> tuple:
        """The torch computation of `function` on contract-validated `args`; records leaves for `vjp`."""
        args = validate(function, args)  # the chapter's own rules (likelihood, Bernoulli range)
        t: dict[str, Tensor] = {}
        for arg in (a for a in _spec(function).args if a.kind == "array"):
            t[arg.name] = self._tensor(args[arg.name])
            if leaves is not None and arg.differentiable:
                leaves[arg.name] = t[arg.name].requires_grad_()
        if function == "gaussian_log_likelihood":
            return (gaussian_log_likelihood(t["x_hat"], t["x"], t["log_var"], validate=False),)
        if function == "bernoulli_log_likelihood":
            return (bernoulli_log_likelihood(t["logits"], t["x"], validate=False),)
        if function == "log_mean_exp":
            return (log_mean_exp(t["log_weights"]),)
        if function == "embedding_lookup":
            from .embedding import embedding_lookup

            indices = torch.as_tensor(np.asarray(args["indices"], dtype=np.int64), device=self._device)
            return (embedding_lookup(t["table"], indices, validate=False),)
        encoder, decoder = self._modules(args["arch"], args["params"])
        if leaves is not None:
            leaves["params"] = {f"{name}.{kind}": getattr(linear, attr) for module in (encoder, decoder)
                                for name, linear in module.dense_layers()
                                for kind, attr in (("kernel", "weight"), ("bias", "bias"))}
        if function == "reconstruct":
            return (reconstruct(encoder, decoder, t["x"]),)
        likelihood = contract_likelihood(args["likelihood"], t["decoder_log_var"])
        return (_NETWORK[function](encoder, decoder, t["x"], t["eps"], likelihood),)

    def gaussian_log_likelihood(self, x_hat, x, log_var):
        return self._call("gaussian_log_likelihood", x_hat=x_hat, x=x, log_var=log_var)

    def bernoulli_log_likelihood(self, logits, x):
        return self._call("bernoulli_log_likelihood", logits=logits, x=x)

    def log_mean_exp(self, log_weights):
        return self._call("log_mean_exp", log_weights=log_weights)

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._call("log_importance_weights", arch=arch, params=params, x=x, eps=eps,
                          decoder_log_var=decoder_log_var, likelihood=likelihood)

    def elbo(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._call("elbo", arch=arch, params=params, x=x, eps=eps, decoder_log_var=decoder_log_var,
                          likelihood=likelihood)

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._call("iwae_bound", arch=arch, params=params, x=x, eps=eps, decoder_log_var=decoder_log_var,
                          likelihood=likelihood)

    def reconstruct(self, arch, params, x):
        return self._call("reconstruct", arch=arch, params=params, x=x)

    def embedding_lookup(self, table, indices):
        return self._call("embedding_lookup", table=table, indices=indices)


def _spec(function: str):
    from vaespec.spec.contract import FUNCTIONS

    return FUNCTIONS[function]
