"""The quantizers chapter on spatial and sequence inputs: z [batch, *positions, dim] is its N = batch·∏positions
vectors, each quantized on its own (`vaespec.spec.quantizers`, "Shapes"), as the VQ chapter's
`laws.vq_positions` states for `quantize`.

Each law compares a backend on a positioned input with the same backend on its rows `z.reshape(N, dim)`. The
positioned input is drawn from the example's rows: B′ ∈ {1, 2} examples of 1–2 position axes of 1–3 each (more
than one position), its vectors the example's rows in turn from a drawn start (so the boundary and zero entries
the strategies draw are kept, and neighbouring positions differ when the example has several rows). Where a
discrete choice may differ between the two calls (an FSQ level or an RVQ code within its bound; each judged by
the chapter's criterion), the float64 reference's difference at the two calls' choices is what the backend's
difference must match (`laws.vq_positions.rows_difference`); the tolerances are the policy's of each call, added.
Integer outputs must agree exactly where the choices do.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.contract import FUNCTIONS

from ..strategies.chapters import examples_for
from ..strategies.vq import positions
from .checking import Check, assert_exact, context, function_args, reference_at, reference_vjp_at
from .checking_quantizers import fsq_choices, rvq_choices
from .compare import as_input
from .tolerance import tolerance
from .vq_positions import rows_difference

COTANGENTS = (1.0, -0.5, 2.0)


def positioned(draw, rows: np.ndarray) -> np.ndarray:
    """[B′, *positions, D] made of the rows of `rows` [B, D], in turn from a drawn start (B′ ∈ {1, 2}, 1–2 position
    axes of more than one position in all)."""
    where = draw(positions(2, 3).filter(lambda p: int(np.prod(p)) > 1))
    batch = draw(st.integers(1, 2))
    count = batch * int(np.prod(where))
    picks = (draw(st.integers(0, len(rows) - 1)) + np.arange(count)) % len(rows)
    return rows[picks].reshape(batch, *where, rows.shape[-1])


def _vectors(z: np.ndarray) -> np.ndarray:
    return z.reshape(-1, z.shape[-1])


def _atleast_1d_tolerance(dtype: str, function: str, args) -> tuple:
    """`tolerance` of `function` at `args` as a tuple of at least 1-d arrays (its outputs compared as such)."""
    return tuple(np.atleast_1d(tolerance(dtype, function, args)))


# ----------------------------------------------------------------------------- FSQ
def fsq_positions_eq_rows(backend, example, draw):
    a = function_args("fsq_quantize", example, backend.dtype)
    levels = a["levels"]
    pos = {"z": positioned(draw, _vectors(a["z"])), "levels": levels}
    rows = {"z": _vectors(pos["z"]), "levels": levels}
    ctx = context("fsq_quantize", pos, backend) + "\n# compared with z.reshape(N, dim)"
    worst = rows_difference("fsq_bound", backend.fsq_bound(pos["z"], levels), backend.fsq_bound(rows["z"], levels),
                        reference_at("fsq_bound", pos), reference_at("fsq_bound", rows),
                        lambda: tolerance(backend.dtype, "fsq_bound", pos),
                        lambda: tolerance(backend.dtype, "fsq_bound", rows), ctx)
    k, k_rows = fsq_choices(backend, "fsq_quantize", pos, ctx), fsq_choices(backend, "fsq_quantize", rows, ctx)
    worst = max(worst, rows_difference(
        "fsq_quantize", backend.fsq_quantize(pos["z"], levels), backend.fsq_quantize(rows["z"], levels),
        reference_at("fsq_quantize", pos, k), reference_at("fsq_quantize", rows, k_rows),
        lambda: tolerance(backend.dtype, "fsq_quantize", pos, indices=k),
        lambda: tolerance(backend.dtype, "fsq_quantize", rows, indices=k_rows), ctx))
    indices = np.asarray(backend.fsq_indices(pos["z"], levels))
    assert_exact("fsq_indices on z [B, *positions, D] (the index of its own levels at every position)", indices,
                 reference_at("fsq_indices", pos, k), ctx)
    same = np.all(k.reshape(k_rows.shape) == k_rows, axis=-1)  # vectors whose levels the two calls share
    assert_exact("fsq_indices (positions vs rows, where the levels agree)", indices.reshape(-1)[same],
                 np.asarray(backend.fsq_indices(rows["z"], levels))[same], ctx)
    codes = np.asarray(backend.fsq_indices_to_codes(indices, levels), dtype=np.float64)
    assert_exact("fsq_indices_to_codes of indices [B, *positions] (vs indices.reshape(N), reshaped)", codes,
                 np.asarray(backend.fsq_indices_to_codes(indices.reshape(-1), levels),
                            dtype=np.float64).reshape(*indices.shape, levels.size), ctx)
    return worst


# ----------------------------------------------------------------------------- LFQ
def lfq_positions_eq_rows(backend, example, draw):
    a = function_args("lfq_entropy_loss", example, backend.dtype)
    pos = {**a, "z": positioned(draw, _vectors(a["z"]))}
    rows = {**a, "z": _vectors(pos["z"])}
    ctx = context("lfq_entropy_loss", pos, backend) + "\n# compared with z.reshape(N, dim)"
    z_q, indices = backend.lfq_quantize(pos["z"])
    z_q_rows, indices_rows = backend.lfq_quantize(rows["z"])
    worst = rows_difference("lfq_quantize z_q", np.asarray(z_q), np.asarray(z_q_rows),
                        reference_at("lfq_quantize", pos)[0], reference_at("lfq_quantize", rows)[0],
                        lambda: tolerance(backend.dtype, "lfq_quantize", pos)[0],
                        lambda: tolerance(backend.dtype, "lfq_quantize", rows)[0], ctx)
    assert_exact("lfq_quantize indices [B, *positions]", indices, reference_at("lfq_quantize", pos)[1], ctx)
    assert_exact("lfq_quantize indices (positions vs rows)", np.asarray(indices).reshape(-1), indices_rows, ctx)
    for function in ("lfq_entropy_loss", "lfq_commitment_loss"):
        names = [arg.name for arg in FUNCTIONS[function].args]
        own, own_rows = {n: pos[n] for n in names}, {n: rows[n] for n in names}
        worst = max(worst, rows_difference(
            function, tuple(np.atleast_1d(getattr(backend, function)(*own.values()))),
            tuple(np.atleast_1d(getattr(backend, function)(*own_rows.values()))),
            tuple(np.atleast_1d(reference_at(function, own))), tuple(np.atleast_1d(reference_at(function, own_rows))),
            partial(_atleast_1d_tolerance, backend.dtype, function, own),
            partial(_atleast_1d_tolerance, backend.dtype, function, own_rows), ctx))
        outputs = len(FUNCTIONS[function].outputs)
        picks = [float(as_input(backend.dtype, np.float64(draw(st.sampled_from(COTANGENTS))))) for _ in range(outputs)]
        cotangent = tuple(picks) if outputs > 1 else picks[0]
        worst = max(worst, rows_difference(
            f"vjp({function})", backend.vjp(function, own, cotangent), backend.vjp(function, own_rows, cotangent),
            reference_vjp_at(function, own, cotangent), reference_vjp_at(function, own_rows, cotangent),
            partial(tolerance, backend.dtype, function, own, cotangent=cotangent),
            partial(tolerance, backend.dtype, function, own_rows, cotangent=cotangent),
            ctx + f"\n# cotangent {cotangent!r}"))
    return worst


# ----------------------------------------------------------------------------- residual VQ
def _rvq_positioned(function: str, backend, example, draw):
    """(args with z_e [B′, *positions, D], the same with z_e.reshape(N, D), the context, each call's judged stage
    choices) from the example's vectors."""
    a = function_args(function, example, backend.dtype)
    pos = {**a, "z_e": positioned(draw, _vectors(a["z_e"]))}
    rows = {**a, "z_e": _vectors(pos["z_e"])}
    ctx = context(function, pos, backend) + "\n# compared with z_e.reshape(N, D)"
    return pos, rows, ctx, rvq_choices(backend, function, pos, ctx), rvq_choices(backend, function, rows, ctx)


