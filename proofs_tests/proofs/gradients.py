"""Every gradient formula the reference's backward passes use (reference/vae.py, losses.py,
network.py, activations.py), derived by SymPy's differentiation of the forward formula and compared."""

from __future__ import annotations

import sympy as sp

from .base import Proof

y = sp.Symbol("y", real=True)
yp, yn = sp.Symbol("y", positive=True), sp.Symbol("y", negative=True)
beta, s, cbar, c_b, c_j, c_d = sp.symbols("beta s ybar c_b c_j c_d", real=True)


def _matrix(name, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}{j}", real=True))


def _grad(scalar, matrix):
    return matrix.applyfunc(lambda v: sp.diff(scalar, v))


def _zero(expr):
    return sp.simplify(sp.expand(sp.sympify(expr).doit())) == 0


def _all_zero(matrix):
    return all(_zero(e) for e in matrix)


def _kl_terms(mu, lv):
    return sp.Matrix(*mu.shape, lambda i, j: (sp.exp(lv[i, j]) - 1 - lv[i, j] + mu[i, j] ** 2) / 2)


def kl_gradients():
    """∂/∂μ and ∂/∂ℓ of ȳ·c_b Σ_b c_j Σ_j ½(e^ℓ − 1 − ℓ + μ²) are ȳ c_j c_b μ and ȳ c_j c_b ½ expm1(ℓ)."""
    mu, lv = _matrix("mu", 2, 2), _matrix("lv", 2, 2)
    kl = cbar * c_b * c_j * sum(_kl_terms(mu, lv))
    assert _all_zero(_grad(kl, mu) - cbar * c_j * c_b * mu)
    assert _all_zero(_grad(kl, lv) - cbar * c_j * c_b * lv.applyfunc(lambda v: (sp.exp(v) - 1) / 2))
    return sp.Eq(sp.Symbol("dKL/dlv"), cbar * c_j * c_b * (sp.exp(sp.Symbol("ell")) - 1) / 2)


def reparameterize_gradients():
    """z = μ + e^{ℓ/2} ε: the VJP with z̄ is μ̄ = z̄, ℓ̄ = z̄ ⊙ ½ e^{ℓ/2} ε (ε is not differentiated)."""
    mu, lv, eps, zbar = (_matrix(n, 2, 2) for n in ("mu", "lv", "eps", "zbar"))
    z = mu + lv.applyfunc(lambda v: sp.exp(v / 2)).multiply_elementwise(eps)
    scalar = sum(zbar.multiply_elementwise(z))
    assert _all_zero(_grad(scalar, mu) - zbar)
    assert _all_zero(_grad(scalar, lv) - zbar.multiply_elementwise(lv.applyfunc(lambda v: sp.exp(v / 2) / 2))
                     .multiply_elementwise(eps))
    return sp.Eq(sp.Symbol("lvbar"), sp.Symbol("zbar") * sp.exp(sp.Symbol("ell") / 2) * sp.Symbol("epsilon") / 2)


def reconstruction_gradients():
    """R = c_b Σ_b s c_d Σ_d (x̂ − x)²: x̂̄ = ȳ 2 s c_d c_b (x̂ − x) and x̄ = −x̂̄."""
    x_hat, x = _matrix("xh", 2, 3), _matrix("x", 2, 3)
    r = cbar * c_b * s * c_d * sum((x_hat - x).applyfunc(lambda v: v**2))
    expected = 2 * s * c_d * c_b * cbar * (x_hat - x)
    assert _all_zero(_grad(r, x_hat) - expected) and _all_zero(_grad(r, x) + expected)
    return sp.Eq(sp.Symbol("xhatbar"), 2 * s * c_d * c_b * cbar * (sp.Symbol("xhat") - sp.Symbol("x")))


