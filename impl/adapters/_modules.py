"""`ModuleBackend`: the VAE contract on a user's existing torch `nn.Module`, by `torch.func.functional_call`.

The user's model is built for an architecture by a function `model(arch) -> nn.Module` (their own class,
its constructor fed the sizes and the activation, e.g. `Activation(arch.activation)`), and a mapping says
which of its `nn.Linear`-style submodules (a `weight` [out, in] and a `bias` [out]) holds each layer of the
contract's flat layout (`encoder_dense_i`, `mu`, `log_var`, `decoder_dense_i`, `decoder_output`; see
docs/contract.md#parameter-layout). Each call evaluates the model's own methods with the contract's
parameters substituted: `state["<path>.weight"] = params["<layer>.kernel"].T`, `state["<path>.bias"] =
params["<layer>.bias"]`, so the gradients autograd takes through the model come back in the spec layout.

The network functions are the model's: `encode(x) -> (μ, log σ²)` (a pair, or a dict with "mu" and
"log_var"), `decode(z) -> x̂` (run under `explicit_noise(None)`: a draw inside them is refused), and, if
the model samples itself (`reparameterize(mu, log_var)` calling
`torch.randn_like`), its reparameterization, run under `explicit_noise(eps)`, so the contract's ε is the
one noise it draws and any other draw is refused. The losses are vaespec's (`vaespec.impl.functional`);
check your own by overriding `torch_reconstruction_loss` / `torch_kl_divergence` / `torch_loss`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError, DTypeError, ShapeError, describe

from ..functional import kl_divergence, loss, reconstruction_loss, reparameterize
from ._autograd import AutogradBackend
from ._noise import explicit_noise

Layers = Mapping[str, str]
_CACHE_SIZE = 8


class _Method(nn.Module):
    """`model.<path>(*args)` as a module's forward, so `functional_call` can substitute the model's parameters
    (under the prefix "model.") for any of its methods or submodules."""

    def __init__(self, model: nn.Module, path: str):
        super().__init__()
        self.model, self.path = model, path

    def forward(self, *args: Any) -> Any:
        target: Any = self.model
        for part in self.path.split("."):
            target = getattr(target, part)
        return target(*args)


def resolve_path(model: nn.Module, path: str, what: str) -> Any:
    target: Any = model
    for part in path.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{what}: {type(model).__name__} has no {path!r} (expected a method or submodule path)")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{what}: {type(model).__name__}.{path} is not callable, got {describe(target)}")
    return target


def linear_layers(model: nn.Module, arch: Architecture) -> dict[str, str]:
    """The default mapping: the model's `nn.Linear` submodules in registration order, taken as the contract's
    layers in `arch.dense_layers()` order (encoder hidden layers, `mu`, `log_var`, decoder hidden layers,
    `decoder_output`). A `ConfigError` when the counts differ; `ModuleBackend` then checks every shape.

    **Returns** `{contract layer name: submodule path}`."""
    paths = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    names = [name for name, _, _ in arch.dense_layers()]
    if len(paths) != len(names):
        raise ConfigError(f"layers: {type(model).__name__} built for {arch} has {len(paths)} nn.Linear modules "
                          f"{paths}, the contract's layout has {len(names)} layers {names}; pass `layers`")
    return dict(zip(names, paths))


class ModuleBackend(AutogradBackend):
    """The VAE chapter of the contract on a user's torch model (see the module doc).

    **Arguments**
    - `model`: `model(arch) -> nn.Module`, the user's model for a `vaespec.spec.architecture.Architecture`
      (its input, hidden, latent and output sizes and its activation). It is built once per architecture
      (with torch's global generator saved and restored, so building draws nothing the checks see), then
      moved to `device` and `dtype`; its parameter values never matter: every call substitutes the
      contract's.
    - `layers`: `{contract layer name: submodule path}`, or `layers(arch) -> that mapping`, or None (the
      model's `nn.Linear` modules in order, `linear_layers`). Each path names a module holding `weight`
      [out, in] and `bias` [out]; every parameter of the model must be mapped, so no weight of the model's
      own initialisation is silently used.
    - `encode`, `decode`: paths of the model's methods or submodules computing `(μ, log σ²)` from x
      (a pair, or a dict with "mu" and "log_var") and x̂ from z.
    - `reparameterize`: None (the contract's z = μ + exp(½ log σ²) ⊙ ε), or the path of the model's own
      method `(mu, log_var) -> z` that draws its noise with `torch.randn_like` / `torch.randn` /
      `Tensor.normal_`: it runs under `explicit_noise(eps)`.
    - `name`, `device`, `dtype`: the label, the device ("cpu" or an existing CUDA device) and the dtype
      (float64, float32; bfloat16 on the CPU) the model computes in.
    """

    chapters = ("vae",)

    def __init__(self, model: Callable[[Architecture], nn.Module], layers: Layers | Callable | None = None, *,
                 encode: str = "encode", decode: str = "decode", reparameterize: str | None = None,
                 name: str = "module", device: Any = "cpu", dtype: Any = "float64"):
        super().__init__(device, dtype)
        if isinstance(model, nn.Module) or not callable(model):
            raise DTypeError(f"model: expected a function arch -> nn.Module (the model for each architecture the "
                             f"laws draw), got {describe(model)}")
        for option, value in (("encode", encode), ("decode", decode), ("reparameterize", reparameterize)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{option}: expected the path of a method or submodule of the model, got {value!r}")
        if layers is not None and not callable(layers) and not isinstance(layers, Mapping):
            raise DTypeError(f"layers: expected a mapping of contract layer to submodule path, a function arch -> "
                             f"mapping, or None, got {describe(layers)}")
        self.name, self._factory, self._layers = name, model, layers
        self.encode_path, self.decode_path, self.reparameterize_path = encode, decode, reparameterize
        self._models: OrderedDict[Architecture, tuple[nn.Module, dict[str, str]]] = OrderedDict()

    def __repr__(self) -> str:
        return f"ModuleBackend(name={self.name!r}, device={self.device!r}, dtype={self.dtype!r})"

    # ------------------------------------------------------------------ the model for an architecture
    def model(self, arch: Architecture) -> tuple[nn.Module, dict[str, str]]:
        """`(model, layers)` for `arch`: the user's model on this device and dtype, and the checked mapping."""
        if arch in self._models:
            self._models.move_to_end(arch)
            return self._models[arch]
        with torch.random.fork_rng(devices=[]):
            model = self._factory(arch)
        if not isinstance(model, nn.Module):
            raise DTypeError(f"model: model({arch}) returned {describe(model)}, expected an nn.Module")
        model = model.to(device=self._device, dtype=self._dtype)
        layers = self._mapping(model, arch)
        self._models[arch] = (model, layers)
        while len(self._models) > _CACHE_SIZE:
            self._models.popitem(last=False)
        return model, layers

    def _mapping(self, model: nn.Module, arch: Architecture) -> dict[str, str]:
        raw = linear_layers(model, arch) if self._layers is None else \
            self._layers(arch) if callable(self._layers) else self._layers
        if not isinstance(raw, Mapping):
            raise DTypeError(f"layers: layers({arch}) returned {describe(raw)}, expected a mapping")
        expected = [name for name, _, _ in arch.dense_layers()]
        if set(raw) != set(expected):
            raise ConfigError(f"layers: expected the contract's layers {expected}; missing "
                              f"{sorted(set(expected) - set(raw))}, unexpected {sorted(set(raw) - set(expected))}")
        own = dict(model.named_parameters())
        for layer, fan_in, fan_out in arch.dense_layers():
            for kind, shape in (("weight", (fan_out, fan_in)), ("bias", (fan_out,))):
                key = f"{raw[layer]}.{kind}"
                if key not in own:
                    raise ConfigError(f"layers: {layer} -> {raw[layer]!r}, but {type(model).__name__} has no parameter "
                                      f"{key!r}")
                if tuple(own[key].shape) != shape:
                    raise ShapeError(f"layers: {layer} -> {raw[layer]!r}: {key} has shape {tuple(own[key].shape)}, the "
                                     f"contract's layer {layer} ({fan_in} -> {fan_out}) needs {shape}")
        mapped = {f"{raw[layer]}.{kind}" for layer in expected for kind in ("weight", "bias")}
        unmapped = sorted(set(own) - mapped)
        if unmapped:
            raise ConfigError(f"layers: parameters of {type(model).__name__} that no contract layer maps: {unmapped}; "
                              f"the check would run them with the model's own initial values")
        return {layer: raw[layer] for layer in expected}

    def state(self, layers: Mapping[str, str], params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The contract's spec-layout `params` as the model's state: `<path>.weight` = kernelᵀ, `<path>.bias`."""
        state = {}
        for key, value in params.items():
            layer, _, kind = key.rpartition(".")
            if layer in layers:
                state[f"{layers[layer]}.{'weight' if kind == 'kernel' else 'bias'}"] = value.T if kind == "kernel" \
                    else value
        return state

    def run(self, arch: Architecture, params: Mapping[str, Tensor], path: str, *args: Tensor) -> Any:
        """The model's method or submodule at `path` on `args`, with the contract's `params` substituted."""
        model, layers = self.model(arch)
        resolve_path(model, path, path)
        state = {f"model.{key}": value for key, value in self.state(layers, params).items()}
        with explicit_noise(None, f"the model's {path}"):  # the contract's network functions draw nothing
            return torch.func.functional_call(_Method(model, path), state, args)

    # ------------------------------------------------------------------ the bodies
    def _encode(self, arch: Architecture, params: Mapping[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.run(arch, params, self.encode_path, x)
        if isinstance(out, Mapping) and "mu" in out and "log_var" in out:
            return out["mu"], out["log_var"]
        if isinstance(out, (tuple, list)) and len(out) == 2:
            return out[0], out[1]
        raise DTypeError(f"encode: the model's {self.encode_path} returned {describe(out)}; expected (mu, "
                         f"log_var) or a dict with 'mu' and 'log_var'")

    def _reparameterize(self, mu: Tensor, log_var: Tensor, eps: Tensor, arch: Architecture | None) -> Tensor:
        path = self.reparameterize_path
        if path is None:
            return reparameterize(mu, log_var, eps, validate=False)
        if arch is None:  # reparameterize has no arch: any model of this latent size has the method
            arch = next((a for a in reversed(self._models) if a.latent_size == mu.shape[1]), None) or \
                Architecture(input_size=1, latent_size=mu.shape[1], encoder_sizes=(1,), decoder_sizes=(1,))
        method = resolve_path(self.model(arch)[0], path, "reparameterize")
        with explicit_noise(eps, "eps"):
            return method(mu, log_var)

    def _sample(self, arch: Architecture, params: Mapping[str, Tensor], x: Tensor, eps: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        mu, log_var = self._encode(arch, params, x)
        return mu, log_var, self._reparameterize(mu, log_var, eps, arch)

    def torch_encode(self, arch, params, x):
        return self._encode(arch, params, x)

    def torch_decode(self, arch, params, z):
        return self.run(arch, params, self.decode_path, z)

    def torch_reparameterize(self, mu, log_var, eps):
        return self._reparameterize(mu, log_var, eps, None)

    def torch_sample_latent(self, arch, params, x, eps):
        return self._sample(arch, params, x, eps)[2]

    def torch_forward(self, arch, params, x, eps):
        return self.run(arch, params, self.decode_path, self._sample(arch, params, x, eps)[2])

    def torch_generate(self, arch, params, eps):
        return self.run(arch, params, self.decode_path, eps)

    def torch_reconstruction_loss(self, x_hat, x, convention):
        return reconstruction_loss(x_hat, x, convention, validate=False)

    def torch_kl_divergence(self, mu, log_var, convention):
        return kl_divergence(mu, log_var, convention, validate=False)

    def torch_loss(self, arch, params, x, eps, beta, convention):
        mu, log_var, z = self._sample(arch, params, x, eps)
        x_hat = self.run(arch, params, self.decode_path, z)
        return loss(x_hat, x, mu, log_var, float(beta), convention, validate=False)
