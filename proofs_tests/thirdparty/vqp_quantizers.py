"""vector-quantize-pytorch 1.32.0's `FSQ`, `LFQ` and `ResidualVQ` as a backend of the quantizers chapter.

An `AutogradBackend` (`vaespec.impl.adapters`): float64 numpy in, validated and converted to torch tensors in
the backend's dtype (float64, float32 or bfloat16), one `torch_<function>` body per contract function calling
the library, numpy out; every vjp by autograd through the same body. Each call builds the module for its
arguments. An input [batch, *positions, dim] is passed as the library's token sequence [batch, N, dim]
(`_sequence`: [batch, dim] as [batch, 1, dim]; 4-d and wider input the library takes as a channels-first
image) and the outputs reshaped back:

- FSQ(levels) with `dim = len(levels)` (no projections); `fsq_bound` is `FSQ.bound` with its `round_ste`
  replaced by the identity for the call, times `levels // 2` (the library has no unrounded bound);
  `fsq_quantize`/`fsq_indices` are its `forward` on the sequence; `fsq_indices_to_codes` its
  `indices_to_codes` on the flattened indices; `fsq_implicit_codebook` its `implicit_codebook`. vqp refuses L = 2 unless
  `preserve_symmetry` (a different bound): an example with L = 2 is rejected (`hypothesis.reject`), not run.
- LFQ(dim = d, codebook_size = 2^d) in training mode (its straight-through and losses exist only there), with
  `entropy_loss_weight = 1`, `commitment_loss_weight = 1`, the given `diversity_gamma`, and `inv_temperature`
  passed to `forward`; the losses are its `LossBreakdown` (per_sample_entropy, batch_entropy, commitment) and
  the entropy aux loss is `aux_loss − commitment`.
- ResidualVQ(dim, num_quantizers = n, codebook_size = K) holding the first n codebooks (quantizer dropout as
  the n-stage quantizer; vqp draws n at random), `rotation_trick = False` (the plain straight-through per stage;
  the default rotation trick is another estimator), `ema_update = False`, training mode (its commitment losses
  exist only there); indices padded with −1 after n. `rvq_codebook_loss` is not provided: each layer's one loss
  is `F.mse_loss(commit_quantize, x)` with `commit_quantize = quantize.detach()` (the commitment loss), or, with
  `learnable_codebook=True` (which refuses `ema_update`), `quantize` itself — one loss whose gradient reaches both
  the residual and the codes, never the codebook loss alone with the residual stopped.
- `rvq_ema_update`: ResidualVQ(…, ema_update=True, decay = γ, eps = ε, threshold_ema_dead_code = 0) holding the
  first n codebooks with each layer's `cluster_size` = counts_s and `embed_avg` = sums_s, one `forward` in
  training (or eval) mode, its buffers read back; the stages after n returned as given, and the steps the
  adapter's (+1 per used stage in training: the library keeps none, and never debiases).

In bfloat16 the modules are cast with `.to(torch.bfloat16)` (their float buffers: LFQ's codebook, the VQ
codebooks) and fed bfloat16 tensors; FSQ and LFQ quantize in float32 inside (`force_quantization_f32`).

    vaespec check --backend vaespec.proofs_tests.thirdparty.vqp_quantizers:backends --chapter quantizers

The laws it breaks, each with its verdict and reason, are `vqp_quantizers.differences` next to this file (a
`--vaespec-xfail` file); `proofs_tests/selftests/test_vqp_quantizers.py` checks every line of it both ways.
"""

from __future__ import annotations

from unittest import mock

import torch
from hypothesis import reject
from torch import Tensor
from vector_quantize_pytorch import FSQ, LFQ, ResidualVQ
from vector_quantize_pytorch import finite_scalar_quantization as fsq_module

from vaespec.impl.adapters import AutogradBackend, NotProvided
from vaespec.spec.errors import ConfigError

DTYPES = ("float64", "float32", "bfloat16")
DIFFERENCES = "vqp_quantizers.differences"  # the laws vqp breaks, verdict and reason per line (an xfail file)


def _sequence(z: Tensor) -> Tensor:
    """z [B, *positions, D] as the library's token sequence [B, N, D], N = ∏ positions (1 for [B, D]): every
    token is quantized alike, and 4-d or wider input would be read as a channels-first image."""
    return z.reshape(z.shape[0], -1, z.shape[-1])


