"""The VQ-VAE chapter in float64 NumPy (VJPs in vq_gradients.py, error magnitudes in vq_magnitude.py).

The executable form of `vaespec.spec.vq`. Notation: `z_e` [B, D], codebook C [K, D] with rows
e_k, `k(b) = argmin_k ‖z_e[b] − e_k‖²` (lowest index on exact ties), `z_q[b] = e_{k(b)}`:

    squared_distances    d[b, k] = Σ_d (z_e[b, d] − e_k[d])²       (direct differences)
    quantize             (z_q, k) = (C[k], k)                       (exactly the rows: no rounding)
    codebook_loss        mean_{b,d} (sg(z_e) − e_k)²
    commitment_loss      mean_{b,d} (z_e − sg(e_k))²
    vq_encode(x)         act(…act(x·W₀ + b₀)…)·W_emb + b_emb
    vq_forward(x)        (decode(C[k]), k),  k = nearest codes of vq_encode(x)
    vq_loss              R(x̂, x) + codebook_loss + w · commitment_loss
    laplace_smooth       Ñ = (N + ε)/(ΣN + Kε) · ΣN
    ema_update           sonnet's VectorQuantizerEMA step (debiased, Laplace-smoothed)
    codebook_health      usage, perplexity exp(−Σ p log p), dead codes
    reset_dead_codes     dead rows ← z_e[randint(key, B, (#dead,))]

**Conditioning on choices.** The discrete index is the one place a correct backend may
differ from the reference (the spec's near-tie criterion), so every function that picks
codes takes a keyword `indices`: given, the reference is evaluated at those choices
instead of its own argmin (validated: integers in [0, K), shape [B]). It is not a
contract argument; backends are called without it.

Every public function validates its inputs with the contract's `validate_args` and raises
a vaespec error naming the argument.
"""

from __future__ import annotations

import numpy as np
from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.contract import validate_args
from vaespec.spec.conventions import Convention
from vaespec.spec.errors import DomainError
from vaespec.spec.init import init_codebook
from vaespec.spec.keys import Key, randint
from vaespec.spec.shapes import Float, Int, check_array
from vaespec.spec.vq import DEFAULT_COMMITMENT_WEIGHT, DEFAULT_DECAY, DEFAULT_EPSILON

from . import mlp, vae
from .activations import get_activation

# Single dimensions are written " batch" (leading space, jaxtyping's advice) so linters do not read a name.
# Rows of z_e per block of the distance computation: bounds the [rows, K, D] temporary at ~32 MB.
_BLOCK_ELEMENTS = 4_000_000


# ----------------------------------------------------------------------------- choices
def _distances(z_e, codebook):
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


def _nearest(z_e, codebook):
    return np.argmin(_distances(z_e, codebook), axis=1).astype(np.int64)  # argmin: first minimum on ties


def _choose(z_e, codebook, indices):
    """The given `indices` (validated against z_e's batch and the codebook's K), else the nearest codes."""
    if indices is None:
        return _nearest(z_e, codebook)
    k = codebook.shape[0]
    check_array("indices", indices, ("batch",), {"batch": z_e.shape[0]}, kind="int")
    if indices.min() < 0 or indices.max() >= k:
        raise DomainError(f"indices: expected integers in [0, {k}) (codebook rows), got values in "
                          f"[{indices.min()}, {indices.max()}]")
    return indices.astype(np.int64)


def squared_distances(z_e: Float[np.ndarray, "batch embedding"], codebook: Float[np.ndarray, "codes embedding"]
                      ) -> Float[np.ndarray, "batch codes"]:
    """`d[b, k] = Σ_d (z_e[b, d] − e_k[d])²` by direct float64 differences.

    Never the expanded form ‖z‖² − 2 z·e + ‖e‖², which cancels when z and e are close and large.

    **Arguments** `z_e` [B, D], `codebook` [K, D] (finite, K ≥ 1).
    **Returns** float64 [B, K].
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    return _distances(a["z_e"], a["codebook"])


def nearest_code(z_e: Float[np.ndarray, "batch embedding"], codebook: Float[np.ndarray, "codes embedding"]
                 ) -> Int[np.ndarray, " batch"]:
    """`k(b) = argmin_k ‖z_e[b] − e_k‖²`, exact ties to the lowest index.

    **Arguments** `z_e` [B, D], `codebook` [K, D].
    **Returns** int64 [B].
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    return _nearest(a["z_e"], a["codebook"])


