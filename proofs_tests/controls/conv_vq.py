"""Deliberately wrong backends for the convolutional VQ-VAE (issue 15): each must be rejected by `caught_by`.

The contract's conv VQ-VAE (`vaespec.spec.conv_vq`) quantizes the last feature map channels-last: z_e is
torch's `[B, E, H′, W′]` **permuted** to `[B, H′, W′, E]`, and the decoder permutes z_q back. The bugs ports
make there keep every shape: a reshape where the permutation belongs (on either side), and the auxiliary
losses averaged over batch × embedding where the mean runs over batch × positions × embedding. Each control is
right on the dense VQ-VAE (there it is the backend itself), so only the conv VQ-VAE's examples can show it.

    vaespec check --backend vaespec.proofs_tests.controls.conv_vq:TorchConvVQEncoderReshaped --law vq_encode
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
from torch import Tensor

from vaespec.impl import conv
from vaespec.reference import vq
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.conv_vq import ConvVQArchitecture

from .conv import ConvControl
from .vae import NegativeControl


class _ConvVQControl(ConvControl):
    """The conv VAE's controls' harness, for the conv VQ-VAE's modules."""

    network = ConvVQArchitecture


def _encode_reshaped(self: conv.ConvVQEncoder, x: Tensor) -> Tensor:
    h = x
    for layer in self.convs:
        h = self.act(layer(h))
    h = self.encoder_to_embedding(h)  # [B, E, H′, W′]
    return h.reshape(h.shape[0], h.shape[2], h.shape[3], h.shape[1])  # the bug: a reshape, not .permute(0, 2, 3, 1)


class TorchConvVQEncoderReshaped(_ConvVQControl):
    bug = ("the encoder's channels-first feature map [B, E, H′, W′] is reshaped to [B, H′, W′, E] instead of "
           "permuted: each 'vector' z_e[b, i, j] mixes channels of several positions (same shape, so nothing "
           "complains); right when H′·W′ = 1 or E = 1")
    caught_by = "vq_encode_matches_reference"

    def breaks(self, encoder: Any, decoder: Any) -> None:
        if encoder is not None:
            encoder.forward = types.MethodType(_encode_reshaped, encoder)


def _decode_reshaped(self: conv.ConvVQDecoder, z: Tensor) -> Tensor:
    b, h, w, e = z.shape
    out = self.act(self.decoder_from_embedding(z.reshape(b, e, h, w)))  # the bug: not .permute(0, 3, 1, 2)
    for i, deconv in enumerate(self.deconvs):
        out = deconv(out)
        out = self.act(out) if i < len(self.deconvs) - 1 else out
    return out


class TorchConvVQDecoderReshaped(_ConvVQControl):
    bug = ("the decoder reads z_q [B, H′, W′, E] by reshaping it to [B, E, H′, W′] instead of permuting it back: "
           "the codes' entries land at other positions and channels (the encoder is right, so the indices are)")
    caught_by = "vq_forward_matches_reference"

    def breaks(self, encoder: Any, decoder: Any) -> None:
        if decoder is not None:
            decoder.forward = types.MethodType(_decode_reshaped, decoder)


class ConvVQLossAuxOverBatchOnly(NegativeControl):
    bug = ("vq_loss's codebook and commitment terms divide Σ (z_e − e_k)² by batch × embedding only, not by batch "
           "× positions × embedding (code written for the dense z_e [B, D]): H′·W′ times too large on the conv "
           "VQ-VAE; its codebook_loss and commitment_loss themselves are right")
    caught_by = "vq_loss_eq_reconstruction_add_codebook_add_commitment"
    chapters = ("vae", "vq")

    @staticmethod
    def _extra(arch, params, codebook, x, commitment_weight) -> float:
        """(∏positions − 1) · (1 + w) · mean (z_e − e_k)²: what the wrong denominator adds."""
        if not isinstance(arch, ConvVQArchitecture):
            return 0.0
        z_e = ReferenceBackend.vq_encode(arch, params, x)
        positions = int(np.prod(arch.positions))
        return (positions - 1) * (1.0 + commitment_weight) * float(vq.commitment_loss(z_e, codebook))

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        right = super().vq_loss(arch, params, codebook, x, commitment_weight, convention)
        return np.asarray(right + self._extra(arch, params, codebook, x, commitment_weight))


CONTROLS: dict[str, type] = {cls.__name__: cls for cls in (
    TorchConvVQEncoderReshaped, TorchConvVQDecoderReshaped, ConvVQLossAuxOverBatchOnly)}
