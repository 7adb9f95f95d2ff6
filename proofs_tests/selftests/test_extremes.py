"""Extreme values at the edges of the stated domains (`vaespec.spec.domains`), on the CPU in float64
and float32, for the float64 reference and the Torch functional ops: log σ² = ±80 and −150,
large |μ|, subnormal inputs, empty reductions, and the DomainError just outside each domain.
Every tolerance is the policy's (`laws.tolerance.tolerance`); exact values come from the oracle."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch
import torch.distributions as dist

from vaespec import reference as ref
from vaespec.impl import functional as tf
from vaespec.proofs_tests import oracle
from vaespec.proofs_tests.laws.compare import round_to
from vaespec.proofs_tests.laws.tolerance import function_bound, tolerance
from vaespec.reference import ACTIVATION_FUNCTIONS, vjp_magnitude
from vaespec.spec.conventions import PRESETS
from vaespec.spec.domains import MAX_FINITE, check_domain, log_var_limits
from vaespec.spec.errors import DomainError, ShapeError
from vaespec.spec.tolerances import LOG_VAR_DOMAIN, REFERENCE_ULPS, sum_ulps

DTYPES = ("float64", "float32")
SUM = PRESETS["sum"]
SMALLEST_SUBNORMAL = 2.0**-1074


def _t(array, dtype, grad=False):
    return torch.tensor(np.asarray(array), dtype=getattr(torch, dtype), requires_grad=grad)


def _exact_kl(mu, lv):
    with mpmath.workdps(oracle.DIGITS):
        return float(mpmath.fsum((oracle.expm1_minus_identity(mpmath.mpf(b)) + mpmath.mpf(a) ** 2) / 2
                                 for a, b in zip(np.ravel(mu), np.ravel(lv))))


# ----------------------------------------------------------------------------- inside the domain
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_var", [80.0, -80.0, -150.0])
def test_kl_at_log_variance_edges_is_finite_and_accurate(dtype, log_var):
    mu, lv = np.array([[0.0, 1.5]]), np.array([[log_var, log_var]])
    exact = _exact_kl(mu, lv)
    # the reference's own target: REFERENCE_ULPS ulps of a sum of two terms, sum_ulps(1) (an ulp ≤ 2u|x|)
    assert float(ref.kl_divergence(mu, lv, SUM)) == pytest.approx(exact, rel=sum_ulps(1) * 2 * 2.0**-53)
    got = tf.kl_divergence(_t(mu, dtype), _t(lv, dtype), SUM).item()
    tol = float(tolerance(dtype, "kl_divergence", {"mu": mu, "log_var": lv, "convention": SUM}))
    assert np.isfinite(got) and abs(got - exact) <= tol, (got, exact, tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_var", [80.0, -80.0])
def test_kl_gradient_at_log_variance_edges(dtype, log_var):
    mu_t, lv_t = _t([[0.5]], dtype, grad=True), _t([[log_var]], dtype, grad=True)
    tf.kl_divergence(mu_t, lv_t, SUM).backward()
    args = {"mu": np.array([[0.5]]), "log_var": np.array([[log_var]]), "convention": SUM}
    want = ref.kl_divergence_vjp({**args, "convention": SUM}, 1.0)
    b = function_bound(dtype, "kl_divergence", args, vjp=True)
    mags = vjp_magnitude("kl_divergence", args, 1.0)
    for name, grad in (("mu", mu_t.grad), ("log_var", lv_t.grad)):
        tol = 2 * b.rel * mags[name] + b.floor
        assert torch.isfinite(grad).all() and np.all(np.abs(grad.double().numpy() - want[name]) <= tol), name


def test_scale_based_kl_overflows_where_the_log_variance_form_does_not():
    """torch.distributions builds σ = e^{ℓ/2}, squares it (underflow to 0) and takes its log: +inf.
    The log-variance form ½(e^ℓ − 1 − ℓ + μ²) never forms log σ², so it stays finite (74.5)."""
    mu, lv = torch.zeros(1, 1), torch.full((1, 1), -150.0)
    scale_based = dist.kl_divergence(dist.Normal(mu, torch.exp(0.5 * lv), validate_args=False),
                                     dist.Normal(0.0, 1.0)).sum().item()
    assert scale_based == float("inf")
    # exact in both: expm1(−150) rounds to −1, and ½(−1 + 150) = 74.5 is a float32
    assert tf.kl_divergence(mu, lv, SUM).item() == 74.5
    assert float(ref.kl_divergence(np.zeros((1, 1)), np.full((1, 1), -150.0), SUM)) == 74.5
    # float64 has the same failure further out: σ = e^{−750} underflows to 0
    mu64, lv64 = torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), -1500.0, dtype=torch.float64)
    assert dist.kl_divergence(dist.Normal(mu64, torch.exp(0.5 * lv64), validate_args=False),
                              dist.Normal(0.0, 1.0)).item() == float("inf")
    assert tf.kl_divergence(mu64, lv64, SUM).item() == 749.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log_var", [80.0, -80.0])
def test_reparameterize_at_log_variance_edges(dtype, log_var):
    mu, lv, eps = np.array([[1.0, -2.0]]), np.array([[log_var, log_var]]), np.array([[0.75, -1.25]])
    got = tf.reparameterize(_t(mu, dtype), _t(lv, dtype), _t(eps, dtype)).double().numpy()
    want = ref.reparameterize(mu, lv, eps)
    tol = tolerance(dtype, "reparameterize", {"mu": mu, "log_var": lv, "eps": eps})
    assert np.all(np.isfinite(got)) and np.all(np.abs(got - want) <= tol)


@pytest.mark.parametrize("dtype, mu_value", [("float64", 1e150), ("float32", 1e17)])
def test_large_mean_inside_the_domain(dtype, mu_value):
    mu, lv = np.array([[mu_value, -mu_value]]), np.array([[0.5, -0.5]])
    exact = _exact_kl(mu, lv)
    assert float(ref.kl_divergence(mu, lv, SUM)) == pytest.approx(exact, rel=sum_ulps(1) * 2 * 2.0**-53)
    got = tf.kl_divergence(_t(round_to(dtype, mu), dtype), _t(lv, dtype), SUM).item()
    args = {"mu": round_to(dtype, mu), "log_var": lv, "convention": SUM}
    assert abs(got - _exact_kl(args["mu"], lv)) <= float(tolerance(dtype, "kl_divergence", args))
    rep = {"mu": round_to(dtype, mu), "log_var": lv, "eps": np.ones((1, 2))}
    z = tf.reparameterize(*(_t(rep[k], dtype) for k in ("mu", "log_var", "eps"))).double().numpy()
    tol = tolerance(dtype, "reparameterize", rep)
    assert np.all(np.isfinite(z)) and np.all(np.abs(z - ref.reparameterize(**rep)) <= tol)


def test_subnormal_inputs_float32():
    """No flush to zero: a subnormal μ survives z = μ + σ·0 bitwise; the KL of subnormal arguments
    underflows to within the policy's absolute floor of its exact (tiny) value."""
    tiny = np.float32(1e-40)
    assert 0 < tiny < np.finfo(np.float32).tiny
    mu = torch.tensor([[tiny, -tiny]], dtype=torch.float32)
    z = tf.reparameterize(mu, torch.tensor([[0.0, 3.0]]), torch.zeros(1, 2))
    assert torch.equal(z, mu)
    lv = torch.tensor([[tiny, -tiny]], dtype=torch.float32)
    args = {"mu": mu.double().numpy(), "log_var": lv.double().numpy(), "convention": SUM}
    got = tf.kl_divergence(mu, lv, SUM).item()
    assert abs(got - _exact_kl(args["mu"], args["log_var"])) <= tolerance("float32", "kl_divergence", args)


