"""Deliberately wrong backends: each must be rejected by the law named in `caught_by`.

They prove the suite can fail. Each is the reference with one realistic bug; the
bugs are the ones seen in VAE code in the wild (σ taken as exp(log σ²), a detached
latent, reductions that ignore the convention, …). `vaespec check --backend
vaespec.proofs_tests.controls.vae:<Name>` shows the failing law.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from vaespec.reference import losses, vae
from vaespec.reference.activations import ACTIVATION_FUNCTIONS, Activation
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.architecture import LEAKY_RELU_SLOPE
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conventions import Convention, get_convention


class NegativeControl(ReferenceBackend):
    """The reference with one bug. A control breaks a function by overriding its method, and a gradient by
    defining `<function>_vjp(self, args, cotangent)`, which `vjp` calls for that function only."""

    caught_by = ""
    bug = ""

    @property
    def name(self):
        return f"control:{type(self).__name__}"

    def vjp(self, function, args, cotangent):
        broken = _defined_below(type(self), f"{function}_vjp") if isinstance(function, str) else None
        if broken is not None:
            return broken(self, args, cotangent)
        return self.reference_vjp(function, args, cotangent)

    def reference_vjp(self, function, args, cotangent):
        """The reference's own vjp (what a control changes part of)."""
        return ReferenceBackend.vjp(self, function, args, cotangent)


def _reduce(values, axis: int, how: str):
    """A convention's reduction ("sum" or "mean") over `axis`."""
    return values.sum(axis=axis) if how == "sum" else values.mean(axis=axis)


def _defined_below(cls, attribute: str):
    """`attribute` where a class between `cls` and NegativeControl defines it (a control's own override), else None."""
    for klass in cls.__mro__:
        if klass is NegativeControl:
            return None
        if attribute in vars(klass):
            return vars(klass)[attribute]
    return None


class SigmaIsExpLogVar(NegativeControl):
    bug = "σ = exp(log σ²) instead of exp(½ log σ²)"
    caught_by = "reparameterize_moments"

    def reparameterize(self, mu, log_var, eps):
        return mu + np.exp(log_var) * eps


class NoiseIgnored(NegativeControl):
    bug = "reparameterize returns μ: the noise never reaches z"
    caught_by = "reparameterize_moments"

    def reparameterize(self, mu, log_var, eps):
        return mu.copy()


class KLSignFlipped(NegativeControl):
    bug = "KL = +½ Σ(1 + lv − μ² − exp(lv)): the leading minus sign dropped"
    caught_by = "kl_nonnegative"

    def kl_divergence(self, mu, log_var, convention):
        return -losses.kl_divergence(mu, log_var, convention)


class KLWithoutMinusOne(NegativeControl):
    bug = "KL = ½ Σ(exp(lv) + μ² − lv): the −1 forgotten"
    caught_by = "kl_zero_iff_standard_normal"

    def kl_divergence(self, mu, log_var, convention):
        c = get_convention(convention)
        per = 0.5 * (np.exp(log_var) + mu * mu - log_var)
        return np.asarray(losses.reduce(losses.reduce(per, 1, c.kl_latent_reduction), 0, c.kl_batch_reduction))


class KLLogVarReadAsLogSigma(NegativeControl):
    bug = "KL written for log σ while the encoder outputs log σ²"
    caught_by = "kl_eq_monte_carlo"

    def kl_divergence(self, mu, log_var, convention):
        return losses.kl_divergence(mu, 2 * log_var, convention)


class KLLatentReductionSwapped(NegativeControl):
    bug = "KL reduced over the latent by mean where the convention says sum, and by sum where it says mean"
    caught_by = "kl_additive_over_latent"

    def kl_divergence(self, mu, log_var, convention):
        c = get_convention(convention)
        swapped = Convention(c.name, c.reconstruction_feature_reduction, c.reconstruction_batch_reduction,
                             c.reconstruction_scale, "mean" if c.kl_latent_reduction == "sum" else "sum",
                             c.kl_batch_reduction)
        return losses.kl_divergence(mu, log_var, swapped)


class ReconstructionSummedOverBatch(NegativeControl):
    bug = "reconstruction summed over the batch whatever the convention says"
    caught_by = "reductions_consistent_under_batch_splitting"

    def reconstruction_loss(self, x_hat, x, convention):
        c = get_convention(convention)
        summed = Convention(c.name, c.reconstruction_feature_reduction, "sum", c.reconstruction_scale,
                            c.kl_latent_reduction, c.kl_batch_reduction)
        return losses.reconstruction_loss(x_hat, x, summed)


