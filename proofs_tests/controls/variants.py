"""vaespec's Torch backend computing as other libraries do: one variant each (`laws.declared.VARIANTS`).

Each `Torch…` class is `vaespec.impl`'s TorchBackend with one convention of another library. Undeclared,
it is a wrong backend: the value law fails and the diagnosis names the variant. `declared(cls)` is the
same class declaring the variant, which the suite then checks against the reference computed that way:
it holds. `proofs_tests/selftests/test_declared.py` shows both.

    vaespec check --backend vaespec.proofs_tests.controls.variants:TorchWithoutEMADebiasing --law ema_update
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from vaespec.impl.backend import TorchBackend
from vaespec.spec.conventions import Convention

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class TorchWithoutEMADebiasing(TorchBackend):
    """ema_update without 1/(1 − γᵗ), as the VQ-VAE paper's EMA and vector-quantize-pytorch."""

    name = "torch-no-ema-debias"
    bug = "ema_update skips the 1/(1 − decayᵗ) debiasing"
    caught_by = "ema_update_matches_reference"
    variant: ClassVar[dict] = {"ema_debias": False}

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        # At a step count this large decayᵗ underflows: the debiasing divides by 1.
        new, counts, sums, _ = super().ema_update(codebook, ema_counts, ema_sums, 10**9, z_e, decay, epsilon,
                                                  training)
        return new, counts, sums, ema_step + 1 if training else ema_step


class TorchWithoutGaussianConstant(TorchBackend):
    """Gaussian log-densities without −½·D·log 2π (as a squared-error "log-likelihood")."""

    name = "torch-no-gaussian-constant"
    bug = "the Gaussian log-likelihood drops its constant −½·D·log 2π"
    caught_by = "gaussian_log_likelihood_matches_reference"
    variant: ClassVar[dict] = {"gaussian_constant": False}

    def gaussian_log_likelihood(self, x_hat, x, log_var):
        features = math.prod(np.shape(x)[1:])  # x [batch, *event]: every entry of an example
        return np.asarray(super().gaussian_log_likelihood(x_hat, x, log_var)) + features * HALF_LOG_2PI

    def _shifted(self, value, x, likelihood):
        return np.asarray(value) + (math.prod(np.shape(x)[1:]) * HALF_LOG_2PI if likelihood == "gaussian" else 0.0)

    def log_importance_weights(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._shifted(super().log_importance_weights(arch, params, x, eps, decoder_log_var, likelihood),
                             x, likelihood)

    def elbo(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._shifted(super().elbo(arch, params, x, eps, decoder_log_var, likelihood), x, likelihood)

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        return self._shifted(super().iwae_bound(arch, params, x, eps, decoder_log_var, likelihood), x, likelihood)


class _CodebookTermScaled(TorchBackend):
    """vq_loss without its codebook term, the codebook's gradient of the functions in `scaled` (data, not a test
    on the name) multiplied by `codebook_gradient_factor`."""

    scaled: ClassVar[tuple[str, ...]] = ("vq_loss",)

    def codebook_gradient_factor(self, args) -> float:
        raise NotImplementedError

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        z_e = self.vq_encode(arch, params, x)
        return float(super().vq_loss(arch, params, codebook, x, commitment_weight, convention)) \
            - float(self.codebook_loss(z_e, codebook))

    def vjp(self, function, args, cotangent):
        grads = super().vjp(function, args, cotangent)
        if function in self.scaled:
            grads = {**grads, "codebook": self.codebook_gradient_factor(args) * np.asarray(grads["codebook"])}
        return grads


class TorchWithoutCodebookTerm(_CodebookTermScaled):
    """vq_loss = R + w·commitment (an EMA codebook's objective: the codebook learns by EMA, not by gradient)."""

    name = "torch-no-codebook-term"
    bug = "vq_loss leaves out the codebook term"
    caught_by = "vq_loss_matches_reference"
    variant: ClassVar[dict] = {"vq_codebook_term": False}

    def codebook_gradient_factor(self, args) -> float:
        return 0.0  # only the codebook term moves the codebook


class TorchSingleTerm(_CodebookTermScaled):
    """vq_loss = R + w·‖z_e − e‖² without stop-gradients (vector-quantize-pytorch's learnable codebook)."""

    name = "torch-single-term"
    bug = "vq_loss is R + w·‖z_e − e‖², one term pulling encoder and codebook alike"
    caught_by = "vq_loss_gradient_matches_reference"
    variant: ClassVar[dict] = {"vq_single_term": True}

    def codebook_gradient_factor(self, args) -> float:
        return float(args["commitment_weight"])  # the one term pulls the codebook by w


SSE = Convention("sse", "sum", "mean", 1.0, "sum", "mean", "SSE per example at scale 1, KL summed; batch means")


class TorchOnlySSE(TorchBackend):
    """A library with one loss convention of its own: SSE per example at scale 1 (not ½), KL summed over the
    latent, both averaged over the batch. It refuses every other convention."""

    name = "torch-sse-only"
    bug = "reconstruction at scale 1 where the preset says ½"
    caught_by = "reconstruction_loss_matches_reference"
    conventions_declared = (SSE,)

    def reconstruction_loss(self, x_hat, x, convention):
        return super().reconstruction_loss(x_hat, x, SSE)

    def kl_divergence(self, mu, log_var, convention):
        return super().kl_divergence(mu, log_var, SSE)

    def loss(self, arch, params, x, eps, beta, convention):
        return super().loss(arch, params, x, eps, beta, SSE)

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        return super().vq_loss(arch, params, codebook, x, commitment_weight, SSE)

    def vjp(self, function, args, cotangent):
        return super().vjp(function, {**args, "convention": SSE} if "convention" in args else args, cotangent)


WRONG = (TorchWithoutEMADebiasing, TorchWithoutGaussianConstant, TorchWithoutCodebookTerm, TorchSingleTerm,
         TorchOnlySSE)


def declared(cls):
    """`cls` declaring what it computes (its variant, or its conventions): a backend the suite must pass."""
    extra = {"name": cls.name + "-declared"}
    if hasattr(cls, "variant"):
        extra["variants"] = dict(cls.variant)
    if hasattr(cls, "conventions_declared"):
        extra["conventions"] = cls.conventions_declared
    return type(cls.__name__ + "Declared", (cls,), extra)
