"""Declared capabilities, conventions and variants (`laws.declared`), and the diagnosis of failures
(`laws.diagnosis`): a wrong backend per variant is diagnosed by name; the same backend declaring its
variant passes; a function a backend lacks, or a key stream it does not follow, is n/a with the reason."""

from __future__ import annotations

import functools
import re
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import Phase, settings

from vaespec.proofs_tests.check.backends import check_backend
from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.controls import variants as wrong
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.errors import ConfigError

# Finding a wrong backend's failure: more examples than the profile's, so each control is caught at any profile.
QUICK = settings(settings(), phases=[Phase.explicit, Phase.generate, Phase.shrink], max_examples=60,
                 derandomize=True, database=None, deadline=None)
# A correct (declared) backend passing: the suite's own profile, the number of examples every backend gets in
# `test_laws` (a declared variant is held to what a port is held to, not to more).
HOLDING = settings()

DIAGNOSES = {
    wrong.TorchWithoutEMADebiasing: "diagnosis: matches the reference without EMA debiasing 1/(1 − γᵗ)",
    wrong.TorchWithoutGaussianConstant: "diagnosis: matches the reference without the Gaussian log-likelihood's "
                                        "constant −½·D·log 2π",
    wrong.TorchWithoutCodebookTerm: "diagnosis: matches the reference without the codebook term",
    wrong.TorchSingleTerm: "diagnosis: matches the reference with vq_loss = R + w·‖z_e − e‖² as one term",
    wrong.TorchOnlySSE: "diagnosis: matches ",
}

# What each declared backend must then pass: the law that caught it and the laws its variant touches.
HOLDS = {
    wrong.TorchWithoutEMADebiasing: ("ema_update_matches_reference", "ema_kmeans_step",
                                     "ema_eval_mode_leaves_codebook_unchanged"),
    wrong.TorchWithoutGaussianConstant: ("gaussian_log_likelihood_matches_reference",
                                         "gaussian_log_likelihood_gradient_matches_reference",
                                         "gaussian_nll_eq_scaled_reconstruction_loss",
                                         "log_importance_weights_matches_reference", "elbo_matches_reference",
                                         "iwae_bound_matches_reference"),
    wrong.TorchWithoutCodebookTerm: ("vq_loss_matches_reference", "vq_loss_gradient_matches_reference",
                                     "vq_loss_eq_reconstruction_add_codebook_add_commitment"),
    wrong.TorchSingleTerm: ("vq_loss_matches_reference", "vq_loss_gradient_matches_reference",
                            "vq_loss_eq_reconstruction_add_codebook_add_commitment"),
    wrong.TorchOnlySSE: ("reconstruction_loss_matches_reference", "kl_divergence_matches_reference",
                         "loss_matches_reference", "loss_gradient_matches_reference",
                         "loss_eq_reconstruction_add_kl", "reductions_consistent_under_batch_splitting",
                         "kl_eq_monte_carlo", "gaussian_nll_eq_scaled_reconstruction_loss"),
}


# One xdist worker for the module, so each wrong backend's failing run (shrunk: seconds) is made once (`_failure`).
pytestmark = pytest.mark.xdist_group("declared")


@functools.cache
def _failure(cls):
    """The result of `cls.caught_by` on the wrong backend `cls`, for every test that reads its message."""
    return run_law(cls.caught_by, cls(), QUICK)


@pytest.mark.parametrize("cls", wrong.WRONG, ids=lambda c: c.__name__)
def test_wrong_backend_is_diagnosed_by_name(cls):
    result = _failure(cls)
    assert result.verdict == "FAIL", (cls.__name__, result.verdict, result.message[:300])
    assert result.message.splitlines()[1].startswith(DIAGNOSES[cls]), result.message[:600]


@pytest.mark.parametrize("cls", wrong.WRONG, ids=lambda c: c.__name__)
def test_declared_variant_holds(cls):
    backend = check_backend(wrong.declared(cls)())
    for law in HOLDS[cls]:
        result = run_law(law, backend, HOLDING)
        assert result.verdict == "pass", (cls.__name__, law, result.verdict, result.message[:800])


