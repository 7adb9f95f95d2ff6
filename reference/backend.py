"""The float64 reference as a contract backend (`VAEBackend` and `VQBackend`)."""

from __future__ import annotations

from vaespec.spec.keys import as_key, normal
from vaespec.spec.shapes import check_array

from . import bayes, estimators, gradients, vae
from .bayes import BayesReferenceMethods
from .estimators import EstimatorsReferenceMethods
from .vq import VQReferenceMethods


class ReferenceBackend(VQReferenceMethods, EstimatorsReferenceMethods, BayesReferenceMethods):
    """The executable spec behind the `VAEBackend` and `VQBackend` protocols: float64 NumPy on the CPU.

    Each chapter's functions come from its module (the VQ chapter's as the mixin
    `vq.VQReferenceMethods`); `vjp` routes every differentiable function of every chapter.
    """

    name = "reference"
    device = "cpu"
    dtype = "float64"
    chapters = ("vae", "vq", "estimators", "bayes")

    encode = staticmethod(vae.encode)
    decode = staticmethod(vae.decode)
    reparameterize = staticmethod(vae.reparameterize)
    sample_latent = staticmethod(vae.sample_latent)
    forward = staticmethod(vae.forward)
    generate = staticmethod(vae.generate)
    reconstruction_loss = staticmethod(vae.reconstruction_loss)
    kl_divergence = staticmethod(vae.kl_divergence)
    loss = staticmethod(vae.loss)

    def vjp(self, function, args, cotangent):
        if isinstance(function, str) and function in bayes.FUNCTIONS:
            return bayes.vjp(function, args, cotangent)
        chapter = estimators.vjp if isinstance(function, str) and function in estimators.FUNCTIONS else gradients.vjp
        return chapter(function, args, cotangent)  # each checks the name, the args and the cotangent

    def reparameterize_key(self, mu, log_var, key):
        """`(reparameterize(μ, lv, ε), key′)` with `(ε, key′) = normal(key, μ.shape)`; μ is checked before
        its shape is read, the rest by `reparameterize`."""
        eps, new_key = normal(as_key(key), check_array("mu", mu, ("batch", "latent")).shape)
        return vae.reparameterize(mu, log_var, eps), new_key

    def __repr__(self):
        return "ReferenceBackend()"
