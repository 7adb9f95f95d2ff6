"""The torch side of the estimators chapter: likelihood modules, estimators on particles, the
discrete-input encoder, on the CPU and (where present) CUDA. The laws themselves run on
`TorchBackend` through test_laws.py; these tests cover what the contract does not see."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vaespec.impl import build
from vaespec.impl.embedding import EmbeddingEncoder, embedding_lookup
from vaespec.impl.estimators import elbo, generate, iwae_bound, log_importance_weights, log_mean_exp, reconstruct
from vaespec.impl.functional import reconstruction_loss
from vaespec.impl.likelihoods import (
    BernoulliLikelihood,
    GaussianLikelihood,
    bernoulli_log_likelihood,
    build_likelihood,
    gaussian_log_likelihood,
)
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _rand(*shape, device="cpu", seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_bernoulli_log_prob_is_minus_bce_with_logits(device):
    logits, x = 40 * _rand(5, 7, device=device, seed=1) - 20, _rand(5, 7, device=device, seed=2)
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected, rtol=0, atol=0)
    by_hand = (x * logits - (logits.clamp(min=0) + torch.log1p(torch.exp(-logits.abs())))).sum(-1)
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), by_hand, rtol=1e-14, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_mse_is_scaled_gaussian_nll_minus_constant(device):
    x_hat, x = _rand(4, 6, device=device, seed=3), _rand(4, 6, device=device, seed=4)
    nll = -gaussian_log_likelihood(x_hat, x, 0.0)
    # "elbo" convention: mean_b ½ Σ_d (x̂ − x)² = mean_b NLL_b − ½ D log 2π
    torch.testing.assert_close(reconstruction_loss(x_hat, x, "elbo"), nll.mean() - 3 * math.log(2 * math.pi))
    # a learned scale: the per-feature MLE of σ² is the mean squared residual, where d log p / d ℓ = 0
    log_var = torch.log(((x - x_hat) ** 2).mean(0)).requires_grad_()
    gaussian_log_likelihood(x_hat, x, log_var).sum().backward()
    torch.testing.assert_close(log_var.grad, torch.zeros_like(log_var), rtol=0, atol=1e-12)


def test_likelihood_modules_learn_or_fix_the_scale():
    learned, fixed = GaussianLikelihood(3), GaussianLikelihood(3, log_var=-1.0, learn=False)
    assert [n for n, _ in learned.named_parameters()] == ["log_var"] and list(fixed.parameters()) == []
    assert torch.equal(fixed.log_var, torch.full((3,), -1.0))
    x_hat, x = torch.zeros(2, 3), torch.full((2, 3), 2.0)
    learned(x_hat, x).sum().backward()  # d/dℓ = ½((x − x̂)² e^{−ℓ} − 1) = 1.5 per example, 2 examples
    assert torch.equal(learned.log_var.grad, torch.full((3,), 3.0))
    assert isinstance(build_likelihood("bernoulli", 3), BernoulliLikelihood)
    for option in ({"log_var": -1.0}, {"learn_scale": False}):  # the Gaussian's options, never silently ignored
        with pytest.raises(ConfigError, match="bernoulli.*has no scale"):
            build_likelihood("bernoulli", 3, **option)
    with pytest.raises(ConfigError, match="likelihood"):
        build_likelihood("poisson", 3)


def test_likelihood_checks_name_the_argument():
    with pytest.raises(DomainError, match=r"x: expected values in \[0, 1\]"):
        bernoulli_log_likelihood(torch.zeros(2, 3), torch.full((2, 3), 2.0))
    with pytest.raises(ShapeError, match="x_hat"):
        gaussian_log_likelihood(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(DomainError, match="logits"):
        bernoulli_log_likelihood(torch.full((2, 2, 3), float("nan")), torch.zeros(2, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_log_mean_exp_never_overflows(device):
    w = torch.tensor([[1e4, -1e4], [1e4 - 1, -1e4 + 2]], dtype=torch.float32, device=device)
    expected = torch.tensor([1e4 + math.log((1 + math.exp(-1)) / 2), -1e4 + 2 + math.log((1 + math.exp(-2)) / 2)],
                            device=device)
    torch.testing.assert_close(log_mean_exp(w), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_estimators_on_particles(device):
    encoder, decoder = build(5, 2, (6,), (6,), "tanh", key=0, dtype=torch.float64, device=device)
    likelihood = GaussianLikelihood(5, dtype=torch.float64, device=device)
    x = _rand(3, 5, device=device, seed=5)
    eps = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64).to(device)
    log_w = log_importance_weights(encoder, decoder, x, eps, likelihood)
    assert log_w.shape == (4, 3)
    torch.testing.assert_close(elbo(encoder, decoder, x, eps, likelihood), log_w.mean(0))
    torch.testing.assert_close(iwae_bound(encoder, decoder, x, eps, likelihood),
                               torch.logsumexp(log_w, 0) - math.log(4))
    assert torch.all(iwae_bound(encoder, decoder, x, eps, likelihood) >= elbo(encoder, decoder, x, eps, likelihood))
    torch.testing.assert_close(reconstruct(encoder, decoder, x), decoder(encoder(x)["mu"]))
    torch.testing.assert_close(generate(decoder, eps[0]), decoder(eps[0]))
    # one particle per row reproduces the row-by-row computation
    single = torch.stack([log_importance_weights(encoder, decoder, x, eps[k:k + 1], likelihood)[0] for k in range(4)])
    torch.testing.assert_close(single, log_w)


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_lookup_is_one_hot_times_table_with_accumulating_gradient(device):
    table = torch.randn(5, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(device)
    table.requires_grad_()
    indices = torch.tensor([4, 0, 4, 2, 4], device=device)
    out = embedding_lookup(table, indices)
    one_hot = F.one_hot(indices, 5).to(table.dtype)
    assert torch.equal(out, one_hot @ table)
    cotangent = torch.randn(5, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64).to(device)
    (grad,) = torch.autograd.grad(out, table, cotangent)
    torch.testing.assert_close(grad, one_hot.T @ cotangent, rtol=0, atol=1e-15)
    assert torch.equal(grad[1], torch.zeros(3, dtype=torch.float64, device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_encoder_quivers_shape_and_determinism(device):
    # quivers' example: Pixel : FinSet 8 -> EncoderHidden 16 -> … -> Latent 4
    encoder = EmbeddingEncoder(8, fields=1, embedding_dim=16, latent_size=4, encoder_sizes=(16,), key=3, device=device)
    again = EmbeddingEncoder(8, fields=1, embedding_dim=16, latent_size=4, encoder_sizes=(16,), key=3, device=device)
    x = torch.tensor([0, 7, 3, 3], device=device)
    out = encoder(x)
    assert out["mu"].shape == (4, 4) and out["log_var"].shape == (4, 4)
    assert torch.equal(out["mu"][2], out["mu"][3])  # same category, same posterior
    assert all(torch.equal(p, q) for p, q in zip(encoder.parameters(), again.parameters()))
    _, decoder = build(1, 4, (), (8,), key=0, device=device)
    assert decoder(out["mu"]).shape == (4, 1)  # composes with the spec's decoder


def test_embedding_encoder_refuses_bad_indices():
    encoder = EmbeddingEncoder(3, fields=2, embedding_dim=2, key=0)
    with pytest.raises(DomainError, match=r"indices: expected integers in \[0, 3\)"):
        encoder(torch.tensor([[0, 3]]))
    with pytest.raises(DTypeError, match="indices"):
        encoder(torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ShapeError, match="fields = 2"):
        encoder(torch.tensor([[0, 1, 2]]))
    with pytest.raises(ConfigError, match="categories"):
        EmbeddingEncoder(0)


def test_torch_backend_estimators_agree_with_the_numpy_boundary():
    from vaespec.impl.backend import TorchBackend
    from vaespec.reference import estimators as ref
    from vaespec.spec.architecture import Architecture
    from vaespec.spec.init import init_params

    arch = Architecture(3, 2, (4,), (4,), "gelu")
    args = (arch, init_params(arch, 1), np.full((2, 3), 0.25), np.ones((5, 2, 2)), np.zeros(3), "bernoulli")
    backend = TorchBackend("cpu", torch.float64)
    np.testing.assert_allclose(backend.iwae_bound(*args), ref.iwae_bound(*args), rtol=1e-13)
    with pytest.raises(ConfigError, match="likelihood"):
        backend.elbo(*args[:-1], "poisson")


@pytest.mark.parametrize("device", DEVICES)
def test_likelihoods_sum_every_event_axis(device):
    """x [batch, C, H, W]: bitwise the flattened [batch, C·H·W] value, and with leading particle axes on x̂ the
    same per particle (x fixes the event's rank)."""
    x_hat, x, log_var = (_rand(2, 3, 4, 5, device=device, seed=s) for s in (1, 2, 3))
    flat = [t.reshape(2, -1) for t in (x_hat, x, log_var)]
    assert torch.equal(gaussian_log_likelihood(x_hat, x, log_var), gaussian_log_likelihood(*flat))
    binary = (x > 0).to(x.dtype)
    assert torch.equal(bernoulli_log_likelihood(x_hat, binary),
                       bernoulli_log_likelihood(flat[0], binary.reshape(2, -1)))
    particles = torch.stack([x_hat, 2 * x_hat])  # [2, batch, C, H, W]
    got = gaussian_log_likelihood(particles, x, log_var)
    assert got.shape == (2, 2)
    assert torch.equal(got[1], gaussian_log_likelihood(2 * x_hat, x, log_var))


def test_event_controls_are_right_on_batch_output():
    """The last-axis controls agree with the reference on [batch, output] (only an event exposes them)."""
    from vaespec.proofs_tests.controls.estimators import BernoulliSumOverLastAxis, GaussianSumOverLastAxis
    from vaespec.reference import estimators as ref

    rng = np.random.default_rng(0)
    x_hat, x, log_var = rng.standard_normal((3, 4, 6))
    binary = (x > 0).astype(np.float64)
    np.testing.assert_array_equal(GaussianSumOverLastAxis().gaussian_log_likelihood(x_hat, x, log_var),
                                  ref.gaussian_log_likelihood(x_hat, x, log_var))
    np.testing.assert_array_equal(BernoulliSumOverLastAxis().bernoulli_log_likelihood(x_hat, binary),
                                  ref.bernoulli_log_likelihood(x_hat, binary))
    image = [a.reshape(4, 2, 3) for a in (x_hat, x, log_var)]
    assert not np.allclose(GaussianSumOverLastAxis().gaussian_log_likelihood(*image),
                           ref.gaussian_log_likelihood(*image))
