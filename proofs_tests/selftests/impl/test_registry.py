"""The Torch bodies' registry: complete, checked at import, and what TorchBackend's methods and vjp look up."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from vaespec.impl import TorchBackend
from vaespec.impl.bodies import Bodies, Inputs, TorchFunction
from vaespec.impl.registry import CHAPTERS, TORCH, gather, missing, torch_function
from vaespec.spec.bayes import BayesBackend
from vaespec.spec.contract import FUNCTIONS, VAEBackend
from vaespec.spec.errors import ConfigError
from vaespec.spec.estimators import EstimatorsBackend
from vaespec.spec.vq import VQBackend

from ._support import contract_args


def test_every_contract_function_has_a_torch_body():
    assert missing() == [], f"no torch body registered for {missing()}"
    assert list(TORCH) == list(FUNCTIONS)
    assert all(TORCH[name].chapter == FUNCTIONS[name].chapter for name in TORCH)


def test_the_backend_satisfies_every_chapters_protocol():
    backend = TorchBackend()
    for protocol in (VAEBackend, VQBackend, EstimatorsBackend, BayesBackend):
        assert isinstance(backend, protocol), protocol.__name__


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_contract_methods_have_the_contracts_signature(function):
    method = getattr(TorchBackend(), function)
    assert list(inspect.signature(method).parameters) == [a.name for a in FUNCTIONS[function].args]
    assert method.__name__ == function and FUNCTIONS[function].formula in method.__doc__


def test_contract_methods_bind_like_written_methods():
    backend, args = TorchBackend(), contract_args("kl_divergence")
    by_position = backend.kl_divergence(args["mu"], args["log_var"], "elbo")
    assert backend.kl_divergence(args["mu"], log_var=args["log_var"], convention="elbo") == by_position
    with pytest.raises(TypeError):
        backend.kl_divergence(args["mu"], args["log_var"])
    with pytest.raises(TypeError):
        backend.kl_divergence(args["mu"], args["log_var"], "elbo", mu=args["mu"])


def test_value_and_vjp_both_come_from_the_registered_body(monkeypatch):
    """Replacing kl_divergence's body by twice the old one doubles the method's value and the vjp's gradient:
    neither has a computation of its own."""
    backend, args = TorchBackend(), contract_args("kl_divergence")
    value, grads = backend.kl_divergence(**args), backend.vjp("kl_divergence", args, 1.0)
    old = TORCH["kl_divergence"]
    monkeypatch.setitem(TORCH, "kl_divergence", TorchFunction(
        "kl_divergence", lambda inputs: tuple(2 * out for out in old.body(inputs)), old.chapter))
    assert backend.kl_divergence(**args) == 2 * value
    doubled = backend.vjp("kl_divergence", args, 1.0)
    for name in ("mu", "log_var"):
        np.testing.assert_array_equal(doubled[name], 2 * grads[name])


def test_a_function_without_a_body_names_where_to_register_one(monkeypatch):
    monkeypatch.delitem(TORCH, "elbo")
    assert missing() == ["elbo"]
    args = contract_args("kl_divergence")
    with pytest.raises(ConfigError, match=r"no torch body for 'elbo' \(register one in vaespec.impl.estimators_bodies"):
        torch_function("elbo")
    monkeypatch.delitem(TORCH, "kl_divergence")
    with pytest.raises(ConfigError, match="vaespec.impl.vae_bodies"):
        TorchBackend().kl_divergence(**args)
    with pytest.raises(ConfigError, match="not a contract function"):
        torch_function("beta_tc_kl_typo")


def _body(inputs: Inputs):
    return ()


def test_a_body_is_registered_once():
    table = Bodies("vae")
    table.register("encode")(_body)
    with pytest.raises(ConfigError, match="encode: a torch body is registered twice"):
        table.register("encode")(_body)


def test_gathering_refuses_unknown_names_and_misfiled_bodies():
    typo = Bodies("vae")
    typo.register("encoed")(_body)
    with pytest.raises(ConfigError, match="encoed: .* not a contract function"):
        gather((typo,))
    misfiled = Bodies("vq")
    misfiled.register("encode")(_body)
    with pytest.raises(ConfigError, match="encode: .* 'vq' chapter's table, but the function belongs to the 'vae'"):
        gather((misfiled,))
    assert gather(CHAPTERS) == TORCH
