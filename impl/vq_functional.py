"""The VQ-VAE's tensor functions in torch: nearest codes, straight-through quantization, the aux losses,
the codebook initialisation, Laplace smoothing and codebook health.

Notation as `vaespec.spec.vq`: `z_e` [batch, *positions, embedding] (channels-last: [B, D], a sequence
[B, T, D], an image [B, H, W, D]; a channels-first [B, D, H, W] tensor is `z_e.movedim(1, -1)`), read as its
N = B·∏positions vectors, `codebook` [codes, embedding] with rows e_k, `k(b) = argmin_k ‖z_e[b] − e_k‖²`
for each vector (lowest index on ties), indices [batch, *positions], `sg` = stop-gradient (`.detach()`).

**Distances** use the expanded form ‖z‖² − 2 z·e + ‖e‖²: one matmul, O(B·K) memory, never a
[B, K, D] difference tensor. In float32 it cancels when ‖z‖, ‖e‖ ≫ ‖z − e‖; the contract accepts
that within `vaespec.spec.tolerances.distance_bound` (the near-tie criterion). bfloat16/float16
inputs are upcast to float32 for the distances. On CUDA, float32 matmuls obey torch's TF32 setting:
with TF32 enabled (`torch.set_float32_matmul_precision("high")`) the error exceeds the float32 bound.

**Losses take the codebook and the indices, not z_q.** Edifice documents passing quantize's
straight-through output to its codebook loss, whose gradient then reaches the encoder and never the
codebook. Here `codebook_loss(z_e, codebook, indices)` looks the rows up itself, so the codebook
always receives its gradient.

Each function takes `validate` (default True): shape, dtype, device, index-range and finiteness
checks, which read the data (a CUDA sync). Pass `validate=False` on the training hot path.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from vaespec.spec.conventions import Convention, get_convention
from vaespec.spec.errors import DomainError, DTypeError, ShapeError, describe, show
from vaespec.spec.init import init_codebook as _spec_init_codebook
from vaespec.spec.keys import MAX_DRAW, Key, as_key, randint
from vaespec.spec.shapes import check_scalar
from vaespec.spec.vq import DEFAULT_CODEBOOK_SEED, DEFAULT_COMMITMENT_WEIGHT

from ._checks import check_beta, check_contract_domain, check_tensors
from ._dtypes import torch_device, torch_dtype
from .functional import reconstruction_loss

_Z_E = ("batch", "*positions", "embedding")
_CODEBOOK = ("codes", "embedding")
_OUTPUT = ("batch", "output")


class CodebookHealth(NamedTuple):
    """`usage` int64 [K], `perplexity` 0-d float, `dead_codes` 0-d int64 (all tensors)."""

    usage: Tensor
    perplexity: Tensor
    dead_codes: Tensor


def _check_z_e_codebook(z_e: Tensor, codebook: Tensor) -> None:
    """Shapes, dtypes, devices, finiteness, and the distances' domain (`vaespec.spec.domains`) in the dtype."""
    check_tensors({"z_e": z_e, "codebook": codebook}, {"z_e": _Z_E, "codebook": _CODEBOOK})
    check_contract_domain("quantize", {"z_e": z_e, "codebook": codebook})