# ----------------------------------------------------------------------------- network
def _vq_encode(arch, params, x):
    act = get_activation(arch.activation)
    h, _ = mlp.hidden_forward(params, [n for n, _, _ in arch.encoder_layers()], act, x)
    return mlp.dense(params, "encoder_to_embedding", h)


def vq_encode(arch: VQArchitecture, params, x: Float[np.ndarray, "batch input"]
              ) -> Float[np.ndarray, "batch embedding"]:
    """Encoder: `z_e = act(…act(x·W₀ + b₀)…)·W_emb + b_emb` (`encoder_to_embedding` is linear).

    **Arguments** `arch` (a `VQArchitecture`), `params` (at least the encoder's layout), `x` [B, input].
    **Returns** `z_e` float64 [B, embedding].
    """
    a = validate_args("vq_encode", {"arch": arch, "params": params, "x": x})
    return vae._finite("vq_encode", _vq_encode(arch, a["params"], a["x"]))


def quantize(z_e: Float[np.ndarray, "batch embedding"], codebook: Float[np.ndarray, "codes embedding"], *,
             indices=None) -> tuple[Float[np.ndarray, "batch embedding"], Int[np.ndarray, " batch"]]:
    """`(z_q, k)` with `k(b) = argmin_k ‖z_e[b] − e_k‖²` (lowest index on ties) and `z_q = C[k]`.

    The value of the straight-through `z_e + sg(e_k − z_e)` is e_k; the reference returns the row
    exactly (a backend's value differs by its rounding of the sum). Gradient: `vq_gradients`.

    **Arguments** `z_e` [B, D], `codebook` [K, D]; `indices` (keyword, int [B]): use these codes.
    **Returns** `(z_q` float64 [B, D], `indices` int64 [B]).
    """
    a = validate_args("quantize", {"z_e": z_e, "codebook": codebook})
    z_e, codebook = a["z_e"], a["codebook"]
    k = _choose(z_e, codebook, indices)
    return codebook[k], k  # fancy indexing copies


def _aux(z_e, codebook, k):
    diff = z_e - codebook[k]
    return np.asarray(np.mean(diff * diff))


def codebook_loss(z_e: Float[np.ndarray, "batch embedding"], codebook: Float[np.ndarray, "codes embedding"], *,
                  indices=None) -> Float[np.ndarray, ""]:
    """`L_cb = mean_{b,d} (sg(z_e) − e_{k(b)})²`: the value of the squared error, gradient to the codebook only.

    **Arguments** `z_e` [B, D], `codebook` [K, D]; `indices` (keyword, int [B]): use these codes.
    **Returns** a float64 0-d array.
    """
    a = validate_args("codebook_loss", {"z_e": z_e, "codebook": codebook})
    z_e, codebook = a["z_e"], a["codebook"]
    return vae._finite("codebook_loss", _aux(z_e, codebook, _choose(z_e, codebook, indices)))


def commitment_loss(z_e: Float[np.ndarray, "batch embedding"], codebook: Float[np.ndarray, "codes embedding"], *,
                    indices=None) -> Float[np.ndarray, ""]:
    """`L_commit = mean_{b,d} (z_e − sg(e_{k(b)}))²`: the same value as `codebook_loss`, gradient to z_e only.

    **Arguments** `z_e` [B, D], `codebook` [K, D]; `indices` (keyword, int [B]): use these codes.
    **Returns** a float64 0-d array.
    """
    a = validate_args("commitment_loss", {"z_e": z_e, "codebook": codebook})
    z_e, codebook = a["z_e"], a["codebook"]
    return vae._finite("commitment_loss", _aux(z_e, codebook, _choose(z_e, codebook, indices)))


def _forward(arch, params, codebook, x, indices):
    """(x̂, k, z_e) of vq_forward."""
    z_e = _vq_encode(arch, params, x)
    k = _choose(z_e, codebook, indices)
    return vae._decode(arch, params, codebook[k])[0], k, z_e


