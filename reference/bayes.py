"""The Bayesian chapter in float64 NumPy: the linear-Gaussian evidence and posterior, each with its
hand-written VJP, magnitude and VJP magnitude side by side, and the parameter-space log joint.

With r = x − b, σ² = e^ℓ, M = WᵀW + σ² I_L, y = M⁻¹Wᵀr (the posterior mean) and
α = C⁻¹r = (r − W y)/σ² (Woodbury, C = W Wᵀ + σ² I_D):

    linear_gaussian_log_evidence = −½ (D log 2π + (D − L) ℓ + log det M + rᵀα)
    linear_gaussian_posterior    = (y, σ² M⁻¹)

VJPs (ȳ the cotangent of the log evidence, (m̄, S̄) of the posterior; g = M⁻¹ m̄, H = M⁻¹ S̄ M⁻¹):

    evidence:  x̄ = −ȳ α,  b̄ = Σ_n ȳ_n α_n,  W̄ = −(Σ_n ȳ_n) W M⁻¹ + Σ_n ȳ_n α_n α_nᵀ W
    posterior: x̄ = W g,   b̄ = −Σ_n x̄_n,   W̄ = Σ_n (r_n − W y_n) g_nᵀ − W g_n y_nᵀ − σ² W (H + Hᵀ)

(d log det C = 2 tr(C⁻¹ W dWᵀ), C⁻¹W = W M⁻¹; d(rᵀC⁻¹r) = −2 αᵀ dW Wᵀ α; dM⁻¹ = −M⁻¹ dM M⁻¹.)

**Magnitudes** are normwise first-order perturbation bounds (Higham ch. 7 and 10), broadcast to
every entry: a solve with M errs by ‖M⁻¹‖(‖δM‖‖y‖ + ‖δc‖) with ‖δM‖ ≤ γ_n ‖|W|ᵀ|W| + σ²I‖, and
the evidence's terms are bounded for either form (Woodbury's L×L or the direct D×D Cholesky).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.bayes import PRIOR_SCALE, validate
from vaespec.spec.contract import validate_vjp
from vaespec.spec.errors import ConfigError
from vaespec.spec.estimators import LOG_2PI

from .function import ReferenceFunction


def _tape(x, weight, bias, noise_log_var):
    output, latent = weight.shape
    var = float(np.exp(noise_log_var))
    m = weight.T @ weight + var * np.eye(latent)
    m_inv = np.linalg.solve(m, np.eye(latent))
    m_inv = 0.5 * (m_inv + m_inv.T)
    r = x - bias
    y = r @ weight @ m_inv
    alpha = (r - y @ weight.T) / var
    log_det_c = (output - latent) * float(noise_log_var) + np.linalg.slogdet(m)[1]
    return {"var": var, "m": m, "m_inv": m_inv, "r": r, "y": y, "alpha": alpha, "log_det_c": log_det_c}


def _log_evidence(t, output):
    return -0.5 * (output * LOG_2PI + t["log_det_c"] + np.sum(t["r"] * t["alpha"], axis=1))


def _sizes(args):
    """The norms both magnitudes are built from, at the checked `args` (with the tape)."""
    x, w, b = args["x"], args["weight"], args["bias"]
    t = _tape(x, w, b, args["noise_log_var"])
    output, latent = w.shape
    var, abs_w = t["var"], np.abs(w)
    n_m = np.linalg.norm(abs_w.T @ abs_w + var * np.eye(latent), 2)      # ‖|W|ᵀ|W| + σ²I‖
    n_c = float(np.sum(abs_w ** 2)) + var                                  # ≥ ‖|W||W|ᵀ + σ²I‖
    n_m_inv = np.linalg.norm(t["m_inv"], 2)
    n_w = np.linalg.norm(abs_w, 2)
    r_abs = np.abs(x) + np.abs(b)
    n_r = np.sum(r_abs, axis=1)  # 1-norms bound the 2-norms and never underflow to 0
    n_y = np.sum(np.abs(t["y"]), axis=1)
    m_y = n_m_inv * (n_m * n_y + np.sum(r_abs @ abs_w, axis=1))  # the solve's error in y, per row
    n_alpha = np.sum(np.abs(t["alpha"]), axis=1)
    m_alpha = (n_r + n_w * (n_y + m_y) + n_c * n_alpha) / var
    return {**t, "output": output, "latent": latent, "n_m": n_m, "n_c": n_c, "n_m_inv": n_m_inv, "n_w": n_w,
            "n_r": n_r, "n_y": n_y, "m_y": m_y, "n_alpha": n_alpha, "m_alpha": m_alpha,
            "f": 1.0 + n_m_inv * n_m}



def _vjp_args(function, args, cotangent):
    """(checked args, tape, cotangents): the chapter's checks (`vaespec.spec.bayes.validate`: the contract's,
    L ≤ D, the domain) first, then the cotangent's (`validate_vjp`)."""
    a = validate(function, args)
    _, cotangents = validate_vjp(function, a, cotangent)
    return a, _tape(a["x"], a["weight"], a["bias"], a["noise_log_var"]), cotangents


