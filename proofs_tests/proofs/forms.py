"""The reference's accuracy rewrites are the spec's functions: each float64 formula that avoids a
cancellation (docs/numerics.md) is proved equal to the formula docs/math.md states, and the
first-order corrections it applies are the Taylor terms they claim to be. Also the exact
identities behind the laws on reductions and on the prior path."""

from __future__ import annotations

import sympy as sp

from .base import Proof

y, t, d, h, mu, ell, eps = sp.symbols("y t delta h mu ell epsilon", real=True)
yp, yn = sp.Symbol("y", positive=True), sp.Symbol("y", negative=True)


def _same(a, b) -> bool:
    return sp.simplify(sp.expand((a - b).rewrite(sp.exp))) == 0


def _sigmoid(v):
    return 1 / (1 + sp.exp(-v))


def logistic_forms():
    """With e = e^{−|y|}: σ(y) = 1/(1 + e) for y ≥ 0 and e/(1 + e) for y < 0 (no overflow);
    σ′ = σ(y)(1 − σ(y)) = σ(y)σ(−y) = e/(1 + e)² (no 1 − σ); tanh′ = 1 − tanh² = 4σ′(2y);
    silu′ = σ(y)(1 + y(1 − σ(y))) = σ(y)(1 + y σ(−y)); softplus = max(y, 0) + log1p(e)."""
    for side in (yp, yn):
        e = sp.exp(-sp.Abs(side))
        assert _same(_sigmoid(side), 1 / (1 + e) if side.is_positive else e / (1 + e))
        assert _same(_sigmoid(side) * (1 - _sigmoid(side)), e / (1 + e) ** 2)
        assert _same(_sigmoid(side) * _sigmoid(-side), e / (1 + e) ** 2)
        e2 = sp.exp(-sp.Abs(2 * side))
        assert _same(1 - sp.tanh(side) ** 2, 4 * e2 / (1 + e2) ** 2)
        assert _same(_sigmoid(side) * (1 + side * (1 - _sigmoid(side))), _sigmoid(side) * (1 + side * _sigmoid(-side)))
        assert sp.simplify(sp.exp(sp.log(1 + sp.exp(side)) - (sp.Max(side, 0) + sp.log(1 + e)))) == 1
    return sp.Eq(sp.Symbol("sigma'"), sp.Symbol("e") / (1 + sp.Symbol("e")) ** 2)


def gelu_erfc_form():
    """gelu(y) = ½ y (1 + erf(y/√2)) = y Φ(y) = ½ y erfc(−y/√2): the erfc form does not cancel for y ≪ 0."""
    spec = y * (1 + sp.erf(y / sp.sqrt(2))) / 2
    reference = y * sp.erfc(-y / sp.sqrt(2)) / 2
    assert sp.simplify((spec - reference).rewrite(sp.erf)) == 0
    return sp.Eq(spec, reference)


def first_order_corrections():
    """The two-word corrections in gelu: erfc(t + δ) = erfc(t) − δ·(2/√π)e^{−t²} + O(δ²) (the rounding δ
    of t = −y/√2), and e^{−(h + δ)/2} = e^{−h/2}(1 − δ/2) + O(δ²) (the rounding δ of h = y² in φ)."""
    erfc_series = sp.series(sp.erfc(t + d), d, 0, 2).removeO()
    assert sp.simplify(erfc_series - (sp.erfc(t) - d * 2 / sp.sqrt(sp.pi) * sp.exp(-t**2))) == 0
    exp_series = sp.series(sp.exp(-(h + d) / 2), d, 0, 2).removeO()
    assert sp.simplify(exp_series - sp.exp(-h / 2) * (1 - d / 2)) == 0
    return sp.Eq(sp.Symbol("erfc(t + delta)"), erfc_series)


def kl_reference_series():
    """The reference's g(x) = e^x − 1 − x: for −1 ≤ x ≤ 3 the series x²(½ + x(⅙ + x·r(x))) with
    r(x) = Σ_{k=1}^{30} x^{k−1}/(k + 3)! is e^x − 1 − x to order 33, and its truncation is below 2⁻⁷⁵
    relative (the tail Σ_{m≥34} |x|^m/m! ≤ |x|³⁴/34! / (1 − |x|/35), against g(x) ≥ x²/3 on [−1, 0] and
    g(x) ≥ x³⁴⁻³²·… i.e. g(3) at x = 3, g increasing on [0, 3]). For x ≤ −1 it is e^x + (−1 − x), two
    nonnegative terms; for x > 3, expm1(x) − x with expm1(x) ≤ 1.19·g(x)."""
    x = sp.Symbol("x", real=True)
    r = sum(x ** (k - 1) / sp.factorial(k + 3) for k in range(1, 31))
    polynomial = sp.expand(x**2 * (sp.Rational(1, 2) + x * (sp.Rational(1, 6) + x * r)))
    exact = sp.series(sp.exp(x) - 1 - x, x, 0, 34).removeO()
    assert sp.expand(polynomial - exact) == 0

    def tail(a):
        return sp.Rational(a) ** 34 / sp.factorial(34) / (1 - sp.Rational(a) / 35)
    g = sp.exp(x) - 1 - x
    assert sp.N(tail(3) / g.subs(x, 3), 30) < sp.Rational(1, 2**75)                   # worst on [0, 3]
    assert sp.N(tail(1) / sp.Rational(1, 3), 30) < sp.Rational(1, 2**75)             # |x|³⁴/(x²/3) ≤ 3 on [−1, 0]
    assert sp.simplify(g.subs(x, -1) - (sp.exp(-1) + (-1 - (-1)))) == 0 and _same(g, sp.exp(x) + (-1 - x))
    expm1 = sp.exp(x) - 1
    assert sp.N(expm1.subs(x, 3) / g.subs(x, 3)) < 1.19 and sp.N(sp.diff(expm1 / g, x).subs(x, 3)) < 0
    return sp.Eq(g, polynomial + sp.O(x**34))


