"""Deliberately wrong linear-Gaussian evidence and posterior, each rejected by `caught_by`.

Both bugs are ones the algebra invites: the determinant lemma applied with WᵀW where W Wᵀ
belongs (log det(WᵀW + σ²I_L) for log det(W Wᵀ + σ²I_D), dropping (D − L) log σ²), and the
posterior covariance written M⁻¹ for σ² M⁻¹; and an IWAE without its − log K, which only the
exact evidence exposes as exceeding log p(x). `vaespec check --backend
vaespec.proofs_tests.controls.bayes:<Name>` shows the failing law.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import bayes as ref
from vaespec.reference import estimators as ref_estimators

from .vae import NegativeControl


class _BayesControl(NegativeControl):
    chapters = ("vae", "estimators", "bayes")


class EvidenceGramSwapped(_BayesControl):
    bug = "log det(W Wᵀ + σ²I_D) computed as log det(WᵀW + σ²I_L): the (D − L) log σ² of the determinant lemma is lost"
    caught_by = "log_weights_eq_log_evidence_at_exact_posterior"

    def linear_gaussian_log_evidence(self, x, weight, bias, noise_log_var):
        output, latent = weight.shape
        return (ref.linear_gaussian_log_evidence(x, weight, bias, noise_log_var)
                + 0.5 * (output - latent) * noise_log_var)


class PosteriorCovarianceWithoutNoise(_BayesControl):
    bug = "the posterior covariance is M⁻¹ instead of σ² M⁻¹ (M = WᵀW + σ²I)"
    caught_by = "log_weights_eq_log_evidence_at_exact_posterior"

    def linear_gaussian_posterior(self, x, weight, bias, noise_log_var):
        mean, cov = ref.linear_gaussian_posterior(x, weight, bias, noise_log_var)
        return mean, cov / np.exp(noise_log_var)


class IWAEWithoutLogK(_BayesControl):
    bug = "iwae_bound = logsumexp_k log w_k: the − log K is missing, so the bound exceeds log p(x) by up to log K"
    caught_by = "iwae_bound_le_log_evidence"

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return ref_estimators.iwae_bound(arch, params, x, eps, decoder_log_var, likelihood) + np.log(eps.shape[0])


CONTROLS: dict[str, type[NegativeControl]] = {cls.__name__: cls for cls in _BayesControl.__subclasses__()}
