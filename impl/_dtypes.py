"""Dtype and device names shared by the builder, the converters and the backend."""

from __future__ import annotations

import numpy as np
import torch

from vaespec.spec.errors import ConfigError, show

# numpy-style names, as the contract labels a backend's dtype.
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def torch_dtype(value: object, option: str = "dtype") -> torch.dtype:
    """Resolve a torch float dtype or its name ("float32", "torch.float32") to a torch dtype."""
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise ConfigError(f"{option}: expected one of {sorted(DTYPES)} (or the torch dtype), got {show(value)}")


def dtype_name(dtype: torch.dtype) -> str:
    """The numpy-style name of a torch float dtype: torch.float32 -> "float32"."""
    return str(dtype).removeprefix("torch.")


def torch_device(value: object, option: str = "device", *, meta: bool = False) -> torch.device:
    """Resolve a device name or torch.device to one vaespec computes on: the CPU, or a CUDA device that
    exists on this machine ("cuda", "cuda:1" when there are two). Any other type torch knows ("meta",
    "xpu", "mps", …) is a `ConfigError` here rather than a `NotImplementedError` later. `meta=True`
    also accepts "meta", for modules made without storage and then filled (`convert.fill_layers`) or
    allocated (`to_empty`)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, torch.device)):
        raise ConfigError(f"{option}: expected a torch device such as 'cpu' or 'cuda', got {show(value)}")
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ConfigError(f"{option}: expected a torch device such as 'cpu' or 'cuda', got {show(value)}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option}: CUDA is not available on this machine, got {show(value)}")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{option}: this machine has {torch.cuda.device_count()} CUDA device(s), got "
                              f"{show(value)}")
    elif device.type != "cpu" and not (meta and device.type == "meta"):
        raise ConfigError(f"{option}: expected 'cpu' or 'cuda' (the devices vaespec runs on), got {show(value)}")
    return device


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of `tensor` (detached, on the host); never aliases the tensor."""
    return np.array(tensor.detach().to("cpu", torch.float64).numpy(), copy=True, order="C")
