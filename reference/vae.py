"""The VAE contract in float64 NumPy: every function (VJPs in gradients.py, error magnitudes in magnitude.py).

This module *is* the executable spec. Formulas (see docs/math.md):

    encode(x)            = (h·W_μ + b_μ, h·W_lv + b_lv),  h = act(…act(x·W₀ + b₀)…)
    decode(z)            = act(…act(z·V₀ + c₀)…)·V_out + c_out
    reparameterize       = μ + exp(½ lv) ⊙ ε
    sample_latent(x, ε)  = reparameterize(encode(x), ε)
    forward(x, ε)        = decode(sample_latent(x, ε))
    generate(ε)          = decode(ε)
    reconstruction_loss  = reduce_b(scale · reduce_d((x̂ − x)²))
    kl_divergence        = reduce_b(reduce_j(½(expm1(lv) − lv + μ²)))
    loss                 = reconstruction_loss(forward(x, ε), x) + β · kl_divergence(encode(x))

Every public function validates its inputs (named shapes, finite values) and raises a
vaespec error naming the argument.
"""

from __future__ import annotations

import math

import numpy as np
from vaespec.spec.architecture import Architecture
from vaespec.spec.contract import validate_args
from vaespec.spec.conventions import Convention
from vaespec.spec.domains import check_result
from vaespec.spec.shapes import Float

from . import mlp
from .activations import get_activation, two_prod, two_sum


# ----------------------------------------------------------------------------- checks
def _valid(function: str, **args) -> dict:
    """The contract's boundary checks (`validate_args`): shapes against `arch`, finiteness, β ≥ 0. Returns the
    arguments as float64 arrays (float16/float32 widened), which every function computes on."""
    return validate_args(function, args)


def _finite(function: str, result, what: str = "result"):
    """A network function's domain is where its magnitude stays within float64 (spec/domains.py); the
    spec cannot evaluate that magnitude, so the reference checks the result instead
    (`vaespec.spec.domains.check_result`). Every public function of the reference passes its outputs
    (and every VJP its gradients) through here: the reference never returns Inf or NaN."""
    return check_result(function, result, "float64", what)


def _reduce(values: np.ndarray, axis: int, how: str) -> np.ndarray:
    return values.sum(axis=axis) if how == "sum" else values.mean(axis=axis)


def _reduce_scale(size: int, how: str) -> float:
    """d reduce / d element: 1 for sum, 1/size for mean."""
    return 1.0 if how == "sum" else 1.0 / size


# ----------------------------------------------------------------------------- forward
def _encode(arch, params, x):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.encoder_layers()]
    h, tape = mlp.hidden_forward(params, names, act, x)
    return mlp.dense(params, "mu", h), mlp.dense(params, "log_var", h), (h, tape)


def _decode(arch, params, z):
    act = get_activation(arch.activation)
    names = [n for n, _, _ in arch.decoder_layers()]
    h, tape = mlp.hidden_forward(params, names, act, z)
    return mlp.dense(params, "decoder_output", h), (h, tape)


def encode(arch: Architecture, params, x: Float[np.ndarray, "batch input"]
           ) -> tuple[Float[np.ndarray, "batch latent"], Float[np.ndarray, "batch latent"]]:
    """Encoder: `(μ, log σ²) = (h·W_μ + b_μ, h·W_lv + b_lv)`, `h` the hidden stack of `x`."""
    a = _valid("encode", arch=arch, params=params, x=x)
    mu, log_var, _ = _encode(arch, a["params"], a["x"])
    return _finite("encode", (mu, log_var))


