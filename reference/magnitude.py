"""Magnitudes for the tolerance policy: each output's first-order error scale.

`magnitude(f, args)` has the structure of `f`'s output. An entry `M` is the value the
computation takes when every operand is replaced by its absolute value (and each
error-propagating derivative by its absolute value), so a backend whose arithmetic
has unit roundoff `u` and `n` roundings along the chain satisfies
`|actual − exact| ≲ γ_n · M` (see `vaespec.spec.tolerances`). Where the value
itself cancels (an output near zero, `expm1(lv) − lv` at small lv), `M` stays
at the size of the operands, which is exactly the error a correct backend makes.
"""

from __future__ import annotations

import numpy as np

from vaespec.spec.conventions import get_convention

from . import mlp, vae
from .activations import get_activation


def _encode(arch, params, m_x):
    act = get_activation(arch.activation)
    m_h = mlp.hidden_magnitude(params, [n for n, _, _ in arch.encoder_layers()], act, m_x)
    return mlp.dense_magnitude(params, "mu", m_h), mlp.dense_magnitude(params, "log_var", m_h)


def _decode(arch, params, m_z):
    act = get_activation(arch.activation)
    m_h = mlp.hidden_magnitude(params, [n for n, _, _ in arch.decoder_layers()], act, m_z)
    return mlp.dense_magnitude(params, "decoder_output", m_h)


def _latent(arch, params, x, eps):
    """|z| bound of sample_latent including the propagated error of log σ²: δz ≈ δμ + ½σ|ε|δlv."""
    m_mu, m_lv = _encode(arch, params, np.abs(x))
    _, log_var = vae.encode(arch, params, x)
    sigma_eps = np.exp(0.5 * log_var) * np.abs(eps)
    return m_mu + sigma_eps * (1.0 + 0.5 * m_lv), (m_mu, m_lv)


def _reconstruction(x_hat, m_x_hat, x, c):
    per = c.reconstruction_scale * vae._reduce((np.abs(x_hat - x) + m_x_hat) ** 2, 1, c.reconstruction_feature_reduction)
    return vae._reduce(per, 0, c.reconstruction_batch_reduction)


def _kl(mu, log_var, m_mu, m_lv, c):
    per = 0.5 * (np.exp(log_var) + np.abs(log_var) + mu * mu) + np.abs(mu) * m_mu + 0.5 * np.abs(np.expm1(log_var)) * m_lv
    return vae._reduce(vae._reduce(per, 1, c.kl_latent_reduction), 0, c.kl_batch_reduction)


def magnitude(function: str, args):
    """Error scale of `function` at `args`, structured like its output."""
    a = args
    if function == "encode":
        return _encode(a["arch"], a["params"], np.abs(a["x"]))
    if function == "decode":
        return _decode(a["arch"], a["params"], np.abs(a["z"]))
    if function == "reparameterize":
        return np.abs(a["mu"]) + np.exp(0.5 * a["log_var"]) * np.abs(a["eps"]) * (1.0 + 0.5 * np.abs(a["log_var"]))
    if function == "sample_latent":
        return _latent(a["arch"], a["params"], a["x"], a["eps"])[0]
    if function == "forward":
        return _decode(a["arch"], a["params"], _latent(a["arch"], a["params"], a["x"], a["eps"])[0])
    if function == "generate":
        return _decode(a["arch"], a["params"], np.abs(a["eps"]))
    c = get_convention(a.get("convention"))
    if function == "reconstruction_loss":
        return _reconstruction(a["x_hat"], 0.0, a["x"], c)
    if function == "kl_divergence":
        return _kl(a["mu"], a["log_var"], 0.0, 0.0, c)
    if function == "loss":
        arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
        m_z, (m_mu, m_lv) = _latent(arch, params, x, eps)
        mu, log_var = vae.encode(arch, params, x)
        x_hat = vae.forward(arch, params, x, eps)
        return _reconstruction(x_hat, _decode(arch, params, m_z), x, c) + a["beta"] * _kl(mu, log_var, m_mu, m_lv, c)
    raise KeyError(function)
