"""The quantizers chapter in float64 (`vaespec.spec.quantizers`, docs/quantizers.md): each function's
forward, hand-written VJP, magnitude and VJP magnitude side by side. `z` is [batch, *positions, dim]
(FSQ elementwise, LFQ per vector: every position on its own), indices [batch, *positions].

FSQ, per coordinate with the constants of `vaespec.spec.quantizers.fsq_constants` (h = half_l,
o = offset, s = shift) and t = tanh(z + s):

    fsq_bound(z) = t·h − o                     z̄ = ȳ · h · (1 − t²)
    fsq_quantize(z) = round(t·h − o)/⌊L/2⌋     z̄ = ȳ/⌊L/2⌋ · h · (1 − t²)   (straight-through)
    fsq_indices(z) = Σ_d (k_d + ⌊L_d/2⌋) basis_d,  basis = cumprod([1] + L[:-1])  (exact; no gradient)
    fsq_indices_to_codes(i)_d = ((⌊i / basis_d⌋ mod L_d) − ⌊L_d/2⌋)/⌊L_d/2⌋;  the implicit codebook its rows

**Magnitudes.** The bound rounds z + s (at |z| + |s|, carried by the derivative h(1 − t²)), the
tanh (at |t|), the product (at h|t|) and the offset's subtraction (at h|t| + o), and the
constants once each (h at h|t|, s at |s|, carried like z):
M = h(1 − t²)(|z| + 2|s|) + 2h|t| + o. Its gradient ȳh(1 − t²) errs through t (δt ≤ u(|t| +
(1 − t²)(|z| + 2|s|))) and the cancellation in 1 − t² (at 1 + t²):
M̄ = |ȳ| h (2|t|(|t| + (1 − t²)(|z| + 2|s|)) + 1 + t²).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vaespec.spec.contract import FUNCTIONS, validate_args, validate_vjp
from vaespec.spec.quantizers import fsq_basis, fsq_constants

from . import quantizers_lfq as lfq_losses
from . import quantizers_rvq as rvq
from .boundary import finite, finite_gradients
from .function import ReferenceFunction
from .quantizers_lfq import lfq_codes


def _parts(a: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    h, o, s, _ = fsq_constants(a["levels"])
    return h, o, s, np.tanh(a["z"] + s)


# ----------------------------------------------------------------------------- fsq_bound
def fsq_bound(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """FSQ's bounding function (vector-quantize-pytorch 1.32.0, `FSQ.bound` before its rounding):

        bound(z)_d = tanh(z_d + shift_d) · half_l_d − offset_d

    with half_l = (L − 1)(1 + 10⁻³)/2, offset = ½ if L is even else 0, shift = atanh(offset / half_l)
    (`vaespec.spec.quantizers.fsq_constants`). It maps the reals into (−half_l − offset, half_l − offset),
    so rounding gives L values, and 0 to 0.

    **Arguments** `z` [batch, *positions, dim]; `levels` [dim], integers L_d ≥ 2.
    **Returns** like `z`.
    """
    a = validate_args("fsq_bound", {"z": z, "levels": levels})
    h, o, _, t = _parts(a)
    return finite("fsq_bound", t * h - o)


def fsq_bound_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """z̄ = ȳ · half_l · (1 − tanh²(z + shift))."""
    a, (d,) = validate_vjp("fsq_bound", args, cotangent)
    h, _, _, t = _parts(a)
    return finite_gradients("fsq_bound", {"z": d * h * (1.0 - t * t)})


def fsq_bound_magnitude(args: Mapping[str, Any]) -> np.ndarray:
    a = validate_args("fsq_bound", args)
    h, o, s, t = _parts(a)
    return h * (1.0 - t * t) * (np.abs(a["z"]) + 2.0 * np.abs(s)) + 2.0 * h * np.abs(t) + o


def fsq_bound_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    a, (d,) = validate_vjp("fsq_bound", args, cotangent)
    h, _, s, t = _parts(a)
    carried = np.abs(t) + (1.0 - t * t) * (np.abs(a["z"]) + 2.0 * np.abs(s))
    return {"z": np.abs(d) * h * (2.0 * np.abs(t) * carried + 1.0 + t * t)}


FSQ_BOUND = ReferenceFunction("fsq_bound", fsq_bound, fsq_bound_magnitude, fsq_bound_vjp, fsq_bound_vjp_magnitude)


# ----------------------------------------------------------------------------- fsq_quantize
def _levels_at(a: Mapping[str, Any], indices: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(b, k): the float64 bound and the levels k = round(b) (half to even), or the given choices `indices`."""
    h, o, _, t = _parts(a)
    b = t * h - o
    k = np.round(b) if indices is None else np.asarray(indices, dtype=np.float64).reshape(b.shape)
    return b, k