def decode(arch: Architecture, params, z: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """Decoder: `x̂ = act(…act(z·V₀ + c₀)…)·V_out + c_out` (no output activation)."""
    a = _valid("decode", arch=arch, params=params, z=z)
    return _finite("decode", _decode(arch, a["params"], a["z"])[0])


def _reparameterize(mu, log_var, eps):
    """μ + σ·ε with σ·ε carried exactly (two_prod) into the sum, rounded once: within exp's error
    plus ½ ulp of the magnitude |μ| + σ|ε| (the sum itself cancels when μ ≈ −σε)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p, p_e = two_prod(np.exp(0.5 * log_var), eps)
        s, s_e = two_sum(mu, p)
        value = s + (s_e + p_e)
    return np.where(np.isfinite(value), value, mu + p)


def squared_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b)², with a − b carried exactly (two_sum) into the square, rounded once (≤ ½ ulp + 2⁻¹⁰⁴)."""
    with np.errstate(over="ignore", invalid="ignore"):
        d, d_e = two_sum(a, -b)
        p, p_e = two_prod(d, d)
        value = p + (p_e + 2.0 * d * d_e)
    return np.where(np.isfinite(value), value, d * d)


def reparameterize(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                   eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]:
    """Reparameterization: `z = μ + exp(½ log σ²) ⊙ ε`."""
    a = _valid("reparameterize", mu=mu, log_var=log_var, eps=eps)
    return _finite("reparameterize", _reparameterize(a["mu"], a["log_var"], a["eps"]))


def sample_latent(arch: Architecture, params, x: Float[np.ndarray, "batch input"],
                  eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]:
    """`sample_latent(x, ε) = reparameterize(μ(x), log σ²(x), ε)`."""
    a = _valid("sample_latent", arch=arch, params=params, x=x, eps=eps)
    mu, log_var, _ = _encode(arch, a["params"], a["x"])
    return _finite("sample_latent", _reparameterize(mu, log_var, a["eps"]))


def forward(arch: Architecture, params, x: Float[np.ndarray, "batch input"],
            eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """`forward(x, ε) = decode(reparameterize(encode(x), ε))`."""
    a = _valid("forward", arch=arch, params=params, x=x, eps=eps)
    mu, log_var, _ = _encode(arch, a["params"], a["x"])
    return _finite("forward", _decode(arch, a["params"], _reparameterize(mu, log_var, a["eps"]))[0])


def generate(arch: Architecture, params, eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]:
    """Prior path: `generate(ε) = decode(reparameterize(0, 0, ε)) = decode(ε)`, p(z) = N(0, I)."""
    a = _valid("generate", arch=arch, params=params, eps=eps)
    return _finite("generate", _decode(arch, a["params"], a["eps"])[0])


def _reconstruction(x_hat, x, c: Convention):
    per_example = c.reconstruction_scale * _reduce(squared_difference(x_hat, x), 1, c.reconstruction_feature_reduction)
    return _reduce(per_example, 0, c.reconstruction_batch_reduction)


def reconstruction_loss(x_hat: Float[np.ndarray, "batch output"], x: Float[np.ndarray, "batch output"],
                        convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """`R = reduce_b(scale · reduce_d((x̂ − x)²))` with the convention's reductions and scale."""
    a = _valid("reconstruction_loss", x_hat=x_hat, x=x, convention=convention)
    return _finite("reconstruction_loss", np.asarray(_reconstruction(a["x_hat"], a["x"], a["convention"])))


# 1/(k + 3)! for k = 1…30, and 1/6 as two words: the series e^x − 1 − x = x²·(½ + x·(⅙ + x·r(x))),
# r(x) = Σ_k x^{k−1}/(k + 3)!, whose truncation after k = 30 is below 2⁻⁷⁵ relative for −1 ≤ x ≤ 3.
_SERIES = tuple(1.0 / math.factorial(k + 3) for k in range(1, 31))
_SIXTH = (1.0 / 6.0, 9.25185853854297e-18)  # ⅙ = hi + lo to 2⁻¹⁰⁶


def _expm1_minus_identity(x):
    """g(x) = e^x − 1 − x ≥ 0 as hi + lo, without the cancellation of expm1(x) − x near 0.

    - x ≤ −1: g = e^x + (−1 − x), a sum of two nonnegative terms (−1 − x exact as a two_sum);
    - x > 3: expm1(x) − x, where expm1(x) < 1.2·g, so expm1's error is barely amplified;
    - otherwise: the series x²·(½ + x·(⅙ + x·r(x))), x² exact as a two_prod, the two outer
      Horner steps in two words (their rounding would otherwise be most of the error), r by Horner.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        a, a_lo = two_sum(-1.0, -x)
        low_hi, low_e = two_sum(a, np.exp(np.minimum(x, 0.0)))
        high_hi, high_lo = two_sum(np.expm1(x), -x)
        r = np.zeros_like(x)
        for c in reversed(_SERIES):
            r = r * x + c
        t, t_e = two_prod(x, r)
        q, q_e = two_sum(_SIXTH[0], t)
        q_lo = q_e + t_e + _SIXTH[1]
        t, t_e = two_prod(x, q)
        p, p_e = two_sum(0.5, t)
        p_lo = p_e + t_e + x * q_lo
        x2, x2_e = two_prod(x, x)
        mid_hi, mid_e = two_prod(x2, p)
        mid_lo = mid_e + x2 * p_lo + x2_e * p
    return (np.where(x <= -1.0, low_hi, np.where(x > 3.0, high_hi, mid_hi)),
            np.where(x <= -1.0, low_e + a_lo, np.where(x > 3.0, high_lo, mid_lo)))


def _kl_per_coordinate(mu, log_var):
    """½(g(lv) + μ²), g = e^lv − 1 − lv, both terms ≥ 0 and summed in two words, rounded once."""
    g, g_lo = _expm1_minus_identity(log_var)
    with np.errstate(over="ignore", invalid="ignore"):
        m, m_lo = two_prod(mu, mu)
        s, s_e = two_sum(g, m)
        value = 0.5 * (s + (s_e + g_lo + m_lo))
    return np.where(np.isfinite(value), value, 0.5 * (g + m))


def kl_per_coordinate(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"]
                      ) -> Float[np.ndarray, "batch latent"]:
    """`KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − log σ²) = ½(g(lv) + μ²)`, `g(x) = e^x − 1 − x`.

    Within 2 ulps of the exact value at the float64 inputs (docs/numerics.md): `g` is evaluated
    without the cancellation of `exp(lv) − 1 − lv` (or of `expm1(lv) − lv`) near lv = 0.
    """
    a = _valid("kl_divergence", mu=mu, log_var=log_var, convention=None)  # same inputs, same checks
    return _finite("kl_divergence", _kl_per_coordinate(a["mu"], a["log_var"]))


def _kl(mu, log_var, c: Convention):
    return _reduce(_reduce(_kl_per_coordinate(mu, log_var), 1, c.kl_latent_reduction), 0, c.kl_batch_reduction)


def kl_divergence(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                  convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """`KL = reduce_b(reduce_j(½(exp(lv) + μ² − 1 − lv)))` with the convention's reductions."""
    a = _valid("kl_divergence", mu=mu, log_var=log_var, convention=convention)
    return _finite("kl_divergence", np.asarray(_kl(a["mu"], a["log_var"], a["convention"])))


# log 2π = hi + lo to 2⁻¹⁰⁶ (hi is the nearest double; math.log(2 * math.pi) is one ulp below it)
_LOG_2PI = (1.8378770664093456, -7.756588316134483e-17)


def gaussian_log_density(x: np.ndarray, mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """Elementwise `log N(x; mean, e^ℓ) = −½(log 2π + ℓ + (x − mean)² e^{−ℓ})`.

    The terms cancel for some inputs (ℓ ≈ −log 2π − (x − mean)²e^{−ℓ}), so the accuracy is
    stated in ulps of the magnitude ½(log 2π + |ℓ| + (x − mean)² e^{−ℓ}): within 2, because
    x − mean and its square are carried exactly (two_sum, two_prod) and the three terms summed
    in two words; only exp's own rounding and the final one remain. The naive one-line formula
    errs by up to ~3 ulps of the magnitude.

    **Arguments** `x`, `mean`, `log_var`: broadcastable float64 arrays (ℓ = log σ²).
    **Returns** the log-densities, shaped like the broadcast inputs.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        r, r_e = two_sum(x, -mean)
        r2, r2_e = two_prod(r, r)
        w = np.exp(-log_var)
        q, q_e = two_prod(r2, w)
        s, s_e = two_sum(_LOG_2PI[0], log_var)
        t, t_e = two_sum(s, q)
        value = -0.5 * (t + (t_e + s_e + q_e + (r2_e + 2.0 * r * r_e) * w + _LOG_2PI[1]))
    return np.where(np.isfinite(value), value, -0.5 * (_LOG_2PI[0] + log_var + r * r * w))


def loss(arch: Architecture, params, x: Float[np.ndarray, "batch input"], eps: Float[np.ndarray, "batch latent"],
         beta: float = 1.0, convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """β-VAE objective: `loss = R(forward(x, ε), x) + β · KL(encode(x))`."""
    checked = _valid("loss", arch=arch, params=params, x=x, eps=eps, beta=beta, convention=convention)
    beta, c, params, x, eps = (checked[k] for k in ("beta", "convention", "params", "x", "eps"))
    mu, log_var, _ = _encode(arch, params, x)
    x_hat = _decode(arch, params, _reparameterize(mu, log_var, eps))[0]
    return _finite("loss", np.asarray(_reconstruction(x_hat, x, c) + beta * _kl(mu, log_var, c)))
