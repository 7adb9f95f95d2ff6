"""TorchBackend against the contract: structure, finite differences, float32 vs float64, dtype policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import TorchBackend, available_backends
from vaespec.spec.contract import FUNCTIONS, VAE_FUNCTIONS, VAEBackend, call
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.keys import Key, normal
from vaespec.spec.shapes import shape_of

from ._support import SMALL, contract_args, float32_tolerance

FUNCTION_NAMES = sorted(VAE_FUNCTIONS)  # the VQ and estimators chapters have their own backend tests


def _outputs(result) -> tuple[np.ndarray, ...]:
    return result if isinstance(result, tuple) else (result,)


def _cotangent(function: str, args: dict, seed: int = 5):
    """A random cotangent shaped like the function's output (a float for scalar outputs)."""
    if FUNCTIONS[function].scalar_output:
        return 1.3
    rng = np.random.default_rng(seed)
    shapes = [o.shape for o in _outputs(call(TorchBackend(), function, args))]
    arrays = tuple(rng.standard_normal(shape) for shape in shapes)
    return arrays if len(arrays) > 1 else arrays[0]


def _flat(gradients: dict) -> np.ndarray:
    parts = [np.ravel(v) for name in sorted(gradients) for v in
             ([gradients[name][k] for k in sorted(gradients[name])] if name == "params" else [gradients[name]])]
    return np.concatenate(parts)


