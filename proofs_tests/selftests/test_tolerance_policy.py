"""The tolerance machinery itself: magnitudes bound what they scale, constants are what
they claim, rounding matches the hardware types, the narrow dtypes' floor is the error
model's, and the domains' magnitudes bound the reference's. (Chapter: spec/tolerances.py;
the VQ and estimators chapters test their own magnitudes.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vaespec.proofs_tests.laws.compare import leaves, round_to
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.reference import ACTIVATION_FUNCTIONS, magnitude, vjp, vjp_magnitude
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import VAE_FUNCTIONS, call
from vaespec.spec.domains import MAX_FINITE, magnitudes
from vaespec.spec.tolerances import SAFETY, TINY, UNIT_ROUNDOFF, bound, chain_length, gamma, statistical_z

from .finite_differences import elementwise_derivative

REFERENCE = ReferenceBackend()


def _args(function, example):
    return {a.name: example.args[a.name] for a in VAE_FUNCTIONS[function].args}


@pytest.mark.parametrize("function", sorted(VAE_FUNCTIONS))
@given(data=st.data())
def test_magnitude_bounds_value(function, data):
    """M ≥ |f|: a magnitude below the value would make the tolerance tighter than roundoff."""
    args = _args(function, data.draw(strategies.examples_for(function)))
    values, mags = dict(leaves(call(REFERENCE, function, args))), dict(leaves(magnitude(function, args)))
    for path, value in values.items():
        assert np.all(mags[path] >= np.abs(value) * (1 - 1e-12)), (function, path, value, mags[path])


@pytest.mark.parametrize("function", sorted(VAE_FUNCTIONS))
@given(data=st.data())
def test_vjp_magnitude_bounds_gradient(function, data):
    args = _args(function, data.draw(strategies.examples_for(function)))
    cotangent = data.draw(strategies.cotangents(function, call(REFERENCE, function, args)))
    grads, mags = dict(leaves(vjp(function, args, cotangent))), dict(leaves(vjp_magnitude(function, args, cotangent)))
    assert grads.keys() == mags.keys()
    for path, grad in grads.items():
        assert np.all(mags[path] >= np.abs(grad) * (1 - 1e-12)), (function, path, grad, mags[path])


@pytest.mark.parametrize("name", sorted(ACTIVATION_FUNCTIONS))
def test_curvature_bounds_second_derivative(name):
    act = ACTIVATION_FUNCTIONS[name]
    y, h = np.linspace(-10, 10, 40001), 1e-4
    second = np.abs(elementwise_derivative(act.derivative, y, h))
    smooth = np.abs(y) > 10 * h  # relu, leaky_relu and elu have a jump in act' or act'' at 0
    assert np.max(second[smooth]) <= act.curvature * (1 + 1e-6) + 1e-9, (name, np.max(second[smooth]))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_round_to_matches_torch(dtype):
    # float32-representable inputs: torch converts float64 → float16 through float32 (two
    # roundings), numpy rounds once; on float32 values both round once and must agree.
    values = (np.random.default_rng(0).standard_normal(10_000) * np.logspace(-3, 3, 10_000)).astype(np.float32)
    values = values.astype(np.float64)
    expected = torch.as_tensor(values).to(getattr(torch, dtype)).to(torch.float64).numpy()
    np.testing.assert_array_equal(round_to(dtype, values), expected)


def test_bound_grows_with_length_and_roundoff():
    assert gamma(10, UNIT_ROUNDOFF["float32"]) == pytest.approx(10 * 2.0**-24, rel=1e-6)
    assert bound("float32", 100).rel > bound("float32", 10).rel > bound("float64", 10).rel
    assert bound("bfloat16", 100, 10).rel > bound("float32", 100).rel


def test_statistical_z_matches_normal_tail():
    # one check at 1e-6 two-sided: Φ⁻¹(1 − 5e-7) = 4.8916…
    assert statistical_z(1) == pytest.approx(4.891638, abs=1e-5)
    assert statistical_z(1000) > statistical_z(10)


def test_narrow_floor_counts_op_results_at_the_narrow_threshold():
    """Only the n_ops results rounded to the narrow type can underflow at its threshold; the n float32
    accumulations underflow at float32's. At the default architecture's forward (n = 1600, 22 ops) the
    float16 floor is 5.4e-3 (it was SAFETY·n·TINY[float16] = 0.39, larger than most outputs)."""
    from vaespec.spec.architecture import Architecture
    n, ops = chain_length("forward", Architecture(input_size=784), 64)
    assert (n, ops) == (1600, 22)
    f16 = bound("float16", n, ops)
    assert f16.floor == SAFETY * (ops * TINY["float16"] + n * TINY["float32"])
    assert f16.floor < 0.01
    assert bound("bfloat16", n, ops).floor == SAFETY * (ops + n) * TINY["float32"]  # same threshold
    assert bound("float32", n, ops).floor == SAFETY * n * TINY["float32"]


@pytest.mark.parametrize("function", ["reparameterize", "kl_divergence", "reconstruction_loss"])
@given(data=st.data())
def test_domain_magnitude_bounds_the_values(function, data):
    """The domain (spec/domains.py) is where the magnitude is representable, so the spec's magnitude must
    bound the value and, for the losses, the reference's magnitude summed before any mean."""
    args = _args(function, data.draw(strategies.examples_for(function)))
    spec_m = np.asarray(magnitudes(function, args))
    value = np.abs(call(REFERENCE, function, args))
    if function != "reparameterize":  # the losses: every term summed, under the "sum" convention
        value = np.asarray(magnitude(function, {**args, "convention": "sum"}))
    assert np.all(spec_m >= value * (1 - 1e-12))
    assert np.all(spec_m <= MAX_FINITE["float64"])


def test_tolerances_page_tables_are_generated_from_the_policy():
    """docs/tolerances.md's tables are `docs_tolerances.render()`: regenerate with
    `python -m vaespec.proofs_tests.docs_tolerances` when the policy changes."""
    from vaespec.proofs_tests import docs_tolerances
    if not docs_tolerances.TARGET.is_file():
        pytest.skip("no docs folder: installed without the source tree")
    text = docs_tolerances.TARGET.read_text(encoding="utf-8")
    assert docs_tolerances.updated(text) == text, \
        "docs/tolerances.md is stale; run python -m vaespec.proofs_tests.docs_tolerances"
    assert "| `loss_vjp` |" in text and "| `float16` |" in text
