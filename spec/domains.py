"""Numeric domains: where each VAE contract function is defined in each dtype, and what happens outside.

**The rule.** A function's domain in dtype T is the set of finite inputs whose **magnitude** M
is at most `MAX_FINITE[T]`, where M is the quantity the tolerance policy scales (every operand
replaced by its absolute value, sums taken before a mean divides them; docs/tolerances.md).
M bounds every intermediate of the computation, so inside the domain nothing overflows, and
the tolerance policy's bound applies. For the functions on direct inputs this reads:

| function | M (elementwise, summed, or per row) | so, per element |
|---|---|---|
| `reparameterize` | \\|μ\\| + e^{ℓ/2}\\|ε\\| | ℓ ≤ 2 log(MAX/\\|ε\\|) |
| `kl_divergence` | Σ_bj (e^ℓ + \\|ℓ\\| + μ² + 1) | ℓ ≤ log(MAX/n), \\|μ\\| ≤ √(MAX/n), ℓ ≥ −MAX/n (n = B·L) |
| `reconstruction_loss` | max(s, 1) · Σ_bd (\\|x̂\\| + \\|x\\|)² | \\|x̂\\| + \\|x\\| ≤ √(MAX/(max(s, 1)·n)) (n = B·D′) |
| `gaussian_log_likelihood` | ½Σ_d (log 2π + \\|ℓ\\| + (\\|x̂\\| + \\|x\\|)²·e^{−ℓ} + e^{−ℓ}) | ℓ ≥ −log MAX at least |
| `bernoulli_log_likelihood` | Σ_d (\\|x\\|·\\|l\\| + \\|l\\| + log 2) | \\|l\\| ≤ MAX/(2D) |
| `quantize`, the aux losses, `ema_update` | max_b (‖z_e[b]‖ + max_k ‖e_k‖)² | ‖z_e‖ + ‖e‖ ≤ √MAX |

(In the last row MAX is float32's for the dtypes narrower than float32.)

There is no lower limit on ℓ beyond the size of the −ℓ/2 term: σ² = e^ℓ may underflow to 0 and
the KL stays finite, because it never forms log σ² from σ² (torch.distributions' scale-based KL
is +inf at ℓ = −150 in float32; ours is 74.5). The network functions (`encode`, `decode`, …)
have the same rule with the network's magnitude (`vaespec.reference.magnitude`); the spec
cannot evaluate it without the reference, so it is checked on the result (below).

**Outside the domain: a clear error, never a clamp.** A clamp would change the value and zero
the gradient without telling anyone, which is what a conformance oracle must not do.
`check_domain` raises `DomainError` naming the argument, the dtype's limit and what was given;
`validate_args` calls it for the reference (float64) and backends pass their own dtype. The
reference and both backends raise `DomainError` when a result or gradient is not finite
(`check_result`): no contract function returns Inf or NaN from inputs it accepted.
`vaespec.impl`'s functional ops check their tensor's dtype with `validate=True`; with
`validate=False` they follow IEEE arithmetic (inf, NaN) as torch does.

**The laws' draw range** `LOG_VAR_DOMAIN[T]` (|ℓ| ≤ 80, or 6 for float16) lies inside every
domain above for the strategies' sizes (n ≤ 30 terms, |μ| ≤ 5, |ε| ≤ 4); `test_extremes.py`
checks it. Empty reductions are outside every domain: a zero-sized dimension is a `ShapeError`.

**Where each rule is stated.** Beside its function's declaration: `FunctionSpec.domain` (a
`vaespec.spec.signature.Domain`: the operands it reads, M, the message outside) in the chapter
modules `vae`, `vq`, `estimators` and `bayes` (the Bayesian chapter's conditioning rule,
`vaespec.spec.bayes.check_domain`). This module looks them up by name.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from .errors import ConfigError, DomainError, show
from .functions import FUNCTIONS
from .numerics import MAX_FINITE, check_dtype, log_var_limits
from .signature import Domain

T = TypeVar("T")

__all__ = ["CHECKED", "MAX_FINITE", "check_domain", "check_dtype", "check_result", "domain_rows", "log_var_limits",
           "magnitudes"]

# The functions whose domain is checked on their inputs (the rest: on the reference's result).
CHECKED = tuple(f for f, spec in FUNCTIONS.items() if spec.domain is not None)


def _measured(function: object) -> Domain:
    """The declared domain of `function` if it is a magnitude bound M ≤ MAX, else `ConfigError` listing those."""
    spec = FUNCTIONS.get(function) if isinstance(function, str) else None
    if spec is None or spec.domain is None or spec.domain.magnitude is None:
        measured = [f for f, s in FUNCTIONS.items() if s.domain is not None and s.domain.magnitude is not None]
        raise ConfigError(f"function: expected one of {measured} (the functions checked on their inputs), "
                          f"got {show(function)}")
    return spec.domain


def magnitudes(function: str, args: Mapping) -> np.ndarray | float:
    """The magnitude `check_domain` compares with MAX_FINITE: elementwise for `reparameterize`, the
    whole sum (before any mean) for the losses, per row (last axis summed) for the likelihoods, the
    largest squared distance for the VQ functions. Computed in float64 (an overflow there is +inf);
    `FunctionSpec.domain.magnitude` of the function's declaration."""
    domain = _measured(function)  # checks `function` first, then that `args` is a mapping
    assert domain.magnitude is not None  # _measured refuses a domain without one
    return Domain.measure(domain.magnitude, domain.read(function, args))


