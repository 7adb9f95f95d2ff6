"""Laws of the codebook's life: EMA updates, Laplace smoothing, health, dead-code reset, init;
and every VQ function and gradient against the float64 reference (at the backend's own choices).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from vaespec.spec import dtypes
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.keys import Key, as_key, normal
from vaespec.spec.tolerances import bound

from . import strategies, strategies_vq
from .checking import Check, function_args
from .checking_vq import backend_choices, reference, reference_vjp, vq_context, vq_tolerance, vq_vjp_tolerance
from .compare import LawViolation, assert_within, as_input, tolerance_from


def _args(function, example, backend):
    return function_args(function, example, backend.dtype)


def _exact(function: str, actual, expected, ctx: str) -> None:
    """Integer outputs, keys and copied rows must agree exactly."""
    if isinstance(expected, Key) or isinstance(actual, Key):
        if not isinstance(actual, (Key, int, np.integer)) or as_key(actual) != as_key(expected):
            raise LawViolation(f"{function}: returned key {actual!r}, expected {expected!r}\n{ctx}")
    elif np.shape(actual) != np.shape(expected) or not np.array_equal(np.asarray(actual), np.asarray(expected)):
        raise LawViolation(f"{function}: got {np.asarray(actual).tolist()!r}, expected exactly "
                           f"{np.asarray(expected).tolist()!r}\n{ctx}")


def _exact_in_dtype(function: str, actual, value, backend, ctx: str) -> None:
    """Draws and copies: `actual` is `value` rounded into the backend's dtype (RNE from float64, or a cast
    through float32), flushed where the backend declares that it flushes subnormals (`vaespec.spec.dtypes`)."""
    value = np.asarray(value, dtype=np.float64)
    if dtypes.flushes_subnormals(backend):
        value = dtypes.flush(backend.dtype, dtypes.round_to(backend.dtype, value))
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != value.shape or not np.all(dtypes.equal_in_dtype(backend.dtype, actual, value)):
        raise LawViolation(f"{function}: got {actual.tolist()!r}, expected exactly "
                           f"{dtypes.round_to(backend.dtype, value).tolist()!r} (the draws rounded to "
                           f"{backend.dtype})\n{ctx}")


def ema_kmeans_step(backend, example, draw):
    a = {**_args("ema_update", example, backend), "epsilon": 0.0, "training": True}
    codes, dim = a["codebook"].shape
    if draw(st.booleans()):  # a fresh state: debiasing must remove the zero start, whatever the decay
        a.update(ema_counts=np.zeros(codes), ema_sums=np.zeros((codes, dim)), ema_step=0)
    else:
        a["decay"] = 0.0
    ctx = vq_context("ema_update", a, backend)
    indices = backend_choices(backend, "ema_update", a, ctx)
    codebook, _, _, _ = backend.ema_update(*(a[arg.name] for arg in FUNCTIONS["ema_update"].args))
    used = np.bincount(indices, minlength=codes) > 0
    expected = a["codebook"].copy()
    for k in np.flatnonzero(used):
        expected[k] = a["z_e"][indices == k].mean(axis=0)
    assert_within("ema_update: unused codes keep their rows", codebook[~used], expected[~used], 0.0, context=ctx)
    members = np.array([np.abs(a["z_e"][indices == k]).mean(axis=0) if used[k] else np.zeros(dim)
                        for k in range(codes)])
    tol = tolerance_from(bound(backend.dtype, a["z_e"].shape[0] + codes + 10, 10), members)
    return assert_within("ema_update: used codes move to their cluster means", codebook[used], expected[used],
                         tol[used], context=ctx)


def ema_eval_mode_leaves_codebook_unchanged(backend, example, draw):
    a = {**_args("ema_update", example, backend), "training": False}
    ctx = vq_context("ema_update", a, backend)
    outputs = backend.ema_update(*(a[arg.name] for arg in FUNCTIONS["ema_update"].args))
    for name, value in zip(("codebook", "ema_counts", "ema_sums", "ema_step"), outputs):
        _exact(f"ema_update(training=False)[{name!r}]", value, a[name], ctx)
    return 0.0


def laplace_smoothing_preserves_total_count(backend, example, draw):
    a = _args("laplace_smooth", example, backend)
    ctx = vq_context("laplace_smooth", a, backend)
    smoothed = np.asarray(backend.laplace_smooth(a["counts"], a["epsilon"]))
    if a["epsilon"] > 0 and not np.all(smoothed > 0):
        raise LawViolation(f"laplace_smooth: with ε = {a['epsilon']!r} every smoothed count must be > 0, got "
                           f"{smoothed.tolist()}\n{ctx}")
    total = float(np.sum(a["counts"]))
    tol = tolerance_from(bound(backend.dtype, 2 * len(smoothed) + 4, 6), total + len(smoothed) * a["epsilon"])
    return assert_within("Σ laplace_smooth", np.sum(smoothed), total, float(tol), context=ctx)


def codebook_health_usage_sums_to_batch(backend, example, draw):
    a = _args("codebook_health", example, backend)
    ctx = vq_context("codebook_health", a, backend)
    usage, _, dead = backend.codebook_health(a["indices"], a["num_embeddings"])
    expected = np.bincount(a["indices"], minlength=a["num_embeddings"])
    _exact("codebook_health usage", usage, expected, ctx)
    if int(np.sum(usage)) != len(a["indices"]):
        raise LawViolation(f"codebook_health: Σ usage = {int(np.sum(usage))}, batch = {len(a['indices'])}\n{ctx}")
    _exact("codebook_health dead_codes", dead, np.int64(np.sum(expected == 0)), ctx)
    return 0.0


def perplexity_in_one_to_num_codes(backend, example, draw):
    a = _args("codebook_health", example, backend)
    codes = a["num_embeddings"]
    tol = float(tolerance_from(bound(backend.dtype, codes + 6, 6), codes))
    cases = {"drawn": a["indices"], "one code": np.full(len(a["indices"]), draw(st.integers(0, codes - 1))),
             "uniform": np.tile(np.arange(codes), draw(st.integers(1, 3)))}
    worst = 0.0
    for case, indices in cases.items():
        ctx = vq_context("codebook_health", {"indices": indices, "num_embeddings": codes}, backend) + f"\n# {case}"
        perplexity = float(backend.codebook_health(indices, codes)[1])
        if not (1.0 - tol <= perplexity <= codes + tol):
            raise LawViolation(f"codebook_health: perplexity {perplexity!r} outside [1, K = {codes}]\n{ctx}",
                               ratio=np.inf)
        if case != "drawn":
            worst = max(worst, assert_within(f"perplexity ({case})", perplexity,
                                             1.0 if case == "one code" else float(codes), tol, context=ctx))
    return worst


def reset_dead_codes_keeps_live_codes(backend, example, draw):
    a = _args("reset_dead_codes", example, backend)
    ctx = vq_context("reset_dead_codes", a, backend)
    codebook, _ = backend.reset_dead_codes(a["codebook"], a["usage"], a["z_e"], a["key"])
    again, _ = backend.reset_dead_codes(a["codebook"], a["usage"], a["z_e"], a["key"])
    _exact("reset_dead_codes (same key twice)", again, codebook, ctx)
    live = a["usage"] > 0
    _exact("reset_dead_codes live rows", codebook[live], a["codebook"][live], ctx)
    for k in np.flatnonzero(~live):
        if not np.any(np.all(a["z_e"] == codebook[k], axis=1)):
            raise LawViolation(f"reset_dead_codes: dead row {k} became {codebook[k].tolist()}, not a row of z_e\n{ctx}")
    return 0.0


def init_codebook_deterministic_given_key(backend, example, draw):
    a = _args("init_codebook", example, backend)
    ctx = vq_context("init_codebook", a, backend)
    first = backend.init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"])
    _exact("init_codebook (same key twice)", backend.init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"]),
           first, ctx)
    expected = normal(as_key(a["key"]), (a["num_embeddings"], a["embedding_dim"]))[0]
    _exact_in_dtype("init_codebook vs normal(key, (K, D))", first, expected, backend, ctx)
    other = backend.init_codebook(a["num_embeddings"], a["embedding_dim"], (a["key"] + 1) % 2**64)
    if np.array_equal(other, first):
        raise LawViolation(f"init_codebook: keys {a['key']} and {(a['key'] + 1) % 2**64} gave the same codebook\n{ctx}")
    return 0.0


# ----------------------------------------------------------------------------- against the reference
def _split(function: str, value):
    """(float outputs, integer/key outputs) of `function`'s result, by the contract's Output kinds."""
    outputs = FUNCTIONS[function].outputs
    values = value if len(outputs) > 1 else (value,)
    floats = tuple(np.asarray(v, np.float64) for o, v in zip(outputs, values) if o.kind == "float")
    others = tuple(v for o, v in zip(outputs, values) if o.kind != "float")
    return floats, others


def _matches_reference(function: str):
    def run(backend, example, draw):
        a = _args(function, example, backend)
        ctx = vq_context(function, a, backend)
        indices = backend_choices(backend, function, a, ctx)
        actual_f, actual_i = _split(function, call(backend, function, a))
        expected_f, expected_i = _split(function, reference(function, a, indices))
        for act, exp in zip(actual_i, expected_i):
            _exact(function, act, exp, ctx)
        if not expected_f:
            return 0.0
        if function in ("init_codebook", "reset_dead_codes"):  # draws and copies: exact after rounding
            for act, exp in zip(actual_f, expected_f):
                _exact_in_dtype(function, act, exp, backend, ctx)
            return 0.0
        if function == "codebook_health":  # perplexity: a sum over K codes of p log p, then exp
            codes = a["num_embeddings"]
            tol = (float(tolerance_from(bound(backend.dtype, codes + 6, 6), codes)),)
        else:
            tol = vq_tolerance(backend.dtype, function, a, indices)
            tol = tol if isinstance(tol, tuple) else (tol,)
        return assert_within(function, actual_f, expected_f, tol[: len(expected_f)], context=ctx)
    return run


def _gradient_matches_reference(function: str):
    def run(backend, example, draw):
        a = _args(function, example, backend)
        ctx = vq_context(function, a, backend)
        indices = backend_choices(backend, function, a, ctx)
        output = _split(function, reference(function, a, indices))[0][0]  # cotangents cover the first float output
        cotangent = as_input(backend.dtype, np.asarray(draw(strategies.cotangents(function, output))))
        cotangent = cotangent if cotangent.ndim else float(cotangent)
        ctx += f"\n# gradient: backend.vjp({function!r}, args, {cotangent!r})"
        expected = reference_vjp(function, a, cotangent, indices)
        actual = backend.vjp(function, a, cotangent)
        tol = vq_vjp_tolerance(backend.dtype, function, a, cotangent, indices)
        return assert_within(f"vjp({function})", actual, expected, tol, context=ctx)
    return run


_for = strategies_vq.vq_examples_for  # each law draws only the arguments of the function it reads
CHECKS = {c.law: c for c in (
    Check("ema_kmeans_step", _for("ema_update"), ema_kmeans_step),
    Check("ema_eval_mode_leaves_codebook_unchanged", _for("ema_update"), ema_eval_mode_leaves_codebook_unchanged),
    Check("laplace_smoothing_preserves_total_count", _for("laplace_smooth"), laplace_smoothing_preserves_total_count),
    Check("codebook_health_usage_sums_to_batch", _for("codebook_health"), codebook_health_usage_sums_to_batch),
    Check("perplexity_in_one_to_num_codes", _for("codebook_health"), perplexity_in_one_to_num_codes),
    Check("reset_dead_codes_keeps_live_codes", _for("reset_dead_codes"), reset_dead_codes_keeps_live_codes),
    Check("init_codebook_deterministic_given_key", _for("init_codebook"), init_codebook_deterministic_given_key),
)}
for _function, _spec in FUNCTIONS.items():
    if _spec.chapter != "vq":
        continue
    CHECKS[f"{_function}_matches_reference"] = Check(f"{_function}_matches_reference", _for(_function),
                                                     _matches_reference(_function))
    if _spec.differentiable:
        CHECKS[f"{_function}_gradient_matches_reference"] = Check(
            f"{_function}_gradient_matches_reference", _for(_function), _gradient_matches_reference(_function))