def rvq_positions_eq_rows(backend, example, draw):
    a = function_args("rvq_quantize", example, backend.dtype)
    pos = {**a, "z_e": positioned(draw, _vectors(a["z_e"]))}
    rows = {**a, "z_e": _vectors(pos["z_e"])}
    ctx = context("rvq_quantize", pos, backend) + "\n# compared with z_e.reshape(N, D)"
    k, k_rows = rvq_choices(backend, "rvq_quantize", pos, ctx), rvq_choices(backend, "rvq_quantize", rows, ctx)
    order = ("z_e", "codebooks", "num_stages")
    z_q, _ = backend.rvq_quantize(*(pos[n] for n in order))
    z_q_rows, _ = backend.rvq_quantize(*(rows[n] for n in order))
    worst = rows_difference("rvq_quantize z_q", np.asarray(z_q), np.asarray(z_q_rows),
                        reference_at("rvq_quantize", pos, k)[0], reference_at("rvq_quantize", rows, k_rows)[0],
                        lambda: tolerance(backend.dtype, "rvq_quantize", pos, indices=k)[0],
                        lambda: tolerance(backend.dtype, "rvq_quantize", rows, indices=k_rows)[0], ctx)
    function = "rvq_commitment_loss"
    worst = max(worst, rows_difference(
        function, getattr(backend, function)(*(pos[n] for n in order)),
        getattr(backend, function)(*(rows[n] for n in order)),
        reference_at(function, pos, k), reference_at(function, rows, k_rows),
        lambda: tolerance(backend.dtype, function, pos, indices=k),
        lambda: tolerance(backend.dtype, function, rows, indices=k_rows),
        ctx))
    stages = a["codebooks"].shape[0]
    cotangent = as_input(backend.dtype, np.asarray([draw(st.sampled_from(COTANGENTS)) for _ in range(stages)]))
    return max(worst, rows_difference(
        f"vjp({function})", backend.vjp(function, pos, cotangent), backend.vjp(function, rows, cotangent),
        reference_vjp_at(function, pos, cotangent, k), reference_vjp_at(function, rows, cotangent, k_rows),
        lambda: tolerance(backend.dtype, function, pos, cotangent=cotangent, indices=k),
        lambda: tolerance(backend.dtype, function, rows, cotangent=cotangent, indices=k_rows),
        ctx + f"\n# cotangent {cotangent.tolist()!r}"))