def _check_indices(name: str, indices: object, length: tuple[int, ...] | None, high: int,
                   like: Tensor | None = None) -> None:
    """`indices` must be a non-empty int64 tensor of shape `length` (z_e's [batch, *positions]; any
    [batch, *positions] when None) with values in [0, high)."""
    want = "[batch, *positions]" if length is None else str(list(length))
    if not isinstance(indices, Tensor):
        raise DTypeError(f"{name}: expected an int64 torch.Tensor of shape {want}, got {describe(indices)}")
    if indices.dtype != torch.int64 or indices.layout != torch.strided or indices.device.type == "meta":
        raise DTypeError(f"{name}: expected a dense int64 tensor with storage, got {describe(indices)} on "
                         f"{indices.device}")
    if indices.dim() < 1 or indices.numel() == 0 or (length is not None and tuple(indices.shape) != length):
        raise ShapeError(f"{name}: expected a non-empty shape {want}, got {tuple(indices.shape)}")
    if like is not None and indices.device != like.device:
        raise DTypeError(f"{name}: expected a tensor on {like.device} to match the other arguments, "
                         f"got one on {indices.device}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= high):
        raise DomainError(f"{name}: expected integers in [0, {high}), got values in "
                          f"[{int(indices.min())}, {int(indices.max())}]")


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for the narrow dtypes (their distances cancel catastrophically), else the dtype itself."""
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _vectors(z_e: Tensor) -> Tensor:
    """z_e [batch, *positions, D] as its N vectors [N, D] (a view of a contiguous tensor; [B, D] unchanged)."""
    return z_e.reshape(-1, z_e.shape[-1])


def _cross_terms(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """(s, z) with s[b, k] = ‖e_k‖² − 2 z_b·e_k over the N vectors b of z_e, computed by one `addmm`, and
    z = those vectors [N, D] in the accumulation dtype."""
    acc = _accumulation_dtype(z_e.dtype)
    z, c = _vectors(z_e).detach().to(acc), codebook.detach().to(acc)
    return torch.addmm((c * c).sum(1), z, c.T, alpha=-2.0), z


def squared_distances(z_e: Tensor, codebook: Tensor, *, validate: bool = True) -> Tensor:
    """d[b, k] = ‖z_e[b]‖² − 2 z_e[b]·e_k + ‖e_k‖² (the expanded form of ‖z_e[b] − e_k‖²).

    One matmul and two row-norm reductions: time O(B·K·D), memory O(B·K + (B + K)·D).
    Not differentiable (the inputs are detached): distances only choose codes.

    **Arguments**
    - `z_e`: `[batch, *positions, embedding]` encoder outputs (channels-last).
    - `codebook`: `[codes, embedding]`, same dtype and device.
    - `validate`: check shapes, dtypes, devices and finiteness first.

    **Returns** `[batch, *positions, codes]` in float32 for bfloat16/float16 inputs, else in the inputs' dtype.
    """
    if validate:
        _check_z_e_codebook(z_e, codebook)
    cross, z = _cross_terms(z_e, codebook)
    return (cross + (z * z).sum(1, keepdim=True)).reshape(*z_e.shape[:-1], codebook.shape[0])


def nearest_code(z_e: Tensor, codebook: Tensor, *, validate: bool = True) -> Tensor:
    """k(b) = argmin_k ‖z_e[b] − e_k‖², the lowest index on exact ties.

    ‖z_e[b]‖² is the same for every k, so the argmin is taken over ‖e_k‖² − 2 z_e[b]·e_k
    (one rounding fewer than `squared_distances`). `torch.argmin` returns the first minimal index.

    **Arguments** as `squared_distances`.

    **Returns** int64 `[batch, *positions]` on the inputs' device.
    """
    if validate:
        _check_z_e_codebook(z_e, codebook)
    return _cross_terms(z_e, codebook)[0].argmin(1).reshape(z_e.shape[:-1])


def quantize(z_e: Tensor, codebook: Tensor, *, validate: bool = True) -> tuple[Tensor, Tensor]:
    """Nearest-code quantization with the straight-through estimator.

    `z_q = z_e + sg(e_{k(b)} − z_e)`: its value is e_{k(b)} (up to two roundings), the gradient
    of anything w.r.t. z_e through z_q is exactly the upstream gradient, and the codebook gets
    no gradient through this path (it learns from `codebook_loss`, or by EMA).

    **Arguments** as `squared_distances`.

    **Returns** `(z_q [batch, *positions, embedding], indices int64 [batch, *positions])`.
    """
    indices = nearest_code(z_e, codebook, validate=validate)
    rows = gather_rows(codebook.detach(), indices)
    return z_e + (rows - z_e).detach(), indices


def gather_rows(codebook: Tensor, indices: Tensor) -> Tensor:
    """C[indices]: [*indices.shape, embedding] by one `index_select` on the flattened indices (differentiable)."""
    return codebook.index_select(0, indices.reshape(-1)).reshape(*indices.shape, codebook.shape[1])


def _rows(codebook: Tensor, indices: Tensor, z_e: Tensor, validate: bool) -> Tensor:
    if validate:
        _check_z_e_codebook(z_e, codebook)
        _check_indices("indices", indices, tuple(z_e.shape[:-1]), codebook.shape[0], like=z_e)
    return gather_rows(codebook, indices)


def codebook_loss(z_e: Tensor, codebook: Tensor, indices: Tensor, *, validate: bool = True) -> Tensor:
    """L_cb = mean_{b,d} (sg(z_e) − e_{k(b)})²: moves the chosen codebook rows towards the encoder outputs.

    A mean over all N·D entries of z_e (N = batch·∏positions vectors). The gradient reaches the codebook only
    (z_e is detached): d/d e_k = −2/(N·D) Σ_{b: k(b)=k} (z_e[b] − e_k).

    With the chosen codes: not the contract's `codebook_loss(z_e, codebook)`, which chooses k(b) =
    `nearest_code(z_e, codebook)` itself; this takes `indices`, so that a training step chooses once
    (`quantize`) for both auxiliary losses.

    **Arguments**
    - `z_e`: `[batch, *positions, embedding]` encoder outputs (channels-last).
    - `codebook`: `[codes, embedding]` (the trainable codebook, not z_q).
    - `indices`: int64 `[batch, *positions]`, the codes chosen for z_e (from `quantize` or `nearest_code`).
    - `validate`: check shapes, dtypes, devices, index range and finiteness first.

    **Returns** a 0-d tensor.
    """
    rows = _rows(codebook, indices, z_e, validate)  # checked before z_e is touched
    return ((z_e.detach() - rows) ** 2).mean()


def commitment_loss(z_e: Tensor, codebook: Tensor, indices: Tensor, *, validate: bool = True) -> Tensor:
    """L_commit = mean_{b,d} (z_e − sg(e_{k(b)}))²: keeps the encoder outputs near their codes.

    The gradient reaches z_e only: d/d z_e = 2 (z_e − e_{k(b)}) / (N·D).

    With the chosen codes: not the contract's `commitment_loss(z_e, codebook)`, which chooses k(b) itself.

    **Arguments** as `codebook_loss`.

    **Returns** a 0-d tensor (equal in value to `codebook_loss`).
    """
    return ((z_e - _rows(codebook, indices, z_e, validate).detach()) ** 2).mean()


def vq_loss(reconstruction: Tensor, target: Tensor, z_e: Tensor, codebook: Tensor, indices: Tensor,
            commitment_weight: float | Tensor = DEFAULT_COMMITMENT_WEIGHT,
            convention: str | Convention | None = None, *, validate: bool = True) -> Tensor:
    """The VQ-VAE objective: `loss = R(x̂, x) + L_cb(z_e, C) + w · L_commit(z_e, C)`.

    On the network's outputs: not the contract's `vq_loss(arch, params, codebook, x, commitment_weight,
    convention)`, which runs the network (`VQVAE.loss`) and then this.

    **Arguments**
    - `reconstruction`: `[batch, output]` decoder output x̂ (decoded from z_q).
    - `target`: `[batch, output]` observed x.
    - `z_e`, `codebook`, `indices`: as `codebook_loss`.
    - `commitment_weight`: w ≥ 0 (default 0.25, sonnet's; a number or a one-element tensor).
    - `convention`: preset name or `Convention` for the reconstruction term (default "elbo");
      the aux losses are always means over all entries of z_e (batch × positions × embedding).
    - `validate`: check every argument first.

    **Returns** a 0-d tensor.
    """
    if validate:
        check_tensors({"reconstruction": reconstruction, "target": target},
                      {"reconstruction": _OUTPUT, "target": _OUTPUT})
        _rows(codebook, indices, z_e, True)
        if z_e.shape[0] != reconstruction.shape[0]:
            raise ShapeError(f"z_e: expected {reconstruction.shape[0]} rows to match reconstruction, "
                             f"got shape {tuple(z_e.shape)}")
        commitment_weight = check_beta(commitment_weight, "commitment_weight")
        check_contract_domain("reconstruction_loss", {"x_hat": reconstruction, "x": target},
                              get_convention(convention), {"x_hat": "reconstruction", "x": "target"})
    return (reconstruction_loss(reconstruction, target, convention, validate=False)
            + codebook_loss(z_e, codebook, indices, validate=False)
            + commitment_weight * commitment_loss(z_e, codebook, indices, validate=False))


def init_codebook(num_embeddings: int, embedding_dim: int, key: Key | int = DEFAULT_CODEBOOK_SEED, *,
                  device: torch.device | str | None = None, dtype: torch.dtype | str | None = None) -> Tensor:
    """C ~ N(0, 1) of shape [K, D], exactly `vaespec.spec.init.init_codebook(K, D, key)` cast to `dtype`.

    Drawn in float64 on the host from the key (`vaespec.spec.keys.normal`), so one key gives one
    codebook on every device and dtype, and torch's global generator is never touched.

    **Arguments**
    - `num_embeddings`: K ≥ 1 rows; `embedding_dim`: D ≥ 1 columns.
    - `key`: a `Key` or integer seed (default 42, Edifice's).
    - `device`, `dtype`: of the result (torch's defaults when None).

    **Returns** a `[K, D]` tensor (no `requires_grad`).
    """
    values = _spec_init_codebook(num_embeddings, embedding_dim, key)
    dtype = torch.get_default_dtype() if dtype is None else torch_dtype(dtype)
    return torch.as_tensor(values, dtype=dtype, device=None if device is None else torch_device(device))


def laplace_smooth(counts: Tensor, epsilon: float, *, validate: bool = True) -> Tensor:
    """Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j: every count > 0 when ε > 0, the total kept.

    **Arguments**
    - `counts`: `[codes]`, N ≥ 0 with Σ N > 0.
    - `epsilon`: ε ≥ 0 (the EMA's 1e-5 by default there).
    - `validate`: check the shape, finiteness, sign and total first.

    **Returns** `[codes]`, same dtype.
    """
    if validate:
        check_tensors({"counts": counts}, {"counts": ("codes",)})
        check_scalar("epsilon", epsilon, low=0.0)
        if bool((counts < 0).any()) or not float(counts.sum()) > 0:
            raise DomainError(f"counts: expected values ≥ 0 with a positive total, got min {float(counts.min())} "
                              f"and total {float(counts.sum())}")
    total = counts.sum()
    return (counts + epsilon) / (total + counts.shape[0] * epsilon) * total


def codebook_health(indices: Tensor, num_embeddings: int, *, dtype: torch.dtype = torch.float32,
                    validate: bool = True) -> CodebookHealth:
    """How the codes are used in a batch: usage counts, perplexity and dead codes.

    `usage_k = #{b: k(b) = k}` over all N = batch·∏positions indices, `p = usage / N`,
    `perplexity = exp(−Σ_k p_k log p_k)` (0 log 0 = 0; between 1 and K), `dead_codes = #{k: usage_k = 0}`.

    **Arguments**
    - `indices`: int64 `[batch, *positions]` codes in [0, K).
    - `num_embeddings`: K.
    - `dtype`: float dtype of the perplexity (default float32).
    - `validate`: check the indices' shape, dtype and range first.

    **Returns** `CodebookHealth(usage int64 [K], perplexity 0-d, dead_codes 0-d int64)`.
    """
    dtype = torch_dtype(dtype)
    if validate:
        if isinstance(num_embeddings, bool) or not isinstance(num_embeddings, (int, np.integer)) \
                or not 1 <= num_embeddings <= MAX_DRAW:
            raise DomainError(f"num_embeddings: expected an integer in [1, {MAX_DRAW}], got {show(num_embeddings)}")
        _check_indices("indices", indices, None, int(num_embeddings))
    usage = torch.bincount(indices.reshape(-1), minlength=int(num_embeddings))
    p = usage.to(dtype) / indices.numel()
    perplexity = torch.exp(-torch.xlogy(p, p).sum())
    return CodebookHealth(usage, perplexity, (usage == 0).sum())


def reset_dead_codes(codebook: Tensor, usage: Tensor, z_e: Tensor, key: Key | int, *,
                     validate: bool = True) -> tuple[Tensor, Key]:
    """Replace every unused code by a batch vector drawn with `key`.

    `(j, key′) = randint(key, B, (#dead,))` (`vaespec.spec.keys.randint`); the dead rows
    (usage 0), in increasing index order, become z_e[j₀], z_e[j₁], …; live rows are unchanged.
    The key is advanced even when no code is dead.

    **Arguments**
    - `codebook`: `[codes, embedding]`.
    - `usage`: int64 `[codes]` (from `codebook_health`).
    - `z_e`: `[batch, *positions, embedding]`: its N vectors are the pool replacements are drawn from.
    - `key`: a `Key` or integer seed.
    - `validate`: check shapes, dtypes, devices and finiteness first.

    **Returns** `(new_codebook, new_key)`: a new detached tensor (the input is not modified).
    """
    if validate:
        _check_z_e_codebook(z_e, codebook)
        if not isinstance(usage, Tensor) or usage.dtype != torch.int64 or tuple(usage.shape) != (codebook.shape[0],) \
                or usage.device != codebook.device:
            raise DTypeError(f"usage: expected an int64 tensor of shape [{codebook.shape[0]}] on "
                             f"{codebook.device}, got {describe(usage)}"
                             f"{'' if not isinstance(usage, Tensor) else ' on ' + str(usage.device)}")
        if bool((usage < 0).any()):
            raise DomainError(f"usage: expected counts ≥ 0, got min {int(usage.min())}")
    dead = torch.nonzero(usage == 0).squeeze(1)  # increasing index order
    vectors = _vectors(z_e.detach())
    picks, new_key = randint(as_key(key), vectors.shape[0], (dead.numel(),))
    out = codebook.detach().clone()
    out[dead] = vectors.index_select(0, torch.as_tensor(picks, device=z_e.device)).to(out.dtype)
    return out, new_key
