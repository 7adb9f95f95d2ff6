"""Laws of the codebook's life: EMA updates, Laplace smoothing, health, dead-code reset, init.
(Every VQ function and gradient against the float64 reference: `laws.differential`, for every chapter.)
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.keys import as_key, normal
from vaespec.spec.tolerances import bound

from ..strategies import vq as strategies_vq
from . import declared
from .checking import Check, assert_exact, assert_exact_in_dtype, function_args
from .checking_vq import backend_choices, vectors, vq_context
from .compare import LawViolation, assert_within, tolerance_from


def _args(function, example, backend):
    return function_args(function, example, backend)


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
    used = np.bincount(indices.ravel(), minlength=codes) > 0
    expected = a["codebook"].copy()
    for k in np.flatnonzero(used):
        expected[k] = a["z_e"][indices == k].mean(axis=0)
    assert_within("ema_update: unused codes keep their rows", codebook[~used], expected[~used], 0.0, context=ctx)
    members = np.array([np.abs(a["z_e"][indices == k]).mean(axis=0) if used[k] else np.zeros(dim)
                        for k in range(codes)])
    tol = tolerance_from(bound(backend.dtype, indices.size + codes + 10, 10), members)  # every vector counted
    return assert_within("ema_update: used codes move to their cluster means", codebook[used], expected[used],
                         tol[used], context=ctx)


def ema_eval_mode_leaves_codebook_unchanged(backend, example, draw):
    a = {**_args("ema_update", example, backend), "training": False}
    ctx = vq_context("ema_update", a, backend)
    outputs = backend.ema_update(*(a[arg.name] for arg in FUNCTIONS["ema_update"].args))
    for name, value in zip(("codebook", "ema_counts", "ema_sums", "ema_step"), outputs):
        assert_exact(f"ema_update(training=False)[{name!r}]", value, a[name], ctx)
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
    expected = np.bincount(a["indices"].ravel(), minlength=a["num_embeddings"])
    assert_exact("codebook_health usage", usage, expected, ctx)
    if int(np.sum(usage)) != a["indices"].size:
        raise LawViolation(f"codebook_health: Σ usage = {int(np.sum(usage))}, N = batch·∏positions = "
                           f"{a['indices'].size}\n{ctx}")
    assert_exact("codebook_health dead_codes", dead, np.int64(np.sum(expected == 0)), ctx)
    return 0.0


def perplexity_in_one_to_num_codes(backend, example, draw):
    a = _args("codebook_health", example, backend)
    codes = a["num_embeddings"]
    tol = float(tolerance_from(bound(backend.dtype, codes + 6, 6), codes))  # K terms p log p, then exp; M = K
    cases = {"drawn": a["indices"], "one code": np.full(a["indices"].shape, draw(st.integers(0, codes - 1))),
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
    assert_exact("reset_dead_codes (same key twice)", again, codebook, ctx)
    live = a["usage"] > 0
    assert_exact("reset_dead_codes live rows", codebook[live], a["codebook"][live], ctx)
    for k in np.flatnonzero(~live):
        if not np.any(np.all(vectors(a["z_e"]) == codebook[k], axis=1)):
            raise LawViolation(f"reset_dead_codes: dead row {k} became {codebook[k].tolist()}, not a row of z_e\n{ctx}")
    return 0.0


def init_codebook_deterministic_given_key(backend, example, draw):
    a = _args("init_codebook", example, backend)
    ctx = vq_context("init_codebook", a, backend)
    first = backend.init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"])
    assert_exact("init_codebook (same key twice)",
                 backend.init_codebook(a["num_embeddings"], a["embedding_dim"], a["key"]), first, ctx)
    if declared.key_stream(backend):  # the stream-exact part: only for a backend on vaespec's key stream
        expected = normal(as_key(a["key"]), (a["num_embeddings"], a["embedding_dim"]))[0]
        assert_exact_in_dtype("init_codebook vs normal(key, (K, D))", first, expected, backend, ctx)
    elif np.shape(first) != (a["num_embeddings"], a["embedding_dim"]) or not np.all(np.isfinite(first)):
        raise LawViolation(f"init_codebook: expected a finite ({a['num_embeddings']}, {a['embedding_dim']}) array, "
                           f"got shape {np.shape(first)}\n{ctx}")
    other = backend.init_codebook(a["num_embeddings"], a["embedding_dim"], (a["key"] + 1) % 2**64)
    if np.array_equal(other, first):
        raise LawViolation(f"init_codebook: keys {a['key']} and {(a['key'] + 1) % 2**64} gave the same codebook\n{ctx}")
    return 0.0


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
