"""vector-quantize-pytorch's `VectorQuantize` (1.32.0) as a VQ-chapter backend, through `vaespec.impl.adapters`.

    vaespec check --backend vaespec.proofs_tests.thirdparty.vqp_vector_quantize:backends

Two configurations of the library's layer, each a backend computing in float32 (its `Codebook.forward`
casts its input with `x.float()`, so float32 is the arithmetic it declares):

- `vqp-ema`: `VectorQuantize(dim, codebook_size, decay, eps, commitment_weight=1, rotation_trick=False)`,
  the classic EMA codebook with the straight-through estimator;
- `vqp-learnable`: `VectorQuantize(…, learnable_codebook=True, ema_update=False, rotation_trick=False)`,
  the codebook learned by gradient through the library's one loss `mse(quantize, x)`.

Each call takes the layer for its sizes (built once, with torch's global generator saved and restored
around its kaiming-uniform initialisation, which every call overwrites) and puts the contract's state
into it: the codebook as `_codebook.embed` (substituted by `torch.func.functional_call`, so autograd
reaches the contract's codebook), the EMA state as `cluster_size` / `embed_avg`. Each contract function
in the library:

- `quantize`: `forward(z_e)` in training mode with `freeze_codebook=True` (no update): its quantize, indices.
  A z_e [B, *positions, D] with more than one position axis is passed as the library's token sequence
  [B, N, D] (`_sequence`; its 4-d input is a channels-first image) and the outputs reshaped back.
- `commitment_loss`: the loss `forward` returns with `freeze_codebook=True` (codebook detached): mse(sg(q), z_e).
- `codebook_loss` (learnable only): the same loss with the codebook live and the input detached,
  mse(q, sg(z_e)): the share of the library's loss gradient that the codebook receives.
- `ema_update` (EMA only): `forward(z_e)` in training (or eval) mode from the given `cluster_size` /
  `embed_avg`; the step count is the adapter's (+1 per training update: the library keeps none).
- `laplace_smooth`: `laplace_smoothing(N, K, ε) · Σ N`, as `Codebook.update_ema` uses it.
- `init_codebook`: the layer's `uniform_init(1, K, D)` (kaiming-uniform), torch's generator seeded from the key.
- `reset_dead_codes`: `expire_codes_` with `threshold_ema_dead_code = 1` and `cluster_size = usage` (dead ⟺
  usage 0), torch's generator seeded from the key.

Not provided: `codebook_health` (the library has no usage or perplexity function), `vq_encode`,
`vq_forward`, `vq_loss`, `decode`, `reconstruction_loss` (it is a quantizer layer, with no encoder or
decoder), and in each configuration the update it does not have. The laws it holds and the conventions it
differs on are listed, one reason each, in `vqp_vector_quantize.differences` next to this file (a
`--vaespec-xfail` file); `proofs_tests/selftests/test_thirdparty_vqp.py` checks every line of it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar

import torch
from torch import Tensor
from vector_quantize_pytorch import VectorQuantize
from vector_quantize_pytorch.vector_quantize_pytorch import laplace_smoothing, uniform_init

from vaespec.impl.adapters import AutogradBackend, NotProvided
from vaespec.spec.errors import ConfigError
from vaespec.spec.keys import as_key, split

CONFIGS = ("ema", "learnable")
_CACHE_SIZE = 16
DIFFERENCES = "vqp_vector_quantize.differences"
_NETWORK = NotProvided("VectorQuantize is a quantizer layer: it has no encoder or decoder")


def _sequence(z_e: Tensor) -> Tensor:
    """z_e [B, *positions, D] as the library's [B, N, D] token sequence ([B, D] and [B, T, D] as given): it takes
    4-d input only as a channels-first image (`accept_image_fmap`), and quantizes every token alike."""
    return z_e if z_e.dim() <= 3 else z_e.reshape(z_e.shape[0], -1, z_e.shape[-1])


class VQPBackend(AutogradBackend):
    """vector-quantize-pytorch's `VectorQuantize` in one configuration (`config`: "ema" or "learnable").

    **Arguments** `config`; `device`: "cpu" or an existing CUDA device. The dtype is float32 (the library's).
    """

    chapters = ("vq",)
    config: ClassVar[str] = ""
    # What the library lacks, declared per function beside the bodies (each configuration adds its own).
    torch_vq_encode = torch_vq_forward = torch_vq_loss = torch_decode = torch_reconstruction_loss = _NETWORK
    torch_codebook_health = NotProvided("the library has no codebook usage or perplexity function")

    def __init__(self, device: Any = "cpu"):
        super().__init__(device, "float32")
        self.name = f"vqp-{self.config}"

    def layer(self, num_embeddings: int, embedding_dim: int, **options: Any) -> VectorQuantize:
        """A `VectorQuantize` of this configuration on the backend's device, in training mode; kept per sizes and
        options (every call puts the whole state it reads into it, so none carries over)."""
        key = (num_embeddings, embedding_dim, tuple(sorted(options.items())))
        cache = self.__dict__.setdefault("_layers", OrderedDict())
        if key not in cache:
            learnable = self.config == "learnable"
            with torch.random.fork_rng(devices=[]):  # its kaiming-uniform init draws; every call overwrites it
                vq = VectorQuantize(dim=embedding_dim, codebook_size=num_embeddings, commitment_weight=1.0,
                                    rotation_trick=False, learnable_codebook=learnable, ema_update=not learnable,
                                    **options)
            cache[key] = vq.to(self._device)
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        return cache[key].train()

    def _forward(self, z_e: Tensor, codebook: Tensor, *, freeze: bool) -> tuple[Tensor, Tensor, Tensor]:
        vq = self.layer(*codebook.shape)
        z_q, indices, loss = torch.func.functional_call(vq, {"_codebook.embed": codebook[None]}, (_sequence(z_e),),
                                                        {"freeze_codebook": freeze})
        return z_q.reshape(z_e.shape), indices.reshape(z_e.shape[:-1]), loss

    def torch_quantize(self, z_e, codebook):
        z_q, indices, _ = self._forward(z_e, codebook, freeze=True)
        return z_q, indices

    def torch_commitment_loss(self, z_e, codebook):
        return self._forward(z_e, codebook, freeze=True)[2]

    def torch_laplace_smooth(self, counts, epsilon):
        return laplace_smoothing(counts, counts.shape[0], epsilon) * counts.sum()

    def torch_init_codebook(self, num_embeddings, embedding_dim, key):
        draw, _ = split(as_key(key))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw.value)
            return uniform_init(1, num_embeddings, embedding_dim)[0].to(self._device, self._dtype)

    def torch_reset_dead_codes(self, codebook, usage, z_e, key):
        draw, new_key = split(as_key(key))
        vq = self.layer(*codebook.shape, threshold_ema_dead_code=1)
        state = vq._codebook
        state.embed.data = codebook[None].clone()
        state.cluster_size.data = usage[None].to(codebook.dtype)
        state.embed_avg.data = codebook[None].clone()
        with torch.random.fork_rng(devices=[self._device] if self._device.type == "cuda" else []):
            torch.manual_seed(draw.value)
            vq.expire_codes_(z_e.reshape(-1, z_e.shape[-1])[None])  # the N vectors of z_e [B, *positions, D]
        return state.embed.data[0].clone(), new_key


class VQPEma(VQPBackend):
    """`vqp-ema`: the EMA codebook (no codebook loss: the codebook is learned by the update)."""

    config = "ema"
    torch_codebook_loss = NotProvided("the EMA configuration learns its codebook by the update, with no loss")
    # Its EMA lerps cluster_size and embed_avg and never divides by 1 − decayᵗ (laws.declared.VARIANTS): the
    # suite's reference for ema_update is then the undebiased one (docs/porting.md §3.6).
    variants: ClassVar[dict[str, Any]] = {"ema_debias": False}

    def torch_ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        vq = self.layer(*codebook.shape, decay=float(decay), eps=float(epsilon))
        if not training:
            vq.eval()
        state = {"_codebook.embed": codebook[None].clone(), "_codebook.cluster_size": ema_counts[None].clone(),
                 "_codebook.embed_avg": ema_sums[None].clone()}
        torch.func.functional_call(vq, state, (_sequence(z_e),))  # updates the buffers it is given, in place
        return (state["_codebook.embed"][0], state["_codebook.cluster_size"][0], state["_codebook.embed_avg"][0],
                ema_step + int(bool(training)))


class VQPLearnable(VQPBackend):
    """`vqp-learnable`: the codebook as a parameter learned through the library's loss (no EMA update)."""

    config = "learnable"
    torch_ema_update = NotProvided("the learnable configuration has no EMA update (ema_update=False)")

    def torch_codebook_loss(self, z_e, codebook):
        return self._forward(z_e.detach(), codebook, freeze=False)[2]


def backends(devices: Any = None) -> list[VQPBackend]:
    """`vqp-ema` and `vqp-learnable` on each device (default: the CPU)."""
    devices = ["cpu"] if devices is None else list(devices)
    if not devices:
        raise ConfigError("devices: expected at least one device")
    return [cls(device) for device in devices for cls in (VQPEma, VQPLearnable)]
