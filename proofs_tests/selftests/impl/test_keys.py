"""Key-passing reparameterisation: deterministic, equal to explicit noise, and threading fresh keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import normal_like, reparameterize, reparameterize_with_key
from vaespec.spec.errors import ShapeError
from vaespec.spec.keys import Key, normal

MU = np.random.default_rng(0).standard_normal((4, 3))
LOG_VAR = np.random.default_rng(1).standard_normal((4, 3))


def _pair(device, dtype=torch.float64):
    return (torch.as_tensor(MU, dtype=dtype, device=device), torch.as_tensor(LOG_VAR, dtype=dtype, device=device))


def test_deterministic_given_the_key(device):
    z1, k1 = reparameterize_with_key(*_pair(device), Key(9))
    z2, k2 = reparameterize_with_key(*_pair(device), Key(9))
    assert torch.equal(z1, z2) and k1 == k2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_explicit_noise_from_the_key(dtype, device):
    eps, expected_key = normal(Key(9), (4, 3))
    z, new_key = reparameterize_with_key(*_pair(device, dtype), Key(9))
    explicit = reparameterize(*_pair(device, dtype), torch.as_tensor(eps, dtype=dtype, device=device))
    assert torch.equal(z, explicit) and new_key == expected_key
    assert z.dtype == dtype and z.device.type == device


def test_new_key_differs_and_gives_fresh_noise():
    z1, k1 = reparameterize_with_key(*_pair("cpu"), Key(9))
    z2, k2 = reparameterize_with_key(*_pair("cpu"), k1)
    assert k1 != Key(9) and k2 != k1
    assert not torch.any(z1 == z2)


def test_int_seed_is_the_key_with_that_value():
    z_int, k_int = reparameterize_with_key(*_pair("cpu"), 9)
    z_key, k_key = reparameterize_with_key(*_pair("cpu"), Key(9))
    assert torch.equal(z_int, z_key) and k_int == k_key


def test_normal_like_matches_shape_dtype_and_device(device):
    like = torch.zeros(2, 5, dtype=torch.float32, device=device)
    eps, new_key = normal_like(like, 3)
    expected, expected_key = normal(Key(3), (2, 5))
    assert eps.shape == (2, 5) and eps.dtype == torch.float32 and eps.device.type == device
    assert np.array_equal(eps.cpu().numpy(), expected.astype(np.float32)) and new_key == expected_key


def test_global_generator_is_untouched():
    before = torch.random.get_rng_state()
    reparameterize_with_key(*_pair("cpu"), 5)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_validation_names_the_argument():
    mu, _ = _pair("cpu")
    with pytest.raises(ShapeError, match="log_var"):
        reparameterize_with_key(mu, torch.zeros(4, 2, dtype=torch.float64), 0)