def test_subnormal_inputs_float64_reference():
    mu, lv = np.array([[5e-324, -1e-310]]), np.array([[1e-310, -5e-324]])
    assert ref.reparameterize(mu, np.zeros_like(lv), np.zeros_like(mu)).tolist() == mu.tolist()
    assert abs(float(ref.kl_divergence(mu, lv, SUM)) - _exact_kl(mu, lv)) <= SMALLEST_SUBNORMAL
    y = np.array([5e-324, -5e-324, 1e-310, -1e-310, 2.2e-308])
    with mpmath.workdps(oracle.DIGITS):
        for name, (value, derivative, _) in oracle.EXACT_ACTIVATIONS.items():
            act = ACTIVATION_FUNCTIONS[name]
            for got, exact_fn in ((act.value(y), value), (act.derivative(y), derivative)):
                for g, v in zip(got, y):
                    exact = exact_fn(mpmath.mpf(float(v)))
                    # ulps at the exact value; below the normal range an ulp is 2⁻¹⁰⁷⁴
                    assert oracle.ulps(g, exact) <= REFERENCE_ULPS, (name, v, g, exact)


# ----------------------------------------------------------------------------- outside: DomainError
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_variance_above_the_domain_raises(dtype):
    high = log_var_limits(dtype, 2)[1]
    mu, lv = np.zeros((1, 2)), np.full((1, 2), high + 0.01)
    with pytest.raises(DomainError, match=r"^log_var: .*log_var ≤"):
        check_domain("kl_divergence", {"mu": mu, "log_var": lv}, dtype)
    with pytest.raises(DomainError, match=r"^log_var: "):
        tf.kl_divergence(_t(mu, dtype), _t(lv, dtype), SUM)
    check_domain("kl_divergence", {"mu": mu, "log_var": np.full((1, 2), high - 0.01)}, dtype)  # just inside
    assert np.isfinite(tf.kl_divergence(_t(mu, dtype), _t(np.full((1, 2), high - 0.01), dtype), SUM).item())
    if dtype == "float64":
        with pytest.raises(DomainError, match=r"^log_var: "):
            ref.kl_divergence(mu, lv, SUM)


