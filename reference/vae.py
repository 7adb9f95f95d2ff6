"""The VAE's network functions in float64: each one's forward, VJP, magnitude and VJP magnitude, side by side.

This module *is* the executable spec (docs/math.md); the loss terms are `losses`, the dense
stacks `network`:

    encode(x)            = (h·W_μ + b_μ, h·W_lv + b_lv),  h = act(…act(x·W₀ + b₀)…)
    decode(z)            = act(…act(z·V₀ + c₀)…)·V_out + c_out
    reparameterize       = μ + exp(½ lv) ⊙ ε
    sample_latent(x, ε)  = reparameterize(encode(x), ε)
    forward(x, ε)        = decode(sample_latent(x, ε))
    generate(ε)          = decode(ε)
    loss                 = reconstruction_loss(forward(x, ε), x) + β · kl_divergence(encode(x))

The VJPs (`<f>_vjp(args, cotangent)`, `{arg: ȳ · ∂f/∂arg}` per differentiable argument, parameter
gradients over the whole layout passed) chain `network.backward` with the reparameterization's
`μ̄ = z̄, lv̄ = z̄ ⊙ ½ exp(½ lv) ⊙ ε`; they are checked against central finite differences in
proofs_tests/selftests/test_reference_gradients.py. The magnitudes (`<f>_magnitude`, `<f>_vjp_magnitude`)
redo each computation on absolute values (`network`'s rules) and carry the propagated error of
log σ² into z: `δz ≈ δμ + ½σ|ε|δlv`.

`arch` is the dense `Architecture` or a `ConvArchitecture` (x, x̂ [batch, C, H, W]): `network.encoder(arch)`
and `network.decoder(arch)` choose the stack by its type (`vaespec.reference.conv.ConvStack` for the conv one:
h = flatten(act(conv(…act(conv(x))…))), x̂ = deconv_out(…act(deconv(unflatten(act(z·V + c))))…)).

Every function validates its inputs (`validate_args`, `validate_vjp`: named shapes, finite values,
β ≥ 0) and raises a vaespec error naming the argument; none returns Inf or NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.architecture import Architecture
from vaespec.spec.contract import validate_args, validate_vjp
from vaespec.spec.conventions import Convention, get_convention
from vaespec.spec.shapes import Float

from . import network
from .boundary import finite, finite_gradients, zero_gradients
from .elementwise import reparameterized
from .function import ReferenceFunction
from .losses import (
    kl,
    kl_backward,
    kl_magnitude,
    reconstruction,
    reconstruction_backward,
    reconstruction_backward_magnitude,
    reconstruction_magnitude,
    scales,
)


def _abs(cotangent):
    """|ȳ| as the magnitudes propagate it (a tuple of them for several outputs)."""
    return tuple(np.abs(c) for c in cotangent) if isinstance(cotangent, tuple) else np.abs(np.asarray(cotangent, float))


def _one(cotangents):
    return cotangents if len(cotangents) > 1 else cotangents[0]


# ----------------------------------------------------------------------------- encode
def encode(arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"]
           ) -> tuple[Float[np.ndarray, "batch latent"], Float[np.ndarray, "batch latent"]]:
    """Encoder: `(μ, log σ²) = (h·W_μ + b_μ, h·W_lv + b_lv)`, `h` the hidden stack of `x`."""
    a = validate_args("encode", {"arch": arch, "params": params, "x": x})
    mu, log_var = network.apply(network.encoder(arch), a["params"], a["x"])
    return finite("encode", (mu, log_var))


def encode_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "x"}` for the cotangent `(μ̄, lv̄)`: the encoder's backward pass from both heads."""
    a, (d_mu, d_log_var) = validate_vjp("encode", args, cotangent)
    arch, params, x = a["arch"], a["params"], a["x"]
    encode(arch, params, x)  # the forward's domain (its result finite) is the VJP's too
    grads = zero_gradients(params)
    dx = network.backward(network.encoder(arch), params, x, (d_mu, d_log_var), grads)
    return finite_gradients("encode", {"params": grads, "x": dx})


