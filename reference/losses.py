"""The VAE's two loss terms in float64: `reconstruction_loss` and `kl_divergence`, each with its VJP,
magnitude and VJP magnitude, and the pieces the composite losses (`loss`, `vq_loss`) reuse.

    reconstruction_loss  R  = reduce_b(scale · reduce_d((x̂ − x)²))
    kl_divergence        KL = reduce_b(reduce_j(½(expm1(lv) − lv + μ²)))

with the convention's reductions (`vaespec.spec.conventions`). Their VJPs, with `c = 1` for a sum
and `1/size` for a mean over that axis:

    x̂̄ = ȳ · 2 · scale · (x̂ − x) · c_d · c_b,  x̄ = −x̂̄
    μ̄ = ȳ · μ · c_j · c_b,  lv̄ = ȳ · ½ expm1(lv) · c_j · c_b

Magnitudes (the tolerance policy's M): each term redone on absolute values, with the upstream
magnitudes of x̂ (M_x̂) and of μ, lv (M_μ, M_lv) when the inputs are themselves computed:

    R:  reduce_b(scale · reduce_d((|x̂ − x| + M_x̂)²))
    KL: reduce(½(e^lv + |lv| + μ²) + |μ| M_μ + ½|expm1(lv)| M_lv)

and for the VJPs d KL / d lv = ½(e^lv − 1) has magnitude ½(e^lv + 1), the size of what an
autograd backend actually cancels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import validate_args, validate_vjp
from vaespec.spec.conventions import Convention, get_convention
from vaespec.spec.shapes import Float

from .boundary import finite, finite_gradients
from .elementwise import squared_difference, standard_normal_kl
from .function import ReferenceFunction


def reduce(values: np.ndarray, axis: int, how: str) -> np.ndarray:
    """A convention's reduction over `axis`: "sum" or "mean"."""
    return values.sum(axis=axis) if how == "sum" else values.mean(axis=axis)


def reduce_scale(size: int, how: str) -> float:
    """d reduce / d element: 1 for sum, 1/size for mean."""
    return 1.0 if how == "sum" else 1.0 / size


def scales(shape: tuple[int, ...], feature_how: str, batch_how: str) -> float:
    """d reduce_b(reduce_d(·)) / d element for a [batch, *event] array of `shape` (features: all ∏event entries)."""
    return reduce_scale(int(np.prod(shape[1:], dtype=np.int64)), feature_how) * reduce_scale(shape[0], batch_how)


def examples(values: np.ndarray) -> np.ndarray:
    """[batch, *event] as [batch, features]: each example's ∏event entries in C order (a view; [B, D] unchanged)."""
    return values.reshape(values.shape[0], -1)


# ----------------------------------------------------------------------------- reconstruction_loss
def reconstruction(x_hat: np.ndarray, x: np.ndarray, c: Convention) -> np.ndarray:
    """R on checked arrays."""
    per_example = c.reconstruction_scale * reduce(examples(squared_difference(x_hat, x)), 1,
                                                  c.reconstruction_feature_reduction)
    return reduce(per_example, 0, c.reconstruction_batch_reduction)


def reconstruction_backward(x_hat: np.ndarray, x: np.ndarray, c: Convention, d_loss: float
                            ) -> tuple[np.ndarray, np.ndarray]:
    """(x̂̄, x̄) of R for the scalar cotangent `d_loss`."""
    batch, features = examples(x_hat).shape
    factor = (2.0 * c.reconstruction_scale * d_loss
              * reduce_scale(features, c.reconstruction_feature_reduction)
              * reduce_scale(batch, c.reconstruction_batch_reduction))
    d_x_hat = factor * (x_hat - x)
    return d_x_hat, -d_x_hat


def reconstruction_magnitude(x_hat: np.ndarray, m_x_hat: np.ndarray | float, x: np.ndarray, c: Convention
                             ) -> np.ndarray:
    """R's magnitude when x̂ carries the upstream magnitude `m_x_hat` (0 for a given x̂)."""
    per = c.reconstruction_scale * reduce(examples((np.abs(x_hat - x) + m_x_hat) ** 2), 1,
                                          c.reconstruction_feature_reduction)
    return reduce(per, 0, c.reconstruction_batch_reduction)


def reconstruction_backward_magnitude(c: Convention, shape: tuple[int, ...], ct: np.ndarray | float,
                                      spread: np.ndarray) -> np.ndarray:
    """x̂̄'s magnitude 2 · scale · |ȳ| · c_d · c_b · spread, `spread` bounding |x̂ − x| with its error."""
    return 2 * c.reconstruction_scale * ct * scales(shape, c.reconstruction_feature_reduction,
                                                    c.reconstruction_batch_reduction) * spread


