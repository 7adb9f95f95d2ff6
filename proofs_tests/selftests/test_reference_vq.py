"""The float64 reference of the VQ chapter: its VJPs against central differences, small cases
worked by hand, and its errors.

**Finite differences of stop-gradient formulas.** The VQ gradients are not derivatives of the
functions' values: `quantize`'s value e_k has derivative 0 in z_e, yet the straight-through
gradient passes z̄_q to z_e. What the VJPs differentiate is the spec's formula with every
`sg(·)` held constant. So each check differentiates that *surrogate*: the function with its
stopped operands evaluated once, at the base point, and its live operands at x ± hv:

    quantize         z_e′ + (e_k − z_e)               (e_k, z_e at the base)
    codebook_loss    mean (z_e − e′_k)²               (z_e at the base)
    commitment_loss  mean (z_e′ − e_k)²               (codebook at the base)
    vq_forward       decode′(vq_encode′(x′) + (e_k − z_e))
    vq_loss          R(vq_forward surrogate, x′) + codebook_loss(z_e, C′) + w · commitment_loss(z_e′, C)

and at the base the surrogate equals the reference's value (checked, within the policy's bound).
The method, steps and tolerance are `test_reference_gradients`'s (exact steps on a power-of-two
grid, h = u^(1/3), RTOL = 10⁻⁶ relative to the size of the terms), with smooth activations only.

**Code choices.** Each check runs at given `indices` (any codes, not only the nearest: the
reference is then smooth in every argument) and at the reference's own choice. In the second
case the surrogate's reference calls choose again at x ± hv, so those points are drawn with a
clear margin between the nearest and the runner-up code (10⁻³ relative, against a change of
~10⁻⁴ relative that a step can make), where the choice cannot flip.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.proofs_tests.strategies import vq as strategies_vq
from vaespec.reference import REFERENCE, ReferenceBackend, losses, magnitude, vae, vjp, vq, vq_network
from vaespec.reference.init import init_codebook, init_params
from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError
from vaespec.spec.keys import key, normal, randint
from vaespec.spec.tolerances import bound, chain_length, reduction_length, vq_chain_length
from vaespec.spec.vq import VQBackend

from .finite_differences import SMOOTH, direction
from .finite_differences import directional_check as directional_check_at

VJP_FUNCTIONS = ("vq_encode", "quantize", "codebook_loss", "commitment_loss", "vq_forward", "vq_loss")
NETWORK = ("vq_encode", "vq_forward", "vq_loss")
MARGIN = 1e-3


# ----------------------------------------------------------------------------- finite differences
def _args(function, example, indices):
    args = {a.name: example.args[a.name] for a in FUNCTIONS[function].args}
    return args if indices is None else {**args, "indices": indices}


def _encoding(args):
    return vq_network.vq_encode(args["arch"], args["params"], args["x"]) if "x" in args else args["z_e"]


def _margin(z_e, codebook) -> float:
    """min over rows of (runner-up − nearest distance) / (1 + runner-up); ∞ for one code."""
    if codebook.shape[0] < 2:
        return np.inf
    z_e = z_e.reshape(-1, z_e.shape[-1])  # [batch, *positions, D] as its vectors
    d = np.sort(((z_e[:, None, :] - codebook[None]) ** 2).sum(axis=2), axis=1)
    return float(np.min((d[:, 1] - d[:, 0]) / (1.0 + d[:, 1])))


def _surrogate(function, base):
    """`function` with its stopped operands fixed at `base`: a map from a point to the output."""
    idx = base.get("indices")
    if function == "vq_encode":
        return lambda p: vq_network.vq_encode(p["arch"], p["params"], p["x"])
    if function == "codebook_loss":
        return lambda p: vq.codebook_loss(base["z_e"], p["codebook"], indices=idx)
    if function == "commitment_loss":
        return lambda p: vq.commitment_loss(p["z_e"], base["codebook"], indices=idx)
    z_e0 = _encoding(base)
    z_q0 = vq.quantize(z_e0, base["codebook"], indices=idx)[0]
    if function == "quantize":
        return lambda p: p["z_e"] + (z_q0 - z_e0)

    def x_hat(p):
        return vae.decode(p["arch"], p["params"], vq_network.vq_encode(p["arch"], p["params"], p["x"]) + (z_q0 - z_e0))

    if function == "vq_forward":
        return x_hat
    return lambda p: (losses.reconstruction_loss(x_hat(p), p["x"], p["convention"])
                      + vq.codebook_loss(z_e0, p["codebook"], indices=idx)
                      + p["commitment_weight"] * vq.commitment_loss(_encoding(p), base["codebook"], indices=idx))


def _float_magnitude(function, args):
    m = magnitude(function, args)
    return m[0] if isinstance(m, tuple) else m


def _policy_bound(function, args):
    if function in NETWORK:
        return bound("float64", *chain_length(function, args["arch"], args["x"].shape[0]))
    z_e = args["z_e"]  # [batch, *positions, D]: the chain counts its N = z_e.size / D vectors
    return bound("float64", *vq_chain_length(function, z_e.size // z_e.shape[-1], z_e.shape[-1],
                                             args["codebook"].shape[0]))


def directional_check(function: str, args, cotangent, seed: int):
    """(fd, ⟨vjp, v⟩, tolerance) for one random direction v over every differentiable argument."""
    step = direction(args, FUNCTIONS[function].differentiable, seed)
    base = step.base
    f = _surrogate(function, base)
    k = None if function == "vq_encode" else vq.quantize(_encoding(base), base["codebook"],
                                                          indices=base.get("indices"))[1]

    def at_choice(point):  # magnitudes at the base's code choice
        return point if k is None else {**point, "indices": k}

    tol_value = _policy_bound(function, base).tolerance(_float_magnitude(function, at_choice(base)))
    difference = np.abs(np.asarray(f(base)) - call_reference(function, base))
    assert np.all(difference <= tol_value), f"{function}: the surrogate differs from the function at the base"
    return directional_check_at(step, f, vjp(function, base, cotangent), cotangent,
                                lambda point: _float_magnitude(function, at_choice(point)))


def call_reference(function, args):
    """The reference's float output of `function` at `args` (conditioned on `args["indices"]` if present)."""
    positional = [args[a.name] for a in FUNCTIONS[function].args]
    if function == "vq_encode":
        return vq_network.vq_encode(*positional)
    out = REFERENCE[function].forward(*positional, indices=args.get("indices"))
    return out[0] if isinstance(out, tuple) else out


