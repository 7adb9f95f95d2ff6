"""The quantizers chapter's Torch bodies (`vaespec.spec.quantizers.FUNCTIONS`), and the functional ops they run.

Each op takes tensors in any float dtype and computes in that dtype; the quantizer's constants (FSQ's
half_l, offset and shift) are computed in float64 from the integer levels and rounded once to the
dtype, as the statement says. Autograd differentiates the same code (`TorchBackend.vjp`).

    fsq_bound(z, L)    = tanh(z + shift) · half_l − offset
    fsq_quantize(z, L) = round_ste(fsq_bound(z, L)) / (L // 2),  round_ste(b) = b + (round(b) − b).detach()
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bodies import Bodies, Inputs, Outputs

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