def test_satisfies_the_protocol():
    backend = TorchBackend()
    assert isinstance(backend, VAEBackend)
    assert (backend.name, backend.device, backend.dtype) == ("torch", "cpu", "float64")
    assert TorchBackend("cpu", "float32").dtype == "float32"


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_outputs_are_float64_with_the_contract_shapes(function, device):
    args = contract_args(function)
    outputs = _outputs(call(TorchBackend(device), function, args))
    sizes = {"batch": 4, "latent": SMALL.latent_size, "output": SMALL.output_size}
    assert len(outputs) == len(FUNCTIONS[function].outputs)
    for out, spec in zip(outputs, FUNCTIONS[function].outputs):
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        assert out.shape == shape_of(spec.dims, sizes)


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_vjp_returns_a_gradient_per_differentiable_argument(function, device):
    args = contract_args(function)
    grads = TorchBackend(device).vjp(function, args, _cotangent(function, args))
    assert list(grads) == list(FUNCTIONS[function].differentiable)
    for name, grad in grads.items():
        expected = args[name]
        if name == "params":
            assert list(grad) == list(expected)
            assert all(grad[k].dtype == np.float64 and grad[k].shape == v.shape for k, v in expected.items())
        else:
            assert grad.dtype == np.float64 and grad.shape == expected.shape


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_vjp_matches_central_differences_in_float64(function):
    """⟨vjp(c), v⟩ = d/dh ⟨c, f(args + h·v)⟩ at h = 0, for a random direction v.

    SMALL uses tanh, so f is smooth. With h = 1e-5 the central difference is off by
    about h² (truncation) + 1e-16/h (rounding) ≈ 1e-10 relative, far inside 1e-7.
    """
    backend, args = TorchBackend(), contract_args(function)
    cotangent = _cotangent(function, args)
    rng = np.random.default_rng(8)
    direction = {name: ({k: rng.standard_normal(v.shape) for k, v in args[name].items()} if name == "params"
                        else rng.standard_normal(args[name].shape)) for name in FUNCTIONS[function].differentiable}

    def scalarised(h):
        moved = dict(args)
        for name, v in direction.items():
            moved[name] = {k: args[name][k] + h * v[k] for k in v} if name == "params" else args[name] + h * v
        cots = cotangent if isinstance(cotangent, tuple) else (cotangent,)
        return sum(np.sum(o * c) for o, c in zip(_outputs(call(backend, function, moved)), cots))

    h = 1e-5
    numeric = (scalarised(h) - scalarised(-h)) / (2 * h)
    analytic = float(_flat(backend.vjp(function, args, cotangent)) @ _flat(direction))
    assert analytic == pytest.approx(numeric, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("function", FUNCTION_NAMES)
def test_float32_is_close_to_float64(function, device):
    args = contract_args(function)
    tolerance = float32_tolerance(SMALL)
    b64, b32 = TorchBackend(device, "float64"), TorchBackend(device, "float32")
    for out64, out32 in zip(_outputs(call(b64, function, args)), _outputs(call(b32, function, args))):
        assert np.max(np.abs(out32 - out64)) <= tolerance * np.max(np.abs(out64))
    cotangent = _cotangent(function, args)
    g64, g32 = _flat(b64.vjp(function, args, cotangent)), _flat(b32.vjp(function, args, cotangent))
    # The vjp adds a backward pass (dot products over the fan-outs, weight gradients over the
    # batch), comparable in length to the forward one for SMALL; the bound is doubled for it.
    assert np.max(np.abs(g32 - g64)) <= 2 * tolerance * np.max(np.abs(g64))


def test_unused_parameters_get_zero_gradients():
    args = contract_args("decode")
    args["params"] = contract_args("forward")["params"]  # the whole layout, encoder included
    grads = TorchBackend().vjp("decode", args, _cotangent("decode", args))["params"]
    assert set(grads) == set(SMALL.parameter_shapes())
    assert all(not np.any(grads[k]) for k in SMALL.parameter_shapes("encoder"))
    assert all(np.any(grads[k]) for k in SMALL.parameter_shapes("decoder"))


def test_vjp_rejects_a_misshapen_cotangent():
    args = contract_args("encode")
    with pytest.raises(ShapeError, match="cotangent"):
        TorchBackend().vjp("encode", args, (np.ones((4, 3)), np.ones((4, 2))))
    with pytest.raises(ShapeError, match="cotangent"):
        TorchBackend().vjp("decode", contract_args("decode"), np.ones((4, 3)))


def test_reparameterize_key_equals_explicit_noise(device):
    args = contract_args("reparameterize")
    z, new_key = TorchBackend(device).reparameterize_key(args["mu"], args["log_var"], Key(4))
    eps, expected_key = normal(Key(4), args["mu"].shape)
    np.testing.assert_array_equal(z, TorchBackend(device).reparameterize(args["mu"], args["log_var"], eps))
    assert new_key == expected_key


def test_generate_is_decode_of_the_noise():
    args = contract_args("generate")
    backend = TorchBackend()
    np.testing.assert_array_equal(backend.generate(SMALL, args["params"], args["eps"]),
                                  backend.decode(SMALL, args["params"], args["eps"]))


def test_bfloat16_runs_and_returns_float64():
    args = contract_args("loss")
    value = call(TorchBackend("cpu", "bfloat16"), "loss", args)
    assert value.dtype == np.float64 and value.shape == () and np.isfinite(value)


def test_available_backends_default_to_float64_and_float32():
    backends = available_backends()
    cuda = ["cuda"] if torch.cuda.is_available() else []
    assert [(b.device, b.dtype) for b in backends] == [(d, t) for d in ["cpu", *cuda] for t in ("float64", "float32")]


def test_available_backends_on_explicit_dtypes():
    assert [b.dtype for b in available_backends(["cpu"], ["bfloat16"])] == ["bfloat16"]
    with pytest.raises(ConfigError, match="float16"):
        available_backends(["cpu"], ["float16"])  # float16 is CUDA-only
    with pytest.raises(ConfigError, match="int8"):
        available_backends(dtypes=["int8"])


@pytest.mark.parametrize("device, dtype", [("cpu", "float16"), ("cpu", torch.int32), ("nonsense", "float64")])
def test_unsupported_backends_are_config_errors(device, dtype):
    with pytest.raises(ConfigError):
        TorchBackend(device, dtype)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_request_without_cuda_is_a_config_error():
    with pytest.raises(ConfigError, match="CUDA"):
        TorchBackend("cuda")
    with pytest.raises(ConfigError, match="CUDA"):
        available_backends(devices=["cuda"])


def test_device_attribute_is_the_device_name(device):
    assert TorchBackend(device).device == device
