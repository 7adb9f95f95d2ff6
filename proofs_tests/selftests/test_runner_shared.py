"""`check.runner.run_laws` (examples drawn once for every backend) gives each backend exactly the result of
checking it alone (`run_law`): verdict, examples, worst ratio and the shrunk failure message; and the
pieces that make it cheap: lazy failure context, fixed shapes, the Torch backend's module cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from vaespec.impl.backend import TorchBackend
from vaespec.proofs_tests.check import runner
from vaespec.proofs_tests.controls.vae import BetaIgnored, KLSignFlipped
from vaespec.proofs_tests.laws.compare import LazyText
from vaespec.proofs_tests.strategies import sizes
from vaespec.proofs_tests.strategies.profiles import profile_settings
from vaespec.reference.backend import ReferenceBackend

CI = profile_settings("dev")  # derandomized like ci, with fewer examples


def _solo(law, backends, settings=CI):
    return [runner.run_law(law, b, settings) for b in backends]


@pytest.mark.parametrize("law, control", [("kl_nonnegative", KLSignFlipped),
                                          ("loss_eq_reconstruction_add_kl", BetaIgnored),
                                          ("loss_monotone_in_beta", None)])  # draws a second β inside the check
def test_shared_run_equals_each_backend_alone(law, control):
    backends = [ReferenceBackend(), TorchBackend("cpu", "float32")] + ([control()] if control else [])
    shared = runner.run_laws(law, backends, CI)
    assert shared == _solo(law, backends)
    if control:  # the failing backend was re-run alone, so its message is Hypothesis's shrunk counterexample
        assert shared[-1].verdict == "FAIL" and "Reproduce with:" in shared[-1].message


def test_a_backend_that_draws_differently_is_rerun_alone(monkeypatch):
    """A check whose extra draw depends on the backend: the shared run cannot replay it, and the
    verdicts must still be those of each backend alone."""
    law = "kl_nonnegative"
    original = runner.CHECKS[law]

    def run(backend, example, draw):
        width = 3 if backend.dtype == "float64" else 5
        if draw(st.integers(0, width)) == width and backend.dtype == "float32":
            raise runner.LawViolation("drew the top of its own range", ratio=2.0)
        return original.run(backend, example, draw)

    monkeypatch.setitem(runner.CHECKS, law, dataclasses.replace(original, run=run))
    backends = [TorchBackend("cpu", "float64"), TorchBackend("cpu", "float32")]
    assert runner.run_laws(law, backends, CI) == _solo(law, backends)


def test_reference_is_not_compared_with_itself_but_controls_are():
    (ref,) = runner.run_laws("kl_divergence_matches_reference", [ReferenceBackend()], CI)
    assert ref.verdict == "n/a" and ref.examples == 0
    (control,) = runner.run_laws("kl_divergence_matches_reference", [KLSignFlipped()], CI)
    assert control.verdict == "FAIL"


def test_failure_context_is_built_only_when_formatted():
    made = []
    text = LazyText(lambda: made.append(1) or "Reproduce with: …")
    joined = "head\n" + text + "\ntail"
    assert made == []  # joining builds nothing
    assert f"{joined}" == "head\nReproduce with: …\ntail" and made == [1]
    assert str(joined) == "head\nReproduce with: …\ntail" and made == [1]  # formatted once


def test_fixed_shapes_tie_every_size_of_an_example_to_one_profile_and_the_default_is_untouched():
    assert repr(sizes.size(1, 5)) == repr(st.integers(1, 5))  # the default draws exactly what it drew before
    examples = set()
    sizes.use_fixed_shapes(True)
    try:
        @Settings(max_examples=60, derandomize=True, database=None)
        @given(st.data())
        def draw(data):
            examples.add((data.draw(sizes.size(1, 5)), data.draw(sizes.size(2, 9)),
                          tuple(data.draw(sizes.layer_widths(2, 8)))))
        draw()
    finally:
        sizes.use_fixed_shapes(False)
    # least, middle, greatest of each range, never mixed within one example: three shapes in all
    assert examples == {(1, 2, ()), (3, 5, (4,)), (5, 9, (8, 8))}


def test_module_cache_serves_new_values_never_stale_ones():
    from vaespec.reference import init_params
    from vaespec.spec.architecture import Architecture

    arch = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(4,))
    params = init_params(arch, 0)
    backend = TorchBackend("cpu", "float64")
    x = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    first = backend.encode(arch, params, x)[0]
    encoder, _ = backend._modules(arch, params, "encoder")
    assert backend._modules(arch, params, "encoder")[0] is encoder
    assert backend._modules(arch, params, "all")[0] is encoder  # one module per part, shared by encode and forward
    params["encoder_dense_0.kernel"] *= 2.0  # changed in place: the digest sees it
    second = backend.encode(arch, params, x)[0]
    expected = ReferenceBackend().encode(arch, params, x)[0]
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, expected, rtol=1e-12, atol=1e-12)

