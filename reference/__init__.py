"""vaespec.reference: the float64 NumPy implementation of the spec, with hand-written gradients.

Every contract function's forward, VJP, magnitude and VJP magnitude are registered by name in
`registry.REFERENCE`; `vjp`, `magnitude` and `vjp_magnitude` look them up (validated).
Imports numpy and vaespec.spec only.
"""

from .activations import ACTIVATION_FUNCTIONS, get_activation
from .backend import ReferenceBackend
from .init import init_params
from .losses import kl_divergence, kl_divergence_vjp, kl_per_coordinate, reconstruction_loss, reconstruction_loss_vjp
from .registry import REFERENCE, magnitude, vjp, vjp_magnitude
from .vae import (
                  decode,
                  decode_vjp,
                  encode,
                  encode_vjp,
                  forward,
                  forward_vjp,
                  generate,
                  generate_vjp,
                  loss,
                  loss_vjp,
                  reparameterize,
                  reparameterize_vjp,
                  sample_latent,
                  sample_latent_vjp,
)

__all__ = [
                  "ACTIVATION_FUNCTIONS",
                  "REFERENCE",
                  "ReferenceBackend",
                  "decode",
                  "decode_vjp",
                  "encode",
                  "encode_vjp",
                  "forward",
                  "forward_vjp",
                  "generate",
                  "generate_vjp",
                  "get_activation",
                  "init_params",
                  "kl_divergence",
                  "kl_divergence_vjp",
                  "kl_per_coordinate",
                  "loss",
                  "loss_vjp",
                  "magnitude",
                  "reconstruction_loss",
                  "reconstruction_loss_vjp",
                  "reparameterize",
                  "reparameterize_vjp",
                  "sample_latent",
                  "sample_latent_vjp",
                  "vjp",
                  "vjp_magnitude",
]
