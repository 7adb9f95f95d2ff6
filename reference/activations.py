"""Activations in float64 with their derivatives and magnitude bounds.

Each entry gives `value(y)`, `derivative(y)` (the derivative torch uses at kinks:
relu'(0) = 0, leaky_relu'(0) = 0.01), `magnitude(m)`: an upper bound on |act(y)| given
|y| ≤ m, and `curvature`: an upper bound on |act''| over the reals (0 for piecewise-linear
activations). The last two feed the tolerance policy: a backend evaluates act' at a
pre-activation that errs by δ, so its act' errs by up to curvature · δ.

**Accuracy.** Every value and derivative is within 2 ulps of the exact function at the
float64 input (measured against a 60-digit mpmath oracle: `vaespec fidelity`), not counting
what the C library's `erfc` loses beyond correct rounding (gelu), and with gelu′ and silu′
measured in ulps of their magnitude, since they cancel near their zeros (docs/numerics.md). The naive
formulas are not: 1 + erf(y/√2) cancels for y ≪ 0 (gelu is then 10¹⁶ ulps off), 1 − tanh²(y)
and σ(y)(1 − σ(y)) cancel for y ≫ 0, and exp(−y²/2) inherits the rounding of y² times y²/2.
The rewrites use the error-free transformations `two_sum` and `two_prod` (Knuth, Dekker;
Muller et al., *Handbook of Floating-Point Arithmetic*, §4.3-4.4) to carry a second word
where a result would otherwise be rounded before a cancellation; their identities are
proved in `vaespec.proofs_tests.proofs`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vaespec.spec.architecture import ELU_ALPHA, LEAKY_RELU_SLOPE, check_activation

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# 1/√2 and 1/√(2π) as unevaluated sums hi + lo (hi the nearest double, lo the next 53 bits).
INV_SQRT2 = (0.7071067811865476, -4.833646656726457e-17)
INV_SQRT_2PI_LO = -2.49232720227773e-17
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_VELTKAMP = 134217729.0  # 2^27 + 1: splits a double into two 26-bit halves


# ----------------------------------------------------------------------------- exact arithmetic
def two_sum(a, b):
    """(s, e) with s = fl(a + b) and s + e = a + b exactly (Knuth's TwoSum)."""
    s = a + b
    b_virtual = s - a
    return s, (a - (s - b_virtual)) + (b - b_virtual)


def _split(a):
    c = _VELTKAMP * a
    hi = c - (c - a)
    return hi, a - hi


def two_prod(a, b):
    """(p, e) with p = fl(a·b) and p + e = a·b exactly (Dekker's TwoProduct; |a|, |b| < 2⁹⁹⁵, no underflow)."""
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _times(a, hi, lo):
    """a · (hi + lo) rounded once (to within a few units of 2⁻¹⁰⁶ relative before that rounding)."""
    p, e = two_prod(a, hi)
    return p + (e + a * lo)


def _reciprocal_one_plus(e):
    """1/(1 + e) for 0 ≤ e ≤ 1 as hi + lo: 1 + e is exact as a two_sum, and the residual of
    the division (Sterbenz: 1 − p is exact for p ∈ [½, 2]) corrects the quotient."""
    s, s_lo = two_sum(1.0, e)
    r = 1.0 / s
    p, p_lo = two_prod(r, s)
    return r, ((1.0 - p) - p_lo - r * s_lo) / s


# ----------------------------------------------------------------------------- the logistic family
def _logistic(y):
    """(σ(y), σ(−y)) each as hi + lo, from e = exp(−|y|): σ(|y|) = 1/(1 + e), σ(−|y|) = e/(1 + e)."""
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(-np.abs(y))
        r, r_lo = _reciprocal_one_plus(e)
        small, small_e = two_prod(e, r)
        small_lo = small_e + e * r_lo
    positive = y >= 0
    return ((np.where(positive, r, small), np.where(positive, r_lo, small_lo)),
            (np.where(positive, small, r), np.where(positive, small_lo, r_lo)))


def sigmoid(y: np.ndarray) -> np.ndarray:
    """σ(y) = 1/(1 + exp(−y)), evaluated without overflow for either sign (error ≈ exp's + ½ ulp)."""
    (hi, lo), _ = _logistic(y)
    return hi + lo


def _sigmoid_derivative(y):
    """σ′(y) = σ(y)σ(−y) = e/(1 + e)², e = exp(−|y|): never forms 1 − σ(y), which cancels for y ≫ 0."""
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(-np.abs(y))
        r, r_lo = _reciprocal_one_plus(e)
        q, q_e = two_prod(r, r)
        return _times(e, q, q_e + 2.0 * r * r_lo)


def _silu(y):
    (hi, lo), _ = _logistic(y)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return np.where(np.abs(y) < 1e300, _times(y, hi, lo), y * hi)


def _silu_derivative(y):
    """silu′ = σ(y)(1 + y·σ(−y)), with y·σ(−y) and the sum carried to two words."""
    (s, s_lo), (m, m_lo) = _logistic(y)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        t, t_e = two_prod(y, m)
        inner, inner_e = two_sum(1.0, t)
        inner_lo = inner_e + t_e + y * m_lo
        p, p_e = two_prod(s, inner)
        value = p + (p_e + s * inner_lo + s_lo * inner)
    return np.where(np.isfinite(value), value, np.where(y > 0, 1.0, 0.0))


def _tanh_derivative(y):
    """tanh′(y) = 1 − tanh²(y) = 4σ′(2y) = 4e/(1 + e)², e = exp(−2|y|): no cancellation for |y| ≫ 0."""
    return 4.0 * _sigmoid_derivative(2.0 * y)


# ----------------------------------------------------------------------------- gelu
def _normal_cdf_parts(y):
    """2Φ(y) = erfc(−y/√2) as hi + lo: −y/√2 = t + t_lo is carried to two words (its rounding
    would be amplified 2t² times by erfc), and erfc(t + t_lo) ≈ erfc(t) − t_lo·(2/√π)e^{−t²}."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        t, t_e = two_prod(-y, INV_SQRT2[0])
        t_lo = np.where(np.abs(y) < 1e300, t_e - y * INV_SQRT2[1], 0.0)
        return _erfc(t).astype(np.float64), -t_lo * _TWO_OVER_SQRT_PI * np.exp(-t * t)


def normal_cdf(y: np.ndarray) -> np.ndarray:
    """Φ(y) = ½ erfc(−y/√2), accurate where Φ is small (½(1 + erf(y/√2)) cancels there).

    Its accuracy is then that of the C library's erfc (glibc before 2.42: up to ~4 ulps;
    from 2.42, CORE-MATH's correctly rounded one).
    """
    hi, lo = _normal_cdf_parts(y)
    return 0.5 * (hi + lo)


def _normal_pdf_parts(y):
    """φ(y) = exp(−y²/2)/√(2π) as hi + lo, with y² = h + h_lo exact so exp sees no rounding of y²."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        h, h_lo = two_prod(y, y)
        h_lo = np.where(np.abs(y) < 1e150, h_lo, 0.0)
        # e^{−(h + h_lo)/2}/√(2π) = e^{−h/2} · (c + c_lo)(1 − h_lo/2) to first order in h_lo
        e = np.exp(-0.5 * h)
        p, p_e = two_prod(e, INV_SQRT_2PI)
        return p, p_e + e * (INV_SQRT_2PI_LO - 0.5 * h_lo * INV_SQRT_2PI)


def normal_pdf(y: np.ndarray) -> np.ndarray:
    """φ(y) = exp(−y²/2)/√(2π), within exp's error plus ½ ulp."""
    hi, lo = _normal_pdf_parts(y)
    return hi + lo


def _gelu(y):
    """y·Φ(y) = ½ y·erfc(−y/√2), the product taken against both words of erfc's argument correction."""
    hi, lo = _normal_cdf_parts(y)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        value = 0.5 * _times(y, hi, lo)
    return np.where(np.isfinite(value), value, np.where(y > 0, y, 0.0))


def _gelu_derivative(y):
    """gelu′ = Φ(y) + y·φ(y), both terms and their sum carried in two words, rounded once."""
    c_hi, c_lo = _normal_cdf_parts(y)
    p_hi, p_lo = _normal_pdf_parts(y)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        t, t_e = two_prod(y, p_hi)
        s, s_e = two_sum(0.5 * c_hi, t)
        value = s + (s_e + t_e + y * p_lo + 0.5 * c_lo)
    return np.where(np.isfinite(value), value, np.where(y > 0, 1.0, 0.0))


def erf(y: np.ndarray) -> np.ndarray:
    """Elementwise erf via the C library's `math.erf`."""
    return _erf(y).astype(np.float64)


@dataclass(frozen=True)
class Activation:
    name: str
    value: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    magnitude: Callable[[np.ndarray], np.ndarray]
    curvature: float = 0.0


def _same(m):
    return m


def softplus(y):
    """log(1 + e^y) = max(y, 0) + log1p(exp(−|y|)): never overflows, never cancels."""
    with np.errstate(under="ignore"):
        return np.maximum(y, 0.0) + np.log1p(np.exp(-np.abs(y)))


ACTIVATION_FUNCTIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("relu", lambda y: np.maximum(y, 0.0), lambda y: (y > 0).astype(np.float64), _same),
        Activation("gelu", _gelu, _gelu_derivative, _same, 2 * INV_SQRT_2PI),
        Activation("silu", _silu, _silu_derivative, _same, 0.5),
        Activation("tanh", np.tanh, _tanh_derivative, _same, 4 / (3 * math.sqrt(3))),
        Activation("sigmoid", sigmoid, _sigmoid_derivative, np.ones_like, math.sqrt(3) / 18),
        Activation("elu", lambda y: np.where(y > 0, y, ELU_ALPHA * np.expm1(np.minimum(y, 0.0))),
                   lambda y: np.where(y > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(y, 0.0))), _same, ELU_ALPHA),
        Activation("leaky_relu", lambda y: np.where(y > 0, y, LEAKY_RELU_SLOPE * y),
                   lambda y: np.where(y > 0, 1.0, LEAKY_RELU_SLOPE), _same),
        Activation("softplus", softplus, sigmoid, lambda m: m + math.log(2.0), 0.25),
        Activation("identity", lambda y: y, np.ones_like, _same),
    )
}


def get_activation(name: str) -> Activation:
    """The activation named `name` (see `vaespec.spec.architecture.ACTIVATIONS`)."""
    return ACTIVATION_FUNCTIONS[check_activation(name)]
