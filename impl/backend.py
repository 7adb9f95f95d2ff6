"""`TorchBackend`: the torch implementation behind the contracts of every chapter (`VAEBackend`,
`VQBackend`, `EstimatorsBackend`, `BayesBackend`).

Arrays cross the contract as float64 numpy arrays; inside, the backend computes in its own dtype
on its own device. It is a lookup: each contract function's computation is the Torch body
registered under its name (`vaespec.impl.registry.TORCH`), and the contract methods are made from
`FUNCTIONS` (one per function, with its argument names), so a new function needs its body only.
The network functions run the `Encoder`/`Decoder` (or `VQVAE`) modules users train with, built by
`from_params` and kept per architecture; composite functions are composed in torch, without round
trips through numpy. Inputs are checked at the conformance boundary (`validate_args` in the
backend's dtype), so the bodies run the functional ops with `validate=False`. `vjp` differentiates
the very same body with `torch.autograd`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS, Params, validate_args, validate_vjp
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.domains import check_result
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.keys import Key, as_key, normal
from vaespec.spec.shapes import check_array
from vaespec.spec.signature import FunctionSpec

from ._dtypes import dtype_name, to_numpy, torch_device, torch_dtype
from .bodies import CONTRACT_LAYOUT, Inputs
from .convert import from_params, load_layers, load_params
from .keys import reparameterize_with_key
from .registry import torch_function
from .vq_builder import make_layers

_DEFAULT_DTYPES = ("float64", "float32")
# Modules kept per backend and architecture (least recently used dropped first).
_MODULE_CACHE_SIZE = 16


def supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the backend runs `dtype` on `device`: float64/32 everywhere, bfloat16 on CPU and
    on CUDA devices that support it, float16 on CUDA only."""
    if dtype in (torch.float64, torch.float32):
        return True
    if dtype == torch.bfloat16:
        return device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_bf16_supported())
    return dtype == torch.float16 and device.type == "cuda"


def export(value: Tensor | Key, kind: str) -> Any:
    """One output across the boundary: float64 numpy, int64 numpy (an int when 0-d), or a Key as is.

    **Arguments** `value`: a tensor (or a `Key`); `kind`: the contract output's kind ("float", "int", "key").
    **Returns** the float64 / int64 numpy array (an int for a 0-d integer), or the `Key`."""
    if isinstance(value, Key):
        return value
    if kind == "int":
        array = value.detach().to("cpu", torch.int64).numpy().copy()
        return int(array) if array.ndim == 0 else array
    return to_numpy(value)



def _build(arch: Architecture | VQArchitecture | ConvVQArchitecture, params: Params, dtype: torch.dtype,
           device: torch.device, part: str) -> Any:
    """A new module for `part` ("encoder" or "decoder") of `arch` holding `params`: the VAE's `Encoder`/`Decoder`
    by `from_params` (the conv networks' `vaespec.impl.conv` modules, the ConvVQ-VAE's too), the dense VQ-VAE's
    `VQEncoder`/`Decoder` by `vq_builder.make_layers`."""
    if isinstance(arch, VQArchitecture):
        return make_layers(arch, params, dtype, device, (part,))[0]
    encoder, decoder = from_params(arch, params, dtype, device, part=part)
    return encoder if part == "encoder" else decoder