# ----------------------------------------------------------------------------- linear_gaussian_log_evidence
def linear_gaussian_log_evidence(x, weight, bias, noise_log_var):
    """The exact evidence of the linear-Gaussian VAE: `log N(x; b, W Wᵀ + σ² I)` per row.

    **Arguments** `x` [batch, output]; `weight` W [output, latent] (L ≤ D); `bias` b [output];
    `noise_log_var` log σ² (a float). **Returns** [batch]:
    `−½(D log 2π + (D − L) log σ² + log det M + (‖r‖² − rᵀ W M⁻¹ Wᵀ r)/σ²)`, r = x − b, M = WᵀW + σ²I.
    """
    a = validate("linear_gaussian_log_evidence", {"x": x, "weight": weight, "bias": bias,
                                                  "noise_log_var": noise_log_var})
    return _log_evidence(_tape(a["x"], a["weight"], a["bias"], a["noise_log_var"]), a["weight"].shape[0])


def linear_gaussian_log_evidence_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`x̄ = −ȳ α`, `b̄ = Σ_n ȳ_n α_n`, `W̄ = −(Σ_n ȳ_n) W M⁻¹ + Σ_n ȳ_n α_n α_nᵀ W`."""
    a, t, (d,) = _vjp_args("linear_gaussian_log_evidence", args, cotangent)
    w, alpha = a["weight"], t["alpha"]
    d_x = -d[:, None] * alpha
    d_w = -float(np.sum(d)) * (w @ t["m_inv"]) + (d[:, None] * alpha).T @ (alpha @ w)
    return {"x": d_x, "weight": d_w, "bias": -d_x.sum(axis=0)}


def linear_gaussian_log_evidence_magnitude(args):
    """½ (the log-determinant's terms + the quadratic form's), normwise, per row."""
    a = validate("linear_gaussian_log_evidence", args)
    s = _sizes(a)
    output, latent, var = s["output"], s["latent"], s["var"]
    log_det = (output * (LOG_2PI + abs(float(a["noise_log_var"]))) + abs(np.linalg.slogdet(s["m"])[1])
               + latent * s["f"] + output * s["n_c"] / var)
    quad = ((s["n_r"] ** 2 + 2 * s["n_r"] * s["n_w"] * s["n_y"] + s["n_y"] ** 2 * s["n_m"]) * s["f"] / var
            + s["n_alpha"] ** 2 * s["n_c"] + s["n_r"] * s["m_alpha"])
    return 0.5 * (log_det + quad)


def linear_gaussian_log_evidence_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, _, (ct,) = _vjp_args("linear_gaussian_log_evidence", args, cotangent)
    s = _sizes(a)
    w = a["weight"]
    f, n_w, n_m_inv = s["f"], s["n_w"], s["n_m_inv"]
    ct = np.abs(np.asarray(ct, dtype=np.float64))
    d_x = (ct * s["m_alpha"])[:, None] * np.ones_like(a["x"])
    d_w = float(np.sum(ct)) * n_w * n_m_inv * f + float(np.sum(ct * (2 * s["m_alpha"] + s["n_alpha"]) * s["n_alpha"]
                                                                 * n_w))
    return {"x": d_x, "weight": np.full(w.shape, d_w), "bias": np.full(w.shape[0], float(np.sum(d_x[:, 0])))}


LINEAR_GAUSSIAN_LOG_EVIDENCE = ReferenceFunction(
    "linear_gaussian_log_evidence", linear_gaussian_log_evidence, linear_gaussian_log_evidence_magnitude,
    linear_gaussian_log_evidence_vjp, linear_gaussian_log_evidence_vjp_magnitude)


# ----------------------------------------------------------------------------- linear_gaussian_posterior
def linear_gaussian_posterior(x, weight, bias, noise_log_var):
    """The exact posterior of the linear-Gaussian VAE: `p(z | x) = N(M⁻¹Wᵀ(x − b), σ² M⁻¹)`.

    **Arguments** as `linear_gaussian_log_evidence`. **Returns** `(mean [batch, latent],
    covariance [latent, latent])` (the covariance does not depend on x).
    """
    a = validate("linear_gaussian_posterior", {"x": x, "weight": weight, "bias": bias,
                                               "noise_log_var": noise_log_var})
    t = _tape(a["x"], a["weight"], a["bias"], a["noise_log_var"])
    return t["y"], t["var"] * t["m_inv"]


def linear_gaussian_posterior_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """With g = M⁻¹ m̄, H = M⁻¹ S̄ M⁻¹: `x̄ = W g`, `b̄ = −Σ_n x̄_n`,
    `W̄ = Σ_n (r_n − W y_n) g_nᵀ − W g_n y_nᵀ − σ² W (H + Hᵀ)`."""
    a, t, (d_mean, d_cov) = _vjp_args("linear_gaussian_posterior", args, cotangent)
    w = a["weight"]
    g = d_mean @ t["m_inv"]
    h = t["m_inv"] @ d_cov @ t["m_inv"]
    d_x = g @ w.T
    d_w = (t["r"] - t["y"] @ w.T).T @ g - w @ (g.T @ t["y"]) - t["var"] * w @ (h + h.T)
    return {"x": d_x, "weight": d_w, "bias": -d_x.sum(axis=0)}


def linear_gaussian_posterior_magnitude(args):
    """The solve's normwise error in the mean, per row; σ²‖M⁻¹‖²‖M‖ + |σ² M⁻¹| for the covariance."""
    a = validate("linear_gaussian_posterior", args)
    s = _sizes(a)
    latent, var = s["latent"], s["var"]
    mean = np.broadcast_to(s["m_y"][:, None], s["y"].shape).copy()
    cov = var * s["n_m_inv"] ** 2 * s["n_m"] + np.abs(var * s["m_inv"])
    return mean, np.broadcast_to(cov, (latent, latent)).copy()


