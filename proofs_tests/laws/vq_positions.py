"""Laws of spatial and sequence quantization: z_e [batch, *positions, embedding] is its N = batch·∏positions
vectors, each quantized on its own (spec chapter `vaespec.spec.vq`).

Each law compares a backend on a positioned z_e with the same backend on `z_e.reshape(N, D)`. A draw with
positions = () is viewed as one example of B tokens, [1, B, D], so every draw says something. Where a
near tie lets the two calls choose differently (each choice judged by the near-tie criterion), the float64
reference's difference at the two choices is what the backend's difference must match: conditioned on equal
choices it is 0. Tolerances: the policy's bound of each call (`laws.tolerance.tolerance`), added.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.contract import FUNCTIONS

from ..strategies import vq as strategies_vq
from .checking import Check, assert_exact, function_args, reference_at, reference_vjp_at
from .checking_vq import backend_choices, check_indices, judge_choices, unambiguous, vectors, vq_context
from .compare import LawViolation, as_input, assert_within, equal_and_finite, leaves, tolerance_from
from .tolerance import tolerance


def positioned(z_e: np.ndarray) -> np.ndarray:
    """z_e itself when it has positions, else [B, D] viewed as one example of B tokens, [1, B, D]."""
    return z_e if z_e.ndim > 2 else z_e[None]


def rows_difference(function: str, actual, rows, expected, expected_rows, tol, tol_rows, ctx) -> float:
    """|(actual − rows) − (expected − expected_rows)| ≤ tol + tol_rows entrywise, positioned leaves reshaped to
    the rows' shapes. `tol` and `tol_rows` may be functions of no arguments giving them (as `assert_within`'s
    tolerance): they are called only when some difference is unequal."""
    got = {p: np.asarray(a, np.float64) for p, a in leaves(actual)}
    want = {p: np.asarray(a, np.float64) for p, a in leaves(expected)}
    got_rows = dict(leaves(rows))
    want_rows = dict(leaves(expected_rows))
    if got.keys() != got_rows.keys() or got.keys() != want.keys():
        raise LawViolation(f"{function}: outputs {sorted(got)} on positions, {sorted(got_rows)} on rows\n{ctx}")
    got_diff, want_diff = {}, {}  # per path: actual − rows and expected − expected_rows, in the rows' shapes
    for path, value in got.items():
        shape = np.shape(want_rows[path])
        if value.size != np.size(want_rows[path]) or value.shape != want[path].shape:
            raise LawViolation(f"{function}{path}: shape {value.shape} on positions, expected {want[path].shape} "
                               f"(its rows: {shape})\n{ctx}")
        got_diff[path] = value.reshape(shape) - np.asarray(got_rows[path], np.float64)
        want_diff[path] = want[path].reshape(shape) - np.asarray(want_rows[path], np.float64)
    if equal_and_finite(got_diff, want_diff):
        return 0.0
    tols = dict(leaves(tol() if callable(tol) else tol))
    tols_rows = dict(leaves(tol_rows() if callable(tol_rows) else tol_rows))
    worst = 0.0
    for path, lhs in got_diff.items():
        rhs = want_diff[path]
        bound = np.reshape(np.broadcast_to(tols[path], want[path].shape), rhs.shape) + tols_rows[path]
        worst = max(worst, assert_within(f"{function}{path} (positions − rows)", lhs, rhs, bound, context=ctx))
    return worst


def quantize_positions_eq_quantize_rows(backend, example, draw):
    a = function_args("quantize", example, backend.dtype)
    z_e, codebook = positioned(a["z_e"]), a["codebook"]
    flat = vectors(z_e)
    ctx = vq_context("quantize", {"z_e": z_e, "codebook": codebook}, backend) + "\n# compared with z_e.reshape(N, D)"
    z_q, indices = backend.quantize(z_e, codebook)
    z_q_rows, indices_rows = backend.quantize(flat, codebook)
    worst = judge_choices("quantize", backend.dtype, z_e, codebook, indices, ctx)
    worst = max(worst, judge_choices("quantize", backend.dtype, flat, codebook, indices_rows, ctx))
    indices = check_indices("quantize", indices, z_e.shape[:-1], codebook.shape[0], ctx).reshape(-1)
    keep = unambiguous(backend.dtype, flat, codebook)
    if not np.array_equal(indices[keep], np.asarray(indices_rows)[keep]):
        b = int(np.flatnonzero(indices[keep] != np.asarray(indices_rows)[keep])[0])
        raise LawViolation(f"quantize: vector {int(np.flatnonzero(keep)[b])} (C order) got code "
                           f"{int(indices[keep][b])} in z_e {z_e.shape}, code {int(np.asarray(indices_rows)[keep][b])} "
                           f"as a row of z_e.reshape(N, D), with a clear nearest code\n{ctx}")
    z_q = np.asarray(z_q, np.float64)
    if z_q.shape != z_e.shape:
        raise LawViolation(f"quantize: z_q has shape {z_q.shape}, expected z_e's {z_e.shape}\n{ctx}")
    row = codebook[np.asarray(indices_rows)[keep]]
    bound = 2 * tolerance_from(tolerance_policy_bound(backend.dtype), np.abs(flat[keep]) + np.abs(row), sides=1)
    return max(worst, assert_within("quantize (positions vs rows)", vectors(z_q)[keep],
                                    np.asarray(z_q_rows, np.float64)[keep], bound, context=ctx))


def tolerance_policy_bound(dtype: str):
    """The straight-through sum z_e + (e − z_e): two roundings (`laws.vq`'s bound for a row's copy)."""
    from vaespec.spec.tolerances import bound

    return bound(dtype, 2, 2)


def aux_losses_positions_eq_rows(backend, example, draw):
    a = function_args("codebook_loss", example, backend.dtype)
    pos = {"z_e": positioned(a["z_e"]), "codebook": a["codebook"]}
    rows = {"z_e": vectors(pos["z_e"]), "codebook": a["codebook"]}
    cotangent = float(as_input(backend.dtype, np.float64(draw(st.sampled_from((1.0, -0.5, 2.0))))))
    ctx = vq_context("codebook_loss", pos, backend) + f"\n# compared with z_e.reshape(N, D); cotangent {cotangent!r}"
    k = backend_choices(backend, "codebook_loss", pos, ctx)
    k_rows = backend_choices(backend, "codebook_loss", rows, ctx)
    worst = 0.0
    for function in ("codebook_loss", "commitment_loss"):
        worst = max(worst, rows_difference(
            function, getattr(backend, function)(pos["z_e"], pos["codebook"]),
            getattr(backend, function)(rows["z_e"], rows["codebook"]),
            reference_at(function, pos, k), reference_at(function, rows, k_rows),
            partial(tolerance, backend.dtype, function, pos, indices=k),
            partial(tolerance, backend.dtype, function, rows, indices=k_rows), ctx))
        worst = max(worst, rows_difference(
            f"vjp({function})", backend.vjp(function, pos, cotangent), backend.vjp(function, rows, cotangent),
            reference_vjp_at(function, pos, cotangent, k), reference_vjp_at(function, rows, cotangent, k_rows),
            partial(tolerance, backend.dtype, function, pos, cotangent=cotangent, indices=k),
            partial(tolerance, backend.dtype, function, rows, cotangent=cotangent, indices=k_rows), ctx))
    return worst


def ema_update_positions_eq_rows(backend, example, draw):
    a = {**function_args("ema_update", example, backend.dtype), "training": True}
    pos = {**a, "z_e": positioned(a["z_e"])}
    rows = {**a, "z_e": vectors(pos["z_e"])}
    ctx = vq_context("ema_update", pos, backend) + "\n# compared with z_e.reshape(N, D)"
    k = backend_choices(backend, "ema_update", pos, ctx)
    k_rows = backend_choices(backend, "ema_update", rows, ctx)
    order = [arg.name for arg in FUNCTIONS["ema_update"].args]
    out = backend.ema_update(*(pos[n] for n in order))
    out_rows = backend.ema_update(*(rows[n] for n in order))
    assert_exact("ema_update ema_step (positions vs rows)", out[3], out_rows[3], ctx)
    expected, expected_rows = reference_at("ema_update", pos, k), reference_at("ema_update", rows, k_rows)
    tol = tolerance(backend.dtype, "ema_update", pos, indices=k)
    tol_rows = tolerance(backend.dtype, "ema_update", rows, indices=k_rows)
    return rows_difference("ema_update", tuple(out[:3]), tuple(out_rows[:3]), tuple(expected[:3]),
                       tuple(expected_rows[:3]), tuple(tol[:3]), tuple(tol_rows[:3]), ctx)


def codebook_health_positions_eq_rows(backend, example, draw):
    a = function_args("codebook_health", example, backend.dtype)
    indices = a["indices"] if a["indices"].ndim > 1 else a["indices"][None]
    codes = a["num_embeddings"]
    pos, rows = {"indices": indices, "num_embeddings": codes}, {"indices": indices.reshape(-1), "num_embeddings": codes}
    ctx = vq_context("codebook_health", pos, backend) + "\n# compared with indices.reshape(N)"
    usage, perplexity, dead = backend.codebook_health(indices, codes)
    usage_rows, perplexity_rows, dead_rows = backend.codebook_health(indices.reshape(-1), codes)
    assert_exact("codebook_health usage (positions vs rows)", usage, usage_rows, ctx)
    assert_exact("codebook_health dead_codes (positions vs rows)", dead, dead_rows, ctx)
    bound = tolerance(backend.dtype, "codebook_health", pos)[1] + tolerance(backend.dtype, "codebook_health", rows)[1]
    return assert_within("codebook_health perplexity (positions vs rows)", perplexity, perplexity_rows, bound,
                         context=ctx)


_for = strategies_vq.vq_examples_for
CHECKS = {c.law: c for c in (
    Check("quantize_positions_eq_quantize_rows", _for("quantize"), quantize_positions_eq_quantize_rows),
    Check("aux_losses_positions_eq_rows", _for("codebook_loss"), aux_losses_positions_eq_rows),
    Check("ema_update_positions_eq_rows", _for("ema_update"), ema_update_positions_eq_rows),
    Check("codebook_health_positions_eq_rows", _for("codebook_health"), codebook_health_positions_eq_rows),
)}
