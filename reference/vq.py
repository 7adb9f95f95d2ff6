"""The VQ-VAE's quantizer and codebook in float64: each function's forward, VJP, magnitude and VJP
magnitude side by side (the network functions vq_encode, vq_forward and vq_loss: `vq_network`).

The executable form of `vaespec.spec.vq`. Notation: `z_e` [B, *P, D] (channels-last; P = () for
[B, D]), read as its N = B·∏P vectors (`vq_codes.rows`), codebook C [K, D] with rows e_k,
`k(b) = argmin_k ‖z_e[b] − e_k‖²` (lowest index on exact ties) for each vector b, indices [B, *P],
`z_q[b] = e_{k(b)}`, `g = 2/(N·D) · (z_e − e_k)` the derivative of mean_{b,d} (z_e − e_k)² in z_e:

    function          value                                   VJP (the spec's stop-gradients)
    squared_distances d[b, k] = Σ_d (z_e[b, d] − e_k[d])²      (direct differences; not a contract function)
    quantize          (z_q, k) = (C[k], k), exactly the rows     z̄_e = z̄_q (straight-through), C̄ = 0
    codebook_loss     mean_{b,d} (sg(z_e) − e_k)²                z̄_e = 0, C̄_k = −ȳ Σ_{b: k(b) = k} g[b]
    commitment_loss   mean_{b,d} (z_e − sg(e_k))²                z̄_e = ȳ g, C̄ = 0
    laplace_smooth    Ñ = (N + ε)/(ΣN + Kε) · ΣN
    ema_update        sonnet's VectorQuantizerEMA step (debiased, Laplace-smoothed)
    codebook_health   usage, perplexity exp(−Σ p log p), dead codes
    init_codebook     the spec's deterministic initialisation (`vaespec.spec.init`)
    reset_dead_codes  dead rows ← Z[randint(key, N, (#dead,))], Z = z_e.reshape(N, D)

Magnitudes (integer outputs, keys: 0): quantize |z_e| + |e_k| (the straight-through sum
z_e + (e_k − z_e) rounds at that size); the auxiliary losses mean (|z_e| + |e_k|)², their
gradient 2/(N·D)·(|z_e| + |e_k|); laplace_smooth the value itself (every operand is ≥ 0);
ema_update counts′ (≥ 0), γ|sums| + (1−γ)·Σ|z_e|, e′ that over (1 − γᵗ)·Ñ and |e| for kept rows;
codebook_health perplexity · (H + 2), H the entropy (each p log p errs at |p log p| + p, exp adds
1); init_codebook and reset_dead_codes |the returned codebook| (rows are copied, never computed).

**EMA debiasing.** 1 − γᵗ cancels for γ near 1 (condition (1 + γᵗ)/(1 − γᵗ)), but Ŝ and N̂ are
divided by the same computed value, so its error cancels in e′ = Ŝ/Ñ up to the ε-smoothing's
share K·ε/(ΣN̂ + K·ε) of Ñ; the magnitudes therefore carry no condition factor.

**Conditioning on choices.** The discrete index is the one place a correct backend may differ
from the reference (the spec's near-tie criterion), so every function that picks codes takes a
keyword `indices` (and its VJP and magnitudes an `args["indices"]`): given, the reference is
evaluated at those choices instead of its own argmin (validated: integers in [0, K), shape [B, *P]).
It is not a contract argument; backends are called without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import validate_args, validate_vjp
from vaespec.spec.init import init_codebook
from vaespec.spec.keys import Key, randint
from vaespec.spec.shapes import Float, Int
from vaespec.spec.vq import DEFAULT_DECAY, DEFAULT_EPSILON

from .boundary import finite, finite_gradients
from .function import ReferenceFunction
from .vq_codes import aux, aux_gradient, choose, distances, laplace, rows, scatter

# Single dimensions are written " batch" (leading space, jaxtyping's advice) so linters do not read a name.

# ----------------------------------------------------------------------------- choices
def squared_distances(z_e: Float[np.ndarray, "batch *positions embedding"],
                      codebook: Float[np.ndarray, "codes embedding"]) -> Float[np.ndarray, "batch *positions codes"]:
    """`d[b, k] = Σ_d (z_e[b, d] − e_k[d])²` by direct float64 differences.

    Never the expanded form ‖z‖² − 2 z·e + ‖e‖², which cancels when z and e are close and large.

    **Arguments** `z_e` [B, *P, D], `codebook` [K, D] (finite, K ≥ 1).
    **Returns** float64 [B, *P, K].
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    z, c = a["z_e"], a["codebook"]
    return distances(rows(z), c).reshape(*z.shape[:-1], c.shape[0])


