"""The independent port's VAE chapter: functional torch on the flat parameter mapping.

Each function takes tensors (and the contract's `Architecture`/`Convention`) and returns
tensors; `independent.IndependentPort` converts at the numpy boundary. See `independent.py`
for why this port exists and how it differs from `vaespec.impl`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence
from torch.distributions.transforms import AffineTransform

from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture

from .bodies import Bodies

ACTIVATIONS: dict[str, Callable] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact erf form (approximate="none")
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    # F.softplus returns x itself above its threshold 20, off by log1p(e⁻ˣ) ≈ 2e-9: beyond float64's bound.
    "softplus": lambda t: torch.logaddexp(t, torch.zeros_like(t)),
    "identity": lambda t: t,
}


def dense(params, name: str, h):
    """`h · W + b` for the layer `name` of the flat layout."""
    return torch.addmm(params[f"{name}.bias"], h, params[f"{name}.kernel"])


def hidden(arch, params, layers, h):
    """The activated hidden stack `act(… act(h · W₀ + b₀) …)` over `layers` ((name, in, out) triples)."""
    act = ACTIVATIONS[arch.activation]
    for name, _, _ in layers:
        h = act(dense(params, name, h))
    return h


def conv_encode(arch, params, x):
    """The convolutional encoder: F.conv2d (a cross-correlation) with the [kh, kw, in, out] kernel read as
    [out, in, kh, kw], each activated, flattened (C order), then the dense heads."""
    act, h = ACTIVATIONS[arch.activation], x
    for name, _, _ in arch.encoder_convs():
        h = act(F.conv2d(h, params[f"{name}.kernel"].permute(3, 2, 0, 1), params[f"{name}.bias"],
                         arch.stride, arch.padding))
    h = h.reshape(h.shape[0], -1)
    return dense(params, "mu", h), dense(params, "log_var", h)


def conv_decode(arch, params, z):
    """The convolutional decoder: the dense layer (activated), unflattened, F.conv_transpose2d with the kernel read
    as [in, out, kh, kw], each activated but the last."""
    act = ACTIVATIONS[arch.activation]
    h = act(dense(params, "decoder_dense", z)).reshape(z.shape[0], *arch.feature_shapes()[-1])
    deconvs = arch.decoder_deconvs()
    for i, (name, _, _) in enumerate(deconvs):
        h = F.conv_transpose2d(h, params[f"{name}.kernel"].permute(2, 3, 0, 1), params[f"{name}.bias"],
                               arch.stride, arch.padding)
        h = act(h) if i < len(deconvs) - 1 else h
    return h


def conv_vq_encode(arch, params, x):
    """The convolutional VQ-VAE's encoder: F.conv2d as `conv_encode`'s, each activated, then the 1×1 convolution
    to the embedding written as an einsum that lands channels-last, z_e[b, i, j, e] = Σ_c h[b, c, i, j] K[c, e] + b."""
    act, h = ACTIVATIONS[arch.activation], x
    for name, _, _ in arch.encoder_convs():
        h = act(F.conv2d(h, params[f"{name}.kernel"].permute(3, 2, 0, 1), params[f"{name}.bias"],
                         arch.stride, arch.padding))
    return (torch.einsum("bchw,ce->bhwe", h, params["encoder_to_embedding.kernel"][0, 0])
            + params["encoder_to_embedding.bias"])


def conv_vq_decode(arch, params, z):
    """The convolutional VQ-VAE's decoder from z_q [B, H′, W′, E]: the 1×1 convolution as an einsum landing
    channels-first (activated), then F.conv_transpose2d as `conv_decode`'s."""
    act = ACTIVATIONS[arch.activation]
    h = act(torch.einsum("bhwe,ec->bchw", z, params["decoder_from_embedding.kernel"][0, 0])
            + params["decoder_from_embedding.bias"][:, None, None])
    deconvs = arch.decoder_deconvs()
    for i, (name, _, _) in enumerate(deconvs):
        h = F.conv_transpose2d(h, params[f"{name}.kernel"].permute(2, 3, 0, 1), params[f"{name}.bias"],
                               arch.stride, arch.padding)
        h = act(h) if i < len(deconvs) - 1 else h
    return h


def encode(arch, params, x):
    if isinstance(arch, ConvArchitecture):
        return conv_encode(arch, params, x)
    h = hidden(arch, params, arch.encoder_layers(), x)
    return dense(params, "mu", h), dense(params, "log_var", h)


def decode(arch, params, z):
    if isinstance(arch, ConvArchitecture):
        return conv_decode(arch, params, z)
    if isinstance(arch, ConvVQArchitecture):
        return conv_vq_decode(arch, params, z)
    return dense(params, "decoder_output", hidden(arch, params, arch.decoder_layers(), z))


def reparameterize(mu, log_var, eps):
    """`Normal(μ, σ).rsample()` with the noise given: the affine map ε ↦ μ + σ·ε, σ = exp(½ log σ²)."""
    return AffineTransform(loc=mu, scale=torch.exp(0.5 * log_var))(eps)


def _reduce(values, how: str, dim: int):
    return values.sum(dim) if how == "sum" else values.mean(dim)


def reconstruction_loss(x_hat, x, convention):
    c = convention
    per_example = c.reconstruction_scale * _reduce(F.mse_loss(x_hat, x, reduction="none").flatten(1),
                                                   c.reconstruction_feature_reduction, 1)
    return _reduce(per_example, c.reconstruction_batch_reduction, 0)


def kl_divergence_(mu, log_var, convention):
    """KL(N(μ, σ²) ‖ N(0, 1)) per coordinate by torch.distributions, then the convention's reductions."""
    posterior = Normal(mu, torch.exp(0.5 * log_var), validate_args=False)
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
    per = kl_divergence(posterior, prior)
    return _reduce(_reduce(per, convention.kl_latent_reduction, 1), convention.kl_batch_reduction, 0)


def _sample(a):
    mu, log_var = encode(a["arch"], a["params"], a["x"])
    return mu, log_var, reparameterize(mu, log_var, a["eps"])


def _loss(a):
    mu, log_var, z = _sample(a)
    x_hat = decode(a["arch"], a["params"], z)
    return (reconstruction_loss(x_hat, a["x"], a["convention"])
            + a["beta"] * kl_divergence_(mu, log_var, a["convention"]),)


# name -> (arguments by contract name) -> tuple of outputs in FUNCTIONS order
VAE = Bodies()
VAE.add("encode", lambda a: encode(a["arch"], a["params"], a["x"]))
VAE.add("decode", lambda a: (decode(a["arch"], a["params"], a["z"]),))
VAE.add("reparameterize", lambda a: (reparameterize(a["mu"], a["log_var"], a["eps"]),))
VAE.add("sample_latent", lambda a: (_sample(a)[2],))
VAE.add("forward", lambda a: (decode(a["arch"], a["params"], _sample(a)[2]),))
VAE.add("generate", lambda a: (decode(a["arch"], a["params"], a["eps"]),))  # reparameterize(0, 0, ε) = ε exactly
VAE.add("reconstruction_loss", lambda a: (reconstruction_loss(a["x_hat"], a["x"], a["convention"]),))
VAE.add("kl_divergence", lambda a: (kl_divergence_(a["mu"], a["log_var"], a["convention"]),))
VAE.add("loss", _loss)
