"""Dtype and device names shared by the builder, the converters and the backend."""

from __future__ import annotations

import numpy as np
import torch

from vaespec.spec.errors import ConfigError

# numpy-style names, as the contract labels a backend's dtype.
DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def torch_dtype(value, option: str = "dtype") -> torch.dtype:
    """Resolve a torch float dtype or its name ("float32", "torch.float32") to a torch dtype."""
    if isinstance(value, torch.dtype) and value in DTYPES.values():
        return value
    if isinstance(value, str) and value.removeprefix("torch.") in DTYPES:
        return DTYPES[value.removeprefix("torch.")]
    raise ConfigError(f"{option}: expected one of {sorted(DTYPES)} (or the torch dtype), got {value!r}")


def dtype_name(dtype: torch.dtype) -> str:
    """The numpy-style name of a torch float dtype: torch.float32 -> "float32"."""
    return str(dtype).removeprefix("torch.")


def torch_device(value, option: str = "device") -> torch.device:
    """Resolve a device name or torch.device, refusing CUDA where it is not available."""
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise ConfigError(f"{option}: expected a torch device such as 'cpu' or 'cuda', got {value!r}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}: CUDA is not available on this machine, got {value!r}")
    return device


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of `tensor` (detached, on the host); never aliases the tensor."""
    return np.array(tensor.detach().to("cpu", torch.float64).numpy(), copy=True, order="C")
