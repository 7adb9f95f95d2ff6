"""LFQ's losses in float64 (`vaespec.spec.quantizers`): the entropy auxiliary loss and the commitment loss, with
hand-written VJPs and magnitudes. The quantizer itself is `vaespec.reference.quantizers.lfq_quantize`.

With C [K = 2^d, d] the codes (`lfq_codes`), τ' = inv_temperature and z [batch, *positions, d] read as its
N = batch·∏positions vectors z_n (every mean below is over all N, so a spatial input is its flattened rows):

    l_n = 2τ' · C z_n,   p_n = softmax(l_n),   H_n = −Σ_c p_nc log p_nc,   p̄ = mean_n p_n
    per_sample = mean_n H_n,   codebook = H(p̄),   loss = per_sample − γ · codebook

(vector-quantize-pytorch 1.32.0 `LFQ.forward`: `distance = −2 einsum(x, codebook)`, `prob = softmax(−distance ·
inv_temperature)`; vqp's `entropy` takes log of p clamped at 10⁻⁵, the statement takes 0 log 0 = 0 and log p from
the log-softmax.) VJP, for cotangents (a, b, g) of (per_sample, codebook, loss), with A = a + g and B = b − γg:

    l̄_n = −(A/N) p_n ⊙ (log p_n + H_n) − (B/N) p_n ⊙ (log p̄ − ⟨p_n, log p̄⟩),    z̄_n = 2τ' Cᵀ l̄_n

Commitment: L = mean (z − q)², z̄ = ȳ · 2(z − q)/(N·d), q the sign code (no gradient through q).

**Magnitudes.** A logit errs by u·2τ'Σ_i|z_i| =: u·S_n and the shift l − max by as much again, so p_c errs
relatively by u(4S_n + 2) (with exp and the normalisation); log p_c = l_c − lse rounds at |l_c| + |lse| (the
reference shifts by the max first, but H = lse − Σ_c p_c l_c, the binary cross-entropy form of the per-bit
entropy, and log-softmax without the shift are as correct and round at that size). H_n = −Σ p log p moves by
Σ_c p_c |log p_c + H_n| per unit relative error of p, so M(H_n) = (4S_n + 2) Σ_c p_c |log p_c + H_n| +
Σ_c p_c (|l_c| + |lse_n|) + H_n, averaged over n. The codebook entropy moves by
Σ_c |log p̄_c + 1| δp̄_c: M = Σ_c |log p̄_c + 1| mean_n (4S_n + 2) p_nc + H(p̄). The loss: M_ps + γ M_cb.
Gradients: 2τ' |C|ᵀ of the |l̄| terms with each factor's error added (p: 4S + 2 relative, log p: |l| + |lse|,
H_n: M(H_n); log p̄: 2 max(4S + 2)), the factors at the size of autograd's uncancelled form
(|log p| + H + 2 and |log p̄| + 1, not |log p + H|: d(p log p) = (log p + 1) dp before the softmax's Jacobian).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import validate_args, validate_vjp

from .boundary import finite, finite_gradients
from .function import ReferenceFunction


def lfq_codes(dim: int) -> np.ndarray:
    """[2^d, d]: row k is the code of index k, c_i = +1 if bit (d−1−i) of k is set else −1 (vqp's mask)."""
    mask = 2 ** np.arange(dim - 1, -1, -1, dtype=np.int64)
    return np.where((np.arange(2**dim, dtype=np.int64)[:, None] & mask[None, :]) != 0, 1.0, -1.0)


def _parts(a: Mapping[str, Any]) -> dict[str, Any]:
    tau = float(a["inv_temperature"])
    z = a["z"].reshape(-1, a["z"].shape[-1])  # the N vectors
    codes = lfq_codes(z.shape[1])
    logits = 2.0 * tau * z @ codes.T  # [N, K]
    top = logits.max(axis=1, keepdims=True)
    shifted = logits - top  # ≤ 0, the top entry exactly 0
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # in [0, log K]
    log_p = shifted - log_sum
    p = np.exp(log_p)
    h = -(p * log_p).sum(axis=1)
    p_bar = p.mean(axis=0)
    with np.errstate(divide="ignore"):
        log_p_bar = np.where(p_bar > 0, np.log(np.where(p_bar > 0, p_bar, 1.0)), 0.0)  # 0 log 0 = 0
    return {"codes": codes, "shifted": shifted, "top": top, "log_sum": log_sum, "log_p": log_p, "p": p, "h": h,
            "p_bar": p_bar, "log_p_bar": log_p_bar, "s": 2.0 * tau * np.abs(z).sum(axis=1), "tau": tau, "n": len(z)}


def lfq_entropy_loss(z: np.ndarray, inv_temperature: float, diversity_gamma: float
                     ) -> tuple[np.float64, np.float64, np.float64]:
    """LFQ's entropy auxiliary loss (vector-quantize-pytorch 1.32.0 `LFQ`, before `entropy_loss_weight`):

        p_n = softmax_c(2·inv_temperature · z_n·c) over c ∈ {−1, +1}^d,   H(p) = −Σ p log p  (0 log 0 = 0)
        per_sample = mean_n H(p_n),  codebook = H(mean_n p_n),  loss = per_sample − γ · codebook

    **Arguments** `z` [batch, *positions, dim] (means over all its N vectors); `inv_temperature` > 0;
    `diversity_gamma` γ ≥ 0.
    **Returns** (per_sample_entropy, codebook_entropy, loss), float64 scalars.
    """
    a = validate_args("lfq_entropy_loss", {"z": z, "inv_temperature": inv_temperature,
                                           "diversity_gamma": diversity_gamma})
    q = _parts(a)
    per_sample = np.float64(q["h"].mean())
    codebook = np.float64(-(q["p_bar"] * q["log_p_bar"]).sum())
    return finite("lfq_entropy_loss", (per_sample, codebook, per_sample - float(a["diversity_gamma"]) * codebook))


def lfq_entropy_loss_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d_ps, d_cb, d_loss) = validate_vjp("lfq_entropy_loss", args, cotangent)
    q = _parts(a)
    n = q["n"]
    w_ps, w_cb = float(d_ps) + float(d_loss), float(d_cb) - float(a["diversity_gamma"]) * float(d_loss)
    p, log_p, h, log_p_bar = q["p"], q["log_p"], q["h"], q["log_p_bar"]
    d_logits = (-(w_ps / n) * p * (log_p + h[:, None])
                - (w_cb / n) * p * (log_p_bar[None, :] - (p * log_p_bar[None, :]).sum(axis=1, keepdims=True)))
    return finite_gradients("lfq_entropy_loss", {"z": (2.0 * q["tau"] * d_logits @ q["codes"]).reshape(a["z"].shape)})


