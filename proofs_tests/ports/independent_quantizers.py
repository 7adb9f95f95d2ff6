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
from .independent_vq import ema_step_at


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


def _digits(z, levels):
    """q_d = round(bound) + L // 2 ∈ [0, L), from the float32-or-wider bound."""
    b = _bound(z.to(torch.promote_types(z.dtype, torch.float32)), levels)
    return torch.round(b).long() + levels // 2


def _index(q, levels):
    """Horner's scheme from the most significant digit (the last coordinate) down: q_0 + L_0(q_1 + L_1(…))."""
    index = torch.zeros(q.shape[:-1], dtype=torch.int64, device=q.device)
    for d in reversed(range(q.shape[-1])):
        index = index * levels[d] + q[..., d]
    return index


def _codes(index, levels, like):
    """Repeated divmod, least significant digit first; then (q − L//2) / (L//2) in the port's dtype."""
    digits, rest = [], index.long()
    for level in levels.tolist():
        digits.append(rest % level)
        rest = rest // level
    q = torch.stack(digits, -1)
    half = (levels // 2).to(like.dtype)
    return (q.to(like.dtype) - half) / half


def _codebook(levels, like):
    return _codes(torch.arange(int(torch.prod(levels)), device=levels.device), levels, like)


QUANTIZERS = Bodies()
QUANTIZERS.add("fsq_bound", lambda a: (_bound(a["z"], a["levels"]),))
QUANTIZERS.add("fsq_quantize", lambda a: (_quantize(a["z"], a["levels"]),))
QUANTIZERS.add("fsq_indices", lambda a: (_index(_digits(a["z"], a["levels"]), a["levels"]),))
QUANTIZERS.add("fsq_indices_to_codes", lambda a: (_codes(a["indices"], a["levels"], a["like"]),))
QUANTIZERS.add("fsq_implicit_codebook", lambda a: (_codebook(a["levels"], a["like"]),))


# ----------------------------------------------------------------------------- LFQ: bits, and the factorised softmax
def _wide(z):
    return z.to(torch.promote_types(z.dtype, torch.float32))


def _lfq(z):
    w = _wide(z)
    bits = w > 0
    code = 2 * bits.to(w.dtype) - 1
    index = torch.zeros(z.shape[:-1], dtype=torch.int64, device=z.device)
    for i in range(z.shape[-1]):  # most significant bit first
        index = 2 * index + bits[..., i].long()
    return (w - w.detach() + code).to(z.dtype), index


def _lfq_codes(indices, dim, like):
    bits = [(indices >> (dim - 1 - i)) & 1 for i in range(dim)]
    return (2 * torch.stack(bits, -1).to(like.dtype) - 1) if dim else like.new_zeros(indices.shape + (0,))


def _entropies(z, inv_temperature, gamma):
    """Per-bit Bernoulli(σ(4 z_i / τ)) entropies for the per-sample term; the code probabilities as products of
    the bits' for the codebook term (`torch.distributions.Categorical`)."""
    w = _wide(z)
    scaled = 4 * inv_temperature * w
    per_sample = torch.distributions.Bernoulli(logits=scaled).entropy().sum(-1).mean()
    dim = z.shape[-1]
    signs = _lfq_codes(torch.arange(2**dim, device=z.device), dim, w)  # [K, d]
    rows = scaled.reshape(-1, dim)  # the N = batch·∏positions vectors
    log_p = torch.nn.functional.logsigmoid(signs[None, :, :] * rows[:, None, :]).sum(-1)  # [N, K]
    codebook = torch.distributions.Categorical(probs=log_p.exp().mean(0)).entropy()
    return per_sample.to(z.dtype), codebook.to(z.dtype), (per_sample - gamma * codebook).to(z.dtype)


def _commitment(z):
    w = _wide(z)
    return torch.nn.functional.mse_loss(w, (2 * (w > 0).to(w.dtype) - 1).detach()).to(z.dtype)


QUANTIZERS.add("lfq_quantize", lambda a: _lfq(a["z"]))
QUANTIZERS.add("lfq_indices_to_codes", lambda a: (_lfq_codes(a["indices"], a["codebook_dim"], a["like"]),))
QUANTIZERS.add("lfq_entropy_loss", lambda a: _entropies(a["z"], a["inv_temperature"], a["diversity_gamma"]))
QUANTIZERS.add("lfq_commitment_loss", lambda a: (_commitment(a["z"]),))


# ----------------------------------------------------------------------------- residual VQ: torch.cdist per stage
def _rvq(z_e, codebooks, n):
    """Residuals and choices by `torch.cdist` (direct differences), in float32 at least; argmin's first minimum;
    z_e [B, *positions, D] as its rows [N, D], the choices [N, S] (reshaped by the callers)."""
    w = _wide(z_e).detach().flatten(0, -2)
    books = codebooks.to(w.dtype)
    chosen = torch.full((w.shape[0], codebooks.shape[0]), -1, dtype=torch.int64, device=z_e.device)
    total, residual, pieces = torch.zeros_like(w), w, []
    for s in range(n):
        k = torch.cdist(residual, books[s]).argmin(-1)
        chosen[:, s] = k
        pieces.append((total, books[s][k]))  # (the earlier codes' sum, this stage's code)
        total = total + books[s][k]
        residual = w - total
    return chosen, total, pieces


def _rvq_quantize(a):
    chosen, total, _ = _rvq(a["z_e"], a["codebooks"], a["num_stages"])
    z = a["z_e"]
    return z - z.detach() + total.view_as(z).to(z.dtype), chosen.view(*z.shape[:-1], -1)


def _rvq_commitment(a):
    z = a["z_e"]
    _, _, pieces = _rvq(z, a["codebooks"], a["num_stages"])
    w = _wide(z).flatten(0, -2)
    losses = [torch.nn.functional.mse_loss(w - before, code) for before, code in pieces]
    losses += [w.new_zeros(())] * (a["codebooks"].shape[0] - len(pieces))
    return torch.stack(losses).to(z.dtype)


def _rvq_codebook(a):
    """mse_loss(sg(z_e − earlier codes), code) per stage: the codes get the gradient, z_e and earlier stages none."""
    z = a["z_e"]
    _, _, pieces = _rvq(z, a["codebooks"], a["num_stages"])
    w = _wide(z).flatten(0, -2)
    losses = [torch.nn.functional.mse_loss((w - before).detach(), code) for before, code in pieces]
    losses += [w.new_zeros(())] * (a["codebooks"].shape[0] - len(pieces))
    return torch.stack(losses).to(z.dtype)


QUANTIZERS.add("rvq_quantize", lambda a: _rvq_quantize(a))
QUANTIZERS.add("rvq_commitment_loss", lambda a: (_rvq_commitment(a),))
QUANTIZERS.add("rvq_codebook_loss", lambda a: (_rvq_codebook(a),))


def _rvq_ema(a):
    """Each used stage's EMA step (the port's own VQ EMA code, `independent_vq.ema_step_at`) on its residual
    z_e − (earlier codes) at its choices, in float32 at least; the rest returned as given."""
    books, counts, sums, steps = (a[n].clone() for n in ("codebooks", "ema_counts", "ema_sums", "ema_step"))
    if not a["training"]:
        return books, counts, sums, steps
    z = a["z_e"]
    chosen, _, pieces = _rvq(z, a["codebooks"], a["num_stages"])
    w = _wide(z).flatten(0, -2)
    for s, (before, _) in enumerate(pieces):
        wide = [t[s].to(w.dtype) for t in (books, counts, sums)]
        out = ema_step_at(*wide, int(steps[s]), w - before, chosen[:, s], a["decay"], a["epsilon"])
        books[s], counts[s], sums[s] = (v.to(z.dtype) for v in out[:3])
        steps[s] = out[3]
    return books, counts, sums, steps


QUANTIZERS.add("rvq_ema_update", _rvq_ema)