def reference_constants():
    """The two-word constants in the reference: 1/√2, 1/√(2π), log 2π and ⅙ as hi + lo, each hi the
    nearest double and hi + lo within 2⁻¹⁰⁶ relative of the exact value."""
    from vaespec.reference import activations, elementwise
    pairs = {"1/sqrt(2)": (1 / sp.sqrt(2), activations.INV_SQRT2),
             "1/sqrt(2 pi)": (1 / sp.sqrt(2 * sp.pi), (activations.INV_SQRT_2PI, activations.INV_SQRT_2PI_LO)),
             "log(2 pi)": (sp.log(2 * sp.pi), elementwise.LOG_2PI), "1/6": (sp.Rational(1, 6), elementwise.SIXTH)}
    for name, (value, (hi, lo)) in pairs.items():
        exact = sp.N(value, 60)
        assert float(exact) == hi, name
        assert abs(sp.Rational(hi) + sp.Rational(lo) - exact) <= abs(exact) * sp.Rational(1, 2**106), name
    return tuple(sp.Eq(sp.Symbol(n), sp.Float(v[1][0], 17) + sp.Float(v[1][1], 17)) for n, v in pairs.items())


def batch_split_means():
    """For a batch A ∪ B (here |A| = 2, |B| = 3): mean_{A∪B} = (|A| mean_A + |B| mean_B)/|A ∪ B| and
    sum_{A∪B} = sum_A + sum_B, for any per-example loss values; a mean over the latent is a sum scaled by 1/L."""
    a, b = sp.symbols("a0:2", real=True), sp.symbols("b0:3", real=True)

    def mean(v):
        return sum(v) / len(v)
    assert sp.simplify(mean(a + b) - (len(a) * mean(a) + len(b) * mean(b)) / (len(a) + len(b))) == 0
    assert sp.simplify(sum(a + b) - (sum(a) + sum(b))) == 0
    return sp.Eq(sp.Symbol("mean_AB"), (2 * sp.Symbol("mean_A") + 3 * sp.Symbol("mean_B")) / 5)


def prior_and_zero_noise():
    """reparameterize(0, 0, ε) = 0 + e⁰·ε = ε (generate is decode of the noise) and
    reparameterize(μ, ℓ, 0) = μ + e^{ℓ/2}·0 = μ."""

    def rep(m, lv, e):
        return m + sp.exp(lv / 2) * e
    assert rep(0, 0, eps) == eps and rep(mu, ell, 0) == mu
    return sp.Eq(rep(0, 0, eps), eps), sp.Eq(rep(mu, ell, 0), mu)


PROOFS = (
    Proof("logistic_forms", "the overflow- and cancellation-free forms of σ, σ′, tanh′, silu′ and softplus the "
          "reference evaluates equal the spec's", logistic_forms),
    Proof("gelu_erfc_form", "gelu(y) = ½y(1 + erf(y/√2)) = ½y·erfc(−y/√2)", gelu_erfc_form),
    Proof("first_order_corrections", "erfc(t + δ) = erfc(t) − δ(2/√π)e^{−t²} + O(δ²) and "
          "e^{−(h + δ)/2} = e^{−h/2}(1 − δ/2) + O(δ²): the reference's two-word corrections", first_order_corrections),
    Proof("kl_reference_series", "e^x − 1 − x as the reference evaluates it: its 33-term series on [−1, 3] "
          "(truncation < 2⁻⁷⁵ relative) and the two closed forms outside", kl_reference_series),
    Proof("reference_constants", "the reference's two-word constants (1/√2, 1/√(2π), log 2π, ⅙) are within "
          "2⁻¹⁰⁶ of their values", reference_constants),
    Proof("batch_split_means", "mean and sum over A ∪ B from those over A and B", batch_split_means),
    Proof("prior_and_zero_noise", "reparameterize(0, 0, ε) = ε and reparameterize(μ, ℓ, 0) = μ", prior_and_zero_noise),
)
