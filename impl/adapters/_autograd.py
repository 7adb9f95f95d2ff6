"""`AutogradBackend`: the float64 numpy boundary and the autograd VJP, so an adapter writes only torch bodies.

An adapter subclasses it and writes, for each contract function it provides, a method `torch_<function>`
taking the function's arguments by their contract names, as torch values:

- an "array" argument is a tensor in the backend's dtype on its device (a leaf requiring grad in a `vjp`
  when the argument is differentiable), an "index" argument an int64 tensor;
- `params` is a dict `{name: tensor}` in the spec layout (kernels `[in, out]`, y = x·W + b);
- everything else (`arch`, `convention`, scalars, flags, sizes, keys) is the validated value;

and returning the function's outputs in `FUNCTIONS[function].outputs` order (one tensor, or a tuple; an
integer output may be a tensor or an int, a key output a `Key`). The boundary is `TorchBackend`'s:
`validate_args` / `validate_vjp` in the backend's dtype, the outputs exported by `vaespec.impl.backend.export`
and checked finite by `check_result`. `vjp(function, args, cotangent)` runs the same body under
`torch.enable_grad()` and differentiates it with `torch.autograd.grad`: every `<function>_vjp` is derived.

A contract function without a body is *not provided*: it is absent from `provides`, and calling it (or its
vjp) raises `NotProvidedError` saying so. An adapter says why where it declares its bodies, one function at a
time: `torch_<function> = NotProvided("reason")` (a subclass may provide it again with a real body); the reasons
are gathered into `not_provided` ({function: reason}), which the suite's n/a messages quote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from vaespec.spec.contract import FUNCTIONS, validate_args, validate_vjp
from vaespec.spec.domains import check_result
from vaespec.spec.errors import ConfigError
from vaespec.spec.keys import Key

from .._dtypes import dtype_name, to_numpy, torch_device, torch_dtype
from ..backend import contract_method, cotangent_tensors, export, supported
from ..bodies import Inputs

PREFIX = "torch_"


class NotProvidedError(ConfigError):
    """A contract function the backend does not provide was called (it is not in the backend's `provides`)."""


class NotProvided:
    """`torch_<function> = NotProvided(reason)`: the adapter declares, in place of a body, that it does not provide
    `<function>` and why (shown in the `NotProvidedError` and in the suite's n/a messages)."""

    def __init__(self, reason: str):
        if not isinstance(reason, str) or not reason:
            raise ConfigError(f"reason: expected a non-empty string saying why, got {reason!r}")
        self.reason = reason

    def __repr__(self) -> str:
        return f"NotProvided({self.reason!r})"


def _as_tensor(value: Any) -> Any:
    """A body's output as the boundary exports it: tensors and keys as they are, a number as a 0-d tensor."""
    return value if isinstance(value, (Tensor, Key)) else torch.as_tensor(value)


class AutogradBackend:
    """A contract backend whose functions are torch bodies `torch_<function>` (see the module doc).

    **Arguments**
    - `device`: "cpu" or an existing CUDA device ("cuda", "cuda:1"), or a `torch.device`.
    - `dtype`: float64 or float32 anywhere, bfloat16 on the CPU and bf16-capable CUDA, float16 on CUDA
      (a torch dtype or its name): the dtype the bodies compute in.

    **Attributes**
    - `name`, `device`, `dtype`, `chapters`: the backend's label and its declared chapters.
    - `provides`: `frozenset` of the contract functions that have a body (class attribute, made from the
      `torch_<function>` methods); every other contract function is *not provided*.
    - `not_provided`: `{function: reason}` (class attribute): why each function declared
      `torch_<function> = NotProvided(reason)` is not provided, shown in the `NotProvidedError`; a subclass
      may also give the mapping itself (merged with its declarations).
    """

    name = "autograd"
    chapters: tuple[str, ...] = ("vae",)
    provides: ClassVar[frozenset[str]] = frozenset()
    not_provided: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = {name[len(PREFIX):] for klass in cls.__mro__ for name in vars(klass) if name.startswith(PREFIX)}
        unknown = sorted(declared - set(FUNCTIONS))
        if unknown:
            raise ConfigError(f"{cls.__name__}: {[PREFIX + u for u in unknown]} name no contract function "
                              f"(vaespec.spec.contract.FUNCTIONS)")
        # getattr resolves each name by the MRO: the most derived declaration (a body or NotProvided) wins
        lacking = {f: getattr(cls, PREFIX + f).reason for f in declared
                   if isinstance(getattr(cls, PREFIX + f), NotProvided)}
        cls.provides = frozenset(declared - set(lacking))
        cls.not_provided = {f: r for f, r in {**cls.not_provided, **lacking}.items() if f not in cls.provides}

    def __init__(self, device: Any = "cpu", dtype: Any = "float64"):
        self._device, self._dtype = torch_device(device), torch_dtype(dtype)
        if not supported(self._device, self._dtype):
            raise ConfigError(f"dtype: {dtype_name(self._dtype)} is not supported on {self._device}")
        self.device, self.dtype = str(self._device), dtype_name(self._dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"

    if TYPE_CHECKING:  # the contract methods are made from FUNCTIONS below; static tools see them as callables
        def __getattr__(self, name: str) -> Callable[..., Any]: ...

    @property
    def _own_networks(self) -> bool:
        """Whether the adapter computes networks of its own (`own_architectures`): its boundary then accepts an
        `OwnArchitecture` as `arch` (`validate_args(..., own_networks=True)`)."""
        return bool(getattr(self, "own_architectures", None))

    def tensor(self, array: Any) -> Tensor:
        """`array` as a tensor in the backend's dtype on its device (float64 first, so no narrowing twice)."""
        return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=self._dtype, device=self._device)

    def _body(self, function: str) -> Callable[..., Any]:
        if function not in self.provides:
            reason = self.not_provided.get(function)
            raise NotProvidedError(
                f"{function}: not provided by {self.name} ({type(self).__name__} has no {PREFIX}{function}"
                f"{'; ' + reason if reason else ''}); it provides {sorted(self.provides)}")
        return getattr(self, PREFIX + function)

    def _evaluate(self, function: str, args: Mapping[str, Any], leaves: dict | None) -> tuple[Any, ...]:
        """The body of `function` on validated `args`, its outputs as a tuple; leaves recorded when asked."""
        body, spec = self._body(function), FUNCTIONS[function]
        inputs = Inputs(spec, args, tensor=self.tensor, modules=_no_modules, device=self._device, dtype=self._dtype,
                        leaves=leaves)
        named: dict[str, Any] = {}
        for arg in spec.args:
            if arg.kind in ("array", "index"):
                named[arg.name] = inputs.tensors[arg.name]
            elif arg.kind == "params":
                params = {key: self.tensor(value) for key, value in args[arg.name].items()}
                if leaves is not None and arg.differentiable:
                    params = {key: value.requires_grad_() for key, value in params.items()}
                    leaves[arg.name] = params
                named[arg.name] = params
            else:
                named[arg.name] = args[arg.name]
        outputs = body(**named)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        if len(outputs) != len(spec.outputs):
            raise ConfigError(f"{type(self).__name__}.{PREFIX}{function}: returned {len(outputs)} outputs, the "
                              f"contract has {len(spec.outputs)} ({[o.name for o in spec.outputs]})")
        return tuple(_as_tensor(value) for value in outputs)

    def _call(self, function: str, **args: Any) -> Any:
        self._body(function)  # not provided: say so before validating anything
        args = validate_args(function, args, self.dtype, own_networks=self._own_networks)
        with torch.no_grad():
            outputs = self._evaluate(function, args, None)
        result = tuple(export(value, spec.kind) for value, spec in zip(outputs, FUNCTIONS[function].outputs))
        check_result(function, result, self.dtype)
        return result if len(result) > 1 else result[0]

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        """Vector-Jacobian product of `function` at `args`, by `torch.autograd.grad` through its body.

        **Arguments**
        - `function`: a contract function in `provides`.
        - `args`: its arguments by contract name; `cotangent`: shaped like its float outputs (a tuple for
          several, a float for a scalar).

        **Returns** `{argument: gradient}` for each differentiable argument (float64 numpy; `"params"` maps
        every name of `args["params"]` to its gradient in the spec layout, zero where unused).
        """
        if isinstance(function, str) and function in FUNCTIONS:
            self._body(function)
        args, cotangents = validate_vjp(function, args, cotangent, self.dtype, own_networks=self._own_networks)
        leaves: dict[str, Any] = {}
        with torch.enable_grad():
            outputs = self._evaluate(function, args, leaves)
        outputs = tuple(o for o, spec in zip(outputs, FUNCTIONS[function].outputs) if spec.kind == "float")
        check_result(function, tuple(to_numpy(o) for o in outputs), self.dtype)
        tangents = cotangent_tensors(function, outputs, cotangents, self.tensor)
        flat = [(name, None, leaf) for name, leaf in leaves.items() if name != "params"]
        flat += [("params", key, leaf) for key, leaf in leaves.get("params", {}).items()]
        differentiable = [(o, t) for o, t in zip(outputs, tangents) if o.requires_grad]
        grads = torch.autograd.grad([o for o, _ in differentiable], [leaf for _, _, leaf in flat],
                                    [t for _, t in differentiable], allow_unused=True) if differentiable else \
            (None,) * len(flat)
        result: dict[str, Any] = {"params": {}} if "params" in leaves else {}
        for (name, key, leaf), grad in zip(flat, grads):
            value = to_numpy(torch.zeros_like(leaf) if grad is None else grad)
            if name == "params":
                result["params"][key] = value
            else:
                result[name] = value
        return check_result(function, {name: result[name] for name in FUNCTIONS[function].differentiable},
                            self.dtype, "gradient")


def _no_modules(arch: Any, params: Any, part: str) -> tuple[Any, Any]:
    raise ConfigError("an AutogradBackend body reads params as tensors (its `params` argument), not modules")


for _function, _spec in FUNCTIONS.items():
    setattr(AutogradBackend, _function,
            contract_method(_spec, "AutogradBackend", f"the adapter's `{PREFIX}{_function}` body (through autograd)"))
