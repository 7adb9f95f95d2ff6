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
    """Error scale of `function` at `args`, structured like its output (VQ functions: `vq_magnitude`).

    `function` and `args` are checked as the function's own (`validate_args`: a contract name, a mapping
    of finite arrays of the right shapes); extra entries of `args` (VQ's `indices`) are kept."""
    from vaespec.spec.contract import validate_args

    return _magnitude(function, validate_args(function, args))


def vjp_magnitude(function: str, args, cotangent):
    """Error scale of `vjp(function, args, cotangent)`, structured like its result.

    The backward pass run on absolute values (|W|ᵀ, |act′|, |ȳ|), starting from the
    magnitude of each loss derivative — e.g. d KL / d lv = ½(exp(lv) − 1) has magnitude
    ½(exp(lv) + 1), which is the size of what an autograd backend actually cancels.
    VQ functions: `vq_magnitude`. Arguments checked as `vjp`'s (`validate_vjp`).
    """
    from vaespec.spec.contract import validate_vjp

    checked, cotangents = validate_vjp(function, args, cotangent)
    return _vjp_magnitude(function, checked, cotangents if len(cotangents) > 1 else cotangents[0])


def _magnitude(function: str, args):
    from . import estimators_magnitude, vq_magnitude  # they build on this module

    if function in estimators_magnitude.FUNCTIONS:
        return estimators_magnitude.magnitude(function, args)

    if function in vq_magnitude.FUNCTIONS:
        return vq_magnitude.magnitude(function, args)
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


# ----------------------------------------------------------------------------- gradients
def _abs_hidden(params, names, act, x, m_x):
    """Forward through hidden layers keeping values and magnitudes: [(input M, pre, pre M)], top (h, M)."""
    layers, h, m = [], x, m_x
    for name in names:
        pre, m_pre = mlp.dense(params, name, h), mlp.dense_magnitude(params, name, m)
        layers.append((m, pre, m_pre))
        h, m = act.value(pre), act.magnitude(m_pre)
    return layers, h, m


def _abs_backward(params, names, act, layers, dh, grads):
    """The backward pass on magnitudes: |W|ᵀ, and |act′(pre)| + curvature · M_pre (act′ is
    evaluated at a pre-activation that errs by γ·M_pre); weight gradients W̄ = hᵀ·ȳ use the
    forward magnitude of h (it errs by δhᵀ·ȳ)."""
    for name, (m_in, pre, m_pre) in reversed(list(zip(names, layers))):
        dy = dh * (np.abs(act.derivative(pre)) + act.curvature * m_pre)
        grads[f"{name}.kernel"] = m_in.T @ dy
        grads[f"{name}.bias"] = dy.sum(axis=0)
        dh = dy @ np.abs(params[f"{name}.kernel"]).T
    return dh


def _abs_head_backward(params, name, m_in, dy, grads):
    grads[f"{name}.kernel"] = m_in.T @ dy
    grads[f"{name}.bias"] = dy.sum(axis=0)
    return dy @ np.abs(params[f"{name}.kernel"]).T


def _abs_encode_backward(arch, params, x, m_x, d_mu, d_lv, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.encoder_layers()]
    layers, _, m_h = _abs_hidden(params, names, act, x, m_x)
    dh = _abs_head_backward(params, "mu", m_h, d_mu, grads) + _abs_head_backward(params, "log_var", m_h, d_lv, grads)
    return _abs_backward(params, names, act, layers, dh, grads)


def _abs_decode_backward(arch, params, z, m_z, d_x_hat, grads):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.decoder_layers()]
    layers, _, m_h = _abs_hidden(params, names, act, z, m_z)
    dh = _abs_head_backward(params, "decoder_output", m_h, d_x_hat, grads)
    return _abs_backward(params, names, act, layers, dh, grads)


def _abs_reparameterize_backward(log_var, m_lv, eps, d_z):
    """μ̄ = z̄ (exact); lv̄ = z̄·½σε, with σ erring by ½σ·δlv."""
    return d_z, d_z * 0.5 * np.exp(0.5 * log_var) * np.abs(eps) * (1.0 + 0.5 * m_lv)


