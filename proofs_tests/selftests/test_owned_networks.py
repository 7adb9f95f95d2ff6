"""A backend's own network (issue 15): docs/porting.md §6.3's user model, a VAE vaespec's `Architecture` cannot
express (a Conv1d over a [2, 6] sequence, LayerNorms, one head for μ and log σ²), checked through
`NetworkBackend` in its own state-dict layout. The structural laws hold on it, the `*_matches_reference` laws of
the network functions are n/a naming it, and four wrong variants are each rejected by their named law. The
docs' code block is this test's input, so it cannot go stale."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import Phase, settings
from torch import nn

import vaespec.proofs_tests
from vaespec.impl.adapters import NetworkBackend, initial_params
from vaespec.proofs_tests.check.runner import not_applicable, run_law, run_laws
from vaespec.proofs_tests.controls import own_networks as own_controls
from vaespec.proofs_tests.laws import declared
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.errors import ConfigError, DTypeError, ShapeError
from vaespec.spec.laws import LAWS
from vaespec.spec.own import OwnArchitecture

PORTING = Path(vaespec.proofs_tests.__file__).resolve().parents[1] / "docs" / "porting.md"
SECTION = "### 6.3 A network vaespec does not implement"
STRUCTURAL = sorted(declared.OWN_NETWORK_LAWS)
NETWORK_REFERENCE_LAWS = sorted(n for n, law in LAWS.items() if law.chapter == "vae" and n.endswith("_reference")
                                and any(declared._network_function(f) for f in declared.law_needs(n)))

pytestmark = pytest.mark.xdist_group("owned_networks")
# Detection needs the generate phase only (no shrinking: the verdict, not the smallest counterexample).
DETECT = settings(settings(), phases=[Phase.explicit, Phase.generate])


@pytest.fixture(scope="module")
def docs_module():
    """The docs' file `tinyvae_check`, executed from docs/porting.md §6.3's first code block."""
    if not PORTING.is_file():
        pytest.skip("no docs folder: vaespec is installed without its source tree")
    text = PORTING.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/porting.md lacks the section {SECTION!r}"
    code = re.findall(r"```python\n(.*?)```", text.split(SECTION, 1)[1], flags=re.DOTALL)[0]
    module = types.ModuleType("tinyvae_check")
    saved = sys.modules.get("tinyvae_check")
    sys.modules["tinyvae_check"] = module
    try:
        exec(compile(code, "docs/porting.md §6.3", "exec"), module.__dict__)  # noqa: S102  (our docs)
        yield module, code
    finally:
        if saved is None:
            sys.modules.pop("tinyvae_check", None)
        else:
            sys.modules["tinyvae_check"] = saved


def test_docs_example_is_at_most_15_lines(docs_module):
    _, code = docs_module
    lines = [line for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) <= 15, lines
    assert "15 lines" in PORTING.read_text(encoding="utf-8").split(SECTION, 1)[1].split("```", 1)[0]
    assert len(lines) == 15


def test_not_expressible_as_vaespecs_networks(docs_module):
    model = docs_module[0].TinyVAE()
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"Conv1d", "LayerNorm"} <= kinds
    (arch,) = docs_module[0].backends()[0].own_architectures
    assert isinstance(arch, OwnArchitecture) and arch.input_shape == (2, 6) and arch.latent_size == 2
    assert set(arch.parameter_shapes()) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("law", STRUCTURAL)
def test_structural_laws_hold(docs_module, law):
    for backend in docs_module[0].backends():
        result = run_law(law, backend, settings())
        assert result.verdict == "pass", result.message
        assert result.examples > 0


@pytest.mark.parametrize("law", ["loss_eq_reconstruction_add_kl", "reductions_consistent_under_batch_splitting"])
def test_structural_laws_hold_in_bfloat16(docs_module, law):
    """The laws whose two sides round differently (the loss's sum, split or whole) at the own-network tolerance."""
    backend = NetworkBackend(docs_module[0].TinyVAE(), (2, 6), 2, dtype="bfloat16")
    result = run_law(law, backend, settings())
    assert result.verdict == "pass" and result.examples > 0, result.message


def test_reference_laws_of_the_network_are_na_naming_it(docs_module):
    backend = docs_module[0].backends()[0]
    assert "forward_matches_reference" in NETWORK_REFERENCE_LAWS and "loss_gradient_matches_reference" in \
        NETWORK_REFERENCE_LAWS
    for law in NETWORK_REFERENCE_LAWS:
        result = not_applicable(law, backend)
        assert result is not None and result.verdict == "n/a", law
        assert result.message == "the reference does not implement TinyVAE (the backend's own network)"
    # the network-free laws still run on it
    assert not_applicable("reparameterize_matches_reference", backend) is None
    assert run_law("kl_divergence_matches_reference", backend, settings()).verdict == "pass"


def test_default_backends_read_as_before():
    reference = ReferenceBackend()
    assert declared.own_architectures(reference) == ()
    assert "dense" in declared.architectures(reference)
    plain = types.SimpleNamespace(architectures=())
    assert declared.architectures(plain) == frozenset({"dense"})  # `architectures = ()` is still the dense one
    assert declared.own_networks_not_applicable("forward_matches_reference", reference) is None


def test_params_are_the_models_own_initialisation(docs_module):
    model = docs_module[0].TinyVAE()
    (arch,) = NetworkBackend(model, (2, 6), 2).own_architectures
    a, b, c = arch.init_params(3), arch.init_params(3), arch.init_params(4)
    assert a.keys() == dict(model.named_parameters()).keys()
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["head.weight"], c["head.weight"])
    assert torch.equal(torch.as_tensor(initial_params(model, 3)["head.weight"]), torch.as_tensor(a["head.weight"]))
    state = torch.random.get_rng_state()
    arch.init_params(5)
    assert torch.equal(state, torch.random.get_rng_state())  # drawing parameters leaves torch's generator alone


