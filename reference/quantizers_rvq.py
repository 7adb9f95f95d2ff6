"""Residual VQ in float64 (`vaespec.spec.quantizers_rvq`): the stages' nearest-code choices (the VQ chapter's
`choose`, lowest index on exact ties), the straight-through output and the per-stage commitment losses, with
hand-written VJPs and magnitudes.

    r_0 = z_e,  k_s = argmin_k ‖r_s − C_s[k]‖²,  e_s = C_s[k_s],  r_{s+1} = r_s − e_s        (s < n)
    z_q = z_e + sg(Σ_s e_s − z_e)                 z̄_e = ȳ
    losses_s = mean (r_s − sg(e_s))²              z̄_e = Σ_s ȳ_s · 2(r_s − e_s)/(B·D)
    codebook_s = mean (sg(r_s) − e_s)²            z̄_e = 0,  C̄_s[k] = −Σ_{b: k_s(b)=k} ȳ_s · 2(r_s − e_s)[b]/(B·D)
    ema stage s = vq.ema_update(C_s, counts_s, sums_s, step_s, r_s, γ, ε, training; indices k_s)   (s < n; else kept)

**Magnitudes.** z_q: the sum of n codes and the straight-through at |z_e| + 2Σ|e_s|. A residual rounds at
A_s = |z_e| + Σ_{t≤s} |e_t| per subtraction, so losses_s has M = mean (|r_s − e_s| + A_s)² and its gradient
M̄ = Σ_s |ȳ_s| 2(|r_s − e_s| + A_s)/(B·D). The EMA update's stage s is the VQ chapter's EMA magnitude with its
residual's entries replaced by their rounding size |z_e| + Σ_{t<s} |e_t| (each sum of residuals errs at that size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import validate_args, validate_vjp
from vaespec.spec.vq import DEFAULT_DECAY, DEFAULT_EPSILON

from . import vq
from .boundary import finite, finite_gradients
from .function import ReferenceFunction
from .vq_codes import choose


def _rows(z_e: np.ndarray) -> np.ndarray:
    """z_e [B, *positions, D] as its N = B·∏positions vectors [N, D] (each quantized on its own)."""
    return z_e.reshape(-1, z_e.shape[-1])


def stages(z_e: np.ndarray, codebooks: np.ndarray, num_stages: int, indices: Any = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k [B, *positions, S] with −1 after n, e [n, N, D] the chosen codes, r [n, N, D] the residuals each stage
    quantized, over the N vectors `_rows(z_e)`), at the given choices `indices` [B, *positions, S] when given."""
    stages_total = codebooks.shape[0]
    given = None if indices is None else np.asarray(indices).reshape(-1, stages_total)
    residual = _rows(z_e)
    chosen, codes, residuals = np.full((len(residual), stages_total), -1, np.int64), [], []
    for s in range(num_stages):
        k = choose(residual, codebooks[s], None if given is None else given[:, s])
        chosen[:, s] = k
        residuals.append(residual)
        codes.append(codebooks[s][k])
        residual = residual - codes[-1]
    shape = (num_stages, *residual.shape)  # n = 0 stages keeps [0, N, D]
    return (chosen.reshape(*z_e.shape[:-1], stages_total), np.array(codes).reshape(shape),
            np.array(residuals).reshape(shape))


def _checked(function: str, args: Mapping[str, Any]) -> dict[str, Any]:
    return validate_args(function, {n: args[n] for n in ("z_e", "codebooks", "num_stages")})


