"""The Gaussian facts the statistical laws and the loss conventions rest on: the reparameterization's
moments, the Monte-Carlo KL estimator's mean and variance, the sample variance's variance, the
log-density the reference evaluates, and squared error as a Gaussian negative log-likelihood."""

from __future__ import annotations

import sympy as sp
from sympy import stats

from .base import Proof
from .kl import kl_coordinate, log_normal_pdf, normal_pdf

eps, x, x_hat, mu, ell, m = sp.symbols("epsilon x x_hat mu ell m", real=True)
sigma, s, sigma_x, n = sp.symbols("sigma s sigma_x n", positive=True)


def _expect(expr):
    """E over ε ~ N(0, 1), by the integral."""
    return sp.simplify(sp.integrate(sp.expand(expr * normal_pdf(eps, 0, 1)), (eps, -sp.oo, sp.oo)))


def reparameterize_moments():
    """z = μ + e^{ℓ/2} ε with ε ~ N(0, 1): E z = μ and Var z = e^ℓ = σ²."""
    z = mu + sp.exp(ell / 2) * eps
    mean = _expect(z)
    variance = _expect((z - mean) ** 2)
    assert sp.simplify(mean - mu) == 0 and sp.simplify(variance - sp.exp(ell)) == 0, (mean, variance)
    return sp.Eq(sp.Symbol("E[z]"), mean), sp.Eq(sp.Symbol("Var[z]"), variance)


def monte_carlo_kl_mean_variance():
    """For z = μ + σε: D = log q(z) − log p(z) = ½(μ² − log σ²) + μσ·ε + ½(σ² − 1)·ε²; E D = KL and
    Var D = μ²σ² + (σ² − 1)²/2 (the sd the law kl_eq_monte_carlo divides by)."""
    z = mu + sigma * eps
    d = log_normal_pdf(z, mu, sigma) - log_normal_pdf(z, 0, 1)
    expected_form = (mu**2 - sp.log(sigma**2)) / 2 + mu * sigma * eps + (sigma**2 - 1) * eps**2 / 2
    assert sp.simplify(sp.expand_log(d - expected_form, force=True)) == 0
    mean = _expect(expected_form)
    variance = _expect((expected_form - mean) ** 2)
    assert sp.simplify(sp.expand_log(mean - kl_coordinate(mu, sigma), force=True)) == 0, mean
    assert sp.simplify(variance - (mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2)) == 0, variance
    return sp.Eq(sp.Symbol("Var[D]"), mu**2 * sigma**2 + (sigma**2 - 1) ** 2 / 2)


def sample_variance_variance():
    """For N i.i.d. N(μ, σ²) draws, the sample variance S² (ddof 1) has Var S² = 2σ⁴/(N − 1).

    With Y_i = X_i − μ, A = Σ Y_i² and B = (Σ Y_i)², S² = (A − B/N)/(N − 1). The four moment counts
    E A = Nσ², E B = Nσ², E A² = Nμ₄ + N(N−1)σ⁴, E AB = Nμ₄ + N(N−1)σ⁴, E B² = Nμ₄ + 3N(N−1)σ⁴ are
    checked by expansion for N = 2…5 (with μ₄ = E Y⁴ symbolic); for symbolic N the algebra then gives
    Var S² = (μ₄ − σ⁴(N − 3)/(N − 1))/N, and μ₄ = 3σ⁴ for the normal (derived) gives 2σ⁴/(N − 1)."""
    mu4, var = sp.symbols("mu4 var", positive=True)

    def moment(power):  # E Y^k for Y symmetric with variance `var` and fourth moment mu4
        return {0: 1, 1: 0, 2: var, 3: 0, 4: mu4}[power]

    def expect(poly, ys):
        total = 0
        for monomial, coefficient in sp.Poly(sp.expand(poly), *ys).terms():
            term = coefficient
            for power in monomial:
                term *= moment(power)
            total += term
        return sp.expand(total)

    counts = {"A": n * var, "B": n * var, "AA": n * mu4 + n * (n - 1) * var**2,
              "AB": n * mu4 + n * (n - 1) * var**2, "BB": n * mu4 + 3 * n * (n - 1) * var**2}
    for size in range(2, 6):
        ys = sp.symbols(f"y0:{size}", real=True)
        a, b = sum(y**2 for y in ys), sum(ys) ** 2
        for key, poly in (("A", a), ("B", b), ("AA", a * a), ("AB", a * b), ("BB", b * b)):
            assert sp.simplify(expect(poly, ys) - counts[key].subs(n, size)) == 0, (key, size)
    e_s2 = (counts["A"] - counts["B"] / n) / (n - 1)
    e_s4 = (counts["AA"] - 2 * counts["AB"] / n + counts["BB"] / n**2) / (n - 1) ** 2
    general = sp.simplify(e_s4 - e_s2**2)
    assert sp.simplify(e_s2 - var) == 0
    assert sp.simplify(general - (mu4 - var**2 * (n - 3) / (n - 1)) / n) == 0
    normal_mu4 = _expect((sigma * eps) ** 4)
    assert sp.simplify(normal_mu4 - 3 * sigma**4) == 0
    result = sp.simplify(general.subs({mu4: normal_mu4, var: sigma**2}))
    assert sp.simplify(result - 2 * sigma**4 / (n - 1)) == 0, result
    # the cross-moment the KL estimator's variance drops: Cov(ε, ε²) = E ε³ = 0
    assert _expect(eps**3) == 0
    return sp.Eq(sp.Symbol("Var[S^2]"), 2 * sigma**4 / (n - 1))


