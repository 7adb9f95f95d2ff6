"""TorchBackend's VQ chapter: the protocol, output types, finite differences, and fixed examples against the
float64 reference (`vaespec.reference.vq`) within the tolerance policy, at the backend's own code choices."""

from __future__ import annotations

import numpy as np
import pytest

from vaespec.impl import TorchBackend
from vaespec.proofs_tests.check.backends import check_backend
from vaespec.proofs_tests.laws.checking_vq import (
    backend_choices,
    judge_choices,
    reference,
    reference_vjp,
    unambiguous,
)
from vaespec.proofs_tests.laws.compare import assert_within, round_to
from vaespec.proofs_tests.laws.tolerance import tolerance as suite_tolerance
from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.contract import call
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError
from vaespec.spec.init import init_params
from vaespec.spec.keys import Key
from vaespec.spec.shapes import shape_of
from vaespec.spec.vq import FUNCTIONS, VQBackend

ARCH = VQArchitecture(input_size=5, embedding_dim=3, num_embeddings=7, encoder_sizes=(6, 4), decoder_sizes=(4,),
                      activation="tanh")
NAMES = sorted(FUNCTIONS)
DIFFERENTIABLE = sorted(name for name, spec in FUNCTIONS.items() if spec.differentiable)
BATCH = 6


def vq_args(function: str, seed: int = 0) -> dict:
    """Contract arguments of VQ `function`: standard normal arrays, init params, fixed scalars."""
    rng = np.random.default_rng(seed)
    sizes = {"batch": BATCH, "input": ARCH.input_size, "embedding": ARCH.embedding_dim,
             "codes": ARCH.num_embeddings}
    fixed = {"arch": ARCH, "params": init_params(ARCH, seed), "convention": "elbo", "commitment_weight": 0.25,
             "num_embeddings": ARCH.num_embeddings, "embedding_dim": ARCH.embedding_dim, "key": Key(seed + 1),
             "ema_step": 3, "decay": 0.9, "epsilon": 1e-3, "training": True,
             "indices": rng.integers(0, ARCH.num_embeddings, BATCH), "usage": np.array([2, 0, 1, 0, 3, 0, 0])}
    args = {}
    for arg in FUNCTIONS[function].args:
        if arg.kind == "array":
            value = rng.standard_normal(shape_of(arg.dims, sizes))
            args[arg.name] = np.abs(value) if arg.low == 0.0 else value  # counts are ≥ 0
        else:
            args[arg.name] = fixed[arg.name]
    return args


def _outputs(result):
    return result if isinstance(result, tuple) else (result,)


def _cotangent(function: str, args: dict, seed: int = 5):
    if FUNCTIONS[function].scalar_output:
        return 1.3
    shape = _outputs(call(TorchBackend(), function, args))[0].shape
    return np.random.default_rng(seed).standard_normal(shape)


def test_satisfies_the_vq_protocol():
    backend = TorchBackend()
    assert isinstance(backend, VQBackend) and {"vae", "vq"} <= set(backend.chapters)
    assert check_backend(backend) is backend


@pytest.mark.parametrize("function", NAMES)
def test_outputs_have_the_contract_kinds_and_shapes(function, device):
    args = vq_args(function)
    outputs = _outputs(call(TorchBackend(device), function, args))
    sizes = {"batch": BATCH, "embedding": 3, "codes": 7, "output": 5}
    assert len(outputs) == len(FUNCTIONS[function].outputs)
    for out, spec in zip(outputs, FUNCTIONS[function].outputs):
        if spec.kind == "key":
            assert isinstance(out, Key)
        elif spec.kind == "int" and not spec.dims:
            assert isinstance(out, int)
        else:
            assert isinstance(out, np.ndarray) and out.shape == shape_of(spec.dims, sizes)
            assert out.dtype == (np.int64 if spec.kind == "int" else np.float64)