def check_domain(function: str, args: Mapping, dtype: str = "float64", names: Mapping[str, str] | None = None) -> None:
    """Raise `DomainError` when `args` lie outside `function`'s domain in `dtype` (see the module doc).

    **Arguments**
    - `function`: a contract function name; only those in `CHECKED` (a declared `FunctionSpec.domain`)
      have input-side checks (any other name in the contract passes; a name outside it is a `ConfigError`).
    - `args`: its arguments (float arrays or numbers; checked here too, since this is public).
    - `dtype`: the dtype the function is evaluated in ("float64" for the reference).
    - `names`: how the caller names the contract's arguments in its messages (e.g. `vaespec.impl.loss`
      calls x̂ `reconstruction`); by default the contract's names.

    **Raises** `DomainError` naming the offending argument, the limit and the value.
    """
    check_dtype(dtype)
    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    domain = FUNCTIONS[function].domain
    if domain is not None:
        domain.check(function, args, dtype, names)


def check_result(function: str, result: T, dtype: str = "float64", what: str = "result") -> T:
    """Return `result` (an array, a tuple or a dict of them, nested) if every float entry is finite, else raise
    `DomainError` naming `function`'s inputs: the network functions' domain is where every intermediate stays
    within `dtype`, which the spec cannot evaluate without the reference, so it is checked on the result
    (`what` = "gradient" for a VJP's, which also names the cotangent). Backends call it at their boundary,
    so no contract function returns Inf or NaN from inputs it accepted."""
    check_dtype(dtype)
    if not isinstance(function, str):
        raise ConfigError(f"function: expected a contract function name, got {show(function)}")
    values = result.values() if isinstance(result, dict) else result if isinstance(result, (tuple, list)) else (result,)
    for value in values:
        if isinstance(value, (dict, tuple, list)):
            check_result(function, value, dtype, what)
        elif isinstance(value, (np.ndarray, np.floating, float)) and np.asarray(value).dtype.kind == "f" \
                and not np.all(np.isfinite(value)):
            spec = FUNCTIONS.get(function)
            names = [a.name for a in spec.args if a.kind in ("array", "params", "scalar")] if spec else []
            names += ["cotangent"] if what == "gradient" else []
            raise DomainError(f"{function}: the {dtype} {what} is not finite, so the inputs ({', '.join(names)}) lie "
                              f"outside its {dtype} domain: every intermediate must stay within "
                              f"±{MAX_FINITE.get(dtype, MAX_FINITE['float64']):.4g} (docs/numerics.md)")
    return result


def domain_rows(terms: tuple[int, ...] = (1, 30, 4096)) -> list[dict]:
    """Per dtype: MAX_FINITE and the KL's log-variance limits at n terms (the docs' domain table)."""
    if isinstance(terms, (str, bytes)) or not hasattr(terms, "__iter__"):
        raise ConfigError(f"terms: expected a sequence of integers ≥ 1, got {show(terms)}")
    terms = tuple(itertools.islice(terms, 65))
    if len(terms) > 64:
        raise ConfigError("terms: expected at most 64 term counts, got more")
    return [{"dtype": d, "max": MAX_FINITE[d], "log_var": {n: log_var_limits(d, n) for n in terms}}
            for d in MAX_FINITE]