class ReconstructionMeanOverLastAxis(NegativeControl):
    bug = ("a 'mean over features' taken over the last axis only, the other event axes summed (code written for "
           "[B, D] with .mean(-1), given an image [B, C, H, W]): right on [B, D]")
    caught_by = "reconstruction_loss_matches_reference"

    def reconstruction_loss(self, x_hat, x, convention):
        c = get_convention(convention)
        x_hat, x = np.asarray(x_hat, np.float64), np.asarray(x, np.float64)
        if c.reconstruction_feature_reduction != "mean" or x_hat.ndim <= 2:
            return losses.reconstruction_loss(x_hat, x, c)
        per = ((x_hat - x) ** 2).mean(axis=-1).reshape(x.shape[0], -1).sum(axis=1) * c.reconstruction_scale
        return np.asarray(per.sum() if c.reconstruction_batch_reduction == "sum" else per.mean())


class DecoderFedMu(NegativeControl):
    bug = "forward decodes μ instead of the sampled z"
    caught_by = "forward_eq_decode_reparameterize"

    def forward(self, arch, params, x, eps):
        return vae.decode(arch, params, vae.encode(arch, params, x)[0])


class SampleLatentScalesByLogVar(NegativeControl):
    bug = "sample_latent = μ + log σ² ⊙ ε"
    caught_by = "sample_latent_eq_reparameterize_encode"

    def sample_latent(self, arch, params, x, eps):
        mu, log_var = vae.encode(arch, params, x)
        return mu + log_var * eps


class GenerateHalvesPrior(NegativeControl):
    bug = "generate decodes ½ε: a prior of variance ¼ instead of N(0, I)"
    caught_by = "generate_eq_decode_prior_sample"

    def generate(self, arch, params, eps):
        return vae.generate(arch, params, 0.5 * eps)


class BetaIgnored(NegativeControl):
    bug = "loss ignores β (always 1)"
    caught_by = "loss_eq_reconstruction_add_kl"

    def loss(self, arch, params, x, eps, beta, convention):
        return vae.loss(arch, params, x, eps, 1.0, convention)


class NoiseRowsReversed(NegativeControl):
    bug = "the noise rows are paired with the batch rows in reverse order"
    caught_by = "batch_permutation_equivariance"

    def reparameterize(self, mu, log_var, eps):
        return vae.reparameterize(mu, log_var, eps[::-1])

    def sample_latent(self, arch, params, x, eps):
        return vae.sample_latent(arch, params, x, eps[::-1])

    def forward(self, arch, params, x, eps):
        return vae.forward(arch, params, x, eps[::-1])

    def loss(self, arch, params, x, eps, beta, convention):
        return vae.loss(arch, params, x, eps[::-1], beta, convention)


class EncodeHeadsSwapped(NegativeControl):
    bug = "encode returns (log σ², μ): the heads swapped"
    caught_by = "encode_matches_reference"

    def encode(self, arch, params, x):
        mu, log_var = vae.encode(arch, params, x)
        return log_var, mu


class KLGradientMissingHalf(NegativeControl):
    bug = "d KL / d log σ² = expm1(lv) instead of ½ expm1(lv)"
    caught_by = "kl_divergence_gradient_matches_reference"

    def kl_divergence_vjp(self, args, cotangent):
        grads = self.reference_vjp("kl_divergence", args, cotangent)
        grads["log_var"] = 2 * grads["log_var"]
        return grads


class DecoderInputGradientHalved(NegativeControl):
    bug = "vjp(decode) returns ½·∂x̂/∂z·ȳ for z (a stray 0.5 in the backward pass of the decoder's input); x̂ is right"
    caught_by = "network_gradients_eq_own_finite_differences"

    def decode_vjp(self, args, cotangent):
        grads = self.reference_vjp("decode", args, cotangent)
        grads["z"] = 0.5 * grads["z"]
        return grads


class LatentDetachedInLoss(NegativeControl):
    bug = "the loss gradient stops at z (a detached sample): the encoder learns only from the KL"
    caught_by = "loss_gradient_matches_reference"

    def loss_vjp(self, args, cotangent):
        a = dict(args)
        full = self.reference_vjp("loss", a, cotangent)
        # The decoder keeps its gradient; the encoder gets only the KL's, as if z were detached.
        mu, log_var = vae.encode(a["arch"], a["params"], a["x"])
        kl = self.reference_vjp("kl_divergence", {"mu": mu, "log_var": log_var, "convention": a["convention"]},
                                a["beta"] * float(cotangent))
        encoder = self.reference_vjp("encode", {"arch": a["arch"], "params": a["params"], "x": a["x"]},
                                     (kl["mu"], kl["log_var"]))
        params = {k: (full["params"][k] if k.startswith("decoder") else encoder["params"][k]) for k in full["params"]}
        return {"params": params, "x": full["x"]}