def encode_magnitude(args):
    """`(M_μ, M_lv)`: the encoder on |x|, |W|, |b|."""
    a = validate_args("encode", args)
    return network.magnitude(network.encoder(a["arch"]), a["params"], np.abs(a["x"]))


def encode_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("encode", args, cotangent)
    d_mu, d_lv = _abs(_one(cts))
    grads = zero_gradients(a["params"])
    dx = network.magnitude_backward(network.encoder(a["arch"]), a["params"], a["x"], np.abs(a["x"]), (d_mu, d_lv),
                                    grads)
    return {"params": grads, "x": dx}


ENCODE = ReferenceFunction("encode", encode, encode_magnitude, encode_vjp, encode_vjp_magnitude)


# ----------------------------------------------------------------------------- decode
def decode(arch: Architecture, params: Mapping[str, np.ndarray],
           z: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """Decoder: `x̂ = act(…act(z·V₀ + c₀)…)·V_out + c_out` (no output activation)."""
    a = validate_args("decode", {"arch": arch, "params": params, "z": z})
    return finite("decode", network.apply(network.decoder(arch), a["params"], a["z"])[0])


def decode_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "z"}` for the cotangent x̂̄: the decoder's backward pass."""
    a, (d_x_hat,) = validate_vjp("decode", args, cotangent)
    arch, params, z = a["arch"], a["params"], a["z"]
    decode(arch, params, z)
    grads = zero_gradients(params)
    dz = network.backward(network.decoder(arch), params, z, (d_x_hat,), grads)
    return finite_gradients("decode", {"params": grads, "z": dz})


def decode_magnitude(args):
    a = validate_args("decode", args)
    return network.magnitude(network.decoder(a["arch"]), a["params"], np.abs(a["z"]))[0]


def decode_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("decode", args, cotangent)
    grads = zero_gradients(a["params"])
    dz = network.magnitude_backward(network.decoder(a["arch"]), a["params"], a["z"], np.abs(a["z"]),
                                    (_abs(_one(cts)),), grads)
    return {"params": grads, "z": dz}


DECODE = ReferenceFunction("decode", decode, decode_magnitude, decode_vjp, decode_vjp_magnitude)


# ----------------------------------------------------------------------------- reparameterize
def reparameterize(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                   eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]:
    """Reparameterization: `z = μ + exp(½ log σ²) ⊙ ε`."""
    a = validate_args("reparameterize", {"mu": mu, "log_var": log_var, "eps": eps})
    return finite("reparameterize", reparameterized(a["mu"], a["log_var"], a["eps"]))


def reparameterize_backward(log_var, eps, d_z):
    """(μ̄, lv̄) = (z̄, z̄ ⊙ ½ exp(½ lv) ⊙ ε)."""
    return d_z, d_z * 0.5 * np.exp(0.5 * log_var) * eps


def reparameterize_backward_magnitude(log_var, m_lv, eps, d_z):
    """μ̄ = z̄ (exact); lv̄ = z̄·½σε, with σ erring by ½σ·δlv (`m_lv` the magnitude of lv)."""
    return d_z, d_z * 0.5 * np.exp(0.5 * log_var) * np.abs(eps) * (1.0 + 0.5 * m_lv)


def reparameterize_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"mu": z̄, "log_var": z̄ ⊙ ½ exp(½ lv) ⊙ ε}`."""
    a, (d_z,) = validate_vjp("reparameterize", args, cotangent)
    d_mu, d_log_var = reparameterize_backward(a["log_var"], a["eps"], d_z)
    return finite_gradients("reparameterize", {"mu": d_mu, "log_var": d_log_var})


def reparameterize_magnitude(args):
    """`|μ| + σ|ε|(1 + ½|lv|)`: exp(½ lv) errs at ½|lv| relative."""
    a = validate_args("reparameterize", args)
    return np.abs(a["mu"]) + np.exp(0.5 * a["log_var"]) * np.abs(a["eps"]) * (1.0 + 0.5 * np.abs(a["log_var"]))


def reparameterize_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("reparameterize", args, cotangent)
    d_mu, d_lv = reparameterize_backward_magnitude(a["log_var"], np.abs(a["log_var"]), a["eps"], _abs(_one(cts)))
    return {"mu": d_mu, "log_var": d_lv}


REPARAMETERIZE = ReferenceFunction("reparameterize", reparameterize, reparameterize_magnitude, reparameterize_vjp,
                                   reparameterize_vjp_magnitude)


# ----------------------------------------------------------------------------- sample_latent
def latent_magnitude(arch, params, x, eps):
    """`(M_z, (M_μ, M_lv))` of sample_latent, carrying the propagated error of log σ²: δz ≈ δμ + ½σ|ε|δlv."""
    m_mu, m_lv = network.magnitude(network.encoder(arch), params, np.abs(x))
    _, log_var = encode(arch, params, x)
    sigma_eps = np.exp(0.5 * log_var) * np.abs(eps)
    return m_mu + sigma_eps * (1.0 + 0.5 * m_lv), (m_mu, m_lv)


def sample_latent(arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"],
                  eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]:
    """`sample_latent(x, ε) = reparameterize(μ(x), log σ²(x), ε)`."""
    a = validate_args("sample_latent", {"arch": arch, "params": params, "x": x, "eps": eps})
    mu, log_var = network.apply(network.encoder(arch), a["params"], a["x"])
    return finite("sample_latent", reparameterized(mu, log_var, a["eps"]))


def sample_latent_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "x"}` for z̄: the reparameterization's backward, then the encoder's."""
    a, (d_z,) = validate_vjp("sample_latent", args, cotangent)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    sample_latent(arch, params, x, eps)
    log_var = encode(arch, params, x)[1]
    d_mu, d_log_var = reparameterize_backward(log_var, eps, d_z)
    grads = zero_gradients(params)
    dx = network.backward(network.encoder(arch), params, x, (d_mu, d_log_var), grads)
    return finite_gradients("sample_latent", {"params": grads, "x": dx})


