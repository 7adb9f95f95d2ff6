"""Decoder likelihoods with `log_prob`: a Gaussian with fixed or learned σ, a Bernoulli with logits.

    gaussian_log_likelihood(x̂, x, ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})
    bernoulli_log_likelihood(l, x)    = −Σ_d BCEWithLogits(l_d, x_d) = Σ_d (x_d l_d − softplus(l_d))

Both reduce over the last axis, so any leading axes (particles, batch) are kept: a
`[particles, batch, output]` x̂ against a `[batch, output]` x gives `[particles, batch]`.
With ℓ = 0 the Gaussian's negative log-likelihood is ½‖x − x̂‖² + ½D·log 2π: the "elbo"
convention's reconstruction term plus a constant (the law
`gaussian_nll_eq_scaled_reconstruction_loss`).

The modules `GaussianLikelihood` and `BernoulliLikelihood` carry the likelihood's own
parameters (the Gaussian's per-feature log σ², learned or fixed) for training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaespec.spec.errors import ConfigError, DomainError, ShapeError, show
from vaespec.spec.keys import MAX_DRAW
from vaespec.spec.shapes import check_scalar

from ._checks import check_contract_domain, check_tensor, check_tensors
from ._dtypes import torch_device, torch_dtype

LOG_2PI = math.log(2.0 * math.pi)
_OUTPUT = ("batch", "output")


def _check_pair(name: str, value: Tensor, x: Tensor) -> None:
    """`value` [..., batch, output] against `x` [batch, output]: shapes, dtype, device, finiteness of both."""
    if isinstance(value, Tensor) and value.dim() > 2:
        check_tensor(name, value, tuple(f"leading{i}" for i in range(value.dim() - 2)) + _OUTPUT, {}, None)
        value = value[(0,) * (value.dim() - 2)]
    check_tensors({name: value, "x": x}, {name: _OUTPUT, "x": _OUTPUT})


def _check_log_var(log_var: object, x_hat: Tensor) -> Tensor:
    """log σ²: a finite real number, or a finite tensor of x_hat's dtype and device broadcastable to it."""
    if not isinstance(log_var, Tensor):
        return torch.as_tensor(check_scalar("log_var", log_var), dtype=x_hat.dtype, device=x_hat.device)
    check_tensor("log_var", log_var, tuple(f"axis{i}" for i in range(log_var.dim())), {}, x_hat)
    try:
        torch.broadcast_shapes(log_var.shape, x_hat.shape)
    except RuntimeError:
        raise ShapeError(f"log_var: expected a shape broadcastable to x_hat's {tuple(x_hat.shape)} (e.g. [output]), "
                         f"got {tuple(log_var.shape)}") from None
    return log_var


