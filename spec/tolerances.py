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
sum of the weight gradients (`function_bound(dtype, f, args, vjp=True)`).

**The reference itself** is held to the oracle (`vaespec fidelity`, docs/numerics.md):
`REFERENCE_ULPS` elementwise and `sum_ulps(n)` for its reductions, far below any bound above.

**Squared distances** (VQ): `distance_bound` bounds the error of ‖z − e‖² computed either
directly (Σ (z − e)²) or by the expanded form ‖z‖² − 2 z·e + ‖e‖²: every term of either is at
most (|z| + |e|)² in size, so n = D + 3 roundings give SAFETY·γ_{D+3}·(‖z‖ + ‖e‖)². The near-tie
criterion of `vaespec.spec.vq` is stated with it.

**Finite differences of a backend's own function** (`network_gradients_eq_own_finite_differences`):
a central difference D(t) = ⟨ȳ, f(θ + tv) − f(θ − tv)⟩/2t errs by truncation t²·|f‴(v,v,v)|/6 and by
rounding (T₊ + T₋)/2t, T the policy's bound of one evaluation contracted with |ȳ| (≈ rel·M). The step
`finite_difference_step(dtype, n, n_ops)` = ∛(3·rel) balances the two where |f‴| ≈ M (the textbook optimum
(3ε/|f‴|)^(1/3) with ε = rel·M); the resolution, ≈ 17·rel^(2/3)·M, is useful only where rel is small:
`FINITE_DIFFERENCE_DTYPES` (float64, float32). In bfloat16 a 16-op chain has rel ≈ 0.25, so the step
would be ≈ 0.9 of the inputs' scale and the tolerance several times M (`finite_difference_unsound`).

**Statistical laws** use a z-bound instead: see `statistical_z`. **Domains** (where a function
is defined in a dtype, and the DomainError outside) are `vaespec.spec.domains`.

**Where the chains are stated.** Each function's `(n, n_ops)` is part of its declaration
(`FunctionSpec.chain`, `vjp_chain`, in its chapter module, written with `vaespec.spec.chains`);
`function_bound(dtype, function, args, vjp=...)` is the bound of any function of any chapter. The
arithmetic (`gamma`, `bound`, `distance_bound`, …) is `vaespec.spec.numerics`, below the chapters;
this module re-exports it.

