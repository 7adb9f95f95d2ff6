"""Residual VQ's law checks (`vaespec.spec.quantizers_rvq`), and the judge of its stages' choices.

Each stage's index is judged by the VQ chapter's near-tie criterion on its residual, computed in float64 at the
backend's own earlier choices, with the residual's rounding added to the bound (`RVQ_CHOICE`); the reference is
then evaluated at the backend's indices, as for every discrete function (`laws.choices`).
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import quantizers_rvq as ref
from vaespec.reference.vq import squared_distances
from vaespec.spec.numerics import NARROW, SAFETY, bound
from vaespec.spec.tolerances import distance_bound

from ..strategies import vae as strategies
from ..strategies.chapters import examples_for
from .checking import Check, context, function_args
from .compare import LawViolation, as_input, assert_within
from .tolerance import tolerance


def _choice_dtype(dtype: str) -> str:
    return "float32" if dtype in NARROW else dtype


def _slack(dtype: str, z_e, codes_so_far, residual, codebook) -> np.ndarray:
    """τ [batch, codes] of RVQ_CHOICE: the distance bound plus the residual's own error ρ, carried."""
    dim = z_e.shape[1]
    sizes = np.linalg.norm(z_e, axis=1) + sum((np.linalg.norm(c, axis=1) for c in codes_so_far), np.zeros(len(z_e)))
    steps = 2 * len(codes_so_far) + 2
    rho = (SAFETY * bound(dtype, steps, steps).rel * sizes)[:, None]
    r_norm, e_norm = np.linalg.norm(residual, axis=1)[:, None], np.linalg.norm(codebook, axis=1)[None, :]
    return distance_bound(dtype, dim, r_norm + rho, e_norm) + 2 * rho * (r_norm + e_norm) + rho ** 2


def judge_stages(function: str, dtype: str, args, indices, ctx) -> float:
    """Raise LawViolation unless every used stage's index is acceptable for its residual; the worst ratio
    (d_j − min d) / (τ_j + τ_min) (≤ 1 when all hold); dropped stages must be −1."""
    z_e, books = (np.asarray(args[k], dtype=np.float64) for k in ("z_e", "codebooks"))
    n = int(args["num_stages"])
    indices = np.asarray(indices)
    batch, stages = z_e.shape[0], books.shape[0]
    if indices.dtype.kind not in "iu" or indices.shape != (batch, stages):
        raise LawViolation(f"{function}: indices must be integers [batch, stages] = {(batch, stages)}, got "
                           f"{indices.dtype} {indices.shape}\n{ctx}")
    if np.any(indices[:, n:] != -1):
        raise LawViolation(f"{function}: the stages after num_stages = {n} must be −1, got "
                           f"{indices[:, n:].tolist()}\n{ctx}")
    worst, residual, chosen = 0.0, z_e, []
    rows = np.arange(batch)
    for s in range(n):
        k = indices[:, s]
        if np.any(k < 0) or np.any(k >= books.shape[1]):
            raise LawViolation(f"{function}: stage {s} indices {k.tolist()} outside [0, {books.shape[1]})\n{ctx}")
        d = squared_distances(residual, books[s])
        tau = _slack(_choice_dtype(dtype), z_e, chosen, residual, books[s])
        best = d.argmin(axis=1)
        ok = d[rows, k] - tau[rows, k] <= (d + tau).min(axis=1)
        excess, scale = d[rows, k] - d[rows, best], tau[rows, k] + tau[rows, best]
        ratio = np.where(excess <= 0, 0.0, excess / np.where(scale > 0, scale, np.inf))
        if not np.all(ok):
            b = int(np.flatnonzero(~ok)[0])
            raise LawViolation(f"{function}: stage {s}, row {b} chose code {int(k[b])} at squared distance "
                               f"{d[b, k[b]]!r} from its residual, but code {int(best[b])} is at {d[b, best[b]]!r}: "
                               f"beyond the near-tie bound {scale[b]:.3e} ({dtype})\n{ctx}",
                               ratio=max(float(ratio[b]), 1 + 1e-12))
        worst = max(worst, float(ratio.max(initial=0.0)))
        chosen.append(books[s][k])
        residual = residual - books[s][k]
    return worst


def rvq_choices(backend, function: str, args, ctx):
    _, indices = backend.rvq_quantize(args["z_e"], args["codebooks"], args["num_stages"])
    judge_stages(function, backend.dtype, args, indices, ctx)
    return np.asarray(indices).astype(np.int64)


def rvq_clear(function: str, args, slack: float = 2.0) -> bool:
    """Every stage's nearest code beats the runner-up by more than `slack` × the float32 bound (narrow backends
    choose in float32 too)."""
    z_e, books, n = args["z_e"], args["codebooks"], int(args["num_stages"])
    residual, chosen = z_e, []
    for s in range(n):
        if books.shape[1] > 1:
            d = squared_distances(residual, books[s])
            tau = _slack("float32", z_e, chosen, residual, books[s])
            order = np.argsort(d, axis=1, kind="stable")[:, :2]
            rows = np.arange(len(z_e))
            if not np.all(d[rows, order[:, 1]] - d[rows, order[:, 0]] > slack * (tau[rows, order[:, 0]]
                                                                                  + tau[rows, order[:, 1]])):
                return False
        k = squared_distances(residual, books[s]).argmin(axis=1)
        chosen.append(books[s][k])
        residual = residual - books[s][k]
    return True


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


_LAWS = {
    "rvq_output_eq_sum_of_stage_outputs": rvq_output_eq_sum_of_stage_outputs,
    "rvq_stage_choice_nearest_code_of_residual": rvq_stage_choice_nearest_code_of_residual,
    "rvq_commitment_losses_eq_residual_errors": rvq_commitment_losses_eq_residual_errors,
    "rvq_first_stages_eq_fewer_stage_quantizer": rvq_first_stages_eq_fewer_stage_quantizer,
    "rvq_straight_through_gradient": rvq_straight_through_gradient,
}
CHECKS: dict[str, Check] = {name: Check(name, examples_for("rvq_quantize"), run) for name, run in _LAWS.items()}
__all__ = ["CHECKS", "judge_stages", "ref", "rvq_choices", "rvq_clear"]
