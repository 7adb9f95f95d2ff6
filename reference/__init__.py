"""vaespec.reference: the float64 NumPy implementation of the spec, with hand-written gradients.

Imports numpy and vaespec.spec only.
"""

from .activations import ACTIVATION_FUNCTIONS, get_activation
from .backend import ReferenceBackend
from .gradients import (decode_vjp, encode_vjp, forward_vjp, generate_vjp, kl_divergence_vjp, loss_vjp,
                        reconstruction_loss_vjp, reparameterize_vjp, sample_latent_vjp, vjp)
from .init import init_params
from .magnitude import magnitude, vjp_magnitude
from .vae import (decode, encode, forward, generate, kl_divergence, kl_per_coordinate, loss, reconstruction_loss,
                  reparameterize, sample_latent)

__all__ = [
    "ACTIVATION_FUNCTIONS", "ReferenceBackend", "decode", "decode_vjp", "encode", "encode_vjp", "forward",
    "forward_vjp", "generate", "generate_vjp", "get_activation", "init_params", "kl_divergence", "kl_divergence_vjp",
    "kl_per_coordinate", "loss", "loss_vjp", "magnitude", "vjp_magnitude", "reconstruction_loss", "reconstruction_loss_vjp",
    "reparameterize", "reparameterize_vjp", "sample_latent", "sample_latent_vjp", "vjp",
]