def _smooth_examples(function):
    """Examples in a smooth activation; z_e and indices with positions except for the network functions, whose
    z_e = vq_encode(x) is [batch, embedding] (so given indices are [batch])."""
    arch = st.tuples(strategies_vq.vq_architectures(), st.sampled_from(SMOOTH)).map(
        lambda pair: dataclasses.replace(pair[0], activation=pair[1]))
    axes = 0 if function in NETWORK else strategies_vq.MAX_POSITION_AXES
    return arch.flatmap(lambda a: strategies_vq.vq_examples(arch=a, max_position_axes=axes))


@pytest.mark.parametrize("function, conditioned", [
    pytest.param(f, c, id=f"{f}-{'given-indices' if c else 'own-choice'}")
    for f in VJP_FUNCTIONS for c in (True, False) if not (c and f == "vq_encode")])  # vq_encode chooses nothing
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences_of_the_stop_gradient_formula(function, conditioned, data):
    example = data.draw(_smooth_examples(function), label="example")
    args = _args(function, example, example.args["indices"] if conditioned else None)
    if not conditioned and function != "vq_encode":
        assume(_margin(_encoding(args), args["codebook"]) > MARGIN)
    cotangent = data.draw(strategies.cotangents(function, call_reference(function, args)), label="cotangent")
    seed = data.draw(st.integers(0, 2**32 - 1), label="direction seed")
    fd, dot, tolerance = directional_check(function, args, cotangent, seed)
    assert abs(fd - dot) <= tolerance, (
        f"{function}: ⟨vjp, v⟩ = {dot!r} but the central difference gives {fd!r}; "
        f"|difference| = {abs(fd - dot):.3e} > tolerance {tolerance:.3e}")


def _control_args():
    arch = VQArchitecture(input_size=3, embedding_dim=2, num_embeddings=3, encoder_sizes=(4,), decoder_sizes=(5,),
                          activation="tanh")
    rng = np.random.default_rng(3)
    return {"arch": arch, "params": init_params(arch, 1), "codebook": init_codebook(3, 2, 5),
            "x": rng.standard_normal((4, 3)), "z_e": rng.standard_normal((4, 2)), "commitment_weight": 0.25,
            "convention": "elbo"}


