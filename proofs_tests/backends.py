"""Finding backends: the defaults, and `pkg.mod:obj` specifications from the command line.

`obj` may be a backend, a class (instantiated with no arguments), or a callable
returning a backend or an iterable of backends.
"""

from __future__ import annotations

import importlib

from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError

REQUIRED = ("name", "device", "dtype", "vjp", *FUNCTIONS)


def check_backend(backend, origin: str = "backend"):
    """Raise ConfigError naming what `backend` lacks of the `VAEBackend` protocol."""
    missing = [attr for attr in REQUIRED if not hasattr(backend, attr)]
    if missing:
        raise ConfigError(f"{origin}: {backend!r} is not a VAEBackend; it lacks {missing}")
    return backend


def _is_backend(obj) -> bool:
    return not isinstance(obj, type) and all(hasattr(obj, attr) for attr in REQUIRED)


def load_backends(spec: str) -> list:
    """Resolve `pkg.mod:obj` (obj may be dotted) to a list of backends."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--backend: expected 'package.module:object', got {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"--backend: cannot import module {module_name!r} ({error})") from error
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--backend: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not _is_backend(obj) and callable(obj):
        obj = obj()
    backends = [obj] if _is_backend(obj) else list(obj) if hasattr(obj, "__iter__") else [obj]
    return [check_backend(b, f"--backend {spec}") for b in backends]


ALL_DTYPES = ("float64", "float32", "bfloat16", "float16")


def default_backends(include_reference: bool = True) -> list:
    """The reference, and the Torch implementation on every available device × supported dtype
    (CPU: float64, float32, bfloat16; CUDA adds float16)."""
    import torch

    from vaespec.impl.backend import TorchBackend, available_devices, supported

    torch_backends = [TorchBackend(device, getattr(torch, dtype)) for device in available_devices()
                      for dtype in ALL_DTYPES if supported(torch.device(device), getattr(torch, dtype))]
    return ([ReferenceBackend()] if include_reference else []) + torch_backends


def label(backend) -> str:
    return f"{backend.name}-{backend.device}-{backend.dtype}"
