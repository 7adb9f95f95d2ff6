"""vaespec.impl.vq: the VQ-VAE in PyTorch, checked against `vaespec.spec.vq` by the conformance suite.

- `build`: Edifice-shaped builder returning a `VQVAE` (honours `num_embeddings`; `ema=True` for an EMA codebook).
- `build_conv`: the convolutional VQ-VAE (`vaespec.spec.conv_vq.ConvVQArchitecture`, MNIST-sized defaults):
  x [B, C, H, W], every position of z_e [B, H′, W′, E] (channels-last) quantized.
- `VQVAE`, `VQEncoder`, `Decoder`, `VectorQuantizer`, `VectorQuantizerEMA`: the modules.
- `squared_distances`, `nearest_code`, `quantize`, `codebook_loss`, `commitment_loss`, `vq_loss`,
  `init_codebook`, `laplace_smooth`, `codebook_health`, `reset_dead_codes`: the functional ops on
  tensors (validated unless `validate=False`). `codebook_loss`, `commitment_loss` and `vq_loss` take the
  chosen `indices` (and `vq_loss` the network's outputs), unlike the contract's functions of those names,
  which choose the codes themselves (docs/impl.md lists every such pair).
- `to_params`, `to_codebook`, `load_params`, `from_params`: a `VQVAE` <-> the spec's float64 layout.

Training step with a trained codebook (the losses take the codebook and the indices, so the
codebook always gets its gradient):

    model = build(784, embedding_dim=64, num_embeddings=512, key=0)
    loss = model.loss(x)               # R(x̂, x) + codebook_loss + 0.25 · commitment_loss
    loss.backward()
"""

from .modules import Decoder
from .vq_builder import build, build_conv, from_params, load_params, to_codebook, to_params
from .vq_functional import (
                            CodebookHealth,
                            codebook_health,
                            codebook_loss,
                            commitment_loss,
                            init_codebook,
                            laplace_smooth,
                            nearest_code,
                            quantize,
                            reset_dead_codes,
                            squared_distances,
                            vq_loss,
)
from .vq_modules import VQVAE, QuantizerOutput, VectorQuantizer, VectorQuantizerEMA, VQEncoder, VQVAEOutput

__all__ = [
                            "VQVAE",
                            "CodebookHealth",
                            "Decoder",
                            "QuantizerOutput",
                            "VQEncoder",
                            "VQVAEOutput",
                            "VectorQuantizer",
                            "VectorQuantizerEMA",
                            "build",
                            "build_conv",
                            "codebook_health",
                            "codebook_loss",
                            "commitment_loss",
                            "from_params",
                            "init_codebook",
                            "laplace_smooth",
                            "load_params",
                            "nearest_code",
                            "quantize",
                            "reset_dead_codes",
                            "squared_distances",
                            "to_codebook",
                            "to_params",
                            "vq_loss",
]