@pytest.mark.parametrize("dtype, mu_value", [("float64", 1.4e154), ("float32", 2e19)])
def test_mean_above_the_domain_raises(dtype, mu_value):
    mu, lv = np.array([[mu_value]]), np.zeros((1, 1))
    with pytest.raises(DomainError, match=r"^mu: .*max \|μ\|"):
        tf.kl_divergence(_t(mu, dtype), _t(lv, dtype), SUM)
    if dtype == "float64":
        with pytest.raises(DomainError, match=r"^mu: "):
            ref.kl_divergence(mu, lv, SUM)


@pytest.mark.parametrize("dtype, log_var", [("float64", 1420.0), ("float32", 180.0)])
def test_reparameterize_above_the_domain_raises(dtype, log_var):
    mu, lv, eps = np.zeros((1, 1)), np.full((1, 1), log_var), np.ones((1, 1))
    with pytest.raises(DomainError, match=r"^log_var: .*so z is finite"):
        tf.reparameterize(_t(mu, dtype), _t(lv, dtype), _t(eps, dtype))
    if dtype == "float64":
        with pytest.raises(DomainError, match=r"^log_var: "):
            ref.reparameterize(mu, lv, eps)


@pytest.mark.parametrize("dtype, x_value", [("float64", 1e155), ("float32", 1e20)])
def test_reconstruction_above_the_domain_raises(dtype, x_value):
    x_hat, x = np.full((1, 2), x_value), np.zeros((1, 2))
    with pytest.raises(DomainError, match=r"^x_hat: "):
        tf.reconstruction_loss(_t(x_hat, dtype), _t(x, dtype), SUM)
    with pytest.raises(DomainError, match=r"^reconstruction: "):
        tf.loss(_t(x_hat, dtype), _t(x, dtype), _t(np.zeros((1, 1)), dtype), _t(np.zeros((1, 1)), dtype), 1.0, SUM)
    if dtype == "float64":
        with pytest.raises(DomainError, match=r"^x_hat: "):
            ref.reconstruction_loss(x_hat, x, SUM)


def test_network_result_outside_float64_raises():
    from vaespec.spec.architecture import Architecture
    arch = Architecture(input_size=2, latent_size=1, encoder_sizes=(), decoder_sizes=(), activation="identity")
    params = ref.init_params(arch, 0)
    params["log_var.bias"] = np.full(1, 1500.0)  # σ = e^750 overflows
    with pytest.raises(DomainError, match=r"^forward: the float64 result is not finite"):
        ref.forward(arch, params, np.zeros((1, 2)), np.ones((1, 1)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_reductions_are_shape_errors(dtype):
    empty, ok = np.zeros((0, 3)), np.zeros((2, 3))
    with pytest.raises(ShapeError, match=r"^mu: dimension 'batch' \(axis 0\) is empty"):
        tf.kl_divergence(_t(empty, dtype), _t(empty, dtype), SUM)
    with pytest.raises(ShapeError, match=r"^x_hat: .*is empty"):
        tf.reconstruction_loss(_t(ok[:, :0], dtype), _t(ok[:, :0], dtype), SUM)
    with pytest.raises(ShapeError, match=r"^mu: .*is empty"):
        ref.kl_divergence(empty, empty, SUM)
    # validate=False is torch's arithmetic, as documented: an empty sum is 0, an empty mean NaN
    assert tf.kl_divergence(_t(empty, dtype), _t(empty, dtype), SUM, validate=False).item() == 0.0
    assert np.isnan(tf.kl_divergence(_t(empty, dtype), _t(empty, dtype), "torchlean", validate=False).item())


# ----------------------------------------------------------------------------- the laws' range
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16", "float16"])
def test_laws_draw_range_lies_inside_every_domain(dtype):
    """The strategies' worst corner (6 × 5 latents, |μ| = 5, |ε| = 4, |x̂|, |x| ≤ 3 over 6 × 8 entries) with
    log σ² clipped to LOG_VAR_DOMAIN: every check passes, and the KL's limit for 30 terms is above it."""
    d = LOG_VAR_DOMAIN[dtype]
    assert d <= log_var_limits(dtype, 30)[1]
    mu, eps = np.full((6, 5), 5.0), np.full((6, 5), 4.0)
    check_domain("kl_divergence", {"mu": mu, "log_var": np.full((6, 5), d)}, dtype)
    check_domain("reparameterize", {"mu": mu, "log_var": np.full((6, 5), d), "eps": eps}, dtype)
    check_domain("reconstruction_loss", {"x_hat": np.full((6, 8), 3.0), "x": np.full((6, 8), -3.0),
                                         "convention": SUM}, dtype)
    assert MAX_FINITE[dtype] >= 65504.0