def _scales(c, shape, feature_how, batch_how):
    return vae._reduce_scale(shape[1], feature_how) * vae._reduce_scale(shape[0], batch_how)


def _zeros(params):
    return {k: np.zeros_like(v) for k, v in params.items()}


def _vjp_magnitude(function: str, args, cotangent):
    from . import estimators_magnitude, vq_magnitude  # they build on this module

    if function in estimators_magnitude.FUNCTIONS:
        return estimators_magnitude.vjp_magnitude(function, args, cotangent)

    if function in vq_magnitude.VJP_FUNCTIONS:
        return vq_magnitude.vjp_magnitude(function, args, cotangent)
    a = args
    ct = tuple(np.abs(c) for c in cotangent) if isinstance(cotangent, tuple) else np.abs(np.asarray(cotangent, float))
    if function == "reparameterize":
        d_mu, d_lv = _abs_reparameterize_backward(a["log_var"], np.abs(a["log_var"]), a["eps"], ct)
        return {"mu": d_mu, "log_var": d_lv}
    if function == "reconstruction_loss":
        c = get_convention(a["convention"])
        d = 2 * c.reconstruction_scale * ct * _scales(c, a["x_hat"].shape, c.reconstruction_feature_reduction,
                                                       c.reconstruction_batch_reduction) * (np.abs(a["x_hat"]) + np.abs(a["x"]))
        return {"x_hat": d, "x": d}
    if function == "kl_divergence":
        c = get_convention(a["convention"])
        s = ct * _scales(c, a["mu"].shape, c.kl_latent_reduction, c.kl_batch_reduction)
        return {"mu": s * np.abs(a["mu"]), "log_var": s * 0.5 * (np.exp(a["log_var"]) + 1.0)}
    arch, params = a["arch"], a["params"]
    grads = _zeros(params)
    if function == "encode":
        dx = _abs_encode_backward(arch, params, a["x"], np.abs(a["x"]), ct[0], ct[1], grads)
        return {"params": grads, "x": dx}
    if function == "decode":
        return {"params": grads, "z": _abs_decode_backward(arch, params, a["z"], np.abs(a["z"]), ct, grads)}
    if function == "generate":
        _abs_decode_backward(arch, params, a["eps"], np.abs(a["eps"]), ct, grads)
        return {"params": grads}
    x, eps = a["x"], a["eps"]
    mu, log_var = vae.encode(arch, params, x)
    m_z, (m_mu, m_lv) = _latent(arch, params, x, eps)
    if function == "sample_latent":
        d_mu, d_lv = _abs_reparameterize_backward(log_var, m_lv, eps, ct)
        return {"params": grads, "x": _abs_encode_backward(arch, params, x, np.abs(x), d_mu, d_lv, grads)}
    z = mu + np.exp(0.5 * log_var) * eps
    if function == "forward":
        d_x_hat, d_mu_kl, d_lv_kl, d_x_direct = ct, 0.0, 0.0, 0.0
    elif function == "loss":
        c = get_convention(a["convention"])
        x_hat = vae.forward(arch, params, x, eps)
        d_x_hat = 2 * c.reconstruction_scale * ct * _scales(
            c, x_hat.shape, c.reconstruction_feature_reduction, c.reconstruction_batch_reduction
        ) * (np.abs(x_hat - x) + _decode(arch, params, m_z))
        d_x_direct = d_x_hat
        s = a["beta"] * ct * _scales(c, mu.shape, c.kl_latent_reduction, c.kl_batch_reduction)
        d_mu_kl = s * (np.abs(mu) + m_mu)
        d_lv_kl = s * 0.5 * (np.exp(log_var) * (1.0 + m_lv) + 1.0)
    else:
        raise KeyError(function)
    d_z = _abs_decode_backward(arch, params, z, m_z, d_x_hat, grads)
    d_mu, d_lv = _abs_reparameterize_backward(log_var, m_lv, eps, d_z)
    dx = _abs_encode_backward(arch, params, x, np.abs(x), d_mu + d_mu_kl, d_lv + d_lv_kl, grads)
    return {"params": grads, "x": dx + d_x_direct}
