"""The quantizers chapter's law checks (`vaespec.spec.quantizers`): FSQ, LFQ, residual VQ.

Identities are evaluated with the backend's own functions; `<function>_matches_reference` and
`<function>_gradient_matches_reference` are `laws.differential`'s, as for every chapter. Every bound is
the policy's (`laws.tolerance.tolerance`): the functions' declared chains times the reference's magnitudes.
"""

from __future__ import annotations

import numpy as np

from ..strategies.chapters import examples_for
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