docs/tolerances.md states the model and prints the table of every function's bound per dtype,
generated from this module (`python -m vaespec.proofs_tests.docs_tolerances`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .architecture import Architecture, VQArchitecture
from .chains import CodebookChain, NetworkChain, check_count
from .conv import ConvArchitecture
from .conv_vq import ConvVQArchitecture
from .errors import ConfigError, DTypeError, describe, show
from .functions import FUNCTIONS
from .numerics import (
    FALSE_ALARM_RATE,
    NARROW,
    PRIMITIVE_ULPS,
    REFERENCE_ULPS,
    SAFETY,
    TINY,
    UNIT_ROUNDOFF,
    Bound,
    bound,
    check_dtype,
    distance_bound,
    gamma,
    reduction_length,
    statistical_z,
    sum_ulps,
)
from .signature import split_vjp
from .validation import check_args, named

__all__ = ["FALSE_ALARM_RATE", "FINITE_DIFFERENCE_DTYPES", "LOG_VAR_DOMAIN", "NARROW", "PRIMITIVE_ULPS",
           "REFERENCE_ULPS", "SAFETY", "TINY", "UNIT_ROUNDOFF", "Bound", "bound", "chain_length", "distance_bound",
           "finite_difference_step", "finite_difference_unsound", "function_bound", "gamma", "reduction_length",
           "statistical_z", "sum_ulps", "vq_chain_length"]

# The log-variance range the laws draw from, |log σ²| ≤ this (checking.function_args clips to it).
# It lies inside every dtype's stated domain (`vaespec.spec.domains`) for the strategies' sizes:
# float16 (max 65504) overflows Σ exp(lv) over 30 entries once lv ≳ 7.7; float32's exponent
# range overflows exp at 88.7 (80.4 for 4096 terms). Out here a law would test overflow, not the VAE.
LOG_VAR_DOMAIN: dict[str, float] = {"float64": 80.0, "float32": 80.0, "bfloat16": 80.0, "float16": 6.0}


# The dtypes in which a central difference of a backend's own function resolves its gradient (module doc).
FINITE_DIFFERENCE_DTYPES = ("float64", "float32")


def finite_difference_step(dtype: str, n: int, n_ops: int = 0) -> float:
    """The step t = ∛(3·rel) of a central difference of a function whose evaluation the policy bounds by
    `bound(dtype, n, n_ops)` (`rel·M + floor`): it balances the truncation t²·|f‴|/6 against the rounding
    rel·M/t where |f‴| ≈ M along the direction (directions are scaled to the inputs' size). float32, n = 64:
    rel = 4·γ₆₄(2⁻²⁴) ≈ 1.5·10⁻⁵, t ≈ 0.036; float64: t ≈ 4·10⁻⁵. The errors of `bound` for bad arguments."""
    return float(np.cbrt(3.0 * bound(dtype, n, n_ops).rel))


def finite_difference_unsound(dtype: str) -> str | None:
    """Why central differences cannot check a gradient in `dtype` (not in `FINITE_DIFFERENCE_DTYPES`), with the
    policy's numbers for a chain of 16 rounded op results, or None where they can."""
    check_dtype(dtype)
    if dtype in FINITE_DIFFERENCE_DTYPES:
        return None
    b, step = bound(dtype, 64, 16), finite_difference_step(dtype, 64, 16)
    return (f"central differences cannot resolve a gradient in {dtype}: the policy bounds one evaluation by "
            f"rel = {b.rel:.2g}·M (16 rounded op results, u = {UNIT_ROUNDOFF[dtype]:.3g}), so the balanced step "
            f"∛(3·rel) = {step:.2g} of the inputs' scale is not small and the tolerance ≈ 24·rel·M/step = "
            f"{24 * b.rel / step:.2g}·M exceeds the change it measures (checked in "
            f"{' and '.join(FINITE_DIFFERENCE_DTYPES)}; docs/tolerances.md)")


def function_bound(dtype: str, function: str, args: Mapping[str, Any], *, vjp: bool = False,
                   validate: bool = True) -> Bound:
    """The policy's bound for one evaluation of `function` (of its vector-Jacobian product with `vjp`) at `args`.

    `bound(dtype, n, n_ops)` with `(n, n_ops)` the chain `FUNCTIONS[function]` declares
    (`FunctionSpec.rounding_chain(args, vjp=vjp)`: `chain`, or `vjp_chain`, at the sizes of the
    function's named dimensions). Any function of any chapter; `args` may hold more than its
    arguments (a VQ function's `indices`). They are checked first (`validate_args`, in float64);
    `validate=False` skips that for arguments the caller has already checked.

    **Raises** `ConfigError` for an unknown `dtype` or `function`, or a function without a chain
    (`init_codebook`, `reset_dead_codes`: their laws are exact) or without a VJP; the errors of
    `validate_args` for bad `args`. Compare `|actual − expected| ≤ bound.tolerance(M)`.
    """
    check_dtype(dtype)
    spec = named(FUNCTIONS, function)
    if not isinstance(vjp, (bool, np.bool_)):
        raise DTypeError(f"vjp: expected True or False, got {describe(vjp)}")
    if validate:
        args = check_args(spec, args)[0]
    return bound(dtype, *spec.rounding_chain(args, vjp=bool(vjp)))


def chain_length(function: str, arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture | None,
                 batch: int) -> tuple[int, int]:
    """(n, n_ops) of `function`'s (or `<function>_vjp`'s) longest rounding chain for `arch` at `batch` examples.

    For the functions whose chain runs through the network alone (a `NetworkChain` declaration:
    `encode` … `loss`, `vq_encode` … `vq_loss`, and `reparameterize`, which needs no `arch`): dense
    layers contribute their fan-in to `n` and 3 rounded results (product, bias add, activation) to
    `n_ops`; the reparameterization 4 ops; a loss its reductions plus its elementwise ops; the VQ
    straight-through 2 ops. A gradient's chain is the forward chain, the backward chain and the
    batch sum of the weight gradients. `function_bound` is the bound of any function at its args.
    """
    if not isinstance(function, str):
        raise ConfigError(f"function: expected a function name, got {show(function)}")
    if arch is not None and not isinstance(arch, (Architecture, VQArchitecture, ConvArchitecture,
                                                  ConvVQArchitecture)):
        raise DTypeError(f"arch: expected an Architecture, a VQArchitecture, a ConvArchitecture, a "
                         f"ConvVQArchitecture or None, got {describe(arch)}")
    batch = check_count("batch", batch, 1)
    base, vjp = split_vjp(function)
    spec = FUNCTIONS.get(base)
    if spec is None or not isinstance(spec.chain, NetworkChain):
        raise ConfigError(f"function: no chain length for {show(function)}; losses on direct inputs use "
                          f"reduction_length")
    if spec.chain.needs_arch:
        if arch is None:
            raise ConfigError(f"arch: {base}'s chain runs through the network, so it needs an architecture, got None")
        types = next(a.types for a in spec.args if a.kind == "arch")
        if not isinstance(arch, types):
            raise DTypeError(f"arch: {base} needs a {' or '.join(t.__name__ for t in types)}, got {describe(arch)}")
    return spec.chain_at({"arch": arch, "batch": batch}, vjp=vjp)


def vq_chain_length(function: str, batch: int, dim: int, codes: int) -> tuple[int, int]:
    """(n, n_ops) for the VQ functions on direct inputs (z_e [batch, dim], codebook [codes, dim]), or their VJPs;
    for z_e [batch, *positions, dim] pass its N = batch·∏positions vectors as `batch`.

    The declarations' `CodebookChain`s: quantize, the straight-through z_e + (e − z_e), 2 roundings (its
    index is judged by the near-tie criterion, not by this bound); the auxiliary losses a mean over
    batch × dim of squared differences (4 elementwise ops), their gradients 2 more; laplace_smooth a
    sum over codes and 4 ops; ema_update the per-code sum over the batch, the moving average,
    debiasing, smoothing (a sum over codes) and the division: batch + codes + 10 roundings.
    """
    if not isinstance(function, str):
        raise ConfigError(f"function: expected a function name, got {show(function)}")
    batch, dim, codes = check_count("batch", batch, 1), check_count("dim", dim, 1), check_count("codes", codes, 1)
    base, vjp = split_vjp(function)
    spec = FUNCTIONS.get(base)
    if spec is None or not isinstance(spec.chain, CodebookChain):
        raise ConfigError(f"function: no VQ reduction length for {show(function)}; network functions use chain_length")
    return spec.chain_at({"batch": batch, "embedding": dim, "codes": codes}, vjp=vjp)