def vq_forward(arch: VQArchitecture, params, codebook: Float[np.ndarray, "codes embedding"],
               x: Float[np.ndarray, "batch input"], *, indices=None
               ) -> tuple[Float[np.ndarray, "batch output"], Int[np.ndarray, " batch"]]:
    """`vq_forward(x) = (decode(C[k]), k)`, k the nearest codes of `z_e = vq_encode(x)`.

    `decode` is the VAE chapter's decoder (`latent_size` = `embedding_dim`).

    **Arguments** `arch`, `params` (the whole layout), `codebook` [K, D] (K = arch.num_embeddings),
    `x` [B, input]; `indices` (keyword, int [B]): use these codes.
    **Returns** `(x̂` float64 [B, output], `indices` int64 [B]).
    """
    a = validate_args("vq_forward", {"arch": arch, "params": params, "codebook": codebook, "x": x})
    x_hat, k, _ = _forward(arch, a["params"], a["codebook"], a["x"], indices)
    return vae._finite("vq_forward", (x_hat, k))


def vq_loss(arch: VQArchitecture, params, codebook: Float[np.ndarray, "codes embedding"],
            x: Float[np.ndarray, "batch input"], commitment_weight: float = DEFAULT_COMMITMENT_WEIGHT,
            convention: Convention | str | None = None, *, indices=None) -> Float[np.ndarray, ""]:
    """`loss = R(x̂, x) + L_cb(z_e, C) + w · L_commit(z_e, C)`, `(x̂, k) = vq_forward(x)`, `z_e = vq_encode(x)`.

    `R` is the VAE's `reconstruction_loss` under `convention`; the auxiliary losses are means
    over B × D whatever the convention.

    **Arguments** `arch`, `params`, `codebook`, `x` as `vq_forward`; `commitment_weight` w ≥ 0;
    `convention` a preset name or `Convention`; `indices` (keyword, int [B]): use these codes.
    **Returns** a float64 0-d array.
    """
    checked = validate_args("vq_loss", {"arch": arch, "params": params, "codebook": codebook, "x": x,
                                        "commitment_weight": commitment_weight, "convention": convention})
    params, codebook, x = checked["params"], checked["codebook"], checked["x"]
    x_hat, k, z_e = _forward(arch, params, codebook, x, indices)
    aux = _aux(z_e, codebook, k)
    return vae._finite("vq_loss", np.asarray(vae._reconstruction(x_hat, x, checked["convention"]) + aux
                                             + checked["commitment_weight"] * aux))


# ----------------------------------------------------------------------------- EMA codebook
def _laplace(counts, epsilon):
    total = counts.sum()
    return (counts + epsilon) / (total + counts.shape[0] * epsilon) * total


def laplace_smooth(counts: Float[np.ndarray, " codes"], epsilon: float) -> Float[np.ndarray, " codes"]:
    """`Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j`: every count > 0 when ε > 0, the total kept.

    **Arguments** `counts` [K] (≥ 0, positive total), `epsilon` ε ≥ 0.
    **Returns** float64 [K].
    """
    checked = validate_args("laplace_smooth", {"counts": counts, "epsilon": epsilon})
    return vae._finite("laplace_smooth", _laplace(checked["counts"], checked["epsilon"]))


def ema_update(codebook: Float[np.ndarray, "codes embedding"], ema_counts: Float[np.ndarray, " codes"],
               ema_sums: Float[np.ndarray, "codes embedding"], ema_step: int, z_e: Float[np.ndarray, "batch embedding"],
               decay: float = DEFAULT_DECAY, epsilon: float = DEFAULT_EPSILON, training: bool = True, *, indices=None):
    """One EMA codebook step (sonnet's `VectorQuantizerEMA`; γ = decay, t = step + 1):

        n_k = #{b: k(b) = k},  s_k = Σ_{b: k(b) = k} z_e[b]
        counts′ = γ·counts + (1 − γ)·n,   sums′ = γ·sums + (1 − γ)·s       (biased averages, stored)
        N̂ = counts′ / (1 − γᵗ),  Ŝ = sums′ / (1 − γᵗ)                       (debiased)
        Ñ = laplace_smooth(N̂, ε),  e′_k = Ŝ_k / Ñ_k where Ñ_k > 0, else e_k

    With `training=False` nothing changes: copies of the inputs and the same step.

    **Arguments** `codebook` [K, D]; `ema_counts` [K] (≥ 0); `ema_sums` [K, D]; `ema_step` (integer ≥ 0,
    updates so far); `z_e` [B, D]; `decay` in [0, 1); `epsilon` ≥ 0; `training` a bool;
    `indices` (keyword, int [B]): assign z_e to these codes instead of the nearest.
    **Returns** `(codebook′, ema_counts′, ema_sums′, ema_step′)`: new float64 arrays and an int.
    The inputs are never modified.
    """
    checked = validate_args("ema_update", {"codebook": codebook, "ema_counts": ema_counts, "ema_sums": ema_sums,
                                           "ema_step": ema_step, "z_e": z_e, "decay": decay, "epsilon": epsilon,
                                           "training": training})
    codebook, ema_counts, ema_sums, z_e = (checked[k] for k in ("codebook", "ema_counts", "ema_sums", "z_e"))
    k = _choose(z_e, codebook, indices)  # validated in eval mode too: the same inputs are refused either way
    step, gamma, eps = checked["ema_step"], checked["decay"], checked["epsilon"]
    if not checked["training"]:
        return codebook.copy(), ema_counts.copy(), ema_sums.copy(), step
    codes = codebook.shape[0]
    n = np.bincount(k, minlength=codes).astype(np.float64)
    s = np.zeros_like(codebook)
    np.add.at(s, k, z_e)
    counts = gamma * ema_counts + (1.0 - gamma) * n
    sums = gamma * ema_sums + (1.0 - gamma) * s
    debias = 1.0 - gamma ** (step + 1)
    smoothed = _laplace(counts / debias, eps)  # Σ counts′ ≥ (1 − γ)·B > 0: the smoothing is defined
    used = smoothed > 0
    new = codebook.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = (sums[used] / debias) / smoothed[used, None]
    return vae._finite("ema_update", (new, counts, sums, step + 1))


