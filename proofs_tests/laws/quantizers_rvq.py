"""Residual VQ's law checks (`vaespec.spec.quantizers_rvq`). Its stages' choices are judged by
`laws.checking_quantizers.judge_stages` (the VQ chapter's near-tie criterion on each residual)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.reference import vq as reference_vq
from vaespec.spec.contract import FUNCTIONS

from ..strategies import vae as strategies
from ..strategies.chapters import examples_for
from .checking import Check, assert_exact, context, function_args
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
    expected = sum((books[s][k[..., s]] for s in range(n)), np.zeros_like(a["z_e"]))
    return assert_within("rvq_quantize: z_q = Σ_s codebooks[s][indices[..., s]]", z_q, expected,
                         lambda: tolerance(backend.dtype, "rvq_quantize", a, indices=k)[0], context=ctx)


def rvq_stage_choice_nearest_code_of_residual(backend, example, draw):
    a, ctx, _ = _rvq(backend, example)
    _, indices = backend.rvq_quantize(a["z_e"], a["codebooks"], a["num_stages"])
    return judge_stages("rvq_quantize", backend.dtype, a, indices, ctx)


def rvq_commitment_losses_eq_residual_errors(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    z_e, books, n = a["z_e"], a["codebooks"], a["num_stages"]
    expected, partial = np.zeros(books.shape[0]), np.zeros_like(z_e)
    for s in range(n):
        code = books[s][k[..., s]]
        expected[s] = np.mean((z_e - partial - code) ** 2)  # r_s = z_e − Σ_{t<s} e_t, the input minus the partial sum
        partial = partial + code
    actual = backend.rvq_commitment_loss(z_e, books, n)
    return assert_within("rvq_commitment_loss = mean (z_e − Σ_{t<s} e_t − e_s)²", actual, expected,
                         lambda: tolerance(backend.dtype, "rvq_commitment_loss", a, indices=k), context=ctx)


def rvq_first_stages_eq_fewer_stage_quantizer(backend, example, draw):
    a, ctx, k = _rvq(backend, example)
    n = a["num_stages"]
    fewer = {**a, "codebooks": a["codebooks"][:n]}
    z_q, indices = backend.rvq_quantize(a["z_e"], a["codebooks"], n)
    z_q_n, indices_n = backend.rvq_quantize(fewer["z_e"], fewer["codebooks"], n)
    ctx = ctx + f"\n# against the {n}-stage quantizer codebooks[:{n}]"
    indices, indices_n = np.asarray(indices), np.asarray(indices_n)
    if not np.array_equal(indices[..., :n], indices_n) or np.any(indices[..., n:] != -1):
        raise LawViolation(f"rvq_quantize with num_stages = {n}: indices {indices.tolist()} differ from "
                           f"the {n}-stage quantizer's {indices_n.tolist()} (padded with −1)\n{ctx}")
    tol = tolerance(backend.dtype, "rvq_quantize", a, indices=k)[0] + \
        tolerance(backend.dtype, "rvq_quantize", fewer, indices=k[..., :n])[0]
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
                         lambda: tolerance(backend.dtype, "rvq_codebook_loss", a, indices=k), context=ctx)


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


# ----------------------------------------------------------------------------- EMA codebooks
EMA_ORDER = tuple(arg.name for arg in FUNCTIONS["rvq_ema_update"].args)
STATE = ("codebooks", "ema_counts", "ema_sums", "ema_step")  # rvq_ema_update's outputs, and its state arguments


def ema_call(backend, a, ctx) -> tuple[np.ndarray, ...]:
    """backend.rvq_ema_update at `a`, its four outputs as float64 (the steps int64) of the state's shapes."""
    out = backend.rvq_ema_update(*(a[n] for n in EMA_ORDER))
    if not isinstance(out, tuple) or len(out) != 4:
        raise LawViolation(f"rvq_ema_update: expected (codebooks, ema_counts, ema_sums, ema_step), got "
                           f"{type(out).__name__} of {len(out) if isinstance(out, tuple) else 1}\n{ctx}")
    got = tuple(np.asarray(v, dtype=np.int64 if name == "ema_step" else np.float64) for v, name in zip(out, STATE))
    for value, name in zip(got, STATE):
        if value.shape != np.shape(a[name]):
            raise LawViolation(f"rvq_ema_update: {name} has shape {value.shape}, expected {np.shape(a[name])}\n{ctx}")
    return got


def _ema(backend, example, **changes):
    a = {**function_args("rvq_ema_update", example, backend.dtype), **changes}
    ctx = context("rvq_ema_update", a, backend)
    return a, ctx, rvq_choices(backend, "rvq_ema_update", a, ctx)


def _kept(a, out, first: int, ctx) -> None:
    """The stages from `first` on are returned exactly as given (not run: dropped, or not training)."""
    for value, name in zip(out, STATE):
        assert_exact(f"rvq_ema_update {name}[{first}:] (stages not updated: returned as given)", value[first:],
                     np.asarray(a[name])[first:], ctx)


