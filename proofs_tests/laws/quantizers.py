"""The quantizers chapter's law checks (`vaespec.spec.quantizers`): FSQ, LFQ, residual VQ.

Identities are evaluated with the backend's own functions; `<function>_matches_reference` and
`<function>_gradient_matches_reference` are `laws.differential`'s, as for every chapter. Every bound is
the policy's (`laws.tolerance.tolerance`): the functions' declared chains times the reference's magnitudes.
"""

from __future__ import annotations

import math

import numpy as np

from vaespec.reference import quantizers as ref
from vaespec.spec import dtypes
from vaespec.spec.quantizers import fsq_constants

from ..strategies import vae as strategies
from ..strategies.chapters import examples_for
from . import quantizers_positions, quantizers_rvq
from .checking import Check, context, function_args
from .compare import LawViolation, as_input, assert_within
from .tolerance import tolerance


def _order_entries(what: str, smaller, larger, tol, ctx) -> float:
    """Entrywise smaller ≤ larger + tol; the worst excess ÷ tol (0 when it holds strictly)."""
    excess = np.asarray(smaller, dtype=np.float64) - np.asarray(larger, dtype=np.float64)
    if not np.all(np.isfinite(excess)):
        raise LawViolation(f"{what}: non-finite comparison\n{ctx}")
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), excess.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(excess <= 0, 0.0, np.where(tol > 0, excess / tol, np.inf))
    if ratio.size == 0:
        return 0.0
    worst = int(np.argmax(ratio))
    if ratio.flat[worst] > 1:
        raise LawViolation(f"{what}: at entry {np.unravel_index(worst, excess.shape)}, {np.ravel(smaller)[worst]!r} "
                           f"exceeds {np.ravel(larger)[worst]!r} by {excess.flat[worst]:.3e}, beyond the tolerance "
                           f"{tol.flat[worst]:.3e}\n{ctx}", ratio=float(ratio.flat[worst]))
    return float(ratio.flat[worst])


