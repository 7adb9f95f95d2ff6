"""Deliberately wrong VQ backends: each must be rejected by the law named in `caught_by`.

Each is the reference with one realistic bug from VQ code in the wild: Edifice's codebook
loss fed with the straight-through output (its codebook never learns), an argmax where an
argmin belongs, a similarity score instead of a distance, a missing stop-gradient, an EMA
without debiasing, … `vaespec check --backend vaespec.proofs_tests.controls.vq:<Name>`
shows the failing law.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import vq

from .vae import NegativeControl


def _rows(z_e, codebook, indices):
    return codebook[indices].copy(), indices


class _VQControl(NegativeControl):
    chapters = ("vae", "vq")


class ArgmaxDistance(_VQControl):
    bug = "quantize picks the farthest code (argmax instead of argmin)"
    caught_by = "quantize_nearest_code_within_bound"

    def quantize(self, z_e, codebook):
        return _rows(z_e, codebook, vq.squared_distances(z_e, codebook).argmax(axis=-1))


class L1Distance(_VQControl):
    bug = "quantize measures the L1 distance Σ|z − e| instead of the squared Euclidean one"
    caught_by = "quantize_nearest_code_within_bound"

    def quantize(self, z_e, codebook):
        return _rows(z_e, codebook, np.abs(z_e[..., None, :] - codebook).sum(axis=-1).argmin(axis=-1))


class TiesToLastIndex(_VQControl):
    bug = "exact ties go to the highest index (argmin over the reversed codebook)"
    caught_by = "quantize_ties_to_lowest_index"

    def quantize(self, z_e, codebook):
        d = vq.squared_distances(z_e, codebook)
        return _rows(z_e, codebook, d.shape[-1] - 1 - d[..., ::-1].argmin(axis=-1))


class TiesToLastIndexAtPositions(_VQControl):
    bug = ("exact ties go to the lowest index on [B, D] but to the highest for spatial or sequence z_e: its "
           "positions path reads each index off the one-hot of the minimal distances with a max over "
           "one-hot · arange(K), which is the last of several tied codes. Right on [B, D]")
    caught_by = "quantize_ties_to_lowest_index"

    def quantize(self, z_e, codebook):
        if np.ndim(z_e) == 2:
            return vq.quantize(z_e, codebook)
        d = vq.squared_distances(z_e, codebook)
        one_hot = d == d.min(axis=-1, keepdims=True)
        return _rows(z_e, codebook, (one_hot * np.arange(codebook.shape[0])).max(axis=-1).astype(np.int64))


class DotProductSimilarity(_VQControl):
    bug = "quantize maximises z·e (the ‖e‖² term of the expanded distance dropped)"
    caught_by = "quantize_translation_invariance"

    def quantize(self, z_e, codebook):
        return _rows(z_e, codebook, (z_e @ codebook.T).argmax(axis=-1))


class NoStraightThrough(_VQControl):
    bug = "quantize's output is detached: no gradient reaches z_e (the encoder never learns from the decoder)"
    caught_by = "quantize_straight_through_gradient"

    def quantize_vjp(self, args, cotangent):
        grads = self.reference_vjp("quantize", args, cotangent)
        grads["z_e"] = np.zeros_like(grads["z_e"])
        return grads


class EdificeCodebookLoss(_VQControl):
    bug = ("codebook_loss is fed quantize's straight-through output (Edifice as documented): the gradient "
           "reaches the encoder and the codebook gets none")
    caught_by = "codebook_loss_gradient_reaches_codebook_only"

    def codebook_loss_vjp(self, args, cotangent):
        z_e, codebook = args["z_e"], args["codebook"]
        e = codebook[vq.nearest_code(z_e, codebook)]
        # L = mean((sg(z_e) − st)²), st = z_e + sg(e − z_e): dL/dst = −2(z_e − e)/n flows to z_e.
        return {"z_e": 2.0 * cotangent * (e - z_e) / z_e.size, "codebook": np.zeros_like(codebook)}


class CommitmentWithoutStopGradient(_VQControl):
    bug = "commitment_loss forgets sg(e): its gradient also pulls the codebook"
    caught_by = "commitment_loss_gradient_reaches_encoder_only"

    def commitment_loss_vjp(self, args, cotangent):
        grads = self.reference_vjp("commitment_loss", args, cotangent)
        grads["codebook"] = self.reference_vjp("codebook_loss", args, cotangent)["codebook"]
        return grads


class CommitmentWeightOnCodebookTerm(_VQControl):
    bug = ("vq_loss = R + w·codebook + commitment: the weight on the wrong term. The two terms have equal "
           "values, so only the gradient can tell")
    caught_by = "vq_loss_gradient_matches_reference"

    def vq_loss_vjp(self, args, cotangent):
        w = args["commitment_weight"]
        full = self.reference_vjp("vq_loss", args, cotangent)
        # The reference gives the codebook cb-gradient·1 and the encoder cm-gradient·w; swap the weights.
        grads = dict(full)
        grads["codebook"] = w * full["codebook"]
        if w > 0:
            unweighted = self.reference_vjp("vq_loss", {**args, "commitment_weight": 0.0}, cotangent)
            grads["params"] = {k: unweighted["params"][k] + (full["params"][k] - unweighted["params"][k]) / w
                               for k in full["params"]}
            grads["x"] = unweighted["x"] + (full["x"] - unweighted["x"]) / w
        return grads


class EMANotDebiased(_VQControl):
    bug = ("ema_update skips the 1/(1 − decayᵗ) correction. With ε = 0 it cancels (Ŝ/N̂ = sums/counts), so only "
           "the smoothing's ε, now relatively 1/(1 − decay) times larger, shows it")
    caught_by = "ema_update_matches_reference"

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        # A step count so large that decayᵗ underflows to 0: the "debiased" values are the biased ones.
        new, counts, sums, _ = vq.ema_update(codebook, ema_counts, ema_sums, 10**9, z_e, decay, epsilon, training)
        return new, counts, sums, ema_step + 1 if training else ema_step


class EMADecaySwapped(_VQControl):
    bug = "ema_update weighs the batch by decay and the history by 1 − decay (decay 0 then ignores the batch)"
    caught_by = "ema_kmeans_step"

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        if not training:
            return codebook.copy(), ema_counts.copy(), ema_sums.copy(), ema_step
        k = vq.nearest_code(z_e, codebook)
        n = np.bincount(k.ravel(), minlength=codebook.shape[0]).astype(np.float64)
        s = np.zeros_like(codebook)
        np.add.at(s, k, z_e)
        counts = (1 - decay) * ema_counts + decay * n
        sums = (1 - decay) * ema_sums + decay * s
        debias = 1 - decay ** (ema_step + 1)
        smoothed = vq.laplace_smooth(counts / debias, epsilon) if counts.sum() > 0 else counts
        new = codebook.copy()
        used = smoothed > 0
        new[used] = sums[used] / debias / smoothed[used, None]
        return new, counts, sums, ema_step + 1


class EMAUpdatesInEvalMode(_VQControl):
    bug = "ema_update ignores `training`: evaluation batches move the codebook"
    caught_by = "ema_eval_mode_leaves_codebook_unchanged"

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        return vq.ema_update(codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, True)


class LaplaceWithoutRescale(_VQControl):
    bug = "laplace_smooth returns (N + ε)/(ΣN + Kε): probabilities, not counts (the ·ΣN forgotten)"
    caught_by = "laplace_smoothing_preserves_total_count"

    def laplace_smooth(self, counts, epsilon):
        return (counts + epsilon) / (counts.sum() + counts.shape[0] * epsilon)


class PerplexityIsEntropy(_VQControl):
    bug = "codebook_health reports the entropy −Σ p log p, not its exponential"
    caught_by = "perplexity_in_one_to_num_codes"

    def codebook_health(self, indices, num_embeddings):
        usage, perplexity, dead = vq.codebook_health(indices, num_embeddings)
        return usage, np.log(perplexity), dead


class ResetAllCodes(_VQControl):
    bug = "reset_dead_codes replaces every row, live or dead, with batch vectors"
    caught_by = "reset_dead_codes_keeps_live_codes"

    def reset_dead_codes(self, codebook, usage, z_e, key):
        return vq.reset_dead_codes(codebook, np.zeros_like(usage), z_e, key)


class DecoderInputDetached(_VQControl):
    bug = "vq_forward decodes a detached z_q: the reconstruction gradient never reaches the encoder"
    caught_by = "vq_forward_gradient_matches_reference"

    def vq_forward_vjp(self, args, cotangent):
        grads = self.reference_vjp("vq_forward", args, cotangent)
        encoder = set(args["arch"].parameter_shapes("encoder"))
        grads["params"] = {k: (np.zeros_like(g) if k in encoder else g) for k, g in grads["params"].items()}
        grads["x"] = np.zeros_like(grads["x"])
        return grads


class NearestCodeInFloat32(_VQControl):
    bug = ("declares float64 but chooses codes from the expanded distance ‖z‖² − 2z·e + ‖e‖² evaluated in float32 "
           "(returning the float64 rows): right at float32's scale, wrong at near ties only float64 resolves")
    caught_by = "quantize_nearest_code_within_bound"

    def quantize(self, z_e, codebook):
        z, e = z_e.astype(np.float32), codebook.astype(np.float32)
        d = (z * z).sum(-1)[..., None] - np.float32(2) * (z @ e.T) + (e * e).sum(1)
        return _rows(z_e, codebook, d.argmin(axis=-1).astype(np.int64))


class TieGradientToLastIndex(_VQControl):
    bug = ("the codebook loss's gradient goes to the last of exactly tied codes while quantize (its value) picks "
           "the first: the backward pass breaks ties its own way")
    caught_by = "codebook_loss_gradient_matches_reference"

    def codebook_loss_vjp(self, args, cotangent):
        d = vq.squared_distances(args["z_e"], args["codebook"])
        last = (d.shape[-1] - 1 - d[..., ::-1].argmin(axis=-1)).astype(np.int64)
        return self.reference_vjp("codebook_loss", {**args, "indices": last}, cotangent)


class ChannelsFirstQuantize(_VQControl):
    bug = ("quantize reads a channels-last z_e [B, *positions, D] as channels-first [B, D, *positions] (code ported "
           "from torch's NCHW layout): it moves axis 1 last before flattening to vectors, so for any positions each "
           "'vector' mixes entries of several positions. On [B, D] the move is the identity and it is right")
    caught_by = "quantize_positions_eq_quantize_rows"

    def quantize(self, z_e, codebook):
        moved = np.moveaxis(z_e, 1, -1)  # the transposition meant for [B, D, *positions]
        k = vq.nearest_code(moved.reshape(-1, z_e.shape[-1]), codebook).reshape(z_e.shape[:-1])
        return _rows(z_e, codebook, k)


class AuxLossOverBatchOnly(_VQControl):
    bug = ("codebook_loss and commitment_loss divide Σ (z_e − e_k)² by batch × embedding only, not by batch × "
           "positions × embedding: ∏positions times too large for spatial or sequence z_e, right on [B, D]")
    caught_by = "aux_losses_positions_eq_rows"

    @staticmethod
    def _scale(z_e):
        return z_e.size / (z_e.shape[0] * z_e.shape[-1])  # ∏positions

    def codebook_loss(self, z_e, codebook):
        return vq.codebook_loss(z_e, codebook) * self._scale(z_e)

    def commitment_loss(self, z_e, codebook):
        return vq.commitment_loss(z_e, codebook) * self._scale(z_e)

    def _scaled_vjp(self, function, args, cotangent):
        grads = self.reference_vjp(function, args, cotangent)
        return {name: g * self._scale(np.asarray(args["z_e"])) for name, g in grads.items()}

    def codebook_loss_vjp(self, args, cotangent):
        return self._scaled_vjp("codebook_loss", args, cotangent)

    def commitment_loss_vjp(self, args, cotangent):
        return self._scaled_vjp("commitment_loss", args, cotangent)


class EMACountsFirstPositionOnly(_VQControl):
    bug = ("ema_update counts and sums only the first position of each example (z_e[:, 0, …] for spatial z_e, "
           "as code written for [B, D] that indexes z_e[b] does): right on [B, D]")
    caught_by = "ema_update_positions_eq_rows"

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        z_e = np.asarray(z_e)
        first = z_e.reshape(z_e.shape[0], -1, z_e.shape[-1])[:, 0, :]
        return vq.ema_update(codebook, ema_counts, ema_sums, ema_step, first, decay, epsilon, training)


class UsageOverFirstAxis(_VQControl):
    bug = ("codebook_health normalises the usage by the batch size B instead of the N = B·∏positions indices "
           "counted: p sums to ∏positions, so the perplexity is wrong for spatial or sequence indices")
    caught_by = "codebook_health_positions_eq_rows"

    def codebook_health(self, indices, num_embeddings):
        indices = np.asarray(indices)
        usage, _, dead = vq.codebook_health(indices, num_embeddings)
        p = usage[usage > 0] / indices.shape[0]
        return usage, np.asarray(np.exp(-np.sum(p * np.log(p)))), dead


CONTROLS: dict[str, type[NegativeControl]] = {
    cls.__name__: cls for cls in (
        ArgmaxDistance, L1Distance, TiesToLastIndex, TiesToLastIndexAtPositions, DotProductSimilarity,
        NoStraightThrough, EdificeCodebookLoss, CommitmentWithoutStopGradient, CommitmentWeightOnCodebookTerm,
        EMANotDebiased, EMADecaySwapped, EMAUpdatesInEvalMode,
        LaplaceWithoutRescale, PerplexityIsEntropy, ResetAllCodes, DecoderInputDetached, NearestCodeInFloat32,
        TieGradientToLastIndex, ChannelsFirstQuantize, AuxLossOverBatchOnly, EMACountsFirstPositionOnly,
        UsageOverFirstAxis)
}