def test_first_line_names_the_declared_variant():
    class StillDebiasing(wrong.TorchWithoutEMADebiasing):  # declares no debiasing, but debiases
        variants: ClassVar[dict] = {"ema_debias": False}
        ema_update = wrong.TorchBackend.ema_update

    result = run_law("ema_update_matches_reference", StillDebiasing(), QUICK)
    assert result.verdict == "FAIL"
    first, second = result.message.splitlines()[:2]
    assert first.endswith("[variants: ema_debias=False]"), first
    assert second.startswith("diagnosis: matches the reference with EMA debiasing"), second


def test_first_line_names_the_convention():
    result = _failure(wrong.TorchOnlySSE)  # reconstruction_loss_matches_reference
    assert result.verdict == "FAIL", result.message[:300]
    assert re.search(r" \[convention '\w+'; variants: none\]$", result.message.splitlines()[0]), result.message[:300]


def test_first_line_names_the_variants_even_when_none_are_declared():
    # a function without a convention, a backend without declarations: the first line still says which variants
    result = _failure(wrong.TorchWithoutEMADebiasing)  # ema_update_matches_reference
    assert result.verdict == "FAIL"
    assert result.message.splitlines()[0].endswith(" [variants: none]"), result.message[:300]


def test_float32_arithmetic_in_a_float64_backend_is_diagnosed():
    class Float32KL(ReferenceBackend):
        name = "kl-in-float32"

        def kl_divergence(self, mu, log_var, convention):
            value = super().kl_divergence(mu.astype(np.float32).astype(np.float64),
                                          log_var.astype(np.float32).astype(np.float64), convention)
            return np.float64(np.float32(value))

    result = run_law("kl_divergence_matches_reference", Float32KL(), QUICK)
    assert result.verdict == "FAIL"
    assert result.message.splitlines()[1].startswith("diagnosis: matches a float32 computation"), result.message[:500]


class _Partial:
    """The reference without reset_dead_codes (attributes delegated; the one it lacks raises AttributeError)."""

    name, device, dtype, chapters = "partial", "cpu", "float64", ("vae", "vq")
    key_stream = "vaespec"

    def __init__(self, lacks=("reset_dead_codes",)):
        self._reference, self._gone = ReferenceBackend(), set(lacks)

    def __getattr__(self, attribute):
        if attribute in object.__getattribute__(self, "_gone"):
            raise AttributeError(attribute)
        return getattr(object.__getattribute__(self, "_reference"), attribute)


def test_lacking_function_is_na_with_the_reason():
    class Declared(_Partial):
        lacks = ("reset_dead_codes",)

    backend = check_backend(Declared())
    for law in ("reset_dead_codes_keeps_live_codes", "reset_dead_codes_matches_reference"):
        result = run_law(law, backend, QUICK)
        assert (result.verdict, result.message) == ("n/a", "backend does not provide reset_dead_codes"), law
    assert run_law("quantize_matches_reference", backend, HOLDING).verdict == "pass"
    with pytest.raises(ConfigError, match="lacks .*reset_dead_codes.*provides"):
        check_backend(_Partial())  # undeclared: a load error that says how to declare it


def test_provides_is_the_complement_of_lacks():
    from vaespec.proofs_tests.laws import declared
    from vaespec.spec.contract import FUNCTIONS

    class Provides(_Partial):
        provides = tuple(f for f in FUNCTIONS if f != "reset_dead_codes")

    assert declared.lacking(Provides()) == {"reset_dead_codes"}
    check_backend(Provides())


class OwnGenerator(ReferenceBackend):
    """Keyed draws from numpy's default_rng(key), not vaespec's Philox stream: kaiming-uniform init, and dead
    rows reset to batch rows chosen by that generator."""

    name = "own-generator"
    key_stream = None

    def init_codebook(self, num_embeddings, embedding_dim, key):
        bound = 1.0 / np.sqrt(embedding_dim)
        return np.random.default_rng(int(key)).uniform(-bound, bound, (num_embeddings, embedding_dim))

    def reset_dead_codes(self, codebook, usage, z_e, key):
        rng = np.random.default_rng(int(key))
        new = np.array(codebook, dtype=np.float64)
        dead = np.flatnonzero(np.asarray(usage) == 0)
        rows = np.asarray(z_e).reshape(-1, new.shape[1])  # every position of [batch, *positions, D] is a row
        new[dead] = rows[rng.integers(0, len(rows), len(dead))]
        return new, (int(key) + 1) % 2**64