def linear_gaussian_posterior_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    a, _, cotangents = _vjp_args("linear_gaussian_posterior", args, cotangent)
    s = _sizes(a)
    w = a["weight"]
    f, n_w, n_m_inv = s["f"], s["n_w"], s["n_m_inv"]
    d_mean, d_cov = (np.asarray(c, dtype=np.float64) for c in cotangents)
    n_g = n_m_inv * np.sum(np.abs(d_mean), axis=1) * f
    d_x = (n_w * n_g)[:, None] * np.ones_like(a["x"])
    n_h = n_m_inv ** 2 * np.sum(np.abs(d_cov)) * f
    d_w = float(np.sum((s["n_r"] + 2 * n_w * (s["n_y"] + s["m_y"])) * n_g)) + 2 * s["var"] * n_w * n_h
    return {"x": d_x, "weight": np.full(w.shape, d_w), "bias": np.full(w.shape[0], float(np.sum(d_x[:, 0])))}


LINEAR_GAUSSIAN_POSTERIOR = ReferenceFunction(
    "linear_gaussian_posterior", linear_gaussian_posterior, linear_gaussian_posterior_magnitude,
    linear_gaussian_posterior_vjp, linear_gaussian_posterior_vjp_magnitude)


# ----------------------------------------------------------------------------- the model's log density
def log_joint(params, x, noise_log_var, prior_scale=PRIOR_SCALE):
    """`log p(θ, X) = Σ_i log N(θ_i; 0, s²) + Σ_n linear_gaussian_log_evidence(x_n)`: the Bayesian
    model's parameter-space log density ("exact" evidence) at θ = `params`, the decoder layout
    `{"decoder_output.kernel": Wᵀ [latent, output], "decoder_output.bias": b}`. Returns a float."""
    if sorted(params) != ["decoder_output.bias", "decoder_output.kernel"]:
        raise ConfigError(f"params: expected the linear decoder's layout ['decoder_output.bias', "
                          f"'decoder_output.kernel'], got {sorted(params)}")
    log_prior = sum(float(np.sum(-0.5 * (v / prior_scale) ** 2 - np.log(prior_scale) - 0.5 * LOG_2PI))
                    for v in params.values())
    evidence = linear_gaussian_log_evidence(x, params["decoder_output.kernel"].T, params["decoder_output.bias"],
                                            noise_log_var)
    return log_prior + float(np.sum(evidence))


REFERENCE_FUNCTIONS = (LINEAR_GAUSSIAN_LOG_EVIDENCE, LINEAR_GAUSSIAN_POSTERIOR)
