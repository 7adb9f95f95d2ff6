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

_C = "quantizers"

Z_E = Arg("z_e", "array", ("batch", POSITIONS, "embedding"), True, "finite reals")
CODEBOOKS = Arg("codebooks", "array", ("stages", "codes", "embedding"), False,
                "finite reals: S ≥ 1 stages of K ≥ 1 codes (no gradient: learnt by EMA or a codebook loss)")
LEARNT_CODEBOOKS = Arg("codebooks", "array", ("stages", "codes", "embedding"), True,
                       "finite reals: S ≥ 1 stages of K ≥ 1 codes (learnt by this loss: each stage's chosen codes "
                       "receive its gradient)")
NUM_STAGES = Arg("num_stages", "count", domain="1 ≤ n ≤ S: the stages used (quantizer dropout keeps the first n)")

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


_fns = (
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
LAWS: dict[str, Law] = {law.name: law for law in _laws}
