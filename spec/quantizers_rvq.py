"""Residual VQ (SoundStream, EnCodec; vector-quantize-pytorch `ResidualVQ`), the quantizers chapter's third
part (`vaespec.spec.quantizers` gathers its functions and laws).

With codebooks C_s [codes, embedding] for stages s = 0 … S − 1 and n ≤ S stages used (quantizer dropout keeps
the first n; n is an explicit argument, never drawn inside), on each of the N = batch·∏positions vectors of
z_e [batch, *positions, embedding] on its own (indices [batch, *positions, stages]; below b ranges over the
N vectors, and the commitment losses are means over all N·D entries):

    r_0 = z_e,   k_s(b) = argmin_k ‖r_s[b] − C_s[k]‖²  (lowest index on exact ties),   r_{s+1} = r_s − C_s[k_s]
    z_q = z_e + sg(Σ_{s<n} C_s[k_s] − z_e)           (straight-through once: z̄_e = ȳ)
    indices[b, s] = k_s(b) for s < n, −1 for the dropped stages (vqp's padding)
    commitment_s = mean_{b,d} (r_s − sg(C_s[k_s]))²   (0 for a dropped stage; the gradient reaches z_e through r_s)
    codebook_s   = mean_{b,d} (sg(r_s) − C_s[k_s])²   (the same value; the gradient reaches C_s[k_s] only)
    ema stage s  = the VQ chapter's ema_update(C_s, counts_s, sums_s, step_s, r_s, γ, ε, training) at k_s for
                   s < n (residuals and choices from the codebooks before the update); stages ≥ n unchanged

Each stage's choice is judged by the VQ chapter's near-tie criterion on its residual (`vaespec.spec.vq`), with
the residual's own rounding added to the bound (`RVQ_CHOICE`). A bfloat16 or float16 backend computes the
residuals and chooses in float32 (as the VQ chapter's narrow backends choose codes from float32 distances).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .chains import STRAIGHT_THROUGH, rows
from .errors import DomainError, ShapeError
from .numerics import MAX_FINITE, NARROW
from .shapes import POSITIONS
from .signature import Arg, Domain, FunctionSpec, Law, Output
from .vq import DECAY, EPSILON, TRAINING

_C = "quantizers"

Z_E = Arg("z_e", "array", ("batch", POSITIONS, "embedding"), True, "finite reals")
CODEBOOKS = Arg("codebooks", "array", ("stages", "codes", "embedding"), False,
                "finite reals: S ≥ 1 stages of K ≥ 1 codes (no gradient: learnt by EMA or a codebook loss)")
LEARNT_CODEBOOKS = Arg("codebooks", "array", ("stages", "codes", "embedding"), True,
                       "finite reals: S ≥ 1 stages of K ≥ 1 codes (learnt by this loss: each stage's chosen codes "
                       "receive its gradient)")
NUM_STAGES = Arg("num_stages", "count", domain="1 ≤ n ≤ S: the stages used (quantizer dropout keeps the first n)")
# The EMA codebooks (rvq_ema_update): each stage holds the VQ chapter's EMA state of its own codebook.
FROZEN_Z_E = Arg("z_e", "array", ("batch", POSITIONS, "embedding"), False, "finite reals (no gradient: the EMA "
                 "update is not differentiated)")
STAGE_COUNTS = Arg("ema_counts", "array", ("stages", "codes"),
                   domain="≥ 0: each stage's biased moving average of its codes' counts", low=0.0)
STAGE_SUMS = Arg("ema_sums", "array", ("stages", "codes", "embedding"),
                 domain="finite: each stage's biased moving average of its codes' residual sums")
STAGE_STEPS = Arg("ema_step", "index", ("stages",),
                  domain="integers ≥ 0: each stage's updates so far (a stage dropped by num_stages keeps its count)")

RVQ_CHOICE = (
    "Stage s's index k_s is acceptable iff it satisfies the VQ chapter's near-tie criterion for the residual "
    "r_s = z_e − Σ_{t<s} C_t[k_t] (float64, at the backend's own earlier choices) against C_s, with each τ_k "
    "increased by 2ρ(‖r_s‖ + ‖e_k‖) + ρ², ρ = SAFETY·γ_{2s+2}·(‖z_e‖ + Σ_{t<s} ‖C_t[k_t]‖) the bound on the "
    "backend's own residual error (s subtractions, each at most the running sizes), in the dtype codes are chosen "
    "in (float32 for a narrow backend)."
)


def _distances_magnitude(a: Mapping[str, Any]) -> float:
    """max_b (‖z_e[b]‖ + Σ_s max_k ‖C_s[k]‖)²: bounds every stage's squared distances (each residual is at most
    ‖z_e‖ plus the codes taken before it)."""
    z, books = np.asarray(a["z_e"]), np.asarray(a["codebooks"])
    if z.ndim < 2 or books.ndim != 3:
        raise ShapeError(f"z_e, codebooks: expected [batch, *positions, embedding] and [stages, codes, embedding], "
                         f"got shapes {z.shape} and {books.shape}")
    z = z.reshape(-1, z.shape[-1])  # the N = batch·∏positions vectors
    reach = float(np.sum(np.sqrt(np.max(np.sum(books * books, axis=2), axis=1)))) if books.size else 0.0
    return float(np.max((np.sqrt(np.sum(z * z, axis=1)) + reach) ** 2, initial=0.0))


def _distances_refuse(a: Mapping[str, Any], m: Any, limit: float, dtype: str, n: Any) -> None:
    raise DomainError(
        f"{n('z_e')}, {n('codebooks')}: the stages' squared distances' magnitude max_b(‖z_e[b]‖ + Σ_s max_k "
        f"‖C_s[k]‖)² must stay ≤ {limit:.4g} (the largest value of the dtype codes are chosen in); got max |z_e| = "
        f"{float(np.abs(a['z_e']).max()):.6g}, max |codebooks| = {float(np.abs(a['codebooks']).max()):.6g} "
        f"(magnitude {m:.4g})")


def _distances_limit(dtype: str) -> float:
    return MAX_FINITE["float32" if dtype in NARROW else dtype]


DISTANCES = Domain.bounded(("z_e", "codebooks"), _distances_magnitude, _distances_refuse, broadcast=False,
                           limit=_distances_limit)


def _stages_used(function: str, checked: Mapping[str, Any]) -> None:
    stages = checked["codebooks"].shape[0]
    if not 1 <= checked["num_stages"] <= stages:
        raise DomainError(f"num_stages: expected 1 ≤ n ≤ {stages} (the codebooks' stages), got {checked['num_stages']}")


def _stage_sums(s: Mapping[str, Any]) -> int:
    return int(s["stages"])


def _ema_chain(s: Mapping[str, Any]) -> tuple[int, int]:
    """The VQ chapter's ema_update chain on a stage (the per-code sum over the N vectors, the moving average,
    debiasing, smoothing over the K codes and the division: N + K + 10, 10 of them rounded op results), after the
    stage's residual: up to S − 1 subtractions more."""
    return rows(s) + s["codes"] + s["stages"] + 10, s["stages"] + 10


