"""Deliberately wrong estimators: each is the reference with one realistic bug, rejected by `caught_by`.

The bugs are ones seen in ELBO/IWAE code: a log-sum-exp without the max shift, log σ read as
log σ², logits fed to a BCE that expects probabilities, the prior dropped from the log-weights,
an IWAE that averages the log-weights, a first-particle-only bound, a reconstruction path that
samples, an embedding gradient that overwrites repeated rows. `vaespec check --backend
vaespec.proofs_tests.controls.estimators:<Name>` shows the failing law.
"""

from __future__ import annotations

import numpy as np

from vaespec.reference import estimators as ref
from vaespec.reference import vae
from vaespec.reference.activations import softplus
from vaespec.reference.elementwise import gaussian_log_density

from .vae import NegativeControl


class _EstimatorsControl(NegativeControl):
    chapters = ("vae", "estimators")


def _last_axis_only(values):
    """Σ over the last axis, then a mean over the other event axes: code written for [batch, output] that sums
    axis −1 and averages what is left to get one number per example. Right on [batch, output]."""
    per = values.sum(axis=-1)
    return per.reshape(per.shape[0], -1).mean(axis=1)


class GaussianSumOverLastAxis(_EstimatorsControl):
    bug = ("gaussian_log_likelihood sums the last axis only and averages the other event axes (an image's rows): "
           "∏event[:-1] times too small in magnitude for [batch, *event] x, right on [batch, output]")
    caught_by = "gaussian_log_likelihood_event_eq_flattened"

    def gaussian_log_likelihood(self, x_hat, x, log_var):
        return _last_axis_only(gaussian_log_density(x, x_hat, log_var))


class BernoulliSumOverLastAxis(_EstimatorsControl):
    bug = ("bernoulli_log_likelihood sums the last axis only and averages the other event axes: right on "
           "[batch, output], wrong for [batch, *event] x")
    caught_by = "bernoulli_log_likelihood_event_eq_flattened"

    def bernoulli_log_likelihood(self, logits, x):
        return _last_axis_only(x * logits - softplus(logits))


class LogMeanExpWithoutMaxShift(_EstimatorsControl):
    bug = "log_mean_exp = log(mean(exp(w))): overflows to inf (or underflows to −inf) once |w| ≳ 709"
    caught_by = "log_mean_exp_shift_invariant"

    def log_mean_exp(self, log_weights):
        with np.errstate(over="ignore", divide="ignore"):
            return np.log(np.mean(np.exp(log_weights), axis=0))


class LogSumExpWithoutLogK(_EstimatorsControl):
    bug = "log_mean_exp = logsumexp(w): the − log K is missing, so the 'mean' exceeds the largest weight"
    caught_by = "log_mean_exp_between_mean_and_max"

    def log_mean_exp(self, log_weights):
        return ref.log_mean_exp(log_weights) + np.log(log_weights.shape[0])


class GaussianLogVarReadAsLogSigma(_EstimatorsControl):
    bug = "the Gaussian likelihood takes its log-variance argument for log σ (σ² = e^{2ℓ})"
    caught_by = "gaussian_nll_eq_scaled_reconstruction_loss"

    def gaussian_log_likelihood(self, x_hat, x, log_var):
        return ref.gaussian_log_likelihood(x_hat, x, 2.0 * log_var)


class BernoulliLogitsAsProbabilities(_EstimatorsControl):
    bug = "the decoder's logits are squashed twice: BCE-with-logits applied to σ(l)"
    caught_by = "bernoulli_log_prob_eq_neg_bce_with_logits"

    def bernoulli_log_likelihood(self, logits, x):
        return ref.bernoulli_log_likelihood(1.0 / (1.0 + np.exp(-logits)), x)


class LogWeightsWithoutPrior(_EstimatorsControl):
    bug = "log w = log p(x | z) − log q(z | x): the prior's log N(z; 0, I) is dropped"
    caught_by = "log_weights_eq_likelihood_add_log_prior_sub_log_posterior"

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        log_w = ref.log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood)
        mu, log_var = vae.encode(arch, params, x)
        z = mu + np.exp(0.5 * log_var) * eps
        return log_w + 0.5 * np.sum(z ** 2, axis=-1)  # adds back the −½Σz² that log p(z) contributes


class LogWeightsTargetChannelsLast(_EstimatorsControl):
    bug = ("a conv VAE's log-weights score x̂ [C, H, W] against the target flattened channels-last (an NHWC image "
           "pipeline's x read as NCHW's entries): entry (c, h, w) of x̂ meets another pixel's channel once C > 1; right "
           "for the dense network and single-channel images")
    caught_by = "log_importance_weights_matches_reference"

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        log_w = ref.log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood)
        if np.ndim(x) != 4:
            return log_w
        target = np.transpose(x, (0, 2, 3, 1)).reshape(x.shape)  # the same entries, channels-last order
        mu, log_var = vae.encode(arch, params, x)
        z = (mu + np.exp(0.5 * log_var) * eps).reshape(-1, eps.shape[-1])
        x_hat = vae.decode(arch, params, z).reshape(*eps.shape[:2], *x.shape[1:])  # [K, B, C, H, W]
        if likelihood == "gaussian":
            lv = np.broadcast_to(decoder_log_var, x_hat.shape)
            def score(t):
                return np.sum(gaussian_log_density(t, x_hat, lv), axis=(2, 3, 4))
        else:
            def score(t):
                return np.sum(t * x_hat - softplus(x_hat), axis=(2, 3, 4))
        return log_w - score(x) + score(target)


class IWAEMeanMinusLogK(_EstimatorsControl):
    bug = "iwae_bound = mean_k log w_k − log K: the ELBO with IWAE's normalisation, decreasing with K"
    caught_by = "iwae_bound_monotone_in_particles"

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return ref.elbo(arch, params, x, eps, decoder_log_var, likelihood) - np.log(eps.shape[0])


class IWAEFirstParticleOnly(_EstimatorsControl):
    bug = "iwae_bound returns log w of the first particle: the other K − 1 particles are drawn and ignored"
    caught_by = "iwae_bound_ge_mean_of_half_bounds"

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return ref.log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood)[0]


class ReconstructSamples(_EstimatorsControl):
    bug = "reconstruct decodes a sample μ + σ·ε (ε from a hidden generator) instead of the posterior mean"
    caught_by = "reconstruct_eq_decode_encoder_mean"
    _rng = np.random.default_rng()

    def reconstruct(self, arch, params, x):
        mu, log_var = vae.encode(arch, params, x)
        return vae.decode(arch, params, mu + np.exp(0.5 * log_var) * self._rng.standard_normal(mu.shape))


class EmbeddingGradientOverwrites(_EstimatorsControl):
    bug = "the table's gradient is scattered by assignment: a row looked up twice keeps only the last cotangent"
    caught_by = "embedding_lookup_gradient_matches_reference"

    def embedding_lookup_vjp(self, args, cotangent):
        d_table = np.zeros_like(args["table"])
        d_table[args["indices"]] = cotangent
        return {"table": d_table}


class EmbeddingOffByOne(_EstimatorsControl):
    bug = "categories are 1-based in the lookup: category i reads row i − 1 (row −1 for category 0)"
    caught_by = "embedding_lookup_eq_one_hot_matmul"

    def embedding_lookup(self, table, indices):
        return table[indices - 1]


CONTROLS: dict[str, type[NegativeControl]] = {cls.__name__: cls for cls in _EstimatorsControl.__subclasses__()}