def test_property_laws_hold_for_any_generator_stream_laws_are_na():
    backend = OwnGenerator()
    for law in ("init_codebook_deterministic_given_key", "reset_dead_codes_keeps_live_codes"):
        result = run_law(law, backend, HOLDING)
        assert result.verdict == "pass", (law, result.message[:500])
    for law in ("init_codebook_matches_reference", "reset_dead_codes_matches_reference",
                "reparameterize_key_eq_explicit_noise"):
        result = run_law(law, backend, QUICK)
        assert result.verdict == "n/a" and "key stream" in result.message, (law, result.verdict)


def test_stream_law_still_applies_on_vaespecs_stream():
    class OwnGeneratorClaimingStream(OwnGenerator):
        key_stream = "vaespec"

    result = run_law("init_codebook_matches_reference", OwnGeneratorClaimingStream(), QUICK)
    assert result.verdict == "FAIL"


@pytest.mark.parametrize("variants, match", [
    ({"ema_stores_smoothed_counts": True}, "does not yet check"),
    ({"ema_debias": "no"}, "expected a bool"),
    ({"no_such_variant": True}, "unknown variant"),
])
def test_bad_variant_declarations_are_config_errors(variants, match):
    backend = type("Declares", (ReferenceBackend,), {"variants": variants})()
    with pytest.raises(ConfigError, match=match):
        check_backend(backend)


def test_unknown_convention_declaration_is_a_config_error():
    backend = type("Declares", (ReferenceBackend,), {"conventions": ("elbo", "nope")})()
    with pytest.raises(ConfigError, match="conventions"):
        check_backend(backend)


def test_every_variant_declares_contract_functions_and_an_effect():
    from vaespec.proofs_tests.laws import variants
    from vaespec.spec.contract import FUNCTIONS

    for v in variants.VARIANTS.values():
        assert v.functions and set(v.functions) <= set(FUNCTIONS), v.name
        assert (v.effect is variants.NO_EFFECT) == (not v.supported), v.name  # a checkable variant does something
    assert not variants.effects("encode")  # a function no variant concerns is the reference itself


def test_undebiased_ema_reads_the_batch_statistics_from_the_reference():
    """The variant's EMA at γ = ½, ε = ½, by hand: z_e rows 0, 2 (code 0) and 10 (code 1), from zero state;
    Ñ = laplace_smooth(counts′, ε) = (counts′ + ε)/(N + Kε)·N = (0.9, 0.6) for N = 1.5, K = 2 (debiased, the
    reference's Ñ would be (1.875, 1.125) and e′ (1.0667, 8.889))."""
    from vaespec.proofs_tests.laws import variants

    args = {"codebook": np.array([[1.0], [9.0]]), "ema_counts": np.zeros(2), "ema_sums": np.zeros((2, 1)),
            "ema_step": 0, "z_e": np.array([[0.0], [2.0], [10.0]]), "decay": 0.5, "epsilon": 0.5, "training": True}
    new, counts, sums, step = variants.ema_without_debiasing(args, None)
    np.testing.assert_array_equal(counts, [1.0, 0.5])  # ½·n, n = (2, 1)
    np.testing.assert_array_equal(sums, [[1.0], [5.0]])  # ½·s, s = (2, 10)
    np.testing.assert_allclose(new, [[1.0 / 0.9], [5.0 / 0.6]], rtol=1e-15)  # sums′ / Ñ, no 1/(1 − γ)
    assert step == 1


def test_a_dense_only_port_meets_no_conv_example():
    """A port declaring `architectures = ("dense",)` (the default) is handed no ConvArchitecture: the conv kernel
    bug that encode_matches_reference rejects (test_negative_controls) is invisible to it, and the law holds on
    the dense network; declaring "conv" brings the conv examples, and the failure, back."""
    from vaespec.proofs_tests.controls.conv import TorchConvKernelFlipped

    class DenseOnly(TorchConvKernelFlipped):
        architectures = ("dense",)

    many = settings(QUICK, max_examples=150)
    dense = run_law("encode_matches_reference", DenseOnly(), many)
    assert dense.verdict == "pass" and dense.examples > 0, (dense.verdict, dense.message[:500])
    assert run_law("encode_matches_reference", TorchConvKernelFlipped(), many).verdict == "FAIL"

    class Unknown(ReferenceBackend):
        architectures = ("dense", "resnet")

    from vaespec.proofs_tests.laws.declared import architectures

    with pytest.raises(ConfigError, match=r"^architectures: Unknown declares \['resnet'\]"):
        architectures(Unknown())