_fns: tuple[FunctionSpec, ...] = (
    FunctionSpec("rvq_quantize", (Z_E, CODEBOOKS, NUM_STAGES),
                 (Output("z_q", ("batch", POSITIONS, "embedding")),
                  Output("indices", ("batch", POSITIONS, "stages"), "int")),
                 "r_0 = z_e, k_s = argmin_k ‖r_s − C_s[k]‖² (lowest index on ties), r_{s+1} = r_s − C_s[k_s]; "
                 "z_q = z_e + sg(Σ_{s<n} C_s[k_s] − z_e); indices[..., s] = k_s for s < n, −1 after (each of the N = "
                 "batch·∏positions vectors on its own)", _C,
                 rules=(_stages_used,), domain=DISTANCES,
                 chain=lambda s: (_stage_sums(s) + STRAIGHT_THROUGH[0], _stage_sums(s) + 2),
                 vjp_chain=lambda s: STRAIGHT_THROUGH, discrete=True,
                 kink="each stage's exact ties go to the lowest index; the gradient is straight-through once"),
    FunctionSpec("rvq_commitment_loss", (Z_E, CODEBOOKS, NUM_STAGES), (Output("losses", ("stages",)),),
                 "losses_s = mean_{b,d} (r_s − sg(C_s[k_s]))² over the N·D entries for s < n, 0 after (gradient "
                 "2(r_s − e_s)/(N·D) to "
                 "z_e: the earlier stages' outputs are stopped in r_s)", _C, rules=(_stages_used,), domain=DISTANCES,
                 chain=lambda s: (s["stages"] + 1 + rows(s) * s["embedding"] + 4, s["stages"] + 5),
                 vjp_chain=lambda s: (s["stages"] + 1 + rows(s) * s["embedding"] + 8, s["stages"] + 9),
                 discrete=True),
    # The commitment loss's value with the stop-gradient moved (the VQ chapter's codebook_loss per stage): the same
    # forward chain; its VJP scatters each stage's N rows onto the codes, within the commitment VJP's chain.
    FunctionSpec("rvq_codebook_loss", (Z_E, LEARNT_CODEBOOKS, NUM_STAGES), (Output("losses", ("stages",)),),
                 "losses_s = mean_{b,d} (sg(r_s) − C_s[k_s])² over the N·D entries for s < n, 0 after (gradient "
                 "C̄_s[k] = −Σ_{b: k_s(b)=k} 2(r_s[b] − e_s[b])/(N·D) to the codebooks only; z̄_e = 0)", _C,
                 rules=(_stages_used,), domain=DISTANCES,
                 chain=lambda s: (s["stages"] + 1 + rows(s) * s["embedding"] + 4, s["stages"] + 5),
                 vjp_chain=lambda s: (s["stages"] + 1 + rows(s) * s["embedding"] + 8, s["stages"] + 9),
                 discrete=True),
)
_fns += (
    FunctionSpec("rvq_ema_update",
                 (CODEBOOKS, STAGE_COUNTS, STAGE_SUMS, STAGE_STEPS, FROZEN_Z_E, NUM_STAGES, DECAY, EPSILON, TRAINING),
                 (Output("codebooks", ("stages", "codes", "embedding")), Output("ema_counts", ("stages", "codes")),
                  Output("ema_sums", ("stages", "codes", "embedding")), Output("ema_step", ("stages",), "int")),
                 "if not training: unchanged. Else for s < n, with r_s and k_s = rvq_quantize's residuals and indices "
                 "(the codebooks before the update): (C′_s, counts′_s, sums′_s, step′_s) = ema_update(C_s, counts_s, "
                 "sums_s, step_s, r_s, γ, ε, True) at the indices k_s — n_k = #{b: k_s(b) = k}, s_k = Σ_{b: k_s(b)=k} "
                 "r_s[b], counts′ = γ·counts + (1−γ)·n, sums′ = γ·sums + (1−γ)·s, t = step + 1, N̂ = counts′/(1 − γᵗ), "
                 "Ŝ = sums′/(1 − γᵗ), Ñ = laplace_smooth(N̂, ε), e′_k = Ŝ_k / Ñ_k where Ñ_k > 0 else e_k; the stages "
                 "s ≥ n unchanged (quantizer dropout does not run them)", _C,
                 rules=(_stages_used,), domain=DISTANCES, chain=_ema_chain, discrete=True),
)
FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in _fns}

