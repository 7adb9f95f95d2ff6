"""The dense VQ-VAE as torch modules: encoder, quantizers (trained or EMA codebook), decoder, and the model.

Layers carry the spec's names (`vaespec.spec.architecture.VQArchitecture`): `encoder_dense_i`,
`encoder_to_embedding` (linear), then the VAE's `Decoder` reading `embedding_dim` inputs. The
codebook is the quantizer's `codebook`, `[num_embeddings, embedding_dim]`: an `nn.Parameter`
trained by the codebook loss (`VectorQuantizer`) or a buffer moved by exponential moving averages
(`VectorQuantizerEMA`, sonnet's `VectorQuantizerEMA`). `forward` does no checks: it is the hot path.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.contract import validate_args
from vaespec.spec.conventions import Convention
from vaespec.spec.errors import ConfigError, DTypeError, ShapeError, describe, show
from vaespec.spec.keys import Key
from vaespec.spec.shapes import check_scalar
from vaespec.spec.vq import DEFAULT_CODEBOOK_SEED, DEFAULT_COMMITMENT_WEIGHT, DEFAULT_DECAY, DEFAULT_EPSILON

from ._dtypes import torch_device, torch_dtype
from .conv import ConvVQDecoder, ConvVQEncoder
from .functional import reconstruction_loss
from .modules import Decoder, DenseStack, check_arch
from .vq_functional import (
    CodebookHealth,
    codebook_health,
    codebook_loss,
    commitment_loss,
    gather_rows,
    init_codebook,
    laplace_smooth,
    nearest_code,
    reset_dead_codes,
)


class QuantizerOutput(NamedTuple):
    """What a quantizer returns: `z_q` [B, *positions, D] (straight-through), `indices` int64 [B, *positions],
    and the two auxiliary losses (0-d; the EMA quantizer's `codebook_loss` is a constant 0)."""

    z_q: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


class VQVAEOutput(NamedTuple):
    """What `VQVAE.forward` returns: `x_hat` [B, output], `indices` int64 [B], the two auxiliary losses (the
    convolutional VQ-VAE's: x_hat [B, C, H, W], indices [B, H′, W′])."""

    x_hat: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment_loss: Tensor


class VQEncoder(DenseStack):
    """`z_e = act(…act(x·W₀ + b₀)…)·W_emb + b_emb`.

    **Arguments**
    - `arch`: the `VQArchitecture` (`input_size`, `encoder_sizes`, `embedding_dim`, `activation`).
    - `dtype`, `device`: passed to each `nn.Linear` (torch's defaults when None).

    Layers: `encoder_dense_0 … encoder_dense_{n-1}`, `encoder_to_embedding`.
    `forward(x [batch, input])` returns `z_e [batch, embedding]`.
    """

    part = "encoder"
    arch: VQArchitecture
    encoder_to_embedding: nn.Linear

    def __init__(self, arch: VQArchitecture, *, dtype: torch.dtype | str | None = None,
                 device: torch.device | str | None = None):
        check_arch(arch, (VQArchitecture,), "VQEncoder")
        super().__init__(arch, arch.encoder_layers(),
                         [("encoder_to_embedding", arch.encoder_head_fan_in(), arch.embedding_dim)], dtype, device)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder_to_embedding(self._hidden(x))


def check_ema_options(ema: object, decay: object, epsilon: object) -> None:
    """`ema` a bool, `decay` in [0, 1) (1 − decayᵗ is the debiasing divisor), `epsilon` finite and ≥ 0."""
    if not isinstance(ema, bool):
        raise ConfigError(f"ema: expected True or False, got {show(ema)}")
    for option, value, ok, domain in (("decay", decay, lambda v: 0.0 <= v < 1.0, "0 ≤ decay < 1"),
                                      ("epsilon", epsilon, lambda v: 0.0 <= v < math.inf, "finite ε ≥ 0")):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not ok(value) or not math.isfinite(check_scalar(option, value)):
            raise ConfigError(f"{option}: expected a real number with {domain}, got {show(value)}")


def _initial_codebook(num_embeddings: int, embedding_dim: int, key: Key | int, dtype: torch.dtype | str | None,
                      device: torch.device | str | None) -> Tensor:
    dtype = None if dtype is None else torch_dtype(dtype)
    device = None if device is None else torch_device(device, meta=True)
    meta = device is not None and device.type == "meta"
    checked = validate_args("init_codebook", {"num_embeddings": num_embeddings, "embedding_dim": embedding_dim,
                                              "key": DEFAULT_CODEBOOK_SEED if meta else key})
    # On the meta device nothing is allocated (no key is read): the caller loads a codebook after `to_empty`.
    if meta:
        return torch.empty(checked["num_embeddings"], checked["embedding_dim"], dtype=dtype, device="meta")
    return init_codebook(num_embeddings, embedding_dim, key, dtype=dtype, device=device)


def _straight_through(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(z_q, indices, rows): z_q = z_e + sg(rows − z_e) with rows = sg(C)[indices]."""
    indices = nearest_code(z_e, codebook, validate=False)
    rows = gather_rows(codebook.detach(), indices)
    return z_e + (rows - z_e).detach(), indices, rows


class _Quantizer(nn.Module):
    codebook: Tensor

    def health(self, indices: Tensor) -> CodebookHealth:
        """`codebook_health(indices, K)`: usage counts, perplexity and dead codes of a batch's choices."""
        return codebook_health(indices, self.codebook.shape[0], dtype=torch.promote_types(self.codebook.dtype,
                                                                                          torch.float32))

    def extra_repr(self) -> str:
        return f"num_embeddings={self.codebook.shape[0]}, embedding_dim={self.codebook.shape[1]}"


class VectorQuantizer(_Quantizer):
    """Nearest-code quantization with a trained codebook (van den Oord et al. 2017; Edifice's VQ-VAE).

    `forward(z_e)` returns `QuantizerOutput(z_q, indices, codebook_loss, commitment_loss)` with
    `z_q = z_e + sg(e_k − z_e)` (straight-through), `codebook_loss = mean (sg(z_e) − e_k)²`
    (gradient to `codebook` only) and `commitment_loss = mean (z_e − sg(e_k))²` (gradient to z_e only).

    **Arguments**
    - `num_embeddings`: K codebook rows; `embedding_dim`: D.
    - `key`: seeds the codebook, `init_codebook(K, D, key)` ~ N(0, 1) (default 42).
    - `dtype`, `device`: of the codebook.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, key: Key | int = DEFAULT_CODEBOOK_SEED, *,
                 dtype: torch.dtype | str | None = None, device: torch.device | str | None = None):
        super().__init__()
        self.codebook = nn.Parameter(_initial_codebook(num_embeddings, embedding_dim, key, dtype, device))

    def forward(self, z_e: Tensor) -> QuantizerOutput:
        z_q, indices, _ = _straight_through(z_e, self.codebook)
        return QuantizerOutput(z_q, indices, codebook_loss(z_e, self.codebook, indices, validate=False),
                               commitment_loss(z_e, self.codebook, indices, validate=False))

    @torch.no_grad()
    def reset_dead_codes(self, usage: Tensor, z_e: Tensor, key: Key | int) -> Key:
        """Replace the unused codes (usage 0) by rows of `z_e` drawn with `key`, in place; returns the next key.

        See `vaespec.impl.vq.reset_dead_codes` for the draw.
        """
        new, new_key = reset_dead_codes(self.codebook, usage, z_e, key)
        self.codebook.copy_(new)
        return new_key


class VectorQuantizerEMA(_Quantizer):
    """Nearest-code quantization whose codebook follows exponential moving averages (sonnet's
    `VectorQuantizerEMA`, the VQ-VAE paper's appendix): no codebook loss, no codebook gradient.

    In training mode each `forward` quantizes with the current codebook, then (under `no_grad`) with
    γ = `decay`, t = `ema_step` + 1, n_k = #{b: k(b) = k}, s_k = Σ_{b: k(b)=k} z_e[b]:

        ema_counts ← γ·ema_counts + (1−γ)·n,   ema_sums ← γ·ema_sums + (1−γ)·s
        N̂ = ema_counts/(1 − γᵗ),  Ŝ = ema_sums/(1 − γᵗ),  Ñ = laplace_smooth(N̂, ε)
        codebook_k ← Ŝ_k / Ñ_k where Ñ_k > 0 (else unchanged),   ema_step ← t

    In eval mode nothing changes. The update is computed in float32 or wider (the buffers keep
    the module's dtype). `forward` returns `QuantizerOutput` with `codebook_loss` = 0.

    **Arguments**
    - `num_embeddings`, `embedding_dim`, `key`, `dtype`, `device`: as `VectorQuantizer`.
    - `decay`: γ in [0, 1) (default 0.99); `epsilon`: Laplace smoothing ε ≥ 0 (default 1e-5).

    **Buffers** `codebook` [K, D], `ema_counts` [K], `ema_sums` [K, D], `ema_step` (int64, 0-d).
    """

    ema_counts: Tensor
    ema_sums: Tensor
    ema_step: Tensor

    def __init__(self, num_embeddings: int, embedding_dim: int, decay: float = DEFAULT_DECAY,
                 epsilon: float = DEFAULT_EPSILON, key: Key | int = DEFAULT_CODEBOOK_SEED, *,
                 dtype: torch.dtype | str | None = None, device: torch.device | str | None = None):
        super().__init__()
        check_ema_options(True, decay, epsilon)
        self.decay, self.epsilon = float(decay), float(epsilon)
        codebook = _initial_codebook(num_embeddings, embedding_dim, key, dtype, device)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_counts", torch.zeros(num_embeddings, dtype=codebook.dtype, device=device))
        self.register_buffer("ema_sums", torch.zeros_like(codebook))
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.int64, device=device))

    def forward(self, z_e: Tensor) -> QuantizerOutput:
        z_q, indices, rows = _straight_through(z_e, self.codebook)
        commitment = ((z_e - rows) ** 2).mean()  # rows are detached: the gradient reaches z_e only
        if self.training:
            self.update(z_e.detach(), indices)
        return QuantizerOutput(z_q, indices, torch.zeros((), dtype=commitment.dtype, device=commitment.device),
                               commitment)

    @torch.no_grad()
    def update(self, z_e: Tensor, indices: Tensor) -> None:
        """One EMA step in place (the class doc's formulas) with z_e [..., D]'s vectors assigned to `indices`
        [...] (what `forward` does in training mode with its own nearest codes; residual VQ's stages call it with
        each stage's residual and choices). Not validated: `indices` must be int64 in [0, K)."""
        acc = torch.promote_types(self.codebook.dtype, torch.float32)
        codes = self.codebook.shape[0]
        flat = indices.reshape(-1)  # every position's vector counts: z_e [B, *positions, D] as [N, D]
        n = torch.bincount(flat, minlength=codes).to(acc)
        s = torch.zeros(self.ema_sums.shape, dtype=acc, device=z_e.device).index_add_(
            0, flat, z_e.reshape(-1, z_e.shape[-1]).to(acc))
        counts = self.decay * self.ema_counts.to(acc) + (1.0 - self.decay) * n
        sums = self.decay * self.ema_sums.to(acc) + (1.0 - self.decay) * s
        step = self.ema_step + 1
        debias = 1.0 - torch.pow(torch.tensor(self.decay, dtype=torch.float64, device=step.device), step).to(acc)
        smoothed = laplace_smooth(counts / debias, self.epsilon, validate=False)
        used = smoothed > 0
        updated = (sums / debias) / torch.where(used, smoothed, 1.0).unsqueeze(1)
        self.codebook.copy_(torch.where(used.unsqueeze(1), updated, self.codebook.to(acc)))
        self.ema_counts.copy_(counts)
        self.ema_sums.copy_(sums)
        self.ema_step.copy_(step)

    @torch.no_grad()
    def reset_dead_codes(self, usage: Tensor, z_e: Tensor, key: Key | int) -> Key:
        """Replace the unused codes by rows of `z_e` drawn with `key`, in place; returns the next key.

        The EMA sums of a replaced code are set to `row · ema_counts` so the moving average
        (Ŝ / N̂) agrees with the new row; a replaced code that still receives no vector decays as usual.
        """
        new, new_key = reset_dead_codes(self.codebook, usage, z_e, key)
        dead = usage == 0
        self.codebook.copy_(new)
        self.ema_sums.copy_(torch.where(dead.unsqueeze(1), new * self.ema_counts.unsqueeze(1), self.ema_sums))
        return new_key

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, decay={self.decay}, epsilon={self.epsilon}"


class VQVAE(nn.Module):
    """A VQ-VAE: `x → z_e = encoder(x) → (z_q, k) = quantizer(z_e) → x̂ = decoder(z_q)`.

    **Arguments**
    - `encoder`: a `VQEncoder`; `quantizer`: a `VectorQuantizer` or `VectorQuantizerEMA`;
      `decoder`: a `Decoder` built for the same `VQArchitecture` (its `latent_size` is `embedding_dim`).
      Or the convolutional VQ-VAE's `vaespec.impl.conv.ConvVQEncoder` and `ConvVQDecoder` of one
      `ConvVQArchitecture`: then x is [B, C, H, W], z_e, z_q [B, H′, W′, E] channels-last (every position
      quantized on its own), indices [B, H′, W′] and x̂ [B, C, H, W].

    Use `vaespec.impl.vq.build` to make one from options. `forward(x)` returns
    `VQVAEOutput(x_hat, indices, codebook_loss, commitment_loss)`; `loss(x)` the objective.
    """

    def __init__(self, encoder: VQEncoder | ConvVQEncoder, quantizer: _Quantizer, decoder: Decoder | ConvVQDecoder):
        super().__init__()
        for name, module, classes in (("encoder", encoder, (VQEncoder, ConvVQEncoder)),
                                      ("quantizer", quantizer, (_Quantizer,)),
                                      ("decoder", decoder, (Decoder, ConvVQDecoder))):
            if not isinstance(module, classes):
                kind = ("VectorQuantizer or VectorQuantizerEMA" if classes == (_Quantizer,)
                        else " or ".join(c.__name__ for c in classes))
                raise DTypeError(f"{name}: expected a vaespec.impl.vq {kind}, got {describe(module)}")
        arch = encoder.arch
        if tuple(quantizer.codebook.shape) != (arch.num_embeddings, arch.embedding_dim) or decoder.arch != arch:
            raise ShapeError(f"quantizer, decoder: expected a codebook [{arch.num_embeddings}, {arch.embedding_dim}] "
                             f"and a decoder for {arch}, got a codebook {tuple(quantizer.codebook.shape)} and a "
                             f"decoder for {decoder.arch}")
        self.arch = arch
        self.encoder, self.quantizer, self.decoder = encoder, quantizer, decoder

    def forward(self, x: Tensor) -> VQVAEOutput:
        z_q, indices, cb, commit = self.quantizer(self.encoder(x))
        return VQVAEOutput(self.decoder(z_q), indices, cb, commit)

    def loss(self, x: Tensor, commitment_weight: float | Tensor = DEFAULT_COMMITMENT_WEIGHT,
             convention: str | Convention | None = None) -> Tensor:
        """`R(x̂, x) + codebook_loss + w · commitment_loss` for a batch `x` (runs `forward`, so an EMA
        quantizer in training mode updates its codebook).

        **Arguments**
        - `x`: `[batch, input]` (the model's `output_size` must equal `input_size`); `[batch, C, H, W]` for the
          convolutional VQ-VAE.
        - `commitment_weight`: w ≥ 0 (default 0.25).
        - `convention`: reconstruction reduction preset or `Convention` (default "elbo").

        **Returns** a 0-d tensor; equals `vq_loss(x̂, x, z_e, codebook, indices, w, convention)`.
        """
        x_hat, _, cb, commit = self(x)
        return reconstruction_loss(x_hat, x, convention, validate=False) + cb + commitment_weight * commit
