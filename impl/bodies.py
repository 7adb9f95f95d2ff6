"""What a Torch body is: the computation of one contract function in torch, registered under its name.

A body is `body(inputs) -> outputs`. `inputs` (an `Inputs`) holds the call's validated contract
arguments, its float arrays as tensors in the backend's dtype on its device, its index arrays as
int64 tensors, and the modules of a network function; the body returns the function's outputs in
`FUNCTIONS[name].outputs` order (tensors; a `Key` output as is). `TorchBackend` runs a body under
`torch.no_grad()` for a value and under `torch.enable_grad()` for `vjp`, which differentiates the
very same computation by `torch.autograd.grad` with respect to the leaves `inputs` records: each
differentiable array argument, and `"params"`, the dense layers of the modules the body asked for.

Each chapter's module registers its bodies in its `Bodies` table, one decorator per function:

    BODIES = Bodies("vae")

    @BODIES.register("decode")
    def _decode(inputs: Inputs) -> Outputs:
        _, decoder = inputs.modules("decoder")
        return (decoder(inputs.tensors["z"]),)

and `vaespec.impl.registry` gathers the chapters' tables into `TORCH`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vaespec.spec.errors import ConfigError
from vaespec.spec.signature import FunctionSpec

from .modules import DenseStack

# The leaves' entry mapping each "<layer>.kernel" leaf to its conversion `(name, grad) -> grad` into the spec's
# layout (`vjp` applies it; nn.Linear's transpose when absent): vaespec.impl.conv.contract_kernel for the conv network.
CONTRACT_LAYOUT = "params_layout"

Outputs = tuple[Any, ...]  # tensors, in the order of FUNCTIONS[name].outputs (a Key output as is)
Body = Callable[["Inputs"], Outputs]
# A chapter's rule on the validated arguments, run before the body: (function, args, dtype name) -> args.
Check = Callable[[str, Mapping[str, Any], str], Mapping[str, Any]]
# The backend's module cache: (arch, params, part) -> (encoder or None, decoder or None).
Modules = Callable[[Any, Mapping[str, np.ndarray], str], tuple[Any, Any]]


class Inputs:
    """One call's arguments as a body reads them.

    **Attributes**
    - `args`: the validated contract arguments by name (float64 arrays, a `Convention`, a `Key`, …).
    - `tensors`: every "array" argument as a tensor in `dtype` on `device` (requiring grad, and recorded
      as a leaf, when the call records leaves and the argument is differentiable), every "index"
      argument as an int64 tensor on `device`.
    - `device`, `dtype`: the backend's torch device and dtype.
    """

    def __init__(self, spec: FunctionSpec, args: Mapping[str, Any], *, tensor: Callable[[Any], Tensor],
                 modules: Modules, device: torch.device, dtype: torch.dtype, leaves: dict | None):
        self.args, self.device, self.dtype = args, device, dtype
        self._modules, self._leaves = modules, leaves
        self.tensors: dict[str, Tensor] = {}
        for arg in spec.args:
            if arg.kind == "array":
                self.tensors[arg.name] = tensor(args[arg.name])
                if leaves is not None and arg.differentiable:
                    leaves[arg.name] = self.tensors[arg.name].requires_grad_()
            elif arg.kind == "index":
                self.tensors[arg.name] = torch.as_tensor(np.asarray(args[arg.name], dtype=np.int64), device=device)

    def modules(self, part: str = "all") -> tuple[Any, Any]:
        """`(encoder, decoder)` holding `args["params"]` for `args["arch"]`, from the backend's module cache
        (`vaespec.impl.convert.from_params(arch, params, part=part)`: the one not in `part` is None); their
        dense layers become the `"params"` leaves."""
        encoder, decoder = self._modules(self.args["arch"], self.args["params"], part)
        self.record_params(*(module for module in (encoder, decoder) if module is not None))
        return encoder, decoder

    def record_params(self, *modules: DenseStack) -> None:
        """When the call records leaves: the `"params"` leaves are the dense layers of `modules` (each with
        `dense_layers()`), `"<layer>.kernel"` → the `nn.Linear` weight `[out, in]` (`vjp` transposes it to
        the spec's `[in, out]`), `"<layer>.bias"` → its bias."""
        if self._leaves is not None:
            self._leaves["params"] = {f"{name}.{kind}": getattr(linear, attr) for module in modules
                                      for name, linear in module.dense_layers()
                                      for kind, attr in (("kernel", "weight"), ("bias", "bias"))}
            # a module in another layout (the conv network's Conv2d [out, in, kh, kw]) converts its own kernels
            self._leaves[CONTRACT_LAYOUT] = {f"{name}.kernel": module.to_contract for module in modules
                                             if hasattr(module, "to_contract") for name, _ in module.dense_layers()}

    def record(self, name: str, leaf: Tensor) -> None:
        """When the call records leaves: `leaf` stands for argument `name` (the codebook parameter of a
        model built from the `codebook` argument, say)."""
        if self._leaves is not None:
            self._leaves[name] = leaf


@dataclass(frozen=True)
class TorchFunction:
    """A contract function's torch computation.

    `body(inputs) -> outputs`; `check(function, args, dtype) -> args`, a chapter's rule on the
    validated arguments run before the body (None: `validate_args` is all there is); `chapter`, the
    table it was registered in.
    """

    name: str
    body: Body
    chapter: str
    check: Check | None = None


class Bodies(Mapping[str, TorchFunction]):
    """One chapter's Torch bodies by contract function name, filled by `register`."""

    def __init__(self, chapter: str):
        self.chapter = chapter
        self._entries: dict[str, TorchFunction] = {}

    def register(self, name: str, *, check: Check | None = None) -> Callable[[Body], Body]:
        """Decorator: the body of contract function `name` (with the chapter rule `check`, if any)."""
        def add(body: Body) -> Body:
            if name in self._entries:
                raise ConfigError(f"{name}: a torch body is registered twice in the {self.chapter!r} chapter "
                                  f"({self._entries[name].body.__qualname__} and {body.__qualname__})")
            self._entries[name] = TorchFunction(name, body, self.chapter, check)
            return body
        return add

    def __getitem__(self, name: str) -> TorchFunction:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