def sample_latent_magnitude(args):
    a = validate_args("sample_latent", args)
    return latent_magnitude(a["arch"], a["params"], a["x"], a["eps"])[0]


def sample_latent_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("sample_latent", args, cotangent)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    grads = zero_gradients(params)
    _, log_var = encode(arch, params, x)
    _, (_, m_lv) = latent_magnitude(arch, params, x, eps)
    d_mu, d_lv = reparameterize_backward_magnitude(log_var, m_lv, eps, _abs(_one(cts)))
    dx = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x), (d_mu, d_lv), grads)
    return {"params": grads, "x": dx}


SAMPLE_LATENT = ReferenceFunction("sample_latent", sample_latent, sample_latent_magnitude, sample_latent_vjp,
                                  sample_latent_vjp_magnitude)


# ----------------------------------------------------------------------------- forward
def forward(arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"],
            eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """`forward(x, ε) = decode(reparameterize(encode(x), ε))`."""
    a = validate_args("forward", {"arch": arch, "params": params, "x": x, "eps": eps})
    mu, log_var = network.apply(network.encoder(arch), a["params"], a["x"])
    return finite("forward",
                  network.apply(network.decoder(arch), a["params"], reparameterized(mu, log_var, a["eps"]))[0])


def forward_backward(arch, params, x, eps, d_x_hat, d_mu_extra=0.0, d_log_var_extra=0.0):
    """(parameter gradients, x̄) of forward for x̂̄, plus extra cotangents on (μ, lv) (the KL's in `loss`)."""
    grads = zero_gradients(params)
    mu, log_var = encode(arch, params, x)
    z = mu + np.exp(0.5 * log_var) * eps
    dz = network.backward(network.decoder(arch), params, z, (d_x_hat,), grads)
    d_mu, d_log_var = reparameterize_backward(log_var, eps, dz)
    dx = network.backward(network.encoder(arch), params, x, (d_mu + d_mu_extra, d_log_var + d_log_var_extra), grads)
    return grads, dx


def forward_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "x"}` for x̂̄: decoder, reparameterization and encoder backward."""
    a, (d_x_hat,) = validate_vjp("forward", args, cotangent)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    forward(arch, params, x, eps)
    grads, dx = forward_backward(arch, params, x, eps, d_x_hat)
    return finite_gradients("forward", {"params": grads, "x": dx})


def forward_magnitude(args):
    """The decoder's magnitude at sample_latent's: M(x̂) = decoder on M_z."""
    a = validate_args("forward", args)
    m_z = latent_magnitude(a["arch"], a["params"], a["x"], a["eps"])[0]
    return network.magnitude(network.decoder(a["arch"]), a["params"], m_z)[0]


def _network_backward_magnitude(arch, params, x, eps, latent, d_x_hat, d_mu_kl, d_lv_kl):
    """forward's backward pass on magnitudes from x̂̄'s magnitude, plus loss's KL terms on (μ, lv):
    (parameter gradients, x̄); `latent` = (μ, lv, M_z, M_lv) at x."""
    mu, log_var, m_z, m_lv = latent
    grads = zero_gradients(params)
    z = mu + np.exp(0.5 * log_var) * eps
    d_z = network.magnitude_backward(network.decoder(arch), params, z, m_z, (d_x_hat,), grads)
    d_mu, d_lv = reparameterize_backward_magnitude(log_var, m_lv, eps, d_z)
    dx = network.magnitude_backward(network.encoder(arch), params, x, np.abs(x), (d_mu + d_mu_kl, d_lv + d_lv_kl),
                                    grads)
    return grads, dx


def forward_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("forward", args, cotangent)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    mu, log_var = encode(arch, params, x)
    m_z, (_, m_lv) = latent_magnitude(arch, params, x, eps)
    grads, dx = _network_backward_magnitude(arch, params, x, eps, (mu, log_var, m_z, m_lv), _abs(_one(cts)), 0.0, 0.0)
    return {"params": grads, "x": dx + 0.0}  # + 0.0 turns −0 entries into +0, as the loss's sum does


FORWARD = ReferenceFunction("forward", forward, forward_magnitude, forward_vjp, forward_vjp_magnitude)


# ----------------------------------------------------------------------------- generate
def generate(arch: Architecture, params: Mapping[str, np.ndarray],
             eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """Prior path: `generate(ε) = decode(reparameterize(0, 0, ε)) = decode(ε)`, p(z) = N(0, I)."""
    a = validate_args("generate", {"arch": arch, "params": params, "eps": eps})
    return finite("generate", network.apply(network.decoder(arch), a["params"], a["eps"])[0])


def generate_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params"}` for x̂̄: the decoder's backward pass at z = ε (ε is noise, not differentiated)."""
    a, (d_x_hat,) = validate_vjp("generate", args, cotangent)
    arch, params, eps = a["arch"], a["params"], a["eps"]
    generate(arch, params, eps)
    grads = zero_gradients(params)
    network.backward(network.decoder(arch), params, eps, (d_x_hat,), grads)
    return finite_gradients("generate", {"params": grads})


