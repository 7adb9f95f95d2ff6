"""The VAE chapter's Torch bodies (`vaespec.spec.contract.VAE_FUNCTIONS`), one registration per function.

The network functions run the `Encoder`/`Decoder` modules users train with, from the backend's
module cache (`Inputs.modules`); the rest are the functional ops of `vaespec.impl.functional` with
`validate=False` (the backend has checked the arguments at the boundary). With
`(μ, log σ²) = encoder(x)` and `z = μ + exp(½ log σ²) ⊙ ε`:

    encode(x) = (μ, log σ²)      sample_latent(x, ε) = z          forward(x, ε) = decoder(z)
    decode(z) = decoder(z)       generate(ε) = decoder(ε)         loss = R(decoder(z), x) + β · KL(μ, log σ²)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from .bodies import Bodies, Inputs, Outputs
from .functional import kl_divergence, loss, reconstruction_loss, reparameterize

BODIES = Bodies("vae")


def _sample(inputs: Inputs, encoder: Callable[..., Any]) -> tuple[Tensor, Tensor, Tensor]:
    """(μ, log σ², z) for `x` with noise `eps`."""
    out = encoder(inputs.tensors["x"])
    return out["mu"], out["log_var"], reparameterize(out["mu"], out["log_var"], inputs.tensors["eps"], validate=False)


@BODIES.register("encode")
def _encode(inputs: Inputs) -> Outputs:
    encoder, _ = inputs.modules("encoder")
    out = encoder(inputs.tensors["x"])
    return out["mu"], out["log_var"]


@BODIES.register("decode")
def _decode(inputs: Inputs) -> Outputs:
    _, decoder = inputs.modules("decoder")
    return (decoder(inputs.tensors["z"]),)


@BODIES.register("reparameterize")
def _reparameterize(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return (reparameterize(t["mu"], t["log_var"], t["eps"], validate=False),)


@BODIES.register("sample_latent")
def _sample_latent(inputs: Inputs) -> Outputs:
    encoder, _ = inputs.modules("encoder")
    return (_sample(inputs, encoder)[2],)


@BODIES.register("forward")
def _forward(inputs: Inputs) -> Outputs:
    encoder, decoder = inputs.modules("all")
    return (decoder(_sample(inputs, encoder)[2]),)


@BODIES.register("generate")
def _generate(inputs: Inputs) -> Outputs:
    _, decoder = inputs.modules("decoder")
    return (decoder(inputs.tensors["eps"]),)  # reparameterize(0, 0, ε) = 0 + exp(0)·ε = ε exactly


@BODIES.register("reconstruction_loss")
def _reconstruction_loss(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return (reconstruction_loss(t["x_hat"], t["x"], inputs.args["convention"], validate=False),)


@BODIES.register("kl_divergence")
def _kl_divergence(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return (kl_divergence(t["mu"], t["log_var"], inputs.args["convention"], validate=False),)


@BODIES.register("loss")
def _loss(inputs: Inputs) -> Outputs:
    encoder, decoder = inputs.modules("all")
    mu, log_var, z = _sample(inputs, encoder)
    args = inputs.args
    return (loss(decoder(z), inputs.tensors["x"], mu, log_var, float(args["beta"]), args["convention"],
                 validate=False),)