def test_bad_input_is_named(docs_module):
    backend = docs_module[0].backends()[0]
    (arch,) = backend.own_architectures
    params = arch.init_params(0)
    with pytest.raises(ShapeError, match="x"):
        backend.encode(arch, params, np.zeros((3, 12)))  # flattened where the event is (2, 6)
    with pytest.raises(ShapeError, match="head.weight"):
        backend.encode(arch, {**params, "head.weight": np.zeros((4, 23))}, np.zeros((3, 2, 6)))
    with pytest.raises(ShapeError, match="missing"):
        OwnArchitecture("net", (2,), 1, (("w", (2, 1)),), lambda seed: {}).init_params(0)
    with pytest.raises(DTypeError, match="arch: expected"):  # the reference's boundary refuses a network it lacks
        ReferenceBackend().encode(arch, params, np.zeros((3, 2, 6)))
    with pytest.raises(ConfigError, match="own_architectures"):
        declared.validate(types.SimpleNamespace(own_architectures=("dense",)))


class GRUVAE(nn.Module):
    """A recurrent encoder over x [batch, 4 steps, 3 features]: another network vaespec does not implement."""

    def __init__(self):
        super().__init__()
        self.gru, self.head, self.dec = nn.GRU(3, 5, batch_first=True), nn.Linear(5, 4), nn.Linear(2, 12)

    def encode(self, x):
        return self.head(self.gru(x)[1][0]).chunk(2, dim=1)

    def decode(self, z):
        return self.dec(z).view(-1, 4, 3)


@pytest.mark.parametrize("law", ["forward_eq_decode_reparameterize", "loss_eq_reconstruction_add_kl",
                                 "batch_permutation_equivariance", "reductions_consistent_under_batch_splitting"])
def test_a_recurrent_encoder_holds_the_structural_laws(law):
    result = run_law(law, NetworkBackend(GRUVAE(), (4, 3), 2, name="gru"), settings(settings(), max_examples=10))
    assert result.verdict == "pass" and result.examples > 0, result.message


def test_checked_beside_vaespecs_backends():
    """In one shared run with the reference, each is checked on its own network (the own backend's in-check draw
    diverges, so it is re-run alone) and the reference's examples are those of a run without it."""
    own = NetworkBackend(GRUVAE(), (4, 3), 2, name="gru")
    quick = settings(settings(), max_examples=10)
    together = run_laws("forward_eq_decode_reparameterize", [ReferenceBackend(), own], quick)
    alone = run_laws("forward_eq_decode_reparameterize", [ReferenceBackend()], quick)
    assert [r.verdict for r in together] == ["pass", "pass"] and together[1].examples > 0
    assert (together[0].examples, together[0].worst_ratio) == (alone[0].examples, alone[0].worst_ratio)


# ---------------------------------------------------------------------------------------------- negative controls
def test_controls_run_the_docs_model(docs_module):
    """proofs_tests/controls/own_networks.py's TinyVAE is the docs' (test_negative_controls runs each control)."""
    docs, control = docs_module[0].TinyVAE(), own_controls.TinyVAE()
    assert [(n, p.shape) for n, p in docs.named_parameters()] == [(n, p.shape) for n, p in control.named_parameters()]


@pytest.mark.parametrize("name", sorted(own_controls.CONTROLS))
def test_wrong_variants_are_rejected_by_their_law(name):
    control = own_controls.CONTROLS[name]()
    result = run_law(control.caught_by, control, DETECT)
    assert result.verdict == "FAIL", (name, result.verdict, result.message)
    honest = run_law(control.caught_by, NetworkBackend(own_controls.TinyVAE(), (2, 6), 2), DETECT)
    assert honest.verdict == "pass", honest.message  # the same law holds on the model without the bug
