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
| `gaussian_log_likelihood` | per row ½Σ_d (log 2π + \\|ℓ\\| + (\\|x̂\\| + \\|x\\|)²·e^{−ℓ} + e^{−ℓ}) | ℓ ≥ −log MAX at least |
| `bernoulli_log_likelihood` | per row Σ_d (\\|x\\|·\\|l\\| + \\|l\\| + log 2) | \\|l\\| ≤ MAX/(2D) |
| `quantize`, the aux losses, `ema_update` | max_b (‖z_e[b]‖ + max_k ‖e_k‖)² (float32's MAX for narrow dtypes) | ‖z_e‖ + ‖e‖ ≤ √MAX |

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
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

from .errors import ConfigError, DomainError, DTypeError, ShapeError, describe, show
from .shapes import check_array, check_scalar

LOG_2PI = 1.8378770664093456  # the nearest double to log 2π (as vaespec.spec.estimators.LOG_2PI)
LOG_2 = math.log(2.0)

# Largest finite value per dtype (bfloat16 keeps float32's exponent with 8 significand bits).
MAX_FINITE: dict[str, float] = {
    "float64": float(np.finfo(np.float64).max),
    "float32": float(np.finfo(np.float32).max),
    "bfloat16": 3.3895313892515355e38,
    "float16": 65504.0,
}

# The functions whose domain is checked on their inputs (the rest: on the reference's result).
CHECKED = ("reparameterize", "kl_divergence", "reconstruction_loss", "gaussian_log_likelihood",
           "bernoulli_log_likelihood", "quantize", "codebook_loss", "commitment_loss", "ema_update")
_DISTANCES = ("quantize", "codebook_loss", "commitment_loss", "ema_update")

# The arguments each checked function's magnitude reads.
_OPERANDS = {"reparameterize": ("mu", "log_var", "eps"), "kl_divergence": ("mu", "log_var"),
             "reconstruction_loss": ("x_hat", "x"), "gaussian_log_likelihood": ("x_hat", "x", "log_var"),
             "bernoulli_log_likelihood": ("logits", "x"),
             **{f: ("z_e", "codebook") for f in _DISTANCES}}


def check_dtype(dtype) -> str:
    """`dtype` if it names a dtype with a stated domain (a key of `MAX_FINITE`), else `ConfigError`."""
    if not isinstance(dtype, str) or dtype not in MAX_FINITE:
        raise ConfigError(f"dtype: expected one of {sorted(MAX_FINITE)}, got {show(dtype)}")
    return dtype


_dtype = check_dtype


def _operands(function, args: Mapping) -> dict[str, np.ndarray]:
    """The float64 operands of `function`'s magnitude from `args`: real, finite numbers or float arrays
    (broadcastable to each other, as the torch likelihoods allow leading axes and a scalar log σ²)."""
    if not isinstance(function, str) or function not in _OPERANDS:
        raise ConfigError(f"function: expected one of {list(_OPERANDS)} (the functions checked on their inputs), "
                          f"got {show(function)}")
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to array, got {describe(args)}")
    out = {}
    for name in _OPERANDS[function]:
        if name not in args:
            raise ConfigError(f"args: {function}'s domain reads {list(_OPERANDS[function])}; missing {name!r}")
        value = args[name]
        if not isinstance(value, np.ndarray):
            value = check_scalar(name, value)
        out[name] = check_array(name, value, tuple(f"axis{i}" for i in range(np.ndim(value))))
    try:
        if function not in _DISTANCES:  # z_e [B, D] and the codebook [K, D] are not elementwise operands
            np.broadcast_shapes(*(v.shape for v in out.values()))
    except ValueError:
        raise ShapeError(f"args: {function}'s arguments {list(out)} do not broadcast: shapes "
                         f"{[v.shape for v in out.values()]}") from None
    return out


def magnitudes(function: str, args: Mapping) -> np.ndarray | float:
    """The magnitude `check_domain` compares with MAX_FINITE: elementwise for `reparameterize`, the
    whole sum (before any mean) for the losses, per row (last axis summed) for the likelihoods.
    Computed in float64 (an overflow there is +inf)."""
    operands = _operands(function, args)  # checks `function` and that `args` is a mapping first
    a = {**args, **operands}
    with np.errstate(over="ignore", invalid="ignore"):
        if function == "reparameterize":
            return np.abs(a["mu"]) + np.exp(0.5 * a["log_var"]) * np.abs(a["eps"])
        if function == "kl_divergence":
            mu, lv = a["mu"], a["log_var"]
            return float(np.sum(np.exp(lv) + np.abs(lv) + mu * mu + 1.0))
        if function == "reconstruction_loss":
            scale = max(1.0, getattr(a.get("convention"), "reconstruction_scale", 1.0))
            return float(scale * np.sum((np.abs(a["x_hat"]) + np.abs(a["x"])) ** 2))
        if function == "gaussian_log_likelihood":
            lv = a["log_var"]
            w = np.exp(-lv)  # e^{−ℓ} itself is an intermediate: it must be finite even where x = x̂
            terms = LOG_2PI + np.abs(lv) + (np.abs(a["x_hat"]) + np.abs(a["x"])) ** 2 * w + w
            return np.max(0.5 * np.sum(np.broadcast_to(terms, np.broadcast_shapes(*(v.shape for v in
                                                          (a["x_hat"], a["x"], lv)))), axis=-1))
        if function in _DISTANCES:  # every squared distance, and the aux losses' sums, stay below it
            z, e = a["z_e"], a["codebook"]
            if z.ndim != 2 or e.ndim != 2:
                raise ShapeError(f"z_e, codebook: expected [batch, embedding] and [codes, embedding], got shapes "
                                 f"{z.shape} and {e.shape}")
            return float(np.max((np.sqrt(np.sum(z * z, axis=1)) + np.sqrt(np.max(np.sum(e * e, axis=1)))) ** 2))
        logits = a["logits"]
        return np.max(np.sum(np.abs(a["x"]) * np.abs(logits) + np.abs(logits) + LOG_2, axis=-1))


def log_var_limits(dtype: str, terms: int = 1) -> tuple[float, float]:
    """(low, high): the log-variance range in which `terms` KL terms stay within `dtype` (μ = 0).

    From n (e^ℓ + |ℓ| + 1) ≤ MAX with t = MAX/n: high solves e^h = t − h − 1, i.e.
    h = log t + log1p(−(h + 1)/t) (one fixed-point step from log t is exact to rounding), and
    low = −(t − 1), no lower than −MAX (every finite value). `terms` is an integer ≥ 1.
    """
    limit = MAX_FINITE[_dtype(dtype)]
    if isinstance(terms, bool) or not isinstance(terms, (int, np.integer)) or not 1 <= terms <= 2**53:
        raise ConfigError(f"terms: expected an integer in [1, 2**53] (the number of KL terms), got {show(terms)}")
    log_top = math.log(limit) - math.log(terms)
    top = math.exp(log_top) if log_top < math.log(limit) else math.inf
    high = log_top + math.log1p(-(log_top + 1.0) / top)
    return max(-(top - 1.0), -limit), high


def check_domain(function: str, args: Mapping, dtype: str = "float64", names: Mapping[str, str] | None = None) -> None:
    """Raise `DomainError` when `args` lie outside `function`'s domain in `dtype` (see the module doc).

    **Arguments**
    - `function`: a contract function name; only those in `CHECKED` have input-side checks (any
      other name in the contract passes; a name outside it is a `ConfigError`).
    - `args`: its arguments (float arrays or numbers; checked here too, since this is public).
    - `dtype`: the dtype the function is evaluated in ("float64" for the reference).
    - `names`: how the caller names the contract's arguments in its messages (e.g. `vaespec.impl.loss`
      calls x̂ `reconstruction`); by default the contract's names.

    **Raises** `DomainError` naming the offending argument, the limit and the value.
    """
    from .contract import FUNCTIONS

    limit = MAX_FINITE[_dtype(dtype)]
    if function in _DISTANCES and dtype in ("bfloat16", "float16"):
        limit = MAX_FINITE["float32"]  # narrow backends choose codes from float32 distances (spec/vq.py)
    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    if function not in CHECKED:
        return
    operands = _operands(function, args)  # checks that `args` is a mapping first
    args = {**args, **operands}
    n = (lambda key: names.get(key, key)) if names else (lambda key: key)
    m = magnitudes(function, args)
    if function == "reparameterize":
        if np.all(m <= limit):
            return
        b = tuple(int(i) for i in np.argwhere(~(m <= limit))[0])
        mu, lv, eps = (np.broadcast_to(args[k], m.shape) for k in ("mu", "log_var", "eps"))
        raise DomainError(
            f"{n('log_var')}: |mu| + e^(log_var/2)·|eps| must stay ≤ {limit:.4g} ({dtype}'s largest value) so z is "
            f"finite; got {n('log_var')} = {float(lv[b]):.6g}, {n('mu')} = {float(mu[b]):.6g}, "
            f"{n('eps')} = {float(eps[b]):.6g} at index {b}")
    if m <= limit:
        return
    if function == "kl_divergence":
        mu, lv = args["mu"], args["log_var"]
        low, high = log_var_limits(dtype, max(mu.size, 1))
        name, got = (n("log_var"), f"log_var in [{float(lv.min()):.6g}, {float(lv.max()):.6g}]") \
            if (lv.max() > high or lv.min() < low) else (n("mu"), f"max |μ| = {float(np.abs(mu).max()):.6g}")
        raise DomainError(
            f"{name}: the KL's magnitude Σ(e^log_var + |log_var| + μ² + 1) must stay ≤ {limit:.4g} ({dtype}'s "
            f"largest value); for {mu.size} terms that means {low:.4g} ≤ log_var ≤ {high:.4g} and smaller μ; "
            f"got {got} (magnitude {m:.4g})")
    if function == "gaussian_log_likelihood":
        lv = args["log_var"]
        raise DomainError(
            f"{n('log_var')}: the Gaussian's magnitude ½Σ_d(log 2π + |ℓ| + (|x̂| + |x|)²·e^(−ℓ) + e^(−ℓ)) must stay ≤ "
            f"{limit:.4g} ({dtype}'s largest value), so ℓ ≥ −{math.log(limit):.4g} at the very least and larger "
            f"where x̂, x are large; got log_var in [{float(np.min(lv)):.6g}, {float(np.max(lv)):.6g}], "
            f"max |{n('x_hat')}| = {float(np.abs(args['x_hat']).max()):.6g}, max |{n('x')}| = "
            f"{float(np.abs(args['x']).max()):.6g} (magnitude {m:.4g})")
    if function in _DISTANCES:
        raise DomainError(
            f"{n('z_e')}: the squared distances' magnitude max_b(‖z_e[b]‖ + max_k ‖e_k‖)² must stay ≤ {limit:.4g} (the "
            f"largest value of the dtype distances are computed in) so every ‖z_e − e_k‖² is finite; got max |z_e| = "
            f"{float(np.abs(args['z_e']).max()):.6g}, max |{n('codebook')}| = {float(np.abs(args['codebook']).max()):.6g} "
            f"(magnitude {m:.4g})")
    if function == "bernoulli_log_likelihood":
        raise DomainError(
            f"{n('logits')}: the Bernoulli's magnitude Σ_d(|x|·|l| + |l| + log 2) must stay ≤ {limit:.4g} ({dtype}'s "
            f"largest value); got max |{n('logits')}| = {float(np.abs(args['logits']).max()):.6g} (magnitude {m:.4g})")
    raise DomainError(
        f"{n('x_hat')}: the reconstruction's magnitude max(scale, 1)·Σ(|x̂| + |x|)² must stay ≤ {limit:.4g} ({dtype}'s "
        f"largest value); got max |{n('x_hat')}| = {float(np.abs(args['x_hat']).max()):.6g}, max |{n('x')}| = "
        f"{float(np.abs(args['x']).max()):.6g} "
        f"(magnitude {m:.4g} over {args['x'].size} terms)")


def check_result(function: str, result, dtype: str = "float64", what: str = "result"):
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
            from .contract import FUNCTIONS
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
