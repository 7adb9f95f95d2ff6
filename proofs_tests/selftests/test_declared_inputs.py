"""Declarations that fix what a backend is handed: a convention subset, a fixed ε, a unit decoder
variance, binary Bernoulli targets (`laws.declared.adapt_args`). A correct library that declares
them comes out green; undeclared, it fails (or errors) with the difference named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase, settings

from vaespec.proofs_tests.check.runner import run_law
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.laws import LAWS

# Finding an undeclared backend's failure: more examples than the profile's, so it is caught at any profile.
QUICK = settings(settings(), phases=[Phase.explicit, Phase.generate, Phase.shrink], max_examples=40,
                 derandomize=True, database=None, deadline=None)
# A declared (correct) backend passing: the suite's own profile, what every backend gets in `test_laws`.
HOLDING = settings()


class ELBOOnly(ReferenceBackend):
    """pythae-like: only the ELBO convention; any other is refused."""

    name = "elbo-only"
    conventions = ("elbo",)

    @staticmethod
    def _only_elbo(convention):
        if getattr(convention, "name", convention) != "elbo":
            raise ValueError(f"convention: only 'elbo' is implemented, got {convention!r}")

    def reconstruction_loss(self, x_hat, x, convention):
        self._only_elbo(convention)
        return super().reconstruction_loss(x_hat, x, convention)

    def kl_divergence(self, mu, log_var, convention):
        self._only_elbo(convention)
        return super().kl_divergence(mu, log_var, convention)

    def loss(self, arch, params, x, eps, beta, convention):
        self._only_elbo(convention)
        return super().loss(arch, params, x, eps, beta, convention)

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        self._only_elbo(convention)
        return super().vq_loss(arch, params, codebook, x, commitment_weight, convention)

    def vjp(self, function, args, cotangent):
        if "convention" in args:
            self._only_elbo(args["convention"])
        return super().vjp(function, args, cotangent)


CONVENTION_LAWS = sorted(law for law, spec in LAWS.items() if spec.chapter in ("vae", "vq", "estimators")
                         and any(a.kind == "convention" for f in spec.functions if f in FUNCTIONS
                                 for a in FUNCTIONS[f].args))


def test_a_backend_of_one_convention_passes_every_law_of_conventions():
    assert len(CONVENTION_LAWS) >= 10
    bad = {law: r.message[:300] for law in CONVENTION_LAWS
           if (r := run_law(law, ELBOOnly(), HOLDING)).verdict not in ("pass", "n/a")}
    assert not bad, bad


def test_undeclared_it_errors_on_the_other_presets():
    class Undeclared(ELBOOnly):
        conventions = None

    assert run_law("kl_divergence_matches_reference", Undeclared(), QUICK).verdict == "ERROR"


class FixedEpsilon(ReferenceBackend):
    """An EMA whose Laplace ε is fixed at construction (the argument ignored)."""

    name = "fixed-epsilon"
    variants = {"ema_epsilon": 1e-5}  # noqa: RUF012

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        return super().ema_update(codebook, ema_counts, ema_sums, ema_step, z_e, decay, 1e-5, training)


def test_fixed_epsilon():
    assert run_law("ema_update_matches_reference", FixedEpsilon(), HOLDING).verdict == "pass"
    na = run_law("ema_kmeans_step", FixedEpsilon(), QUICK)
    assert na.verdict == "n/a" and "needs ε = 0" in na.message
    undeclared = type("Undeclared", (FixedEpsilon,), {"variants": None})()
    result = run_law("ema_update_matches_reference", undeclared, QUICK)
    assert result.verdict == "FAIL"
    assert result.message.splitlines()[1].startswith("diagnosis: matches the reference with the Laplace ε = 1e-05")


class UnitVariance(ReferenceBackend):
    """A Gaussian decoder of variance 1 whatever the log-variance argument says (its gradient 0)."""

    name = "unit-variance"
    variants = {"unit_decoder_variance": True}  # noqa: RUF012

    def gaussian_log_likelihood(self, x_hat, x, log_var):
        return super().gaussian_log_likelihood(x_hat, x, np.zeros_like(log_var))

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        return super().log_importance_weights(arch, params, x, eps, np.zeros_like(decoder_log_var), likelihood)

    def elbo(self, arch, params, x, eps, decoder_log_var, likelihood):
        return super().elbo(arch, params, x, eps, np.zeros_like(decoder_log_var), likelihood)

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return super().iwae_bound(arch, params, x, eps, np.zeros_like(decoder_log_var), likelihood)

    def vjp(self, function, args, cotangent):
        ignored = ["decoder_log_var"] + (["log_var"] if function == "gaussian_log_likelihood" else [])
        fixed = {k: np.zeros_like(v) if k in ignored else v for k, v in args.items()}
        grads = dict(super().vjp(function, fixed, cotangent))
        return {k: np.zeros_like(g) if k in ignored else g for k, g in grads.items()}


class BinaryTargets(ReferenceBackend):
    """A Bernoulli decoder that refuses targets other than 0 and 1."""

    name = "binary-targets"
    variants = {"bernoulli_binary_targets": True}  # noqa: RUF012

    @staticmethod
    def _binary(x):
        if not np.all((np.asarray(x) == 0) | (np.asarray(x) == 1)):
            raise ValueError("x: Bernoulli targets must be 0 or 1")

    def bernoulli_log_likelihood(self, logits, x):
        self._binary(x)
        return super().bernoulli_log_likelihood(logits, x)

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        if likelihood == "bernoulli":
            self._binary(x)
        return super().log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood)


@pytest.mark.parametrize("port, laws", [
    (UnitVariance(), ("gaussian_log_likelihood_matches_reference", "gaussian_log_likelihood_gradient_matches_reference",
                      "log_importance_weights_matches_reference", "log_importance_weights_gradient_matches_reference",
                      "elbo_matches_reference", "iwae_bound_matches_reference",
                      "gaussian_nll_eq_scaled_reconstruction_loss")),
    (BinaryTargets(), ("bernoulli_log_likelihood_matches_reference", "bernoulli_log_prob_eq_neg_bce_with_logits",
                       "log_importance_weights_matches_reference")),
], ids=lambda v: getattr(v, "name", ""))
def test_input_variants_declared_hold_undeclared_fail(port, laws):
    for law in laws:
        result = run_law(law, port, HOLDING)
        assert result.verdict == "pass", (law, result.message[:500])
    undeclared = type("Undeclared", (type(port),), {"variants": None})()
    assert run_law(laws[0], undeclared, QUICK).verdict in ("FAIL", "ERROR")
