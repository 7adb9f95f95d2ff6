"""The float64 reference as a contract backend (`VAEBackend`, `VQBackend`, and the estimators' and bayes
chapters' protocols): every method is a lookup in `vaespec.reference.registry.REFERENCE`."""

from __future__ import annotations

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.keys import as_key, normal
from vaespec.spec.shapes import check_array

from .registry import REFERENCE, vjp
from .vae import reparameterize


class ReferenceBackend:
    """The executable spec behind the backend protocols: float64 NumPy on the CPU.

    Each contract function `f` is the method `f` (`REFERENCE[f].forward`, set below for every
    registered function); `vjp(function, args, cotangent)` is `vaespec.reference.vjp`.
    """

    name = "reference"
    device = "cpu"
    dtype = "float64"
    chapters = tuple(dict.fromkeys(FUNCTIONS[f].chapter for f in REFERENCE))
    key_stream = "vaespec"  # its keyed draws are vaespec.spec.keys' Philox stream (docs/porting.md §3.6)
    # its VAE functions run the convolutional VAE too, its VQ functions the convolutional VQ-VAE (reference.conv)
    architectures = ("dense", "conv", "conv_vq")

    def vjp(self, function, args, cotangent):
        return vjp(function, args, cotangent)  # checks the name, the args and the cotangent

    def reparameterize_key(self, mu, log_var, key):
        """`(reparameterize(μ, lv, ε), key′)` with `(ε, key′) = normal(key, μ.shape)`; μ is checked before
        its shape is read, the rest by `reparameterize`."""
        eps, new_key = normal(as_key(key), check_array("mu", mu, ("batch", "latent")).shape)
        return reparameterize(mu, log_var, eps), new_key

    def __repr__(self):
        return "ReferenceBackend()"


# Real class attributes (not __getattr__): runtime-checkable protocols look methods up statically.
for _function, _entry in REFERENCE.items():
    setattr(ReferenceBackend, _function, staticmethod(_entry.forward))
del _function, _entry
