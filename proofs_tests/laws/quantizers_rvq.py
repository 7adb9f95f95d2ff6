"""Residual VQ's law checks (`vaespec.spec.quantizers_rvq`). Its stages' choices are judged by
`laws.checking_quantizers.judge_stages` (the VQ chapter's near-tie criterion on each residual)."""

from __future__ import annotations

import numpy as np

from vaespec.reference import vq as reference_vq

from ..strategies import vae as strategies
from ..strategies.chapters import examples_for
from .checking import Check, context, function_args
from .checking_quantizers import judge_stages, rvq_choices
from .compare import LawViolation, as_input, assert_within
from .tolerance import tolerance


def _rvq(backend, example):
    a = function_args("rvq_quantize", example, backend.dtype)
    ctx = context("rvq_quantize", a, backend)
    return a, ctx, rvq_choices(backend, "rvq_quantize", a, ctx)


def rvq_output_eq_sum_of_stage_outputs(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    z_q, _ = backend.rvq_quantize(a["z_e"], a["codebooks"], a["num_stages"])
    books, n = a["codebooks"], a["num_stages"]
    expected = sum((books[s][k[:, s]] for s in range(n)), np.zeros_like(a["z_e"]))
    return assert_within("rvq_quantize: z_q = Σ_s codebooks[s][indices[:, s]]", z_q, expected,
                         tolerance(backend.dtype, "rvq_quantize", a, indices=k)[0], context=ctx)


def rvq_stage_choice_nearest_code_of_residual(backend, example, draw):
    a, ctx, _ = _rvq(backend, example)
    _, indices = backend.rvq_quantize(a["z_e"], a["codebooks"], a["num_stages"])
    return judge_stages("rvq_quantize", backend.dtype, a, indices, ctx)


def rvq_commitment_losses_eq_residual_errors(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    z_e, books, n = a["z_e"], a["codebooks"], a["num_stages"]
    expected, partial = np.zeros(books.shape[0]), np.zeros_like(z_e)
    for s in range(n):
        code = books[s][k[:, s]]
        expected[s] = np.mean((z_e - partial - code) ** 2)  # r_s = z_e − Σ_{t<s} e_t, the input minus the partial sum
        partial = partial + code
    actual = backend.rvq_commitment_loss(z_e, books, n)
    return assert_within("rvq_commitment_loss = mean (z_e − Σ_{t<s} e_t − e_s)²", actual, expected,
                         tolerance(backend.dtype, "rvq_commitment_loss", a, indices=k), context=ctx)


def rvq_first_stages_eq_fewer_stage_quantizer(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    n = a["num_stages"]
    fewer = {**a, "codebooks": a["codebooks"][:n]}
    z_q, indices = backend.rvq_quantize(a["z_e"], a["codebooks"], n)
    z_q_n, indices_n = backend.rvq_quantize(fewer["z_e"], fewer["codebooks"], n)
    ctx = ctx + f"\n# against the {n}-stage quantizer codebooks[:{n}]"
    indices, indices_n = np.asarray(indices), np.asarray(indices_n)
    if not np.array_equal(indices[:, :n], indices_n) or np.any(indices[:, n:] != -1):
        raise LawViolation(f"rvq_quantize with num_stages = {n}: indices {indices.tolist()} differ from "
                           f"the {n}-stage quantizer's {indices_n.tolist()} (padded with −1)\n{ctx}")
    tol = tolerance(backend.dtype, "rvq_quantize", a, indices=k)[0] + \
        tolerance(backend.dtype, "rvq_quantize", fewer, indices=k[:, :n])[0]
    return assert_within("rvq_quantize(n stages of S) = rvq_quantize(codebooks[:n])", z_q, z_q_n, tol, context=ctx)


def rvq_straight_through_gradient(backend, example, draw):
    a, ctx, _ = _rvq(backend, example)
    cotangent = as_input(backend.dtype, draw(strategies.arrays(a["z_e"].shape, -1.0, 1.0)))
    got = np.asarray(backend.vjp("rvq_quantize", a, cotangent)["z_e"])
    if got.shape != cotangent.shape or not np.array_equal(got, cotangent):
        raise LawViolation(f"vjp(rvq_quantize): z̄_e = {got.tolist()}, expected the upstream gradient "
                           f"{cotangent.tolist()} exactly (straight-through once)\n{ctx}")
    return 0.0


def rvq_codebook_loss_eq_commitment_loss(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    z_e, books, n = a["z_e"], a["codebooks"], a["num_stages"]
    return assert_within("rvq_codebook_loss = rvq_commitment_loss (value)", backend.rvq_codebook_loss(z_e, books, n),
                         backend.rvq_commitment_loss(z_e, books, n),
                         tolerance(backend.dtype, "rvq_codebook_loss", a, indices=k), context=ctx)


def rvq_codebook_loss_gradient_only_to_codebooks(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    z_e, books, n = a["z_e"], a["codebooks"], a["num_stages"]
    cotangent = as_input(backend.dtype, draw(strategies.arrays((books.shape[0],), -1.0, 1.0)))
    ctx = ctx + f"\n# backend.vjp('rvq_codebook_loss', args, {cotangent.tolist()})"
    grads = backend.vjp("rvq_codebook_loss", a, cotangent)
    assert_within("vjp(rvq_codebook_loss)['z_e'] (stop-gradient)", grads["z_e"], np.zeros_like(z_e), 0.0,
                  context=ctx)
    # Stage s is the VQ chapter's codebook loss on its residual r_s = z_e − Σ_{t<s} e_t, at the backend's choices.
    rows, k = z_e.reshape(-1, z_e.shape[-1]), k.reshape(-1, books.shape[0])
    expected, partial = np.zeros_like(books), np.zeros_like(rows)
    for s in range(n):
        at = {"z_e": rows - partial, "codebook": books[s], "indices": k[:, s]}
        expected[s] = reference_vq.codebook_loss_vjp(at, float(cotangent[s]))["codebook"]
        partial = partial + books[s][k[:, s]]
    tol = tolerance(backend.dtype, "rvq_codebook_loss", a, cotangent=cotangent, indices=k)["codebooks"]
    return assert_within("vjp(rvq_codebook_loss)['codebooks'] = ȳ_s · d codebook_loss(r_s, C_s) / d C_s",
                         grads["codebooks"], expected, tol, context=ctx)


_LAWS = {
    "rvq_output_eq_sum_of_stage_outputs": rvq_output_eq_sum_of_stage_outputs,
    "rvq_stage_choice_nearest_code_of_residual": rvq_stage_choice_nearest_code_of_residual,
    "rvq_commitment_losses_eq_residual_errors": rvq_commitment_losses_eq_residual_errors,
    "rvq_first_stages_eq_fewer_stage_quantizer": rvq_first_stages_eq_fewer_stage_quantizer,
    "rvq_straight_through_gradient": rvq_straight_through_gradient,
    "rvq_codebook_loss_eq_commitment_loss": rvq_codebook_loss_eq_commitment_loss,
    "rvq_codebook_loss_gradient_only_to_codebooks": rvq_codebook_loss_gradient_only_to_codebooks,
}
CHECKS: dict[str, Check] = {name: Check(name, examples_for("rvq_quantize"), run) for name, run in _LAWS.items()}
