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

from vaespec.spec.errors import ConfigError, DTypeError, ShapeError, VaespecError, describe, show
from vaespec.spec.estimators import LIKELIHOODS

from .likelihoods import bernoulli_log_likelihood, gaussian_log_likelihood

Likelihood = Callable[[Tensor, Tensor], Tensor]

# These run every training step, so they check metadata only (types, ranks, sizes, dtypes, devices: no data
# read, no CUDA sync); values follow IEEE arithmetic as the modules' forward does.


def _module(name: str, value) -> None:
    if isinstance(value, type) or not callable(value):
        raise DTypeError(f"{name}: expected a module or callable (such as a vaespec.impl Encoder or Decoder), "
                         f"got {describe(value)}")


def _tensor(name: str, value, rank: int | None = None, like: Tensor | None = None) -> Tensor:
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.layout != torch.strided \
            or value.device.type == "meta":
        raise DTypeError(f"{name}: expected a dense floating-point torch.Tensor, got {describe(value)}")
    if (rank is not None and value.dim() != rank) or 0 in value.shape:
        raise ShapeError(f"{name}: expected a non-empty tensor of rank {rank}, got shape {tuple(value.shape)}")
    if like is not None and (value.dtype != like.dtype or value.device != like.device):
        raise DTypeError(f"{name}: expected dtype {like.dtype} on {like.device} to match x, got {value.dtype} on "
                         f"{value.device}")
    return value


def _run(name: str, module, inputs: dict):
    """`module(*inputs)`, a failure inside it reported naming the module and its inputs (a mismatched module,
    likelihood or input shape)."""
    try:
        return module(*inputs.values())
    except VaespecError:
        raise
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
        given = ", ".join(f"{k} of shape {tuple(v.shape)}" for k, v in inputs.items() if isinstance(v, Tensor))
        raise DTypeError(f"{name}: calling it on {given} failed ({type(error).__name__}: {error})") from error


def _encode(encoder, x: Tensor) -> tuple[Tensor, Tensor]:
    _module("encoder", encoder)
    _tensor("x", x, 2)
    out = _run("encoder", encoder, {"x": x})
    if not isinstance(out, Mapping) or not all(isinstance(out.get(k), Tensor) for k in ("mu", "log_var")):
        raise DTypeError(f"encoder: expected it to return {{'mu': tensor, 'log_var': tensor}}, got {describe(out)}")
    return out["mu"], out["log_var"]


def log_mean_exp(log_weights: Tensor, dim: int = 0) -> Tensor:
    """`log (1/K Σ_k e^{w_k}) = logsumexp_k(w) − log K` along `dim` (max-shifted: no overflow).

    **Arguments** `log_weights`: any tensor; `dim`: the particle axis (default 0).
    **Returns** the tensor without `dim`.
    """
    _tensor("log_weights", log_weights)
    if isinstance(dim, bool) or not isinstance(dim, int) or not -log_weights.dim() <= dim < log_weights.dim():
        raise ConfigError(f"dim: expected an axis of the {log_weights.dim()}-d log_weights, got {show(dim)}")
    return torch.logsumexp(log_weights, dim) - math.log(log_weights.shape[dim])


def log_importance_weights(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """`log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, σ²)` for K particles.

    **Arguments**
    - `encoder`: returns `{"mu", "log_var"}` for `x`; `decoder`: maps `[..., latent]` to `[..., output]`.
    - `x`: `[batch, input]`; `eps`: `[particles, batch, latent]` standard normal noise.
    - `likelihood`: `(x̂, x) -> log p(x | z)` over the last axis.

    **Returns** `[particles, batch]`.
    """
    mu, log_var = _encode(encoder, x)
    _tensor("eps", eps, 3, x)
    _module("decoder", decoder)
    _module("likelihood", likelihood)
    if tuple(eps.shape[1:]) != tuple(mu.shape):
        raise ShapeError(f"eps: expected [particles, batch, latent] = [K, {', '.join(map(str, mu.shape))}] to match "
                         f"encoder(x), got {tuple(eps.shape)}")
    z = mu + torch.exp(0.5 * log_var) * eps
    # log N(z; 0, I) − log N(z; μ, σ²) = ½ Σ_j (lv_j + ε_j² − z_j²): the ½ log 2π terms cancel.
    ll = _run("likelihood", likelihood, {"decoder(z)": _run("decoder", decoder, {"z (from x and eps)": z}), "x": x})
    if not isinstance(ll, Tensor) or tuple(ll.shape) != tuple(eps.shape[:2]):
        raise ShapeError(f"likelihood: expected it to return [particles, batch] = {list(eps.shape[:2])}, got "
                         f"{describe(ll)}")
    return ll + 0.5 * (log_var + eps * eps - z * z).sum(-1)


def elbo(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """Monte-Carlo ELBO with K = `eps.shape[0]` particles: `mean_k log w_k`, `[batch]`."""
    return log_importance_weights(encoder, decoder, x, eps, likelihood).mean(0)


def iwae_bound(encoder, decoder, x: Tensor, eps: Tensor, likelihood: Likelihood) -> Tensor:
    """Importance-weighted bound `log_mean_exp_k log w_k`, `[batch]`; with many particles, an estimate of log p(x)."""
    return log_mean_exp(log_importance_weights(encoder, decoder, x, eps, likelihood), 0)


def reconstruct(encoder, decoder, x: Tensor) -> Tensor:
    """The reconstruction path at the posterior mean: `decoder(μ(x))` (= forward(x, ε = 0))."""
    mu, _ = _encode(encoder, x)
    _module("decoder", decoder)
    return _run("decoder", decoder, {"mu (from x)": mu})


def generate(decoder, eps: Tensor) -> Tensor:
    """The generative path: decode a prior sample, `decoder(ε)` with ε ~ N(0, I) given."""
    _module("decoder", decoder)
    _tensor("eps", eps)
    return _run("decoder", decoder, {"eps": eps})


def contract_likelihood(name: str, decoder_log_var: Tensor) -> Likelihood:
    """The contract's likelihood `name` as a callable: "gaussian" with `decoder_log_var` (a float tensor
    broadcastable to x̂, e.g. [output]), or "bernoulli" (which reads no `decoder_log_var`)."""
    if not isinstance(name, str) or name not in LIKELIHOODS:
        raise ConfigError(f"name: expected a likelihood, one of {LIKELIHOODS}, got {show(name)}")
    if name == "gaussian":
        _tensor("decoder_log_var", decoder_log_var)
        return lambda x_hat, x: gaussian_log_likelihood(x_hat, x, decoder_log_var, validate=False)
    return lambda logits, x: bernoulli_log_likelihood(logits, x, validate=False)


_NETWORK = {"log_importance_weights": log_importance_weights, "elbo": elbo, "iwae_bound": iwae_bound}


class EstimatorsMethods:
    """The estimators chapter on torch (mixed into `TorchBackend`); needs its `_evaluate`, `_call`, `_tensor`,
    `_device` and `_dtype`."""

    _device: torch.device
    _dtype: torch.dtype

    def _evaluate_estimators(self, function: str, args: Mapping[str, Any], leaves: dict | None) -> tuple:
        """The torch computation of `function` on `args` validated by `validate_args` (which applies the chapter's
        rules: likelihood, Bernoulli range); records leaves for `vjp`."""
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
