"""Values of the functional ops against the convention formulas, computed in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaespec.impl import kl_divergence, loss, reconstruction_loss, reparameterize
from vaespec.spec.conventions import PRESETS

RNG = np.random.default_rng(0)
MU, LOG_VAR, EPS = (RNG.standard_normal((4, 3)) for _ in range(3))
X_HAT, X = (RNG.standard_normal((4, 5)) for _ in range(2))


def _reduce(values, how, axis):
    return values.sum(axis) if how == "sum" else values.mean(axis)


def _expected_kl(c):
    terms = 0.5 * (np.exp(LOG_VAR) + MU**2 - 1 - LOG_VAR)
    return _reduce(_reduce(terms, c.kl_latent_reduction, -1), c.kl_batch_reduction, 0)


def _expected_reconstruction(c):
    per_example = c.reconstruction_scale * _reduce((X_HAT - X) ** 2, c.reconstruction_feature_reduction, -1)
    return _reduce(per_example, c.reconstruction_batch_reduction, 0)


def _t(array, device):
    return torch.as_tensor(array, device=device)


def test_reparameterize(device):
    z = reparameterize(_t(MU, device), _t(LOG_VAR, device), _t(EPS, device))
    np.testing.assert_allclose(z.cpu().numpy(), MU + np.exp(0.5 * LOG_VAR) * EPS, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_losses_follow_the_convention(name, device):
    c = PRESETS[name]
    kl = kl_divergence(_t(MU, device), _t(LOG_VAR, device), name)
    rec = reconstruction_loss(_t(X_HAT, device), _t(X, device), c)
    total = loss(_t(X_HAT, device), _t(X, device), _t(MU, device), _t(LOG_VAR, device), 0.3, name)
    assert kl.shape == rec.shape == total.shape == ()
    assert kl.item() == pytest.approx(_expected_kl(c), rel=1e-14, abs=0)
    assert rec.item() == pytest.approx(_expected_reconstruction(c), rel=1e-14, abs=0)
    assert total.item() == pytest.approx(_expected_reconstruction(c) + 0.3 * _expected_kl(c), rel=1e-14, abs=0)


def test_default_convention_is_elbo():
    kl = kl_divergence(_t(MU, "cpu"), _t(LOG_VAR, "cpu"))
    assert kl.item() == pytest.approx(_expected_kl(PRESETS["elbo"]), rel=1e-14, abs=0)


def test_presets_differ_so_the_convention_matters():
    values = {name: reconstruction_loss(_t(X_HAT, "cpu"), _t(X, "cpu"), name).item() for name in PRESETS}
    assert len({round(v, 12) for v in values.values()}) == 3  # edifice and torchlean agree on this term


@pytest.mark.parametrize("lv", [1e-5, -1e-6, 3e-8])
def test_kl_is_accurate_near_log_var_zero(lv):
    # ½(exp(lv) − 1 − lv) = lv²/4 + lv³/12 + …. With expm1, only the subtraction of lv cancels,
    # leaving a relative error of about 2u/|lv| (u = 2**-53); exp(lv) − 1 would add the rounding
    # of exp(lv) near 1, a relative error of about 2u/lv², ruinous this close to 0.
    kl = kl_divergence(torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[lv]], dtype=torch.float64))
    series = lv**2 / 4 + lv**3 / 12 + lv**4 / 48
    assert math.isclose(kl.item(), series, rel_tol=8 * 2.0**-53 / abs(lv)), (kl.item(), series)


def test_gradients_flow_through_every_op():
    mu, log_var = (torch.tensor(a, requires_grad=True) for a in (MU, LOG_VAR))
    total = loss(torch.as_tensor(X_HAT), torch.as_tensor(X), mu, log_var, 1.0, "sum")
    d_mu, d_log_var = torch.autograd.grad(total, (mu, log_var))
    np.testing.assert_allclose(d_mu.numpy(), MU, rtol=1e-15)  # ∂/∂μ ½μ² = μ
    np.testing.assert_allclose(d_log_var.numpy(), 0.5 * np.expm1(LOG_VAR), rtol=1e-14, atol=1e-16)
