"""The float64 reference under the variants a backend declares (`laws.declared.VARIANTS`).

    value(function, args, indices, {"ema_debias": False})        # like the reference's outputs
    gradient(function, args, cotangent, indices, {...})          # like its vjp

Each variant is the reference with one stated change; a function a variant does not concern is the
reference itself. Tolerances never change: they stay the reference's (`laws.tolerance`).

- `ema_debias = False`: `ema_update` without 1/(1 − γᵗ): Ñ = laplace_smooth(counts′, ε), e′_k = sums′_k / Ñ_k
  (the VQ-VAE paper's EMA, vector-quantize-pytorch). The stored state and the step are unchanged.
- `gaussian_constant = False`: every Gaussian log-density without −½·D·log 2π (D features): +½·D·log 2π on
  `gaussian_log_likelihood`, and on `log_importance_weights`, `elbo`, `iwae_bound` for the Gaussian likelihood.
  Gradients are unchanged.
- `vq_codebook_term = False`, `vq_codebook_weight = c`: vq_loss = R + c·codebook_loss + w·commitment_loss (c = 0
  without the term): the value moves by (c − 1)·codebook_loss, the codebook's gradient (which only the
  codebook term gives) is scaled by c.
- `vq_single_term = True`: vq_loss = R + w·‖z_e − e‖² without stop-gradients (vector-quantize-pytorch's
  learnable codebook): the value R + w·commitment_loss (no separate codebook term), the codebook's gradient × w.
- `unit_decoder_variance = True`: the log-variance argument is 0 (`declared.adapt_args`) and its gradient 0.
- `ema_epsilon`, `bernoulli_binary_targets`: fix arguments only (`declared.adapt_args`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vaespec.reference import vq as reference_vq
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS, call

from .tolerance import with_choices

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
REFERENCE = ReferenceBackend()


def plain_reference(function: str, args, indices=None):
    """The float64 reference of `function` at `args` (at the choices `indices`), as vaespec states it."""
    if indices is None:
        return call(REFERENCE, function, args)
    return getattr(REFERENCE, function)(*(args[a.name] for a in FUNCTIONS[function].args), indices=indices)


_plain = plain_reference


def _plain_vjp(function: str, args, cotangent, indices):
    return REFERENCE.vjp(function, with_choices(args, indices), cotangent)


def ema_without_debiasing(args, indices):
    """`ema_update` with the biased averages used as they are (no 1/(1 − γᵗ))."""
    if not args["training"]:
        return _plain("ema_update", args, indices)
    codebook, z_e, gamma = np.asarray(args["codebook"]), np.asarray(args["z_e"]), float(args["decay"])
    k = reference_vq.nearest_code(z_e, codebook) if indices is None else np.asarray(indices)
    # every position is a row ([batch, *positions, embedding], docs/vq.md)
    k, z_e = k.reshape(-1), z_e.reshape(-1, codebook.shape[1])
    n = np.bincount(k, minlength=codebook.shape[0]).astype(np.float64)
    s = np.zeros_like(codebook, dtype=np.float64)
    np.add.at(s, k, z_e)
    counts = gamma * np.asarray(args["ema_counts"]) + (1.0 - gamma) * n
    sums = gamma * np.asarray(args["ema_sums"]) + (1.0 - gamma) * s
    smoothed = reference_vq.laplace_smooth(counts, float(args["epsilon"]))
    new = codebook.astype(np.float64).copy()
    used = smoothed > 0
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = sums[used] / smoothed[used, None]
    return new, counts, sums, int(args["ema_step"]) + 1


def ema_as_lerp(args, indices, chosen: dict[str, Any], dtype: str):
    """`ema_update` (under the variants `chosen`) with its averages computed as torch's `lerp_` computes them in
    `dtype`: old + w·(new − old) for w = 1 − γ < ½, else new − (new − old)·(1 − w), each operation rounded (w
    itself rounded to `dtype`). A diagnosis candidate, not a variant: at small γ the form cancels, by up to
    ulp(1)/γ relative, beyond the policy's bound for the stated formula."""
    from vaespec.spec import dtypes

    if not args["training"]:
        return _plain("ema_update", args, indices)

    def r(a):
        return dtypes.round_to(dtype, np.asarray(a, dtype=np.float64))

    codebook, z_e = np.asarray(args["codebook"], dtype=np.float64), np.asarray(args["z_e"], dtype=np.float64)
    k = reference_vq.nearest_code(z_e, codebook) if indices is None else np.asarray(indices)
    k, z_e = k.reshape(-1), z_e.reshape(-1, codebook.shape[1])  # every position is a row
    n = np.bincount(k, minlength=codebook.shape[0]).astype(np.float64)
    s = np.zeros_like(codebook)
    np.add.at(s, k, z_e)
    w = float(r(1.0 - float(args["decay"])))

    def lerp(old, new):
        d = r(new - old)
        return r(old + r(w * d)) if w < 0.5 else r(new - r(d * float(r(1.0 - w))))

    counts, sums = lerp(np.asarray(args["ema_counts"], dtype=np.float64), n), lerp(np.asarray(args["ema_sums"]), r(s))
    step = int(args["ema_step"]) + 1
    debias = 1.0 if chosen.get("ema_debias", True) is False else 1.0 - float(args["decay"]) ** step
    smoothed = reference_vq.laplace_smooth(counts / debias, float(args["epsilon"]))
    new = codebook.copy()
    used = smoothed > 0
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = sums[used] / debias / smoothed[used, None]
    return new, counts, sums, step


