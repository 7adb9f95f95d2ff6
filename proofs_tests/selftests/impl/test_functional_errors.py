"""Bad inputs to the functional ops raise vaespec errors naming the argument; validate=False skips checks."""

from __future__ import annotations

import math

import pytest
import torch

from vaespec.impl import kl_divergence, loss, reconstruction_loss, reparameterize
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError


def t(*shape, dtype=torch.float64, fill=0.5):
    return torch.full(shape, fill, dtype=dtype)


def nan_at(*shape, index):
    value = t(*shape)
    value[index] = math.nan
    return value


CASES = {
    "log_var latent mismatch": (lambda: reparameterize(t(4, 3), t(4, 2), t(4, 3)), ShapeError,
                                ["log_var: expected shape [batch, latent] = [4, 3] to match mu, got (4, 2)"]),
    "eps batch mismatch": (lambda: reparameterize(t(4, 3), t(4, 3), t(5, 3)), ShapeError, ["eps", "[4, 3]", "(5, 3)"]),
    "mu wrong rank": (lambda: kl_divergence(t(3), t(3)), ShapeError, ["mu", "rank 2", "(3,)"]),
    "log_var wrong rank": (lambda: kl_divergence(t(4, 3), t(4, 3, 1)), ShapeError, ["log_var", "rank 2", "(4, 3, 1)"]),
    "int dtype": (lambda: kl_divergence(torch.zeros(4, 3, dtype=torch.int64), t(4, 3)), DTypeError,
                  ["mu", "floating-point", "int64"]),
    "not a tensor": (lambda: reconstruction_loss([[1.0]], t(1, 1)), DTypeError, ["x_hat", "torch.Tensor", "list"]),
    "mixed dtypes": (lambda: reconstruction_loss(t(2, 3), t(2, 3, dtype=torch.float32)), DTypeError,
                     ["x:", "float64", "float32"]),
    "NaN": (lambda: kl_divergence(t(4, 3), nan_at(4, 3, index=(2, 1))), DomainError, ["log_var", "finite", "(2, 1)"]),
    "Inf": (lambda: reconstruction_loss(t(2, 3), t(2, 3, fill=math.inf)), DomainError, ["x:", "finite", "inf"]),
    "empty batch": (lambda: reconstruction_loss(t(0, 3), t(0, 3)), ShapeError, ["x_hat", "batch", "empty"]),
    "empty latent": (lambda: kl_divergence(t(2, 0), t(2, 0)), ShapeError, ["mu", "latent", "empty"]),
    "loss target mismatch": (lambda: loss(t(4, 5), t(4, 6), t(4, 3), t(4, 3)), ShapeError,
                             ["target", "[4, 5]", "reconstruction", "(4, 6)"]),
    "loss latent batch mismatch": (lambda: loss(t(4, 5), t(4, 5), t(3, 3), t(3, 3)), ShapeError,
                                   ["mu", "[4, 3]", "(3, 3)"]),
    "negative beta": (lambda: loss(t(4, 5), t(4, 5), t(4, 3), t(4, 3), beta=-0.5), DomainError, ["beta", "-0.5"]),
    "NaN beta": (lambda: loss(t(4, 5), t(4, 5), t(4, 3), t(4, 3), beta=math.nan), DomainError, ["beta", "nan"]),
    "string beta": (lambda: loss(t(4, 5), t(4, 5), t(4, 3), t(4, 3), beta="1"), DTypeError, ["beta", "real number"]),
    "unknown convention": (lambda: kl_divergence(t(4, 3), t(4, 3), "bogus"), ConfigError, ["convention", "elbo"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inputs_raise_vaespec_errors_naming_the_argument(case):
    call, error, words = CASES[case]
    with pytest.raises(error) as info:
        call()
    assert all(word in str(info.value) for word in words), str(info.value)


def test_mismatched_devices_are_named():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device")
    with pytest.raises(DTypeError, match="log_var"):
        kl_divergence(t(4, 3), t(4, 3).cuda())


def test_valid_inputs_pass(device):
    mu, log_var = t(4, 3).to(device), t(4, 3).to(device)
    assert loss(t(4, 5).to(device), t(4, 5).to(device), mu, log_var, beta=torch.tensor(0.5)).shape == ()


def test_validate_false_skips_every_check():
    # NaN propagates instead of raising, and a negative beta is applied as given.
    assert math.isnan(kl_divergence(t(4, 3), nan_at(4, 3, index=(0, 0)), validate=False).item())
    value = loss(t(4, 5), t(4, 5, fill=1.0), t(4, 3), t(4, 3), beta=-1.0, validate=False)
    assert value.item() == pytest.approx(reconstruction_loss(t(4, 5), t(4, 5, fill=1.0)).item()
                                         - kl_divergence(t(4, 3), t(4, 3)).item())


# Issue 14: constructors and helpers check their arguments; the impl's key draw and likelihoods check the domain.
def test_constructors_and_helpers_name_bad_arguments():
    import numpy as np

    from vaespec.impl import Encoder, reparameterize_with_key
    from vaespec.impl.embedding import EmbeddingEncoder
    from vaespec.impl.likelihoods import gaussian_log_likelihood
    from vaespec.impl.vq import build as build_vq
    from vaespec.impl.vq_modules import VQVAE
    from vaespec.spec import keys
    from vaespec.spec.architecture import Architecture
    from vaespec.spec.tolerances import bound
    from vaespec.spec.vq import acceptable_codes

    arch = Architecture(4, 2, (3,), (3,))
    assert Encoder(arch, dtype="float32").mu.weight.dtype == torch.float32  # a dtype name is resolved
    cases = [
        (lambda: Encoder(None), DTypeError, "arch: expected"),
        (lambda: Encoder(arch, device="meta").mu.weight.device.type == "meta" or None, None, None),
        (lambda: Encoder(arch, device="xpu"), ConfigError, "device"),
        (lambda: EmbeddingEncoder(4, encoder_sizes=b"ab"), ConfigError, "encoder_sizes"),
        (lambda: keys.normal(keys.key(0), None), DTypeError, "shape"),
        (lambda: keys.split(keys.key(0), -1), ConfigError, "num"),
        (lambda: bound("float8", 3), ConfigError, "dtype"),
        (lambda: acceptable_codes("float32", np.full((2, 2), np.nan), np.zeros((3, 2))), DomainError, "z_e"),
        (lambda: reparameterize_with_key(t(2, 3), t(2, 3, fill=1e4), 3), DomainError, "log_var"),
        (lambda: gaussian_log_likelihood(t(2, 3), t(2, 3), -745.0), DomainError, "log_var"),
        (lambda: gaussian_log_likelihood(t(2, 3), t(2, 3), 2**1100), DomainError, "log_var"),
    ]
    model = build_vq(4, embedding_dim=2, num_embeddings=3, encoder_sizes=(3,), decoder_sizes=(3,), key=0)
    cases.append((lambda: VQVAE(model.decoder, model.quantizer, model.decoder), DTypeError, "encoder"))
    for call, error, words in cases:
        if error is None:
            call()
            continue
        with pytest.raises(error) as info:
            call()
        assert str(info.value).startswith(words), str(info.value)