class VQPQuantizers(AutogradBackend):
    """The quantizers chapter on vector-quantize-pytorch, on the CPU, in `dtype` (see the module doc)."""

    name = "vqp-quantizers"
    chapters = ("quantizers",)

    def __init__(self, dtype: str = "float64"):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {list(DTYPES)}, got {dtype!r}")
        super().__init__("cpu", dtype)

    def __repr__(self) -> str:
        return f"VQPQuantizers(dtype={self.dtype!r})"

    # ------------------------------------------------------------------------- FSQ
    def _fsq(self, levels: Tensor) -> FSQ:
        values = [int(v) for v in levels.tolist()]
        if 2 in values:
            reject()  # vqp asserts preserve_symmetry for L = 2 (a different bound): outside what vqp computes
        return FSQ(levels=values).to(self._dtype)

    def torch_fsq_bound(self, z, levels):
        module = self._fsq(levels)
        with mock.patch.object(fsq_module, "round_ste", lambda t: t):
            return module.bound(z) * (module._levels // 2)

    def torch_fsq_quantize(self, z, levels):
        out, _ = self._fsq(levels)(_sequence(z))
        return out.reshape(z.shape)

    def torch_fsq_indices(self, z, levels):
        _, indices = self._fsq(levels)(_sequence(z))
        return indices.reshape(z.shape[:-1]).long()

    def torch_fsq_indices_to_codes(self, indices, levels):
        codes = self._fsq(levels).indices_to_codes(indices.reshape(-1))
        return codes.reshape(*indices.shape, codes.shape[-1])

    def torch_fsq_implicit_codebook(self, levels):
        return self._fsq(levels).implicit_codebook

    # ------------------------------------------------------------------------- LFQ
    def _lfq(self, z: Tensor, inv_temperature: float = 100.0, diversity_gamma: float = 1.0):
        """LFQ's forward in training mode on z [B, *positions, d]: ((out, indices, aux), its loss breakdown)."""
        d = z.shape[-1]
        module = LFQ(dim=d, codebook_size=2**d, entropy_loss_weight=1.0, commitment_loss_weight=1.0,
                     diversity_gamma=float(diversity_gamma)).to(self._dtype).train()
        with torch.enable_grad():  # its straight-through and losses are built in training mode, under autograd
            return module(_sequence(z), inv_temperature=float(inv_temperature), return_loss_breakdown=True)

    def torch_lfq_quantize(self, z):
        (out, indices, _), _ = self._lfq(z)
        return out.reshape(z.shape), indices.reshape(z.shape[:-1]).long()

    def torch_lfq_indices_to_codes(self, indices, codebook_dim):
        d = int(codebook_dim)
        codes = LFQ(dim=d, codebook_size=2**d).indices_to_codes(indices.reshape(-1))
        return codes.reshape(*indices.shape, d)

    def torch_lfq_entropy_loss(self, z, inv_temperature, diversity_gamma):
        (_, _, aux), breakdown = self._lfq(z, inv_temperature, diversity_gamma)
        return breakdown.per_sample_entropy, breakdown.batch_entropy, aux - breakdown.commitment

    def torch_lfq_commitment_loss(self, z):
        return self._lfq(z)[1].commitment

    # ------------------------------------------------------------------------- residual VQ
    def _rvq(self, z_e: Tensor, codebooks: Tensor, num_stages: int) -> tuple[Tensor, Tensor, Tensor]:
        """ResidualVQ holding the first n codebooks, on z_e [B, *positions, D]: (z_q, indices padded with −1 to
        [B, *positions, S], the per-stage commitment losses padded with 0 to [S])."""
        stages, codes, dim = codebooks.shape
        n = int(num_stages)
        module = ResidualVQ(dim=dim, num_quantizers=n, codebook_size=codes, rotation_trick=False, ema_update=False,
                            kmeans_init=False).to(self._dtype).train()
        with torch.no_grad():
            for s, layer in enumerate(module.layers):
                layer._codebook.embed.copy_(codebooks[s][None])
        with torch.enable_grad():
            out, indices, losses = module(_sequence(z_e))
        padded = torch.full((*z_e.shape[:-1], stages), -1, dtype=torch.int64)
        padded[..., :n] = indices.reshape(*z_e.shape[:-1], n).long()
        losses = torch.cat([losses.reshape(-1).to(z_e.dtype), torch.zeros(stages - n, dtype=z_e.dtype)])
        return out.reshape(z_e.shape), padded, losses

    def torch_rvq_quantize(self, z_e, codebooks, num_stages):
        z_q, indices, _ = self._rvq(z_e, codebooks, num_stages)
        return z_q, indices

    def torch_rvq_commitment_loss(self, z_e, codebooks, num_stages):
        return self._rvq(z_e, codebooks, num_stages)[2]

    # vqp returns one loss per layer, mse(commit_quantize, x): the commitment loss, with the codes detached unless
    # learnable_codebook (then one loss training both sides); a codebook loss with the residual stopped it has not
    torch_rvq_codebook_loss = NotProvided(
        "ResidualVQ's layers return one loss each, F.mse_loss(commit_quantize, x), with commit_quantize = "
        "quantize.detach() (the commitment loss) unless learnable_codebook=True, where the codes are not detached "
        "and the same loss trains the residual and the codebook together: no loss with the gradient to the "
        "codebooks only (sg on the residual); with ema_update (the default) the codebook learns by EMA")

    def torch_rvq_ema_update(self, codebooks, ema_counts, ema_sums, ema_step, z_e, num_stages, decay, epsilon,
                             training):
        _, codes, dim = codebooks.shape
        n = int(num_stages)
        module = ResidualVQ(dim=dim, num_quantizers=n, codebook_size=codes, rotation_trick=False, ema_update=True,
                            kmeans_init=False, decay=float(decay), eps=float(epsilon), threshold_ema_dead_code=0)
        module = module.to(self._dtype).train(bool(training))
        with torch.no_grad():
            for s, layer in enumerate(module.layers):
                book = layer._codebook
                for buffer, value in ((book.embed, codebooks), (book.cluster_size, ema_counts),
                                      (book.embed_avg, ema_sums)):
                    buffer.copy_(value[s][None])
            module(_sequence(z_e))  # each layer's EMA runs on its residual, inside forward (training mode)
            out = [value.clone() for value in (codebooks, ema_counts, ema_sums, ema_step)]
            for s, layer in enumerate(module.layers):
                book = layer._codebook
                out[0][s], out[1][s], out[2][s] = book.embed[0], book.cluster_size[0], book.embed_avg[0]
            out[3][:n] += int(bool(training))
        return tuple(out)


def backends() -> list[VQPQuantizers]:
    """vqp's quantizers on the CPU in float64, float32 and bfloat16."""
    return [VQPQuantizers(dtype) for dtype in DTYPES]