class TorchBackend:
    """Every chapter's contract (`VAEBackend`, `VQBackend`, `EstimatorsBackend`, `BayesBackend`) on torch.

    One method per contract function, named and ordered as `FUNCTIONS` says (made from it below
    the class), plus `vjp` and `reparameterize_key`.

    **Arguments**
    - `device`: a torch device or its name ("cpu", "cuda", "cuda:1").
    - `dtype`: a torch float dtype or its name: float64 or float32 anywhere, bfloat16 on
      CPU and bf16-capable CUDA, float16 on CUDA.

    **Attributes** `name` ("torch"), `device` (str), `dtype` (numpy-style name).
    """

    name = "torch"
    chapters: tuple[str, ...] = ("vae", "vq", "estimators", "bayes", "quantizers")
    key_stream = "vaespec"  # init_codebook, reset_dead_codes and reparameterize_key draw from vaespec.spec.keys
    # the VAE bodies build impl.conv's modules for a ConvArchitecture, the VQ bodies for a ConvVQArchitecture
    architectures = ("dense", "conv", "conv_vq")

    def __init__(self, device="cpu", dtype=torch.float64):
        self._device, self._dtype = torch_device(device), torch_dtype(dtype)
        if not supported(self._device, self._dtype):
            raise ConfigError(f"dtype: {dtype_name(self._dtype)} is not supported on {self._device}")
        self.device, self.dtype = str(self._device), dtype_name(self._dtype)
        if self._dtype not in (torch.float64, torch.float32):  # torch's Cholesky has no bfloat16/float16 kernel
            self.chapters = tuple(c for c in self.chapters if c != "bayes")

    def __repr__(self) -> str:
        return f"TorchBackend(device={self.device!r}, dtype={self.dtype!r})"

    def _tensor(self, array: npt.ArrayLike) -> Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=self._dtype, device=self._device)

    def _evaluate(self, function: str, args: Mapping[str, Any], leaves: dict | None = None, *,
                  validated: bool = False) -> tuple[Any, ...]:
        """Run `function`'s registered body on contract-named `args` (validated here unless `validated`). If
        `leaves` is a dict, each differentiable argument's leaf tensor is recorded in it (params as a dict
        name -> nn.Parameter)."""
        if not validated:  # the numpy boundary, in our dtype; the torch code is unchecked
            args = validate_args(function, args, self.dtype)
        entry = torch_function(function)
        if entry.check is not None:  # a chapter's rule beyond validate_args
            args = entry.check(function, args, self.dtype)
        return entry.body(Inputs(FUNCTIONS[function], args, tensor=self._tensor, modules=self._modules,
                                 device=self._device, dtype=self._dtype, leaves=leaves))

    def _modules(self, arch: Architecture | VQArchitecture | ConvVQArchitecture, params: Params, part: str = "all"
                 ) -> tuple[Any, Any]:
        """`(encoder, decoder)` for `arch` holding `params` in this backend's dtype and device (the one not in
        `part` is None). Each module is built once per architecture (`_build`) and kept: new parameter values
        are copied into it (`load_layers`), which skips the allocation and layer set-up of a rebuild. Values
        are compared by a digest of the module's own parameters, so parameters changed in place are never
        served stale. The modules are pure functions of their weights and `torch.autograd.grad` leaves no
        state in them, so sharing them between calls (and between an encoder call and a forward) is safe."""
        parts = ("encoder", "decoder") if part == "all" else (part,)
        made = {p: self._module(arch, params, p) for p in parts}
        return made.get("encoder"), made.get("decoder")

    def _module(self, arch: Architecture | VQArchitecture | ConvVQArchitecture, params: Params, part: str) -> Any:
        names = sorted(arch.parameter_shapes(part))
        missing = [name for name in names if name not in params]
        if missing:  # validate_args has refused this already; a direct caller gets the same error
            raise ShapeError(f"params: parameter names differ from the layout: missing {missing}")
        digest = hashlib.blake2b(digest_size=16)
        for name in names:
            value = np.ascontiguousarray(params[name], dtype=np.float64)
            digest.update(f"{name}{value.shape}".encode())
            digest.update(value.data)  # the buffer itself, not a copy
        key, values = (arch, part), digest.digest()
        cache = self.__dict__.setdefault("_module_cache", OrderedDict())
        if key not in cache:
            cache[key] = [values, _build(arch, params, self._dtype, self._device, part)]
            while len(cache) > _MODULE_CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(key)
        entry = cache[key]
        if entry[0] != values:
            entry[0] = None  # until the copy has succeeded whole
            if isinstance(arch, VQArchitecture):  # a VQEncoder is no Encoder: its layers are loaded as layers
                load_layers(params, [entry[1]])
            else:  # load_params serves the dense and the conv network
                load_params(params, **{part: entry[1]})
            entry[0] = values
        return entry[1]

    def _call(self, function: str, **args: object) -> Any:
        with torch.no_grad():
            outputs = self._evaluate(function, args)
        result = tuple(export(value, spec.kind) for value, spec in zip(outputs, FUNCTIONS[function].outputs))
        check_result(function, result, self.dtype)  # never Inf or NaN across the boundary (spec/domains.py)
        return result if len(result) > 1 else result[0]

    if TYPE_CHECKING:  # the contract methods are made from FUNCTIONS below; static tools see them as callables
        def __getattr__(self, name: str) -> Callable[..., Any]: ...

    def reparameterize_key(self, mu: np.ndarray, log_var: np.ndarray, key: Key | int) -> tuple[np.ndarray, Key]:
        """`z = μ + exp(½ log σ²) ⊙ ε` with ε from `key` (see `vaespec.impl.keys`); returns `(z, new_key)`.

        Checked as `reparameterize` is, on the noise the key draws (`validate_args` in our dtype), and on
        the result."""
        mu = check_array("mu", mu, ("batch", "latent"))
        eps, _ = normal(as_key(key), mu.shape)  # the noise reparameterize_with_key draws, for the domain check
        args = validate_args("reparameterize", {"mu": mu, "log_var": log_var, "eps": eps}, self.dtype)
        with torch.no_grad():
            z, new_key = reparameterize_with_key(self._tensor(args["mu"]), self._tensor(args["log_var"]), key,
                                                 validate=False)
        return check_result("reparameterize", to_numpy(z), self.dtype), new_key

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        """Vector-Jacobian product of `function` at `args` by `torch.autograd.grad`.

        **Arguments**
        - `function`: a name in `FUNCTIONS`.
        - `args`: the function's arguments by contract name.
        - `cotangent`: shaped like the output: `(d_mu, d_log_var)` for encode, an array for
          vector outputs, a float or 0-d array for the scalar losses.

        **Returns** `{argument: gradient}` for each differentiable argument, float64 numpy;
        `"params"` maps every name in `args["params"]` to its gradient in the spec layout
        (kernels `[in, out]`), zero for layers the function does not use.
        """
        args, cotangents = validate_vjp(function, args, cotangent, self.dtype)  # names, args, cotangent
        leaves: dict[str, Any] = {}
        with torch.enable_grad():
            outputs = self._evaluate(function, args, leaves, validated=True)
        # The cotangent covers the float outputs only (quantize's and vq_forward's indices have none).
        outputs = tuple(o for o, spec in zip(outputs, FUNCTIONS[function].outputs) if spec.kind == "float")
        check_result(function, tuple(to_numpy(o) for o in outputs), self.dtype)  # the forward's domain is the VJP's
        cotangents = self._cotangents(function, outputs, cotangents)
        layouts = leaves.pop(CONTRACT_LAYOUT, {})
        flat: list[tuple[str, str, Tensor]] = [(name, "", leaf) for name, leaf in leaves.items() if name != "params"]
        flat += [("params", key, leaf) for key, leaf in leaves.get("params", {}).items()]
        grads = torch.autograd.grad(outputs, [leaf for _, _, leaf in flat], cotangents, allow_unused=True)
        result: dict[str, Any] = {}
        if "params" in leaves:
            result["params"] = {key: np.zeros(np.shape(value)) for key, value in args["params"].items()}
        for (name, key, leaf), grad in zip(flat, grads):
            grad = torch.zeros_like(leaf) if grad is None else grad
            if name == "params":
                to_contract = layouts.get(key, _linear_layout)  # nn.Linear's [out, in] unless a module said otherwise
                result["params"][key] = to_numpy(to_contract(key, grad) if key.endswith(".kernel") else grad)
            else:
                result[name] = to_numpy(grad)
        return check_result(function, {name: result[name] for name in FUNCTIONS[function].differentiable},
                            self.dtype, "gradient")

    def _cotangents(self, function: str, outputs: tuple[Tensor, ...], given: tuple) -> tuple[Tensor, ...]:
        return cotangent_tensors(function, outputs, given, self._tensor)