_laws: tuple[Law, ...] = (
    Law("rvq_output_eq_sum_of_stage_outputs",
        "z_q = Σ_{s<n} codebooks[s][indices[:, s]] (up to the sum's and the straight-through's roundings), and "
        "indices[:, s] = −1 exactly for s ≥ n", ("rvq_quantize",), "any input", "roundoff", _C),
    Law("rvq_stage_choice_nearest_code_of_residual",
        "every stage's index is a nearest code of its residual: " + RVQ_CHOICE, ("rvq_quantize",), "any input",
        "criterion", _C),
    Law("rvq_commitment_losses_eq_residual_errors",
        "rvq_commitment_loss(z_e, C, n)_s = mean_{b,d}(r_s − C_s[k_s])² with r_s = z_e − Σ_{t<s} C_t[k_t], the "
        "residual the input minus the partial sum, at rvq_quantize's indices (0 for s ≥ n)",
        ("rvq_commitment_loss", "rvq_quantize"), "any input", "roundoff", _C),
    Law("rvq_first_stages_eq_fewer_stage_quantizer",
        "rvq_quantize(z_e, C, n) = rvq_quantize(z_e, C[:n], n) on its first n stages (quantizer dropout is the "
        "n-stage quantizer): the same z_q and indices[:, :n], and −1 beyond", ("rvq_quantize",), "1 ≤ n ≤ S",
        "roundoff", _C),
    Law("rvq_straight_through_gradient",
        "the vjp of rvq_quantize gives z_e exactly the upstream gradient of z_q (straight-through once, not once "
        "per stage)", ("rvq_quantize",), "any input", "exact", _C),
    Law("rvq_positions_eq_rows",
        "residual VQ on z_e [B, *positions, D] equals it on z_e.reshape(N, D) (N = B·∏positions), reshaped back: "
        "each call's stage choices judged by the criterion, z_q and the commitment losses (means over all N·D "
        "entries) and their gradients differing as the reference's at the two calls' choices; indices "
        "[B, *positions, stages]", ("rvq_quantize", "rvq_commitment_loss"), "1–2 position axes", "roundoff", _C),
)
_laws += (
    Law("rvq_codebook_loss_eq_commitment_loss",
        "rvq_codebook_loss(z_e, C, n) = rvq_commitment_loss(z_e, C, n) in value, stage by stage: they differ only "
        "in where the stop-gradient sits", ("rvq_codebook_loss", "rvq_commitment_loss", "rvq_quantize"),
        "any input", "roundoff", _C),
    Law("rvq_codebook_loss_gradient_only_to_codebooks",
        "d rvq_codebook_loss / d z_e = 0 exactly, and stage s's codebook receives the VQ chapter's codebook_loss "
        "gradient at its residual: C̄_s = ȳ_s · d codebook_loss(r_s, C_s) / d C_s at rvq_quantize's indices "
        "(0 for s ≥ n)", ("rvq_codebook_loss", "rvq_quantize"), "any input", "roundoff", _C),
)
_laws += (
    Law("rvq_ema_update_eq_stagewise_ema_update",
        "stage s < n of rvq_ema_update(C, counts, sums, steps, z_e, n, γ, ε, training) is the VQ chapter's "
        "ema_update(C_s, counts_s, sums_s, steps_s, r_s, γ, ε, training) on its own residual r_s = z_e − Σ_{t<s} "
        "C_t[k_t] at its own indices k_s (rvq_quantize's, judged by the criterion, from the codebooks before the "
        "update); the stages s ≥ n, and every stage when not training, are returned unchanged exactly",
        ("rvq_ema_update", "rvq_quantize"), "any state, 0 ≤ γ < 1, ε ≥ 0, training or not", "roundoff", _C),
    Law("rvq_ema_update_first_stages_eq_fewer_stage_update",
        "rvq_ema_update(C, counts, sums, steps, z_e, n) on S stages equals the n-stage update of (C[:n], counts[:n], "
        "sums[:n], steps[:n]) on its first n stages (quantizer dropout is the n-stage quantizer's update), and leaves "
        "the stages s ≥ n exactly as given", ("rvq_ema_update", "rvq_quantize"), "1 ≤ n ≤ S", "roundoff", _C),
    Law("rvq_ema_kmeans_step",
        "with ε = 0 and training, an update with decay 0 (any state), or from a fresh state (counts = sums = 0, "
        "steps = 0; any decay), is one k-means step per stage: each code of stage s < n that some vector chose "
        "(k_s(b) = k) moves to the mean of those vectors' residuals r_s[b], its count becomes (1 − γ)·#{b: k_s(b) = "
        "k}, and the codes no vector chose keep their rows", ("rvq_ema_update", "rvq_quantize"),
        "0 ≤ decay < 1, ε = 0", "roundoff", _C),
    Law("rvq_codebook_loss_positions_eq_rows",
        "rvq_codebook_loss on z_e [B, *positions, D] equals it on z_e.reshape(N, D) (a mean over all N·D entries per "
        "stage), and so does its gradient to the codebooks, each call at its own stage choices (judged by the "
        "criterion; the difference that of the reference at the two calls' choices)", ("rvq_codebook_loss",
                                                                                         "rvq_quantize"),
        "1–2 position axes", "roundoff", _C),
    Law("rvq_ema_update_positions_eq_rows",
        "rvq_ema_update with z_e [B, *positions, D] equals it with z_e.reshape(N, D): every stage counts and sums "
        "the residuals of all N vectors (each call at its own stage choices; the difference that of the reference "
        "at the two calls' choices), and the steps agree exactly", ("rvq_ema_update", "rvq_quantize"),
        "1–2 position axes", "roundoff", _C),
)
LAWS: dict[str, Law] = {law.name: law for law in _laws}
