"""Numeric domains: where each VAE contract function is defined in each dtype, and what happens outside.

**The rule.** A function's domain in dtype T is the set of finite inputs whose **magnitude** M
is at most `MAX_FINITE[T]`, where M is the quantity the tolerance policy scales (every operand
replaced by its absolute value, sums taken before a mean divides them; docs/tolerances.md).
M bounds every intermediate of the computation, so inside the domain nothing overflows, and
the tolerance policy's bound applies. For the functions on direct inputs this reads:

| function | M (elementwise or summed) | so, per element |
|---|---|---|
| `reparameterize` | \\|μ\\| + e^{ℓ/2}\\|ε\\| | ℓ ≤ 2 log(MAX/\\|ε\\|) |
| `kl_divergence` | Σ_bj (e^ℓ + \\|ℓ\\| + μ² + 1) | ℓ ≤ log(MAX/n), \\|μ\\| ≤ √(MAX/n), ℓ ≥ −MAX/n for n = B·L terms |
| `reconstruction_loss` | max(s, 1) · Σ_bd (\\|x̂\\| + \\|x\\|)² | \\|x̂\\| + \\|x\\| ≤ √(MAX/(max(s, 1)·n)) for n = B·D′ terms |

There is no lower limit on ℓ beyond the size of the −ℓ/2 term: σ² = e^ℓ may underflow to 0 and
the KL stays finite, because it never forms log σ² from σ² (torch.distributions' scale-based KL
is +inf at ℓ = −150 in float32; ours is 74.5). The network functions (`encode`, `decode`, …)
have the same rule with the network's magnitude (`vaespec.reference.magnitude`); the spec
cannot evaluate it without the reference, so it is checked on the result (below).

**Outside the domain: a clear error, never a clamp.** A clamp would change the value and zero
the gradient without telling anyone, which is what a conformance oracle must not do.
`check_domain` raises `DomainError` naming the argument, the dtype's limit and what was given;
`validate_args` calls it for the reference (float64) and backends pass their own dtype. The
reference raises `DomainError` when a network function's float64 result is not finite.
`vaespec.impl`'s functional ops check their tensor's dtype with `validate=True`; with
`validate=False` they follow IEEE arithmetic (inf, NaN) as torch does.

**The laws' draw range** `LOG_VAR_DOMAIN[T]` (|ℓ| ≤ 80, or 6 for float16) lies inside every
domain above for the strategies' sizes (n ≤ 30 terms, |μ| ≤ 5, |ε| ≤ 4); `test_extremes.py`
checks it. Empty reductions are outside every domain: a zero-sized dimension is a `ShapeError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .errors import DomainError

# Largest finite value per dtype (bfloat16 keeps float32's exponent with 8 significand bits).
MAX_FINITE: dict[str, float] = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "bfloat16": 3.3895313892515355e38,
    "float16": 65504.0,
}

# The functions whose domain is checked on their inputs (the rest: on the reference's result).
CHECKED = ("reparameterize", "kl_divergence", "reconstruction_loss")


def _dtype(dtype: str) -> str:
    if dtype not in MAX_FINITE:
        raise ValueError(f"dtype: expected one of {sorted(MAX_FINITE)}, got {dtype!r}")
    return dtype


def magnitudes(function: str, args: Mapping) -> np.ndarray | float:
    """The magnitude `check_domain` compares with MAX_FINITE: elementwise for `reparameterize`, the
    whole sum (before any mean) for the losses. Computed in float64 (an overflow there is +inf)."""
    with np.errstate(over="ignore"):
        if function == "reparameterize":
            return np.abs(args["mu"]) + np.exp(0.5 * args["log_var"]) * np.abs(args["eps"])
        if function == "kl_divergence":
            mu, lv = args["mu"], args["log_var"]
            return float(np.sum(np.exp(lv) + np.abs(lv) + mu * mu + 1.0))
        if function == "reconstruction_loss":
            scale = max(1.0, getattr(args.get("convention"), "reconstruction_scale", 1.0))
            return float(scale * np.sum((np.abs(args["x_hat"]) + np.abs(args["x"])) ** 2))
    raise KeyError(function)


def log_var_limits(dtype: str, terms: int = 1) -> tuple[float, float]:
    """(low, high): the log-variance range in which `terms` KL terms stay within `dtype` (μ = 0).

    From n (e^ℓ + |ℓ| + 1) ≤ MAX with t = MAX/n: high solves e^h = t − h − 1, i.e.
    h = log t + log1p(−(h + 1)/t) (one fixed-point step from log t is exact to rounding), and
    low = −(t − 1), no lower than −MAX (every finite value).
    """
    limit = MAX_FINITE[_dtype(dtype)]
    log_top = math.log(limit) - math.log(terms)
    top = math.exp(log_top) if log_top < math.log(limit) else math.inf
    high = log_top + math.log1p(-(log_top + 1.0) / top)
    return max(-(top - 1.0), -limit), high


def check_domain(function: str, args: Mapping, dtype: str = "float64") -> None:
    """Raise `DomainError` when `args` lie outside `function`'s domain in `dtype` (see the module doc).

    **Arguments**
    - `function`: a contract function name; only those in `CHECKED` have input-side checks.
    - `args`: its arguments (already shape-checked float arrays).
    - `dtype`: the dtype the function is evaluated in ("float64" for the reference).

    **Raises** `DomainError` naming the offending argument, the limit and the value.
    """
    if function not in CHECKED:
        return
    limit = MAX_FINITE[_dtype(dtype)]
    m = magnitudes(function, args)
    if function == "reparameterize":
        if np.all(m <= limit):
            return
        b = tuple(int(i) for i in np.argwhere(~(m <= limit))[0])
        raise DomainError(
            f"log_var: |μ| + e^(log_var/2)·|ε| must stay ≤ {limit:.4g} ({dtype}'s largest value) so z is finite; "
            f"got log_var = {float(args['log_var'][b]):.6g}, μ = {float(args['mu'][b]):.6g}, "
            f"ε = {float(args['eps'][b]):.6g} at index {b}")
    if m <= limit:
        return
    if function == "kl_divergence":
        mu, lv = args["mu"], args["log_var"]
        low, high = log_var_limits(dtype, mu.size)
        name, got = ("log_var", f"log_var in [{float(lv.min()):.6g}, {float(lv.max()):.6g}]") \
            if (lv.max() > high or lv.min() < low) else ("mu", f"max |μ| = {float(np.abs(mu).max()):.6g}")
        raise DomainError(
            f"{name}: the KL's magnitude Σ(e^log_var + |log_var| + μ² + 1) must stay ≤ {limit:.4g} ({dtype}'s "
            f"largest value); for {mu.size} terms that means {low:.4g} ≤ log_var ≤ {high:.4g} and smaller μ; "
            f"got {got} (magnitude {m:.4g})")
    raise DomainError(
        f"x_hat: the reconstruction's magnitude max(scale, 1)·Σ(|x̂| + |x|)² must stay ≤ {limit:.4g} ({dtype}'s largest "
        f"value); got max |x̂| = {float(np.abs(args['x_hat']).max()):.6g}, max |x| = {float(np.abs(args['x']).max()):.6g} "
        f"(magnitude {m:.4g} over {args['x'].size} terms)")


def domain_rows(terms: tuple[int, ...] = (1, 30, 4096)) -> list[dict]:
    """Per dtype: MAX_FINITE and the KL's log-variance limits at n terms (the docs' domain table)."""
    return [{"dtype": d, "max": MAX_FINITE[d], "log_var": {n: log_var_limits(d, n) for n in terms}}
            for d in MAX_FINITE]