def _edifice_codebook_loss(args, cotangent=1.0):
    # Edifice's bug: the straight-through output fed to the codebook loss sends its gradient to the encoder.
    right = vq.codebook_loss_vjp(args, cotangent)
    return {"z_e": -right["codebook"][vq.nearest_code(args["z_e"], args["codebook"])],
            "codebook": 0 * right["codebook"]}


def _no_straight_through(args, cotangent):
    right = vq.quantize_vjp(args, cotangent)
    return {"z_e": 0 * right["z_e"], "codebook": right["codebook"]}


@pytest.mark.parametrize("function, wrong", [("codebook_loss", _edifice_codebook_loss),
                                             ("quantize", _no_straight_through)])
def test_directional_check_detects_a_wrong_gradient(monkeypatch, function, wrong):
    a = _control_args()
    args = {n.name: a[n.name] for n in FUNCTIONS[function].args}
    ct = 1.0 if function != "quantize" else np.random.default_rng(0).standard_normal((4, 2))
    fd, dot, tolerance = directional_check(function, args, ct, seed=11)
    assert abs(fd - dot) <= tolerance
    monkeypatch.setitem(REFERENCE, function, dataclasses.replace(REFERENCE[function], vjp=wrong))
    fd, dot, tolerance = directional_check(function, args, ct, seed=11)
    assert abs(fd - dot) > tolerance


# ----------------------------------------------------------------------------- worked by hand
C2 = np.array([[0.0, 0.0], [2.0, 0.0]])
Z3 = np.array([[0.5, 0.0], [1.5, 1.0], [1.0, 0.0]])  # nearest 0; nearest 1; equidistant (tie → 0)


def test_two_code_codebook_by_hand():
    # Every value below is a short sum of dyadic numbers: exact in float64.
    assert vq.squared_distances(Z3, C2).tolist() == [[0.25, 2.25], [3.25, 1.25], [1.0, 1.0]]
    z_q, k = vq.quantize(Z3, C2)
    assert k.dtype == np.int64 and k.tolist() == [0, 1, 0]
    assert z_q.tolist() == [[0.0, 0.0], [2.0, 0.0], [0.0, 0.0]]
    # (0.25 + 0) + (0.25 + 1) + (1 + 0) = 2.5 over B·D = 6.
    assert float(vq.codebook_loss(Z3, C2)) == pytest.approx(2.5 / 6, rel=4 * 2.0**-53)
    assert float(vq.commitment_loss(Z3, C2)) == pytest.approx(2.5 / 6, rel=4 * 2.0**-53)
    # d/dz_e = 2/6 (z_e − e_k); the codebook gets minus its per-code sums.
    g_commit = vq.commitment_loss_vjp({"z_e": Z3, "codebook": C2}, 1.0)
    np.testing.assert_allclose(g_commit["z_e"], [[1 / 6, 0.0], [-1 / 6, 1 / 3], [1 / 3, 0.0]], rtol=4 * 2.0**-53)
    assert not g_commit["codebook"].any()
    g_cb = vq.codebook_loss_vjp({"z_e": Z3, "codebook": C2}, 1.0)
    np.testing.assert_allclose(g_cb["codebook"], [[-0.5, 0.0], [1 / 6, -1 / 3]], rtol=4 * 2.0**-53)
    assert not g_cb["z_e"].any()
    ct = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.25]])
    g_q = vq.quantize_vjp({"z_e": Z3, "codebook": C2}, ct)
    assert g_q["z_e"].tolist() == ct.tolist() and not g_q["codebook"].any()  # straight-through, exactly


def test_given_indices_condition_every_choice():
    k = np.array([1, 1, 1])
    assert vq.quantize(Z3, C2, indices=k)[0].tolist() == [[2.0, 0.0]] * 3
    # (2.25 + 0) + (0.25 + 1) + (1 + 0) = 4.5 over 6.
    assert float(vq.codebook_loss(Z3, C2, indices=k)) == pytest.approx(0.75, rel=4 * 2.0**-53)
    assert float(vq.commitment_loss(Z3, C2, indices=k)) == pytest.approx(0.75, rel=4 * 2.0**-53)


def test_exact_ties_go_to_the_lowest_index():
    codebook = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    z_e = np.array([[1.0, 1.0], [0.0, 0.0], [0.5, 0.5], [0.0, 0.25]])
    assert vq.nearest_code(z_e, codebook).tolist() == [0, 1, 0, 1]
    assert vq.quantize(z_e, codebook)[1].tolist() == [0, 1, 0, 1]