def nearest_code(z_e: Float[np.ndarray, "batch *positions embedding"], codebook: Float[np.ndarray, "codes embedding"]
                 ) -> Int[np.ndarray, " batch *positions"]:
    """`k(b) = argmin_k ‖z_e[b] − e_k‖²`, exact ties to the lowest index.

    **Arguments** `z_e` [B, *P, D], `codebook` [K, D].
    **Returns** int64 [B, *P].
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    return choose(a["z_e"], a["codebook"], None)


# ----------------------------------------------------------------------------- quantize
def quantize(z_e: Float[np.ndarray, "batch *positions embedding"], codebook: Float[np.ndarray, "codes embedding"], *,
             indices: np.ndarray | None = None
             ) -> tuple[Float[np.ndarray, "batch *positions embedding"], Int[np.ndarray, " batch *positions"]]:
    """`(z_q, k)` with `k(b) = argmin_k ‖z_e[b] − e_k‖²` (lowest index on ties) and `z_q = C[k]`.

    The value of the straight-through `z_e + sg(e_k − z_e)` is e_k; the reference returns the row
    exactly (a backend's value differs by its rounding of the sum).

    **Arguments** `z_e` [B, *P, D], `codebook` [K, D]; `indices` (keyword, int [B, *P]): use these codes.
    **Returns** `(z_q` float64 [B, *P, D], `indices` int64 [B, *P]).
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    z_e, codebook = a["z_e"], a["codebook"]
    k = choose(z_e, codebook, indices)
    return codebook[k], k  # fancy indexing copies


def quantize_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """Straight-through: `{"z_e": z̄_q, "codebook": 0}` for the cotangent z̄_q [B, embedding]."""
    a, (d_z_q,) = validate_vjp("quantize", args, cotangent)
    z_e, codebook = a["z_e"], a["codebook"]
    choose(z_e, codebook, a.get("indices"))  # the value does not depend on it; bad indices are still named
    return {"z_e": np.array(d_z_q, dtype=np.float64), "codebook": np.zeros_like(codebook, dtype=np.float64)}


def quantize_magnitude(args):
    """`(|z_e| + |e_k|, 0)`."""
    a = validate_args("quantize", args)
    z_e, codebook = a["z_e"], a["codebook"]
    k = choose(z_e, codebook, a.get("indices"))
    return np.abs(z_e) + np.abs(codebook[k]), np.zeros(k.shape)


