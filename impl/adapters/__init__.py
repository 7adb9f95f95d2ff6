"""vaespec.impl.adapters: check existing torch code against the contract with little adapter code.

- `AutogradBackend`: the float64 numpy boundary (validated as `TorchBackend`'s), the device and dtype, and
  every `vjp` derived by torch autograd: an adapter writes only `torch_<function>` bodies on tensors.
  `provides` lists the functions it has bodies for; any other raises `NotProvidedError` (with the reason an
  adapter declares as `torch_<function> = NotProvided(reason)`).
- `ModuleBackend`: the VAE contract on a user's `nn.Module`, its weights substituted from the contract's
  flat parameters by `torch.func.functional_call` (a mapping of contract layers to submodule paths).
- `NetworkBackend`: a user's torch VAE in its own parameter layout (its `named_parameters()`, drawn by its own
  initialisation), declared as the backend's own network (`own_architectures`): the structural laws run on it.
- `explicit_noise(eps)`: serves the contract's ε to code that calls `torch.randn_like` / `torch.randn` /
  `Tensor.normal_` itself, and refuses any other hidden draw (`HiddenDrawError`, naming the call).
- `Activation`: the contract's activations as `nn.Module`s (torch's `nn.Softplus` differs from the spec).

Worked examples: docs/porting.md, "Checking an existing PyTorch model".
"""

from ._activations import Activation
from ._autograd import AutogradBackend, NotProvided, NotProvidedError
from ._modules import ModuleBackend, linear_layers
from ._network import NetworkBackend, initial_params
from ._noise import HiddenDrawError, explicit_noise

__all__ = [
    "Activation",
    "AutogradBackend",
    "HiddenDrawError",
    "ModuleBackend",
    "NetworkBackend",
    "NotProvided",
    "NotProvidedError",
    "explicit_noise",
    "initial_params",
    "linear_layers",
]
