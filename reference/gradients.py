"""Hand-written vector-Jacobian products of every contract function (float64).

For a function `f` with output cotangent `ȳ`, `f_vjp` returns `{arg: ȳ · ∂f/∂arg}` for
each differentiable argument; parameter gradients cover the whole layout (zeros for
parameters a function does not use). The chain rule, written out:

    reparameterize:  μ̄ = z̄,  lv̄ = z̄ ⊙ ½ exp(½ lv) ⊙ ε
    reconstruction:  x̂̄ = ȳ · 2 · scale · (x̂ − x) · c_d · c_b,  x̄ = −x̂̄
    kl_divergence:   μ̄ = ȳ · μ · c_j · c_b,  lv̄ = ȳ · ½ expm1(lv) · c_j · c_b
    dense:           W̄ = xᵀ·ȳ,  b̄ = Σ_b ȳ,  x̄ = ȳ·Wᵀ
    activation:      ȳ_pre = ȳ_post ⊙ act′(y_pre)

with `c = 1` for a sum and `1/size` for a mean over that axis. Checked against central
finite differences in proofs_tests/test_reference_gradients.py.
"""

from __future__ import annotations

import numpy as np

from vaespec.spec.contract import validate_vjp
from vaespec.spec.errors import ConfigError, show
from vaespec.spec.shapes import as_real_array, check_scalar

from . import mlp, vae
from .activations import get_activation


def _zeros(params):
    """Gradients start at zero for every parameter passed (unused ones stay zero)."""
    return {name: np.zeros_like(value, dtype=np.float64) for name, value in params.items()}


def _encode_backward(arch, params, x, d_mu, d_log_var, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.encoder_layers()]
    h, tape = mlp.hidden_forward(params, names, act, x)
    dh = mlp.dense_backward(params, "mu", h, d_mu, grads) + mlp.dense_backward(params, "log_var", h, d_log_var, grads)
    return mlp.hidden_backward(params, names, act, tape, dh, grads)


def _decode_backward(arch, params, z, d_x_hat, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.decoder_layers()]
    h, tape = mlp.hidden_forward(params, names, act, z)
    dh = mlp.dense_backward(params, "decoder_output", h, d_x_hat, grads)
    return mlp.hidden_backward(params, names, act, tape, dh, grads)


def _reparameterize_backward(log_var, eps, d_z):
    return d_z, d_z * 0.5 * np.exp(0.5 * log_var) * eps


def _cotangent(name, value, dims, bindings):
    """A cotangent may be any real array-like of the output's shape (`vaespec.spec.shapes.as_real_array`):
    None, bools, complex numbers, objects, NaN and Inf are refused, naming it."""
    return as_real_array(name, value, dims, bindings)


def _grads(function, grads):
    """The gradients, refused if not finite (`vae._finite`): in-domain inputs never give Inf or NaN silently."""
    return vae._finite(function, grads, "gradient")


def encode_vjp(arch, params, x, d_mu, d_log_var):
    a = vae._valid("encode", arch=arch, params=params, x=x)
    params, x = a["params"], a["x"]
    vae.encode(arch, params, x)  # the forward's domain (its result finite) is the VJP's too
    b = {"batch": x.shape[0], "latent": arch.latent_size}
    d_mu, d_log_var = _cotangent("d_mu", d_mu, ("batch", "latent"), b), _cotangent("d_log_var", d_log_var, ("batch", "latent"), b)
    grads = _zeros(params)
    dx = _encode_backward(arch, params, x, d_mu, d_log_var, grads)
    return _grads("encode", {"params": grads, "x": dx})


def decode_vjp(arch, params, z, d_x_hat):
    a = vae._valid("decode", arch=arch, params=params, z=z)
    params, z = a["params"], a["z"]
    vae.decode(arch, params, z)
    d_x_hat = _cotangent("d_x_hat", d_x_hat, ("batch", "output"), {"batch": z.shape[0], "output": arch.output_size})
    grads = _zeros(params)
    dz = _decode_backward(arch, params, z, d_x_hat, grads)
    return _grads("decode", {"params": grads, "z": dz})


def reparameterize_vjp(mu, log_var, eps, d_z):
    a = vae._valid("reparameterize", mu=mu, log_var=log_var, eps=eps)
    mu, log_var, eps = a["mu"], a["log_var"], a["eps"]
    d_z = _cotangent("d_z", d_z, ("batch", "latent"), {"batch": mu.shape[0], "latent": mu.shape[1]})
    d_mu, d_log_var = _reparameterize_backward(log_var, eps, d_z)
    return _grads("reparameterize", {"mu": d_mu, "log_var": d_log_var})


def sample_latent_vjp(arch, params, x, eps, d_z):
    a = vae._valid("sample_latent", arch=arch, params=params, x=x, eps=eps)
    params, x, eps = a["params"], a["x"], a["eps"]
    vae.sample_latent(arch, params, x, eps)
    d_z = _cotangent("d_z", d_z, ("batch", "latent"), {"batch": x.shape[0], "latent": arch.latent_size})
    mu, log_var = vae.encode(arch, params, x)
    d_mu, d_log_var = _reparameterize_backward(log_var, eps, d_z)
    grads = _zeros(params)
    dx = _encode_backward(arch, params, x, d_mu, d_log_var, grads)
    return _grads("sample_latent", {"params": grads, "x": dx})


def _forward_backward(arch, params, x, eps, d_x_hat, d_mu_extra=0.0, d_log_var_extra=0.0):
    grads = _zeros(params)
    mu, log_var = vae.encode(arch, params, x)
    z = mu + np.exp(0.5 * log_var) * eps
    dz = _decode_backward(arch, params, z, d_x_hat, grads)
    d_mu, d_log_var = _reparameterize_backward(log_var, eps, dz)
    dx = _encode_backward(arch, params, x, d_mu + d_mu_extra, d_log_var + d_log_var_extra, grads)
    return grads, dx


