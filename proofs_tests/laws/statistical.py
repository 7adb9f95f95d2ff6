"""Statistical laws: Monte-Carlo KL and the moments of the reparameterization.

**The false-alarm rate, derived.** Each law compares a sample statistic of N = `SAMPLES` = 4096
i.i.d. terms with its expectation and accepts |statistic − expectation| ≤ z·sd/√N.

1. *The statistic's sd* is derived symbolically (`vaespec.proofs_tests.proofs`):
   - `kl_eq_monte_carlo`: D = log q(z) − log p(z) at z = μ + σε equals
     ½(μ² − log σ²) + μσ·ε + ½(σ² − 1)·ε², so E D = KL and, with Var ε = 1, Var ε² = 2 and
     Cov(ε, ε²) = E ε³ = 0, Var D = μ²σ² + (σ² − 1)²/2 per coordinate, summed over the
     independent coordinates (`monte_carlo_kl_mean_variance`, `normal_fourth_moment`);
   - `reparameterize_moments`: the sample mean of z_j has sd σ_j/√N; the sample variance
     (ddof 1) has variance 2σ_j⁴/(N − 1) (`reparameterize_moments`, `sample_variance_variance`).
2. *The number of checks per run* is bounded: at most `MAX_CHECKS` = 1000 examples (more than
   any profile draws) × the statistics per example (1 for the KL law; 2L ≤ 6 for the moments).
3. *Bonferroni*: a run raises a false alarm only if some check does, so a per-check two-sided
   rate of FALSE_ALARM_RATE/(checks) keeps the law's rate ≤ 10⁻⁶: z = Φ⁻¹(1 − rate/(2·checks))
   (`vaespec.spec.tolerances.statistical_z`): 6.36 for the KL law, 6.47 to 6.63 for the moments.
4. *The normal approximation*: the mean of z is exactly normal; the sample variance and the ε²
   part of D are scaled χ² variables whose upper tail at z ≈ 6 is 2.4 to 2.9 times the normal's
   for N = 4096, so `SKEW_ALLOWANCE` = 5 further divides the per-check rate (z rises by ~0.25).
5. *Fixed seed*: the noise comes from `numpy.random.default_rng(SEED)`, so a verdict is
   reproducible; the rate is a statement about the choice of seed. For this seed the
   standardised noise statistics are at most 2.15 (KL) and 1.47 (moments) sd, against z ≥ 6.36.

The KL law adds the roundoff tolerance of `kl_divergence` to its bound. docs/tolerances.md
("Statistical laws") gives the same derivation with its table.
"""

from __future__ import annotations

import math

import numpy as np

from vaespec.spec.conventions import PRESETS
from vaespec.spec.tolerances import statistical_z

from ..strategies import vae as strategies
from . import declared
from .checking import Check, context, function_args
from .compare import LawViolation, as_input, require_finite
from .tolerance import tolerance

SAMPLES = 4096
SEED = 20261121
MAX_CHECKS = 1000
SKEW_ALLOWANCE = 5
_LOG_2PI = math.log(2 * math.pi)


def _noise(dtype: str, latent: int) -> np.ndarray:
    return as_input(dtype, np.random.default_rng(SEED).standard_normal((SAMPLES, latent)))


def _row(backend, example):
    a = function_args("reparameterize", example, backend)
    return a["mu"][:1], a["log_var"][:1], a


def kl_eq_monte_carlo(backend, example, draw):
    """|mean_k[log q(z_k) − log p(z_k)] − KL| ≤ z · sd / √N, sd² = Σ_j μ_j²σ_j² + (σ_j² − 1)²/2."""
    mu, log_var, a = _row(backend, example)
    latent = mu.shape[1]
    eps = _noise(backend.dtype, latent)
    z = backend.reparameterize(np.repeat(mu, SAMPLES, 0), np.repeat(log_var, SAMPLES, 0), eps)
    require_finite(f"reparameterize on N = {SAMPLES} samples", z, context=context("reparameterize", a, backend))
    var = np.exp(log_var)
    log_q = -0.5 * (_LOG_2PI + log_var + (z - mu) ** 2 / var).sum(axis=1)
    log_p = -0.5 * (_LOG_2PI + z ** 2).sum(axis=1)
    estimate = float(np.mean(log_q - log_p))
    summed = declared.convention_for(backend, PRESETS["sum"], ("kl_latent_reduction",))  # one row: any batch reduction
    kl = float(backend.kl_divergence(mu, log_var, summed))
    sd = math.sqrt(float(np.sum(mu ** 2 * var + (var - 1) ** 2 / 2)))
    bound = statistical_z(MAX_CHECKS * SKEW_ALLOWANCE) * sd / math.sqrt(SAMPLES)
    bound += float(tolerance(backend.dtype, "kl_divergence", {"mu": mu, "log_var": log_var,
                                                                  "convention": summed}))
    error = abs(estimate - kl)
    if not error <= bound:
        raise LawViolation(
            f"kl_divergence: closed form {kl!r} vs Monte-Carlo {estimate!r} (N = {SAMPLES}, seed {SEED}); "
            f"|difference| = {error:.3e} exceeds {bound:.3e}\n" + context("kl_divergence", a, backend),
            ratio=error / bound)
    return error / bound


def reparameterize_moments(backend, example, draw):
    """Per coordinate: |mean(z) − μ| ≤ z·σ/√N and |var(z) − σ²| ≤ z·σ²·√(2/(N−1))."""
    mu, log_var, a = _row(backend, example)
    latent = mu.shape[1]
    z_crit = statistical_z(MAX_CHECKS * SKEW_ALLOWANCE * 2 * latent)
    z = backend.reparameterize(np.repeat(mu, SAMPLES, 0), np.repeat(log_var, SAMPLES, 0), _noise(backend.dtype, latent))
    require_finite(f"reparameterize on N = {SAMPLES} samples", z, context=context("reparameterize", a, backend))
    sigma2 = np.exp(log_var[0])
    worst = 0.0
    for name, estimate, target, sd in (
        ("mean", z.mean(axis=0), mu[0], np.sqrt(sigma2 / SAMPLES)),
        ("variance", z.var(axis=0, ddof=1), sigma2, sigma2 * math.sqrt(2 / (SAMPLES - 1))),
    ):
        ratio = np.abs(estimate - target) / (z_crit * sd)
        j = int(np.argmax(ratio))
        worst = max(worst, float(ratio[j]))
        if ratio[j] > 1:
            raise LawViolation(
                f"reparameterize: sample {name} of z[:, {j}] is {float(estimate[j])!r}, expected {float(target[j])!r} "
                f"within {float(z_crit * sd[j]):.3e} (N = {SAMPLES}, seed {SEED})\n"
                + context("reparameterize", a, backend), ratio=float(ratio[j]))
    return worst


CHECKS = {c.law: c for c in (
    Check("kl_eq_monte_carlo",
          strategies.latent_examples(max_batch=1, max_latent=3, max_abs_mu=3.0, max_abs_log_var=2.0),
          kl_eq_monte_carlo),
    Check("reparameterize_moments", strategies.latent_examples(max_batch=1, max_latent=3, max_abs_log_var=4.0),
          reparameterize_moments),
)}