def reconstruction_loss(x_hat: Float[np.ndarray, " batch *event"], x: Float[np.ndarray, " batch *event"],
                        convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """`R = reduce_b(scale · reduce_d((x̂ − x)²))` with the convention's reductions and scale; the features d of
    x [batch, *event] are all ∏event entries of an example (an image's channels × height × width)."""
    a = validate_args("reconstruction_loss", {"x_hat": x_hat, "x": x, "convention": convention})
    return finite("reconstruction_loss", np.asarray(reconstruction(a["x_hat"], a["x"], a["convention"])))


def reconstruction_loss_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"x_hat": x̂̄, "x": −x̂̄}`, x̂̄ = ȳ · 2 · scale · (x̂ − x) · c_d · c_b."""
    a, (d_loss,) = validate_vjp("reconstruction_loss", args, cotangent)
    d_x_hat, d_x = reconstruction_backward(a["x_hat"], a["x"], a["convention"], d_loss)
    return finite_gradients("reconstruction_loss", {"x_hat": d_x_hat, "x": d_x})


def reconstruction_loss_magnitude(args):
    """R on |x̂ − x|: `reduce_b(scale · reduce_d((x̂ − x)²))` (the squares cannot cancel)."""
    a = validate_args("reconstruction_loss", args)
    return reconstruction_magnitude(a["x_hat"], 0.0, a["x"], get_convention(a.get("convention")))


def reconstruction_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    """Both gradients at 2 · scale · |ȳ| · c_d · c_b · (|x̂| + |x|): x̂ − x rounds at that size."""
    a, (ct,) = validate_vjp("reconstruction_loss", args, cotangent)
    c = get_convention(a["convention"])
    d = reconstruction_backward_magnitude(c, a["x_hat"].shape, np.abs(np.asarray(ct, float)),
                                          np.abs(a["x_hat"]) + np.abs(a["x"]))
    return {"x_hat": d, "x": d}


RECONSTRUCTION_LOSS = ReferenceFunction("reconstruction_loss", reconstruction_loss, reconstruction_loss_magnitude,
                                        reconstruction_loss_vjp, reconstruction_loss_vjp_magnitude)


# ----------------------------------------------------------------------------- kl_divergence
def kl(mu: np.ndarray, log_var: np.ndarray, c: Convention) -> np.ndarray:
    """KL on checked arrays."""
    return reduce(reduce(standard_normal_kl(mu, log_var), 1, c.kl_latent_reduction), 0, c.kl_batch_reduction)


def kl_backward(mu: np.ndarray, log_var: np.ndarray, c: Convention, d_kl: float) -> tuple[np.ndarray, np.ndarray]:
    """(μ̄, lv̄) of KL for the scalar cotangent `d_kl`."""
    batch, latent = mu.shape
    factor = d_kl * reduce_scale(latent, c.kl_latent_reduction) * reduce_scale(batch, c.kl_batch_reduction)
    return factor * mu, factor * 0.5 * np.expm1(log_var)


def kl_magnitude(mu: np.ndarray, log_var: np.ndarray, m_mu: np.ndarray | float, m_lv: np.ndarray | float,
                 c: Convention) -> np.ndarray:
    """KL's magnitude when μ and lv carry the upstream magnitudes `m_mu`, `m_lv` (0 for given ones)."""
    per = (0.5 * (np.exp(log_var) + np.abs(log_var) + mu * mu) + np.abs(mu) * m_mu
           + 0.5 * np.abs(np.expm1(log_var)) * m_lv)
    return reduce(reduce(per, 1, c.kl_latent_reduction), 0, c.kl_batch_reduction)


def kl_per_coordinate(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"]
                      ) -> Float[np.ndarray, "batch latent"]:
    """`KL(N(μ, σ²) ‖ N(0, 1)) = ½(σ² + μ² − 1 − log σ²) = ½(g(lv) + μ²)`, `g(x) = e^x − 1 − x`.

    Within 2 ulps of the exact value at the float64 inputs (docs/numerics.md): `g` is evaluated
    without the cancellation of `exp(lv) − 1 − lv` (or of `expm1(lv) − lv`) near lv = 0.
    """
    a = validate_args("kl_divergence", {"mu": mu, "log_var": log_var, "convention": None})  # same inputs, checks
    return finite("kl_divergence", standard_normal_kl(a["mu"], a["log_var"]))


def kl_divergence(mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                  convention: Convention | str | None = None) -> Float[np.ndarray, ""]:
    """`KL = reduce_b(reduce_j(½(exp(lv) + μ² − 1 − lv)))` with the convention's reductions."""
    a = validate_args("kl_divergence", {"mu": mu, "log_var": log_var, "convention": convention})
    return finite("kl_divergence", np.asarray(kl(a["mu"], a["log_var"], a["convention"])))


def kl_divergence_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"mu": ȳ · μ · c_j · c_b, "log_var": ȳ · ½ expm1(lv) · c_j · c_b}`."""
    a, (d_kl,) = validate_vjp("kl_divergence", args, cotangent)
    d_mu, d_log_var = kl_backward(a["mu"], a["log_var"], a["convention"], d_kl)
    return finite_gradients("kl_divergence", {"mu": d_mu, "log_var": d_log_var})


def kl_divergence_magnitude(args):
    """`reduce(½(e^lv + |lv| + μ²))`: where expm1(lv) − lv cancels, M stays at the operands' size."""
    a = validate_args("kl_divergence", args)
    return kl_magnitude(a["mu"], a["log_var"], 0.0, 0.0, get_convention(a.get("convention")))


def kl_divergence_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"mu": s |μ|, "log_var": s · ½(e^lv + 1)}`, s = |ȳ| · c_j · c_b."""
    a, (ct,) = validate_vjp("kl_divergence", args, cotangent)
    c = get_convention(a["convention"])
    s = np.abs(np.asarray(ct, float)) * scales(a["mu"].shape, c.kl_latent_reduction, c.kl_batch_reduction)
    return {"mu": s * np.abs(a["mu"]), "log_var": s * 0.5 * (np.exp(a["log_var"]) + 1.0)}


KL_DIVERGENCE = ReferenceFunction("kl_divergence", kl_divergence, kl_divergence_magnitude, kl_divergence_vjp,
                                  kl_divergence_vjp_magnitude)

REFERENCE_FUNCTIONS = (RECONSTRUCTION_LOSS, KL_DIVERGENCE)
