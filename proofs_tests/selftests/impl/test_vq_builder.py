"""vaespec.impl.vq.build and the conversions: Edifice's defaults, num_embeddings honoured, options checked,
deterministic initialisation from the spec, round trips through the spec's layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl.vq import (
    VQVAE,
    VectorQuantizer,
    VectorQuantizerEMA,
    build,
    from_params,
    load_params,
    to_codebook,
    to_params,
)
from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError
from vaespec.spec.init import init_codebook, init_params

SMALL = {"input_size": 5, "embedding_dim": 3, "num_embeddings": 7, "encoder_sizes": (6, 4), "decoder_sizes": (4,),
         "activation": "tanh"}


def test_defaults_are_edifices():
    model = build(10)
    assert isinstance(model, VQVAE) and isinstance(model.quantizer, VectorQuantizer)
    assert model.arch == VQArchitecture(10, 64, 512, (256, 128), (128, 256), "relu")
    assert model.quantizer.codebook.shape == (512, 64)
    assert model.encoder.encoder_to_embedding.out_features == 64 and model.decoder.decoder_dense_0.in_features == 64
    assert model.decoder.decoder_output.out_features == 10
    assert torch.equal(model.quantizer.codebook.detach().double(),
                       torch.as_tensor(init_codebook(512, 64, 42)).float().double())  # Edifice's key 42


def test_num_embeddings_is_honoured():
    model = build(10, embedding_dim=4, num_embeddings=13)
    assert model.quantizer.codebook.shape == (13, 4) and model.arch.num_embeddings == 13
    out = model(torch.randn(50, 10, generator=torch.Generator().manual_seed(0)))
    assert int(out.indices.max()) < 13
    assert build(10, 4, 13, ema=True).quantizer.codebook.shape == (13, 4)


@pytest.mark.parametrize(("options", "named"), [
    ({"num_embedings": 3}, "num_embedings"),  # a typo must not silently build 512 codes
    ({"commitment_cost": 0.25}, "commitment_cost"),
    ({"latent_size": 8}, "latent_size"),
    ({"num_embeddings": 0}, "num_embeddings"),
    ({"embedding_dim": 2.5}, "embedding_dim"),
    ({"encoder_sizes": (8, -1)}, r"encoder_sizes\[1\]"),
    ({"decoder_sizes": "64"}, "decoder_sizes"),
    ({"activation": "swish"}, "activation"),
    ({"decay": 1.0}, "decay"),
    ({"decay": -0.1}, "decay"),
    ({"decay": float("nan")}, "decay"),
    ({"epsilon": -1e-5}, "epsilon"),
    ({"epsilon": float("inf")}, "epsilon"),
    ({"ema": "yes"}, "ema"),
    ({"dtype": "int8"}, "dtype"),
])
def test_bad_options_raise_config_errors_naming_them(options, named):
    with pytest.raises(ConfigError, match=named):
        build(10, **options)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid options are .*num_embeddings.*ema.*decay.*epsilon"):
        build(10, num_codes=4)
    with pytest.raises(ConfigError, match="input_size: required"):
        build()


@pytest.mark.parametrize("ema", [False, True])
def test_key_gives_the_spec_initialisation_and_leaves_torch_rng_alone(ema):
    before = torch.random.get_rng_state()
    model = build(**SMALL, ema=ema, key=3, dtype=torch.float64)
    assert torch.equal(torch.random.get_rng_state(), before)
    expected = init_params(VQArchitecture(**SMALL), 3)
    params = to_params(model)
    assert list(params) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(params[name], value, err_msg=name)
    np.testing.assert_array_equal(to_codebook(model), init_codebook(7, 3, 3))
    assert isinstance(model.quantizer, VectorQuantizerEMA if ema else VectorQuantizer)


def test_dtype_and_device_options(device):
    model = build(**SMALL, ema=True, key=0, dtype="float32", device=device)
    tensors = [*model.parameters(), *model.buffers()]
    assert all(t.device.type == torch.device(device).type for t in tensors)
    assert {t.dtype for t in tensors} == {torch.float32, torch.int64}  # ema_step is the int64 one
    assert model.quantizer.ema_step.dtype == torch.int64 and model.quantizer.decay == 0.99
    assert model.quantizer.epsilon == 1e-5


def test_params_round_trip_through_the_spec_layout(device):
    source = build(**SMALL, key=5, dtype=torch.float64, device=device)
    target = build(**SMALL, key=6, dtype=torch.float64, device=device)
    load_params(to_params(source), target, to_codebook(source))
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(device)
    assert torch.equal(target(x).x_hat, source(x).x_hat)
    for name, value in to_params(source).items():
        np.testing.assert_array_equal(to_params(target)[name], value, err_msg=name)
    np.testing.assert_array_equal(to_codebook(target), to_codebook(source))
    rebuilt = from_params(source.arch, to_params(source), to_codebook(source), torch.float64, device)
    assert torch.equal(rebuilt(x).x_hat, source(x).x_hat)


def test_from_params_ema_starts_from_a_zero_state():
    arch = VQArchitecture(**SMALL)
    model = from_params(arch, init_params(arch, 0), init_codebook(7, 3, 1), torch.float64, ema=True, decay=0.5)
    q = model.quantizer
    assert isinstance(q, VectorQuantizerEMA) and q.decay == 0.5
    assert not torch.any(q.ema_counts) and not torch.any(q.ema_sums) and q.ema_step.item() == 0
    np.testing.assert_array_equal(to_codebook(model), init_codebook(7, 3, 1))


def test_conversions_refuse_bad_input():
    arch = VQArchitecture(**SMALL)
    model = build(**SMALL, key=0, dtype=torch.float64)
    params = init_params(arch, 1)
    before = to_codebook(model)
    with pytest.raises(ShapeError, match="codebook"):
        load_params(params, model, np.zeros((6, 3)))
    np.testing.assert_array_equal(to_codebook(model), before)  # nothing was copied
    with pytest.raises(ShapeError, match="missing"):
        load_params({k: v for k, v in params.items() if k != "decoder_output.bias"}, model)
    with pytest.raises(ShapeError, match="outside the parameter layout"):
        load_params({**params, "mu.kernel": np.zeros((4, 3))}, model)
    with pytest.raises(DomainError, match="codebook"):
        load_params(params, model, np.full((7, 3), np.nan))
    with pytest.raises(DTypeError, match="model"):
        to_params(model.encoder)
    with pytest.raises(DTypeError, match="arch"):
        from_params(SMALL, params, init_codebook(7, 3))
