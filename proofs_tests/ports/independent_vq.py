"""The independent port's VQ chapter: `torch.cdist` quantization and its own EMA code.

Written apart from `vaespec.impl` (which computes the expanded form ‖z‖² − 2z·e + ‖e‖² in one
addmm): distances here are `torch.cdist` with direct differences, the EMA step builds its
counts and sums from a one-hot assignment matrix and moves its averages with `torch.lerp`,
and perplexity is `exp` of `torch.distributions.Categorical`'s entropy. Every function that
chooses codes calls `nearest`, so one input gives one choice everywhere (the contract asks
for a deterministic argmin). Random draws come from the statement's key stream
(`vaespec.spec.keys`), as the contract requires.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Categorical

from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.keys import normal, randint

from .bodies import Bodies
from .independent_vae import conv_vq_encode, decode, dense, hidden, reconstruction_loss


def vq_encode(arch, params, x):
    if isinstance(arch, ConvVQArchitecture):  # z_e [B, H′, W′, E]: every position quantized below
        return conv_vq_encode(arch, params, x)
    return dense(params, "encoder_to_embedding", hidden(arch, params, arch.encoder_layers(), x))


def nearest(z_e, codebook):
    """The nearest code of each vector of z_e [B, *positions, D] (lowest index on ties: argmin returns the first
    minimum), indices [B, *positions].

    `torch.cdist` has no bfloat16/float16 kernel on the CPU; there the same direct differences
    are summed by broadcasting, still in the port's own dtype."""
    flat = z_e.flatten(0, -2)
    if z_e.dtype in (torch.float32, torch.float64):
        distances = torch.cdist(flat, codebook, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        distances = (flat[:, None, :] - codebook[None, :, :]).square().sum(-1)
    return distances.argmin(dim=1).unflatten(0, z_e.shape[:-1])


def quantize(z_e, codebook):
    """Straight-through: the value is the chosen row, the gradient passes to z_e unchanged."""
    k = nearest(z_e, codebook)
    return z_e + (codebook[k] - z_e).detach(), k


def codebook_loss(z_e, codebook):
    return F.mse_loss(codebook[nearest(z_e, codebook)], z_e.detach())


def commitment_loss(z_e, codebook):
    return F.mse_loss(z_e, codebook[nearest(z_e, codebook)].detach())


def vq_forward(arch, params, codebook, x):
    z_q, k = quantize(vq_encode(arch, params, x), codebook)
    return decode(arch, params, z_q), k


def vq_loss(arch, params, codebook, x, commitment_weight, convention):
    z_e = vq_encode(arch, params, x)
    z_q, _ = quantize(z_e, codebook)
    return (reconstruction_loss(decode(arch, params, z_q), x, convention) + codebook_loss(z_e, codebook)
            + commitment_weight * commitment_loss(z_e, codebook))


def laplace_smooth(counts, epsilon):
    total = counts.sum()
    return (counts + epsilon) / (total + epsilon * counts.shape[0]) * total


def ema_update(codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
    """sonnet's VectorQuantizerEMA step: lerp the averages towards this batch's counts and sums,
    debias by 1 − decayᵗ, Laplace-smooth, move every code with a positive smoothed count."""
    if not training:
        return codebook.clone(), ema_counts.clone(), ema_sums.clone(), ema_step
    z_e = z_e.flatten(0, -2)  # every position's vector
    return ema_step_at(codebook, ema_counts, ema_sums, ema_step, z_e, nearest(z_e, codebook), decay, epsilon)


def ema_step_at(codebook, ema_counts, ema_sums, ema_step, z_e, k, decay, epsilon):
    """The training step of `ema_update` with the vectors z_e [N, D] assigned to the codes k [N] (residual VQ's
    stages call it with their residuals and choices)."""
    assignment = F.one_hot(k, codebook.shape[0]).to(z_e.dtype)  # [vectors, codes]
    counts = torch.lerp(assignment.sum(0), ema_counts, decay)  # decay·old + (1 − decay)·new
    sums = torch.lerp(assignment.T @ z_e, ema_sums, decay)
    debias = 1.0 - decay ** (ema_step + 1)
    smoothed = laplace_smooth(counts / debias, epsilon)
    moved = (sums / debias) / smoothed[:, None].clamp_min(torch.finfo(smoothed.dtype).tiny)
    return torch.where(smoothed[:, None] > 0, moved, codebook), counts, sums, ema_step + 1


def codebook_health(indices, num_embeddings, like):
    """Usage by bincount, perplexity as exp of the entropy of the usage distribution (in `like`'s dtype)."""
    usage = torch.bincount(indices.flatten(), minlength=num_embeddings)
    perplexity = Categorical(probs=usage.to(like.dtype), validate_args=False).entropy().exp()
    return usage, perplexity, int((usage == 0).sum())


def init_codebook(num_embeddings, embedding_dim, key, like):
    """normal(key, (K, D))[0], cast to the port's dtype and device (`like` is a tensor of both)."""
    return torch.as_tensor(normal(key, (num_embeddings, embedding_dim))[0], dtype=like.dtype, device=like.device)


def reset_dead_codes(codebook, usage, z_e, key):
    dead = torch.nonzero(usage == 0).flatten()
    vectors = z_e.flatten(0, -2)
    rows, new_key = randint(key, vectors.shape[0], (int(dead.numel()),))
    new = codebook.clone()
    new[dead] = vectors[torch.as_tensor(rows, device=z_e.device)]
    return new, new_key


VQ = Bodies()
VQ.add("vq_encode", lambda a: (vq_encode(a["arch"], a["params"], a["x"]),))
VQ.add("quantize", lambda a: quantize(a["z_e"], a["codebook"]))
VQ.add("codebook_loss", lambda a: (codebook_loss(a["z_e"], a["codebook"]),))
VQ.add("commitment_loss", lambda a: (commitment_loss(a["z_e"], a["codebook"]),))
VQ.add("vq_forward", lambda a: vq_forward(a["arch"], a["params"], a["codebook"], a["x"]))
VQ.add("vq_loss", lambda a: (vq_loss(a["arch"], a["params"], a["codebook"], a["x"], a["commitment_weight"],
                                     a["convention"]),))
VQ.add("init_codebook", lambda a: (init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"], a["like"]),))
VQ.add("laplace_smooth", lambda a: (laplace_smooth(a["counts"], a["epsilon"]),))
VQ.add("ema_update", lambda a: ema_update(a["codebook"], a["ema_counts"], a["ema_sums"], a["ema_step"], a["z_e"],
                                          a["decay"], a["epsilon"], a["training"]))
VQ.add("codebook_health", lambda a: codebook_health(a["indices"], a["num_embeddings"], a["like"]))
VQ.add("reset_dead_codes", lambda a: reset_dead_codes(a["codebook"], a["usage"], a["z_e"], a["key"]))
