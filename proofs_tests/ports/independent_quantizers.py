"""The independent port's quantizers chapter, written from the statement (docs/quantizers.md) apart from
`vaespec.impl.quantizers_bodies` and the reference: FSQ's constants are computed per level in Python
floats (the shift as ½ log((h + o)/(h − o)), not atanh), then applied as one tensor of constants; the
straight-through rounding is b − sg(b) + round(sg(b)), whose value is the rounded level exactly, in
float32 at least (narrow inputs are promoted, as the statement says).
"""

from __future__ import annotations

import math

import torch

from .bodies import Bodies


def _constants(levels, like):
    """(half_l, offset, shift) per coordinate as tensors like `like`, from Python floats."""
    half, offsets, shifts = [], [], []
    for level in levels.tolist():
        h = (level - 1) * 1.001 / 2
        o = 0.5 if level % 2 == 0 else 0.0
        half.append(h)
        offsets.append(o)
        shifts.append(0.5 * math.log((h + o) / (h - o)))
    return tuple(torch.tensor(v, dtype=torch.float64).to(like) for v in (half, offsets, shifts))


def _bound(z, levels):
    h, o, s = _constants(levels, z)
    return h * torch.tanh(z + s) - o


def _quantize(z, levels):
    b = _bound(z.to(torch.promote_types(z.dtype, torch.float32)), levels)
    level = b - b.detach() + torch.round(b.detach())
    return (level / (levels // 2).to(b.dtype)).to(z.dtype)


QUANTIZERS = Bodies()
QUANTIZERS.add("fsq_bound", lambda a: (_bound(a["z"], a["levels"]),))
QUANTIZERS.add("fsq_quantize", lambda a: (_quantize(a["z"], a["levels"]),))
