"""The adapters of `vaespec.impl.adapters`: docs/porting.md §6's user model passes every VAE law through
`ModuleBackend` (the docs' code blocks are this test's input), deliberately wrong adapters are rejected by
the named law, and `AutogradBackend` states what it does not provide."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings
from torch import nn

import vaespec.proofs_tests
from vaespec.impl.adapters import (
    AutogradBackend,
    HiddenDrawError,
    ModuleBackend,
    NotProvided,
    NotProvidedError,
    linear_layers,
)
from vaespec.proofs_tests.check.runner import run_law
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.architecture import Architecture
from vaespec.spec.conventions import get_convention
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.init import init_params
from vaespec.spec.laws import LAWS

PORTING = Path(vaespec.proofs_tests.__file__).resolve().parents[1] / "docs" / "porting.md"
SECTION = "## 6. Checking an existing PyTorch model"
VAE_LAWS = sorted(name for name, law in LAWS.items() if law.chapter == "vae")
# Detection needs the generate phase only; 300 examples, as test_negative_controls gives every control.
DETECT = settings(settings(), phases=[Phase.explicit, Phase.generate], max_examples=max(settings().max_examples, 300))


def _blocks() -> list[str]:
    """The python code blocks of docs/porting.md §6.1, in order."""
    text = PORTING.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/porting.md lacks the section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0].split("### 6.2", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def docs_example():
    """The docs' model module `myvae` and adapter module `myvae_check`, executed from the docs' text."""
    if not PORTING.is_file():
        pytest.skip("no docs folder: vaespec is installed without its source tree")
    model_code, adapter_code = _blocks()
    made = {}
    saved = {name: sys.modules.get(name) for name in ("myvae", "myvae_check")}
    try:
        for name, code in (("myvae", model_code), ("myvae_check", adapter_code)):
            module = types.ModuleType(name)
            sys.modules[name] = module
            exec(compile(code, f"docs/porting.md ({name})", "exec"), module.__dict__)  # noqa: S102  (our docs)
            made[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return made["myvae"], made["myvae_check"]


def _code_lines(code: str) -> int:
    return sum(1 for line in code.splitlines() if line.strip() and not line.strip().startswith("#"))


def test_the_docs_adapter_is_at_most_fifteen_lines_and_says_how_many():
    if not PORTING.is_file():
        pytest.skip("no docs folder")
    _, adapter_code = _blocks()
    count = _code_lines(adapter_code)
    assert count <= 15, f"the docs' adapter has {count} lines of code; issue 15 asks for at most 15"
    words = {7: "seven", 8: "eight", 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}
    assert f"The whole adapter is {words.get(count, count)} lines of code" in PORTING.read_text(encoding="utf-8")


@pytest.mark.parametrize("law", VAE_LAWS)
def test_the_docs_model_passes_every_vae_law(docs_example, law):
    for backend in docs_example[1].backends():
        result = run_law(law, backend, settings())
        assert result.verdict in ("pass", "n/a"), f"{law} on {backend}: {result.verdict}\n{result.message}"
        if law == "reparameterize_key_eq_explicit_noise":
            assert result.verdict == "n/a"
        else:
            assert result.verdict == "pass" and result.examples > 0, (law, result)


# ----------------------------------------------------------------------------- negative controls
def _backend(docs_example, model_class=None, **options):
    myvae = docs_example[0]
    from vaespec.impl.adapters import Activation

    cls = model_class or myvae.VAE
    act = options.pop("act", Activation)

    def build(arch):
        return cls(arch.input_size, arch.encoder_sizes, arch.latent_size, arch.decoder_sizes, act(arch.activation))
    options.setdefault("reparameterize", "reparameterize")
    return ModuleBackend(build, name="control", **options)


def test_a_mapping_that_swaps_mu_and_log_var_fails_encode_matches_reference(docs_example):
    build = docs_example[1].build

    def swapped(arch):
        layers = linear_layers(build(arch), arch)
        layers["mu"], layers["log_var"] = layers["log_var"], layers["mu"]
        return layers

    backend = ModuleBackend(build, swapped, reparameterize="reparameterize")
    result = run_law("encode_matches_reference", backend, DETECT)
    assert result.verdict == "FAIL", result


def test_a_decoder_drawing_fresh_noise_is_stopped_naming_the_call(docs_example):
    class NoisyDecoder(docs_example[0].VAE):
        def decode(self, z):
            x_hat = self.dec(z)
            return x_hat + 0.1 * torch.randn_like(x_hat)

    result = run_law("decode_matches_reference", _backend(docs_example, NoisyDecoder), DETECT)
    assert result.verdict == "ERROR", result
    assert "HiddenDrawError: torch.randn_like: a hidden draw under explicit_noise; the contract passes no noise to " \
           "the model's decode" in result.message


def test_a_reparameterize_drawing_its_own_uniform_noise_is_stopped(docs_example):
    class UniformNoise(docs_example[0].VAE):
        def reparameterize(self, mu, log_var):
            return mu + torch.exp(0.5 * log_var) * (torch.rand_like(mu) * 2 - 1)

    result = run_law("reparameterize_matches_reference", _backend(docs_example, UniformNoise), DETECT)
    assert result.verdict == "ERROR" and "torch.rand_like: a hidden draw" in result.message, result


def test_sigma_taken_as_exp_log_var_fails_reparameterize_matches_reference(docs_example):
    class SigmaIsVariance(docs_example[0].VAE):
        def reparameterize(self, mu, log_var):
            return mu + torch.exp(log_var) * torch.randn_like(mu)

    result = run_law("reparameterize_matches_reference", _backend(docs_example, SigmaIsVariance), DETECT)
    assert result.verdict == "FAIL", result


def test_torch_softplus_module_fails_decode_matches_reference(docs_example):
    from vaespec.impl.adapters import Activation

    def act(name):
        return nn.Softplus() if name == "softplus" else Activation(name)

    result = run_law("decode_matches_reference", _backend(docs_example, act=act), DETECT)
    assert result.verdict == "FAIL", result


# ----------------------------------------------------------------------------- ModuleBackend's checks
ARCH = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(4,), activation="tanh")


def test_every_model_parameter_must_be_mapped(docs_example):
    class Extra(docs_example[0].VAE):
        def __init__(self, *args):
            super().__init__(*args)
            self.scale = nn.Parameter(torch.ones(1))

    backend = _backend(docs_example, Extra)
    with pytest.raises(ConfigError, match=r"parameters of Extra that no contract layer maps: \['scale'\]"):
        backend.encode(ARCH, init_params(ARCH, 0), np.zeros((2, 3)))


def test_a_mapping_to_a_wrongly_shaped_layer_is_a_shape_error(docs_example):
    layers = {"encoder_dense_0": "enc.0", "mu": "log_var", "log_var": "mu", "decoder_dense_0": "dec.2",
              "decoder_output": "dec.0"}
    backend = ModuleBackend(docs_example[1].build, layers)
    with pytest.raises(ShapeError, match=r"layers: decoder_dense_0 -> 'dec.2': dec.2.weight has shape \(3, 4\)"):
        backend.decode(ARCH, init_params(ARCH, 0), np.zeros((2, 2)))


def test_the_model_must_be_a_function_of_the_architecture(docs_example):
    with pytest.raises(TypeError, match="model: expected a function arch -> nn.Module"):
        ModuleBackend(docs_example[1].build(ARCH))


def test_module_backend_gradients_are_autograds_in_the_spec_layout(docs_example):
    backend = ModuleBackend(docs_example[1].build, reparameterize="reparameterize")
    params = init_params(ARCH, 3)
    rng = np.random.default_rng(0)
    args = {"arch": ARCH, "params": params, "x": rng.normal(size=(4, 3)), "eps": rng.normal(size=(4, 2)),
            "beta": 0.5, "convention": get_convention("elbo")}
    mine, ref = backend.vjp("loss", args, 1.0), ReferenceBackend().vjp("loss", args, 1.0)
    assert mine["params"].keys() == ref["params"].keys()
    for key in ref["params"]:
        np.testing.assert_allclose(mine["params"][key], ref["params"][key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mine["x"], ref["x"], rtol=1e-10, atol=1e-12)


def test_building_the_model_leaves_torchs_generator_alone(docs_example):
    state = torch.random.get_rng_state()
    ModuleBackend(docs_example[1].build).decode(ARCH, init_params(ARCH, 0), np.zeros((1, 2)))
    assert torch.equal(torch.random.get_rng_state(), state)


# ----------------------------------------------------------------------------- AutogradBackend
class KLOnly(AutogradBackend):
    """Provides two functions of the VAE chapter, as torch bodies."""

    name = "kl-only"
    not_provided: ClassVar[dict[str, str]] = {"encode": "the library has no encoder"}

    def torch_reparameterize(self, mu, log_var, eps):
        return mu + torch.exp(0.5 * log_var) * eps

    def torch_kl_divergence(self, mu, log_var, convention):
        per = 0.5 * (torch.expm1(log_var) - log_var + mu * mu)
        per = per.sum(1) if convention.kl_latent_reduction == "sum" else per.mean(1)
        return per.sum() if convention.kl_batch_reduction == "sum" else per.mean()


def test_provides_lists_the_bodies():
    assert KLOnly.provides == frozenset({"reparameterize", "kl_divergence"})


def test_a_function_without_a_body_is_not_provided_and_says_why():
    backend = KLOnly()
    with pytest.raises(NotProvidedError, match=r"encode: not provided by kl-only \(KLOnly has no torch_encode; the "
                                               r"library has no encoder\)"):
        backend.encode(ARCH, init_params(ARCH, 0), np.zeros((1, 3)))
    with pytest.raises(NotProvidedError, match="decode: not provided"):
        backend.vjp("decode", {}, None)


class KLDeclaresNoEncoder(KLOnly):
    """Declares what it lacks beside its bodies (`torch_<function> = NotProvided(reason)`), and takes one back."""

    torch_encode = NotProvided("the model has no encoder of its own")
    torch_kl_divergence = NotProvided("inherited body withdrawn")


class KLProvidesAgain(KLDeclaresNoEncoder):
    def torch_kl_divergence(self, mu, log_var, convention):
        return KLOnly.torch_kl_divergence(self, mu, log_var, convention)


def test_a_declared_not_provided_function_is_absent_and_says_why():
    assert KLDeclaresNoEncoder.provides == frozenset({"reparameterize"})
    assert KLDeclaresNoEncoder.not_provided["encode"] == "the model has no encoder of its own"
    with pytest.raises(NotProvidedError, match="kl_divergence: not provided .*inherited body withdrawn"):
        KLDeclaresNoEncoder().kl_divergence(np.zeros((1, 2)), np.zeros((1, 2)), "sum")
    assert KLProvidesAgain.provides == frozenset({"reparameterize", "kl_divergence"})
    assert "kl_divergence" not in KLProvidesAgain.not_provided and "encode" in KLProvidesAgain.not_provided


def test_the_boundary_is_validated_and_the_vjp_derived():
    backend = KLOnly(dtype="float32")
    with pytest.raises(ShapeError, match="log_var"):
        backend.reparameterize(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3)))
    rng = np.random.default_rng(1)
    args = {"mu": rng.normal(size=(3, 2)), "log_var": rng.normal(size=(3, 2)), "convention": get_convention("sum")}
    got, ref = backend.vjp("kl_divergence", args, 2.0), ReferenceBackend().vjp("kl_divergence", args, 2.0)
    assert set(got) == {"mu", "log_var"} and got["mu"].dtype == np.float64
    for key in got:
        np.testing.assert_allclose(got[key], ref[key], rtol=1e-5)


@pytest.mark.parametrize("law", ["kl_nonnegative", "kl_divergence_gradient_matches_reference",
                                 "reparameterize_moments"])
def test_an_autograd_backend_passes_the_laws_of_what_it_provides(law):
    result = run_law(law, KLOnly(), settings())
    assert result.verdict == "pass", result


def test_a_body_named_after_no_contract_function_is_refused():
    with pytest.raises(ConfigError, match=r"\['torch_encoder'\] name no contract function"):
        type("Typo", (AutogradBackend,), {"torch_encoder": lambda self, x: x})


@pytest.mark.parametrize("device, dtype, message", [("meta", "float64", "device"), ("cpu", "float16", "float16"),
                                                    ("cpu", "int8", "dtype")])
def test_devices_and_dtypes_are_checked(device, dtype, message):
    with pytest.raises(ConfigError, match=message):
        KLOnly(device=device, dtype=dtype)


def test_hidden_draw_error_is_a_vaespec_error():
    from vaespec.spec.errors import VaespecError
    assert issubclass(HiddenDrawError, VaespecError) and issubclass(NotProvidedError, ConfigError)