def test_distances_are_direct_differences():
    # Large, close z and e: the expanded form ‖z‖² − 2z·e + ‖e‖² loses every digit here (≈ 10⁸ vs 10⁻⁸).
    z = np.array([[1e4, 1e4 + 1e-4]])
    e = np.array([[1e4, 1e4], [1e4 + 1e-3, 1e4]])
    d = vq.squared_distances(z, e)
    expected = [(1e4 + 1e-4 - 1e4) ** 2, (1e4 - (1e4 + 1e-3)) ** 2 + (1e4 + 1e-4 - 1e4) ** 2]
    np.testing.assert_allclose(d[0], expected, rtol=8 * 2.0**-53)
    assert vq.nearest_code(z, e).tolist() == [0]


def test_ema_with_decay_zero_is_a_kmeans_step_and_unused_codes_keep_their_rows():
    codebook = np.array([[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]])
    z_e = np.array([[1.0, 0.0], [0.0, 1.0], [9.0, 12.0], [11.0, 9.0]])
    stale_counts, stale_sums = np.array([7.0, 0.5, 3.0]), np.full((3, 2), 4.0)  # decay 0 forgets them
    new, counts, sums, step = vq.ema_update(codebook, stale_counts, stale_sums, 5, z_e, 0.0, 0.0, True)
    assert new.tolist() == [[0.5, 0.5], [10.0, 10.5], [-10.0, 5.0]]  # code 2 unused: unchanged
    assert counts.tolist() == [2.0, 2.0, 0.0]
    assert sums.tolist() == [[1.0, 1.0], [20.0, 21.0], [0.0, 0.0]]
    assert step == 6 and isinstance(step, int)


@settings(max_examples=50, deadline=None)
@given(example=strategies_vq.vq_examples(), fresh=st.booleans())
def test_ema_first_step_or_decay_zero_is_a_kmeans_step(example, fresh):
    a = example.args
    codebook, z_e = a["codebook"], a["z_e"]
    counts, sums, step, decay = ((np.zeros_like(a["ema_counts"]), np.zeros_like(a["ema_sums"]), 0, a["decay"])
                                 if fresh else (a["ema_counts"], a["ema_sums"], a["ema_step"], 0.0))
    new, _, _, _ = vq.ema_update(codebook, counts, sums, step, z_e, decay, 0.0, True, indices=a["indices"])
    expected = codebook.copy()
    for code in range(codebook.shape[0]):  # the k-means step, written out
        members = z_e[a["indices"] == code]
        if len(members):
            expected[code] = members.mean(axis=0)
    args = {"codebook": codebook, "ema_counts": counts, "ema_sums": sums, "ema_step": step, "z_e": z_e,
            "decay": decay, "epsilon": 0.0, "training": True, "indices": a["indices"]}
    vectors = z_e.size // z_e.shape[-1]  # z_e [batch, *positions, D]: N vectors
    n = vq_chain_length("ema_update", vectors, z_e.shape[-1], codebook.shape[0])
    # The test's mean is itself a float64 sum of N vectors and a division: add its own bound.
    tol = bound("float64", *n).tolerance(magnitude("ema_update", args)[0]) + \
        bound("float64", vectors + 1).tolerance(np.abs(expected) + np.abs(codebook))
    assert np.all(np.abs(new - expected) <= tol), f"EMA step {new} differs from the k-means step {expected}"


def test_ema_eval_mode_returns_the_state_unchanged_and_inputs_are_never_mutated():
    codebook = init_codebook(4, 3, 7)
    z_e = normal(key(1), (5, 3))[0]
    counts, sums = np.array([1.0, 2.0, 0.0, 3.0]), normal(key(2), (4, 3))[0]
    saved = [codebook.copy(), counts.copy(), sums.copy(), z_e.copy()]
    out = vq.ema_update(codebook, counts, sums, 9, z_e, 0.99, 1e-5, False)
    for got, want in zip(out[:3], (codebook, counts, sums)):
        assert got is not want and np.array_equal(got, want)
    assert out[3] == 9
    vq.ema_update(codebook, counts, sums, 9, z_e, 0.99, 1e-5, True)
    for now, before in zip((codebook, counts, sums, z_e), saved):
        assert np.array_equal(now, before)


