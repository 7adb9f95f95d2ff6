"""Spatial and sequence VQ: z_e [batch, *positions, embedding] is its N = batch·∏positions vectors.

- the [batch, embedding] case (positions = ()) is bitwise what it was before positions existed: a digest
  of the reference's outputs computed at commit 6254184 (before this change) on seeded inputs;
- the reference and Torch give bitwise the same results on [B, H, W, D] as on its rows [N, D];
- the five spatial negative controls are right on [B, D] (so only the positions laws can see them); each is
  rejected by its named law in `test_negative_controls.py`;
- the tie law sees ties at every position: its control passes on [B, D] draws and fails at a tied position;
- a channels-first z_e is refused naming the argument and the channels-last shape.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings

from vaespec.proofs_tests.controls import vq as controls
from vaespec.proofs_tests.laws import vq as laws_vq
from vaespec.proofs_tests.laws.compare import LawViolation
from vaespec.proofs_tests.strategies import vq as strategies_vq
from vaespec.proofs_tests.strategies.vae import Example
from vaespec.reference import vq as ref
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.errors import ShapeError

# sha256 of the outputs below, computed by the code of commit 6254184 (z_e [B, D] only, before positions).
BEFORE_POSITIONS = "d50ceb0b0c73f6000e3f8a41e5369eac4874e2d42f2c486026ab79c009eb6df5"


def _digest() -> str:
    h = hashlib.sha256()

    def put(x):
        if isinstance(x, (tuple, list)):
            for v in x:
                put(v)
        elif isinstance(x, dict):
            for k in sorted(x):
                put(x[k])
        else:
            h.update(np.asarray(x if not hasattr(x, "state") else repr(x)).tobytes())

    backend = ReferenceBackend()
    for seed in range(12):
        rng = np.random.default_rng(seed)
        b, d, k = int(rng.integers(1, 9)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
        z, c = rng.standard_normal((b, d)), rng.standard_normal((k, d))
        put(ref.quantize(z, c))
        put(ref.codebook_loss(z, c))
        put(ref.commitment_loss(z, c))
        put(backend.vjp("codebook_loss", {"z_e": z, "codebook": c}, 1.0))
        put(backend.vjp("commitment_loss", {"z_e": z, "codebook": c}, 0.5))
        put(ref.ema_update(c, np.abs(rng.standard_normal(k)), rng.standard_normal((k, d)), 3, z, 0.9, 1e-5, True))
        indices = rng.integers(0, k, b)
        put(ref.codebook_health(indices, k))
        put(ref.reset_dead_codes(c, np.bincount(indices, minlength=k), z, seed)[0])
    return h.hexdigest()


def test_batch_embedding_is_bitwise_as_before_positions():
    assert _digest() == BEFORE_POSITIONS


def _backends():
    from vaespec.impl.backend import TorchBackend

    return [ReferenceBackend(), TorchBackend(dtype="float64"), TorchBackend(dtype="float32")]


def _image(seed: int = 0):
    rng = np.random.default_rng(seed)
    codebook = rng.standard_normal((5, 3))
    return rng.standard_normal((2, 3, 4, 3)), codebook


@pytest.mark.parametrize("impl", _backends(), ids=lambda b: b.name + "/" + b.dtype)
def test_positions_are_bitwise_their_rows(impl):
    backend = impl
    z_e, codebook = _image()
    rows = z_e.reshape(-1, 3)
    z_q, indices = backend.quantize(z_e, codebook)
    z_q_rows, indices_rows = backend.quantize(rows, codebook)
    assert indices.shape == (2, 3, 4) and z_q.shape == z_e.shape
    np.testing.assert_array_equal(indices.reshape(-1), indices_rows)
    np.testing.assert_array_equal(z_q.reshape(-1, 3), z_q_rows)
    for function in ("codebook_loss", "commitment_loss"):
        assert getattr(backend, function)(z_e, codebook) == getattr(backend, function)(rows, codebook)
        grads = backend.vjp(function, {"z_e": z_e, "codebook": codebook}, 1.0)
        grads_rows = backend.vjp(function, {"z_e": rows, "codebook": codebook}, 1.0)
        np.testing.assert_array_equal(grads["z_e"].reshape(-1, 3), grads_rows["z_e"])
        np.testing.assert_array_equal(grads["codebook"], grads_rows["codebook"])
    state = (codebook, np.ones(5), codebook.copy(), 2)
    for a, b in zip(backend.ema_update(*state, z_e, 0.9, 1e-5, True),
                    backend.ema_update(*state, rows, 0.9, 1e-5, True)):
        np.testing.assert_array_equal(a, b)
    health, health_rows = backend.codebook_health(indices, 5), backend.codebook_health(indices.reshape(-1), 5)
    np.testing.assert_array_equal(health[0], health_rows[0])
    assert float(health[1]) == float(health_rows[1]) and int(health[2]) == int(health_rows[2])
    assert int(np.sum(health[0])) == 24  # every position counted
    usage = np.array([1, 0, 2, 0, 0])
    np.testing.assert_array_equal(backend.reset_dead_codes(codebook, usage, z_e, 7)[0],
                                  backend.reset_dead_codes(codebook, usage, rows, 7)[0])


def test_aux_loss_is_a_mean_over_every_entry():
    z_e, codebook = _image(1)
    _, k = ref.quantize(z_e, codebook)
    expected = np.sum((z_e - codebook[k]) ** 2) / (2 * 3 * 4 * 3)  # batch × H × W × embedding
    assert float(ref.codebook_loss(z_e, codebook)) == pytest.approx(expected, rel=1e-15)


SPATIAL_CONTROLS = ("ChannelsFirstQuantize", "AuxLossOverBatchOnly", "EMACountsFirstPositionOnly", "UsageOverFirstAxis",
                    "TiesToLastIndexAtPositions")


@pytest.mark.parametrize("name", SPATIAL_CONTROLS)
def test_spatial_control_is_right_without_positions(name):
    control, reference = controls.CONTROLS[name](), ReferenceBackend()
    rng = np.random.default_rng(3)
    z_e, codebook = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    state = (codebook, np.ones(4), codebook.copy(), 1, z_e, 0.9, 1e-5, True)
    for call in (lambda b: b.quantize(z_e, codebook), lambda b: b.codebook_loss(z_e, codebook),
                 lambda b: b.commitment_loss(z_e, codebook), lambda b: b.ema_update(*state),
                 lambda b: b.codebook_health(np.array([0, 1, 1, 3]), 4),
                 lambda b: b.vjp("codebook_loss", {"z_e": z_e, "codebook": codebook}, 1.0)):
        got, want = call(control), call(reference)
        for g, w in zip(got if isinstance(got, (tuple, dict)) else (got,), want if isinstance(want, (tuple, dict))
                        else (want,)):
            g, w = (got[g], want[w]) if isinstance(got, dict) else (g, w)
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))

# Each is rejected by its named law in test_negative_controls.py (every control there, these included).


@given(strategies_vq.tie_examples(max_position_axes=0))
@settings(max_examples=100, deadline=None, derandomize=True)
def test_tie_control_escapes_the_law_on_rows(example):
    """Drawing [B, D] only (the tie law before it drew positions), TiesToLastIndexAtPositions passes."""
    assert laws_vq.quantize_ties_to_lowest_index(controls.TiesToLastIndexAtPositions(), example, None) == 0.0


def test_tie_law_names_the_tied_position():
    """A tie at z_e[0, 1, 2] only (positions 2 × 3): the reference holds, the control fails there."""
    codebook = np.array([[0.0, 1.0], [2.0, 2.0], [0.0, 1.0]])  # rows 0 and 2 tied
    z_e = np.full((1, 2, 3, 2), 2.0)  # nearest: the untied row 1
    z_e[0, 1, 2] = [0.0, 1.0]
    example = Example({"z_e": z_e, "codebook": codebook}, {"positions": (2, 3)})
    assert laws_vq.quantize_ties_to_lowest_index(ReferenceBackend(), example, None) == 0.0
    with pytest.raises(LawViolation, match=r"z_e\[0, 1, 2\] is equally near codes \[0, 2\]; expected the lowest, 0, "
                                           r"got 2"):
        laws_vq.quantize_ties_to_lowest_index(controls.TiesToLastIndexAtPositions(), example, None)


def test_channels_first_z_e_is_named_with_the_channels_last_shape():
    _, codebook = _image()  # D = 3
    channels_first = np.moveaxis(np.random.default_rng(0).standard_normal((2, 4, 5, 3)), -1, 1)  # [2, 3, 4, 5]
    with pytest.raises(ShapeError,
                       match=r"z_e.*channels-first.*\[batch, \*positions, embedding\].*moveaxis\(z_e, 1, -1\)"):
        ref.quantize(channels_first, codebook)
    from vaespec.impl.backend import TorchBackend

    with pytest.raises(ShapeError, match=r"z_e.*channels-first.*movedim\(1, -1\)"):
        TorchBackend().quantize(channels_first, codebook)
    with pytest.raises(ShapeError, match=r"z_e.*channels-first"):  # the codebook checked first (ema_update's order)
        ref.ema_update(codebook, np.ones(5), codebook.copy(), 0, channels_first)
