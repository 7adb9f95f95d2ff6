"""Edifice-shaped builders: options in, `(encoder, decoder)` modules out.

Options and defaults are Edifice's VAE builder's (latent 32, encoder (256, 128),
decoder (128, 256), relu). Unlike Edifice, which ignores options it does not know, an
unknown keyword raises `ConfigError` naming it and listing the valid ones: a typo such
as `latent_dim=` would otherwise silently build the default network. Sizes and the
activation are validated by `vaespec.spec.architecture.Architecture`.

With `key`, parameters come from `vaespec.spec.init.init_params(arch, key)`, the same
numbers the reference layer draws for that seed; without it, torch's default
`nn.Linear` initialisation is used.
"""

from __future__ import annotations

import torch

from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError
from vaespec.spec.init import init_params
from vaespec.spec.keys import Key

from ._checks import reject_unknown_options, require_option
from ._dtypes import torch_device, torch_dtype
from .convert import fill_layers
from .modules import Decoder, Encoder


def _make(arch: Architecture, parts: tuple[type, ...], dtype: torch.dtype | str | None,
          device: torch.device | str | None, key: Key | int | None) -> list:
    dtype = None if dtype is None else torch_dtype(dtype)
    device = None if device is None else torch_device(device)
    if key is None:
        return [cls(arch, dtype=dtype, device=device) for cls in parts]
    # Every parameter is overwritten, so skip torch's initialisation (and its global RNG).
    target = device if device is not None else torch.empty(()).device  # torch's default device
    modules = [cls(arch, dtype=dtype, device="meta") for cls in parts]
    fill_layers(init_params(arch, key), modules, target)
    return modules


def build(input_size: int | None = None, latent_size: int = 32, encoder_sizes: tuple[int, ...] = (256, 128),
          decoder_sizes: tuple[int, ...] = (128, 256), activation: str = "relu", *, output_size: int | None = None,
          dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
          key: Key | int | None = None, **unknown: object) -> tuple[Encoder, Decoder]:
    """Build a dense VAE as `(encoder, decoder)`.

    **Arguments**
    - `input_size`: observed features D (required).
    - `latent_size`: latent coordinates L (default 32).
    - `encoder_sizes`, `decoder_sizes`: hidden widths (defaults (256, 128) and (128, 256)).
    - `activation`: a name from `vaespec.spec.architecture.ACTIVATIONS` (default "relu").
    - `output_size`: decoder output width (default `input_size`).
    - `dtype`, `device`: of the parameters (torch's defaults when None).
    - `key`: a `Key` or integer seed for deterministic initialisation (see module docstring).

    **Returns** `(Encoder, Decoder)`, both holding `arch`.

    **Raises** `ConfigError` for a missing `input_size`, an unknown option, a bad size or activation.
    """
    reject_unknown_options(build, unknown)
    input_size = require_option("input_size", input_size, "the number of observed features")
    arch = Architecture(input_size, latent_size, encoder_sizes, decoder_sizes, activation, output_size)
    encoder, decoder = _make(arch, (Encoder, Decoder), dtype, device, key)
    return encoder, decoder


def build_encoder(input_size: int | None = None, latent_size: int = 32, encoder_sizes: tuple[int, ...] = (256, 128),
                  activation: str = "relu", *, dtype: torch.dtype | str | None = None,
                  device: torch.device | str | None = None, key: Key | int | None = None,
                  **unknown: object) -> Encoder:
    """Build the encoder alone; the options are `build`'s encoder options.

    With `key`, the parameters equal those of `build(..., key=key)`'s encoder.
    """
    reject_unknown_options(build_encoder, unknown)
    input_size = require_option("input_size", input_size, "the number of observed features")
    arch = Architecture(input_size, latent_size, encoder_sizes, activation=activation)
    return _make(arch, (Encoder,), dtype, device, key)[0]


def build_decoder(input_size: int | None = None, latent_size: int = 32, decoder_sizes: tuple[int, ...] = (128, 256),
                  activation: str = "relu", *, output_size: int | None = None, dtype: torch.dtype | str | None = None,
                  device: torch.device | str | None = None,
                  key: Key | int | None = None, **unknown: object) -> Decoder:
    """Build the decoder alone; its output width is `output_size`, else `input_size`.

    With `key`, the draws follow `init_params` of an architecture with the default
    encoder sizes (the encoder's draws come first in the stream), so the parameters
    equal `build(input_size, latent_size, decoder_sizes=..., key=key)`'s decoder
    when that build uses the default `encoder_sizes`.
    """
    reject_unknown_options(build_decoder, unknown)
    width = input_size if input_size is not None else output_size
    if width is None:
        raise ConfigError("output_size: required (or input_size), the decoder's output width; got neither")
    arch = Architecture(width, latent_size,
                        decoder_sizes=decoder_sizes, activation=activation, output_size=output_size)
    return _make(arch, (Decoder,), dtype, device, key)[0]
