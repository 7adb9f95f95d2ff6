"""The KL divergence of a diagonal Gaussian from N(0, I): its closed form from the integral, its
log-variance form, its sum over coordinates, and where it vanishes."""

from __future__ import annotations

import sympy as sp

from .base import Proof

z, z1, z2 = sp.symbols("z z1 z2", real=True)
mu, mu1, mu2, ell = sp.symbols("mu mu1 mu2 ell", real=True)
sigma, sigma1, sigma2 = sp.symbols("sigma sigma1 sigma2", positive=True)


def normal_pdf(x, mean, sd):
    return sp.exp(-(x - mean) ** 2 / (2 * sd**2)) / sp.sqrt(2 * sp.pi * sd**2)


def log_normal_pdf(x, mean, sd):
    return -sp.log(2 * sp.pi * sd**2) / 2 - (x - mean) ** 2 / (2 * sd**2)


def kl_coordinate(m, s):
    """The closed form, ½(σ² + μ² − 1 − log σ²)."""
    return (s**2 + m**2 - 1 - sp.log(s**2)) / 2


def kl_closed_form():
    """KL(N(μ, σ²) ‖ N(0, 1)) = ∫ q (log q − log p) dz = ½(σ² + μ² − 1 − log σ²)."""
    integrand = sp.expand(normal_pdf(z, mu, sigma) * (log_normal_pdf(z, mu, sigma) - log_normal_pdf(z, 0, 1)))
    derived = sp.simplify(sp.integrate(integrand, (z, -sp.oo, sp.oo)))
    assert sp.simplify(sp.expand_log(derived - kl_coordinate(mu, sigma), force=True)) == 0, derived
    return sp.Eq(sp.Symbol("KL"), kl_coordinate(mu, sigma))


def kl_log_variance_form():
    """With ℓ = log σ²: ½(σ² + μ² − 1 − log σ²) = ½(e^ℓ + μ² − 1 − ℓ) = ½(expm1(ℓ) − ℓ + μ²), and the
    scale form torch.distributions uses, log(1/σ) + (σ² + μ²)/2 − ½, is the same function."""
    by_log_variance = (sp.exp(ell) + mu**2 - 1 - ell) / 2
    assert sp.simplify(sp.expand_log(kl_coordinate(mu, sp.exp(ell / 2)) - by_log_variance, force=True)) == 0
    expm1_form = ((sp.exp(ell) - 1) - ell + mu**2) / 2
    assert sp.simplify(by_log_variance - expm1_form) == 0
    scale_form = sp.log(1 / sigma) + (sigma**2 + mu**2) / 2 - sp.Rational(1, 2)
    assert sp.simplify(sp.expand_log(scale_form - kl_coordinate(mu, sigma), force=True)) == 0
    return sp.Eq(kl_coordinate(mu, sp.exp(ell / 2)), expm1_form)


def kl_diagonal_sums_over_coordinates():
    """For q = N(μ, diag σ²) and p = N(0, I) in two dimensions, the double integral of q (log q − log p)
    is the sum of the coordinate KLs (the product measures factorise; the same argument holds for L).
    Integrated after the change of variables z_j = μ_j + σ_j u_j, whose Jacobian σ_j turns q into the
    standard normal density of u (checked)."""
    u1, u2 = sp.symbols("u1 u2", real=True)
    q = normal_pdf(z1, mu1, sigma1) * normal_pdf(z2, mu2, sigma2)
    log_ratio = (log_normal_pdf(z1, mu1, sigma1) + log_normal_pdf(z2, mu2, sigma2)
                 - log_normal_pdf(z1, 0, 1) - log_normal_pdf(z2, 0, 1))
    to_u = {z1: mu1 + sigma1 * u1, z2: mu2 + sigma2 * u2}
    density_u = normal_pdf(u1, 0, 1) * normal_pdf(u2, 0, 1)
    assert sp.simplify(q.subs(to_u) * sigma1 * sigma2 - density_u) == 0
    integrand = sp.expand(density_u * sp.expand(sp.expand_log(log_ratio.subs(to_u), force=True)))
    derived = sp.simplify(sp.integrate(integrand, (u1, -sp.oo, sp.oo), (u2, -sp.oo, sp.oo)))
    total = kl_coordinate(mu1, sigma1) + kl_coordinate(mu2, sigma2)
    assert sp.simplify(sp.expand_log(derived - total, force=True)) == 0, derived
    return sp.Eq(sp.Symbol("KL_2d"), total)


def kl_nonnegative_zero_iff_standard():
    """½(e^ℓ − 1 − ℓ + μ²) ≥ 0, with equality iff μ = 0 and ℓ = 0: h(ℓ) = e^ℓ − 1 − ℓ has h(0) = 0,
    h′(ℓ) = e^ℓ − 1 vanishes only at ℓ = 0 on the reals, and h″ = e^ℓ > 0, so 0 is its unique minimum;
    μ² ≥ 0 vanishes only at μ = 0."""
    h = sp.exp(ell) - 1 - ell
    assert h.subs(ell, 0) == 0
    assert sp.solveset(sp.diff(h, ell), ell, sp.S.Reals) == sp.FiniteSet(0)
    assert sp.ask(sp.Q.positive(sp.diff(h, ell, 2)), sp.Q.real(ell)) is True
    assert sp.solveset(mu**2, mu, sp.S.Reals) == sp.FiniteSet(0)
    return sp.Eq(sp.Min(h), 0)


PROOFS = (
    Proof("kl_closed_form", "KL(N(μ, σ²) ‖ N(0, 1)) = ∫ q (log q − log p) dz = ½(σ² + μ² − 1 − log σ²)",
          kl_closed_form),
    Proof("kl_log_variance_form", "in ℓ = log σ² the closed form is ½(e^ℓ + μ² − 1 − ℓ) = ½(expm1(ℓ) − ℓ + μ²), "
          "equal to the scale form log(1/σ) + (σ² + μ²)/2 − ½", kl_log_variance_form),
    Proof("kl_diagonal_sums_over_coordinates", "KL(N(μ, diag σ²) ‖ N(0, I)) = Σ_j KL(N(μ_j, σ_j²) ‖ N(0, 1)) "
          "(the double integral, derived)", kl_diagonal_sums_over_coordinates),
    Proof("kl_nonnegative_zero_iff_standard", "½(e^ℓ − 1 − ℓ + μ²) ≥ 0 with equality iff μ = 0 and ℓ = 0",
          kl_nonnegative_zero_iff_standard),
)
