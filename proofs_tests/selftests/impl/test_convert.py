"""Modules <-> the spec's flat parameter mapping, and the module forward against a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import build, from_params, init_params, load_params, to_params
from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError

from ._support import SMALL


def test_round_trip_is_exact_in_float64(device):
    params = init_params(SMALL, 7)
    encoder, decoder = from_params(SMALL, params, dtype=torch.float64, device=device)
    back = to_params(encoder, decoder)
    assert list(back) == list(params)
    for name, value in params.items():
        assert back[name].dtype == np.float64 and np.array_equal(back[name], value), name


def test_round_trip_in_float32_rounds_once():
    params = init_params(SMALL, 7)
    back = to_params(*from_params(SMALL, params, dtype=torch.float32))
    for name, value in params.items():
        assert np.array_equal(back[name], value.astype(np.float32).astype(np.float64)), name


def test_load_params_overwrites_existing_modules(device):
    encoder, decoder = build(5, 3, (7, 4), (6,), "tanh", dtype="float64", device=device, key=1)
    params = init_params(SMALL, 2)
    load_params(params, encoder, decoder)
    assert all(np.array_equal(to_params(encoder, decoder)[k], v) for k, v in params.items())


def test_to_params_returns_copies():
    encoder, decoder = from_params(SMALL, init_params(SMALL, 0), dtype=torch.float64)
    params = to_params(encoder, decoder)
    params["mu.bias"][:] = 42.0
    assert not torch.any(encoder.mu.bias == 42.0)


def _dense(params, name, h):
    return h @ params[f"{name}.kernel"] + params[f"{name}.bias"]


@pytest.mark.parametrize("activation, act", [("relu", lambda v: np.maximum(v, 0.0)), ("tanh", np.tanh)])
def test_module_forward_is_x_kernel_plus_bias(activation, act, device):
    arch = Architecture(5, 3, (7, 4), (6,), activation, output_size=2)
    params = init_params(arch, 3)
    x = np.random.default_rng(0).standard_normal((4, 5))
    z = np.random.default_rng(1).standard_normal((4, 3))
    h = act(_dense(params, "encoder_dense_1", act(_dense(params, "encoder_dense_0", x))))
    x_hat = _dense(params, "decoder_output", act(_dense(params, "decoder_dense_0", z)))

    encoder, decoder = from_params(arch, params, dtype=torch.float64, device=device)
    with torch.no_grad():
        out = encoder(torch.as_tensor(x, device=device))
        x_hat_torch = decoder(torch.as_tensor(z, device=device))
    np.testing.assert_allclose(out["mu"].cpu().numpy(), _dense(params, "mu", h), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(out["log_var"].cpu().numpy(), _dense(params, "log_var", h), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(x_hat_torch.cpu().numpy(), x_hat, rtol=1e-13, atol=1e-15)


def test_from_params_builds_one_part_from_a_partial_mapping():
    params = init_params(SMALL, 0)
    encoder_only = {k: v for k, v in params.items() if k in SMALL.parameter_shapes("encoder")}
    encoder, decoder = from_params(SMALL, encoder_only, part="encoder")
    assert decoder is None and to_params(encoder).keys() == encoder_only.keys()
    with pytest.raises(ShapeError, match="decoder_output.kernel"):
        from_params(SMALL, encoder_only)  # part="all" needs the decoder too


def test_from_params_leaves_the_global_generator_alone():
    before = torch.random.get_rng_state()
    from_params(SMALL, init_params(SMALL, 0))
    assert torch.equal(torch.random.get_rng_state(), before)


def _broken(change):
    params = init_params(SMALL, 0)
    change(params)
    return params


@pytest.mark.parametrize("params, error, words", [
    (_broken(lambda p: p.pop("mu.bias")), ShapeError, ["missing", "mu.bias"]),
    (_broken(lambda p: p.update({"mu.kernel": np.zeros((3, 4))})), ShapeError, ["mu.kernel", "(4, 3)", "(3, 4)"]),
    (_broken(lambda p: p.update({"extra.bias": np.zeros(3)})), ShapeError, ["extra.bias"]),
    (_broken(lambda p: p["log_var.bias"].__setitem__(0, np.nan)), DomainError, ["log_var.bias", "finite"]),
    (_broken(lambda p: p.update({"mu.bias": np.zeros(3, dtype=np.int64)})), DTypeError, ["mu.bias"]),
    ([1, 2], DTypeError, ["params", "mapping"]),
])
def test_load_params_rejects_bad_mappings(params, error, words):
    encoder, decoder = build(5, 3, (7, 4), (6,), "tanh", key=0)
    with pytest.raises(error) as info:
        load_params(params, encoder, decoder)
    assert all(word in str(info.value) for word in words), str(info.value)


def test_load_params_checks_the_module_arguments():
    _, decoder = build(5, 3, (7, 4), (6,), "tanh", key=0)
    with pytest.raises(DTypeError, match="encoder"):
        load_params(init_params(SMALL, 0), encoder=decoder)
    with pytest.raises(ConfigError):
        load_params(init_params(SMALL, 0))
    with pytest.raises(ConfigError):
        to_params()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_modules_made_from_params_hold_them_on_the_device_and_draw_nothing(dtype):
    from vaespec.impl.vq_builder import make_layers
    from vaespec.spec.architecture import VQArchitecture
    from vaespec.spec.init import init_params

    arch, vq_arch = Architecture(5, 2, (4, 3), (3,)), VQArchitecture(5, 3, 4, (4,), (3,), "tanh", None)
    state = torch.random.get_rng_state()
    modules = [*from_params(arch, init_params(arch, 0), dtype),
               *make_layers(vq_arch, init_params(vq_arch, 1), dtype, "cpu", ("encoder", "decoder"))]
    assert torch.equal(state, torch.random.get_rng_state())  # no initialiser ran
    for module in modules:
        tensors = [*module.parameters(), *module.buffers()]
        assert tensors and all(t.device.type == "cpu" and t.dtype == dtype and t.requires_grad for t in tensors)
    params = {**init_params(arch, 0)}
    np.testing.assert_array_equal(to_params(*from_params(arch, params, torch.float64))["mu.kernel"],
                                  params["mu.kernel"])
