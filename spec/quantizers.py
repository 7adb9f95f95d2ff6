"""The quantizers chapter: the successors of the VQ-VAE's nearest-code quantizer that image and audio
tokenizers use — finite scalar quantization (FSQ, Mentzer et al. 2023), lookup-free quantization
(LFQ, MAGVIT-v2) and residual VQ (SoundStream, EnCodec) — stated as vector-quantize-pytorch 1.32.0
(`FSQ`, `LFQ`, `ResidualVQ`) computes them, with every convention written out (docs/quantizers.md).

**Shapes.** Every function takes `z` [batch, *positions, dim], channels-last (the VQ chapter's
`*positions`: () for rows [batch, dim], (T,) for a sequence, (H, W) for an image; vqp's `b ... d` after
moving channels last): each of the N = batch·∏positions vectors is quantized on its own (FSQ
elementwise, LFQ per vector), indices are [batch, *positions], and each function is its [N, dim] form on
`z.reshape(N, dim)`, reshaped back. The losses are means over all N vectors (vqp's mean over `(b n)`):
per_sample_entropy = mean over the N vectors, the codebook entropy that of the mean over the N
vectors' distributions, the commitment loss the mean over all N·dim entries.

**FSQ.** Per coordinate d with L = L_d levels (L ≥ 2), with vqp's constants

    half_l = (L − 1)(1 + ε)/2,  ε = 1e−3;   offset = ½ if L is even else 0;   shift = atanh(offset / half_l)
    fsq_bound(z)    = tanh(z + shift) · half_l − offset

(vector-quantize-pytorch 1.32.0, `FSQ.bound`'s `bounded_z`). The paper's appendix A.1 code
differs: half_l = (L − 1)(1 − ε)/2 and shift = tan(offset / half_l); with vqp's atanh the bound
maps 0 to 0 exactly (in real arithmetic), with the paper's tan it does not. The constants are
computed in float64 and rounded once to the backend's dtype. A bfloat16 or float16 backend bounds and
rounds in float32 (vqp's `force_quantization_f32`, default on) and rounds the quantized value to its dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import quantizers_rvq as rvq
from .chains import STRAIGHT_THROUGH, rows
from .errors import DomainError
from .numerics import NARROW
from .shapes import POSITIONS, Float, Int
from .signature import Arg, FunctionSpec, Law, Output

FSQ_EPS = 1e-3
MAX_LEVEL = 2**8  # each L_d ≤ 256: its codes and the rounding grid are exact in every dtype (bfloat16's 8 bits)
MAX_CODEBOOK = 2**24  # ∏ L_d ≤ 2²⁴: every index is an integer exact in float32 (vqp sums its indices in float)

_C = "quantizers"

Z = Arg("z", "array", ("batch", POSITIONS, "dim"), True, "finite reals")
Z_NO_GRADIENT = Arg("z", "array", ("batch", POSITIONS, "dim"), False, "finite reals")  # for integer results
FSQ_INDICES = Arg("indices", "index", ("batch", POSITIONS),
                  domain="0 ≤ index < ∏_d L_d (the implicit codebook's rows)")
LEVELS = Arg("levels", "index", ("dim",), domain=f"integers 2 ≤ L_d ≤ {MAX_LEVEL}, ∏_d L_d ≤ 2²⁴", low=2,
              high=MAX_LEVEL)


LFQ_INDICES = Arg("indices", "index", ("batch", POSITIONS), domain="0 ≤ index < 2^dim (the hypercube's vertices)")
CODEBOOK_DIM = Arg("codebook_dim", "size", ("dim",), domain="d ≥ 1: the code's bits")
INV_TEMPERATURE = Arg("inv_temperature", "scalar", domain="1/τ > 0 (vqp's default 100)", low=1e-6)
DIVERSITY_GAMMA = Arg("diversity_gamma", "scalar", domain="γ ≥ 0 (vqp's default 1)", low=0.0)
MAX_LFQ_DIM = 16  # 2^16 codes: the entropy's softmax runs over every code


# ----------------------------------------------------------------------------- rules
def _levels_valid(function: str, checked: Mapping[str, Any]) -> None:
    """∏ L_d ≤ MAX_CODEBOOK (each L_d in [2, MAX_LEVEL] is the Arg's own bound, checked by `check_args`)."""
    levels = checked["levels"]
    if float(np.prod(levels.astype(np.float64))) > MAX_CODEBOOK:
        raise DomainError(f"levels: expected ∏ L_d ≤ 2**24 (an implicit codebook whose indices are exact in float32), "
                          f"got ∏ L_d = {int(np.prod(levels.astype(object)))}")


def _indices_in_codebook(function: str, checked: Mapping[str, Any]) -> None:
    """Every index < ∏ L_d."""
    size, indices = int(np.prod(checked["levels"].astype(object))), checked["indices"]
    if indices.size and indices.max() >= size:
        raise DomainError(f"indices: expected integers in [0, {size}) (∏ levels = {size} rows of the implicit "
                          f"codebook), got values in [{indices.min()}, {indices.max()}]")


def _lfq_dim(function: str, checked: Mapping[str, Any]) -> None:
    """d ≤ MAX_LFQ_DIM, and (with indices) every index < 2^d."""
    dim = checked["codebook_dim"] if "codebook_dim" in checked else np.shape(checked["z"])[-1]
    if dim > MAX_LFQ_DIM:
        raise DomainError(f"{'codebook_dim' if 'codebook_dim' in checked else 'z'}: expected at most {MAX_LFQ_DIM} "
                          f"bits (2^d codes), got d = {dim}")
    indices = checked.get("indices")
    if indices is not None and np.size(indices) and np.max(indices) >= 2**dim:
        raise DomainError(f"indices: expected integers in [0, 2**{dim}) (the hypercube's {2**dim} vertices), got "
                          f"values in [{np.min(indices)}, {np.max(indices)}]")


# ----------------------------------------------------------------------------- the constants, in float64
def fsq_constants(levels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(half_l, offset, shift, half_width)` per coordinate, float64 (half_width an integer array).

    **Arguments** `levels` [dim]: the integers L_d ≥ 2.

    **Returns** half_l = (L − 1)(1 + 10⁻³)/2, offset = ½ for even L else 0, shift = atanh(offset / half_l)
    (vector-quantize-pytorch 1.32.0, `FSQ.bound`), half_width = L // 2 (`FSQ.bound`'s divisor). The
    statement's constants: a backend rounds them once to its dtype.
    """
    levels = np.asarray(levels, dtype=np.int64)
    half_l = (levels - 1) * (1.0 + FSQ_EPS) / 2.0
    offset = np.where(levels % 2 == 0, 0.5, 0.0)
    return half_l, offset, np.arctanh(offset / half_l), levels // 2


def fsq_basis(levels: Any) -> np.ndarray:
    """The mixed-radix basis (vqp's `_basis`): cumprod([1, L_0, …, L_{D−2}]), so coordinate 0 is the least
    significant digit: index = Σ_d q_d · basis_d with q_d = k_d + ⌊L_d/2⌋ ∈ [0, L_d)."""
    levels = np.asarray(levels, dtype=np.int64)
    return np.cumprod(np.concatenate(([1], levels[:-1]))).astype(np.int64)


def choice_dtype(dtype: str) -> str:
    """The dtype FSQ's levels are chosen in by a backend computing in `dtype`: float32 for the narrow dtypes
    (vqp's `force_quantization_f32`, as VQ's codes come from float32 distances), else `dtype` itself."""
    return "float32" if dtype in NARROW else dtype


# ----------------------------------------------------------------------------- chains
# fsq_bound: the two constants rounded to the dtype, then add shift, tanh, multiply, subtract offset.
_BOUND: tuple[int, int] = (6, 6)


def _entropy_chain(s: Mapping[str, Any]) -> tuple[int, int]:
    """The logits (a dot product of d, times 2/τ), the softmax over K = 2^d codes (max, subtract, exp, sum, divide),
    the entropies (log-softmax, product, the sum over K) and the means over the batch (B), then the loss: 2K + B + d
    + 16 roundings, 16 of them rounded op results."""
    codes = 2 ** int(s["dim"])
    return 2 * codes + rows(s) + s["dim"] + 16, 16


def _entropy_vjp_chain(s: Mapping[str, Any]) -> tuple[int, int]:
    """The forward, the backward through the entropies and the softmax (a sum over K), and z̄ = 2/τ Cᵀ l̄ (K)."""
    n, ops = _entropy_chain(s)
    return n + 2 * 2 ** int(s["dim"]) + 8, ops + 8


# fsq_quantize: the straight-through b + sg(k − b) (2 roundings) and the division by half_width (1); its VJP
# divides the cotangent by half_width, then runs fsq_bound's.
_QUANTIZE: tuple[int, int] = (3, 3)

FSQ_ROUNDING_CRITERION = (
    "A backend's level k_d = z_q,d · ⌊L_d/2⌋ for entry d is acceptable iff it is one of the L_d levels and "
    "|b_d − k_d| ≤ ½ + τ_d, with b = fsq_bound(z) in float64 and τ the policy's tolerance of fsq_bound in the "
    "dtype levels are chosen in (`tolerance(choice_dtype(dtype), 'fsq_bound', args)`: float32 for a bfloat16 or "
    "float16 backend, which bounds and rounds in float32 as vqp's force_quantization_f32 does, else its own "
    "dtype): some rounding of the bound within its error makes k the nearest integer. Away from the boundaries "
    "k + ½ (margin > τ) exactly one level is acceptable. At an exact half, round half to even (torch.round, "
    "numpy.round, jnp.round)."
)

_fns = (
    FunctionSpec("fsq_bound", (Z, LEVELS), (Output("bounded", ("batch", POSITIONS, "dim")),),
                 "bound(z)_d = tanh(z_d + shift_d) · half_l_d − offset_d, half_l = (L − 1)(1 + 10⁻³)/2, "
                 "offset = ½ [L even], shift = atanh(offset / half_l)  (vector-quantize-pytorch 1.32.0)", _C,
                 rules=(_levels_valid,), chain=lambda s: _BOUND, vjp_chain=lambda s: (_BOUND[0] + 4, _BOUND[1] + 4)),
    FunctionSpec("fsq_quantize", (Z, LEVELS), (Output("z_q", ("batch", POSITIONS, "dim")),),
                 "z_q,d = round_ste(fsq_bound(z)_d) / ⌊L_d/2⌋, round_ste(b) = b + sg(round(b) − b) (round half to "
                 "even; value k/⌊L/2⌋ on the grid, gradient the bound's derivative / ⌊L/2⌋)", _C,
                 rules=(_levels_valid,), chain=lambda s: _QUANTIZE,
                 vjp_chain=lambda s: (_BOUND[0] + 5, _BOUND[1] + 5), discrete=True,
                 kink="at a rounding boundary either neighbouring level is acceptable (FSQ_ROUNDING_CRITERION); the "
                      "straight-through gradient is the bound's derivative on both sides"),
    FunctionSpec("fsq_indices", (Z_NO_GRADIENT, LEVELS), (Output("indices", ("batch", POSITIONS), "int"),),
                 "index(b) = Σ_d q_d · basis_d, q_d = round(fsq_bound(z)_d) + ⌊L_d/2⌋ ∈ [0, L_d), "
                 "basis = cumprod([1, L_0, …, L_{D−2}])  (vqp's codes_to_indices: coordinate 0 least significant)",
                 _C, rules=(_levels_valid,), exact=True, discrete=True),
    FunctionSpec("fsq_indices_to_codes", (FSQ_INDICES, LEVELS),
                 (Output("codes", ("batch", POSITIONS, "dim")),),
                 "codes_d = (q_d − ⌊L_d/2⌋) / ⌊L_d/2⌋, q_d = ⌊index / basis_d⌋ mod L_d  (vqp's indices_to_codes, "
                 "without a projection)", _C, rules=(_levels_valid, _indices_in_codebook), exact=True),
    FunctionSpec("lfq_quantize", (Z,),
                 (Output("z_q", ("batch", POSITIONS, "dim")), Output("indices", ("batch", POSITIONS), "int")),
                 "z_q = z + sg(q − z), q_i = +1 if z_i > 0 else −1 (0 ↦ −1); index = Σ_i [z_i > 0] · 2^(d−1−i) "
                 "(vqp's mask 2^(d−1) … 1: coordinate 0 the most significant bit)", _C,
                 rules=(_lfq_dim,), chain=lambda s: STRAIGHT_THROUGH, vjp_chain=lambda s: STRAIGHT_THROUGH,
                 kink="at z_i = 0 the code is −1 (vqp's z > 0 test); the straight-through gradient is 1 everywhere"),
    FunctionSpec("lfq_indices_to_codes", (LFQ_INDICES, CODEBOOK_DIM),
                 (Output("codes", ("batch", POSITIONS, "dim")),),
                 "codes_i = +1 if bit (d−1−i) of index is set else −1  (vqp's indices_to_codes, codebook_scale 1)",
                 _C, rules=(_lfq_dim,), exact=True),
    FunctionSpec("lfq_entropy_loss", (Z, INV_TEMPERATURE, DIVERSITY_GAMMA),
                 (Output("per_sample_entropy", ()), Output("codebook_entropy", ()), Output("loss", ())),
                 "p_n = softmax_c(2/τ · z_n·c) over the 2^d codes c ∈ {−1, +1}^d; per_sample = mean_n H(p_n), "
                 "codebook = H(mean_n p_n), loss = per_sample − γ · codebook  (H(p) = −Σ p log p, 0 log 0 = 0)", _C,
                 rules=(_lfq_dim,), chain=_entropy_chain, vjp_chain=_entropy_vjp_chain),
    FunctionSpec("lfq_commitment_loss", (Z,), (Output("loss", ()),),
                 "L = mean_{b,i} (z − sg(q))², q = lfq_quantize(z)'s code  (gradient 2(z − q)/(B·d))", _C,
                 rules=(_lfq_dim,), chain=lambda s: (rows(s) * s["dim"] + 4, 5),
                 vjp_chain=lambda s: (rows(s) * s["dim"] + 7, 8)),
    FunctionSpec("fsq_implicit_codebook", (LEVELS,), (Output("codebook", ("codebook_size", "dim")),),
                 "row i = fsq_indices_to_codes(i) for i = 0 … ∏_d L_d − 1  (vqp's implicit_codebook)", _C,
                 rules=(_levels_valid,), exact=True),
)
FUNCTIONS: dict[str, FunctionSpec] = {**{f.name: f for f in _fns}, **rvq.FUNCTIONS}

_laws: tuple[Law, ...] = (
    Law("fsq_bound_rounds_into_levels",
        "for every z, round(fsq_bound(z)_d) ∈ [−⌊L_d/2⌋, ⌈L_d/2⌉ − 1]: the bounded value lies strictly inside "
        "(−⌊L/2⌋ − ½, ⌈L/2⌉ − ½), so rounding gives exactly L_d values (checked as an inequality on the "
        "bounded value, with the policy's roundoff)", ("fsq_bound",), "any z, 2 ≤ L ≤ 16", "order", _C),
)
_laws += (
    Law("fsq_quantize_output_on_grid",
        "fsq_quantize(z)_d · ⌊L_d/2⌋ is an integer in [−⌊L_d/2⌋, ⌈L_d/2⌉ − 1] (up to z_q's own rounding: the "
        "policy's tolerance of fsq_quantize, times ⌊L/2⌋)", ("fsq_quantize",), "any z, 2 ≤ L ≤ 9", "roundoff", _C),
    Law("fsq_quantize_idempotent_on_grid_points",
        "quantizing the bound's preimage of a grid point returns it: with z′_d = atanh((z_q,d·⌊L_d/2⌋ + offset_d) "
        "/ half_l_d) − shift_d for z_q = fsq_quantize(z), fsq_quantize(z′) = z_q (the preimage lies mid-cell, "
        "½ from either boundary, so every dtype must round it back)", ("fsq_quantize",), "any z, 2 ≤ L ≤ 9",
        "roundoff", _C),
    Law("fsq_codes_indices_codes_round_trip",
        "for every index i ∈ [0, ∏L): fsq_indices(z_i) = i and fsq_quantize(z_i) = fsq_indices_to_codes(i), with "
        "z_i the bound's preimage of row i of the codebook; so the indices cover [0, ∏L) and codes → indices → "
        "codes is the identity (basis = cumprod([1] + L[:-1]), vqp's order)",
        ("fsq_indices", "fsq_quantize", "fsq_indices_to_codes"), "2 ≤ L ≤ 9, ∏L ≤ 6561", "roundoff", _C),
    Law("fsq_straight_through_gradient_eq_bound_derivative",
        "vjp(fsq_quantize, z, ȳ) = vjp(fsq_bound, z, ȳ / ⌊L/2⌋): rounding passes the gradient through unchanged",
        ("fsq_quantize", "fsq_bound"), "any z", "roundoff", _C),
    Law("fsq_implicit_codebook_has_distinct_rows",
        "fsq_implicit_codebook(L) has ∏_d L_d rows, all distinct, each on the grid, and row i = "
        "fsq_indices_to_codes(i)", ("fsq_implicit_codebook", "fsq_indices_to_codes"), "2 ≤ L ≤ 9", "exact", _C),
)
_laws += (
    Law("lfq_quantize_output_on_hypercube",
        "lfq_quantize(z) is on {−1, +1}^d: z_q,i = +1 where z_i > 0 and −1 where z_i ≤ 0 (0 ↦ −1), up to the "
        "straight-through sum's rounding", ("lfq_quantize",), "any z, including exact zeros", "roundoff", _C),
    Law("lfq_indices_codes_round_trip",
        "lfq_indices_to_codes(indices) = sign codes of lfq_quantize(z), and quantizing those codes returns the same "
        "indices; index = Σ_i [z_i > 0]·2^(d−1−i) (coordinate 0 the most significant bit, vqp's mask)",
        ("lfq_quantize", "lfq_indices_to_codes"), "any z", "exact", _C),
    Law("lfq_entropies_between_zero_and_dim_log_two",
        "0 ≤ per_sample_entropy ≤ d·log 2 and 0 ≤ codebook_entropy ≤ d·log 2 (entropies of distributions over 2^d "
        "codes)", ("lfq_entropy_loss",), "any z, 1/τ > 0", "order", _C),
    Law("lfq_codebook_entropy_ge_per_sample_entropy",
        "codebook_entropy = H(mean_n p_n) ≥ mean_n H(p_n) = per_sample_entropy (entropy is concave)",
        ("lfq_entropy_loss",), "any z, 1/τ > 0", "order", _C),
    Law("lfq_entropy_loss_eq_per_sample_sub_gamma_codebook",
        "loss = per_sample_entropy − γ · codebook_entropy, γ = diversity_gamma (vqp's entropy_aux_loss before its "
        "entropy_loss_weight)", ("lfq_entropy_loss",), "γ ≥ 0", "roundoff", _C),
    Law("lfq_per_sample_entropy_eq_sum_of_bit_entropies",
        "per_sample_entropy = mean_n Σ_i h(σ(4 z_ni / τ)), h the binary entropy: over the hypercube the softmax of "
        "2/τ·z·c factorises into independent bits with P(c_i = +1) = σ(4 z_i / τ)", ("lfq_entropy_loss",),
        "any z, 1/τ > 0", "roundoff", _C),
    Law("lfq_straight_through_gradient", "the vjp of lfq_quantize gives z exactly the upstream gradient of z_q",
        ("lfq_quantize",), "any z", "exact", _C),
)
_laws += (
    Law("fsq_positions_eq_rows",
        "FSQ on z [B, *positions, D] equals FSQ on its N = B·∏positions rows z.reshape(N, D), reshaped back: "
        "fsq_bound and fsq_quantize entrywise (each call's levels judged by the rounding criterion, the difference "
        "that of the reference at the two calls' levels), fsq_indices [B, *positions] exactly, and "
        "fsq_indices_to_codes of indices [B, *positions] = that of indices.reshape(N)",
        ("fsq_bound", "fsq_quantize", "fsq_indices", "fsq_indices_to_codes"), "1–2 position axes", "roundoff", _C),
    Law("lfq_positions_eq_rows",
        "LFQ on z [B, *positions, D] equals LFQ on z.reshape(N, D): lfq_quantize's z_q and indices reshaped, and "
        "lfq_entropy_loss and lfq_commitment_loss (and their gradients, reshaped) the same numbers — means over "
        "all N vectors, the codebook entropy that of the mean over all N distributions",
        ("lfq_quantize", "lfq_entropy_loss", "lfq_commitment_loss"), "1–2 position axes", "roundoff", _C),
)
LAWS: dict[str, Law] = {**{law.name: law for law in _laws}, **rvq.LAWS}


@runtime_checkable
class QuantizersBackend(Protocol):
    """What a backend declaring the `quantizers` chapter provides: float64 numpy in and out, integer
    levels and indices as int64 arrays, `vjp(function, args, cotangent)` for the differentiable functions;
    `z` [batch, *positions, dim] channels-last, every position on its own (the module doc)."""

    name: str
    device: str
    dtype: str

    def fsq_bound(self, z: Float[np.ndarray, "batch *positions dim"], levels: Int[np.ndarray, " dim"]
                  ) -> Float[np.ndarray, "batch *positions dim"]: ...

    def fsq_quantize(self, z: Float[np.ndarray, "batch *positions dim"], levels: Int[np.ndarray, " dim"]
                     ) -> Float[np.ndarray, "batch *positions dim"]: ...

    def fsq_indices(self, z: Float[np.ndarray, "batch *positions dim"], levels: Int[np.ndarray, " dim"]
                    ) -> Int[np.ndarray, " batch *positions"]: ...

    def fsq_indices_to_codes(self, indices: Int[np.ndarray, " batch *positions"], levels: Int[np.ndarray, " dim"]
                             ) -> Float[np.ndarray, "batch *positions dim"]: ...

    def fsq_implicit_codebook(self, levels: Int[np.ndarray, " dim"]) -> Float[np.ndarray, "codebook_size dim"]: ...

    def lfq_quantize(self, z: Float[np.ndarray, "batch *positions dim"]
                     ) -> tuple[Float[np.ndarray, "batch *positions dim"], Int[np.ndarray, " batch *positions"]]: ...

    def lfq_indices_to_codes(self, indices: Int[np.ndarray, " batch *positions"], codebook_dim: int
                             ) -> Float[np.ndarray, "batch *positions dim"]: ...

    def lfq_entropy_loss(self, z: Float[np.ndarray, "batch *positions dim"], inv_temperature: float,
                         diversity_gamma: float) -> tuple[float, float, float]: ...

    def lfq_commitment_loss(self, z: Float[np.ndarray, "batch *positions dim"]) -> float: ...

    def rvq_quantize(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                     codebooks: Float[np.ndarray, "stages codes embedding"], num_stages: int
                     ) -> tuple[Float[np.ndarray, "batch *positions embedding"],
                                Int[np.ndarray, "batch *positions stages"]]: ...

    def rvq_commitment_loss(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                            codebooks: Float[np.ndarray, "stages codes embedding"], num_stages: int
                            ) -> Float[np.ndarray, " stages"]: ...

    def rvq_codebook_loss(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                          codebooks: Float[np.ndarray, "stages codes embedding"], num_stages: int
                          ) -> Float[np.ndarray, " stages"]: ...

    def rvq_ema_update(self, codebooks: Float[np.ndarray, "stages codes embedding"],
                       ema_counts: Float[np.ndarray, "stages codes"],
                       ema_sums: Float[np.ndarray, "stages codes embedding"], ema_step: Int[np.ndarray, " stages"],
                       z_e: Float[np.ndarray, "batch *positions embedding"], num_stages: int, decay: float,
                       epsilon: float, training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]: ...