def test_ema_debiases_and_smooths_by_the_formula():
    # One code, one step from zero with γ = 0.5, ε = 0.5 and two codes: by hand.
    codebook = np.array([[0.0], [100.0]])
    z_e = np.array([[1.0], [3.0]])  # both nearest code 0
    new, counts, sums, step = vq.ema_update(codebook, np.zeros(2), np.zeros((2, 1)), 0, z_e, 0.5, 0.5, True)
    # counts′ = [1, 0], sums′ = [[2], [0]]; debias 1 − 0.5 = 0.5 ⇒ N̂ = [2, 0], Ŝ = [[4], [0]];
    # Ñ = (N̂ + 0.5)/(2 + 1)·2 = [5/3, 1/3]; e′ = [4/(5/3), 0/(1/3)] = [2.4, 0].
    assert counts.tolist() == [1.0, 0.0] and sums.tolist() == [[2.0], [0.0]] and step == 1
    np.testing.assert_allclose(new, [[2.4], [0.0]], rtol=8 * 2.0**-53, atol=0)


def test_laplace_smoothing_by_hand_keeps_the_total():
    counts = np.array([3.0, 0.0, 1.0])
    smoothed = vq.laplace_smooth(counts, 1.0)  # (N + 1)/(4 + 3)·4
    np.testing.assert_allclose(smoothed, [16 / 7, 4 / 7, 8 / 7], rtol=8 * 2.0**-53)
    assert np.all(smoothed > 0)
    tol = bound("float64", *vq_chain_length("laplace_smooth", 1, 1, 3)).tolerance(
        np.sum(magnitude("laplace_smooth", {"counts": counts, "epsilon": 1.0})))
    assert abs(smoothed.sum() - 4.0) <= tol
    assert vq.laplace_smooth(counts, 0.0).tolist() == counts.tolist()  # ε = 0: (N/ΣN)·ΣN, exact for these


@pytest.mark.parametrize("indices, codes, perplexity, dead", [
    (np.array([2, 2, 2, 2]), 5, 1.0, 4),
    (np.array([0, 1, 2, 0, 1, 2]), 3, 3.0, 0),
    (np.array([0, 1, 2, 3]), 4, 4.0, 0),
    (np.array([0, 0, 1, 1]), 4, 2.0, 2),
])
def test_codebook_health_by_hand(indices, codes, perplexity, dead):
    usage, p, d = vq.codebook_health(indices, codes)
    assert usage.dtype == np.int64 and usage.sum() == indices.size and d == dead
    assert usage.tolist() == [int(np.sum(indices == k)) for k in range(codes)]
    tol = bound("float64", *reduction_length(codes)).tolerance(
        magnitude("codebook_health", {"indices": indices, "num_embeddings": codes})[1])
    assert abs(float(p) - perplexity) <= tol
    if perplexity == 1.0:
        assert float(p) == 1.0  # −1·log 1 = 0 exactly


def test_reset_dead_codes_is_deterministic_and_keeps_live_rows():
    codebook = init_codebook(6, 3, 0)
    z_e = normal(key(4), (5, 3))[0]
    usage = np.array([2, 0, 1, 0, 0, 2])
    first, k1 = vq.reset_dead_codes(codebook, usage, z_e, 123)
    second, k2 = vq.reset_dead_codes(codebook, usage, z_e, key(123))
    assert np.array_equal(first, second) and k1 == k2
    live = usage > 0
    assert np.array_equal(first[live], codebook[live])
    j, expected_key = randint(key(123), 5, (3,))  # the spec's draw: dead rows 1, 3, 5 in order
    assert np.array_equal(first[~live], z_e[j]) and k1 == expected_key


def test_reset_without_dead_codes_copies_and_advances_the_key():
    codebook = init_codebook(3, 2, 0)
    z_e = normal(key(4), (2, 2))[0]
    new, new_key = vq.reset_dead_codes(codebook, np.array([1, 1, 3]), z_e, 8)
    assert new is not codebook and np.array_equal(new, codebook)
    assert new_key == randint(key(8), 2, (0,))[1] and new_key != key(8)


def test_init_codebook_is_normal_from_the_key_with_edifice_default():
    assert np.array_equal(init_codebook(4, 3), normal(key(42), (4, 3))[0])
    assert np.array_equal(init_codebook(4, 3, 7), normal(key(7), (4, 3))[0])
    assert not np.array_equal(init_codebook(4, 3, 7), init_codebook(4, 3, 8))


def test_reference_backend_serves_both_chapters():
    backend = ReferenceBackend()
    assert {"vae", "vq"} <= set(backend.chapters) and isinstance(backend, VQBackend)
    missing = [f for f, spec in FUNCTIONS.items() if spec.chapter in ("vae", "vq") and not hasattr(backend, f)]
    assert not missing
    assert backend.quantize(Z3, C2)[1].tolist() == [0, 1, 0]
    assert backend.vjp("commitment_loss", {"z_e": Z3, "codebook": C2}, 1.0)["z_e"].shape == Z3.shape