def generate_magnitude(args):
    a = validate_args("generate", args)
    return network.magnitude(network.decoder(a["arch"]), a["params"], np.abs(a["eps"]))[0]


def generate_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("generate", args, cotangent)
    grads = zero_gradients(a["params"])
    network.magnitude_backward(network.decoder(a["arch"]), a["params"], a["eps"], np.abs(a["eps"]),
                               (_abs(_one(cts)),), grads)
    return {"params": grads}


GENERATE = ReferenceFunction("generate", generate, generate_magnitude, generate_vjp, generate_vjp_magnitude)


# ----------------------------------------------------------------------------- loss
def loss(arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"],
         eps: Float[np.ndarray, "batch latent"],
         beta: float = 1.0, convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """β-VAE objective: `loss = R(forward(x, ε), x) + β · KL(encode(x))`."""
    checked = validate_args("loss", {"arch": arch, "params": params, "x": x, "eps": eps, "beta": beta,
                                     "convention": convention})
    beta, c, params, x, eps = (checked[k] for k in ("beta", "convention", "params", "x", "eps"))
    mu, log_var = network.apply(network.encoder(arch), params, x)
    x_hat = network.apply(network.decoder(arch), params, reparameterized(mu, log_var, eps))[0]
    return finite("loss", np.asarray(reconstruction(x_hat, x, c) + beta * kl(mu, log_var, c)))


def loss_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"params", "x"}` for ȳ: forward's backward pass from R's x̂̄, with the KL's (μ̄, lv̄) (weighted by β)
    joining at the encoder's heads and R's direct x̄ = −x̂̄ added to x's gradient."""
    a, (d_loss,) = validate_vjp("loss", args, cotangent)
    arch, params, x, eps, beta, c = (a[k] for k in ("arch", "params", "x", "eps", "beta", "convention"))
    loss(arch, params, x, eps, beta, c)
    mu, log_var = encode(arch, params, x)
    x_hat = forward(arch, params, x, eps)
    d_x_hat, d_x_direct = reconstruction_backward(x_hat, x, c, d_loss)
    d_mu_kl, d_log_var_kl = kl_backward(mu, log_var, c, beta * d_loss)
    grads, dx = forward_backward(arch, params, x, eps, d_x_hat, d_mu_kl, d_log_var_kl)
    return finite_gradients("loss", {"params": grads, "x": dx + d_x_direct})


def loss_magnitude(args):
    """R's magnitude at x̂ = forward(x, ε) with M_x̂ the decoder's at M_z, plus β · KL's with (M_μ, M_lv)."""
    a = validate_args("loss", args)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    c = get_convention(a.get("convention"))
    m_z, (m_mu, m_lv) = latent_magnitude(arch, params, x, eps)
    mu, log_var = encode(arch, params, x)
    x_hat = forward(arch, params, x, eps)
    m_x_hat = network.magnitude(network.decoder(arch), params, m_z)[0]
    return reconstruction_magnitude(x_hat, m_x_hat, x, c) + a["beta"] * kl_magnitude(mu, log_var, m_mu, m_lv, c)


def loss_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, cts = validate_vjp("loss", args, cotangent)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    ct = _abs(_one(cts))
    mu, log_var = encode(arch, params, x)
    m_z, (m_mu, m_lv) = latent_magnitude(arch, params, x, eps)
    c = get_convention(a["convention"])
    x_hat = forward(arch, params, x, eps)
    m_x_hat = network.magnitude(network.decoder(arch), params, m_z)[0]
    d_x_hat = reconstruction_backward_magnitude(c, x_hat.shape, ct, np.abs(x_hat - x) + m_x_hat)
    s = a["beta"] * ct * scales(mu.shape, c.kl_latent_reduction, c.kl_batch_reduction)
    d_mu_kl = s * (np.abs(mu) + m_mu)
    d_lv_kl = s * 0.5 * (np.exp(log_var) * (1.0 + m_lv) + 1.0)
    grads, dx = _network_backward_magnitude(arch, params, x, eps, (mu, log_var, m_z, m_lv), d_x_hat, d_mu_kl, d_lv_kl)
    return {"params": grads, "x": dx + d_x_hat}  # R's direct x̄ has x̂̄'s magnitude


LOSS = ReferenceFunction("loss", loss, loss_magnitude, loss_vjp, loss_vjp_magnitude)

REFERENCE_FUNCTIONS = (ENCODE, DECODE, REPARAMETERIZE, SAMPLE_LATENT, FORWARD, GENERATE, LOSS)
