"""`NetworkBackend`: a user's torch VAE with its own network and parameter layout, checked as it is (issue 15).

`ModuleBackend` maps the contract's dense layout onto a model built for each drawn `Architecture`; a model
whose encoder or decoder vaespec does not implement (a GRU, a LayerNorm MLP, a residual conv block) has no
such mapping. `NetworkBackend` checks it in its own layout instead: the parameters are the model's own
`named_parameters()` names and shapes, drawn by re-running the model's initialisation
(`reset_parameters()` of every submodule that has one) under `torch.manual_seed(seed)`, and each call
evaluates the model's methods with them substituted by `torch.func.functional_call` (buffers stay the
model's). It declares the network as `own_architectures` (one `vaespec.spec.own.OwnArchitecture`), so the
structural laws run on it and the `*_matches_reference` laws of the network functions are `n/a`.

The VAE functions are the model's: `encode(x) -> (μ, log σ²)`, `decode(z) -> x̂` (run under
`explicit_noise(None)`: a hidden draw is refused), and, if given, its `reparameterize(mu, log_var)` that draws
with `torch.randn_like` (run under `explicit_noise(eps)`). The losses are vaespec's unless the user overrides
`torch_reconstruction_loss` / `torch_kl_divergence` / `torch_loss` (a subclass), e.g. to check their own loss.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vaespec.spec.errors import ConfigError, DTypeError, describe
from vaespec.spec.own import OwnArchitecture

from ._modules import ModuleBackend, resolve_path


def initial_params(model: nn.Module, seed: int) -> dict[str, np.ndarray]:
    """The model's parameters as its own initialisation draws them from `seed`: a copy of `model` whose every
    submodule with `reset_parameters()` re-initialises under `torch.manual_seed(seed)` (torch's global generator
    saved and restored), as float64 arrays by `named_parameters()` name."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        fresh = copy.deepcopy(model)
        for module in fresh.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        return {name: value.detach().to("cpu", torch.float64).numpy().copy()
                for name, value in fresh.named_parameters()}


class NetworkBackend(ModuleBackend):
    """The VAE chapter on a user's torch model in its own parameter layout (see the module doc).

    **Arguments**
    - `model`: the user's `nn.Module` (its parameter values never matter: each call substitutes the drawn ones).
    - `input_shape`: the event of x (x [batch, *input_shape]); `latent_size`: the width of μ, log σ², ε, z.
    - `encode`, `decode`, `reparameterize`: paths of the model's methods, as for `ModuleBackend`.
    - `rounding_chain`: `(n, n_ops)` of the network's longest rounding chain, the tolerance of the laws comparing
      two of its evaluations (docs/tolerances.md, "a backend's own network").
    - `name`, `device`, `dtype`: as for `ModuleBackend`.
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...], latent_size: int, *, encode: str = "encode",
                 decode: str = "decode", reparameterize: str | None = None, rounding_chain: tuple[int, int] = (64, 16),
                 name: str | None = None, device: Any = "cpu", dtype: Any = "float64"):
        if not isinstance(model, nn.Module):
            raise DTypeError(f"model: expected the user's nn.Module, got {describe(model)}")
        super().__init__(lambda arch: model, encode=encode, decode=decode, reparameterize=reparameterize,
                         name=name or type(model).__name__, device=device, dtype=dtype)
        for path in (encode, decode) + ((reparameterize,) if reparameterize else ()):
            resolve_path(model, path, path)
        layout = tuple((key, tuple(value.shape)) for key, value in model.named_parameters())
        if not layout:
            raise ConfigError(f"model: {type(model).__name__} has no parameters to draw")
        source = copy.deepcopy(model).to("cpu", torch.float64)
        self.own_architectures = (OwnArchitecture(
            type(model).__name__, tuple(int(s) for s in input_shape), int(latent_size), layout,
            lambda seed: initial_params(source, seed), (int(rounding_chain[0]), int(rounding_chain[1]))),)
        self._model = model.to(device=self._device, dtype=self._dtype)

    def __repr__(self) -> str:
        return f"NetworkBackend(name={self.name!r}, device={self.device!r}, dtype={self.dtype!r})"

    def model(self, arch: Any) -> tuple[nn.Module, dict[str, str]]:
        """`(model, {})`: the one model, whatever example of its own network the laws drew."""
        if not isinstance(arch, OwnArchitecture) or arch not in self.own_architectures:
            raise ConfigError(f"arch: {self.name} computes only its own network {self.own_architectures[0]}, got "
                              f"{describe(arch)}")
        return self._model, {}

    def state(self, layers: Mapping[str, str], params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The parameters are already in the model's own names."""
        return dict(params)

    def _reparameterize(self, mu: Tensor, log_var: Tensor, eps: Tensor, arch: Any) -> Tensor:
        """The contract's, or the model's own `reparameterize` under `explicit_noise(eps)` (`reparameterize` has
        no arch argument: the one model's)."""
        own: Any = self.own_architectures[0] if arch is None else arch  # ModuleBackend's arch, here an own one
        return super()._reparameterize(mu, log_var, eps, own)
