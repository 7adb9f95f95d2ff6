"""The estimators chapter's reference: hand-written VJPs against central differences, magnitudes
that bound what they scale, closed forms at chosen points, and errors that name the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.laws.compare import leaves
from vaespec.proofs_tests.strategies import estimators as strat
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.reference import estimators as ref
from vaespec.reference import magnitude, vjp, vjp_magnitude
from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError, DomainError, ShapeError
from vaespec.spec.estimators import FUNCTIONS
from vaespec.spec.init import init_params

from .finite_differences import SMOOTH, direction, directional_check


def _call(function, args):
    return getattr(ref, function)(*(args[a.name] for a in FUNCTIONS[function].args))


def _args(function, example):
    args = {a.name: example.args[a.name] for a in FUNCTIONS[function].args}
    if function == "bernoulli_log_likelihood" or args.get("likelihood") == "bernoulli":
        args["x"] = 0.25 + 0.5 * args["x"]  # off the domain's edges, so x ± h stays in [0, 1]
    return args


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    """The hand-written VJP along a random direction (`selftests.finite_differences`, smooth activations: see there)."""
    args = _args(function, data.draw(strat.examples_for(function)))
    assume("arch" not in args or args["arch"].activation in SMOOTH)
    cotangent = np.asarray(data.draw(strategies.cotangents(function, _call(function, args))))
    step = direction(args, FUNCTIONS[function].differentiable, data.draw(st.integers(0, 2**32 - 1)))
    fd, dot, tolerance = directional_check(step, lambda p: _call(function, p), vjp(function, step.base, cotangent),
                                           cotangent, lambda p: magnitude(function, p))
    assert abs(fd - dot) <= tolerance, (f"{function}: ⟨vjp, v⟩ = {dot!r} but the central difference gives {fd!r}; "
                                        f"|difference| = {abs(fd - dot):.3e} > tolerance {tolerance:.3e}")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_magnitudes_bound_values_and_gradients(function, data):
    """M ≥ |f| and M̄ ≥ |ḡ|: a magnitude below the value would make a tolerance tighter than roundoff."""
    args = _args(function, data.draw(strat.examples_for(function)))
    value = _call(function, args)
    assert np.all(magnitude(function, args) >= np.abs(value) * (1 - 1e-12))
    cotangent = np.asarray(data.draw(strategies.cotangents(function, value)))
    grads, mags = dict(leaves(vjp(function, args, cotangent))), dict(leaves(vjp_magnitude(function, args,
                                                                                               cotangent)))
    assert grads.keys() == mags.keys()
    for path, grad in grads.items():
        assert np.all(mags[path] >= np.abs(grad) * (1 - 1e-12)), (function, path)


def test_closed_forms_at_chosen_points():
    x = np.array([[0.0, 1.0, 0.5]])
    # log N(x; x̂, 1) at x̂ = x is −½·D·log 2π; the Bernoulli at logit 0 is D·log ½ whatever x is.
    assert ref.gaussian_log_likelihood(x, x, np.zeros_like(x))[0] == pytest.approx(-1.5 * math.log(2 * math.pi))
    assert ref.bernoulli_log_likelihood(np.zeros_like(x), x)[0] == pytest.approx(3 * math.log(0.5))
    assert ref.log_mean_exp(np.array([[2.0], [2.0], [2.0]]))[0] == 2.0
    assert ref.log_mean_exp(np.array([[0.0], [math.log(3.0)]]))[0] == pytest.approx(math.log(2.0))
    assert ref.log_mean_exp(np.array([[1e4], [1e4 - 1]]))[0] == pytest.approx(1e4 + math.log((1 + math.exp(-1)) / 2))
    table = np.arange(6.0).reshape(3, 2)
    assert np.array_equal(ref.embedding_lookup(table, np.array([2, 0, 2])), table[[2, 0, 2]])
    grad = vjp("embedding_lookup", {"table": table, "indices": np.array([2, 0, 2])}, np.ones((3, 2)))["table"]
    assert np.array_equal(grad, [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])  # row 2 twice: accumulated


def _network(likelihood="gaussian"):
    arch = Architecture(3, 2, (4,), (4,), "tanh")
    return {"arch": arch, "params": init_params(arch, 0), "x": np.full((2, 3), 0.5),
            "eps": np.zeros((3, 2, 2)), "decoder_log_var": np.zeros(3), "likelihood": likelihood}


def test_zero_noise_particles_agree_and_iwae_equals_elbo():
    a = _network()
    log_w = ref.log_importance_weights(**a)
    assert np.array_equal(log_w[0], log_w[1]) and np.array_equal(log_w[1], log_w[2])
    np.testing.assert_allclose(ref.iwae_bound(**a), ref.elbo(**a), rtol=0, atol=1e-13)


@pytest.mark.parametrize("function, change, error, words", [
    ("elbo", {"likelihood": "poisson"}, ConfigError, ["likelihood", "poisson"]),
    ("elbo", {"likelihood": "bernoulli", "x": np.full((2, 3), 1.5)}, DomainError, ["x", "[0, 1]"]),
    ("elbo", {"eps": np.zeros((3, 4, 2))}, ShapeError, ["eps"]),
    ("elbo", {"decoder_log_var": np.zeros(4)}, ShapeError, ["decoder_log_var"]),
    ("elbo", {"arch": Architecture(3, 2, (4,), (4,), "tanh", output_size=4), "decoder_log_var": np.zeros(4),
              "params": init_params(Architecture(3, 2, (4,), (4,), "tanh", output_size=4), 0)}, ConfigError,
     ["output_size"]),
    ("embedding_lookup", {}, DomainError, ["indices", "[0, 2)"]),
    ("log_mean_exp", {}, DomainError, ["log_weights", "finite"]),
    ("bernoulli_log_likelihood", {}, DomainError, ["x", "[0, 1]"]),
])
def test_bad_input_names_the_argument(function, change, error, words):
    defaults = {"embedding_lookup": {"table": np.zeros((2, 3)), "indices": np.array([0, 2])},
                "log_mean_exp": {"log_weights": np.array([[0.0], [np.inf]])},
                "bernoulli_log_likelihood": {"logits": np.zeros((1, 2)), "x": np.array([[0.0, 1.5]])}}
    args = {**defaults.get(function, _network()), **change}
    with pytest.raises(error) as caught:
        _call(function, args)
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_directional_check_detects_a_wrong_gradient():
    """A 1% error in one entry of a log-likelihood's gradient fails the same check the VJPs pass."""
    rng = np.random.default_rng(5)
    args = {name: rng.standard_normal((3, 4)) for name in ("x_hat", "x", "log_var")}
    cotangent = rng.standard_normal(3)
    step = direction(args, FUNCTIONS["gaussian_log_likelihood"].differentiable, seed=3)
    grads = vjp("gaussian_log_likelihood", step.base, cotangent)

    def check(g):
        return directional_check(step, lambda p: _call("gaussian_log_likelihood", p), g, cotangent,
                                 lambda p: magnitude("gaussian_log_likelihood", p))
    fd, dot, tolerance = check(grads)
    assert abs(fd - dot) <= tolerance
    wrong = {**grads, "log_var": grads["log_var"].copy()}
    wrong["log_var"][1, 2] *= 1.01
    fd, dot, tolerance = check(wrong)
    assert abs(fd - dot) > tolerance
