"""Elementwise formulas in float64 that would cancel if written naively, carried in two words.

    reparameterized(μ, lv, ε)   μ + exp(½ lv)·ε        (the product exact into the sum)
    squared_difference(a, b)   (a − b)²               (the difference exact into the square)
    expm1_minus_identity(x)    e^x − 1 − x            (as hi + lo; no cancellation near 0)
    standard_normal_kl(μ, lv)  ½(e^lv − 1 − lv + μ²)  = KL(N(μ, e^lv) ‖ N(0, 1))
    gaussian_log_density       −½(log 2π + ℓ + (x − m)² e^{−ℓ})

Each takes float64 arrays (already validated by its caller) and rounds once at the end; the
error-free transformations are `two_sum` and `two_prod` (`vaespec.reference.activations`). The
two-word constants `SIXTH` and `LOG_2PI` are checked against 60-digit values by the proof
`reference_constants` (`vaespec.proofs_tests.proofs`).
"""

from __future__ import annotations

import math

import numpy as np

from .activations import two_prod, two_sum

# 1/(k + 3)! for k = 1…30, and 1/6 as two words: the series e^x − 1 − x = x²·(½ + x·(⅙ + x·r(x))),
# r(x) = Σ_k x^{k−1}/(k + 3)!, whose truncation after k = 30 is below 2⁻⁷⁵ relative for −1 ≤ x ≤ 3.
SERIES = tuple(1.0 / math.factorial(k + 3) for k in range(1, 31))
SIXTH = (1.0 / 6.0, 9.25185853854297e-18)  # ⅙ = hi + lo to 2⁻¹⁰⁶
# log 2π = hi + lo to 2⁻¹⁰⁶ (hi is the nearest double; math.log(2 * math.pi) is one ulp below it)
LOG_2PI = (1.8378770664093456, -7.756588316134483e-17)


def reparameterized(mu: np.ndarray, log_var: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """μ + σ·ε with σ·ε carried exactly (two_prod) into the sum, rounded once: within exp's error
    plus ½ ulp of the magnitude |μ| + σ|ε| (the sum itself cancels when μ ≈ −σε)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p, p_e = two_prod(np.exp(0.5 * log_var), eps)
        s, s_e = two_sum(mu, p)
        value = s + (s_e + p_e)
    return np.where(np.isfinite(value), value, mu + p)


def squared_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b)², with a − b carried exactly (two_sum) into the square, rounded once (≤ ½ ulp + 2⁻¹⁰⁴)."""
    with np.errstate(over="ignore", invalid="ignore"):
        d, d_e = two_sum(a, -b)
        p, p_e = two_prod(d, d)
        value = p + (p_e + 2.0 * d * d_e)
    return np.where(np.isfinite(value), value, d * d)


def expm1_minus_identity(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g(x) = e^x − 1 − x ≥ 0 as hi + lo, without the cancellation of expm1(x) − x near 0.

    - x ≤ −1: g = e^x + (−1 − x), a sum of two nonnegative terms (−1 − x exact as a two_sum);
    - x > 3: expm1(x) − x, where expm1(x) < 1.2·g, so expm1's error is barely amplified;
    - otherwise: the series x²·(½ + x·(⅙ + x·r(x))), x² exact as a two_prod, the two outer
      Horner steps in two words (their rounding would otherwise be most of the error), r by Horner.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        a, a_lo = two_sum(-1.0, -x)
        low_hi, low_e = two_sum(a, np.exp(np.minimum(x, 0.0)))
        high_hi, high_lo = two_sum(np.expm1(x), -x)
        r = np.zeros_like(x)
        for c in reversed(SERIES):
            r = r * x + c
        t, t_e = two_prod(x, r)
        q, q_e = two_sum(SIXTH[0], t)
        q_lo = q_e + t_e + SIXTH[1]
        t, t_e = two_prod(x, q)
        p, p_e = two_sum(0.5, t)
        p_lo = p_e + t_e + x * q_lo
        x2, x2_e = two_prod(x, x)
        mid_hi, mid_e = two_prod(x2, p)
        mid_lo = mid_e + x2 * p_lo + x2_e * p
    return (np.where(x <= -1.0, low_hi, np.where(x > 3.0, high_hi, mid_hi)),
            np.where(x <= -1.0, low_e + a_lo, np.where(x > 3.0, high_lo, mid_lo)))


def standard_normal_kl(mu: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """½(g(lv) + μ²), g = e^lv − 1 − lv, both terms ≥ 0 and summed in two words, rounded once:
    within 2 ulps of KL(N(μ, e^lv) ‖ N(0, 1)) at the float64 inputs (docs/numerics.md)."""
    g, g_lo = expm1_minus_identity(log_var)
    with np.errstate(over="ignore", invalid="ignore"):
        m, m_lo = two_prod(mu, mu)
        s, s_e = two_sum(g, m)
        value = 0.5 * (s + (s_e + g_lo + m_lo))
    return np.where(np.isfinite(value), value, 0.5 * (g + m))


def gaussian_log_density(x: np.ndarray, mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """Elementwise `log N(x; mean, e^ℓ) = −½(log 2π + ℓ + (x − mean)² e^{−ℓ})`.

    The terms cancel for some inputs (ℓ ≈ −log 2π − (x − mean)²e^{−ℓ}), so the accuracy is
    stated in ulps of the magnitude ½(log 2π + |ℓ| + (x − mean)² e^{−ℓ}): within 2, because
    x − mean and its square are carried exactly (two_sum, two_prod) and the three terms summed
    in two words; only exp's own rounding and the final one remain. The naive one-line formula
    errs by up to ~3 ulps of the magnitude.

    **Arguments** `x`, `mean`, `log_var`: broadcastable float64 arrays (ℓ = log σ²).
    **Returns** the log-densities, shaped like the broadcast inputs.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        r, r_e = two_sum(x, -mean)
        r2, r2_e = two_prod(r, r)
        w = np.exp(-log_var)
        q, q_e = two_prod(r2, w)
        s, s_e = two_sum(LOG_2PI[0], log_var)
        t, t_e = two_sum(s, q)
        value = -0.5 * (t + (t_e + s_e + q_e + (r2_e + 2.0 * r * r_e) * w + LOG_2PI[1]))
    return np.where(np.isfinite(value), value, -0.5 * (LOG_2PI[0] + log_var + r * r * w))
