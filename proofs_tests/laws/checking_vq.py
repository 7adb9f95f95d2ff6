"""Shared pieces of the VQ law checks: judging a backend's code choices, conditioning the
reference on them, and the policy's bounds for the VQ functions.

A backend's index is judged once, by the near-tie criterion (`vaespec.spec.vq.acceptable_codes`);
everything downstream of the choice is then compared with the reference evaluated at the
*backend's* choice (`reference(function, args, indices)`), so a legitimate near-tie flip is not
mistaken for a wrong loss or gradient. Which functions choose is read from the reference
(`makes_choices`), never from a list of names; tolerances are `laws.tolerance.tolerance(…, indices=…)`.
"""

from __future__ import annotations

import functools

import numpy as np

from vaespec.reference import vq
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.vq import acceptable_codes

from .checking import REFERENCE, context, reference_at, reference_vjp_at
from .compare import LawViolation


def vectors(z_e) -> np.ndarray:
    """z_e [batch, *positions, D] as its N = batch·∏positions vectors [N, D] (every one is quantized alone)."""
    z_e = np.asarray(z_e, np.float64)
    return z_e.reshape(-1, z_e.shape[-1])


def check_indices(function: str, indices, shape, codes: int, ctx: str) -> np.ndarray:
    """The backend's indices as int64 of `shape` (z_e's [batch, *positions]; an int: [batch]) in [0, codes), or a
    LawViolation saying what is wrong."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise LawViolation(f"{function}: indices must be integers, got dtype {indices.dtype}\n{ctx}")
    if indices.shape != shape:
        raise LawViolation(f"{function}: indices must have shape {shape} (z_e's [batch, *positions]), got "
                           f"{indices.shape}\n{ctx}")
    if indices.size and (indices.min() < 0 or indices.max() >= codes):
        raise LawViolation(f"{function}: indices must lie in [0, {codes}), got [{indices.min()}, "
                           f"{indices.max()}]\n{ctx}")
    return indices.astype(np.int64)


def judge_choices(function: str, dtype: str, z_e, codebook, indices, ctx: str) -> float:
    """Raise LawViolation unless every chosen index satisfies the near-tie criterion for `z_e`.

    `z_e` [batch, *positions, D] with `indices` [batch, *positions]: each of its N vectors is judged (row b
    below counts them in C order). Returns the worst ratio (d_j − min_k d_k) / (τ_j + τ_k*) over them, ≤ 1
    when all hold.
    """
    z_e, codebook = np.asarray(z_e, np.float64), np.asarray(codebook, np.float64)
    indices = check_indices(function, indices, z_e.shape[:-1], codebook.shape[0], ctx).reshape(-1)
    z_e = vectors(z_e)
    ok = acceptable_codes(dtype, z_e, codebook)
    rows = np.arange(z_e.shape[0])
    d = vq.squared_distances(z_e, codebook)
    best = d.argmin(axis=1)
    slack = distance_slack(dtype, z_e, codebook)
    excess = d[rows, indices] - d[rows, best]
    scale = slack[rows, indices] + slack[rows, best]
    ratios = np.where(excess <= 0, 0.0, excess / np.where(scale > 0, scale, np.inf))
    bad = np.flatnonzero(~ok[rows, indices])
    if bad.size:
        b = int(bad[0])
        raise LawViolation(
            f"{function}: row {b} chose code {int(indices[b])} at squared distance {d[b, indices[b]]!r}, but code "
            f"{int(best[b])} is at {d[b, best[b]]!r}; the difference {excess[b]:.3e} exceeds the near-tie bound "
            f"τ = {scale[b]:.3e} ({dtype})\n{ctx}", ratio=max(float(np.max(ratios[bad])), 1.0 + 1e-12))
    return float(ratios.max(initial=0.0))


def distance_slack(dtype: str, z_e, codebook) -> np.ndarray:
    """τ [batch, codes]: `distance_bound` for each pair, as the criterion uses it."""
    from vaespec.spec.tolerances import distance_bound

    return distance_bound(dtype, z_e.shape[1], np.linalg.norm(z_e, axis=1)[:, None],
                          np.linalg.norm(codebook, axis=1)[None, :])


def unambiguous(dtype: str, z_e, codebook) -> np.ndarray:
    """bool [batch, *positions]: vectors whose code every conforming backend must agree on (one acceptable code)."""
    return acceptable_codes(dtype, z_e, codebook).sum(axis=-1) == 1


@functools.cache  # asked for every example of every backend; the reference's signatures never change
def makes_choices(function: str) -> bool:
    """Whether `function` chooses codes: its reference can be conditioned on them (a keyword-only `indices`)."""
    import inspect

    method = getattr(REFERENCE, function, None)
    if method is None:
        return False
    parameter = inspect.signature(method).parameters.get("indices")
    return parameter is not None and parameter.kind == parameter.KEYWORD_ONLY


def backend_choices(backend, function: str, args, ctx: str):
    """The backend's own code choices for `function` at `args` (judged), or None if it makes none.

    A function of `z_e` chooses by `quantize(z_e, codebook)`; one of the network (`x`) by `vq_forward`,
    judged against the backend's own `vq_encode` (the encoder's accuracy is
    `vq_encode_matches_reference`'s business).
    """
    if not makes_choices(function):
        return None
    if any(a.name == "z_e" for a in FUNCTIONS[function].args):
        z_e = args["z_e"]
        _, indices = backend.quantize(z_e, args["codebook"])
    else:
        _, indices = backend.vq_forward(args["arch"], args["params"], args["codebook"], args["x"])
        z_e = backend.vq_encode(args["arch"], args["params"], args["x"])
    judge_choices(function, backend.dtype, z_e, args["codebook"], indices, ctx)
    return check_indices(function, indices, np.shape(z_e)[:-1], args["codebook"].shape[0], ctx)


def reference(function: str, args, indices):
    """The float64 reference of `function` at `args`, conditioned on `indices` where it has a choice."""
    return reference_at(function, args, indices)


def reference_vjp(function: str, args, cotangent, indices):
    return reference_vjp_at(function, args, cotangent, indices)


def vq_context(function: str, args, backend, indices=None) -> str:
    text = context(function, args, backend)
    return text + (f"\n# the backend chose codes {indices.tolist()}" if indices is not None else "")
