"""The numbers of each dtype and the rounding-error arithmetic the tolerance policy is written in.

Below every chapter: the declarations state their rounding chains and numeric domains with these
names, and `vaespec.spec.tolerances` (the written policy: its docstring, `function_bound`) and
`vaespec.spec.domains` re-export them. Per dtype: the unit roundoff `UNIT_ROUNDOFF`, the smallest
normal `TINY`, the largest finite value `MAX_FINITE`. The policy's bound of a chain of n roundings,
`bound(dtype, n, n_ops)` = SAFETY·γ_n(u)·M + floor with γ_n = nu/(1 − nu) (`gamma`); the squared-distance
bound of the VQ chapter (`distance_bound`); the reference's own summation error (`sum_ulps`); the
statistical laws' z (`statistical_z`); and the KL's log-variance range (`log_var_limits`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import numpy as np

from .chains import check_count
from .errors import ConfigError, DomainError, ShapeError, show
from .shapes import check_array, check_scalar

UNIT_ROUNDOFF: dict[str, float] = {
    "float64": 2.0**-53,
    "float32": 2.0**-24,
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
}

# Smallest positive normal number per dtype: the absolute floor below which
# relative error means nothing (underflow).
TINY: dict[str, float] = {
    "float64": 2.2250738585072014e-308,
    "float32": 1.1754943508222875e-38,
    "float16": 6.103515625e-05,
    "bfloat16": 1.1754943508222875e-38,
}

SAFETY = 4.0

# Per-law, per-run false-alarm rate for statistical laws (derivation: proofs_tests/laws/statistical.py).
FALSE_ALARM_RATE = 1e-6

NARROW = ("float16", "bfloat16")

# The float64 reference against the oracle (`vaespec fidelity`, docs/numerics.md): each elementwise
# function within REFERENCE_ULPS of the exact value at its float64 inputs. Where a C-library
# primitive is the limit (erfc in gelu: glibc before 2.42 errs by up to ~4 ulps; CORE-MATH's is
# correctly rounded), what it loses beyond PRIMITIVE_ULPS (correct rounding) at the very argument
# is measured and reported as the primitive's, not hidden in a wider target.
REFERENCE_ULPS = 2.0
PRIMITIVE_ULPS = 0.5

# Largest finite value per dtype (bfloat16 keeps float32's exponent with 8 significand bits).
MAX_FINITE: dict[str, float] = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "bfloat16": 3.3895313892515355e38,
    "float16": 65504.0,
}


def check_dtype(dtype: object) -> str:
    """`dtype` if it names a dtype with stated numbers (a key of `MAX_FINITE`, `UNIT_ROUNDOFF`), else `ConfigError`."""
    if not isinstance(dtype, str) or dtype not in MAX_FINITE:
        raise ConfigError(f"dtype: expected one of {sorted(MAX_FINITE)}, got {show(dtype)}")
    return dtype


@dataclass(frozen=True)
class Bound:
    """A relative bound `rel` (multiply by the magnitude M) plus an absolute floor."""

    rel: float
    floor: float

    def tolerance(self, magnitude):
        """`rel · magnitude + floor` for a magnitude M ≥ 0 (a number or a float array)."""
        m = _magnitude("magnitude", magnitude)
        return self.rel * m + self.floor


def _magnitude(name: str, value: object) -> float | np.ndarray:
    """A finite magnitude ≥ 0: a real number or a float/int array (returned as float64)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iu":  # a masked array or matrix stays one: check_array refuses it
            value = value.astype(np.float64)
        value = check_array(name, value, tuple(f"axis{i}" for i in range(value.ndim)), allow_empty=True)
        if value.size and value.min() < 0:
            raise DomainError(f"{name}: expected values ≥ 0 (a magnitude), got min {value.min()}")
        return value
    return check_scalar(name, value, low=0.0)


def gamma(n: int, u: float) -> float:
    """γ_n = n·u / (1 − n·u): the bound on n ≥ 0 accumulated relative roundings of unit roundoff 0 < u < 1."""
    n = check_count("n", n)
    u = check_scalar("u", u, low=0.0, high=1.0)
    nu = n * u
    if nu >= 1:
        return float("inf")
    return nu / (1 - nu)


def bound(dtype: str, n: int, n_ops: int = 0) -> Bound:
    """The policy's bound for a chain of `n` roundings (`n_ops` of them op results).

    **Arguments**
    - `dtype`: the backend's compute dtype ("float64", "float32", "bfloat16", "float16").
    - `n`: reduction length of the chain (sum of dot-product lengths and elementwise ops).
    - `n_ops`: number of op results rounded to a narrow dtype (ignored for float32/64).

    **Returns** a `Bound`; compare `|actual − expected| ≤ bound.tolerance(M)`.
    """
    u = UNIT_ROUNDOFF[check_dtype(dtype)]
    n, n_ops = check_count("n", n), check_count("n_ops", n_ops)
    if dtype in NARROW:
        rel = SAFETY * (gamma(max(n_ops, 1), u) + gamma(n, UNIT_ROUNDOFF["float32"]))
    else:
        rel = SAFETY * gamma(max(n, 1), u)
    if dtype in NARROW:
        floor = SAFETY * (max(n_ops, 1) * TINY[dtype] + max(n, 1) * TINY["float32"])
    else:
        floor = SAFETY * max(n, 1) * TINY[dtype]
    return Bound(rel=rel, floor=floor)


