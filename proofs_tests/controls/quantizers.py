"""Deliberately wrong quantizers: each is the reference with one realistic bug, rejected by `caught_by`.

The bugs are ones a port of vector-quantize-pytorch's FSQ, LFQ or ResidualVQ makes: FSQ's half-step offset
for even levels dropped, the mixed-radix digits read most-significant-first, the straight-through gradient
lost, floor for round; LFQ's bit order reversed, its entropy terms' signs swapped, 0 sent to +1; residual VQ
quantizing the input at every stage, a straight-through per stage, quantizer dropout ignored, a codebook loss
that lets the gradient into z_e or is computed on the input at every stage; and, on inputs
[batch, *positions, dim], the reductions a port written for [batch, dim] gets wrong (each right on rows).
`vaespec check --backend vaespec.proofs_tests.controls.quantizers:<Name>` shows the failing law.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import quantizers as ref
from vaespec.reference import quantizers_lfq as ref_lfq
from vaespec.reference import quantizers_rvq as ref_rvq
from vaespec.reference import vq as ref_vq
from vaespec.spec.quantizers import fsq_basis, fsq_constants

from .vae import NegativeControl


class _QuantizersControl(NegativeControl):
    chapters = ("quantizers",)


def _bound_without_offset(z, levels):
    half_l = fsq_constants(levels)[0]
    return np.tanh(z) * half_l  # offset = shift = 0 for every L


class FSQEvenLevelsWithoutOffset(_QuantizersControl):
    bug = "FSQ's bound is tanh(z)·half_l for every L: the half-step offset (and its shift) for even L is missing, " \
          "so an even L rounds to L + 1 values"
    caught_by = "fsq_bound_rounds_into_levels"

    def fsq_bound(self, z, levels):
        return _bound_without_offset(z, levels)

    def fsq_quantize(self, z, levels):
        return np.round(_bound_without_offset(z, levels)) / (levels // 2)


class FSQIndicesReversedRadix(_QuantizersControl):
    bug = "fsq_indices reads the digits most-significant-first (basis = cumprod of the reversed levels, coordinate " \
          "0 the most significant) while fsq_indices_to_codes keeps vqp's order: indices no longer round-trip"
    caught_by = "fsq_codes_indices_codes_round_trip"

    def fsq_indices(self, z, levels):
        q = np.round(ref.fsq_bound(z, levels)).astype(np.int64) + levels // 2
        reversed_basis = np.cumprod(np.concatenate(([1], levels[::-1][:-1])))[::-1]
        return q @ reversed_basis


class FSQWithoutStraightThrough(_QuantizersControl):
    bug = "fsq_quantize's gradient is that of round(): zero everywhere (no straight-through estimator)"
    caught_by = "fsq_straight_through_gradient_eq_bound_derivative"

    def fsq_quantize_vjp(self, args, cotangent):
        return {"z": np.zeros_like(np.asarray(args["z"], dtype=np.float64))}


class FSQFloorForRound(_QuantizersControl):
    bug = "fsq_quantize rounds the bound down (floor) instead of to the nearest level"
    caught_by = "fsq_quantize_matches_reference"

    def fsq_quantize(self, z, levels):
        return np.floor(ref.fsq_bound(z, levels)) / (levels // 2)


class LFQBitOrderReversed(_QuantizersControl):
    bug = "lfq_quantize's index reads coordinate 0 as the least significant bit (mask 1, 2, …, 2^(d−1)) while " \
          "lfq_indices_to_codes keeps vqp's most-significant-first mask"
    caught_by = "lfq_indices_codes_round_trip"

    def lfq_quantize(self, z):
        z_q, _ = ref.lfq_quantize(z)
        bits = (np.asarray(z) > 0).astype(np.int64)
        return z_q, bits @ (2 ** np.arange(bits.shape[1], dtype=np.int64))


class LFQEntropySignsSwapped(_QuantizersControl):
    bug = "the entropy aux loss is γ·codebook − per_sample: both signs swapped (it would spread each sample's " \
          "code distribution and collapse the batch's)"
    caught_by = "lfq_entropy_loss_eq_per_sample_sub_gamma_codebook"

    def lfq_entropy_loss(self, z, inv_temperature, diversity_gamma):
        per_sample, codebook, _ = ref_lfq.lfq_entropy_loss(z, inv_temperature, diversity_gamma)
        return per_sample, codebook, diversity_gamma * codebook - per_sample


class LFQZeroMapsToPlusOne(_QuantizersControl):
    bug = "lfq_quantize tests z ≥ 0: an exact 0 becomes +1 (vqp's z > 0 sends it to −1)"
    caught_by = "lfq_quantize_output_on_hypercube"

    def lfq_quantize(self, z):
        bits = np.asarray(z) >= 0
        return np.where(bits, 1.0, -1.0), bits.astype(np.int64) @ (2 ** np.arange(bits.shape[1] - 1, -1, -1))


class RVQQuantizesInputAtEveryStage(_QuantizersControl):
    bug = "every stage quantizes the input z_e instead of the running residual (the residual update is lost)"
    caught_by = "rvq_stage_choice_nearest_code_of_residual"

    def rvq_quantize(self, z_e, codebooks, num_stages):
        rows = np.reshape(z_e, (-1, np.shape(z_e)[-1]))  # z_e [B, *positions, D]: every vector
        k = np.full((len(rows), codebooks.shape[0]), -1, dtype=np.int64)
        for s in range(num_stages):
            k[:, s] = ((rows[:, None, :] - codebooks[s][None]) ** 2).sum(-1).argmin(1)
        k = k.reshape(*np.shape(z_e)[:-1], codebooks.shape[0])
        return ref_rvq.rvq_quantize(z_e, codebooks, num_stages, indices=np.where(k < 0, 0, k))[0], k


class RVQStraightThroughPerStage(_QuantizersControl):
    bug = "each stage has its own straight-through (z_q,s = r_s + sg(e_s − r_s), residuals stopped), so z_e receives " \
          "n times the upstream gradient"
    caught_by = "rvq_straight_through_gradient"

    def rvq_quantize_vjp(self, args, cotangent):
        return {"z_e": int(args["num_stages"]) * np.asarray(cotangent, dtype=np.float64)}


class RVQIgnoresNumStages(_QuantizersControl):
    bug = "quantizer dropout's num_stages is ignored: every stage is used"
    caught_by = "rvq_first_stages_eq_fewer_stage_quantizer"

    def rvq_quantize(self, z_e, codebooks, num_stages):
        return ref_rvq.rvq_quantize(z_e, codebooks, codebooks.shape[0])


class FSQIndicesSumOverAxisOne(_QuantizersControl):
    bug = "fsq_indices sums the mixed-radix digits over axis 1 (`(q * basis).sum(1)`, written for [batch, dim]): on " \
          "z [batch, *positions, dim] it sums over the first position axis instead of the dim axis"
    caught_by = "fsq_positions_eq_rows"

    def fsq_indices(self, z, levels):
        q = np.round(ref.fsq_bound(z, levels)).astype(np.int64) + levels // 2
        return (q * fsq_basis(levels)).sum(axis=1)


class LFQCodebookEntropyFirstPosition(_QuantizersControl):
    bug = "the codebook entropy averages the code distributions over the batch at the first position only " \
          "(`prob[:, 0].mean(0)`), not over all batch·∏positions vectors (vqp's mean over `(b n)`)"
    caught_by = "lfq_positions_eq_rows"

    def lfq_entropy_loss(self, z, inv_temperature, diversity_gamma):
        z = np.asarray(z, dtype=np.float64)
        per_sample, _, _ = ref_lfq.lfq_entropy_loss(z, inv_temperature, diversity_gamma)
        first = z.reshape(z.shape[0], -1, z.shape[-1])[:, 0]  # [batch, dim] at the first position
        _, codebook, _ = ref_lfq.lfq_entropy_loss(first, inv_temperature, diversity_gamma)
        return per_sample, codebook, per_sample - diversity_gamma * codebook


class RVQCommitmentSumOverPositions(_QuantizersControl):
    bug = "rvq_commitment_loss averages over the batch and the embedding but sums over the positions " \
          "(`.mean(dim=(0, -1)).sum()`), so a [batch, T, D] input's loss is T times a mean"
    caught_by = "rvq_positions_eq_rows"

    def rvq_commitment_loss(self, z_e, codebooks, num_stages):
        z_e = np.asarray(z_e, dtype=np.float64)
        per_position = [ref_rvq.rvq_commitment_loss(z_e[(slice(None), *p)], codebooks, num_stages)
                        for p in np.ndindex(*z_e.shape[1:-1])]
        return np.sum(per_position, axis=0)

    def rvq_commitment_loss_vjp(self, args, cotangent):
        z_e = np.asarray(args["z_e"], dtype=np.float64)
        grad = np.zeros_like(z_e)
        for p in np.ndindex(*z_e.shape[1:-1]):
            at = (slice(None), *p)
            grad[at] = ref_rvq.rvq_commitment_loss_vjp({**args, "z_e": z_e[at]}, cotangent)["z_e"]
        return {"z_e": grad}


class RVQCodebookLossGradientIntoEncoder(_QuantizersControl):
    bug = "rvq_codebook_loss keeps no stop-gradient on the residual (mean (r_s − e_s)²): z_e also receives the " \
          "commitment loss's gradient"
    caught_by = "rvq_codebook_loss_gradient_only_to_codebooks"

    def rvq_codebook_loss_vjp(self, args, cotangent):
        grads = ref_rvq.rvq_codebook_loss_vjp(args, cotangent)
        return {**grads, "z_e": ref_rvq.rvq_commitment_loss_vjp(args, cotangent)["z_e"]}


def _input_losses(z_e, codebooks, num_stages):
    """Stage s's codebook loss on z_e itself (each stage's codes as rvq_quantize chose them)."""
    rows = np.asarray(z_e, dtype=np.float64).reshape(-1, np.shape(z_e)[-1])
    k = ref_rvq.rvq_quantize(z_e, codebooks, num_stages)[1].reshape(len(rows), -1)
    return rows, k


class RVQCodebookLossOnInput(_QuantizersControl):
    bug = "rvq_codebook_loss compares every stage's code with the input z_e instead of the residual r_s " \
          "(mean (sg(z_e) − e_s)²)"
    caught_by = "rvq_codebook_loss_eq_commitment_loss"

    def rvq_codebook_loss(self, z_e, codebooks, num_stages):
        rows, k = _input_losses(z_e, codebooks, num_stages)
        losses = np.zeros(np.shape(codebooks)[0])
        for s in range(num_stages):
            losses[s] = ref_vq.codebook_loss(rows, codebooks[s], indices=k[:, s])
        return losses

    def rvq_codebook_loss_vjp(self, args, cotangent):
        rows, k = _input_losses(args["z_e"], args["codebooks"], args["num_stages"])
        books = np.zeros_like(np.asarray(args["codebooks"], dtype=np.float64))
        for s in range(int(args["num_stages"])):
            at = {"z_e": rows, "codebook": args["codebooks"][s], "indices": k[:, s]}
            books[s] = ref_vq.codebook_loss_vjp(at, float(np.asarray(cotangent)[s]))["codebook"]
        return {"z_e": np.zeros(np.shape(args["z_e"])), "codebooks": books}


CONTROLS = {cls.__name__: cls for cls in _QuantizersControl.__subclasses__()}
