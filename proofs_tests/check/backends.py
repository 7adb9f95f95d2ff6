"""Finding backends: the defaults, and `pkg.mod:obj` specifications from the command line.

`obj` may be a backend, a class (instantiated with no arguments), or a callable
returning a backend or an iterable of backends.
"""

from __future__ import annotations

import importlib

from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError
from vaespec.spec.signature import CHAPTERS

from ..laws import declared

BASE = ("name", "device", "dtype", "vjp")


def chapters(backend) -> tuple[str, ...]:
    """The spec chapters `backend` declares (attribute `chapters`; default `("vae",)`)."""
    raw = getattr(backend, "chapters", ("vae",))
    if isinstance(raw, str) or not isinstance(raw, (tuple, list, set, frozenset)):
        raise ConfigError(f"chapters: {backend!r} declares chapters = {str(raw)[:80]}; expected a tuple of some of "
                          f"{CHAPTERS}")
    declared = tuple(raw)
    unknown = [c for c in declared if c not in CHAPTERS]
    if unknown:
        raise ConfigError(f"chapters: {backend!r} declares unknown chapters {unknown}; expected some of {CHAPTERS}")
    return declared


# VAE-chapter functions other chapters' laws call: a VQ backend's decoder and reconstruction term, the
# estimators' encoder, decoder and sampler.
ALSO_NEEDED = {"vq": ("decode", "reconstruction_loss"),
               "estimators": ("encode", "decode", "reparameterize", "reconstruction_loss"),
               "bayes": ("log_importance_weights", "elbo", "iwae_bound")}


def required(backend) -> tuple[str, ...]:
    """What `backend` must provide: the base attributes and every function of its chapters, less those it
    declares it lacks (`provides` / `lacks`, `laws.declared`: their laws are n/a)."""
    mine = chapters(backend)
    names = [name for name, spec in FUNCTIONS.items() if spec.chapter in mine]
    names += [n for c in mine for n in ALSO_NEEDED.get(c, ()) if n not in names]
    lacking = declared.lacking(backend)
    return (*BASE, *(n for n in names if n not in lacking))


def check_backend(backend, origin: str = "backend"):
    """Raise ConfigError naming what `backend` lacks of the protocols of the chapters it declares, or a
    malformed declaration (`laws.declared.validate`)."""
    try:
        declared.validate(backend)
    except ConfigError as error:
        raise ConfigError(f"{origin}: {error}") from None
    missing = [attr for attr in required(backend) if not _has(backend, attr)]
    if missing:
        raise ConfigError(f"{origin}: {backend!r} declares chapters {chapters(backend)} but lacks {missing}; "
                          "a backend that implements only some functions of a chapter declares them "
                          "(`provides = (...)` or `lacks = (...)`, docs/porting.md §3.6)")
    return backend


def _has(obj, attr: str) -> bool:
    """hasattr, but a property that raises (other than AttributeError) is a ConfigError naming it."""
    try:
        return hasattr(obj, attr)
    except Exception as error:  # noqa: BLE001  (user code)
        raise ConfigError(f"reading {attr!r} of {type(obj).__name__} raised {type(error).__name__}: "
                          f"{str(error)[:200]}") from None


def _is_backend(obj) -> bool:
    return not isinstance(obj, type) and all(_has(obj, attr) for attr in BASE) and \
        any(_has(obj, name) for name in FUNCTIONS)


def load_backends(spec: str) -> list:
    """Resolve `pkg.mod:obj` (obj may be dotted) to a list of backends; a `ConfigError` naming `spec` for
    anything that goes wrong on the way (the module's own import errors included: it is user code)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--backend: expected 'package.module:object', got {spec!r}")
    if module_name.startswith(".") or not all(part.isidentifier() for part in module_name.split(".")) \
            or not all(part.isidentifier() for part in attr.split(".")):
        raise ConfigError(f"--backend: expected an absolute 'package.module:object' (dotted identifiers), got {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"--backend: cannot import module {module_name!r} ({error})") from error
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ConfigError(f"--backend {spec}: importing {module_name!r} raised {type(error).__name__}: "
                          f"{str(error)[:200]}") from None
    try:
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ConfigError(f"--backend: module {module_name!r} has no attribute {attr!r}")
            obj = getattr(obj, part)
        if not _is_backend(obj) and callable(obj):
            obj = obj()
        backends = [obj] if _is_backend(obj) else list(obj) if hasattr(obj, "__iter__") else [obj]
        return [check_backend(b, f"--backend {spec}") for b in backends]
    except ConfigError as error:
        raise error if str(error).startswith("--backend") else ConfigError(f"--backend {spec}: {error}") from None
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        raise ConfigError(f"--backend {spec}: building the backend raised {type(error).__name__}: "
                          f"{str(error)[:200]}") from None


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