def forward_vjp(arch, params, x, eps, d_x_hat):
    a = vae._valid("forward", arch=arch, params=params, x=x, eps=eps)
    params, x, eps = a["params"], a["x"], a["eps"]
    vae.forward(arch, params, x, eps)
    d_x_hat = _cotangent("d_x_hat", d_x_hat, ("batch", "output"), {"batch": x.shape[0], "output": arch.output_size})
    grads, dx = _forward_backward(arch, params, x, eps, d_x_hat)
    return _grads("forward", {"params": grads, "x": dx})


def generate_vjp(arch, params, eps, d_x_hat):
    a = vae._valid("generate", arch=arch, params=params, eps=eps)
    params, eps = a["params"], a["eps"]
    vae.generate(arch, params, eps)
    d_x_hat = _cotangent("d_x_hat", d_x_hat, ("batch", "output"), {"batch": eps.shape[0], "output": arch.output_size})
    grads = _zeros(params)
    _decode_backward(arch, params, eps, d_x_hat, grads)
    return _grads("generate", {"params": grads})


def _reconstruction_backward(x_hat, x, c, d_loss):
    batch, features = x_hat.shape
    factor = (2.0 * c.reconstruction_scale * d_loss
              * vae._reduce_scale(features, c.reconstruction_feature_reduction)
              * vae._reduce_scale(batch, c.reconstruction_batch_reduction))
    d_x_hat = factor * (x_hat - x)
    return d_x_hat, -d_x_hat


def reconstruction_loss_vjp(x_hat, x, convention, d_loss=1.0):
    a = vae._valid("reconstruction_loss", x_hat=x_hat, x=x, convention=convention)
    d_x_hat, d_x = _reconstruction_backward(a["x_hat"], a["x"], a["convention"], check_scalar("d_loss", d_loss))
    return _grads("reconstruction_loss", {"x_hat": d_x_hat, "x": d_x})


def _kl_backward(mu, log_var, c, d_kl):
    batch, latent = mu.shape
    factor = d_kl * vae._reduce_scale(latent, c.kl_latent_reduction) * vae._reduce_scale(batch, c.kl_batch_reduction)
    return factor * mu, factor * 0.5 * np.expm1(log_var)


def kl_divergence_vjp(mu, log_var, convention, d_kl=1.0):
    a = vae._valid("kl_divergence", mu=mu, log_var=log_var, convention=convention)
    d_mu, d_log_var = _kl_backward(a["mu"], a["log_var"], a["convention"], check_scalar("d_kl", d_kl))
    return _grads("kl_divergence", {"mu": d_mu, "log_var": d_log_var})


def loss_vjp(arch, params, x, eps, beta, convention, d_loss=1.0):
    checked = vae._valid("loss", arch=arch, params=params, x=x, eps=eps, beta=beta, convention=convention)
    beta, c, d_loss = checked["beta"], checked["convention"], check_scalar("d_loss", d_loss)
    params, x, eps = checked["params"], checked["x"], checked["eps"]
    vae.loss(arch, params, x, eps, beta, c)
    mu, log_var = vae.encode(arch, params, x)
    x_hat = vae.forward(arch, params, x, eps)
    d_x_hat, d_x_direct = _reconstruction_backward(x_hat, x, c, d_loss)
    d_mu_kl, d_log_var_kl = _kl_backward(mu, log_var, c, beta * d_loss)
    grads, dx = _forward_backward(arch, params, x, eps, d_x_hat, d_mu_kl, d_log_var_kl)
    return _grads("loss", {"params": grads, "x": dx + d_x_direct})


_VJPS = {
    "encode": lambda a, ct: encode_vjp(a["arch"], a["params"], a["x"], *ct),
    "decode": lambda a, ct: decode_vjp(a["arch"], a["params"], a["z"], ct),
    "reparameterize": lambda a, ct: reparameterize_vjp(a["mu"], a["log_var"], a["eps"], ct),
    "sample_latent": lambda a, ct: sample_latent_vjp(a["arch"], a["params"], a["x"], a["eps"], ct),
    "forward": lambda a, ct: forward_vjp(a["arch"], a["params"], a["x"], a["eps"], ct),
    "generate": lambda a, ct: generate_vjp(a["arch"], a["params"], a["eps"], ct),
    "reconstruction_loss": lambda a, ct: reconstruction_loss_vjp(a["x_hat"], a["x"], a["convention"], ct),
    "kl_divergence": lambda a, ct: kl_divergence_vjp(a["mu"], a["log_var"], a["convention"], ct),
    "loss": lambda a, ct: loss_vjp(a["arch"], a["params"], a["x"], a["eps"], a["beta"], a["convention"], ct),
}


def vjp(function: str, args, cotangent):
    """Dispatch to `<function>_vjp` with the contract's argument names (see `FUNCTIONS`).

    `function`, `args` and `cotangent` are checked by `vaespec.spec.contract.validate_vjp` first (a
    name with a VJP, a mapping of the arguments, a finite cotangent of the outputs' shapes).
    The VQ chapter's VJPs live in `vq_gradients` (imported here: it builds on this module).
    """
    from . import vq_gradients

    table = {**_VJPS, **vq_gradients.VJPS}
    if not isinstance(function, str) or function not in table:
        raise ConfigError(f"function: expected one of {sorted(table)}, got {show(function)}")
    args, cotangents = validate_vjp(function, args, cotangent)
    return table[function](args, cotangents if len(cotangents) > 1 else cotangents[0])
