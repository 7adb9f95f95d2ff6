"""`explicit_noise`: the contract's ε reaches code that samples internally, and no other draw does."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaespec.impl.adapters import HiddenDrawError, explicit_noise
from vaespec.spec.errors import DomainError, DTypeError, ShapeError


def _eps(*shape, dtype=torch.float64):
    return torch.arange(1.0, 1.0 + torch.Size(shape).numel(), dtype=dtype).reshape(shape) / 7  # not a draw


class Reparameterize(nn.Module):
    """A module that draws its noise itself, once."""

    def forward(self, mu, log_var):
        return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)


class DrawsTwice(nn.Module):
    def forward(self, mu, log_var):
        return mu + torch.exp(0.5 * log_var) * torch.randn_like(mu) + 0.0 * torch.randn_like(mu)


def test_a_module_drawing_once_gets_exactly_eps(device):
    eps = _eps(3, 2).to(device)
    mu = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64, device=device)
    log_var = torch.tensor([[0.0, 1.0], [-2.0, 0.5], [1.5, -0.5]], dtype=torch.float64, device=device)
    with explicit_noise(eps) as mode:
        z = Reparameterize()(mu, log_var)
    assert mode.served == 1
    assert torch.equal(z, mu + torch.exp(0.5 * log_var) * eps)


@pytest.mark.parametrize("draw", [
    lambda like: torch.randn_like(like),
    lambda like: torch.randn(like.shape, dtype=like.dtype),
    lambda like: torch.randn(*like.shape, dtype=like.dtype),
    lambda like: torch.empty_like(like).normal_(),
])
def test_each_standard_normal_draw_is_served(draw):
    eps = _eps(2, 3)
    with explicit_noise(eps):
        got = draw(eps)
    assert torch.equal(got, eps) and got is not eps


def test_normal_with_mean_and_std_is_mean_plus_std_eps():
    eps = _eps(4)
    with explicit_noise(eps):
        got = torch.zeros(4, dtype=torch.float64).normal_(2.0, 0.5)
    assert torch.equal(got, 2.0 + 0.5 * eps)


def test_a_second_draw_is_refused_naming_both_calls():
    eps = _eps(2, 2)
    second = r"torch\.randn_like: a second draw.*already served to torch\.randn_like"
    with pytest.raises(HiddenDrawError, match=second), explicit_noise(eps):
        DrawsTwice()(eps, eps)


@pytest.mark.parametrize("call, name", [
    (lambda t: torch.rand_like(t), "torch.rand_like"),
    (lambda t: torch.rand(2, 2), "torch.rand"),
    (lambda t: torch.randint(0, 5, (3,)), "torch.randint"),
    (lambda t: torch.randperm(4), "torch.randperm"),
    (lambda t: torch.bernoulli(torch.full((2,), 0.5)), "torch.bernoulli"),
    (lambda t: torch.multinomial(torch.ones(3), 2), "torch.multinomial"),
    (lambda t: torch.normal(torch.zeros(2), torch.ones(2)), "torch.normal"),
    (lambda t: torch.empty(3).uniform_(), "Tensor.uniform_"),
    (lambda t: torch.empty(3).exponential_(), "Tensor.exponential_"),
    (lambda t: torch.empty(3, dtype=torch.int64).random_(), "Tensor.random_"),
    (lambda t: nn.init.kaiming_uniform_(torch.empty(3, 3)), "torch.nn.init.kaiming_uniform_"),
    (lambda t: F.gumbel_softmax(t), "torch.nn.functional.gumbel_softmax"),
    (lambda t: F.dropout(t, 0.5, training=True), "torch.nn.functional.dropout"),
    (lambda t: nn.Dropout(0.1).train()(t), "torch.nn.functional.dropout"),
])
def test_every_other_draw_is_refused_naming_the_call(call, name):
    eps = _eps(2, 2)
    with pytest.raises(HiddenDrawError, match="^" + re.escape(name) + ": a hidden draw"), explicit_noise(eps):
        call(eps)


def test_dropout_in_eval_mode_is_no_draw():
    eps = _eps(2, 2)
    with explicit_noise(eps) as mode:
        out = nn.Dropout(0.5).eval()(eps)
    assert torch.equal(out, eps) and mode.served == 0


def test_without_noise_every_draw_is_refused():
    refused = r"^torch\.randn_like: .*passes no noise to the decoder"
    with pytest.raises(HiddenDrawError, match=refused), explicit_noise(None, "the decoder"):
        torch.randn_like(torch.zeros(2))


def test_shape_and_dtype_must_match_eps():
    eps = _eps(2, 3)
    with pytest.raises(ShapeError, match=r"eps: torch\.randn_like asks for shape \(3, 2\)"), explicit_noise(eps):
        torch.randn_like(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(DTypeError, match=r"eps: torch\.randn_like asks for torch\.float32"), explicit_noise(eps):
        torch.randn_like(torch.zeros(2, 3, dtype=torch.float32))
    with pytest.raises(DomainError, match="finite"), explicit_noise(eps):
        torch.zeros(2, 3, dtype=torch.float64).normal_(0.0, float("inf"))


def test_eps_must_be_a_float_tensor():
    with pytest.raises(DTypeError, match="eps: expected a floating-point tensor"):
        explicit_noise(torch.zeros(2, dtype=torch.int64))


def test_the_mode_leaves_other_computation_and_the_global_generator_alone():
    state = torch.random.get_rng_state()
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)
    with explicit_noise(_eps(5)):
        y = torch.tanh(x) @ x + F.softplus(x).sum()
    assert torch.equal(y, torch.tanh(x) @ x + F.softplus(x).sum())
    assert torch.equal(torch.random.get_rng_state(), state)
