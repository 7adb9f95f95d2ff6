"""The Edifice-shaped builders: defaults, options, errors, and key-driven initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import Decoder, Encoder, build, build_decoder, build_encoder, init_params, to_params
from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError
from vaespec.spec.keys import Key


def test_defaults_are_edifices():
    encoder, decoder = build(10, key=0)
    arch = encoder.arch
    assert (arch.latent_size, arch.encoder_sizes, arch.decoder_sizes, arch.activation) == (
        32, (256, 128), (128, 256), "relu")
    assert arch.output_size == 10
    assert decoder.arch == arch


def test_parameter_names_and_shapes_follow_the_layout():
    encoder, decoder = build(7, 3, (5,), (4, 2), "tanh", output_size=9)
    arch = Architecture(7, 3, (5,), (4, 2), "tanh", 9)
    assert encoder.arch == arch
    params = to_params(encoder, decoder)
    assert list(params) == list(arch.parameter_shapes())  # names and layout order
    assert {k: v.shape for k, v in params.items()} == arch.parameter_shapes()
    # torch's own names are the spec's, with weight standing for the transposed kernel
    assert ({k.replace(".weight", ".kernel") for k, _ in encoder.named_parameters()}
            == set(arch.parameter_shapes("encoder")))
    assert ({k.replace(".weight", ".kernel") for k, _ in decoder.named_parameters()}
            == set(arch.parameter_shapes("decoder")))


def test_builders_return_modules():
    encoder, decoder = build(4, 2, (3,), (3,))
    assert isinstance(encoder, Encoder) and isinstance(decoder, Decoder)
    assert isinstance(build_encoder(4, 2), Encoder)
    assert isinstance(build_decoder(4, 2), Decoder)


@pytest.mark.parametrize("builder", [build, build_encoder])
def test_missing_input_size_names_the_option(builder):
    with pytest.raises(ConfigError, match="input_size: required"):
        builder(latent_size=2)


def test_decoder_needs_an_output_size_and_output_size_wins():
    with pytest.raises(ConfigError, match="output_size"):
        build_decoder(latent_size=2)
    assert build_decoder(output_size=6, latent_size=2).decoder_output.out_features == 6
    assert build_decoder(4, 2).decoder_output.out_features == 4
    assert build_decoder(4, 2, output_size=6).decoder_output.out_features == 6


@pytest.mark.parametrize("builder, options", [
    (build, {"input_size": 4, "latent_dim": 3}),
    (build_encoder, {"input_size": 4, "decoder_sizes": (3,)}),
    (build_decoder, {"input_size": 4, "encoder_sizes": (3,)}),
])
def test_unknown_option_is_rejected_and_valid_ones_listed(builder, options):
    unknown = next(k for k in options if k != "input_size")
    with pytest.raises(ConfigError) as info:
        builder(**options)
    message = str(info.value)
    assert unknown in message and "latent_size" in message and "activation" in message


@pytest.mark.parametrize("options, option", [
    ({"latent_size": 0}, "latent_size"),
    ({"encoder_sizes": (4, -1)}, "encoder_sizes[1]"),
    ({"decoder_sizes": (2.5,)}, "decoder_sizes[0]"),
    ({"output_size": 0}, "output_size"),
    ({"activation": "swish"}, "activation"),
])
def test_bad_option_values_name_the_option(options, option):
    with pytest.raises(ConfigError) as info:
        build(4, **options)
    assert str(info.value).startswith(option)


def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(ConfigError, match="softplus"):
        build(4, activation="swish")


def test_bad_dtype_is_a_config_error():
    with pytest.raises(ConfigError, match="dtype"):
        build(4, dtype="int32")


def test_key_initialisation_is_init_params():
    arch = Architecture(6, 3, (5,), (4,), "relu")
    expected = init_params(arch, 11)
    encoder, decoder = build(6, 3, (5,), (4,), dtype=torch.float64, key=11)
    got = to_params(encoder, decoder)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    # An int seed and the Key with that value are the same key.
    same = to_params(*build(6, 3, (5,), (4,), dtype="float64", key=Key(11)))
    assert all(np.array_equal(got[k], v) for k, v in same.items())


def test_different_keys_give_different_parameters():
    first = to_params(*build(6, 3, (5,), (4,), key=1))
    second = to_params(*build(6, 3, (5,), (4,), key=2))
    assert all(not np.array_equal(first[k], second[k]) for k in first)


def test_partial_builders_match_build_for_the_same_key():
    full = to_params(*build(6, 3, decoder_sizes=(4,), dtype="float64", key=5))
    encoder = to_params(build_encoder(6, 3, dtype="float64", key=5))
    decoder = to_params(decoder=build_decoder(6, 3, (4,), dtype="float64", key=5))
    assert encoder.keys() | decoder.keys() == full.keys()
    assert all(np.array_equal(full[k], v) for k, v in {**encoder, **decoder}.items())


def test_key_initialisation_leaves_the_global_generator_alone():
    before = torch.random.get_rng_state()
    build(6, 3, (5,), (4,), key=3)
    assert torch.equal(torch.random.get_rng_state(), before)


def test_dtype_and_device_are_applied(device):
    encoder, decoder = build(4, 2, (3,), (3,), dtype="float64", device=device, key=0)
    for parameter in [*encoder.parameters(), *decoder.parameters()]:
        assert parameter.dtype == torch.float64 and parameter.device.type == device


def test_modules_deepcopy_and_still_compute_the_same():
    # deepcopy goes through the same reduce protocol as pickling (so lambdas would fail
    # here too) without vaespec ever loading a pickle.
    import copy

    for activation in ("relu", "leaky_relu", "softplus", "identity"):
        encoder, decoder = build(4, 2, (3,), (3,), activation, key=0)
        x, z = torch.ones(2, 4), torch.ones(2, 2)
        encoder2, decoder2 = copy.deepcopy((encoder, decoder))
        assert torch.equal(encoder(x)["log_var"], encoder2(x)["log_var"]) and torch.equal(decoder(z), decoder2(z))
