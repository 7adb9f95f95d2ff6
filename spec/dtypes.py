"""Dtype semantics: rounding into each dtype, subnormals, the subgradient at every kink, and the
pre-activations where common implementations switch formulas.

The laws (`vaespec.proofs_tests`), the golden vectors and docs/porting.md §2.1 read this module;
what it states is part of the contract.

**Rounding.** The value of a float64 `x` in dtype T is `round_to(T, x)`: one round-to-nearest-even
of the exact `x` (IEEE 754 `roundTiesToEven`), overflowing to ±inf beyond T's largest finite value
plus half an ulp, with T's own subnormals. Inputs are rounded this way before a backend and the
reference see them. A cast through float32 first (torch's float64 → bfloat16/float16 conversion
does that) rounds twice and differs from `round_to` when x lies within 2⁻²⁴ (relative) of a
halfway point of T, about once in 130 000 uniformly drawn values (e.g. 1 + 2⁻⁸ + 2⁻³⁰: RNE gives
1 + 2⁻⁷, through float32 1). Where a law or a vector compares a rounded value exactly
(`exact_in_dtype`), both are accepted (`equal_in_dtype`): a port may use its framework's cast.

**Subnormals.** A backend may flush subnormal results (and read subnormal operands as zero), as XLA
on the CPU and GPUs in fast-math modes do; it declares `flushes_subnormals = True` (default False:
IEEE gradual underflow, which torch and numpy keep). The policy, for every dtype (`SUBNORMALS`):
- *inputs*: the laws round each input to the backend's dtype and then set values below that
  dtype's smallest normal `TINY[T]` to zero (`flush`), for every backend, so no law's answer
  depends on whether a backend flushes its operands; subnormal inputs are tested only by the
  tests that are about them (`proofs_tests/selftests/test_extremes.py`, for `vaespec.impl`);
- *results*: the roundoff bounds carry a floor `SAFETY·n·TINY[T]` that absorbs every result
  flushed to zero (`vaespec.spec.tolerances`); exact laws compare with `flush(T, expected)` for a
  backend that declares flushing;
- *vectors*: inputs are 0 or at least 2⁻¹⁴ in size, normal in every dtype.

**Kinks** (`KINKS`): the derivative each non-differentiable point takes, as `vaespec.impl` and the
reference do; the strategies hit each one exactly (dyadic weights and integer inputs, the first
hidden layer's pre-activations pinned to 0 at one row), and so do the golden vectors.

**Formula switches** (`FORMULA_SWITCHES`): pre-activations where common implementations of an
activation change formula, saturate or overflow. The strategies place every hidden layer's
pre-activations on both sides of each, so an implementation that is exact for moderate inputs but
takes a shortcut beyond a threshold is compared with the reference there.

**Precision ladder** (`PRECISION_ORDER`): dtypes from the most to the least precise. Near ties
whose margin lies between a dtype's distance bound and the next narrower dtype's are drawn (and
exported), so a backend that computes below its declared precision chooses wrongly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .functions import FUNCTIONS
from .numerics import TINY, UNIT_ROUNDOFF

__all__ = ["FORMATS", "FORMULA_SWITCHES", "KINKS", "PRECISION_ORDER", "SUBNORMALS", "TINY", "equal_in_dtype", "flush",
           "flushes_subnormals", "narrower", "round_to", "through_float32"]

# (significand bits p including the implicit one, smallest normal exponent, largest exponent)
FORMATS: dict[str, tuple[int, int, int]] = {
    "float64": (53, -1022, 1023),
    "float32": (24, -126, 127),
    "bfloat16": (8, -126, 127),
    "float16": (11, -14, 15),
}

PRECISION_ORDER: tuple[str, ...] = tuple(sorted(UNIT_ROUNDOFF, key=lambda d: UNIT_ROUNDOFF[d]))

SUBNORMALS: dict[str, str] = {
    dtype: f"inputs below {TINY[dtype]:.4g} are zeroed before any law sees them; results may be flushed by "
           "a backend that declares flushes_subnormals (roundoff floors absorb it; exact laws flush the expected "
           "value)"
    for dtype in FORMATS
}

KINKS: dict[str, str] = {
    "relu": "relu′(0) = 0 (the derivative is 1 for y > 0 and 0 for y ≤ 0, as torch and JAX)",
    "leaky_relu": "leaky_relu′(0) = 0.01 (1 for y > 0, the slope for y ≤ 0, as torch; JAX's where(y >= 0) gives 1)",
    "elu": "elu′(0) = 1 (α·e⁰ = 1: with α = 1 both one-sided derivatives agree; elu″ jumps from 1 to 0)",
    "softplus": "softplus′(0) = σ(0) = ½: softplus is smooth; a formula with max(y, 0) and |y| has kinks at 0 "
                "that must cancel (clamp_min′(0) = 1 with |·|′(0) = 0 would give 1)",
    # and each contract function's own (its declaration's `kink`: quantize's ties)
    **{name: spec.kink for name, spec in FUNCTIONS.items() if spec.kink},
}

# activation -> ((pre-activation y, why a library switches there), ...), signed: the side of 0 where the switch
# is (a symmetric one is listed on both sides); the first is the commonest library threshold. The strategies put
# pre-activations within a few units on both sides of each.
FORMULA_SWITCHES: dict[str, tuple[tuple[float, str], ...]] = {
    "softplus": ((20.0, "torch F.softplus's default threshold: returns y above it (off by log1p(e⁻²⁰) ≈ 2e-9)"),
                 (13.9, "TensorFlow's float32 threshold −log(ε)+2: returns y above it"),
                 (-13.9, "TensorFlow's float32 threshold: returns e^y below −13.9"),
                 (34.0, "TensorFlow's float64 threshold"),
                 (88.7, "float32 exp overflows in the naive log(1 + e^y)"),
                 (709.8, "float64 exp overflows in the naive log(1 + e^y)")),
    "sigmoid": ((16.6, "float32 σ rounds to 1 above it; fast implementations clamp"),
                (-16.6, "fast implementations clamp σ to 0"),
                (36.7, "float64 σ rounds to 1"),
                (-88.7, "float32 exp(−y) overflows in the naive 1/(1 + e^−y)"),
                (-709.8, "float64 exp(−y) overflows in the naive 1/(1 + e^−y)")),
    "silu": ((-16.6, "y·σ(y) with σ clamped to 0 by fast implementations"), (16.6, "σ saturated in float32"),
             (36.7, "σ saturated in float64"), (-88.7, "exp(−y) overflows in float32"),
             (-709.8, "exp(−y) overflows in float64")),
    "tanh": ((9.01, "float32 tanh rounds to ±1; fast approximations clamp"), (-9.01, "the same, below 0"),
             (19.06, "float64 tanh rounds to ±1"), (-19.06, "the same, below 0"),
             (22.0, "glibc's tanh returns ±1 beyond 22")),
    "gelu": ((-5.9, "½(1 + erf(y/√2)) cancels to 0 below −5.9 in float64"),
             (5.9, "shortcuts return y above ~5"),
             (8.3, "Φ rounds to 1 in float64 above 8.3"),
             (-38.6, "Φ(y) underflows in float64 below −38.6")),
    "elu": ((-17.0, "float32 e^y − 1 rounds to −1 below −17"), (-37.0, "float64 e^y − 1 rounds to −1 below −37"),
            (-88.7, "float32 exp underflows to 0 in α(e^y − 1)")),
    "relu": (), "leaky_relu": (), "identity": (),
}


def round_to(dtype: str, value: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """`value` (float64) rounded once, to nearest with ties to even, into `dtype`, returned as float64.

    Exact: `frexp` gives each value's binary exponent k (|x| ∈ [2^(k−1), 2^k)); the quantum of the
    target format there is q = 2^(max(k − 1, e_min) − (p − 1)) (its subnormal spacing below the
    normal range); x/q and rint(x/q)·q are exact float64 operations (q is a power of two), and
    `np.rint` rounds half to even. Results beyond the largest finite value become ±inf (IEEE).
    """
    if dtype not in FORMATS:
        raise ValueError(f"dtype: expected one of {sorted(FORMATS)}, got {dtype!r}")
    x = np.asarray(value, dtype=np.float64)
    if dtype == "float64":
        return x.copy()
    if dtype == "float32":  # the hardware's IEEE cast (ties to even, subnormals, ±inf past the range): ~10× fewer steps
        with np.errstate(over="ignore"):
            return x.astype(np.float32).astype(np.float64)
    p, e_min, e_max = FORMATS[dtype]
    finite = np.isfinite(x) & (x != 0)
    safe = np.where(finite, x, 1.0)
    _, k = np.frexp(safe)
    quantum = np.ldexp(1.0, np.maximum(k - 1, e_min) - (p - 1))
    with np.errstate(over="ignore"):  # rounding up past float64's range is an overflow to inf, as IEEE says
        rounded = np.rint(safe / quantum) * quantum
    largest = (2.0 - 2.0 ** (1 - p)) * 2.0**e_max
    rounded = np.where(np.abs(rounded) > largest, np.copysign(np.inf, rounded), rounded)
    return np.where(finite, rounded, x)


def through_float32(dtype: str, value: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """`value` cast to float32 first and then to `dtype` (torch's float64 → bfloat16/float16 cast)."""
    x = np.asarray(value, dtype=np.float64)
    return round_to(dtype, round_to("float32", x)) if dtype in ("bfloat16", "float16") else round_to(dtype, x)


def equal_in_dtype(dtype: str, actual: npt.ArrayLike, value: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """bool mask: `actual` is `value` rounded into `dtype`, by RNE from float64 or through float32."""
    actual = np.asarray(actual, dtype=np.float64)
    ok = (actual == round_to(dtype, value)) | (actual == through_float32(dtype, value))
    both_nan = np.isnan(actual) & np.isnan(np.asarray(value, dtype=np.float64))
    return ok | both_nan


def flush(dtype: str, value: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """`value` with entries below `dtype`'s smallest normal (`TINY`) in size set to a zero of the same sign."""
    x = np.asarray(value, dtype=np.float64)
    return np.where(np.abs(x) < TINY[dtype], np.copysign(0.0, x), x)


def flushes_subnormals(backend: object) -> bool:
    """Whether `backend` declares that it flushes subnormals (`flushes_subnormals = True`; default False)."""
    return bool(getattr(backend, "flushes_subnormals", False))


def narrower(dtype: str) -> str | None:
    """The next less precise dtype in `PRECISION_ORDER` (None for the least precise)."""
    i = PRECISION_ORDER.index(dtype)
    return PRECISION_ORDER[i + 1] if i + 1 < len(PRECISION_ORDER) else None
