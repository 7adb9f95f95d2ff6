"""Decoder likelihoods with `log_prob`: a Gaussian with fixed or learned σ, a Bernoulli with logits.

    gaussian_log_likelihood(x̂, x, ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})
    bernoulli_log_likelihood(l, x)    = −Σ_d BCEWithLogits(l_d, x_d) = Σ_d (x_d l_d − softplus(l_d))

Both sum over the event axes of x [batch, *event] (every entry of an example: the log-density of the
whole example; [batch, output] for the dense network's), so any leading axes of x̂ (particles) are kept: a
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
_EVENT = ("batch", "+event")  # whole examples: [batch, output] or [batch, *event]


def _check_pair(name: str, value: Tensor, x: Tensor) -> None:
    """`value` [..., batch, *event] against `x` [batch, *event]: shapes, dtype, device, finiteness of both."""
    rank = x.dim() if isinstance(x, Tensor) and x.dim() >= 2 else 2
    if isinstance(value, Tensor) and value.dim() > rank:
        lead = value.dim() - rank
        check_tensor(name, value, tuple(f"leading{i}" for i in range(lead)) + _EVENT, {}, None)
        value = value[(0,) * lead]
    check_tensors({name: value, "x": x}, {name: _EVENT, "x": _EVENT})


def _event_sum(values: Tensor, x: Tensor) -> Tensor:
    """Σ over the event axes of x [batch, *event] (the last x.dim() − 1 of `values`), as one sum over the
    flattened example: bitwise the [batch, ∏event] result, and the last axis alone for [batch, output]."""
    return values.flatten(-(x.dim() - 1)).sum(-1)


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
    """`log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})`, summed over x's event axes.

    **Arguments**
    - `x_hat`: `[..., batch, *event]` the decoder's mean (`[..., batch, output]` for the dense network).
    - `x`: `[batch, *event]` the data (broadcast against `x_hat`); d runs over all ∏event entries of an example.
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
    return -0.5 * _event_sum(LOG_2PI + log_var + (x - x_hat) ** 2 * torch.exp(-log_var), x)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor, *, validate: bool = True) -> Tensor:
    """`Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d)`, summed over x's event axes.

    **Arguments**
    - `logits`: `[..., batch, *event]` the decoder's output read as logits.
    - `x`: `[batch, *event]` data in [0, 1] (binary, or probabilities); d runs over all ∏event entries.
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
    return -_event_sum(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), x)


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
