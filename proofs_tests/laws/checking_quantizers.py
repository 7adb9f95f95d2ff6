"""The quantizers chapter's discrete choices: FSQ's levels and residual VQ's stage indices, judged by the stated
criteria (`FSQ_ROUNDING_CRITERION`, `RVQ_CHOICE`), and the golden vectors' test that no dtype may choose
otherwise. `laws.choices` registers `choices` and `clear` as the chapter's chooser.

FSQ: a level k is acceptable iff |b − k| ≤ ½ + τ (b the float64 bound, τ fsq_bound's tolerance in the dtype
levels are chosen in). Residual VQ: each stage's index satisfies the VQ chapter's near-tie criterion on its
residual, computed in float64 at the backend's own earlier choices, widened by the residual's own rounding.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import quantizers as ref
from vaespec.reference.vq import squared_distances
from vaespec.spec.numerics import NARROW, SAFETY, bound
from vaespec.spec.quantizers import choice_dtype
from vaespec.spec.tolerances import distance_bound

from .compare import LawViolation
from .tolerance import tolerance


# ----------------------------------------------------------------------------- FSQ
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
                           f"{bool(np.all(np.isfinite(z_q)))}), expected finite [batch, *positions, dim] "
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


# ----------------------------------------------------------------------------- residual VQ
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
    expected = (*z_e.shape[:-1], books.shape[0])
    if indices.dtype.kind not in "iu" or indices.shape != expected:
        raise LawViolation(f"{function}: indices must be integers [batch, *positions, stages] = {expected}, got "
                           f"{indices.dtype} {indices.shape}\n{ctx}")
    z_e, indices = z_e.reshape(-1, z_e.shape[-1]), indices.reshape(-1, books.shape[0])  # each vector on its own
    batch = z_e.shape[0]
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
    z_e, books, n = np.reshape(args["z_e"], (-1, np.shape(args["z_e"])[-1])), args["codebooks"], int(args["num_stages"])
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


def choices(backend, function: str, args, ctx):
    """The chapter's chooser: residual VQ's stage indices, else FSQ's levels."""
    if "codebooks" in args:
        return rvq_choices(backend, function, args, ctx)
    return fsq_choices(backend, function, args, ctx)


def clear(function: str, args) -> bool:
    return rvq_clear(function, args) if "codebooks" in args else fsq_clear(function, args)
