"""Deliberately wrong quantizers: each is the reference with one realistic bug, rejected by `caught_by`.

The bugs are ones a port of vector-quantize-pytorch's FSQ, LFQ or ResidualVQ makes: FSQ's half-step offset
for even levels dropped, the mixed-radix digits read most-significant-first, the straight-through gradient
lost, floor for round; LFQ's bit order reversed, its entropy terms' signs swapped, 0 sent to +1; residual VQ
quantizing the input at every stage, a straight-through per stage, quantizer dropout ignored, a codebook loss
that lets the gradient into z_e or is computed on the input at every stage, an EMA update of every stage on the
input, with stage 0's indices, or of the dropped stages too; and, on inputs [batch, *positions, dim], the
reductions a port written for [batch, dim] gets wrong (each right on rows).
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
        return z_q, bits @ (2 ** np.arange(bits.shape[-1], dtype=np.int64))


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
        return np.where(bits, 1.0, -1.0), bits.astype(np.int64) @ (2 ** np.arange(bits.shape[-1] - 1, -1, -1))


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


class RVQCodebookLossSumOverPositions(_QuantizersControl):
    bug = "rvq_codebook_loss averages over the batch and the embedding but sums over the positions (a port written " \
          "for [batch, dim]), so a [batch, T, D] input's loss and its codebook gradient are T times a mean"
    caught_by = "rvq_codebook_loss_positions_eq_rows"

    def rvq_codebook_loss(self, z_e, codebooks, num_stages):
        z_e = np.asarray(z_e, dtype=np.float64)
        return np.sum([ref_rvq.rvq_codebook_loss(z_e[(slice(None), *p)], codebooks, num_stages)
                       for p in np.ndindex(*z_e.shape[1:-1])], axis=0)

    def rvq_codebook_loss_vjp(self, args, cotangent):
        z_e = np.asarray(args["z_e"], dtype=np.float64)
        books = np.zeros(np.shape(args["codebooks"]))
        for p in np.ndindex(*z_e.shape[1:-1]):
            books += ref_rvq.rvq_codebook_loss_vjp({**args, "z_e": z_e[(slice(None), *p)]}, cotangent)["codebooks"]
        return {"z_e": np.zeros_like(z_e), "codebooks": books}


# ----------------------------------------------------------------------------- residual VQ's EMA codebooks
_STATE = ("codebooks", "ema_counts", "ema_sums", "ema_step")


def _ema_stages(codebooks, ema_counts, ema_sums, ema_step, z_e, num_stages, decay, epsilon, training, *, inputs,
                indices):
    """rvq_ema_update with stage s updated by the VQ chapter's ema_update on `inputs(s, r, rows)` [N, D] at the
    indices `indices(s, k)` [N] (r [n, N, D] the true residuals, rows z_e's vectors, k [N, S] the true choices)."""
    rows = np.reshape(np.asarray(z_e, dtype=np.float64), (-1, np.shape(z_e)[-1]))
    k, _, r = ref_rvq.stages(np.asarray(z_e, dtype=np.float64), np.asarray(codebooks, dtype=np.float64), num_stages)
    k = k.reshape(len(rows), -1)
    out = [np.array(v, dtype=np.float64) for v in (codebooks, ema_counts, ema_sums)] + [np.array(ema_step)]
    for s in range(num_stages):
        stage = ref_vq.ema_update(codebooks[s], ema_counts[s], ema_sums[s], int(ema_step[s]), inputs(s, r, rows),
                                  decay, epsilon, training, indices=indices(s, k))
        for value, new in zip(out, stage):
            value[s] = new
    return tuple(out)


class RVQEMAUpdatesOnInput(_QuantizersControl):
    bug = "rvq_ema_update moves every stage's codes towards the input z_e instead of the stage's residual r_s " \
          "(each stage's own choices, but sums of z_e)"
    caught_by = "rvq_ema_update_eq_stagewise_ema_update"

    def rvq_ema_update(self, *args):
        return _ema_stages(*args, inputs=lambda s, r, rows: rows, indices=lambda s, k: k[:, s])


class RVQEMAStageZeroIndices(_QuantizersControl):
    bug = "rvq_ema_update assigns every stage's residuals by stage 0's indices (`indices[..., 0]` reused), so a " \
          "later stage's codes move to the mean of residuals that did not choose them"
    caught_by = "rvq_ema_kmeans_step"

    def rvq_ema_update(self, *args):
        return _ema_stages(*args, inputs=lambda s, r, rows: r[s], indices=lambda s, k: k[:, 0])


class RVQEMAUpdatesDroppedStages(_QuantizersControl):
    bug = "rvq_ema_update ignores num_stages: the stages quantizer dropout left out are updated too"
    caught_by = "rvq_ema_update_first_stages_eq_fewer_stage_update"

    def rvq_ema_update(self, codebooks, ema_counts, ema_sums, ema_step, z_e, num_stages, decay, epsilon, training):
        return ref_rvq.rvq_ema_update(codebooks, ema_counts, ema_sums, ema_step, z_e, np.shape(codebooks)[0], decay,
                                      epsilon, training)


class RVQEMAFirstPositionOnly(_QuantizersControl):
    bug = "rvq_ema_update counts and sums the vectors of the first position only (`z_e[:, 0]`, written for a " \
          "[batch, dim] input), not all batch·∏positions vectors"
    caught_by = "rvq_ema_update_positions_eq_rows"

    def rvq_ema_update(self, codebooks, ema_counts, ema_sums, ema_step, z_e, num_stages, decay, epsilon, training):
        z_e = np.asarray(z_e, dtype=np.float64)
        first = z_e.reshape(z_e.shape[0], -1, z_e.shape[-1])[:, 0]  # [batch, D] at the first position
        return ref_rvq.rvq_ema_update(codebooks, ema_counts, ema_sums, ema_step, first, num_stages, decay, epsilon,
                                      training)


CONTROLS = {cls.__name__: cls for cls in _QuantizersControl.__subclasses__()}
