"""The quantizers chapter's Torch bodies (`vaespec.spec.quantizers.FUNCTIONS`), and the functional ops they run.

Each op takes z [batch, *positions, dim] (every vector on its own; the losses are means over all N =
batch·∏positions vectors) in any float dtype and computes in that dtype; the quantizer's constants (FSQ's
half_l, offset and shift) are computed in float64 from the integer levels and rounded once to the
dtype, as the statement says. Autograd differentiates the same code (`TorchBackend.vjp`).

    fsq_bound(z, L)    = tanh(z + shift) · half_l − offset
    fsq_quantize(z, L) = round_ste(fsq_bound(z, L)) / (L // 2),  round_ste(b) = b + (round(b) − b).detach()
    rvq_ema_update     = stage s < n: the VQ chapter's `VectorQuantizerEMA.update` on its residual at its choices
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bodies import Bodies, Inputs, Outputs
from .vq_functional import nearest_code
from .vq_modules import VectorQuantizerEMA

BODIES = Bodies("quantizers")
_FSQ_EPS = 1e-3


def fsq_constants(levels: Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """`(half_l, offset, shift)` for integer `levels` [dim], computed in float64 and rounded to `like`'s dtype:
    half_l = (L − 1)(1 + 10⁻³)/2, offset = ½ for even L else 0, shift = atanh(offset / half_l)."""
    levels = levels.to(torch.float64)
    half_l = (levels - 1) * (1 + _FSQ_EPS) / 2
    offset = torch.where(torch.remainder(levels, 2) == 0, 0.5, 0.0).to(torch.float64)
    shift = torch.atanh(offset / half_l)
    return tuple(c.to(dtype=like.dtype, device=like.device) for c in (half_l, offset, shift))  # type: ignore[return-value]


def fsq_bound(z: Tensor, levels: Tensor) -> Tensor:
    """FSQ's bound (vector-quantize-pytorch 1.32.0): `tanh(z + shift) · half_l − offset`, per coordinate.

    **Arguments** `z` [..., dim] float; `levels` [dim] integers L_d ≥ 2. **Returns** like `z`.
    """
    half_l, offset, shift = fsq_constants(levels, z)
    return torch.tanh(z + shift) * half_l - offset


@BODIES.register("fsq_bound")
def _fsq_bound(inputs: Inputs) -> Outputs:
    return (fsq_bound(inputs.tensors["z"], inputs.tensors["levels"]),)


def round_ste(b: Tensor) -> Tensor:
    """`b + (round(b) − b).detach()`: the value round(b) (half to even), the gradient of b (straight-through)."""
    return b + (torch.round(b) - b).detach()


def fsq_quantize(z: Tensor, levels: Tensor) -> Tensor:
    """FSQ's quantizer (vector-quantize-pytorch 1.32.0 `FSQ.bound`): `round_ste(fsq_bound(z)) / (L // 2)`.

    A bfloat16 or float16 `z` is bounded and rounded in float32 (vqp's `force_quantization_f32`), the
    result rounded back to its dtype.

    **Arguments** `z` [..., dim] float; `levels` [dim] integers L_d ≥ 2. **Returns** like `z`, on the grid.
    """
    work = _work(z)
    half_width = torch.div(levels, 2, rounding_mode="floor").to(work.dtype)
    return (round_ste(fsq_bound(work, levels)) / half_width).to(z.dtype)


@BODIES.register("fsq_quantize")
def _fsq_quantize(inputs: Inputs) -> Outputs:
    return (fsq_quantize(inputs.tensors["z"], inputs.tensors["levels"]),)


def _work(z: Tensor) -> Tensor:
    """The dtype levels are chosen in: float32 for a bfloat16/float16 `z` (vqp's `force_quantization_f32`)."""
    return z.float() if z.dtype in (torch.bfloat16, torch.float16) else z


def fsq_basis(levels: Tensor) -> Tensor:
    """cumprod([1, L_0, …, L_{D−2}]) as int64: coordinate 0 is the least significant digit (vqp's `_basis`)."""
    levels = levels.to(torch.int64)
    return torch.cumprod(torch.cat([torch.ones_like(levels[:1]), levels[:-1]]), dim=0)


def fsq_indices(z: Tensor, levels: Tensor) -> Tensor:
    """int64 [...]: Σ_d (round(fsq_bound(z)_d) + L_d // 2) · basis_d, the implicit codebook's row of each z."""
    levels = levels.to(torch.int64)
    k = torch.round(fsq_bound(_work(z), levels)).to(torch.int64)
    return ((k + torch.div(levels, 2, rounding_mode="floor")) * fsq_basis(levels)).sum(-1)


def fsq_indices_to_codes(indices: Tensor, levels: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """[..., dim] in `dtype`: ((index // basis_d) mod L_d − L_d // 2) / (L_d // 2), computed in integers first."""
    levels = levels.to(torch.int64)
    half = torch.div(levels, 2, rounding_mode="floor")
    q = torch.remainder(torch.div(indices.to(torch.int64)[..., None], fsq_basis(levels), rounding_mode="floor"), levels)
    return (q - half).to(dtype) / half.to(dtype)


@BODIES.register("fsq_indices")
def _fsq_indices(inputs: Inputs) -> Outputs:
    return (fsq_indices(inputs.tensors["z"], inputs.tensors["levels"]),)


@BODIES.register("fsq_indices_to_codes")
def _fsq_indices_to_codes(inputs: Inputs) -> Outputs:
    return (fsq_indices_to_codes(inputs.tensors["indices"], inputs.tensors["levels"], inputs.dtype),)


@BODIES.register("fsq_implicit_codebook")
def _fsq_implicit_codebook(inputs: Inputs) -> Outputs:
    levels = inputs.tensors["levels"]
    size = int(torch.prod(levels.to(torch.int64)))
    return (fsq_indices_to_codes(torch.arange(size, device=inputs.device), levels, inputs.dtype),)


# ----------------------------------------------------------------------------- LFQ
def lfq_mask(dim: int, device: torch.device | str = "cpu") -> Tensor:
    """int64 [d]: 2^(d−1), …, 2, 1 (vqp's `mask`): coordinate 0 is the most significant bit."""
    return 2 ** torch.arange(dim - 1, -1, -1, device=device, dtype=torch.int64)


def lfq_codes(dim: int, like: Tensor) -> Tensor:
    """[2^d, d] like `like`: row k the code of index k (+1 where bit (d−1−i) of k is set, else −1)."""
    mask = lfq_mask(dim, like.device)
    bits = (torch.arange(2**dim, device=like.device)[:, None] & mask) != 0
    return torch.where(bits, 1.0, -1.0).to(like.dtype)


def lfq_quantize(z: Tensor) -> tuple[Tensor, Tensor]:
    """LFQ (vqp 1.32.0, codebook_scale 1): `q = where(z > 0, 1, −1)`, `z_q = z + (q − z).detach()`, index
    `Σ_i [z_i > 0] 2^(d−1−i)`. A narrow `z` is quantized in float32 (vqp's force_quantization_f32)."""
    work = _work(z)
    q = torch.where(work > 0, 1.0, -1.0).to(work.dtype)
    indices = ((work > 0).to(torch.int64) * lfq_mask(z.shape[-1], z.device)).sum(-1)
    return (work + (q - work).detach()).to(z.dtype), indices


def lfq_entropy_loss(z: Tensor, inv_temperature: float, diversity_gamma: float) -> tuple[Tensor, Tensor, Tensor]:
    """(per-sample entropy, codebook entropy, per_sample − γ·codebook) of p = softmax(2·inv_temperature · z Cᵀ)
    over the 2^d codes, for z [..., d]: means over all its vectors, p̄ the mean of all their distributions (vqp's
    entropy aux loss; here 0 log 0 = 0 and log p from log_softmax)."""
    work = _work(z)
    log_p = torch.log_softmax(2 * inv_temperature * work @ lfq_codes(z.shape[-1], work).T, dim=-1)
    p = log_p.exp()
    per_sample = -(p * log_p).sum(-1).mean()
    p_bar = p.reshape(-1, p.shape[-1]).mean(0)
    positive = p_bar > 0
    codebook = -torch.where(positive, p_bar * torch.log(torch.where(positive, p_bar, 1.0)), 0.0).sum()
    loss = per_sample - diversity_gamma * codebook
    return per_sample.to(z.dtype), codebook.to(z.dtype), loss.to(z.dtype)


def lfq_commitment_loss(z: Tensor) -> Tensor:
    """`mean (z − sg(q))²`, q the sign code (vqp's `F.mse_loss(original_input, quantized.detach())`)."""
    work = _work(z)
    q = torch.where(work > 0, 1.0, -1.0).to(work.dtype)
    return ((work - q.detach()) ** 2).mean().to(z.dtype)


@BODIES.register("lfq_quantize")
def _lfq_quantize(inputs: Inputs) -> Outputs:
    return lfq_quantize(inputs.tensors["z"])


@BODIES.register("lfq_indices_to_codes")
def _lfq_indices_to_codes(inputs: Inputs) -> Outputs:
    dim = inputs.args["codebook_dim"]
    bits = (inputs.tensors["indices"][..., None] & lfq_mask(dim, inputs.device)) != 0
    return (torch.where(bits, 1.0, -1.0).to(inputs.dtype),)


@BODIES.register("lfq_entropy_loss")
def _lfq_entropy_loss(inputs: Inputs) -> Outputs:
    args = inputs.args
    return lfq_entropy_loss(inputs.tensors["z"], args["inv_temperature"], args["diversity_gamma"])


@BODIES.register("lfq_commitment_loss")
def _lfq_commitment_loss(inputs: Inputs) -> Outputs:
    return (lfq_commitment_loss(inputs.tensors["z"]),)


# ----------------------------------------------------------------------------- residual VQ
def rvq_stages(z_e: Tensor, codebooks: Tensor, num_stages: int) -> tuple[Tensor, Tensor, Tensor]:
    """(indices [B, *positions, S] int64, −1 after n; the chosen codes [n, N, D]; the residuals [n, N, D]) over the
    N = B·∏positions vectors of z_e, computed in float32 for a narrow z_e; each stage by the VQ chapter's
    `nearest_code` (lowest index on exact ties)."""
    work = _work(z_e).detach().reshape(-1, z_e.shape[-1])
    books = codebooks.to(work.dtype)
    indices = torch.full((work.shape[0], codebooks.shape[0]), -1, dtype=torch.int64, device=z_e.device)
    residual, codes, residuals = work, [], []
    for s in range(num_stages):
        k = nearest_code(residual, books[s], validate=False)
        indices[:, s] = k
        residuals.append(residual)
        codes.append(books[s][k])
        residual = residual - codes[-1]
    return indices.reshape(*z_e.shape[:-1], codebooks.shape[0]), torch.stack(codes), torch.stack(residuals)


def rvq_quantize(z_e: Tensor, codebooks: Tensor, num_stages: int) -> tuple[Tensor, Tensor]:
    """Residual VQ: `z_q = z_e + sg(Σ_s e_s − z_e)` (straight-through once) and the stages' indices."""
    indices, codes, _ = rvq_stages(z_e, codebooks, num_stages)
    return z_e + (codes.sum(0).reshape(z_e.shape).to(z_e.dtype) - z_e).detach(), indices


def rvq_commitment_loss(z_e: Tensor, codebooks: Tensor, num_stages: int) -> Tensor:
    """[S]: mean (r_s − sg(e_s))² per used stage (0 after n), r_s = z_e − Σ_{t<s} sg(e_t): the gradient reaches z_e
    through every stage's residual."""
    _, codes, _ = rvq_stages(z_e, codebooks, num_stages)
    work = _work(z_e).reshape(-1, z_e.shape[-1])
    before = torch.cumsum(torch.cat([torch.zeros_like(codes[:1]), codes[:-1]]), 0)  # Σ_{t<s} e_t, no gradient
    per_stage = ((work[None] - before - codes) ** 2).mean(dim=(1, 2))
    losses = torch.zeros(codebooks.shape[0], dtype=work.dtype, device=z_e.device)
    return torch.cat([per_stage, losses[num_stages:]]).to(z_e.dtype)


def rvq_codebook_loss(z_e: Tensor, codebooks: Tensor, num_stages: int) -> Tensor:
    """[S]: mean (sg(r_s) − e_s)² per used stage (0 after n): the commitment loss's value, its gradient reaching
    only the codes each stage chose (the residuals are detached, so neither z_e nor the earlier stages get any)."""
    _, codes, residuals = rvq_stages(z_e, codebooks, num_stages)
    per_stage = ((residuals.detach() - codes) ** 2).mean(dim=(1, 2))
    losses = torch.zeros(codebooks.shape[0], dtype=per_stage.dtype, device=z_e.device)
    return torch.cat([per_stage, losses[num_stages:]]).to(z_e.dtype)


@BODIES.register("rvq_quantize")
def _rvq_quantize(inputs: Inputs) -> Outputs:
    return rvq_quantize(inputs.tensors["z_e"], inputs.tensors["codebooks"], inputs.args["num_stages"])


@BODIES.register("rvq_commitment_loss")
def _rvq_commitment_loss(inputs: Inputs) -> Outputs:
    return (rvq_commitment_loss(inputs.tensors["z_e"], inputs.tensors["codebooks"], inputs.args["num_stages"]),)


@BODIES.register("rvq_codebook_loss")
def _rvq_codebook_loss(inputs: Inputs) -> Outputs:
    return (rvq_codebook_loss(inputs.tensors["z_e"], inputs.tensors["codebooks"], inputs.args["num_stages"]),)


def rvq_ema_update(codebooks: Tensor, ema_counts: Tensor, ema_sums: Tensor, ema_step: Tensor, z_e: Tensor,
                   num_stages: int, decay: float, epsilon: float, training: bool
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each used stage's EMA codebook step: stage s < n is a `VectorQuantizerEMA` (the VQ chapter's) holding
    (C_s, counts_s, sums_s, step_s), updated with its residual r_s at its choices k_s (`rvq_stages`: from the
    codebooks before any update, in float32 for a narrow z_e, as `rvq_quantize` chooses); the stages s ≥ n and,
    when not `training`, every stage are returned as given. Returns new tensors (the inputs are not modified)."""
    books, counts, sums, steps = (t.detach().clone() for t in (codebooks, ema_counts, ema_sums, ema_step))
    if not training:
        return books, counts, sums, steps
    indices, _, residuals = rvq_stages(z_e, codebooks, num_stages)
    chosen = indices.reshape(-1, codebooks.shape[0])
    codes, dim = codebooks.shape[1:]
    for s in range(num_stages):
        stage = VectorQuantizerEMA(codes, dim, decay, epsilon, dtype=codebooks.dtype, device="meta")
        stage = stage.to_empty(device=codebooks.device)
        with torch.no_grad():
            for buffer, value in ((stage.codebook, books[s]), (stage.ema_counts, counts[s]),
                                  (stage.ema_sums, sums[s]), (stage.ema_step, steps[s])):
                buffer.copy_(value)
        stage.update(residuals[s], chosen[:, s])
        books[s], counts[s], sums[s], steps[s] = stage.codebook, stage.ema_counts, stage.ema_sums, stage.ema_step
    return books, counts, sums, steps


@BODIES.register("rvq_ema_update")
def _rvq_ema_update(inputs: Inputs) -> Outputs:
    t, args = inputs.tensors, inputs.args
    return rvq_ema_update(t["codebooks"], t["ema_counts"], t["ema_sums"], t["ema_step"], t["z_e"], args["num_stages"],
                          args["decay"], args["epsilon"], args["training"])