# Where the surrogate gradient is the true derivative: the straight-through estimator and the
# stop-gradients replace it elsewhere (z_e's gradient through z_q, z_e in the codebook loss, …).
# `None` moves every name; a tuple moves the arguments, or the parameters whose name starts with one.
TRUE_DERIVATIVE = {"vq_encode": None, "codebook_loss": ("codebook",), "commitment_loss": ("z_e",),
                   "vq_forward": ("decoder",), "vq_loss": ("decoder",)}


@pytest.mark.parametrize("function", sorted(TRUE_DERIVATIVE))
def test_vjp_matches_central_differences_where_it_is_the_derivative(function):
    """⟨vjp(c), v⟩ = d/dh ⟨c, f(args + h·v)⟩ for directions v along which f is differentiable and the
    contract's gradient is the true one; the code choices must not change within ±h.

    The architecture uses tanh, so f is smooth between choice changes; h = 1e-6 gives a central
    difference off by ~h² + 1e-16/h ≈ 1e-10 relative, inside 1e-7.
    """
    backend, args = TorchBackend(), vq_args(function)
    cotangent = _cotangent(function, args)
    rng = np.random.default_rng(8)
    moved_names = TRUE_DERIVATIVE[function]

    def moves(name: str) -> bool:
        return moved_names is None or any(name.startswith(m) for m in moved_names)

    direction = {n: ({k: rng.standard_normal(v.shape) * moves(k) for k, v in args[n].items()} if n == "params"
                     else rng.standard_normal(args[n].shape) * moves(n)) for n in FUNCTIONS[function].differentiable}
    assert any(np.any(v) for d in direction.values() for v in (d.values() if isinstance(d, dict) else [d]))

    def at(h):
        out = dict(args)
        for n, v in direction.items():
            out[n] = {k: args[n][k] + h * v[k] for k in v} if n == "params" else args[n] + h * v
        return _outputs(call(backend, function, out))

    h = 1e-6
    plus, minus, here = at(h), at(-h), at(0.0)
    if len(here) > 1:  # the index output: the same choices on both sides, or the difference is meaningless
        assert np.array_equal(plus[1], here[1]) and np.array_equal(minus[1], here[1])
    numeric = float(np.sum((plus[0] - minus[0]) * cotangent)) / (2 * h)
    grads = backend.vjp(function, args, cotangent)
    analytic = 0.0
    for n, d in direction.items():
        pairs = [(grads[n][k], d[k]) for k in d] if n == "params" else [(grads[n], d)]
        analytic += sum(float(np.sum(g * v)) for g, v in pairs)
    assert analytic == pytest.approx(numeric, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_fixed_examples_match_the_reference(function, dtype, seed, device):
    """The reference at the backend's own (judged) choices, within the policy's bound for `dtype`."""
    backend = TorchBackend(device, dtype)
    args = round_to(dtype, vq_args(function, seed))
    indices = backend_choices(backend, function, args, ctx=function)
    if indices is not None:  # these examples are clear-cut: the choice must be the reference's own
        z_e = backend.vq_encode(args["arch"], args["params"], args["x"]) if "x" in args else args["z_e"]
        assert unambiguous(dtype, z_e, args["codebook"]).all()
    actual = call(backend, function, args)
    expected = reference(function, args, indices)
    if function in ("init_codebook", "reset_dead_codes"):  # copies of draws: exact once rounded to the dtype
        assert np.array_equal(actual[0] if function == "reset_dead_codes" else actual,
                              round_to(dtype, expected[0] if function == "reset_dead_codes" else expected))
        if function == "reset_dead_codes":
            assert actual[1] == expected[1]
        return
    if function == "codebook_health":
        assert np.array_equal(actual[0], expected[0]) and actual[2] == expected[2]
        assert actual[1] == pytest.approx(float(expected[1]), rel=64 * np.finfo(dtype).eps)
        return
    floats = [i for i, o in enumerate(FUNCTIONS[function].outputs) if o.kind == "float"]
    tolerance = _outputs(suite_tolerance(dtype, function, args, indices=indices))
    for i in floats:
        assert_within(function, _outputs(actual)[i], _outputs(expected)[i], tolerance[i])
    for i in set(range(len(_outputs(actual)))) - set(floats):
        assert np.array_equal(_outputs(actual)[i], _outputs(expected)[i])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("function", DIFFERENTIABLE)
def test_fixed_example_gradients_match_the_reference(function, dtype, device):
    backend = TorchBackend(device, dtype)
    args = round_to(dtype, vq_args(function, 2))
    indices = backend_choices(backend, function, args, ctx=function)
    cotangent = round_to(dtype, _cotangent(function, args))
    actual = backend.vjp(function, args, cotangent)
    expected = reference_vjp(function, args, cotangent, indices)
    assert_within(f"{function} vjp", actual, expected,
                  suite_tolerance(dtype, function, args, cotangent=cotangent, indices=indices))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_quantize_vjp_is_straight_through(dtype, device):
    args = vq_args("quantize")
    cotangent = round_to(dtype, np.random.default_rng(3).standard_normal((BATCH, 3)))
    grads = TorchBackend(device, dtype).vjp("quantize", args, cotangent)
    assert np.array_equal(grads["z_e"], cotangent) and not np.any(grads["codebook"])
    fwd = TorchBackend(device, dtype).vjp("vq_forward", vq_args("vq_forward"), _cotangent("vq_forward",
                                                                                          vq_args("vq_forward")))
    assert not np.any(fwd["codebook"])  # the decoder's gradient reaches the encoder, not the codebook
    loss = TorchBackend(device, dtype).vjp("vq_loss", vq_args("vq_loss"), 1.0)
    assert np.any(loss["codebook"])  # the codebook learns from the codebook loss


def test_choices_are_judged_by_the_criterion():
    """The helper the fixed examples rely on does reject a wrong choice (negative control)."""
    args = vq_args("quantize")
    _, good = TorchBackend().quantize(args["z_e"], args["codebook"])
    judge_choices("quantize", "float64", args["z_e"], args["codebook"], good, "")
    with pytest.raises(AssertionError, match="near-tie bound"):
        judge_choices("quantize", "float64", args["z_e"], args["codebook"], (good + 1) % 7, "")


def test_ema_update_eval_mode_returns_the_state_and_train_mode_advances_it(device):
    args = vq_args("ema_update")
    backend = TorchBackend(device)
    codebook, counts, sums, step = backend.ema_update(*{**args, "training": False}.values())
    assert step == 3 and np.array_equal(codebook, args["codebook"]) and np.array_equal(counts, args["ema_counts"])
    assert np.array_equal(sums, args["ema_sums"])
    codebook, counts, sums, step = backend.ema_update(*args.values())
    assert step == 4 and not np.array_equal(codebook, args["codebook"])


@pytest.mark.parametrize(("function", "change", "error", "named"), [
    ("quantize", {"codebook": np.zeros((7, 2))}, ShapeError, "codebook"),
    ("vq_forward", {"codebook": np.zeros((8, 3))}, ShapeError, "codebook"),
    ("ema_update", {"decay": 1.0}, DomainError, "decay"),
    ("ema_update", {"training": 1}, DTypeError, "training"),
    ("ema_update", {"ema_step": -1}, DomainError, "ema_step"),
    ("codebook_health", {"indices": np.array([0, 7])}, DomainError, "indices"),
    ("codebook_health", {"indices": np.array([0.0, 1.0])}, DTypeError, "indices"),
    ("laplace_smooth", {"counts": np.zeros(7)}, DomainError, "counts"),
    ("vq_loss", {"commitment_weight": -1.0}, DomainError, "commitment_weight"),
    ("init_codebook", {"num_embeddings": 0}, ConfigError, "num_embeddings"),
    ("reset_dead_codes", {"usage": np.array([1, 0, -1, 0, 0, 0, 0])}, DomainError, "usage"),
])
def test_bad_arguments_are_named_at_the_boundary(function, change, error, named):
    with pytest.raises(error, match=named):
        call(TorchBackend(), function, {**vq_args(function), **change})


def test_vjp_rejects_a_misshapen_cotangent():
    with pytest.raises(ShapeError, match="cotangent"):
        TorchBackend().vjp("quantize", vq_args("quantize"), np.zeros((BATCH, 2)))
