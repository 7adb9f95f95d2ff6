"""Key-passing randomness for torch tensors, in the style of Nx.Random.

Noise comes from `vaespec.spec.keys.normal`: drawn in float64 on the host from an
explicit key, then cast to the tensor's dtype and moved to its device. So a key gives
the same noise on every device and dtype (up to the cast), never touches torch's
global generator, and `reparameterize_with_key(μ, lv, k)` equals
`reparameterize(μ, lv, ε)` on the key's noise `ε`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vaespec.spec.errors import DTypeError, describe
from vaespec.spec.keys import Key, as_key, normal

from ._checks import check_tensors
from .functional import reparameterize

_LATENT = ("batch", "latent")


def normal_like(tensor: Tensor, key: Key | int) -> tuple[Tensor, Key]:
    """Standard normal noise with the shape, dtype and device of `tensor`.

    **Arguments**
    - `tensor`: any tensor; only its shape, dtype and device are read.
    - `key`: a `Key` or an integer seed.

    **Returns** `(eps, new_key)`; `eps` depends only on `key` and the shape. A non-tensor or a
    non-floating tensor is a `DTypeError` naming `tensor`.
    """
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point() or tensor.device.type == "meta":
        raise DTypeError(f"tensor: expected a floating-point torch.Tensor (its shape, dtype and device are read), "
                         f"got {describe(tensor)}")
    eps, new_key = normal(as_key(key), tuple(tensor.shape))
    return torch.as_tensor(eps, dtype=tensor.dtype, device=tensor.device), new_key


def reparameterize_with_key(mu: Tensor, log_var: Tensor, key: Key | int, *, validate: bool = True
                            ) -> tuple[Tensor, Key]:
    """`z = μ + exp(½ log σ²) ⊙ ε` with `ε` drawn from `key`.

    **Arguments**
    - `mu`, `log_var`: `[batch, latent]`.
    - `key`: a `Key` or an integer seed.
    - `validate`: check shapes, dtypes, devices and finiteness first, then the domain on the drawn
      noise exactly as `reparameterize` does (`vaespec.spec.domains`: z must be finite in the dtype).

    **Returns** `(z, new_key)`: thread `new_key` into the next call for fresh noise.
    """
    if validate:
        check_tensors({"mu": mu, "log_var": log_var}, {"mu": _LATENT, "log_var": _LATENT})
    eps, new_key = normal_like(mu, key)
    return reparameterize(mu, log_var, eps, validate=validate), new_key