def rvq_codebook_loss_positions_eq_rows(backend, example, draw):
    function = "rvq_codebook_loss"
    pos, rows, ctx, k, k_rows = _rvq_positioned(function, backend, example, draw)
    order = ("z_e", "codebooks", "num_stages")
    worst = rows_difference(
        function, backend.rvq_codebook_loss(*(pos[n] for n in order)),
        backend.rvq_codebook_loss(*(rows[n] for n in order)),
        reference_at(function, pos, k), reference_at(function, rows, k_rows),
        lambda: tolerance(backend.dtype, function, pos, indices=k),
        lambda: tolerance(backend.dtype, function, rows, indices=k_rows),
        ctx)
    stages = pos["codebooks"].shape[0]
    cotangent = as_input(backend.dtype, np.asarray([draw(st.sampled_from(COTANGENTS)) for _ in range(stages)]))
    return max(worst, rows_difference(
        f"vjp({function})", backend.vjp(function, pos, cotangent), backend.vjp(function, rows, cotangent),
        reference_vjp_at(function, pos, cotangent, k), reference_vjp_at(function, rows, cotangent, k_rows),
        lambda: tolerance(backend.dtype, function, pos, cotangent=cotangent, indices=k),
        lambda: tolerance(backend.dtype, function, rows, cotangent=cotangent, indices=k_rows),
        ctx + f"\n# cotangent {cotangent.tolist()!r}"))


def rvq_ema_update_positions_eq_rows(backend, example, draw):
    function = "rvq_ema_update"
    pos, rows, ctx, k, k_rows = _rvq_positioned(function, backend, example, draw)
    order = [arg.name for arg in FUNCTIONS[function].args]
    out = backend.rvq_ema_update(*(pos[n] for n in order))
    out_rows = backend.rvq_ema_update(*(rows[n] for n in order))
    assert_exact("rvq_ema_update ema_step (positions vs rows)", np.asarray(out[3]), np.asarray(out_rows[3]), ctx)
    expected, expected_rows = reference_at(function, pos, k), reference_at(function, rows, k_rows)
    tol, tol_rows = tolerance(backend.dtype, function, pos, indices=k), tolerance(backend.dtype, function, rows,
                                                                                  indices=k_rows)
    return rows_difference(function, tuple(out[:3]), tuple(out_rows[:3]), tuple(expected[:3]),
                           tuple(expected_rows[:3]), tuple(tol[:3]), tuple(tol_rows[:3]), ctx)


CHECKS: dict[str, Check] = {c.law: c for c in (
    Check("fsq_positions_eq_rows", examples_for("fsq_quantize"), fsq_positions_eq_rows),
    Check("lfq_positions_eq_rows", examples_for("lfq_entropy_loss"), lfq_positions_eq_rows),
    Check("rvq_positions_eq_rows", examples_for("rvq_quantize"), rvq_positions_eq_rows),
    Check("rvq_codebook_loss_positions_eq_rows", examples_for("rvq_codebook_loss"),
          rvq_codebook_loss_positions_eq_rows),
    Check("rvq_ema_update_positions_eq_rows", examples_for("rvq_ema_update"), rvq_ema_update_positions_eq_rows),
)}
