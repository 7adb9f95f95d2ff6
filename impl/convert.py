"""Moving parameters between the torch modules and the spec's flat float64 mapping.

The spec stores `"<layer>.kernel"` as `[in, out]` (y = x·W + b); `nn.Linear` stores
`weight` as `[out, in]`, so `kernel = weight.T` both ways. Biases are the same vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from vaespec.spec.architecture import Architecture
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.errors import ConfigError, DTypeError, ShapeError, describe
from vaespec.spec.shapes import check_params

from . import conv
from ._dtypes import to_numpy, torch_device, torch_dtype
from .modules import Decoder, DenseStack, Encoder


def _given(encoder: object, decoder: object) -> list[DenseStack]:
    """The modules passed, type-checked; at least one is required."""
    for name, module, cls in (("encoder", encoder, Encoder), ("decoder", decoder, Decoder)):
        if module is not None and not isinstance(module, cls):
            raise DTypeError(f"{name}: expected a vaespec.impl {cls.__name__}, got {describe(module)}")
    modules = [m for m in (encoder, decoder) if isinstance(m, DenseStack)]  # the non-None ones, checked above
    if not modules:
        raise ConfigError("encoder, decoder: expected at least one module, got neither")
    return modules


def to_params(encoder: Encoder | None = None, decoder: Decoder | None = None) -> dict[str, np.ndarray]:
    """The modules' parameters as the spec's flat mapping of float64 numpy copies.

    **Arguments**
    - `encoder`, `decoder`: either or both modules.

    **Returns** `{"<layer>.kernel": [in, out], "<layer>.bias": [out], …}` in layout order.
    """
    params: dict[str, np.ndarray] = {}
    for module in _given(encoder, decoder):
        for name, linear in module.dense_layers():
            params[f"{name}.kernel"] = to_numpy(linear.weight.T)
            params[f"{name}.bias"] = to_numpy(linear.bias)
    return params


def load_params(params: Mapping[str, np.ndarray], encoder: Encoder | None = None,
                decoder: Decoder | None = None) -> None:
    """Copy spec-layout parameters into the modules, in place, in each module's dtype and device.

    `params` may hold the whole layout or only the parts being loaded; every name of
    each given module's part (`module.arch.parameter_shapes(module.part)`) must be
    present with its documented shape, and no name outside the layout is accepted.

    **Arguments**
    - `params`: mapping from parameter name to a float numpy array (finite).
    - `encoder`, `decoder`: either or both modules.

    **Raises** `ShapeError` (missing, unexpected or mis-shaped names), `DTypeError`, `DomainError`.
    """
    if isinstance(encoder, (conv.ConvEncoder, conv.ConvVQEncoder)) \
            or isinstance(decoder, (conv.ConvDecoder, conv.ConvVQDecoder)):  # a conv network's layout
        conv.load_params(params, encoder, decoder)
        return
    load_layers(params, _given(encoder, decoder))


def load_layers(params: Mapping[str, np.ndarray], modules: Sequence[DenseStack]) -> None:
    """Copy the flat layout into `modules` (each with `.arch`, `.part`, `.dense_layers()`), checked first.

    Shared by the VAE's and the VQ-VAE's converters: a name outside every module's layout, a
    missing name or a wrong shape raises before any parameter is written.
    """
    with torch.no_grad():
        for module, part in _checked_parts(params, modules):
            for name, linear in module.dense_layers():
                # The spec's kernel is [in, out], nn.Linear's weight [out, in]; copy_ casts and moves.
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(part[f"{name}.kernel"].T)))
                linear.bias.copy_(torch.from_numpy(np.ascontiguousarray(part[f"{name}.bias"])))


def fill_layers(params: Mapping[str, np.ndarray], modules: Sequence[DenseStack], device: torch.device) -> None:
    """Give `modules`, made on the meta device, new parameters on `device` holding the flat layout (checked
    first, as `load_layers`), each in its module's dtype.

    What `module.to_empty(device=device)` followed by `load_layers` gives, without allocating storage
    only to overwrite it (to_empty's meta kernels cost more than the layers' whole forward).
    """
    for module, part in _checked_parts(params, modules):
        for name, linear in module.dense_layers():
            dtype = linear.weight.dtype
            linear.weight = torch.nn.Parameter(
                torch.from_numpy(np.ascontiguousarray(part[f"{name}.kernel"].T)).to(device=device, dtype=dtype))
            linear.bias = torch.nn.Parameter(
                torch.from_numpy(np.ascontiguousarray(part[f"{name}.bias"])).to(device=device, dtype=dtype))


def _checked_parts(params: Mapping[str, np.ndarray], modules: Sequence[DenseStack]
                   ) -> list[tuple[DenseStack, dict[str, np.ndarray]]]:
    """(module, its part of `params`, checked) for each module; raises before anything is written."""
    if not isinstance(params, Mapping):
        raise DTypeError(f"params: expected a mapping of parameter name to array, got {describe(params)}")
    known = set().union(*(m.arch.parameter_shapes() for m in modules))
    unexpected = sorted(set(params) - known)
    if unexpected:
        raise ShapeError(f"params: names outside the parameter layout: {unexpected}")
    checked = []
    for module in modules:
        shapes = module.arch.parameter_shapes(module.part)
        checked.append((module, check_params(f"params ({module.part})",
                                             {k: v for k, v in params.items() if k in shapes}, shapes)))
    return checked


def from_params(arch: Architecture | ConvArchitecture | ConvVQArchitecture, params: Mapping[str, np.ndarray],
                dtype: torch.dtype | str | None = torch.float32,
                device: torch.device | str | None = "cpu", *,
                part: str = "all") -> tuple[Encoder | None, Decoder | None]:
    """New modules for `arch` holding `params`.

    The modules are made on the meta device and then given their parameters (`fill_layers`):
    this skips the default initialisation and leaves torch's global random generator untouched.

    **Arguments**
    - `arch`: the architecture.
    - `params`: spec-layout parameters (see `load_params`).
    - `dtype`, `device`: of the new modules (a torch dtype or its name; a device or its name).
    - `part`: "all" (both modules), "encoder" or "decoder" (the other is returned as None).

    **Returns** `(encoder, decoder)`.
    """
    if part not in ("all", "encoder", "decoder"):
        raise ConfigError(f"part: expected 'all', 'encoder' or 'decoder', got {part!r}")
    dtype, device = torch_dtype(dtype), torch_device(device)
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):  # Conv2d / ConvTranspose2d (vaespec.impl.conv)
        return conv.from_params(arch, params, dtype, device, part=part)  # type: ignore[return-value]
    encoder = Encoder(arch, dtype=dtype, device="meta") if part in ("all", "encoder") else None
    decoder = Decoder(arch, dtype=dtype, device="meta") if part in ("all", "decoder") else None
    fill_layers(params, [m for m in (encoder, decoder) if m is not None], device)
    return encoder, decoder
