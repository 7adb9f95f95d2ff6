"""The quantizers chapter's float64 reference: every hand-written VJP against central differences
(`selftests.finite_differences`), the magnitudes bound the values and gradients, and closed forms at chosen
points. A function with a straight-through gradient is differentiated through the surrogate its reference entry
declares (`ReferenceFunction.surrogate`): the function whose derivative the straight-through estimator passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.laws.compare import leaves
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.proofs_tests.strategies.chapters import examples_for
from vaespec.reference import REFERENCE as REGISTERED
from vaespec.reference import magnitude, vjp, vjp_magnitude
from vaespec.reference import quantizers as ref
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS, call

from .finite_differences import direction, directional_check

CHAPTER = sorted(f for f, spec in FUNCTIONS.items() if spec.chapter == "quantizers")
DIFFERENTIABLE = [f for f in CHAPTER if FUNCTIONS[f].differentiable]
REFERENCE = ReferenceBackend()



def _floats(function, value):
    outputs = FUNCTIONS[function].outputs
    values = value if len(outputs) > 1 else (value,)
    floats = tuple(v for o, v in zip(outputs, values) if o.kind == "float")
    return floats[0] if len(floats) == 1 else floats


def _f(function):
    """What the VJP differentiates: the forward, or a straight-through function's declared surrogate."""
    surrogate = REGISTERED[function].surrogate
    if surrogate is not None:
        return surrogate
    return lambda args: _floats(function, call(REFERENCE, function, args))


def fd_ratio(function, args, cotangent, seed) -> float:
    """|central difference − ⟨vjp, v⟩| ÷ its tolerance along a random direction (≤ 1 passes)."""
    step = direction(args, FUNCTIONS[function].differentiable, seed)
    fd, dot, tolerance = directional_check(step, _f(function), vjp(function, step.base, cotangent), cotangent,
                                           lambda p: _floats(function, magnitude(function, p)))
    return abs(fd - dot) / tolerance if tolerance > 0 else (0.0 if fd == dot else np.inf)


@pytest.mark.parametrize("function", DIFFERENTIABLE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    args = {a.name: v for a, v in zip(FUNCTIONS[function].args, data.draw(examples_for(function)).args.values())}
    value = _f(function)(args)
    cotangent = data.draw(strategies.cotangents(function, value))
    ratio = fd_ratio(function, args, cotangent, data.draw(st.integers(0, 2**32 - 1)))
    assert ratio <= 1.0, f"{function}: the central difference and ⟨vjp, v⟩ differ by {ratio:.3g}× the tolerance"


@pytest.mark.parametrize("function", DIFFERENTIABLE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_magnitudes_bound_values_and_gradients(function, data):
    """M ≥ |f| and M̄ ≥ |ḡ|: a magnitude below the value would make a tolerance tighter than roundoff."""
    args = dict(data.draw(examples_for(function)).args)
    value = _floats(function, call(REFERENCE, function, args))
    for (path, m), (_, v) in zip(leaves(_floats(function, magnitude(function, args))), leaves(value)):
        assert np.all(m >= np.abs(v) * (1 - 1e-12)), (function, path)
    cotangent = data.draw(strategies.cotangents(function, value))
    grads, mags = dict(leaves(vjp(function, args, cotangent))), dict(leaves(vjp_magnitude(function, args, cotangent)))
    assert grads.keys() == mags.keys()
    for path, grad in grads.items():
        assert np.all(mags[path] >= np.abs(grad) * (1 - 1e-12)), (function, path)


def test_fsq_bound_closed_forms():
    levels = np.array([2, 3, 4, 5, 8])
    zero = ref.fsq_bound(np.zeros((1, 5)), levels)
    assert np.max(np.abs(zero)) < 1e-15  # atanh's shift: bound(0) = 0
    big = ref.fsq_bound(np.array([[-40.0] * 5, [40.0] * 5]), levels)
    half_l = (levels - 1) * 1.001 / 2
    offset = np.array([0.5, 0.0, 0.5, 0.0, 0.5])
    assert np.allclose(big, [-half_l - offset, half_l - offset], rtol=0, atol=1e-15)
    assert np.array_equal(np.round(big), [[-1, -1, -2, -2, -4], [0, 1, 1, 2, 3]])  # L levels: −⌊L/2⌋ … ⌈L/2⌉−1
