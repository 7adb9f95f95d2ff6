"""vaespec.impl: the dense VAE in PyTorch, checked against the spec by the conformance suite.

- `build`, `build_encoder`, `build_decoder`: Edifice-shaped builders returning modules.
- `Encoder`, `Decoder`: `nn.Module`s whose layers carry the spec's layer names.
- `reparameterize`, `reparameterize_with_key`, `kl_divergence`, `reconstruction_loss`, `loss`:
  the functional ops on tensors (validated unless `validate=False`). `loss` takes the network's
  outputs `(x̂, x, μ, log σ², β, convention)`, not the contract's `(arch, params, x, eps, β, convention)`
  (docs/impl.md lists every such pair).
- `to_params`, `load_params`, `from_params`: modules <-> the spec's flat float64 parameters.
- `TorchBackend`: every chapter's contract on a torch device and dtype, a lookup in
  `vaespec.impl.registry.TORCH` (each contract function's Torch body, by name).

This layer imports only torch, numpy, the standard library and `vaespec.spec`.
"""

from vaespec.spec.init import init_params

from .backend import TorchBackend, available_backends
from .builder import build, build_decoder, build_encoder
from .convert import from_params, load_params, to_params
from .functional import kl_divergence, loss, reconstruction_loss, reparameterize
from .keys import normal_like, reparameterize_with_key
from .modules import Decoder, Encoder

__all__ = [
    "Decoder",
    "Encoder",
    "TorchBackend",
    "available_backends",
    "build",
    "build_decoder",
    "build_encoder",
    "from_params",
    "init_params",
    "kl_divergence",
    "load_params",
    "loss",
    "normal_like",
    "reconstruction_loss",
    "reparameterize",
    "reparameterize_with_key",
    "to_params",
]