def statistical_z(checks: int, rate: float = FALSE_ALARM_RATE) -> float:
    """Two-sided normal quantile so that `checks` independent z-tests have a total
    false-alarm probability of at most `rate` (Bonferroni): Φ⁻¹(1 − rate / (2·checks)).
    `checks` ≥ 1, 0 < `rate` < 1."""
    checks = check_count("checks", checks, 1)
    rate = check_scalar("rate", rate, low=0.0, high=1.0)
    if not 0.0 < rate < 1.0 or not 1.0 - rate / (2 * checks) < 1.0:  # else the quantile is +∞ in float64
        raise DomainError(f"rate: expected 0 < rate < 1 with 1 − rate/(2·checks) < 1 in float64, got rate = {rate}, "
                          f"checks = {checks}")
    return statistics.NormalDist().inv_cdf(1 - rate / (2 * checks))


def reduction_length(*sizes: int) -> tuple[int, int]:
    """(n, n_ops) for an elementwise formula of 4 ops reduced over axes of the given sizes (integers ≥ 1)."""
    return sum(check_count(f"sizes[{i}]", n, 1) for i, n in enumerate(sizes)) + 4, 6


def distance_bound(dtype: str, embedding_dim: int, z_norm: float | np.ndarray, e_norm: float | np.ndarray
                   ) -> float | np.ndarray:
    """Largest error a backend computing in `dtype` may make in ‖z − e‖², by either form.

    **Arguments**
    - `dtype`: the backend's compute dtype.
    - `embedding_dim`: D, the length of the reduction.
    - `z_norm`, `e_norm`: ‖z‖ and ‖e‖ (broadcastable arrays or floats).

    **Returns** `SAFETY·γ_{D+3}·(‖z‖ + ‖e‖)² + floor` (narrow dtypes: 4 rounded op results
    plus the float32 accumulation, as `bound`); the float64 reference's own error is added so
    the exact distances the criterion uses may themselves be float64 evaluations.
    """
    embedding_dim = check_count("embedding_dim", embedding_dim, 1)
    z_norm, e_norm = _magnitude("z_norm", z_norm), _magnitude("e_norm", e_norm)
    try:
        np.broadcast_shapes(np.shape(z_norm), np.shape(e_norm))
    except ValueError:
        raise ShapeError(f"e_norm: expected a shape broadcastable with z_norm's {np.shape(z_norm)}, "
                         f"got {np.shape(e_norm)}") from None
    own = bound(dtype, embedding_dim + 3, 4)
    ref = bound("float64", embedding_dim + 3)
    with np.errstate(over="ignore"):
        scale = (np.float64(z_norm) + np.float64(e_norm)) ** 2 if np.ndim(z_norm) == np.ndim(e_norm) == 0 \
            else (z_norm + e_norm) ** 2
    return (own.rel + ref.rel) * scale + (own.floor + ref.floor)  # Inf where (‖z‖ + ‖e‖)² overflows: no bound


def sum_ulps(n: int, term_ulps: float = REFERENCE_ULPS) -> float:
    """Ulps (of Σ|t_i|) a float64 sum may err by, when n roundings chain above each term.

    Each term within `term_ulps` of its exact value errs by at most 2u·term_ulps relative (an ulp
    is at most 2u|x|); any order of summation adds at most γ_n·Σ|t_i| (Higham, Thm 4.1 with the
    chain length n: the additions above a term, plus a scale or a mean's division). An ulp being
    at least u·Σ|t_i|, the error in ulps is at most `2·term_ulps + γ_n(u)/u` (≈ 2·term_ulps + n).
    """
    n, term_ulps = check_count("n", n), check_scalar("term_ulps", term_ulps, low=0.0)
    u = UNIT_ROUNDOFF["float64"]
    return 2.0 * term_ulps + gamma(max(n, 0), u) / u


def log_var_limits(dtype: str, terms: int = 1) -> tuple[float, float]:
    """(low, high): the log-variance range in which `terms` KL terms stay within `dtype` (μ = 0).

    From n (e^ℓ + |ℓ| + 1) ≤ MAX with t = MAX/n: high solves e^h = t − h − 1, i.e.
    h = log t + log1p(−(h + 1)/t) (one fixed-point step from log t is exact to rounding), and
    low = −(t − 1), no lower than −MAX (every finite value). `terms` is an integer ≥ 1.
    """
    limit = MAX_FINITE[check_dtype(dtype)]
    if isinstance(terms, bool) or not isinstance(terms, (int, np.integer)) or not 1 <= terms <= 2**53:
        raise ConfigError(f"terms: expected an integer in [1, 2**53] (the number of KL terms), got {show(terms)}")
    log_top = math.log(limit) - math.log(terms)
    top = math.exp(log_top) if log_top < math.log(limit) else math.inf
    high = log_top + math.log1p(-(log_top + 1.0) / top)
    return max(-(top - 1.0), -limit), high
