"""The estimators chapter's reference: hand-written VJPs against central differences, magnitudes
that bound what they scale, closed forms at chosen points, and errors that name the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaespec.proofs_tests import strategies
from vaespec.proofs_tests import strategies_estimators as strat
from vaespec.proofs_tests.compare import _leaves
from vaespec.reference import estimators as ref
from vaespec.reference import magnitude, vjp, vjp_magnitude
from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError, DomainError, ShapeError
from vaespec.spec.estimators import FUNCTIONS
from vaespec.spec.init import init_params

STEP = 2.0 ** -20  # exactly representable, so x ± h is exact for |x| < 2³²


def _call(function, args):
    return getattr(ref, function)(*(args[a.name] for a in FUNCTIONS[function].args))


def _central(function, args, name, cotangent, key=None):
    """⟨ȳ, ∂f/∂arg⟩ by central differences, entry by entry (float64)."""
    base = args[name] if key is None else args[name][key]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        values = []
        for sign in (1, -1):
            moved = base.copy()
            moved[index] += sign * STEP
            new = {**args, name: moved} if key is None else {**args, name: {**args[name], key: moved}}
            values.append(np.sum(cotangent * _call(function, new)))
        grad[index] = (values[0] - values[1]) / (2 * STEP)
    return grad


def _args(function, example):
    args = {a.name: example.args[a.name] for a in FUNCTIONS[function].args}
    if function == "bernoulli_log_likelihood" or args.get("likelihood") == "bernoulli":
        args["x"] = 0.25 + 0.5 * args["x"]  # off the domain's edges, so x ± h stays in [0, 1]
    return args


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    args = _args(function, data.draw(strat.examples_for(function)))
    cotangent = np.asarray(data.draw(strategies.cotangents(function, _call(function, args))))
    grads = vjp(function, args, cotangent)
    assert set(grads) == set(FUNCTIONS[function].differentiable)
    for name, grad in grads.items():
        pairs = ([(grad[k], _central(function, args, name, cotangent, k)) for k in grad] if name == "params"
                 else [(grad, _central(function, args, name, cotangent))])
        for exact, numeric in pairs:
            np.testing.assert_allclose(exact, numeric, rtol=1e-5, atol=1e-6 * (1 + np.max(np.abs(numeric))),
                                       err_msg=f"{function}: d/d{name}")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_magnitudes_bound_values_and_gradients(function, data):
    """M ≥ |f| and M̄ ≥ |ḡ|: a magnitude below the value would make a tolerance tighter than roundoff."""
    args = _args(function, data.draw(strat.examples_for(function)))
    value = _call(function, args)
    assert np.all(magnitude(function, args) >= np.abs(value) * (1 - 1e-12))
    cotangent = np.asarray(data.draw(strategies.cotangents(function, value)))
    grads, mags = dict(_leaves(vjp(function, args, cotangent))), dict(_leaves(vjp_magnitude(function, args,
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
