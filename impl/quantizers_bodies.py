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
    work = z.float() if z.dtype in (torch.bfloat16, torch.float16) else z
    half_width = torch.div(levels, 2, rounding_mode="floor").to(work.dtype)
    return (round_ste(fsq_bound(work, levels)) / half_width).to(z.dtype)


@BODIES.register("fsq_quantize")
def _fsq_quantize(inputs: Inputs) -> Outputs:
    return (fsq_quantize(inputs.tensors["z"], inputs.tensors["levels"]),)