# ----------------------------------------------------------------------------- errors
_Z = np.array([[0.5, 0.0], [1.5, 1.0], [1.0, 0.0]])
_Z_NAN = np.array([[0.5, np.nan], [1.5, 1.0], [1.0, 0.0]])
_STATE = (np.zeros(2), np.zeros((2, 2)), 0)
_ARCH = VQArchitecture(input_size=3, embedding_dim=2, num_embeddings=3, encoder_sizes=(), decoder_sizes=())

ERRORS = [
    ("codebook dimension mismatch", lambda: vq.quantize(_Z, np.zeros((4, 3))), ShapeError, "codebook"),
    ("empty codebook", lambda: vq.quantize(_Z, np.zeros((0, 2))), ShapeError, "codebook"),
    ("NaN in z_e", lambda: vq.codebook_loss(_Z_NAN, C2), DomainError, "z_e"),
    ("NaN in z_e (distances)", lambda: vq.squared_distances(_Z_NAN, C2), DomainError, "z_e"),
    ("indices out of range", lambda: vq.commitment_loss(_Z, C2, indices=np.array([0, 2, 1])), DomainError, "indices"),
    ("negative index", lambda: vq.quantize(_Z, C2, indices=np.array([0, -1, 1])), DomainError, "indices"),
    ("float indices", lambda: vq.quantize(_Z, C2, indices=np.array([0.0, 1.0, 1.0])), DTypeError, "indices"),
    ("indices of another batch", lambda: vq.codebook_loss(_Z, C2, indices=np.array([0, 1])), ShapeError, "indices"),
    ("decay = 1", lambda: vq.ema_update(C2, *_STATE, _Z, 1.0, 1e-5, True), DomainError, "decay"),
    ("negative epsilon", lambda: vq.ema_update(C2, *_STATE, _Z, 0.9, -1.0, True), DomainError, "epsilon"),
    ("negative ema_counts", lambda: vq.ema_update(C2, np.array([-1.0, 0.0]), np.zeros((2, 2)), 0, _Z, 0.9, 0.0,
                                                  True), DomainError, "ema_counts"),
    ("negative ema_step", lambda: vq.ema_update(C2, np.zeros(2), np.zeros((2, 2)), -1, _Z, 0.9, 0.0, True),
     DomainError, "ema_step"),
    ("training not a bool", lambda: vq.ema_update(C2, *_STATE, _Z, 0.9, 0.0, "yes"), DTypeError, "training"),
    ("EMA indices out of range", lambda: vq.ema_update(C2, *_STATE, _Z, 0.9, 0.0, False, indices=np.array([0, 1, 2])),
     DomainError, "indices"),
    ("laplace of zero counts", lambda: vq.laplace_smooth(np.zeros(3), 1e-5), DomainError, "counts"),
    ("health index ≥ K", lambda: vq.codebook_health(np.array([0, 4]), 4), DomainError, "indices"),
    ("negative usage", lambda: vq.reset_dead_codes(C2, np.array([1, -1]), _Z, 0), DomainError, "usage"),
    ("init_codebook without rows", lambda: init_codebook(0, 2), ConfigError, "num_embeddings"),
    ("quantize cotangent shape", lambda: vjp("quantize", {"z_e": _Z, "codebook": C2}, np.zeros((3, 3))), ShapeError,
     "d_z_q"),
    ("codebook rows ≠ num_embeddings", lambda: vq_network.vq_forward(_ARCH, init_params(_ARCH, 0), init_codebook(4, 2),
                                                             np.zeros((2, 3))), ShapeError, "codebook"),
    ("vjp indices out of range",
     lambda: vjp("codebook_loss", {"z_e": _Z, "codebook": C2, "indices": np.array([0, 0, 5])}, 1.0),
     DomainError, "indices"),
]


@pytest.mark.parametrize("case, thunk, error, argument", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_a_vaespec_error_naming_the_argument(case, thunk, error, argument):
    with pytest.raises(error) as raised:
        thunk()
    message = str(raised.value)
    # Names the argument first, states the expectation ("expected …" or "must be …") and what was given.
    assert message.startswith(argument) and ("expected" in message or "must" in message) and "got" in message, message