def gaussian_log_likelihood(x_hat: Tensor, x: Tensor, log_var: Tensor | float = 0.0, *,
                            validate: bool = True) -> Tensor:
    """`log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})`, summed over the last axis.

    **Arguments**
    - `x_hat`: `[..., batch, output]` the decoder's mean.
    - `x`: `[batch, output]` the data (broadcast against `x_hat`).
    - `log_var`: log σ², a number (fixed σ) or a tensor broadcastable to `x_hat` (e.g. a learned `[output]`).
    - `validate`: check shapes, dtypes, devices and finiteness first, and the domain
      (`vaespec.spec.domains`: e^(−ℓ) and the row's magnitude finite in the dtype, e.g. ℓ ≥ −88.7 in float32).

    **Returns** `[..., batch]` log-densities.
    """
    if validate:
        _check_pair("x_hat", x_hat, x)
        log_var = _check_log_var(log_var, x_hat)
        check_contract_domain("gaussian_log_likelihood", {"x_hat": x_hat, "x": x, "log_var": log_var})
    if not isinstance(log_var, Tensor):
        log_var = torch.as_tensor(float(log_var), dtype=x_hat.dtype, device=x_hat.device)
    return -0.5 * (LOG_2PI + log_var + (x - x_hat) ** 2 * torch.exp(-log_var)).sum(-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor, *, validate: bool = True) -> Tensor:
    """`Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d)`, summed over the last axis.

    **Arguments**
    - `logits`: `[..., batch, output]` the decoder's output read as logits.
    - `x`: `[batch, output]` data in [0, 1] (binary, or probabilities).
    - `validate`: check shapes, dtypes, devices, finiteness, 0 ≤ x ≤ 1 and the domain
      (Σ_d(|x||l| + |l| + log 2) finite in the dtype) first.

    **Returns** `[..., batch]` log-probabilities (≤ 0).
    """
    if validate:
        _check_pair("logits", logits, x)
        if bool((x < 0).any() | (x > 1).any()):
            raise DomainError(f"x: expected values in [0, 1] for the Bernoulli likelihood, got values in "
                              f"[{x.min().item()}, {x.max().item()}]")
        check_contract_domain("bernoulli_log_likelihood", {"logits": logits, "x": x})
    # torch's BCE-with-logits is exact for every logit (softplus's threshold=20 shortcut is not).
    target = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)


class GaussianLikelihood(nn.Module):
    """p(x | z) = N(x; x̂, diag σ²) with a per-feature log σ², learned (a parameter) or fixed (a buffer).

    **Arguments** `output_size`; `log_var` (initial or fixed log σ², default 0); `learn` (default
    True); `dtype`, `device`. `forward(x_hat, x)` returns `gaussian_log_likelihood(x_hat, x, log_var)`.
    """

    name = "gaussian"

    def __init__(self, output_size: int, log_var: float = 0.0, learn: bool = True, *,
                 dtype: torch.dtype | str | None = None, device: torch.device | str | None = None):
        super().__init__()
        if isinstance(output_size, bool) or not isinstance(output_size, int) or not 1 <= output_size <= MAX_DRAW:
            raise ConfigError(f"output_size: expected an integer in [1, {MAX_DRAW}], got {show(output_size)}")
        if not isinstance(learn, bool):
            raise ConfigError(f"learn: expected True or False, got {show(learn)}")
        initial = torch.full((output_size,), check_scalar("log_var", log_var),
                             dtype=None if dtype is None else torch_dtype(dtype),
                             device=None if device is None else torch_device(device))
        if learn:
            self.log_var = nn.Parameter(initial)
        else:
            self.register_buffer("log_var", initial)

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        return gaussian_log_likelihood(x_hat, x, self.log_var, validate=False)


class BernoulliLikelihood(nn.Module):
    """p(x | z) = Bernoulli(σ(x̂)): the decoder outputs logits. `forward(logits, x)` returns the log-probability."""

    name = "bernoulli"

    def forward(self, logits: Tensor, x: Tensor) -> Tensor:
        return bernoulli_log_likelihood(logits, x, validate=False)


def build_likelihood(name: str, output_size: int, *, learn_scale: bool = True, log_var: float = 0.0,
                     dtype: torch.dtype | str | None = None, device: torch.device | str | None = None) -> nn.Module:
    """A likelihood module by name: "gaussian" (`GaussianLikelihood`) or "bernoulli" (`BernoulliLikelihood`)."""
    if name == "gaussian":
        return GaussianLikelihood(output_size, log_var, learn_scale, dtype=dtype, device=device)
    if name == "bernoulli":  # it has no scale: an option for one is refused, never ignored
        if log_var != 0.0 or learn_scale is not True:
            raise ConfigError(f"likelihood: 'bernoulli' has no scale to set or learn; got log_var={show(log_var)}, "
                              f"learn_scale={show(learn_scale)} (these options are the Gaussian's)")
        return BernoulliLikelihood()
    raise ConfigError(f"likelihood: expected 'gaussian' or 'bernoulli', got {show(name)}")