def _gaussian_constant_dropped(function: str, args, outputs):
    """`outputs` + ½·D·log 2π where `function` computes a Gaussian log-density, else `outputs`."""
    if function != "gaussian_log_likelihood" and args.get("likelihood") != "gaussian":
        return outputs
    features = np.shape(args["x"])[-1]
    return np.asarray(outputs, dtype=np.float64) + features * HALF_LOG_2PI


def _codebook_weight(chosen: dict[str, Any]) -> float:
    """The weight of the codebook term in vq_loss's value."""
    if chosen.get("vq_codebook_term", True) is False or chosen.get("vq_single_term", False):
        return 0.0
    return float(chosen.get("vq_codebook_weight", 1.0))


def _codebook_gradient_weight(chosen: dict[str, Any], args) -> float:
    """The factor on the codebook's gradient of vq_loss (which only the codebook term gives)."""
    if chosen.get("vq_single_term", False):
        return float(args["commitment_weight"])
    return _codebook_weight(chosen)


def codebook_weight(backend) -> float:
    """The codebook term's weight in `backend`'s vq_loss (1 unless it declares `vq_codebook_term`/`_weight`)."""
    from .declared import variants

    return _codebook_weight(variants(backend))


def value(function: str, args, indices, chosen: dict[str, Any]):
    """The reference's outputs of `function` at `args` (choices `indices`) under the variants `chosen`."""
    if function == "ema_update" and chosen.get("ema_debias", True) is False:
        outputs = ema_without_debiasing(args, indices)
    else:
        outputs = _plain(function, args, indices)
    if chosen.get("gaussian_constant", True) is False:
        outputs = _gaussian_constant_dropped(function, args, outputs)
    if function == "vq_loss" and _codebook_weight(chosen) != 1.0:
        z_e = REFERENCE.vq_encode(args["arch"], args["params"], args["x"])
        if indices is None:
            indices = reference_vq.nearest_code(z_e, args["codebook"])
        codebook_term = REFERENCE.codebook_loss(z_e, args["codebook"], indices=indices)
        outputs = np.float64(outputs) + (_codebook_weight(chosen) - 1.0) * np.float64(codebook_term)
    return outputs


def gradient(function: str, args, cotangent, indices, chosen: dict[str, Any]):
    """The reference's vjp of `function` at `args` under the variants `chosen` (see the module docstring)."""
    grads = dict(_plain_vjp(function, args, cotangent, indices))
    if function == "vq_loss" and _codebook_gradient_weight(chosen, args) != 1.0:
        grads["codebook"] = _codebook_gradient_weight(chosen, args) * np.asarray(grads["codebook"])
    if chosen.get("unit_decoder_variance"):
        for name in ("decoder_log_var",) + (("log_var",) if function == "gaussian_log_likelihood" else ()):
            if name in grads:
                grads[name] = np.zeros_like(grads[name])
    return grads


def concerns(function: str) -> bool:
    """Whether some variant changes `function`'s expected value or gradient."""
    from .declared import VARIANTS

    return function in FUNCTIONS and any(function in v.functions for v in VARIANTS.values())