def rvq_quantize(z_e: np.ndarray, codebooks: np.ndarray, num_stages: int, *, indices: Any = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Residual VQ (vector-quantize-pytorch `ResidualVQ`, SoundStream's algorithm 1) over the first `num_stages`:

        r_0 = z_e, k_s = argmin_k ‖r_s − C_s[k]‖² (lowest index on ties), r_{s+1} = r_s − C_s[k_s]
        z_q = z_e + sg(Σ_s C_s[k_s] − z_e)   (straight-through once)

    **Arguments** `z_e` [batch, *positions, embedding] (each vector on its own); `codebooks` [stages, codes,
    embedding]; `num_stages` n ≤ stages; `indices` (keyword): a backend's choices [batch, *positions, stages] to
    evaluate at.
    **Returns** (z_q like `z_e`, indices int64 [batch, *positions, stages], −1 for the stages after n).
    """
    a = validate_args("rvq_quantize", {"z_e": z_e, "codebooks": codebooks, "num_stages": num_stages})
    k, e, _ = stages(a["z_e"], a["codebooks"], a["num_stages"], indices)
    return finite("rvq_quantize", e.sum(axis=0).reshape(a["z_e"].shape)), k


def rvq_quantize_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """Straight-through once: z̄_e = ȳ."""
    _, (d,) = validate_vjp("rvq_quantize", args, cotangent)
    return finite_gradients("rvq_quantize", {"z_e": np.array(d, dtype=np.float64)})


def rvq_quantize_magnitude(args: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    a = _checked("rvq_quantize", args)
    k, e, _ = stages(a["z_e"], a["codebooks"], a["num_stages"], args.get("indices"))
    return np.abs(a["z_e"]) + 2.0 * np.abs(e).sum(axis=0).reshape(a["z_e"].shape), np.zeros(k.shape)


def rvq_quantize_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    _, (d,) = validate_vjp("rvq_quantize", args, cotangent)
    return {"z_e": np.abs(d)}


def rvq_quantize_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.ndarray:
    """What the VJP differentiates: z_e (sg(Σ e_s − z_e) held at `base`: a constant, left out)."""
    return np.array(_checked("rvq_quantize", args)["z_e"], dtype=np.float64)


RVQ_QUANTIZE = ReferenceFunction("rvq_quantize", rvq_quantize, rvq_quantize_magnitude, rvq_quantize_vjp,
                                 rvq_quantize_vjp_magnitude, rvq_quantize_surrogate)


# ----------------------------------------------------------------------------- commitment
def _losses(z_e: np.ndarray, codebooks: np.ndarray, n: int, e: np.ndarray, r: np.ndarray) -> np.ndarray:
    losses = np.zeros(codebooks.shape[0])
    losses[:n] = ((r - e) ** 2).mean(axis=(1, 2))
    return losses


def rvq_commitment_loss(z_e: np.ndarray, codebooks: np.ndarray, num_stages: int, *, indices: Any = None
                        ) -> np.ndarray:
    """Each stage's commitment loss, mean_{b,d} (r_s − sg(C_s[k_s]))² over all N·D entries of z_e [batch,
    *positions, embedding] (vqp's per-layer commit loss, unweighted), 0 for the stages after n.

    **Arguments** as `rvq_quantize`. **Returns** [stages].
    """
    a = validate_args("rvq_commitment_loss", {"z_e": z_e, "codebooks": codebooks, "num_stages": num_stages})
    _, e, r = stages(a["z_e"], a["codebooks"], a["num_stages"], indices)
    return finite("rvq_commitment_loss", _losses(a["z_e"], a["codebooks"], a["num_stages"], e, r))


def rvq_commitment_loss_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """z̄_e = Σ_{s<n} ȳ_s · 2(r_s − e_s)/(B·D): each r_s = z_e − (stopped earlier codes) passes the gradient."""
    a, (d,) = validate_vjp("rvq_commitment_loss", args, cotangent)
    n = a["num_stages"]
    _, e, r = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    grad = np.einsum("s,sbd->bd", np.asarray(d, dtype=np.float64)[:n], 2.0 * (r - e)) / a["z_e"].size
    return finite_gradients("rvq_commitment_loss", {"z_e": grad.reshape(a["z_e"].shape)})


def _sizes(z_e: np.ndarray, e: np.ndarray) -> np.ndarray:
    """A_s = |z_e| + Σ_{t≤s} |e_t| [n, N, D]: the size at which stage s's residual and difference round."""
    return np.abs(_rows(z_e))[None] + np.cumsum(np.abs(e), axis=0)


def rvq_commitment_loss_magnitude(args: Mapping[str, Any]) -> np.ndarray:
    a = _checked("rvq_commitment_loss", args)
    n = a["num_stages"]
    _, e, r = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    m = np.zeros(a["codebooks"].shape[0])
    m[:n] = ((np.abs(r - e) + _sizes(a["z_e"], e)) ** 2).mean(axis=(1, 2))
    return m


def rvq_commitment_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d,) = validate_vjp("rvq_commitment_loss", args, cotangent)
    n = a["num_stages"]
    _, e, r = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    scale = np.abs(np.asarray(d, dtype=np.float64))[:n]
    grad = np.einsum("s,sbd->bd", scale, 2.0 * (np.abs(r - e) + _sizes(a["z_e"], e))) / a["z_e"].size
    return {"z_e": grad.reshape(a["z_e"].shape)}


def rvq_commitment_loss_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.ndarray:
    """mean (z′ − P_s − e_s)² with the earlier codes' sum P_s and the stage's code e_s held at `base`."""
    b = _checked("rvq_commitment_loss", base)
    z = _checked("rvq_commitment_loss", args)["z_e"]
    n = b["num_stages"]
    _, e, _ = stages(b["z_e"], b["codebooks"], n, None)
    partial = np.cumsum(np.concatenate([np.zeros_like(e[:1]), e[:-1]]), axis=0)  # P_s = Σ_{t<s} e_t
    return _losses(z, b["codebooks"], n, e, _rows(z)[None] - partial)


RVQ_COMMITMENT_LOSS = ReferenceFunction("rvq_commitment_loss", rvq_commitment_loss, rvq_commitment_loss_magnitude,
                                        rvq_commitment_loss_vjp, rvq_commitment_loss_vjp_magnitude,
                                        rvq_commitment_loss_surrogate)


# ----------------------------------------------------------------------------- codebook
def rvq_codebook_loss(z_e: np.ndarray, codebooks: np.ndarray, num_stages: int, *, indices: Any = None
                      ) -> np.ndarray:
    """Each stage's codebook loss, mean_{b,d} (sg(r_s) − C_s[k_s])² over all N·D entries (the VQ chapter's
    `codebook_loss` on stage s's residual r_s), 0 for the stages after n: `rvq_commitment_loss`'s value, its
    gradient to the codebooks only.

    **Arguments** as `rvq_quantize`. **Returns** [stages].
    """
    a = validate_args("rvq_codebook_loss", {"z_e": z_e, "codebooks": codebooks, "num_stages": num_stages})
    _, e, r = stages(a["z_e"], a["codebooks"], a["num_stages"], indices)
    return finite("rvq_codebook_loss", _losses(a["z_e"], a["codebooks"], a["num_stages"], e, r))


def _scatter(codebooks: np.ndarray, k: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[S, K, D]: stage s's rows [n, N, D] summed onto the codes k[:, s] they chose (0 for the dropped stages)."""
    out = np.zeros(codebooks.shape, dtype=np.float64)
    for s in range(len(rows)):
        np.add.at(out[s], k[:, s], rows[s])
    return out


def rvq_codebook_loss_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """z̄_e = 0 (the residuals are stopped); C̄_s[k] = −Σ_{b: k_s(b)=k} ȳ_s · 2(r_s[b] − e_s[b])/(N·D)."""
    a, (d,) = validate_vjp("rvq_codebook_loss", args, cotangent)
    n = a["num_stages"]
    k, e, r = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    rows = -np.asarray(d, dtype=np.float64)[:n, None, None] * 2.0 * (r - e) / a["z_e"].size
    return finite_gradients("rvq_codebook_loss", {"z_e": np.zeros_like(a["z_e"], dtype=np.float64),
                                                  "codebooks": _scatter(a["codebooks"], _rows(k), rows)})


def rvq_codebook_loss_magnitude(args: Mapping[str, Any]) -> np.ndarray:
    return rvq_commitment_loss_magnitude(args)  # the same value, computed the same way


def rvq_codebook_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d,) = validate_vjp("rvq_codebook_loss", args, cotangent)
    n = a["num_stages"]
    k, e, r = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    scale = np.abs(np.asarray(d, dtype=np.float64))[:n, None, None]
    rows = scale * 2.0 * (np.abs(r - e) + _sizes(a["z_e"], e)) / a["z_e"].size
    return {"z_e": np.zeros_like(a["z_e"], dtype=np.float64), "codebooks": _scatter(a["codebooks"], _rows(k), rows)}


def rvq_codebook_loss_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.ndarray:
    """mean (r_s − C′_s[k_s])² with the residuals r_s and the choices k_s held at `base`."""
    b = _checked("rvq_codebook_loss", base)
    books = _checked("rvq_codebook_loss", args)["codebooks"]
    n = b["num_stages"]
    k, _, r = stages(b["z_e"], b["codebooks"], n, None)
    k = _rows(k)
    e = np.array([books[s][k[:, s]] for s in range(n)]).reshape(r.shape)
    return _losses(b["z_e"], books, n, e, r)


RVQ_CODEBOOK_LOSS = ReferenceFunction("rvq_codebook_loss", rvq_codebook_loss, rvq_codebook_loss_magnitude,
                                      rvq_codebook_loss_vjp, rvq_codebook_loss_vjp_magnitude,
                                      rvq_codebook_loss_surrogate)

# ----------------------------------------------------------------------------- EMA codebooks
_EMA_ARGS = ("codebooks", "ema_counts", "ema_sums", "ema_step", "z_e", "num_stages", "decay", "epsilon", "training")


def _stage_state(a: Mapping[str, Any], s: int, z_e: np.ndarray, k: np.ndarray) -> dict[str, Any]:
    """Stage s's arguments of the VQ chapter's ema_update, on `z_e` [N, D] at the indices `k` [N]."""
    return {"codebook": a["codebooks"][s], "ema_counts": a["ema_counts"][s], "ema_sums": a["ema_sums"][s],
            "ema_step": int(a["ema_step"][s]), "z_e": z_e, "decay": a["decay"], "epsilon": a["epsilon"],
            "training": a["training"], "indices": k}


def rvq_ema_update(codebooks: np.ndarray, ema_counts: np.ndarray, ema_sums: np.ndarray, ema_step: Any,
                   z_e: np.ndarray, num_stages: int, decay: float = DEFAULT_DECAY,
                   epsilon: float = DEFAULT_EPSILON, training: bool = True, *, indices: Any = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One EMA step of every used stage's codebook (vector-quantize-pytorch's `ResidualVQ` with `ema_update`, each
    layer's codebook learnt by its own EMA; here debiased as sonnet's, the VQ chapter's `ema_update`):

        r_0 = z_e, k_s = argmin_k ‖r_s − C_s[k]‖², r_{s+1} = r_s − C_s[k_s]        (the codebooks before the update)
        (C′_s, counts′_s, sums′_s, step′_s) = vq.ema_update(C_s, counts_s, sums_s, step_s, r_s, γ, ε, training)
                                              at the indices k_s, for s < n;  unchanged for s ≥ n

    so stage s's n_k = #{b: k_s(b) = k} and s_k = Σ_{b: k_s(b)=k} r_s[b] over the N = batch·∏positions vectors,
    counts′ = γ·counts + (1 − γ)·n, sums′ = γ·sums + (1 − γ)·s, t = step + 1, e′_k = (sums′_k/(1 − γᵗ)) /
    laplace_smooth(counts′/(1 − γᵗ), ε)_k where that is > 0, else e_k. With `training=False` nothing changes.

    **Arguments** `codebooks` [stages, codes, embedding]; `ema_counts` [stages, codes] (≥ 0); `ema_sums` [stages,
    codes, embedding]; `ema_step` int [stages] (≥ 0); `z_e` [batch, *positions, embedding]; `num_stages` n ≤ stages;
    `decay` in [0, 1); `epsilon` ≥ 0; `training` a bool; `indices` (keyword): a backend's choices [batch,
    *positions, stages] to evaluate at.
    **Returns** `(codebooks′, ema_counts′, ema_sums′, ema_step′)`: new float64 arrays and int64 [stages].
    """
    a = validate_args("rvq_ema_update", dict(zip(_EMA_ARGS, (codebooks, ema_counts, ema_sums, ema_step, z_e,
                                                             num_stages, decay, epsilon, training))))
    n = a["num_stages"]
    k, _, r = stages(a["z_e"], a["codebooks"], n, indices)  # choices validated in eval mode too
    k = _rows(k)
    books, counts, sums = (np.array(a[name], dtype=np.float64) for name in ("codebooks", "ema_counts", "ema_sums"))
    steps = np.array(a["ema_step"], dtype=np.int64)
    for s in range(n):
        at = _stage_state(a, s, r[s], k[:, s])
        books[s], counts[s], sums[s], steps[s] = vq.ema_update(*(at[name] for name in _VQ_EMA_ARGS),
                                                               indices=at["indices"])
    return finite("rvq_ema_update", (books, counts, sums, steps))


_VQ_EMA_ARGS = ("codebook", "ema_counts", "ema_sums", "ema_step", "z_e", "decay", "epsilon", "training")


def rvq_ema_update_magnitude(args: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stage s < n: the VQ chapter's EMA magnitude with the residual r_s's entries replaced by its rounding size
    A_s = |z_e| + Σ_{t<s} |e_t|; the kept stages (s ≥ n) their own sizes (copied, never computed)."""
    a = validate_args("rvq_ema_update", {name: args[name] for name in _EMA_ARGS})
    n = a["num_stages"]
    k, e, _ = stages(a["z_e"], a["codebooks"], n, args.get("indices"))
    k = _rows(k)
    before = _sizes(a["z_e"], e) - np.abs(e)  # |z_e| + Σ_{t<s} |e_t|
    books, counts, sums = (np.abs(np.asarray(a[name], dtype=np.float64))
                           for name in ("codebooks", "ema_counts", "ema_sums"))
    for s in range(n):
        at = _stage_state(a, s, before[s], k[:, s])
        books[s], counts[s], sums[s], _ = vq.ema_update_magnitude(at)
    return books, counts, sums, np.zeros(a["codebooks"].shape[0])


RVQ_EMA_UPDATE = ReferenceFunction("rvq_ema_update", rvq_ema_update, rvq_ema_update_magnitude)

REFERENCE_FUNCTIONS = (RVQ_QUANTIZE, RVQ_COMMITMENT_LOSS, RVQ_CODEBOOK_LOSS, RVQ_EMA_UPDATE)