def rvq_ema_update_eq_stagewise_ema_update(backend, example, draw):
    a, ctx, k = _ema(backend, example)
    out = ema_call(backend, a, ctx)
    n = a["num_stages"]
    _kept(a, out, n if a["training"] else 0, ctx)
    # Stage s is the VQ chapter's ema_update on its residual r_s = z_e − Σ_{t<s} e_t at its own choices k_s.
    books, rows = a["codebooks"], a["z_e"].reshape(-1, a["z_e"].shape[-1])
    chosen = k.reshape(-1, books.shape[0])
    expected = [np.array(a[name], dtype=np.float64) for name in STATE[:3]]
    steps, partial = np.array(a["ema_step"], dtype=np.int64), np.zeros_like(rows)
    for s in range(n):
        stage = reference_vq.ema_update(books[s], a["ema_counts"][s], a["ema_sums"][s], int(a["ema_step"][s]),
                                        rows - partial, a["decay"], a["epsilon"], a["training"], indices=chosen[:, s])
        for value, new in zip(expected, stage[:3]):
            value[s] = new
        steps[s] = stage[3]
        partial = partial + books[s][chosen[:, s]]
    assert_exact("rvq_ema_update ema_step (each stage's ema_update step)", out[3], steps, ctx)
    tol = tolerance(backend.dtype, "rvq_ema_update", a, indices=k)
    return assert_within("rvq_ema_update stage s = ema_update(C_s, counts_s, sums_s, step_s, r_s) at k_s", out[:3],
                         tuple(expected), tuple(tol[:3]), context=ctx)


def rvq_ema_update_first_stages_eq_fewer_stage_update(backend, example, draw):
    a, ctx, k = _ema(backend, example)
    n = a["num_stages"]
    fewer = {**a, **{name: np.asarray(a[name])[:n] for name in STATE}}
    ctx = ctx + f"\n# against the {n}-stage update of codebooks[:{n}] and its state[:{n}]"
    out, out_n = ema_call(backend, a, ctx), ema_call(backend, fewer, ctx)
    _kept(a, out, n if a["training"] else 0, ctx)
    assert_exact(f"rvq_ema_update ema_step[:{n}] (n of S stages vs the n-stage update)", out[3][:n], out_n[3], ctx)
    k_n = rvq_choices(backend, "rvq_ema_update", fewer, ctx)
    tol = tolerance(backend.dtype, "rvq_ema_update", a, indices=k)
    tol_n = tolerance(backend.dtype, "rvq_ema_update", fewer, indices=k_n)
    return assert_within("rvq_ema_update(n of S stages)[:n] = rvq_ema_update(the n-stage state)",
                         tuple(v[:n] for v in out[:3]), out_n[:3],
                         tuple(np.asarray(t)[:n] + t_n for t, t_n in zip(tol[:3], tol_n[:3])), context=ctx)


def rvq_ema_kmeans_step(backend, example, draw):
    example_args = function_args("rvq_ema_update", example, backend.dtype)
    fresh = draw(st.booleans())
    state = {"ema_counts": np.zeros_like(example_args["ema_counts"]), "ema_sums": np.zeros_like(
        example_args["ema_sums"]), "ema_step": np.zeros_like(example_args["ema_step"])} if fresh else {"decay": 0.0}
    a, ctx, k = _ema(backend, example, epsilon=0.0, training=True, **state)
    ctx = ctx + f"\n# {'a fresh state' if fresh else 'decay 0'}, ε = 0: one k-means step per stage"
    out = ema_call(backend, a, ctx)
    n, books, gamma = a["num_stages"], a["codebooks"], float(a["decay"])
    _kept(a, out, n, ctx)
    rows = a["z_e"].reshape(-1, a["z_e"].shape[-1])
    chosen = k.reshape(-1, books.shape[0])
    means, counts, partial = np.array(books, dtype=np.float64), np.zeros(a["ema_counts"].shape), np.zeros_like(rows)
    for s in range(n):
        residual = rows - partial
        for code in np.unique(chosen[:, s]):
            mine = chosen[:, s] == code
            means[s, code] = residual[mine].mean(axis=0)  # the mean of the residuals that chose it
            counts[s, code] = (1.0 - gamma) * np.count_nonzero(mine)
        partial = partial + books[s][chosen[:, s]]
    tol = tolerance(backend.dtype, "rvq_ema_update", a, indices=k)
    return assert_within("rvq_ema_update (ε = 0): each chosen code → the mean of its residuals; its count "
                         "(1 − γ)·#{b: k_s(b) = k}", (out[0][:n], out[1][:n]), (means[:n], counts[:n]),
                         (np.asarray(tol[0])[:n], np.asarray(tol[1])[:n]), context=ctx)


_LAWS = {
    "rvq_output_eq_sum_of_stage_outputs": rvq_output_eq_sum_of_stage_outputs,
    "rvq_stage_choice_nearest_code_of_residual": rvq_stage_choice_nearest_code_of_residual,
    "rvq_commitment_losses_eq_residual_errors": rvq_commitment_losses_eq_residual_errors,
    "rvq_first_stages_eq_fewer_stage_quantizer": rvq_first_stages_eq_fewer_stage_quantizer,
    "rvq_straight_through_gradient": rvq_straight_through_gradient,
    "rvq_codebook_loss_eq_commitment_loss": rvq_codebook_loss_eq_commitment_loss,
    "rvq_codebook_loss_gradient_only_to_codebooks": rvq_codebook_loss_gradient_only_to_codebooks,
}
_EMA_LAWS = {
    "rvq_ema_update_eq_stagewise_ema_update": rvq_ema_update_eq_stagewise_ema_update,
    "rvq_ema_update_first_stages_eq_fewer_stage_update": rvq_ema_update_first_stages_eq_fewer_stage_update,
    "rvq_ema_kmeans_step": rvq_ema_kmeans_step,
}
CHECKS: dict[str, Check] = {name: Check(name, examples_for("rvq_quantize"), run) for name, run in _LAWS.items()}
CHECKS.update({name: Check(name, examples_for("rvq_ema_update"), run) for name, run in _EMA_LAWS.items()})