def _linear_layout(name: str, grad: Tensor) -> Tensor:
    return grad.T


def cotangent_tensors(function: str, outputs: tuple[Tensor, ...], given: tuple,
                      tensor: Callable[[Any], Tensor]) -> tuple[Tensor, ...]:
    """The cotangents `validate_vjp` checked (`given`), as tensors (`tensor(array)`) matching the float
    `outputs` of `function`; a `ShapeError` naming the output whose shape differs."""
    spec_outputs = [o for o in FUNCTIONS[function].outputs if o.kind == "float"]
    tensors = tuple(tensor(c) for c in given)
    for out, tangent, spec in zip(outputs, tensors, spec_outputs):
        if tangent.shape != out.shape:
            raise ShapeError(f"cotangent: expected shape {tuple(out.shape)} for {function}'s output "
                             f"{spec.name!r}, got {tuple(tangent.shape)}")
    return tensors


def contract_method(spec: FunctionSpec, owner: str = "TorchBackend",
                    computed_by: str = "its Torch body (`vaespec.impl.registry.TORCH`)") -> Callable[..., Any]:
    """`<owner>.<function>(*args)`: the contract function with its arguments in `FUNCTIONS` order, calling
    `self._call(function, **args)`; `computed_by` completes its docstring."""
    names = tuple(arg.name for arg in spec.args)
    signature = inspect.Signature([inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for name in ("self", *names)])

    def method(self, *args, **kwargs):
        if not kwargs and len(args) == len(names):  # every argument in order: the laws' calls, bound directly
            return self._call(spec.name, **dict(zip(names, args)))
        bound = signature.bind(self, *args, **kwargs)  # a TypeError for a wrong call, as a written method
        return self._call(spec.name, **{name: bound.arguments[name] for name in names})

    method.__name__, method.__qualname__ = spec.name, f"{owner}.{spec.name}"
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__doc__ = (f"`{spec.name}({', '.join(names)})`: {spec.formula}\n\nThe contract function "
                      f"(`FUNCTIONS[{spec.name!r}]`, chapter {spec.chapter!r}) computed by {computed_by}; "
                      f"float64 numpy in and out.")
    return method