class KeyIgnored(NegativeControl):
    bug = "reparameterize_key draws from a global generator and ignores the key"
    caught_by = "reparameterize_key_eq_explicit_noise"
    _rng = np.random.default_rng()

    def reparameterize_key(self, mu, log_var, key):
        z = vae.reparameterize(mu, log_var, self._rng.standard_normal(mu.shape))
        return z, key


class _ActivationControl(NegativeControl):
    """The reference with one activation replaced (`replace(act) -> Activation`) in every function and vjp:
    the bugs of the activation chapter of `vaespec.spec.dtypes` (formula switches, kinks)."""

    activation = ""

    def replace(self, act: Activation) -> Activation:
        raise NotImplementedError

    @contextmanager
    def _swapped(self):
        original = ACTIVATION_FUNCTIONS[self.activation]
        ACTIVATION_FUNCTIONS[self.activation] = self.replace(original)
        try:
            yield
        finally:
            ACTIVATION_FUNCTIONS[self.activation] = original


def _wrap(name: str):
    def method(self, *args, **kwargs):
        with self._swapped():
            return getattr(super(_ActivationControl, self), name)(*args, **kwargs)
    method.__name__ = name
    return method


for _name in [f for f, spec in FUNCTIONS.items() if any(a.kind == "arch" for a in spec.args)] + ["vjp"]:
    setattr(_ActivationControl, _name, _wrap(_name))


class SoftplusThresholdAt20(_ActivationControl):
    bug = ("softplus(y) = y for y > 20 (torch F.softplus's default threshold): exact for moderate y, off by "
           "log1p(e⁻ʸ) ≈ 2e-9 just above 20, far beyond float64's bound")
    caught_by = "encode_matches_reference"
    activation = "softplus"

    def replace(self, act):
        return replace(act, value=lambda y: np.where(y > 20.0, y, act.value(y)),
                       derivative=lambda y: np.where(y > 20.0, 1.0, act.derivative(y)))


class TanhClampedAtFloat32Saturation(_ActivationControl):
    bug = ("tanh(y) = ±1 for |y| > 9.01, where float32's tanh rounds to ±1: right in float32, off by up to "
           "3e-8 in float64 (which rounds to ±1 only beyond 19.06)")
    caught_by = "decode_matches_reference"
    activation = "tanh"

    def replace(self, act):
        return replace(act, value=lambda y: np.where(np.abs(y) > 9.01, np.sign(y), act.value(y)),
                       derivative=lambda y: np.where(np.abs(y) > 9.01, 0.0, act.derivative(y)))


class ReluDerivativeOneAtZero(_ActivationControl):
    bug = "relu′(0) = 1 (the derivative written as y ≥ 0) where the contract states relu′(0) = 0"
    caught_by = "loss_gradient_matches_reference"
    activation = "relu"

    def replace(self, act):
        return replace(act, derivative=lambda y: (y >= 0).astype(np.float64))


class LeakyReluDerivativeOneAtZero(_ActivationControl):
    bug = "leaky_relu′(0) = 1 (JAX's where(y >= 0, y, 0.01·y)) where the contract states 0.01"
    caught_by = "decode_gradient_matches_reference"
    activation = "leaky_relu"

    def replace(self, act):
        return replace(act, derivative=lambda y: np.where(y >= 0, 1.0, LEAKY_RELU_SLOPE))


class SoftplusKinksDoNotCancel(_ActivationControl):
    bug = ("softplus′(0) = 1: max(y, 0) + log1p(exp(−|y|)) differentiated with clamp_min′(0) = 1 and |·|′(0) = 0, "
           "where softplus′(0) = σ(0) = ½")
    caught_by = "generate_gradient_matches_reference"
    activation = "softplus"

    def replace(self, act):
        return replace(act, derivative=lambda y: np.where(y == 0, 1.0, act.derivative(y)))


CONTROLS: dict[str, type[NegativeControl]] = {
    cls.__name__: cls for cls in (*NegativeControl.__subclasses__(), *_ActivationControl.__subclasses__())
    if not cls.__name__.startswith("_")
}