def _entropy_magnitudes(q: dict[str, Any]) -> tuple[np.ndarray, float]:
    """(M of each H_n [N], M of the codebook entropy): see the module doc."""
    p, log_p, h = q["p"], q["log_p"], q["h"]
    spread = (4.0 * q["s"] + 2.0)[:, None]  # a relative error of p (logits, the shift, exp, the normalisation)
    logit_size = np.abs(q["shifted"] + q["top"])  # |l|: H = lse − Σ p l (BCE-style forms) rounds at |l| + |lse|
    per_row = ((p * np.abs(log_p + h[:, None]) * spread).sum(axis=1)
               + (p * (logit_size + np.abs(q["top"] + q["log_sum"]))).sum(axis=1) + h)
    h_bar = float(-(q["p_bar"] * q["log_p_bar"]).sum())
    book = float((np.abs(q["log_p_bar"] + 1.0) * (p * spread).mean(axis=0)).sum()) + h_bar
    return per_row, book


def lfq_entropy_loss_magnitude(args: Mapping[str, Any]) -> tuple[np.float64, np.float64, np.float64]:
    a = validate_args("lfq_entropy_loss", args)
    per_row, book = _entropy_magnitudes(_parts(a))
    per_sample = np.float64(per_row.mean())
    return per_sample, np.float64(book), per_sample + float(a["diversity_gamma"]) * np.float64(book)