def quantize_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"z_e": |z̄_q|, "codebook": 0}`: the straight-through copy is exact."""
    a, (ct,) = validate_vjp("quantize", args, cotangent)
    z_e, codebook = a["z_e"], a["codebook"]
    choose(z_e, codebook, a.get("indices"))
    return {"z_e": np.abs(np.asarray(ct, dtype=np.float64)) * np.ones_like(z_e),
            "codebook": np.zeros_like(codebook, dtype=np.float64)}


QUANTIZE = ReferenceFunction("quantize", quantize, quantize_magnitude, quantize_vjp, quantize_vjp_magnitude)


# ----------------------------------------------------------------------------- the auxiliary losses
def _aux_forward(function, z_e, codebook, indices):
    a = validate_args(function, {"z_e": z_e, "codebook": codebook})
    z_e, codebook = a["z_e"], a["codebook"]
    return finite(function, aux(z_e, codebook, choose(z_e, codebook, indices)))


def _aux_vjp(function, args, cotangent):
    """(z_e, C, k, g·ȳ) of an auxiliary loss's VJP."""
    a, (d_loss,) = validate_vjp(function, args, cotangent)
    z_e, codebook = a["z_e"], a["codebook"]
    k = choose(z_e, codebook, a.get("indices"))
    return z_e, codebook, k, aux_gradient(z_e, codebook, k, d_loss)


def _aux_magnitude(function, args):
    a = validate_args(function, args)
    z_e, codebook = a["z_e"], a["codebook"]
    m = np.abs(z_e) + np.abs(codebook[choose(z_e, codebook, a.get("indices"))])
    return np.asarray(np.mean(m * m))


def _aux_vjp_magnitude(function, args, cotangent):
    """(z_e, C, k, |ȳ| · 2/(N·D) · (|z_e| + |e_k|))."""
    a, (ct,) = validate_vjp(function, args, cotangent)
    z_e, codebook = a["z_e"], a["codebook"]
    k = choose(z_e, codebook, a.get("indices"))
    return z_e, codebook, k, (np.abs(np.asarray(ct, dtype=np.float64)) * (2.0 / z_e.size)
                              * (np.abs(z_e) + np.abs(codebook[k])))


def codebook_loss(z_e: Float[np.ndarray, "batch *positions embedding"],
                  codebook: Float[np.ndarray, "codes embedding"], *,
                  indices: np.ndarray | None = None) -> Float[np.ndarray, ""]:
    """`L_cb = mean_{b,d} (sg(z_e) − e_{k(b)})²`: the value of the squared error, gradient to the codebook only.

    **Arguments** `z_e` [B, *P, D], `codebook` [K, D]; `indices` (keyword, int [B, *P]): use these codes.
    **Returns** a float64 0-d array.
    """
    return _aux_forward("codebook_loss", z_e, codebook, indices)


def codebook_loss_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"z_e": 0, "codebook": −Σ_{b: k(b)=k} ȳ · 2/(N·D) · (z_e[b] − e_k)}` (z_e is stopped)."""
    z_e, codebook, k, g = _aux_vjp("codebook_loss", args, cotangent)
    return finite_gradients("codebook_loss", {"z_e": np.zeros_like(z_e, dtype=np.float64),
                                              "codebook": scatter(codebook, k, -g)})


def codebook_loss_magnitude(args):
    return _aux_magnitude("codebook_loss", args)


def codebook_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    z_e, codebook, k, g = _aux_vjp_magnitude("codebook_loss", args, cotangent)
    return {"z_e": np.zeros_like(z_e, dtype=np.float64), "codebook": scatter(codebook, k, g)}


CODEBOOK_LOSS = ReferenceFunction("codebook_loss", codebook_loss, codebook_loss_magnitude, codebook_loss_vjp,
                                  codebook_loss_vjp_magnitude)


def commitment_loss(z_e: Float[np.ndarray, "batch *positions embedding"],
                    codebook: Float[np.ndarray, "codes embedding"], *,
                    indices: np.ndarray | None = None) -> Float[np.ndarray, ""]:
    """`L_commit = mean_{b,d} (z_e − sg(e_{k(b)}))²`: the same value as `codebook_loss`, gradient to z_e only.

    **Arguments** `z_e` [B, *P, D], `codebook` [K, D]; `indices` (keyword, int [B, *P]): use these codes.
    **Returns** a float64 0-d array.
    """
    return _aux_forward("commitment_loss", z_e, codebook, indices)


def commitment_loss_vjp(args: Mapping[str, Any], cotangent: object) -> dict:
    """`{"z_e": ȳ · 2/(N·D) · (z_e − e_k), "codebook": 0}` (the codebook is stopped)."""
    _, codebook, _, g = _aux_vjp("commitment_loss", args, cotangent)
    return finite_gradients("commitment_loss", {"z_e": g, "codebook": np.zeros_like(codebook, dtype=np.float64)})


def commitment_loss_magnitude(args):
    return _aux_magnitude("commitment_loss", args)


def commitment_loss_vjp_magnitude(args: Mapping[str, Any], cotangent: object) -> dict:
    _, codebook, _, g = _aux_vjp_magnitude("commitment_loss", args, cotangent)
    return {"z_e": g, "codebook": np.zeros_like(codebook, dtype=np.float64)}


COMMITMENT_LOSS = ReferenceFunction("commitment_loss", commitment_loss, commitment_loss_magnitude,
                                    commitment_loss_vjp, commitment_loss_vjp_magnitude)


# ----------------------------------------------------------------------------- EMA codebook
def laplace_smooth(counts: Float[np.ndarray, " codes"], epsilon: float) -> Float[np.ndarray, " codes"]:
    """`Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j`: every count > 0 when ε > 0, the total kept.

    **Arguments** `counts` [K] (≥ 0, positive total), `epsilon` ε ≥ 0.
    **Returns** float64 [K].
    """
    checked = validate_args("laplace_smooth", {"counts": counts, "epsilon": epsilon})
    return finite("laplace_smooth", laplace(checked["counts"], checked["epsilon"]))


def laplace_smooth_magnitude(args):
    a = validate_args("laplace_smooth", args)
    return laplace(np.abs(a["counts"]), float(a["epsilon"]))


LAPLACE_SMOOTH = ReferenceFunction("laplace_smooth", laplace_smooth, laplace_smooth_magnitude)


def _batch_statistics(k: np.ndarray, z_e: np.ndarray, codes: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, s): n_k = #{b: k(b) = k}, s_k = Σ_{b: k(b) = k} z_e[b] over every position b of the batch (k [B, *P],
    z_e [B, *P, D], float64). Validated by the caller; laws.variants reads it through ema_update at γ = 0."""
    n = np.bincount(k.ravel(), minlength=codes).astype(np.float64)
    s = np.zeros((codes, z_e.shape[-1]), dtype=np.float64)
    np.add.at(s, k, z_e)
    return n, s