# ----------------------------------------------------------------------------- FSQ
def fsq_bound_rounds_into_levels(backend, example, draw):
    a = function_args("fsq_bound", example, backend.dtype)
    levels = a["levels"]
    bounded = backend.fsq_bound(a["z"], levels)
    tol, ctx = tolerance(backend.dtype, "fsq_bound", a), context("fsq_bound", a, backend)
    low = -(levels // 2) - 0.5  # the bounded value must round to one of the L levels
    high = (levels + 1) // 2 - 0.5
    return max(_order_entries("−⌊L/2⌋ − ½ < fsq_bound(z)", np.broadcast_to(low, bounded.shape), bounded, tol, ctx),
               _order_entries("fsq_bound(z) < ⌈L/2⌉ − ½", bounded, np.broadcast_to(high, bounded.shape), tol, ctx))


def _grid_levels(z_q, levels):
    """(k, off): k = rint(z_q · ⌊L/2⌋) and |z_q · ⌊L/2⌋ − k|."""
    scaled = np.asarray(z_q, dtype=np.float64) * (levels // 2)
    k = np.rint(scaled)
    return k, np.abs(scaled - k)


def _in_levels(function, k, levels, ctx):
    if k.size and (np.any(k < -(levels // 2)) or np.any(k > (levels + 1) // 2 - 1)):
        raise LawViolation(f"{function}: levels {np.unique(k).tolist()} outside [−⌊L/2⌋, ⌈L/2⌉ − 1] for L = "
                           f"{levels.tolist()}\n{ctx}")


def fsq_quantize_output_on_grid(backend, example, draw):
    a = function_args("fsq_quantize", example, backend.dtype)
    levels, ctx = a["levels"], context("fsq_quantize", a, backend)
    z_q = backend.fsq_quantize(a["z"], levels)
    k, off = _grid_levels(z_q, levels)
    _in_levels("fsq_quantize", k, levels, ctx)
    tol = tolerance(backend.dtype, "fsq_quantize", a, indices=k) * (levels // 2)
    return assert_within("fsq_quantize · ⌊L/2⌋ (distance to the nearest integer)", off, np.zeros_like(off), tol,
                         context=ctx)


def preimage(k, levels) -> np.ndarray:
    """The z at which fsq_bound(z) = k exactly (real arithmetic): atanh((k + offset)/half_l) − shift, mid-cell."""
    h, o, s, _ = fsq_constants(levels)
    return np.arctanh((k + o) / h) - s


def fsq_quantize_idempotent_on_grid_points(backend, example, draw):
    a = function_args("fsq_quantize", example, backend.dtype)
    levels = a["levels"]
    k, _ = _grid_levels(backend.fsq_quantize(a["z"], levels), levels)
    _in_levels("fsq_quantize", k, levels, context("fsq_quantize", a, backend))
    again = {"z": as_input(backend.dtype, preimage(k, levels)), "levels": levels}
    expected = ref.fsq_quantize(again["z"], levels, indices=k)
    return assert_within("fsq_quantize(preimage(z_q))", backend.fsq_quantize(again["z"], levels), expected,
                         lambda: tolerance(backend.dtype, "fsq_quantize", again, indices=k),
                         context=context("fsq_quantize", again, backend) + f"\n# the grid levels k = {k.tolist()}")


def fsq_codes_indices_codes_round_trip(backend, example, draw):
    levels = np.asarray(example.args["levels"], dtype=np.int64)
    size = int(np.prod(levels))  # ≤ 9⁴ in the strategies: every row is checked
    every = np.arange(size, dtype=np.int64)
    codes = np.asarray(backend.fsq_indices_to_codes(every, levels), dtype=np.float64)
    ctx = context("fsq_indices_to_codes", {"indices": every, "levels": levels}, backend)
    if codes.shape != (size, levels.size):
        raise LawViolation(f"fsq_indices_to_codes: shape {codes.shape}, expected {(size, levels.size)}\n{ctx}")
    k, _ = _grid_levels(codes, levels)
    _in_levels("fsq_indices_to_codes", k, levels, ctx)
    z = {"z": as_input(backend.dtype, preimage(k, levels)), "levels": levels}
    ctx = context("fsq_indices", z, backend) + "\n# z: the bound's preimage of every codebook row"
    got = np.asarray(backend.fsq_indices(z["z"], levels))
    if got.shape != every.shape or not np.array_equal(got, every):
        bad = int(np.flatnonzero(got.reshape(-1)[:size] != every[: got.size])[0]) if got.shape == every.shape else 0
        raise LawViolation(f"fsq_indices(preimage(fsq_indices_to_codes(i))) ≠ i: at i = {bad} got "
                           f"{got.reshape(-1)[bad] if got.size else got!r} (levels {levels.tolist()}; basis must be "
                           f"cumprod([1] + L[:-1]), coordinate 0 least significant)\n{ctx}")
    return assert_within("fsq_quantize(preimage(row i)) = row i", backend.fsq_quantize(z["z"], levels),
                         ref.fsq_quantize(z["z"], levels, indices=k),
                         lambda: tolerance(backend.dtype, "fsq_quantize", z, indices=k), context=ctx)


def fsq_straight_through_gradient_eq_bound_derivative(backend, example, draw):
    a = function_args("fsq_quantize", example, backend.dtype)
    levels, ctx = a["levels"], context("fsq_quantize", a, backend)
    cotangent = as_input(backend.dtype, draw(strategies.arrays(a["z"].shape, -1.0, 1.0)))
    through_bound = as_input(backend.dtype, cotangent / (levels // 2))  # ȳ / ⌊L/2⌋, as the bound's cotangent
    moved = np.abs(through_bound - cotangent / (levels // 2))  # that rounding, carried by the bound's derivative
    h = fsq_constants(levels)[0]
    actual = backend.vjp("fsq_quantize", a, cotangent)["z"]
    expected = backend.vjp("fsq_bound", a, through_bound)["z"]
    tol = (tolerance(backend.dtype, "fsq_quantize", a, cotangent=cotangent)["z"]
           + tolerance(backend.dtype, "fsq_bound", a, cotangent=through_bound)["z"] + moved * h)
    return assert_within("vjp(fsq_quantize) = vjp(fsq_bound, ȳ/⌊L/2⌋)", actual, expected, tol,
                         context=ctx + f"\n# cotangent ȳ = {cotangent.tolist()}")


def fsq_implicit_codebook_has_distinct_rows(backend, example, draw):
    levels = np.asarray(example.args["levels"], dtype=np.int64)
    size = int(np.prod(levels))
    ctx = context("fsq_implicit_codebook", {"levels": levels}, backend)
    book = np.asarray(backend.fsq_implicit_codebook(levels), dtype=np.float64)
    if book.shape != (size, levels.size):
        raise LawViolation(f"fsq_implicit_codebook: shape {book.shape}, expected ∏L × D = {(size, levels.size)}\n{ctx}")
    if len(np.unique(book, axis=0)) != size:
        raise LawViolation(f"fsq_implicit_codebook: {size - len(np.unique(book, axis=0))} repeated rows\n{ctx}")
    k, _ = _grid_levels(book, levels)
    _in_levels("fsq_implicit_codebook", k, levels, ctx)
    on_grid = dtypes.equal_in_dtype(backend.dtype, book, k / (levels // 2))
    if not np.all(on_grid):
        raise LawViolation(f"fsq_implicit_codebook: entries off the grid k/⌊L/2⌋ (rounded to {backend.dtype}): "
                           f"{book[~on_grid][:4].tolist()}\n{ctx}")
    rows = np.asarray(backend.fsq_indices_to_codes(np.arange(size, dtype=np.int64), levels), dtype=np.float64)
    if rows.shape != book.shape or not np.array_equal(rows, book):
        raise LawViolation(f"fsq_implicit_codebook differs from fsq_indices_to_codes(arange(∏L))\n{ctx}")
    return 0.0


# ----------------------------------------------------------------------------- LFQ
def lfq_quantize_output_on_hypercube(backend, example, draw):
    a = function_args("lfq_quantize", example, backend.dtype)
    z, ctx = a["z"], context("lfq_quantize", a, backend)
    z_q, _ = backend.lfq_quantize(z)
    expected = np.where(z > 0, 1.0, -1.0)  # 0 ↦ −1
    tol = tolerance(backend.dtype, "lfq_quantize", a)[0]
    return assert_within("lfq_quantize (z_q = +1 where z > 0, −1 where z ≤ 0)", np.asarray(z_q), expected, tol,
                         context=ctx)


def lfq_indices_codes_round_trip(backend, example, draw):
    a = function_args("lfq_quantize", example, backend.dtype)
    z, ctx = a["z"], context("lfq_quantize", a, backend)
    _, indices = backend.lfq_quantize(z)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu" or indices.shape != z.shape[:-1]:
        raise LawViolation(f"lfq_quantize: indices must be integers of shape {z.shape[:-1]} (z's [batch, "
                           f"*positions]), got {indices.dtype} {indices.shape}\n{ctx}")
    codes = np.asarray(backend.lfq_indices_to_codes(indices.astype(np.int64), z.shape[-1]))
    signs = np.where(z > 0, 1.0, -1.0)
    if codes.shape != signs.shape or not np.array_equal(codes, signs):
        raise LawViolation(f"lfq_indices_to_codes(lfq_quantize(z).indices) = {codes.tolist()} ≠ the sign codes "
                           f"{signs.tolist()} (index = Σ_i [z_i > 0]·2^(d−1−i), coordinate 0 the most significant "
                           f"bit)\n{ctx}")
    _, again = backend.lfq_quantize(codes)
    if not np.array_equal(np.asarray(again), indices):
        raise LawViolation(f"lfq_quantize(codes).indices = {np.asarray(again).tolist()} ≠ {indices.tolist()}\n{ctx}")
    return 0.0


def _entropies(backend, example):
    a = function_args("lfq_entropy_loss", example, backend.dtype)
    values = backend.lfq_entropy_loss(a["z"], a["inv_temperature"], a["diversity_gamma"])
    return a, tuple(float(v) for v in values), tolerance(backend.dtype, "lfq_entropy_loss", a), \
        context("lfq_entropy_loss", a, backend)


def lfq_entropies_between_zero_and_dim_log_two(backend, example, draw):
    a, (per_sample, codebook, _), tol, ctx = _entropies(backend, example)
    top = a["z"].shape[-1] * math.log(2.0)
    return max(_order_entries("0 ≤ per_sample_entropy", 0.0, per_sample, tol[0], ctx),
               _order_entries("per_sample_entropy ≤ d log 2", per_sample, top, tol[0], ctx),
               _order_entries("0 ≤ codebook_entropy", 0.0, codebook, tol[1], ctx),
               _order_entries("codebook_entropy ≤ d log 2", codebook, top, tol[1], ctx))


def lfq_codebook_entropy_ge_per_sample_entropy(backend, example, draw):
    _, (per_sample, codebook, _), tol, ctx = _entropies(backend, example)
    return _order_entries("per_sample_entropy ≤ codebook_entropy", per_sample, codebook, tol[0] + tol[1], ctx)


def lfq_entropy_loss_eq_per_sample_sub_gamma_codebook(backend, example, draw):
    a, (per_sample, codebook, loss), tol, ctx = _entropies(backend, example)
    gamma = float(a["diversity_gamma"])
    return assert_within("lfq_entropy_loss: loss = per_sample − γ·codebook", loss, per_sample - gamma * codebook,
                         tol[2] + tol[0] + gamma * tol[1], context=ctx)


def _binary_entropy_of_logit(x):
    """h(σ(x)) = log(1 + e^{−|x|}) + |x|·σ(−|x|) (h is even): no cancellation, accurate for large |x|."""
    a = np.abs(x)
    e = np.exp(-a)
    return np.log1p(e) + a * e / (1.0 + e)


def lfq_per_sample_entropy_eq_sum_of_bit_entropies(backend, example, draw):
    a, (per_sample, _, _), tol, ctx = _entropies(backend, example)
    bits = _binary_entropy_of_logit(4.0 * float(a["inv_temperature"]) * a["z"])
    return assert_within("lfq_entropy_loss: per_sample = mean_n Σ_i h(σ(4 z_i/τ))", per_sample,
                         float(bits.sum(axis=-1).mean()), tol[0], context=ctx)


def lfq_straight_through_gradient(backend, example, draw):
    a = function_args("lfq_quantize", example, backend.dtype)
    cotangent = as_input(backend.dtype, draw(strategies.arrays(a["z"].shape, -1.0, 1.0)))
    got = np.asarray(backend.vjp("lfq_quantize", a, cotangent)["z"])
    if got.shape != cotangent.shape or not np.array_equal(got, cotangent):
        raise LawViolation(f"vjp(lfq_quantize): z̄ = {got.tolist()}, expected the upstream gradient "
                           f"{cotangent.tolist()} exactly\n{context('lfq_quantize', a, backend)}")
    return 0.0


_LAWS = {
    "lfq_quantize_output_on_hypercube": ("lfq_quantize", lfq_quantize_output_on_hypercube),
    "lfq_indices_codes_round_trip": ("lfq_quantize", lfq_indices_codes_round_trip),
    "lfq_entropies_between_zero_and_dim_log_two": ("lfq_entropy_loss", lfq_entropies_between_zero_and_dim_log_two),
    "lfq_codebook_entropy_ge_per_sample_entropy": ("lfq_entropy_loss", lfq_codebook_entropy_ge_per_sample_entropy),
    "lfq_entropy_loss_eq_per_sample_sub_gamma_codebook": ("lfq_entropy_loss",
                                                          lfq_entropy_loss_eq_per_sample_sub_gamma_codebook),
    "lfq_per_sample_entropy_eq_sum_of_bit_entropies": ("lfq_entropy_loss",
                                                       lfq_per_sample_entropy_eq_sum_of_bit_entropies),
    "lfq_straight_through_gradient": ("lfq_quantize", lfq_straight_through_gradient),
    "fsq_bound_rounds_into_levels": ("fsq_bound", fsq_bound_rounds_into_levels),
    "fsq_quantize_output_on_grid": ("fsq_quantize", fsq_quantize_output_on_grid),
    "fsq_quantize_idempotent_on_grid_points": ("fsq_quantize", fsq_quantize_idempotent_on_grid_points),
    "fsq_codes_indices_codes_round_trip": ("fsq_implicit_codebook", fsq_codes_indices_codes_round_trip),
    "fsq_straight_through_gradient_eq_bound_derivative": ("fsq_quantize",
                                                          fsq_straight_through_gradient_eq_bound_derivative),
    "fsq_implicit_codebook_has_distinct_rows": ("fsq_implicit_codebook", fsq_implicit_codebook_has_distinct_rows),
}

CHECKS: dict[str, Check] = {name: Check(name, examples_for(function), run) for name, (function, run) in _LAWS.items()}
CHECKS.update(quantizers_rvq.CHECKS)
CHECKS.update(quantizers_positions.CHECKS)