def lfq_entropy_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d_ps, d_cb, d_loss) = validate_vjp("lfq_entropy_loss", args, cotangent)
    q = _parts(a)
    n = q["n"]
    w_ps = abs(float(d_ps)) + abs(float(d_loss))
    w_cb = abs(float(d_cb)) + float(a["diversity_gamma"]) * abs(float(d_loss))
    p, log_p, h, log_p_bar = q["p"], q["log_p"], q["h"], q["log_p_bar"]
    spread = (4.0 * q["s"] + 2.0)[:, None]
    per_row, _ = _entropy_magnitudes(q)
    # An autograd backend forms d(p log p) = (log p + 1) dp and then the softmax's Jacobian: O(1) terms that cancel
    # in l̄ = p(log p + H) (a confident p: 1·(0 + 1) − 1·1), so each term errs at (|log p| + H + 2), not |log p + H|.
    term_ps = p * ((2.0 * np.abs(log_p) + 2.0 * h[:, None] + 2.0) * spread + np.abs(q["shifted"] + q["top"])
                   + np.abs(q["top"] + q["log_sum"]) + per_row[:, None])
    plus_one = np.abs(log_p_bar) + 1.0
    mean_log = (p * plus_one[None, :]).sum(axis=1, keepdims=True)
    term_cb = p * ((plus_one[None, :] + mean_log) * spread + 2.0 * float(spread.max()))
    d_logits = (w_ps / n) * term_ps + (w_cb / n) * term_cb
    return {"z": (2.0 * q["tau"] * d_logits @ np.abs(q["codes"])).reshape(a["z"].shape)}


LFQ_ENTROPY_LOSS = ReferenceFunction("lfq_entropy_loss", lfq_entropy_loss, lfq_entropy_loss_magnitude,
                                     lfq_entropy_loss_vjp, lfq_entropy_loss_vjp_magnitude)


# ----------------------------------------------------------------------------- commitment
def _signs(z: np.ndarray) -> np.ndarray:
    return np.where(z > 0, 1.0, -1.0)


def lfq_commitment_loss(z: np.ndarray) -> np.float64:
    """LFQ's commitment loss (vqp's `F.mse_loss(original_input, quantized.detach())`): mean_{b,i} (z − sg(q))².

    **Arguments** `z` [batch, *positions, dim] (the mean over all its entries). **Returns** a float64 scalar.
    """
    z = validate_args("lfq_commitment_loss", {"z": z})["z"]
    return finite("lfq_commitment_loss", np.float64(np.mean((z - _signs(z)) ** 2)))


def lfq_commitment_loss_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d,) = validate_vjp("lfq_commitment_loss", args, cotangent)
    z = a["z"]
    return finite_gradients("lfq_commitment_loss", {"z": float(d) * 2.0 * (z - _signs(z)) / z.size})


def lfq_commitment_loss_magnitude(args: Mapping[str, Any]) -> float:
    """The squared differences at |z| + 1, averaged."""
    z = validate_args("lfq_commitment_loss", args)["z"]
    return float(np.mean((np.abs(z) + 1.0) ** 2))


def lfq_commitment_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d,) = validate_vjp("lfq_commitment_loss", args, cotangent)
    z = a["z"]
    return {"z": abs(float(d)) * 2.0 * (np.abs(z) + 1.0) / z.size}


def lfq_commitment_loss_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.float64:
    """What the VJP differentiates: mean (z − q)² with the stopped code q taken at `base`."""
    z = validate_args("lfq_commitment_loss", args)["z"]
    return np.float64(np.mean((z - _signs(validate_args("lfq_commitment_loss", base)["z"])) ** 2))


LFQ_COMMITMENT_LOSS = ReferenceFunction("lfq_commitment_loss", lfq_commitment_loss, lfq_commitment_loss_magnitude,
                                        lfq_commitment_loss_vjp, lfq_commitment_loss_vjp_magnitude,
                                        lfq_commitment_loss_surrogate)

REFERENCE_FUNCTIONS = (LFQ_ENTROPY_LOSS, LFQ_COMMITMENT_LOSS)