# ----------------------------------------------------------------------------- codebook health
def codebook_health(indices: Int[np.ndarray, " batch"], num_embeddings: int):
    """`usage_k = #{b: k(b) = k}`, `perplexity = exp(−Σ_k p_k log p_k)` with `p = usage / B` (0 log 0 = 0),
    `dead_codes = #{k: usage_k = 0}`.

    **Arguments** `indices` int [B] in [0, K); `num_embeddings` K ≥ 1.
    **Returns** `(usage` int64 [K], `perplexity` float64 0-d array in [1, K], `dead_codes` int).
    """
    checked = validate_args("codebook_health", {"indices": indices, "num_embeddings": num_embeddings})
    indices = checked["indices"]
    usage = np.bincount(indices.astype(np.int64), minlength=checked["num_embeddings"]).astype(np.int64)
    p = usage[usage > 0] / indices.shape[0]
    return usage, np.asarray(np.exp(-np.sum(p * np.log(p)))), int(np.sum(usage == 0))


def reset_dead_codes(codebook: Float[np.ndarray, "codes embedding"], usage: Int[np.ndarray, " codes"],
                     z_e: Float[np.ndarray, "batch embedding"], key: Key | int):
    """Dead rows (usage 0), in increasing index order, become `z_e[j₀], z_e[j₁], …` with
    `(j, key′) = randint(key, B, (#dead,))`; live rows are unchanged.

    The draw happens even when no row is dead (shape (0,)), so the key always advances by one
    `randint`: the returned key does not depend on how many codes were dead.

    **Arguments** `codebook` [K, D]; `usage` int [K] (≥ 0, e.g. `codebook_health`'s); `z_e` [B, D];
    `key` a `Key` or an integer seed.
    **Returns** `(codebook′` a new float64 [K, D], `key′` a `Key`).
    """
    checked = validate_args("reset_dead_codes", {"codebook": codebook, "usage": usage, "z_e": z_e, "key": key})
    codebook, usage, z_e = checked["codebook"], checked["usage"], checked["z_e"]
    dead = np.flatnonzero(usage == 0)
    j, new_key = randint(checked["key"], z_e.shape[0], (dead.size,))
    new = codebook.copy()
    new[dead] = z_e[j]
    return new, new_key


# ----------------------------------------------------------------------------- backend
class VQReferenceMethods:
    """The VQ chapter's functions as `VQBackend` methods (mixed into `ReferenceBackend`)."""

    vq_encode = staticmethod(vq_encode)
    quantize = staticmethod(quantize)
    codebook_loss = staticmethod(codebook_loss)
    commitment_loss = staticmethod(commitment_loss)
    vq_forward = staticmethod(vq_forward)
    vq_loss = staticmethod(vq_loss)
    init_codebook = staticmethod(init_codebook)
    laplace_smooth = staticmethod(laplace_smooth)
    ema_update = staticmethod(ema_update)
    codebook_health = staticmethod(codebook_health)
    reset_dead_codes = staticmethod(reset_dead_codes)
