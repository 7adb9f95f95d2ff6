"""The Bayesian chapter's reference: hand-written VJPs against central differences, Bayes' rule
as an independent check of the evidence and posterior formulas, magnitudes that bound what they
scale, and errors that name the argument. The central differences are `selftests.finite_differences`', as for every
chapter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaespec import reference
from vaespec.proofs_tests.laws.compare import leaves
from vaespec.proofs_tests.strategies import bayes as strat
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.reference import bayes as ref_bayes
from vaespec.spec.bayes import FUNCTIONS
from vaespec.spec.errors import DomainError, ShapeError
from vaespec.spec.tolerances import bound

from .finite_differences import direction, directional_check


def _call(function, args):
    return getattr(ref_bayes, function)(*(args[a.name] for a in FUNCTIONS[function].args))


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    """The hand-written VJP along a random direction (`selftests.finite_differences`)."""
    args = dict(data.draw(strat.examples_for(function)).args)
    cotangent = data.draw(strategies.cotangents(function, _call(function, args)))
    step = direction(args, FUNCTIONS[function].differentiable, data.draw(st.integers(0, 2**32 - 1)))
    fd, dot, tolerance = directional_check(step, lambda p: _call(function, p),
                                           reference.vjp(function, step.base, cotangent),
                                           cotangent, lambda p: reference.magnitude(function, p))
    assert abs(fd - dot) <= tolerance, (f"{function}: ⟨vjp, v⟩ = {dot!r} but the central difference gives {fd!r}; "
                                        f"|difference| = {abs(fd - dot):.3e} > tolerance {tolerance:.3e}")


def _log_normal(v, mean, cov):
    d = v - mean
    return -0.5 * (len(v) * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + d @ np.linalg.solve(cov, d))


@settings(max_examples=25, deadline=None)
@given(example=strat.linear_gaussian_examples(), z=strategies.arrays((5,), -3.0, 3.0))
def test_bayes_rule_log_p_x_given_z_plus_log_p_z_minus_log_posterior_is_the_evidence(example, z):
    """log p(x | z) + log p(z) − log p(z | x) = log p(x) for every z: the formulas, checked by a third route
    (dense D×D and L×L Gaussians in float64), at the bound of a chain of D + L + 20 roundings."""
    a = example.args
    w, b, lv = a["weight"], a["bias"], a["noise_log_var"]
    output, latent = w.shape
    evidence = ref_bayes.linear_gaussian_log_evidence(**a)
    mean, cov = ref_bayes.linear_gaussian_posterior(**a)
    z = z[:latent]
    for n, x in enumerate(a["x"]):
        terms = (_log_normal(x, w @ z + b, math.exp(lv) * np.eye(output)), _log_normal(z, 0 * z, np.eye(latent)),
                 -_log_normal(z, mean[n], cov))
        scale = sum(abs(t) for t in terms) * np.linalg.cond(cov) + abs(evidence[n])
        assert abs(sum(terms) - evidence[n]) <= 2 * bound("float64", output + latent + 20).tolerance(scale)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_magnitudes_bound_values_and_gradients(function, data):
    """M ≥ |f| and M̄ ≥ |ḡ|: a magnitude below the value would make a tolerance tighter than roundoff."""
    args = dict(data.draw(strat.examples_for(function)).args)
    values, mags = dict(leaves(_call(function, args))), dict(leaves(reference.magnitude(function, args)))
    assert values.keys() == mags.keys() and all(np.all(mags[k] >= np.abs(v)) for k, v in values.items())
    cotangent = data.draw(strategies.cotangents(function, _call(function, args)))
    grads, bounds = dict(leaves(reference.vjp(function, args, cotangent))), dict(leaves(reference.vjp_magnitude(
        function, args, cotangent)))
    assert grads.keys() == bounds.keys()
    for path, grad in grads.items():
        assert np.all(bounds[path] >= np.abs(grad) * (1 - 1e-12)), (function, path)


def test_errors_name_the_argument():
    x, w, b = np.zeros((2, 3)), np.ones((3, 2)), np.zeros(3)
    with pytest.raises(ShapeError, match="weight"):
        ref_bayes.linear_gaussian_log_evidence(x, np.ones((3, 4)), b, 0.0)  # latent > output
    with pytest.raises(ShapeError, match="bias"):
        ref_bayes.linear_gaussian_posterior(x, w, np.zeros(4), 0.0)
    with pytest.raises(DomainError, match="noise_log_var"):
        ref_bayes.linear_gaussian_log_evidence(x, w, b, 25.0)
    with pytest.raises(ValueError, match="noise_log_var"):
        ref_bayes.linear_gaussian_log_evidence(x, w, b, float("nan"))
