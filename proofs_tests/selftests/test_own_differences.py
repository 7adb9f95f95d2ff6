"""`network_gradients_eq_own_finite_differences` (proofs_tests/laws/own_differences.py): its exact steps, its step
size and n/a reasons from the policy, its kink gate, and its verdicts on backends in every dtype. The controls it
names are rejected in test_negative_controls and test_owned_networks."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption

from vaespec.impl.adapters import NetworkBackend
from vaespec.proofs_tests.check.runner import not_applicable, run_law
from vaespec.proofs_tests.controls.own_networks import TinyVAE
from vaespec.proofs_tests.laws import declared
from vaespec.proofs_tests.laws.own_differences import FD_FUNCTIONS, LAW, check_own_differences, on_grid
from vaespec.reference import init_params
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec import tolerances as policy
from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError

NARROW_FLOAT = {"float32": np.float32, "float64": np.float64}


def test_the_law_covers_every_network_function_with_a_vjp_and_runs_on_own_networks():
    assert set(FD_FUNCTIONS) == {"encode", "decode", "sample_latent", "forward", "generate", "loss"}
    assert FD_FUNCTIONS[0] == "loss"
    assert LAW in declared.OWN_NETWORK_LAWS


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(("float32", "float64")), st.floats(-30.0, 30.0))
def test_steps_are_exact_in_the_dtype(seed, dtype, scale):
    """θ ± s and θ ± s/2 are representable in the backend's dtype, and θ is exactly their midpoint."""
    rng = np.random.default_rng(seed)
    value = rng.standard_normal((3, 4)) * 10.0**(scale / 10)
    raw = rng.uniform(-1, 1, value.shape) * np.max(np.abs(value))
    base, step = on_grid(value, raw, 0.036, 24 if dtype == "float32" else 53)
    kind = NARROW_FLOAT[dtype]
    for point in (base, base + step, base - step, base + step / 2, base - step / 2):
        assert np.array_equal(point.astype(kind).astype(np.float64), point)
    assert np.array_equal(((base + step) + (base - step)) / 2, base)
    assert np.max(np.abs(step - 0.036 * raw)) <= 2.0**-20 * np.max(np.abs(value) + np.abs(raw))


def test_step_and_dtypes_come_from_the_policy():
    b32 = policy.bound("float32", 64, 16)
    assert policy.finite_difference_step("float32", 64, 16) == pytest.approx(np.cbrt(3 * b32.rel))
    assert 0.03 < policy.finite_difference_step("float32", 64, 16) < 0.04
    assert policy.finite_difference_unsound("float32") is None and policy.finite_difference_unsound("float64") is None
    for dtype, rel in (("bfloat16", "0.27"), ("float16", "0.032")):
        reason = policy.finite_difference_unsound(dtype)
        assert reason.startswith(f"central differences cannot resolve a gradient in {dtype}")
        assert f"rel = {rel}" in reason
    with pytest.raises(ConfigError, match="dtype"):
        policy.finite_difference_unsound("float8")
    with pytest.raises(ConfigError, match="dtype"):
        policy.finite_difference_step("float8", 64)


def test_na_in_narrow_dtypes_naming_the_numbers():
    backend = NetworkBackend(TinyVAE(), (2, 6), 2, dtype="bfloat16")
    result = not_applicable(LAW, backend)
    assert result is not None and result.verdict == "n/a"
    assert result.message == policy.finite_difference_unsound("bfloat16")
    # float16 (not on the CPU): the declared reason of any backend computing in it
    assert declared.not_applicable(LAW, types.SimpleNamespace(dtype="float16")) == \
        policy.finite_difference_unsound("float16")
    assert declared.not_applicable(LAW, NetworkBackend(TinyVAE(), (2, 6), 2, dtype="float32")) is None


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")  # reject() outside @given
def test_a_kink_at_theta_is_not_judged():
    """relu at a pre-activation of exactly 0: every quotient along v straddles it (Δ⁴ ∝ t), at h, h/4 and h/16, so
    the example is rejected rather than judged (the VJP takes relu′(0) = 0, the quotient ½)."""
    arch = Architecture(input_size=1, latent_size=1, encoder_sizes=(1,), decoder_sizes=(), activation="relu")
    params = init_params(arch, 0)
    params["encoder_dense_0.kernel"], params["encoder_dense_0.bias"] = np.array([[0.5]]), np.array([-0.5])
    params["mu.kernel"] = np.array([[1.0]])
    args = {"arch": arch, "params": params, "x": np.array([[1.0]])}
    cotangent = (np.array([[1.0]]), np.array([[0.0]]))
    with pytest.raises(UnsatisfiedAssumption):
        check_own_differences(ReferenceBackend(), "encode", args, cotangent, seed=0)
    moved = {**args, "x": np.array([[1.5]])}  # away from the kink the same example is judged, and holds
    assert 0.0 <= check_own_differences(ReferenceBackend(), "encode", moved, cotangent, seed=0) < 1.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_holds_on_an_own_network(dtype):
    result = run_law(LAW, NetworkBackend(TinyVAE(), (2, 6), 2, dtype=dtype), settings(settings(), max_examples=15))
    assert result.verdict == "pass" and result.examples > 0, result.message