for _function, _spec in FUNCTIONS.items():
    if _function in vars(TorchBackend):
        raise ConfigError(f"{_function}: the contract function's name is already a TorchBackend attribute")
    setattr(TorchBackend, _function, contract_method(_spec))


def available_devices() -> list[str]:
    """"cpu", plus "cuda" when torch sees a CUDA device."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def available_backends(devices: Sequence[str | torch.device] | None = None,
                       dtypes: Sequence[str | torch.dtype] | None = None) -> list[TorchBackend]:
    """A backend for every supported device × dtype pair.

    **Arguments**
    - `devices`: device names (default `available_devices()`); an unavailable one is a `ConfigError`.
    - `dtypes`: dtype names or torch dtypes (default float64 and float32); a dtype supported
      on none of the devices is a `ConfigError`, one supported on some is used there only.

    **Returns** the backends, device-major.
    """
    on = [torch_device(d, "devices") for d in (available_devices() if devices is None else devices)]
    dts = [torch_dtype(d, "dtypes") for d in (_DEFAULT_DTYPES if dtypes is None else dtypes)]
    for dtype in dts:
        if not any(supported(device, dtype) for device in on):
            raise ConfigError(f"dtypes: {dtype_name(dtype)} is not supported on any of {[str(d) for d in on]}")
    return [TorchBackend(device, dtype) for device in on for dtype in dts if supported(device, dtype)]
