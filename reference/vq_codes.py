"""What the VQ-VAE's functions share (`vq` and `vq_network`): the code choice, the scatter-add onto
codebook rows, the auxiliary losses' value and gradient, and Laplace smoothing, all on checked arrays.

    distances(z_e, C)      d[b, k] = Σ_d (z_e[b, d] − e_k[d])²   (direct differences, never the expanded form)
    rows(z_e)              z_e [B, *P, D] as its N = B·∏P vectors [N, D]; every function below treats each alike
    choose(z_e, C, idx)    the given indices (validated), else k(b) = argmin_k d[b, k] (lowest on exact ties)
    scatter(C, k, rows)    C̄_k = Σ_{b: k(b) = k} rows[b]
    aux(z_e, C, k)         mean_{b,d} (z_e − e_k)²;  aux_gradient: ȳ · 2/(B·D) · (z_e − e_k)
    laplace(N, ε)          (N + ε)/(ΣN + Kε) · ΣN
"""

from __future__ import annotations

import numpy as np

from vaespec.spec.errors import DomainError
from vaespec.spec.shapes import POSITIONS, bind_shape, check_array

# Rows of z_e per block of the distance computation: bounds the [rows, K, D] temporary at ~32 MB.
_BLOCK_ELEMENTS = 4_000_000


def distances(z_e: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """d[b, k] on checked arrays, refused (DomainError) if a distance overflows."""
    blocks = []
    rows = max(1, _BLOCK_ELEMENTS // max(1, codebook.size))
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, z_e.shape[0], rows):
            diff = z_e[start:start + rows, None, :] - codebook[None, :, :]
            blocks.append((diff * diff).sum(axis=2))
    d = np.concatenate(blocks, axis=0)
    if not np.all(np.isfinite(d)):  # an argmin over Inf would pick a code silently (vq_forward's z_e is computed)
        raise DomainError(f"z_e (given, or vq_encode(x) from x and params): the squared distances to the codebook "
                          f"overflow float64 (max |z_e| = "
                          f"{float(np.abs(z_e).max()):.6g}, max |codebook| = {float(np.abs(codebook).max()):.6g}), "
                          f"so the inputs lie outside the VQ functions' float64 domain (spec/domains.py)")
    return d


def rows(z_e: np.ndarray) -> np.ndarray:
    """z_e [batch, *positions, D] as its N = batch·∏positions vectors [N, D] (a view; the identity for [B, D])."""
    return z_e.reshape(-1, z_e.shape[-1])


def choose(z_e: np.ndarray, codebook: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
    """The given `indices` [batch, *positions] (validated against z_e's leading axes and the codebook's K), else
    the nearest code of every vector of z_e [batch, *positions, D]."""
    if indices is None:
        nearest = np.argmin(distances(rows(z_e), codebook), axis=1).astype(np.int64)  # first minimum on ties
        return nearest.reshape(z_e.shape[:-1])
    k = codebook.shape[0]
    check_array("indices", indices, ("batch", POSITIONS), bind_shape(("batch", POSITIONS), z_e.shape[:-1]),
                kind="int")
    if indices.min() < 0 or indices.max() >= k:
        raise DomainError(f"indices: expected integers in [0, {k}) (codebook rows), got values in "
                          f"[{indices.min()}, {indices.max()}]")
    return indices.astype(np.int64)


def scatter(codebook: np.ndarray, k: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """C̄ with C̄_k = Σ_{b: k(b) = k} rows[b] (k [B, *P] and rows [B, *P, D] alike)."""
    out = np.zeros_like(codebook, dtype=np.float64)
    np.add.at(out, k, rows)
    return out


def aux(z_e, codebook, k):
    """mean_{b,d} (z_e − e_k)² over all N·D entries: the value of both auxiliary losses."""
    diff = z_e - codebook[k]
    return np.asarray(np.mean(diff * diff))


def aux_gradient(z_e, codebook, k, d_loss):
    """g · ȳ: d/d z_e of d_loss · mean_{b,d} (z_e − e_k)² (2/(N·D): z_e.size counts every entry)."""
    return d_loss * (2.0 / z_e.size) * (z_e - codebook[k])


def laplace(counts, epsilon):
    """Ñ on checked arrays."""
    total = counts.sum()
    return (counts + epsilon) / (total + counts.shape[0] * epsilon) * total
