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
hidden global generator. `vaespec.impl.estimators_bodies` puts these functions behind the contract
(`vaespec.spec.estimators.EstimatorsBackend`) for `TorchBackend`.

The estimators here take modules (`encoder`, `decoder`) and a likelihood callable, where the
contract functions of the same names take `(arch, params, …, decoder_log_var, likelihood)`: see
each docstring, and docs/impl.md for the table of such pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from vaespec.spec.errors import ConfigError, DTypeError, ShapeError, VaespecError, describe, show
from vaespec.spec.estimators import LIKELIHOODS

from .likelihoods import bernoulli_log_likelihood, gaussian_log_likelihood

Likelihood = Callable[[Tensor, Tensor], Tensor]

# These run every training step, so they check metadata only (types, ranks, sizes, dtypes, devices: no data
# read, no CUDA sync); values follow IEEE arithmetic as the modules' forward does.


def _module(name: str, value: object) -> None:
    if isinstance(value, type) or not callable(value):
        raise DTypeError(f"{name}: expected a module or callable (such as a vaespec.impl Encoder or Decoder), "
                         f"got {describe(value)}")


def _tensor(name: str, value: object, rank: int | None = None, like: Tensor | None = None) -> Tensor:
    if not isinstance(value, Tensor) or not value.is_floating_point() or value.layout != torch.strided \
            or value.device.type == "meta":
        raise DTypeError(f"{name}: expected a dense floating-point torch.Tensor, got {describe(value)}")
    if (rank is not None and value.dim() != rank) or 0 in value.shape:
        raise ShapeError(f"{name}: expected a non-empty tensor of rank {rank}, got shape {tuple(value.shape)}")
    if like is not None and (value.dtype != like.dtype or value.device != like.device):
        raise DTypeError(f"{name}: expected dtype {like.dtype} on {like.device} to match x, got {value.dtype} on "
                         f"{value.device}")
    return value


def _run(name: str, module: Callable[..., Any], inputs: dict) -> Any:
    """`module(*inputs)`, a failure inside it reported naming the module and its inputs (a mismatched module,
    likelihood or input shape)."""
    try:
        return module(*inputs.values())
    except VaespecError:
        raise
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError, KeyError) as error:
        given = ", ".join(f"{k} of shape {tuple(v.shape)}" for k, v in inputs.items() if isinstance(v, Tensor))
        raise DTypeError(f"{name}: calling it on {given} failed ({type(error).__name__}: {error})") from error


def _encode(encoder: Callable[..., Any], x: Tensor) -> tuple[Tensor, Tensor]:
    _module("encoder", encoder)
    _tensor("x", x)
    if x.dim() < 2:
        raise ShapeError(f"x: expected [batch, *event] (rank ≥ 2: [batch, input] dense, [batch, C, H, W] conv), got "
                         f"shape {tuple(x.shape)}")
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


def log_importance_weights(encoder: Callable[..., Any], decoder: Callable[..., Any], x: Tensor, eps: Tensor,
                           likelihood: Likelihood) -> Tensor:
    """`log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, σ²)` for K particles.

    Module-level: not the contract's `log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood)`,
    which builds the modules from `arch` and `params` and names its likelihood: this takes the modules and a
    likelihood callable (`contract_likelihood` makes one from the contract's name and `decoder_log_var`).

    **Arguments**
    - `encoder`: returns `{"mu", "log_var"}` for `x`; `decoder`: maps `[n, latent]` to `[n, *event]`.
    - `x`: `[batch, *event]` (`[batch, input]` dense, `[batch, C, H, W]` conv); `eps`: `[particles, batch, latent]`
      standard normal noise.
    - `likelihood`: `(x̂, x) -> log p(x | z)` over the last axis; it receives x̂ `[particles, batch, ∏event]` and
      x `[batch, ∏event]`, every event flattened in C order (an image is scored entry by entry).

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
    x_hat = _run("decoder", decoder, {"z (from x and eps)": z.reshape(-1, z.shape[-1])})  # [K·B, *event]
    if not isinstance(x_hat, Tensor) or x_hat.numel() != eps.shape[0] * x.numel():
        raise ShapeError(f"decoder: expected [particles · batch, *event] = [{eps.shape[0] * x.shape[0]}, "
                         f"{', '.join(map(str, x.shape[1:]))}] (x̂ shaped as x), got {describe(x_hat)}")
    ll = _run("likelihood", likelihood, {"decoder(z)": x_hat.reshape(*eps.shape[:2], -1),
                                         "x": x.reshape(x.shape[0], -1)})
    if not isinstance(ll, Tensor) or tuple(ll.shape) != tuple(eps.shape[:2]):
        raise ShapeError(f"likelihood: expected it to return [particles, batch] = {list(eps.shape[:2])}, got "
                         f"{describe(ll)}")
    return ll + 0.5 * (log_var + eps * eps - z * z).sum(-1)


def elbo(encoder: Callable[..., Any], decoder: Callable[..., Any], x: Tensor, eps: Tensor,
         likelihood: Likelihood) -> Tensor:
    """Monte-Carlo ELBO with K = `eps.shape[0]` particles: `mean_k log w_k`, `[batch]`.

    Module-level: not the contract's `elbo(arch, params, x, eps, decoder_log_var, likelihood)`; the arguments
    are `log_importance_weights`'."""
    return log_importance_weights(encoder, decoder, x, eps, likelihood).mean(0)


def iwae_bound(encoder: Callable[..., Any], decoder: Callable[..., Any], x: Tensor, eps: Tensor,
               likelihood: Likelihood) -> Tensor:
    """Importance-weighted bound `log_mean_exp_k log w_k`, `[batch]`; with many particles, an estimate of log p(x).

    Module-level: not the contract's `iwae_bound(arch, params, x, eps, decoder_log_var, likelihood)`; the
    arguments are `log_importance_weights`'."""
    return log_mean_exp(log_importance_weights(encoder, decoder, x, eps, likelihood), 0)


def reconstruct(encoder: Callable[..., Any], decoder: Callable[..., Any], x: Tensor) -> Tensor:
    """The reconstruction path at the posterior mean: `decoder(μ(x))` (= forward(x, ε = 0)).

    Module-level: not the contract's `reconstruct(arch, params, x)`, which builds the modules from `arch` and
    `params`: this takes them."""
    mu, _ = _encode(encoder, x)
    _module("decoder", decoder)
    return _run("decoder", decoder, {"mu (from x)": mu})


def generate(decoder: Callable[..., Any], eps: Tensor) -> Tensor:
    """The generative path: decode a prior sample, `decoder(ε)` with ε ~ N(0, I) given.

    Module-level: not the contract's `generate(arch, params, eps)`, which builds the decoder from `arch` and
    `params`: this takes it."""
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