def dense_layer_vjp():
    """y = x·W + b (W [in, out]): with cotangent ȳ, W̄ = xᵀ·ȳ, b̄ = Σ_b ȳ_b, x̄ = ȳ·Wᵀ."""
    x, w, b, ybar = _matrix("x", 2, 3), _matrix("W", 3, 2), _matrix("b", 1, 2), _matrix("ybar", 2, 2)
    out = x * w + sp.ones(2, 1) * b
    scalar = sum(ybar.multiply_elementwise(out))
    assert _all_zero(_grad(scalar, w) - x.T * ybar)
    assert _all_zero(_grad(scalar, b) - sp.ones(1, 2) * ybar)
    assert _all_zero(_grad(scalar, x) - ybar * w.T)
    return sp.Eq(sp.MatrixSymbol("Wbar", 3, 2), sp.MatrixSymbol("x", 2, 3).T * sp.MatrixSymbol("ybar", 2, 2))


def _sigma_prime(t):  # the reference's σ′: e/(1 + e)², e = e^{−|t|}, on each sign
    e = sp.exp(-sp.Abs(t))
    return e / (1 + e) ** 2


def _sigmoid(t):
    return 1 / (1 + sp.exp(-t))


def _phi(t):
    return sp.erfc(-t / sp.sqrt(2)) / 2


# name: (act(y) as the spec states it, act′(y) as the reference evaluates it); both sides of a kink
ACTIVATIONS = {
    "relu": (lambda t: sp.Max(t, 0), lambda t: sp.Piecewise((1, t > 0), (0, True))),
    "gelu": (lambda t: t * (1 + sp.erf(t / sp.sqrt(2))) / 2,
             lambda t: _phi(t) + t * sp.exp(-t**2 / 2) / sp.sqrt(2 * sp.pi)),
    "silu": (lambda t: t * _sigmoid(t), lambda t: _sigmoid(t) * (1 + t * _sigmoid(-t))),
    "tanh": (sp.tanh, lambda t: 4 * _sigma_prime(2 * t)),
    "sigmoid": (_sigmoid, _sigma_prime),
    "elu": (lambda t: sp.Piecewise((t, t > 0), (sp.exp(t) - 1, True)),
            lambda t: sp.Piecewise((1, t > 0), (sp.exp(t), True))),
    "leaky_relu": (lambda t: sp.Piecewise((t, t > 0), (sp.Rational(1, 100) * t, True)),
                   lambda t: sp.Piecewise((1, t > 0), (sp.Rational(1, 100), True))),
    "softplus": (lambda t: sp.log(1 + sp.exp(t)), _sigmoid),
    "identity": (lambda t: t, lambda t: sp.Integer(1)),
}


def activation_derivatives():
    """For every activation, d act/dy (SymPy) equals the derivative the reference evaluates, on both
    sides of 0 (tanh′ as 4σ′(2y) and σ′ as e^{−|y|}/(1 + e^{−|y|})², gelu′ = Φ + yφ with Φ via erfc).
    At a kink the value is a convention, not a derivative: relu′(0) = 0, leaky_relu′(0) = 0.01."""
    for name, (value, derivative) in ACTIVATIONS.items():
        for side in (yp, yn):
            difference = sp.diff(value(side), side) - derivative(side)
            assert _zero(difference.rewrite(sp.erf)) or _zero(difference.rewrite(sp.exp)), (name, side, difference)
    return tuple(sp.Eq(sp.Derivative(sp.Function(n)(y), y), d(y)) for n, (_, d) in ACTIVATIONS.items())


