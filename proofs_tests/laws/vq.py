"""Laws of quantization and the VQ losses (spec chapter `vaespec.spec.vq`), checked on a backend.

Discrete choices are judged by the near-tie criterion; value comparisons use the policy's
bounds (`laws.tolerance.tolerance`: the policy's bound × the reference's magnitudes); stop-gradient and
straight-through laws are exact, because IEEE arithmetic makes them so (a zero is a zero, a copied cotangent is a copy).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.tolerances import bound

from ..strategies import vae as strategies
from ..strategies import vq as strategies_vq
from . import declared
from .checking import Check, function_args
from .checking_vq import (
    backend_choices,
    check_indices,
    judge_choices,
    unambiguous,
    vq_context,
)
from .compare import LawViolation, as_input, assert_within, literal, tolerance_from
from .tolerance import tolerance


def _args(function, example, backend):
    return function_args(function, example, backend)


def _straight_through_tolerance(dtype, z_e, rows):
    """z_e + (e − z_e) vs e: two roundings of operands at most |z_e| + |e| in size."""
    return tolerance_from(bound(dtype, 2, 2), np.abs(z_e) + np.abs(rows), sides=1)


def quantize_nearest_code_within_bound(backend, example, draw):
    a = _args("quantize", example, backend)
    _, indices = backend.quantize(a["z_e"], a["codebook"])
    return judge_choices("quantize", backend.dtype, a["z_e"], a["codebook"], indices,
                         vq_context("quantize", a, backend))


def quantize_output_is_codebook_row(backend, example, draw):
    a = _args("quantize", example, backend)
    ctx = vq_context("quantize", a, backend)
    z_q, indices = backend.quantize(a["z_e"], a["codebook"])
    indices = check_indices("quantize", indices, a["z_e"].shape[:-1], a["codebook"].shape[0], ctx)
    rows = a["codebook"][indices]
    return assert_within("quantize", z_q, rows, lambda: _straight_through_tolerance(backend.dtype, a["z_e"], rows),
                         context=ctx)


def quantize_ties_to_lowest_index(backend, example, draw):
    z_e, codebook = example.args["z_e"], example.args["codebook"]  # small integers: exact in every dtype
    ctx = vq_context("quantize", {"z_e": z_e, "codebook": codebook}, backend)
    _, indices = backend.quantize(z_e, codebook)
    indices = check_indices("quantize", indices, z_e.shape[:-1], codebook.shape[0], ctx)
    flat = z_e.reshape(-1, z_e.shape[-1])  # [B, *positions, D] is its N vectors, in C order
    d = ((flat[:, None, :] - codebook[None]) ** 2).sum(2)  # exact: integers ≤ 128
    expected = d.argmin(axis=1).reshape(indices.shape)  # numpy's argmin returns the first (lowest) minimal index
    if not np.array_equal(indices, expected):
        at = tuple(int(i) for i in np.argwhere(indices != expected)[0])  # (b, *position)
        n = int(np.ravel_multi_index(at, indices.shape))
        tied = np.flatnonzero(d[n] == d[n].min()).tolist()
        raise LawViolation(f"quantize: z_e{list(at)} is equally near codes {tied}; expected the lowest, "
                           f"{int(expected[at])}, got {int(indices[at])}\n{ctx}")
    return 0.0


def quantize_idempotent(backend, example, draw):
    a = _args("quantize", example, backend)
    z_q, _ = backend.quantize(a["z_e"], a["codebook"])
    z_q = as_input(backend.dtype, np.asarray(z_q))
    again = {"z_e": z_q, "codebook": a["codebook"]}
    ctx = vq_context("quantize", again, backend)
    z_qq, indices = backend.quantize(z_q, a["codebook"])
    worst = judge_choices("quantize", backend.dtype, z_q, a["codebook"], indices, ctx)
    keep = unambiguous(backend.dtype, z_q, a["codebook"])
    # Both outputs are a row up to their own straight-through rounding: the first of z_e, the second of z_q.
    row = a["codebook"][np.asarray(indices)[keep]]
    tol = (_straight_through_tolerance(backend.dtype, a["z_e"][keep], row)
           + _straight_through_tolerance(backend.dtype, z_q[keep], row))
    return max(worst, assert_within("quantize∘quantize", z_qq[keep], z_q[keep], tol, context=ctx))


def quantize_codebook_permutation_equivariance(backend, example, draw):
    a = _args("quantize", example, backend)
    codes = a["codebook"].shape[0]
    perm = np.array(draw(st.permutations(range(codes))), dtype=np.int64)
    inverse = np.argsort(perm)
    permuted = {"z_e": a["z_e"], "codebook": a["codebook"][perm]}
    ctx = vq_context("quantize", permuted, backend) + f"\n# permutation: {perm.tolist()}"
    z_q, indices = backend.quantize(a["z_e"], a["codebook"])
    z_qp, indices_p = backend.quantize(permuted["z_e"], permuted["codebook"])
    worst = judge_choices("quantize", backend.dtype, permuted["z_e"], permuted["codebook"], indices_p, ctx)
    keep = unambiguous(backend.dtype, a["z_e"], a["codebook"])
    moved = inverse[np.asarray(indices)[keep]]
    if not np.array_equal(np.asarray(indices_p)[keep], moved):
        raise LawViolation(f"quantize: after permuting the codebook the indices {np.asarray(indices_p)[keep].tolist()} "
                           f"are not π⁻¹ of the original {np.asarray(indices)[keep].tolist()} (π⁻¹ gives "
                           f"{moved.tolist()}), on rows with a clear nearest code\n{ctx}")
    tol = _straight_through_tolerance(backend.dtype, a["z_e"][keep], z_q[keep]) * 2
    return max(worst, assert_within("quantize", z_qp[keep], z_q[keep], tol, context=ctx))


def quantize_translation_invariance(backend, example, draw):
    a = _args("quantize", example, backend)
    shift = as_input(backend.dtype, draw(strategies.arrays((a["z_e"].shape[-1],), -10.0, 10.0)))
    moved = {"z_e": as_input(backend.dtype, a["z_e"] + shift),
             "codebook": as_input(backend.dtype, a["codebook"] + shift)}
    ctx = vq_context("quantize", moved, backend) + f"\n# translation: {shift.tolist()}"
    _, indices = backend.quantize(a["z_e"], a["codebook"])
    _, indices_m = backend.quantize(moved["z_e"], moved["codebook"])
    worst = judge_choices("quantize", backend.dtype, moved["z_e"], moved["codebook"], indices_m, ctx)
    # Rounding the translated inputs may itself move a near-tie: insist only where both problems are clear.
    keep = (unambiguous(backend.dtype, a["z_e"], a["codebook"])
            & unambiguous(backend.dtype, moved["z_e"], moved["codebook"]))
    original, translated = np.asarray(indices)[keep], np.asarray(indices_m)[keep]
    if not np.array_equal(original, translated):
        raise LawViolation(f"quantize: translating z_e and the codebook changed the indices {original.tolist()} to "
                           f"{translated.tolist()} on rows with a clear nearest code\n{ctx}")
    return worst


def quantize_straight_through_gradient(backend, example, draw):
    a = _args("quantize", example, backend)
    cotangent = as_input(backend.dtype, draw(strategies.arrays(a["z_e"].shape, -1.0, 1.0)))
    ctx = vq_context("quantize", a, backend) + f"\n# backend.vjp('quantize', args, {literal(cotangent)})"
    grads = backend.vjp("quantize", a, cotangent)
    assert_within("vjp(quantize)['z_e']", grads["z_e"], cotangent, 0.0, context=ctx)
    assert_within("vjp(quantize)['codebook']", grads["codebook"], np.zeros_like(a["codebook"]), 0.0, context=ctx)
    return 0.0


def aux_losses_zero_at_codebook_rows(backend, example, draw):
    a = _args("codebook_loss", example, backend)
    codebook = a["codebook"]
    rows = np.array(draw(st.lists(st.integers(0, codebook.shape[0] - 1), min_size=1, max_size=6)))
    at_rows = {"z_e": codebook[rows].copy(), "codebook": codebook}
    ctx = vq_context("codebook_loss", at_rows, backend)
    indices = backend_choices(backend, "codebook_loss", at_rows, ctx)
    # Where another row is within the near-tie bound the backend may pick it; allow that distance.
    allowed = float(np.mean(((codebook[indices] - at_rows["z_e"]) ** 2).sum(1))) / codebook.shape[1]
    worst = 0.0
    for function in ("codebook_loss", "commitment_loss"):
        value = getattr(backend, function)(at_rows["z_e"], codebook)
        tol = allowed + float(tolerance(backend.dtype, function, at_rows, indices=indices))
        worst = max(worst, assert_within(function, value, 0.0, tol, context=ctx))
    return worst


def codebook_loss_eq_commitment_loss(backend, example, draw):
    a = _args("codebook_loss", example, backend)
    ctx = vq_context("codebook_loss", a, backend)
    indices = backend_choices(backend, "codebook_loss", a, ctx)
    lhs = backend.codebook_loss(a["z_e"], a["codebook"])
    rhs = backend.commitment_loss(a["z_e"], a["codebook"])
    return assert_within("codebook_loss", lhs, rhs,
                         lambda: tolerance(backend.dtype, "codebook_loss", a, indices=indices), context=ctx)


def _scalar_cotangent(backend, draw):
    return float(as_input(backend.dtype, np.float64(draw(st.one_of(st.just(1.0), strategies.floats(-2.0, 2.0))))))


def codebook_loss_gradient_reaches_codebook_only(backend, example, draw):
    a = _args("codebook_loss", example, backend)
    cotangent = _scalar_cotangent(backend, draw)
    ctx = vq_context("codebook_loss", a, backend) + f"\n# cotangent {cotangent!r}"
    indices = backend_choices(backend, "codebook_loss", a, ctx)
    to_codebook = backend.vjp("codebook_loss", a, cotangent)
    to_encoder = backend.vjp("commitment_loss", a, cotangent)
    assert_within("vjp(codebook_loss)['z_e'] (stop-gradient)", to_codebook["z_e"], np.zeros_like(a["z_e"]), 0.0,
                  context=ctx)
    expected = np.zeros_like(a["codebook"])
    np.add.at(expected, indices, -np.asarray(to_encoder["z_e"]))
    tol = tolerance(backend.dtype, "codebook_loss", a, cotangent=cotangent, indices=indices)["codebook"]
    return assert_within("vjp(codebook_loss)['codebook'] vs −scatter(vjp(commitment_loss)['z_e'])",
                         to_codebook["codebook"], expected, 2 * tol, context=ctx)


def commitment_loss_gradient_reaches_encoder_only(backend, example, draw):
    a = _args("commitment_loss", example, backend)
    cotangent = _scalar_cotangent(backend, draw)
    ctx = vq_context("commitment_loss", a, backend) + f"\n# cotangent {cotangent!r}"
    indices = backend_choices(backend, "commitment_loss", a, ctx)
    grads = backend.vjp("commitment_loss", a, cotangent)
    assert_within("vjp(commitment_loss)['codebook'] (stop-gradient)", grads["codebook"],
                  np.zeros_like(a["codebook"]), 0.0, context=ctx)
    z_q = a["codebook"][indices]
    expected = 2.0 * cotangent * (a["z_e"] - z_q) / a["z_e"].size
    tol = tolerance(backend.dtype, "commitment_loss", a, cotangent=cotangent, indices=indices)["z_e"]
    return assert_within("vjp(commitment_loss)['z_e']", grads["z_e"], expected, tol, context=ctx)


def vq_forward_eq_decode_quantize_encode(backend, example, draw):
    a = _args("vq_forward", example, backend)
    ctx = vq_context("vq_forward", a, backend)
    x_hat, indices = backend.vq_forward(a["arch"], a["params"], a["codebook"], a["x"])
    z_e = backend.vq_encode(a["arch"], a["params"], a["x"])
    z_q, indices_2 = backend.quantize(z_e, a["codebook"])
    worst = judge_choices("vq_forward", backend.dtype, z_e, a["codebook"], indices, ctx)
    worst = max(worst, judge_choices("quantize", backend.dtype, z_e, a["codebook"], indices_2, ctx))
    # A near-tie may flip between the two evaluations; a flip at any position changes the whole example's x̂ (the
    # conv VQ-VAE's decoder mixes positions), so compare the examples whose every choice agrees.
    same = (np.asarray(indices) == np.asarray(indices_2)).reshape(len(x_hat), -1).all(axis=1)
    rhs = backend.decode(a["arch"], a["params"], as_input(backend.dtype, np.asarray(z_q)))
    tol = tolerance(backend.dtype, "vq_forward", a, indices=np.asarray(indices_2))[0]
    return max(worst, assert_within("vq_forward", x_hat[same], rhs[same], tol[same], context=ctx))


def vq_loss_eq_reconstruction_add_codebook_add_commitment(backend, example, draw):
    a = _args("vq_loss", example, backend)
    ctx = vq_context("vq_loss", a, backend)
    indices = backend_choices(backend, "vq_loss", a, ctx)
    lhs = backend.vq_loss(a["arch"], a["params"], a["codebook"], a["x"], a["commitment_weight"], a["convention"])
    x_hat, _ = backend.vq_forward(a["arch"], a["params"], a["codebook"], a["x"])
    z_e = as_input(backend.dtype, np.asarray(backend.vq_encode(a["arch"], a["params"], a["x"])))
    rhs = (backend.reconstruction_loss(as_input(backend.dtype, np.asarray(x_hat)), a["x"], a["convention"])
           + declared.codebook_weight(backend) * backend.codebook_loss(z_e, a["codebook"])  # 1 unless declared
           + a["commitment_weight"] * backend.commitment_loss(z_e, a["codebook"]))
    return assert_within("vq_loss", lhs, rhs, lambda: tolerance(backend.dtype, "vq_loss", a, indices=indices),
                         context=ctx)


_for = strategies_vq.vq_examples_for  # each law draws only the arguments of the function it reads
CHECKS = {c.law: c for c in (
    Check("quantize_nearest_code_within_bound", _for("quantize"), quantize_nearest_code_within_bound),
    Check("quantize_output_is_codebook_row", _for("quantize"), quantize_output_is_codebook_row),
    Check("quantize_ties_to_lowest_index", strategies_vq.tie_examples(), quantize_ties_to_lowest_index),
    Check("quantize_idempotent", _for("quantize"), quantize_idempotent),
    Check("quantize_codebook_permutation_equivariance", _for("quantize"), quantize_codebook_permutation_equivariance),
    Check("quantize_translation_invariance", _for("quantize"), quantize_translation_invariance),
    Check("quantize_straight_through_gradient", _for("quantize"), quantize_straight_through_gradient),
    Check("aux_losses_zero_at_codebook_rows", _for("codebook_loss"), aux_losses_zero_at_codebook_rows),
    Check("codebook_loss_eq_commitment_loss", _for("codebook_loss"), codebook_loss_eq_commitment_loss),
    Check("codebook_loss_gradient_reaches_codebook_only", _for("codebook_loss"),
          codebook_loss_gradient_reaches_codebook_only),
    Check("commitment_loss_gradient_reaches_encoder_only", _for("commitment_loss"),
          commitment_loss_gradient_reaches_encoder_only),
    Check("vq_forward_eq_decode_quantize_encode", _for("vq_forward"), vq_forward_eq_decode_quantize_encode),
    Check("vq_loss_eq_reconstruction_add_codebook_add_commitment", _for("vq_loss"),
          vq_loss_eq_reconstruction_add_codebook_add_commitment),
)}
