"""The contract's tensor functions in torch: reparameterisation and the loss terms.

Each works for any float dtype on any device and is differentiable by autograd. Each
takes `validate` (default True): shape, dtype and device checks from tensor metadata,
a finiteness check, and the numeric domain of the tensor's dtype
(`vaespec.spec.domains.check_domain`: e.g. the KL's Σ e^log_var must stay representable, so
log_var ≤ 80.4 for 4096 float32 terms). Outside it they raise `DomainError`, never clamp.
The data checks synchronise a CUDA stream and copy the inputs to the host in float64: pass
`validate=False` in a training loop, where IEEE arithmetic (inf, NaN) applies instead.

Conventions (how terms are reduced) are `vaespec.spec.conventions` presets or
`Convention` objects; `None` means the default, "elbo".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vaespec.spec.conventions import Convention, get_convention

from ._checks import check_beta, check_contract_domain, check_tensors

_LATENT = ("batch", "latent")
_OUTPUT = ("batch", "output")
_EVENT = ("batch", "*event")  # reconstruction_loss: whole examples, [batch, output] or [batch, *event]


def _reduce(values: Tensor, how: str, dim: int) -> Tensor:
    return values.sum(dim) if how == "sum" else values.mean(dim)


def reparameterize(mu: Tensor, log_var: Tensor, eps: Tensor, *, validate: bool = True) -> Tensor:
    """The reparameterisation trick: `z = μ + exp(½ log σ²) ⊙ ε`.

    **Arguments**
    - `mu`, `log_var`: `[batch, latent]` mean and log-variance of q(z | x).
    - `eps`: `[batch, latent]` standard normal noise.
    - `validate`: check shapes, dtypes, devices and finiteness first.

    **Returns** `z`, `[batch, latent]`.
    """
    if validate:
        check_tensors({"mu": mu, "log_var": log_var, "eps": eps}, {"mu": _LATENT, "log_var": _LATENT, "eps": _LATENT})
        check_contract_domain("reparameterize", {"mu": mu, "log_var": log_var, "eps": eps})
    return mu + torch.exp(0.5 * log_var) * eps


def kl_divergence(mu: Tensor, log_var: Tensor, convention: str | Convention | None = None, *,
                  validate: bool = True) -> Tensor:
    """KL(q(z | x) ‖ N(0, I)) reduced as the convention says.

    `KL = reduce_batch(reduce_latent(½(exp(lv) + μ² − 1 − lv)))`, each term computed as
    `½(expm1(lv) − lv + μ²)`: `exp(lv) − 1` would lose the small terms near lv = 0 to
    cancellation.

    **Arguments**
    - `mu`, `log_var`: `[batch, latent]`.
    - `convention`: preset name or `Convention` (fields `kl_latent_reduction`, `kl_batch_reduction`).
    - `validate`: check shapes, dtypes, devices and finiteness first.

    **Returns** a 0-d tensor.
    """
    conv = get_convention(convention)
    if validate:
        check_tensors({"mu": mu, "log_var": log_var}, {"mu": _LATENT, "log_var": _LATENT})
        check_contract_domain("kl_divergence", {"mu": mu, "log_var": log_var})
    terms = 0.5 * (torch.expm1(log_var) - log_var + mu * mu)
    return _reduce(_reduce(terms, conv.kl_latent_reduction, -1), conv.kl_batch_reduction, 0)


def reconstruction_loss(x_hat: Tensor, x: Tensor, convention: str | Convention | None = None, *,
                        validate: bool = True) -> Tensor:
    """Squared-error reconstruction term: `R = reduce_batch(scale · reduce_features((x̂ − x)²))`.

    **Arguments**
    - `x_hat`: `[batch, *event]` decoder output (`[batch, output]` for the dense network; an image's
      `[batch, channels, height, width]`): the features reduced over are all ∏event entries of an example.
    - `x`: the target, of `x_hat`'s shape.
    - `convention`: preset name or `Convention` (fields `reconstruction_feature_reduction`,
      `reconstruction_batch_reduction`, `reconstruction_scale`).
    - `validate`: check shapes, dtypes, devices and finiteness first.

    **Returns** a 0-d tensor.
    """
    conv = get_convention(convention)
    if validate:
        check_tensors({"x_hat": x_hat, "x": x}, {"x_hat": _EVENT, "x": _EVENT})
        check_contract_domain("reconstruction_loss", {"x_hat": x_hat, "x": x}, conv)
    # Both reductions are sums or means, so R is one sum of squares times a constant: F.mse_loss is a single
    # fused pass each way, where (x̂ − x)², mean, scale, mean took five (1.12× a hand-written step at B = 1024).
    batch = x_hat.shape[0]
    features = x_hat.numel() // batch  # x [batch, *event]: every entry of an example is a feature
    divisor = ((features if conv.reconstruction_feature_reduction == "mean" else 1)
               * (batch if conv.reconstruction_batch_reduction == "mean" else 1))
    return F.mse_loss(x_hat, x, reduction="sum") * (conv.reconstruction_scale / divisor)


def loss(reconstruction: Tensor, target: Tensor, mu: Tensor, log_var: Tensor, beta: float | Tensor = 1.0,
         convention: str | Convention | None = None, *, validate: bool = True) -> Tensor:
    """The β-VAE objective: `loss = R(x̂, x) + β · KL(μ, log σ²)` (Edifice's argument order).

    On the network's outputs: not the contract's `loss(arch, params, x, eps, beta, convention)`, which runs
    the network (x̂ = decoder(z), z = μ + e^{½ log σ²} ⊙ ε, (μ, log σ²) = encoder(x)) and then this
    (`TorchBackend.loss` is the contract's).

    **Arguments**
    - `reconstruction`: `[batch, output]` decoder output x̂.
    - `target`: `[batch, output]` observed x.
    - `mu`, `log_var`: `[batch, latent]` encoder outputs for the same batch.
    - `beta`: finite weight β ≥ 0 of the KL term (a number or a one-element tensor).
    - `convention`: preset name or `Convention`; see `reconstruction_loss` and `kl_divergence`.
    - `validate`: check shapes, dtypes, devices, finiteness and β first.

    **Returns** a 0-d tensor.
    """
    if validate:
        check_tensors({"reconstruction": reconstruction, "target": target, "mu": mu, "log_var": log_var},
                      {"reconstruction": _OUTPUT, "target": _OUTPUT, "mu": _LATENT, "log_var": _LATENT})
        beta = check_beta(beta)
        check_contract_domain("reconstruction_loss", {"x_hat": reconstruction, "x": target},
                              get_convention(convention), {"x_hat": "reconstruction", "x": "target"})
        check_contract_domain("kl_divergence", {"mu": mu, "log_var": log_var})
    return (reconstruction_loss(reconstruction, target, convention, validate=False)
            + beta * kl_divergence(mu, log_var, convention, validate=False))