def network_loss_vjp(target_path: bool = True):
    """The reference's `loss` backward pass, step by step (docs/math.md: reconstruction VJP, KL VJP at β·ȳ,
    decode VJP, reparameterize VJP, encode VJP, then x̄ = x̄_enc − x̂̄), equals SymPy's gradient of the loss
    for a network with one hidden layer per side, a generic activation f, B = 2, D = 2, L = 1.
    (`target_path=False` drops step 5's −x̂̄, the bug a backend detaching the target makes: it fails.)"""
    f = sp.Function("f")
    t = sp.Symbol("t", real=True)

    def act(m):
        return m.applyfunc(f)

    def act_prime(m):
        return m.applyfunc(lambda v: sp.diff(f(t), t).subs(t, v))

    ones = sp.ones(2, 1)
    x, eps = _matrix("x", 2, 2), _matrix("eps", 2, 1)
    w1, b1, wm, bm, wl, bl = (_matrix(n, *shape) for n, shape in (("W1", (2, 1)), ("b1", (1, 1)), ("Wm", (1, 1)),
                                                                    ("bm", (1, 1)), ("Wl", (1, 1)), ("bl", (1, 1))))
    v1, c1, vo, co = (_matrix(n, *shape) for n, shape in (("V1", (1, 1)), ("c1", (1, 1)), ("Vo", (1, 2)),
                                                          ("co", (1, 2))))
    a1 = x * w1 + ones * b1
    h1 = act(a1)
    mu, lv = h1 * wm + ones * bm, h1 * wl + ones * bl
    z = mu + lv.applyfunc(lambda v: sp.exp(v / 2)).multiply_elementwise(eps)
    p1 = z * v1 + ones * c1
    g1 = act(p1)
    x_hat = g1 * vo + ones * co
    loss = cbar * (c_b * s * c_d * sum((x_hat - x).applyfunc(lambda v: v**2))
                   + beta * c_b * c_j * sum(_kl_terms(mu, lv)))
    # the reference's steps
    x_hat_bar = 2 * s * c_d * c_b * cbar * (x_hat - x)
    mu_kl, lv_kl = beta * cbar * c_j * c_b * mu, beta * cbar * c_j * c_b * lv.applyfunc(lambda v: (sp.exp(v) - 1) / 2)
    grads = {"Vo": g1.T * x_hat_bar, "co": ones.T * x_hat_bar}
    p1_bar = (x_hat_bar * vo.T).multiply_elementwise(act_prime(p1))
    grads |= {"V1": z.T * p1_bar, "c1": ones.T * p1_bar}
    z_bar = p1_bar * v1.T
    mu_bar = z_bar + mu_kl
    lv_bar = (z_bar.multiply_elementwise(lv.applyfunc(lambda v: sp.exp(v / 2) / 2))).multiply_elementwise(eps) + lv_kl
    grads |= {"Wm": h1.T * mu_bar, "bm": ones.T * mu_bar, "Wl": h1.T * lv_bar, "bl": ones.T * lv_bar}
    a1_bar = (mu_bar * wm.T + lv_bar * wl.T).multiply_elementwise(act_prime(a1))
    # step 5: the target path; `target_path=False` is the bug the proof must reject
    grads |= {"W1": x.T * a1_bar, "b1": ones.T * a1_bar, "x": a1_bar * w1.T - (x_hat_bar if target_path else 0 * x)}
    params = {"W1": w1, "b1": b1, "Wm": wm, "bm": bm, "Wl": wl, "bl": bl, "V1": v1, "c1": c1, "Vo": vo, "co": co,
              "x": x}
    for name, matrix in params.items():
        assert _all_zero(_grad(loss, matrix) - grads[name]), name
    return sp.Eq(sp.Symbol("xbar"), sp.Symbol("xbar_enc") - sp.Symbol("xhatbar"))


PROOFS = (
    Proof("kl_gradients", "∂KL/∂μ = c_j c_b μ and ∂KL/∂ℓ = c_j c_b ½ expm1(ℓ), through the convention's reductions",
          kl_gradients),
    Proof("reparameterize_gradients", "reparameterize's VJP: μ̄ = z̄, ℓ̄ = z̄ ⊙ ½ e^{ℓ/2} ε", reparameterize_gradients),
    Proof("reconstruction_gradients", "reconstruction_loss's VJP: x̂̄ = 2 s c_d c_b ȳ (x̂ − x), x̄ = −x̂̄",
          reconstruction_gradients),
    Proof("dense_layer_vjp", "dense y = x·W + b: W̄ = xᵀ·ȳ, b̄ = Σ_b ȳ, x̄ = ȳ·Wᵀ", dense_layer_vjp),
    Proof("activation_derivatives", "each activation's derivative, as the reference evaluates it, on both sides "
          "of the kink", activation_derivatives),
    Proof("network_loss_vjp", "the loss VJP composed as the reference composes it (decoder, reparameterization, "
          "KL heads, encoder, and the target path) equals the gradient of the loss", network_loss_vjp),
)