def fsq_quantize(z: np.ndarray, levels: np.ndarray, *, indices: Any = None) -> np.ndarray:
    """FSQ's quantizer (vector-quantize-pytorch 1.32.0, `FSQ.bound` with its rounding):

        z_q = round_ste(fsq_bound(z)) / ⌊L/2⌋,    round_ste(b) = b + sg(round(b) − b)

    whose value is k/⌊L/2⌋ with k = round(b), half to even (torch.round's rule); on the grid
    {−⌊L/2⌋, …, ⌈L/2⌉ − 1}/⌊L/2⌋ ⊂ [−1, 1].

    **Arguments** `z` [batch, *positions, dim]; `levels` [dim]; `indices` (keyword): the levels k, shaped like
    `z`, a backend chose, to evaluate at (the laws' conditioning; `vaespec.spec.quantizers.FSQ_ROUNDING_CRITERION`).
    **Returns** like `z`.
    """
    a = validate_args("fsq_quantize", {"z": z, "levels": levels})
    _, k = _levels_at(a, indices)
    return finite("fsq_quantize", k / (a["levels"] // 2))


def fsq_quantize_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """Straight-through: z̄ = ȳ / ⌊L/2⌋ · half_l · (1 − tanh²(z + shift)), whatever the levels chosen."""
    a, (d,) = validate_vjp("fsq_quantize", args, cotangent)
    h, _, _, t = _parts(a)
    return finite_gradients("fsq_quantize", {"z": d / (a["levels"] // 2) * h * (1.0 - t * t)})


def fsq_quantize_magnitude(args: Mapping[str, Any]) -> np.ndarray:
    """b + (k − b) rounds twice at |b| + |k|, the division once at |k|: ((|b| + |k|) + |k|)/⌊L/2⌋."""
    a = validate_args("fsq_quantize", args)
    b, k = _levels_at(a, args.get("indices"))
    return (np.abs(b) + 2.0 * np.abs(k)) / (a["levels"] // 2)


def fsq_quantize_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    """fsq_bound's M̄ at the cotangent ȳ/⌊L/2⌋ (its division one more rounding, at the same size)."""
    a, (d,) = validate_vjp("fsq_quantize", args, cotangent)
    return fsq_bound_vjp_magnitude({"z": a["z"], "levels": a["levels"]}, d / (a["levels"] // 2))


def fsq_quantize_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.ndarray:
    """What the straight-through VJP differentiates: fsq_bound(z) / ⌊L/2⌋ (sg(round(b) − b) held at `base`: a
    constant, left out)."""
    a = validate_args("fsq_quantize", args)
    return fsq_bound(a["z"], a["levels"]) / (a["levels"] // 2)


FSQ_QUANTIZE = ReferenceFunction("fsq_quantize", fsq_quantize, fsq_quantize_magnitude, fsq_quantize_vjp,
                                 fsq_quantize_vjp_magnitude, fsq_quantize_surrogate)



# ----------------------------------------------------------------------------- codes and indices
def fsq_indices(z: np.ndarray, levels: np.ndarray, *, indices: Any = None) -> np.ndarray:
    """The implicit codebook's index of each quantized row (vqp's `FSQ.forward` indices, `codes_to_indices`):

        index(b) = Σ_d q_d · basis_d,   q_d = round(fsq_bound(z)_d) + ⌊L_d/2⌋ ∈ [0, L_d),
        basis = cumprod([1, L_0, …, L_{D−2}])            (coordinate 0 is the least significant digit)

    **Arguments** `z` [batch, *positions, dim]; `levels` [dim]; `indices` (keyword): the levels k, shaped like
    `z`, a backend chose (as `fsq_quantize`'s), to evaluate at. **Returns** int64 [batch, *positions].
    """
    a = validate_args("fsq_indices", {"z": z, "levels": levels})
    _, k = _levels_at(a, indices)
    q = k.astype(np.int64) + a["levels"] // 2
    return q @ fsq_basis(a["levels"])


def fsq_indices_to_codes(indices: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The rows of the implicit codebook (vqp's `indices_to_codes` without a projection):

        codes_d = (q_d − ⌊L_d/2⌋) / ⌊L_d/2⌋,   q_d = ⌊index / basis_d⌋ mod L_d

    **Arguments** `indices` [batch, *positions] in [0, ∏ L); `levels` [dim]. **Returns** [batch, *positions, dim]
    on the grid.
    """
    a = validate_args("fsq_indices_to_codes", {"indices": indices, "levels": levels})
    lv = a["levels"]
    q = (a["indices"][..., None] // fsq_basis(lv)) % lv
    return (q - lv // 2) / (lv // 2)


def fsq_implicit_codebook(levels: np.ndarray) -> np.ndarray:
    """FSQ's implicit codebook: row i = `fsq_indices_to_codes(i)` for i = 0 … ∏ L − 1.

    **Arguments** `levels` [dim]. **Returns** [∏ L, dim].
    """
    lv = validate_args("fsq_implicit_codebook", {"levels": levels})["levels"]
    return fsq_indices_to_codes(np.arange(int(np.prod(lv)), dtype=np.int64), lv)


def _exact(function: str, forward: Callable[..., np.ndarray]) -> Callable[[Mapping[str, Any]], np.ndarray]:
    """The magnitude of an exact function (integers, quotients rounded once): 0, shaped like its output."""
    names = tuple(arg.name for arg in FUNCTIONS[function].args)

    def magnitude(args: Mapping[str, Any]) -> np.ndarray:
        a = validate_args(function, args)
        return np.zeros(np.shape(forward(*(a[n] for n in names))))
    return magnitude


FSQ_INDICES = ReferenceFunction("fsq_indices", fsq_indices, _exact("fsq_indices", fsq_indices))
FSQ_INDICES_TO_CODES = ReferenceFunction("fsq_indices_to_codes", fsq_indices_to_codes,
                                         _exact("fsq_indices_to_codes", fsq_indices_to_codes))
FSQ_IMPLICIT_CODEBOOK = ReferenceFunction("fsq_implicit_codebook", fsq_implicit_codebook,
                                          _exact("fsq_implicit_codebook", fsq_implicit_codebook))



# ----------------------------------------------------------------------------- LFQ
def lfq_quantize(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lookup-free quantization (vector-quantize-pytorch 1.32.0 `LFQ`, codebook_scale 1):

        q_i = +1 if z_i > 0 else −1   (so z_i = 0 ↦ −1),   z_q = z + sg(q − z),
        index = Σ_i [z_i > 0] · 2^(d−1−i)                  (coordinate 0 the most significant bit)

    **Arguments** `z` [batch, *positions, dim]. **Returns** (z_q like `z` with value q, indices int64
    [batch, *positions]).
    """
    a = validate_args("lfq_quantize", {"z": z})
    bits = a["z"] > 0
    mask = 2 ** np.arange(bits.shape[-1] - 1, -1, -1, dtype=np.int64)
    return np.where(bits, 1.0, -1.0), bits.astype(np.int64) @ mask


def lfq_quantize_vjp(args: Mapping[str, Any], cotangent: Any) -> dict:
    """Straight-through: z̄ = ȳ."""
    _, (d, *_) = validate_vjp("lfq_quantize", args, cotangent)
    return finite_gradients("lfq_quantize", {"z": np.array(d, dtype=np.float64)})


def lfq_quantize_magnitude(args: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """z + (q − z) rounds twice at |z| + 1; the index is exact."""
    z = validate_args("lfq_quantize", args)["z"]
    return np.abs(z) + 1.0, np.zeros(z.shape[:-1])


def lfq_quantize_vjp_magnitude(args: Mapping[str, Any], cotangent: Any) -> dict:
    _, (d, *_) = validate_vjp("lfq_quantize", args, cotangent)
    return {"z": np.abs(d)}


def lfq_quantize_surrogate(args: Mapping[str, Any], base: Mapping[str, Any]) -> np.ndarray:
    """What the straight-through VJP differentiates: z itself (sg(q − z) held at `base`: a constant, left out)."""
    return np.array(validate_args("lfq_quantize", args)["z"], dtype=np.float64)


def lfq_indices_to_codes(indices: np.ndarray, codebook_dim: int) -> np.ndarray:
    """The hypercube vertex of each index: c_i = +1 if bit (d−1−i) is set else −1 (vqp's `indices_to_codes`).

    **Arguments** `indices` [batch, *positions] in [0, 2^d); `codebook_dim` d. **Returns** [batch, *positions, d].
    """
    a = validate_args("lfq_indices_to_codes", {"indices": indices, "codebook_dim": codebook_dim})
    return lfq_codes(a["codebook_dim"])[a["indices"]]


LFQ_QUANTIZE = ReferenceFunction("lfq_quantize", lfq_quantize, lfq_quantize_magnitude, lfq_quantize_vjp,
                                 lfq_quantize_vjp_magnitude, lfq_quantize_surrogate)
LFQ_INDICES_TO_CODES = ReferenceFunction("lfq_indices_to_codes", lfq_indices_to_codes,
                                         _exact("lfq_indices_to_codes", lfq_indices_to_codes))

REFERENCE_FUNCTIONS = (FSQ_BOUND, FSQ_QUANTIZE, FSQ_INDICES, FSQ_INDICES_TO_CODES, FSQ_IMPLICIT_CODEBOOK,
                       LFQ_QUANTIZE, LFQ_INDICES_TO_CODES, *lfq_losses.REFERENCE_FUNCTIONS,
                       *rvq.REFERENCE_FUNCTIONS)
