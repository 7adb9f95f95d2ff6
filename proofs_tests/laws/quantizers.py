"""The quantizers chapter's law checks (`vaespec.spec.quantizers`): FSQ, LFQ, residual VQ.

Identities are evaluated with the backend's own functions; `<function>_matches_reference` and
`<function>_gradient_matches_reference` are `laws.differential`'s, as for every chapter. Every bound is
the policy's (`laws.tolerance.tolerance`): the functions' declared chains times the reference's magnitudes.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import quantizers as ref
from vaespec.spec.quantizers import choice_dtype

from ..strategies.chapters import examples_for
from . import choices
from .checking import Check, context, function_args
from .compare import LawViolation
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


# ----------------------------------------------------------------------------- FSQ's choices
def _bound_args(args):
    return {"z": args["z"], "levels": args["levels"]}


def judge_levels(function: str, dtype: str, args, levels_chosen, ctx) -> float:
    """Raise LawViolation unless every chosen level satisfies FSQ_ROUNDING_CRITERION; the worst ratio
    (|b − k| − ½) / τ over the entries (≤ 1 when all hold, ≤ 0 away from the boundaries)."""
    levels = args["levels"]
    b = ref.fsq_bound(args["z"], levels)
    tau = tolerance(choice_dtype(dtype), "fsq_bound", _bound_args(args))
    k = np.asarray(levels_chosen, dtype=np.float64)
    outside = (k < -(levels // 2)) | (k > (levels + 1) // 2 - 1)
    excess = np.abs(b - k) - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(excess <= 0, 0.0, np.where(tau > 0, excess / tau, np.inf))
    ratio = np.where(outside, np.inf, ratio)
    if ratio.size and ratio.max() > 1:
        at = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        raise LawViolation(f"{function}: entry {[int(i) for i in at]} chose level {k[at]:g} for the bound "
                           f"{b[at]!r}, |b − k| = {abs(b[at] - k[at]):.6g} exceeds ½ + τ = {0.5 + tau[at]:.6g} "
                           f"({dtype}; levels {levels.tolist()})\n{ctx}", ratio=float(max(ratio[at], 1 + 1e-12)))
    return float(ratio.max(initial=0.0))


def fsq_choices(backend, function: str, args, ctx):
    """The backend's levels k = rint(z_q · ⌊L/2⌋) from its fsq_quantize at (z, levels), judged."""
    z_q = np.asarray(backend.fsq_quantize(args["z"], args["levels"]), dtype=np.float64)
    if z_q.shape != np.shape(args["z"]) or not np.all(np.isfinite(z_q)):
        raise LawViolation(f"{function}: fsq_quantize returned {z_q.shape} values (finite: "
                           f"{bool(np.all(np.isfinite(z_q)))}), expected finite [batch, dim] "
                           f"{np.shape(args['z'])}\n{ctx}")
    k = np.rint(z_q * (args["levels"] // 2))
    judge_levels(function, backend.dtype, args, k, ctx)
    return k.astype(np.int64)


def fsq_clear(function: str, args, slack: float = 2.0) -> bool:
    """No dtype may round otherwise: every bound is farther than `slack` × its tolerance from k + ½ in the widest
    choice dtype (float32: narrow backends choose in it too)."""
    b = ref.fsq_bound(args["z"], args["levels"])
    tau = tolerance("float32", "fsq_bound", _bound_args(args))
    return bool(np.all(np.abs(np.abs(b - np.round(b)) - 0.5) > slack * tau))


choices.register("quantizers", fsq_choices, fsq_clear)


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


_LAWS = {"fsq_bound_rounds_into_levels": ("fsq_bound", fsq_bound_rounds_into_levels)}

CHECKS: dict[str, Check] = {name: Check(name, examples_for(function), run) for name, (function, run) in _LAWS.items()}