def gaussian_log_density_form():
    """log N(x; m, e^ℓ) = −½(log 2π + ℓ + (x − m)² e^{−ℓ}), and that density integrates to 1."""
    density = normal_pdf(x, m, sp.exp(ell / 2))
    form = -(sp.log(2 * sp.pi) + ell + (x - m) ** 2 * sp.exp(-ell)) / 2
    assert sp.simplify(sp.expand_log(sp.log(density), force=True) - form) == 0
    assert sp.simplify(sp.integrate(density, (x, -sp.oo, sp.oo))) == 1
    return sp.Eq(sp.Symbol("log N"), form)


def squared_error_is_gaussian_nll():
    """s·(x − x̂)² = −log N(x; x̂, σ_x²) − ½ log(π/s) with σ_x² = 1/(2s): a reconstruction scale s is
    a Gaussian decoder of variance 1/(2s) up to a constant; the "elbo" preset (s = ½, features summed)
    is the unit-variance decoder, −log N(x; x̂, I) = ½‖x − x̂‖² + (D/2) log 2π."""
    nll = -log_normal_pdf(x, x_hat, sp.sqrt(1 / (2 * s)))
    assert sp.simplify(sp.expand_log(s * (x - x_hat) ** 2 - (nll - sp.log(sp.pi / s) / 2), force=True)) == 0
    unit = -log_normal_pdf(x, x_hat, 1)
    assert sp.simplify(sp.expand_log(unit - ((x - x_hat) ** 2 / 2 + sp.log(2 * sp.pi) / 2), force=True)) == 0
    return sp.Eq(s * (x - x_hat) ** 2, nll - sp.log(sp.pi / s) / 2)


def normal_fourth_moment():
    """E ε⁴ = 3 for ε ~ N(0, 1) by the integral, and sympy.stats agrees (μ₄ = 3σ⁴)."""
    assert _expect(eps**4) == 3
    assert sp.simplify(stats.E(stats.Normal("Y", 0, sigma) ** 4) - 3 * sigma**4) == 0
    return sp.Eq(sp.Symbol("E[eps^4]"), 3)


PROOFS = (
    Proof("reparameterize_moments", "z = μ + e^{ℓ/2}ε, ε ~ N(0, 1): E z = μ, Var z = e^ℓ = σ²", reparameterize_moments),
    Proof("monte_carlo_kl_mean_variance", "log q(z) − log p(z) at z = μ + σε has mean KL and variance "
          "μ²σ² + (σ² − 1)²/2", monte_carlo_kl_mean_variance),
    Proof("sample_variance_variance", "the sample variance (ddof 1) of N normal draws has variance 2σ⁴/(N − 1)",
          sample_variance_variance),
    Proof("normal_fourth_moment", "E ε⁴ = 3 for ε ~ N(0, 1)", normal_fourth_moment),
    Proof("gaussian_log_density_form", "log N(x; m, e^ℓ) = −½(log 2π + ℓ + (x − m)² e^{−ℓ}), a normalised density",
          gaussian_log_density_form),
    Proof("squared_error_is_gaussian_nll", "s·(x − x̂)² = −log N(x; x̂, 1/(2s)) − ½ log(π/s): MSE is a scaled "
          "Gaussian negative log-likelihood plus a constant", squared_error_is_gaussian_nll),
)
