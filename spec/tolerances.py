"""The tolerance policy: the one place every comparison's bound comes from.

**Error model.** A computation whose longest chain of roundings has length `n`
(a dot product of length k contributes k; each elementwise op contributes 1)
has a forward error bounded, to first order, by `γ_n · M` (Higham, *Accuracy and
Stability of Numerical Algorithms*, §3.1), where `γ_n = n·u / (1 − n·u)`, `u` is the
unit roundoff of the arithmetic, and `M` is the magnitude of the computation: the
same computation done on absolute values (`|W|·|h| + |b|` for a dense layer;
`vaespec.reference.magnitude`). M carries the conditioning: where a result cancels
(an output near 0, expm1(ℓ) − ℓ at small ℓ), M stays at the size of the operands.

    |actual − expected| ≤ SAFETY · γ_n(u) · M + floor        entrywise, per side

`SAFETY = 4` covers the activations (1-Lipschitz up to gelu's 1.13 per layer, at
most 4 hidden layers in the strategies ⇒ 1.13⁴ ≈ 1.6) and the error of each
transcendental beyond its final rounding (glibc's exp, expm1, log1p and tanh within 1.1 ulps,
its erfc 2.4, the float64 reference's functions within 2: `vaespec fidelity`) — fixed here, never
tuned per test. The **floor** `SAFETY·n·TINY` absorbs underflow, counted as if every
rounding could flush a result below the smallest normal to zero (XLA and fast-math builds do).

**Low precision.** bfloat16 and float16 backends round each op's *result* to the narrow
type but accumulate reductions in float32 (as torch does on CPU and CUDA), so a chain costs
`γ_{n_ops}(u_narrow) + γ_n(u_float32)`, `n_ops` the rounded results along it (one per layer
op); likewise the floor is `n_ops·TINY[narrow] + n·TINY[float32]`: only op results can
underflow at the narrow type's threshold.

**Gradients** are compared entrywise with `M̄`, the reference's backward pass on absolute
values (`vaespec.reference.vjp_magnitude`: |W|ᵀ, |act′| plus the activation's curvature
times the pre-activation's magnitude, each loss derivative's operand sizes, e.g.
½(e^ℓ + 1) for ∂KL/∂ℓ), and `n` the forward chain plus the backward chain plus the batch
sum of the weight gradients (`chain_length(f + "_vjp")`).

**The reference itself** is held to the oracle (`vaespec fidelity`, docs/numerics.md):
`REFERENCE_ULPS` elementwise and `sum_ulps(n)` for its reductions, far below any bound above.

**Squared distances** (VQ): `distance_bound` bounds the error of ‖z − e‖² computed either
directly (Σ (z − e)²) or by the expanded form ‖z‖² − 2 z·e + ‖e‖²: every term of either is at
most (|z| + |e|)² in size, so n = D + 3 roundings give SAFETY·γ_{D+3}·(‖z‖ + ‖e‖)². The near-tie
criterion of `vaespec.spec.vq` is stated with it.

**Statistical laws** use a z-bound instead: see `statistical_z`. **Domains** (where a function
is defined in a dtype, and the DomainError outside) are `vaespec.spec.domains`.

docs/tolerances.md states the model and prints the table of every function's bound per dtype,
generated from this module (`python -m vaespec.proofs_tests.docs_tolerances`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, DomainError, DTypeError, describe, show

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

# Per-law, per-run false-alarm rate for statistical laws (derivation: proofs_tests/laws_statistical.py).
FALSE_ALARM_RATE = 1e-6

NARROW = ("float16", "bfloat16")

# The float64 reference against the oracle (`vaespec fidelity`, docs/numerics.md): each elementwise
# function within REFERENCE_ULPS of the exact value at its float64 inputs. Where a C-library
# primitive is the limit (erfc in gelu: glibc before 2.42 errs by up to ~4 ulps; CORE-MATH's is
# correctly rounded), what it loses beyond PRIMITIVE_ULPS (correct rounding) at the very argument
# is measured and reported as the primitive's, not hidden in a wider target.
REFERENCE_ULPS = 2.0
PRIMITIVE_ULPS = 0.5

# The log-variance range the laws draw from, |log σ²| ≤ this (checking.function_args clips to it).
# It lies inside every dtype's stated domain (`vaespec.spec.domains`) for the strategies' sizes:
# float16 (max 65504) overflows Σ exp(lv) over 30 entries once lv ≳ 7.7; float32's exponent
# range overflows exp at 88.7 (80.4 for 4096 terms). Out here a law would test overflow, not the VAE.
LOG_VAR_DOMAIN: dict[str, float] = {"float64": 80.0, "float32": 80.0, "bfloat16": 80.0, "float16": 6.0}


@dataclass(frozen=True)
class Bound:
    """A relative bound `rel` (multiply by the magnitude M) plus an absolute floor."""

    rel: float
    floor: float

    def tolerance(self, magnitude):
        """`rel · magnitude + floor` for a magnitude M ≥ 0 (a number or a float array)."""
        m = _magnitude("magnitude", magnitude)
        return self.rel * m + self.floor


def _count(name: str, value, low: int = 0) -> int:
    """An integer in [`low`, 2⁵³] (a rounding count or a size: exact as a float), else `ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= 2**53:
        raise ConfigError(f"{name}: expected an integer in [{low}, 2**53], got {show(value)}")
    return int(value)


def _check_dtype(dtype) -> str:
    if not isinstance(dtype, str) or dtype not in UNIT_ROUNDOFF:
        raise ConfigError(f"dtype: expected one of {sorted(UNIT_ROUNDOFF)}, got {show(dtype)}")
    return dtype


def _magnitude(name: str, value):
    """A finite magnitude ≥ 0: a real number or a float/int array (returned as float64)."""
    from .shapes import check_array, check_scalar, _plain_array

    if isinstance(value, np.ndarray):
        value = _plain_array(name, value)
        if value.dtype.kind in "iu":
            value = value.astype(np.float64)
        value = check_array(name, value, tuple(f"axis{i}" for i in range(value.ndim)), allow_empty=True)
        if value.size and value.min() < 0:
            raise DomainError(f"{name}: expected values ≥ 0 (a magnitude), got min {value.min()}")
        return value
    return check_scalar(name, value, low=0.0)


def gamma(n: int, u: float) -> float:
    """γ_n = n·u / (1 − n·u): the bound on n ≥ 0 accumulated relative roundings of unit roundoff 0 < u < 1."""
    from .shapes import check_scalar

    n = _count("n", n)
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
    u = UNIT_ROUNDOFF[_check_dtype(dtype)]
    n, n_ops = _count("n", n), _count("n_ops", n_ops)
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
    from .shapes import check_scalar

    checks = _count("checks", checks, 1)
    rate = check_scalar("rate", rate, low=0.0, high=1.0)
    if not 0.0 < rate < 1.0 or not 1.0 - rate / (2 * checks) < 1.0:  # else the quantile is +∞ in float64
        raise DomainError(f"rate: expected 0 < rate < 1 with 1 − rate/(2·checks) < 1 in float64, got rate = {rate}, "
                          f"checks = {checks}")
    return statistics.NormalDist().inv_cdf(1 - rate / (2 * checks))


def chain_length(function: str, arch, batch: int) -> tuple[int, int]:
    """(n, n_ops) of `function`'s longest rounding chain for `arch` at `batch` examples.

    Dense layers contribute their fan-in to `n` and 3 rounded results (product, bias add,
    activation) to `n_ops`; the reparameterization 4 ops (halve, exp, multiply, add);
    a loss its reductions (features or latent, then batch) plus 4 elementwise ops; the VQ
    straight-through 2 ops, and each VQ auxiliary loss a mean over batch × embedding.
    A gradient's chain is its function's forward chain, the backward chain (the same
    layers again, transposed) and the batch sum of the weight gradients.
    """
    from .architecture import Architecture, VQArchitecture

    if not isinstance(function, str):
        raise ConfigError(f"function: expected a function name, got {show(function)}")
    if arch is not None and not isinstance(arch, (Architecture, VQArchitecture)):
        raise DTypeError(f"arch: expected an Architecture, a VQArchitecture or None, got {describe(arch)}")
    batch = _count("batch", batch, 1)
    if function.endswith("_vjp"):
        n, ops = chain_length(function[: -len("_vjp")], arch, batch)
        return 2 * n + batch, 2 * ops + 1
    reparam = (4, 4)
    if arch is not None:
        n_enc_layers = len(arch.encoder_sizes) + 1
        n_dec_layers = len(arch.decoder_sizes) + 1
        encode = (arch.longest_path("encoder") + 2 * n_enc_layers, 3 * n_enc_layers)
        decode = (arch.longest_path("decoder") + 2 * n_dec_layers, 3 * n_dec_layers)
        features, latent = arch.output_size, arch.latent_size
    quantize = (2, 2)  # straight-through z_e + (e − z_e): two rounded results
    if arch is not None and hasattr(arch, "num_embeddings"):
        aux = arch.embedding_dim * batch + 4  # mean over batch × embedding, all elements at once
    table = {
        "vq_encode": lambda: encode,
        "vq_forward": lambda: (encode[0] + quantize[0] + decode[0], encode[1] + quantize[1] + decode[1]),
        "vq_loss": lambda: (encode[0] + quantize[0] + decode[0] + features + batch + 2 * aux + 8,
                            encode[1] + quantize[1] + decode[1] + 12),
        "reparameterize": lambda: reparam,
        "encode": lambda: encode,
        "decode": lambda: decode,
        "generate": lambda: decode,
        "sample_latent": lambda: (encode[0] + reparam[0], encode[1] + reparam[1]),
        "forward": lambda: (encode[0] + reparam[0] + decode[0], encode[1] + reparam[1] + decode[1]),
        "loss": lambda: (encode[0] + reparam[0] + decode[0] + features + latent + batch + 8,
                         encode[1] + reparam[1] + decode[1] + 8),
    }
    if function in table:
        if arch is None and function != "reparameterize":
            raise ConfigError(f"arch: {function}'s chain runs through the network, so it needs an architecture, got None")
        if function.startswith("vq_") and not isinstance(arch, VQArchitecture):
            raise DTypeError(f"arch: {function} needs a VQArchitecture, got {describe(arch)}")
        return table[function]()
    raise ConfigError(f"function: no chain length for {show(function)}; losses on direct inputs use reduction_length")


def reduction_length(*sizes: int) -> tuple[int, int]:
    """(n, n_ops) for an elementwise formula of 4 ops reduced over axes of the given sizes (integers ≥ 1)."""
    return sum(_count(f"sizes[{i}]", n, 1) for i, n in enumerate(sizes)) + 4, 6


def vq_chain_length(function: str, batch: int, dim: int, codes: int) -> tuple[int, int]:
    """(n, n_ops) for the VQ functions on direct inputs (z_e [batch, dim], codebook [codes, dim]).

    quantize: the straight-through z_e + (e − z_e), 2 roundings (its index is judged by the
    near-tie criterion, not by this bound). Auxiliary losses: a mean over batch × dim of
    squared differences (4 elementwise ops); their gradients 2 more ops. laplace_smooth: a sum
    over codes and 4 ops. ema_update: the per-code sum over the batch, the moving average,
    debiasing, smoothing (a sum over codes) and the division: batch + codes + 10 roundings.
    """
    if not isinstance(function, str):
        raise ConfigError(f"function: expected a function name, got {show(function)}")
    batch, dim, codes = _count("batch", batch, 1), _count("dim", dim, 1), _count("codes", codes, 1)
    base = function.removesuffix("_vjp")
    extra = 2 if function.endswith("_vjp") else 0
    table = {
        "quantize": (2, 2),
        "codebook_loss": (batch * dim + 4 + extra, 6 + extra),
        "commitment_loss": (batch * dim + 4 + extra, 6 + extra),
        "laplace_smooth": (codes + 4, 4),
        "ema_update": (batch + codes + 10, 10),
    }
    if base not in table:
        raise ConfigError(f"function: no VQ reduction length for {show(function)}; network functions use chain_length")
    return table[base]


def distance_bound(dtype: str, embedding_dim: int, z_norm, e_norm):
    """Largest error a backend computing in `dtype` may make in ‖z − e‖², by either form.

    **Arguments**
    - `dtype`: the backend's compute dtype.
    - `embedding_dim`: D, the length of the reduction.
    - `z_norm`, `e_norm`: ‖z‖ and ‖e‖ (broadcastable arrays or floats).

    **Returns** `SAFETY·γ_{D+3}·(‖z‖ + ‖e‖)² + floor` (narrow dtypes: 4 rounded op results
    plus the float32 accumulation, as `bound`); the float64 reference's own error is added so
    the exact distances the criterion uses may themselves be float64 evaluations.
    """
    embedding_dim = _count("embedding_dim", embedding_dim, 1)
    z_norm, e_norm = _magnitude("z_norm", z_norm), _magnitude("e_norm", e_norm)
    try:
        np.broadcast_shapes(np.shape(z_norm), np.shape(e_norm))
    except ValueError:
        from .errors import ShapeError
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
    from .shapes import check_scalar

    n, term_ulps = _count("n", n), check_scalar("term_ulps", term_ulps, low=0.0)
    u = UNIT_ROUNDOFF["float64"]
    return 2.0 * term_ulps + gamma(max(n, 0), u) / u
