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
from vaespec.reference import quantizers_lfq as lfq_losses
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


def _f(function, base):
    """What the VJP differentiates: the forward, or a straight-through function's declared surrogate (its
    stop-gradients' operands evaluated at `base`)."""
    surrogate = REGISTERED[function].surrogate
    if surrogate is not None:
        return lambda args: surrogate(args, base)
    return lambda args: _floats(function, call(REFERENCE, function, args))


def fd_ratio(function, args, cotangent, seed) -> float:
    """|central difference − ⟨vjp, v⟩| ÷ its tolerance along a random direction (≤ 1 passes)."""
    step = direction(args, FUNCTIONS[function].differentiable, seed)
    grads = vjp(function, step.base, cotangent)
    fd, dot, tolerance = directional_check(step, _f(function, step.base), grads, cotangent,
                                           lambda p: _floats(function, magnitude(function, p)))
    return abs(fd - dot) / tolerance if tolerance > 0 else (0.0 if fd == dot else np.inf)


@pytest.mark.parametrize("function", DIFFERENTIABLE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    args = {a.name: v for a, v in zip(FUNCTIONS[function].args, data.draw(examples_for(function)).args.values())}
    value = _f(function, args)(args)
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


def test_lfq_closed_forms():
    z_q, indices = ref.lfq_quantize(np.array([[0.0, -0.0, 1e-300], [2.0, -1.0, 0.5]]))
    assert z_q.tolist() == [[-1.0, -1.0, 1.0], [1.0, -1.0, 1.0]]  # z > 0 ↦ +1, 0 and −0 ↦ −1
    assert indices.tolist() == [1, 5]  # coordinate 0 the most significant bit: [+, −, +] = 0b101
    assert ref.lfq_indices_to_codes(np.array([5, 0]), 3).tolist() == [[1, -1, 1], [-1, -1, -1]]
    per_sample, codebook, loss = lfq_losses.lfq_entropy_loss(np.zeros((2, 3)), 100.0, 1.0)
    assert per_sample == pytest.approx(3 * np.log(2), rel=1e-15) and codebook == pytest.approx(3 * np.log(2))
    assert loss == pytest.approx(0.0, abs=1e-15)
    # Two confident rows on different codes: per-sample entropy ≈ 0, codebook entropy ≈ log 2.
    per_sample, codebook, _ = lfq_losses.lfq_entropy_loss(np.array([[3.0], [-3.0]]), 100.0, 1.0)
    assert per_sample < 1e-200 and codebook == pytest.approx(np.log(2), rel=1e-15)
    assert lfq_losses.lfq_commitment_loss(np.array([[0.0, 2.0]])) == pytest.approx(1.0)  # (0 + 1)², (2 − 1)²


def test_chains_at_chosen_sizes():
    """The chapter's declared rounding chains at written-out sizes (the chains docs/quantizers.md states)."""
    def chain(function, vjp=False, **sizes):
        return FUNCTIONS[function].chain_at(sizes, vjp=vjp)

    assert chain("fsq_bound", batch=4, dim=3) == (6, 6) and chain("fsq_bound", True, batch=4, dim=3) == (10, 10)
    assert chain("fsq_quantize", batch=4, dim=3) == (3, 3) and chain("fsq_quantize", True, batch=4, dim=3) == (11, 11)
    assert chain("lfq_quantize", batch=4, dim=3) == (2, 2)
    assert chain("lfq_entropy_loss", batch=4, dim=3) == (2 * 8 + 4 + 3 + 16, 16)
    assert chain("lfq_entropy_loss", True, batch=4, dim=3) == (2 * 8 + 4 + 3 + 16 + 2 * 8 + 8, 24)
    assert chain("lfq_commitment_loss", batch=4, dim=3) == (16, 5)
    assert chain("rvq_quantize", batch=4, stages=3, codes=5, embedding=2) == (5, 5)
    assert chain("rvq_commitment_loss", batch=4, stages=3, codes=5, embedding=2) == (16, 8)
    assert chain("rvq_ema_update", batch=4, stages=3, codes=5, embedding=2) == (4 + 5 + 3 + 10, 13)
    assert chain("rvq_ema_update", **{"batch": 2, "*positions": (3, 2)}, stages=3, codes=5, embedding=2) == (30, 13)


# ----------------------------------------------------------------------------- positions
def test_a_positioned_input_is_its_rows_in_every_function():
    """z [B, *positions, D]: each function equals its [N, D] form on z.reshape(N, D), reshaped (the statement)."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 3, 2, 3)) * 2
    rows, levels, books = z.reshape(-1, 3), np.array([3, 4, 5]), rng.normal(size=(3, 4, 3))
    for function, args in (("fsq_quantize", (levels,)), ("fsq_indices", (levels,)), ("lfq_quantize", ()),
                           ("lfq_entropy_loss", (1.5, 0.7)), ("lfq_commitment_loss", ()),
                           ("rvq_quantize", (books, 2)), ("rvq_commitment_loss", (books, 3)),
                           ("rvq_codebook_loss", (books, 2))):
        got, want = getattr(REFERENCE, function)(z, *args), getattr(REFERENCE, function)(rows, *args)
        for (_, g), (_, w) in zip(leaves(got), leaves(want)):
            np.testing.assert_array_equal(np.asarray(g).reshape(np.shape(w)), w, err_msg=function)
    state = _ema_state(rng, books)
    for training in (True, False):  # the EMA update counts every vector: the same state from both shapes
        got, want = (REFERENCE.rvq_ema_update(*state[:4], x, 2, 0.9, 1e-5, training) for x in (z, rows))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14, err_msg=f"rvq_ema_update {training}")
    indices = rng.integers(0, 60, (2, 3))
    np.testing.assert_array_equal(REFERENCE.fsq_indices_to_codes(indices, levels),
                                  REFERENCE.fsq_indices_to_codes(indices.reshape(-1), levels).reshape(2, 3, 3))


def _ema_state(rng, books):
    """A running EMA state for `books` [S, K, D]: (books, counts, sums, steps)."""
    counts = rng.uniform(0.5, 3.0, books.shape[:2])
    return books, counts, counts[..., None] * rng.normal(size=books.shape), np.arange(books.shape[0])


def test_rvq_ema_update_is_the_vq_chapters_update_per_stage_and_keeps_the_rest():
    """Stage s < n: reference.vq.ema_update on r_s at k_s; stages ≥ n, and all in eval mode, returned as given."""
    from vaespec.reference import quantizers_rvq as ref_rvq
    from vaespec.reference import vq as ref_vq

    rng = np.random.default_rng(7)
    z, books = rng.normal(size=(5, 2)), rng.normal(size=(3, 4, 2))
    state = _ema_state(rng, books)
    out = REFERENCE.rvq_ema_update(*state, z, 2, 0.9, 1e-5, True)
    k, _, r = ref_rvq.stages(z, books, 2)
    for s in range(2):
        stage = ref_vq.ema_update(books[s], state[1][s], state[2][s], int(state[3][s]), r[s], 0.9, 1e-5, True,
                                  indices=k[:, s])
        for got, want in zip(out, stage):
            np.testing.assert_array_equal(got[s], want)
    for got, before in zip(out, state):
        np.testing.assert_array_equal(got[2:], before[2:])
    for got, before in zip(REFERENCE.rvq_ema_update(*state, z, 3, 0.9, 1e-5, False), state):
        np.testing.assert_array_equal(got, before)
    assert out[3].dtype == np.int64 and out[3].tolist() == [1, 2, 2]


@pytest.mark.parametrize("name", ["RVQCodebookLossSumOverPositions", "RVQEMAFirstPositionOnly"])
def test_the_rvq_learning_positions_controls_are_right_on_rows(name):
    """As below, for the codebook loss's and the EMA update's positions controls."""
    from vaespec.proofs_tests.controls.quantizers import CONTROLS

    control, rng = CONTROLS[name](), np.random.default_rng(8)
    z, books = rng.normal(size=(4, 3)), rng.normal(size=(2, 3, 3))
    calls = {"rvq_codebook_loss": (z, books, 2), "rvq_ema_update": (*_ema_state(rng, books), z, 2, 0.9, 1e-5, True)}
    for function, args in calls.items():
        for g, w in zip(leaves(getattr(control, function)(*args)), leaves(getattr(REFERENCE, function)(*args))):
            np.testing.assert_array_equal(g[1], w[1], err_msg=f"{name}.{function}")


@pytest.mark.parametrize("name", ["FSQIndicesSumOverAxisOne", "LFQCodebookEntropyFirstPosition",
                                  "RVQCommitmentSumOverPositions"])
def test_the_positions_controls_are_right_on_rows(name):
    """Each positions control's bug shows only with positions: on [batch, dim] it is the reference exactly, so
    only its `*_positions_eq_rows` law can reject it."""
    from vaespec.proofs_tests.controls.quantizers import CONTROLS

    control, rng = CONTROLS[name](), np.random.default_rng(6)
    z, levels, books = rng.normal(size=(4, 3)), np.array([3, 4, 5]), rng.normal(size=(2, 3, 3))
    for function, args in (("fsq_indices", (levels,)), ("lfq_entropy_loss", (1.5, 0.7)),
                           ("rvq_commitment_loss", (books, 2))):
        got, want = getattr(control, function)(z, *args), getattr(REFERENCE, function)(z, *args)
        for (_, g), (_, w) in zip(leaves(got), leaves(want)):
            np.testing.assert_array_equal(g, w, err_msg=f"{name}.{function}")