def ema_update(codebook: Float[np.ndarray, "codes embedding"], ema_counts: Float[np.ndarray, " codes"],
               ema_sums: Float[np.ndarray, "codes embedding"], ema_step: int,
               z_e: Float[np.ndarray, "batch *positions embedding"],
               decay: float = DEFAULT_DECAY, epsilon: float = DEFAULT_EPSILON, training: bool = True, *,
               indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One EMA codebook step (sonnet's `VectorQuantizerEMA`; γ = decay, t = step + 1):

        n_k = #{b: k(b) = k},  s_k = Σ_{b: k(b) = k} z_e[b]
        counts′ = γ·counts + (1 − γ)·n,   sums′ = γ·sums + (1 − γ)·s       (biased averages, stored)
        N̂ = counts′ / (1 − γᵗ),  Ŝ = sums′ / (1 − γᵗ)                       (debiased)
        Ñ = laplace_smooth(N̂, ε),  e′_k = Ŝ_k / Ñ_k where Ñ_k > 0, else e_k

    With `training=False` nothing changes: copies of the inputs and the same step.

    **Arguments** `codebook` [K, D]; `ema_counts` [K] (≥ 0); `ema_sums` [K, D]; `ema_step` (integer ≥ 0,
    updates so far); `z_e` [B, *P, D]; `decay` in [0, 1); `epsilon` ≥ 0; `training` a bool;
    `indices` (keyword, int [B, *P]): assign z_e to these codes instead of the nearest.
    **Returns** `(codebook′, ema_counts′, ema_sums′, ema_step′)`: new float64 arrays and an int.
    The inputs are never modified.
    """
    checked = validate_args("ema_update", {"codebook": codebook, "ema_counts": ema_counts, "ema_sums": ema_sums,
                                           "ema_step": ema_step, "z_e": z_e, "decay": decay, "epsilon": epsilon,
                                           "training": training})
    codebook, ema_counts, ema_sums, z_e = (checked[k] for k in ("codebook", "ema_counts", "ema_sums", "z_e"))
    k = choose(z_e, codebook, indices)  # validated in eval mode too: the same inputs are refused either way
    step, gamma, eps = checked["ema_step"], checked["decay"], checked["epsilon"]
    if not checked["training"]:
        return codebook.copy(), ema_counts.copy(), ema_sums.copy(), step
    n, s = _batch_statistics(k, z_e, codebook.shape[0])
    counts = gamma * ema_counts + (1.0 - gamma) * n
    sums = gamma * ema_sums + (1.0 - gamma) * s
    debias = 1.0 - gamma ** (step + 1)
    smoothed = laplace(counts / debias, eps)  # Σ counts′ ≥ (1 − γ)·B > 0: the smoothing is defined
    used = smoothed > 0
    new = codebook.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = (sums[used] / debias) / smoothed[used, None]
    return finite("ema_update", (new, counts, sums, step + 1))


def ema_update_magnitude(args):
    """The step redone on |·| (the module docstring's rules); eval mode: the inputs' own sizes."""
    a = validate_args("ema_update", args)
    codebook, counts, sums, z_e = a["codebook"], a["ema_counts"], a["ema_sums"], a["z_e"]
    if not a["training"]:
        return np.abs(codebook), np.abs(counts), np.abs(sums), 0.0
    gamma, t = float(a["decay"]), int(a["ema_step"]) + 1
    k = choose(z_e, codebook, a.get("indices"))
    n, s_abs = _batch_statistics(k, np.abs(z_e), codebook.shape[0])
    m_counts = gamma * np.abs(counts) + (1.0 - gamma) * n
    m_sums = gamma * np.abs(sums) + (1.0 - gamma) * s_abs
    debias = 1.0 - gamma**t
    smoothed = laplace(m_counts / debias, float(a["epsilon"]))
    used = smoothed > 0
    m_codebook = np.abs(codebook).astype(np.float64)
    m_codebook[used] = m_sums[used] / debias / smoothed[used, None]
    return m_codebook, m_counts, m_sums, 0.0


EMA_UPDATE = ReferenceFunction("ema_update", ema_update, ema_update_magnitude)


# ----------------------------------------------------------------------------- codebook health
def codebook_health(indices: Int[np.ndarray, " batch *positions"], num_embeddings: int
                    ) -> tuple[Int[np.ndarray, " codes"], np.ndarray, int]:
    """`usage_k = #{b: k(b) = k}` over all N = B·∏P indices, `perplexity = exp(−Σ_k p_k log p_k)` with
    `p = usage / N` (0 log 0 = 0), `dead_codes = #{k: usage_k = 0}`.

    **Arguments** `indices` int [B, *P] in [0, K); `num_embeddings` K ≥ 1.
    **Returns** `(usage` int64 [K], `perplexity` float64 0-d array in [1, K], `dead_codes` int).
    """
    checked = validate_args("codebook_health", {"indices": indices, "num_embeddings": num_embeddings})
    indices = checked["indices"]
    usage = np.bincount(indices.astype(np.int64).ravel(), minlength=checked["num_embeddings"]).astype(np.int64)
    p = usage[usage > 0] / indices.size
    return usage, np.asarray(np.exp(-np.sum(p * np.log(p)))), int(np.sum(usage == 0))


def codebook_health_magnitude(args):
    a = validate_args("codebook_health", args)
    _, perplexity, _ = codebook_health(a["indices"], a["num_embeddings"])
    return np.zeros(a["num_embeddings"]), perplexity * (np.log(perplexity) + 2.0), 0.0


CODEBOOK_HEALTH = ReferenceFunction("codebook_health", codebook_health, codebook_health_magnitude)


def reset_dead_codes(codebook: Float[np.ndarray, "codes embedding"], usage: Int[np.ndarray, " codes"],
                     z_e: Float[np.ndarray, "batch *positions embedding"], key: Key | int) -> tuple[np.ndarray, Key]:
    """Dead rows (usage 0), in increasing index order, become `Z[j₀], Z[j₁], …` of the N = B·∏P vectors
    `Z = z_e.reshape(N, D)`, with `(j, key′) = randint(key, N, (#dead,))`; live rows are unchanged.

    The draw happens even when no row is dead (shape (0,)), so the key always advances by one
    `randint`: the returned key does not depend on how many codes were dead.

    **Arguments** `codebook` [K, D]; `usage` int [K] (≥ 0, e.g. `codebook_health`'s); `z_e` [B, *P, D];
    `key` a `Key` or an integer seed.
    **Returns** `(codebook′` a new float64 [K, D], `key′` a `Key`).
    """
    checked = validate_args("reset_dead_codes", {"codebook": codebook, "usage": usage, "z_e": z_e, "key": key})
    codebook, usage, z_e = checked["codebook"], checked["usage"], checked["z_e"]
    dead = np.flatnonzero(usage == 0)
    vectors = rows(z_e)
    j, new_key = randint(checked["key"], vectors.shape[0], (dead.size,))
    new = codebook.copy()
    new[dead] = vectors[j]
    return new, new_key


def reset_dead_codes_magnitude(args):
    a = validate_args("reset_dead_codes", args)
    return np.abs(reset_dead_codes(a["codebook"], a["usage"], a["z_e"], a["key"])[0]), 0.0


RESET_DEAD_CODES = ReferenceFunction("reset_dead_codes", reset_dead_codes, reset_dead_codes_magnitude)


# ----------------------------------------------------------------------------- init_codebook
def init_codebook_magnitude(args):
    """|the drawn codebook|: its rows are drawn in float64 and only cast."""
    a = validate_args("init_codebook", args)
    return np.abs(init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"]))


INIT_CODEBOOK = ReferenceFunction("init_codebook", init_codebook, init_codebook_magnitude)

REFERENCE_FUNCTIONS = (QUANTIZE, CODEBOOK_LOSS, COMMITMENT_LOSS, INIT_CODEBOOK, LAPLACE_SMOOTH, EMA_UPDATE,
                       CODEBOOK_HEALTH, RESET_DEAD_CODES)


