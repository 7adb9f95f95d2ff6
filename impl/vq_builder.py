"""The VQ-VAE builder (Edifice's `VQVAE.build` options) and conversions to and from the spec's layout.

Options and defaults are Edifice's (embedding_dim 64, num_embeddings 512, encoder (256, 128),
decoder (128, 256), relu), with two differences: `num_embeddings` is honoured (Edifice documents
it but builds no codebook of that size), and an unknown option raises `ConfigError` naming it.

With `key`, the dense layers come from `vaespec.spec.init.init_params(arch, key)` (the reference's
numbers for that seed) and the codebook from `init_codebook(K, D, key)`; without it, the layers use
torch's default `nn.Linear` initialisation and the codebook `init_codebook(K, D, 42)`.

Conversions: `to_params(model)` gives the spec's flat float64 layer mapping (kernels `[in, out]`),
`to_codebook(model)` the codebook; `load_params` and `from_params` go the other way.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.errors import DTypeError, describe
from vaespec.spec.init import init_params
from vaespec.spec.keys import Key
from vaespec.spec.shapes import check_array
from vaespec.spec.vq import DEFAULT_CODEBOOK_SEED, DEFAULT_DECAY, DEFAULT_EPSILON

from ._checks import reject_unknown_options, require_option
from ._dtypes import to_numpy, torch_device, torch_dtype
from .conv import ConvVQDecoder, ConvVQEncoder, contract_kernel
from .conv import load_params as conv_load_params
from .convert import fill_layers, load_layers
from .modules import Decoder
from .vq_modules import VQVAE, VectorQuantizer, VectorQuantizerEMA, VQEncoder, check_ema_options

_PARTS = {"encoder": VQEncoder, "decoder": Decoder}


def _quantizer(arch: VQArchitecture | ConvVQArchitecture, ema: bool, decay: float, epsilon: float, key: Key | int,
               dtype: torch.dtype | str | None, device: torch.device | str | None
               ) -> VectorQuantizer | VectorQuantizerEMA:
    if ema:
        return VectorQuantizerEMA(arch.num_embeddings, arch.embedding_dim, decay, epsilon, key,
                                  dtype=dtype, device=device)
    return VectorQuantizer(arch.num_embeddings, arch.embedding_dim, key, dtype=dtype, device=device)


def build(input_size: int | None = None, embedding_dim: int = 64, num_embeddings: int = 512,
          encoder_sizes: tuple[int, ...] = (256, 128), decoder_sizes: tuple[int, ...] = (128, 256),
          activation: str = "relu", *,
          output_size: int | None = None, ema: bool = False, decay: float = DEFAULT_DECAY,
          epsilon: float = DEFAULT_EPSILON, key: Key | int | None = None, device: torch.device | str | None = None,
          dtype: torch.dtype | str | None = None,
          **unknown: object) -> VQVAE:
    """Build a dense VQ-VAE.

    **Arguments**
    - `input_size`: observed features (required).
    - `embedding_dim`: D, width of z_e and of each code (default 64).
    - `num_embeddings`: K, codebook rows (default 512).
    - `encoder_sizes`, `decoder_sizes`: hidden widths (defaults (256, 128) and (128, 256)).
    - `activation`: a name from `vaespec.spec.architecture.ACTIVATIONS` (default "relu").
    - `output_size`: decoder output width (default `input_size`).
    - `ema`: use `VectorQuantizerEMA` (codebook by moving averages) instead of a trained codebook.
    - `decay`: the EMA's γ in [0, 1) (default 0.99); `epsilon`: its Laplace ε ≥ 0 (default 1e-5).
    - `key`: a `Key` or integer seed for deterministic initialisation (see module docstring).
    - `device`, `dtype`: of every parameter and buffer (torch's defaults when None).

    **Returns** a `VQVAE` holding `arch` (a `VQArchitecture`).

    **Raises** `ConfigError` for a missing `input_size`, an unknown option, a bad size, activation,
    `ema`, `decay` or `epsilon`.
    """
    reject_unknown_options(build, unknown)
    input_size = require_option("input_size", input_size, "the number of observed features")
    arch = VQArchitecture(input_size, embedding_dim, num_embeddings, encoder_sizes, decoder_sizes, activation,
                          output_size)
    check_ema_options(ema, decay, epsilon)
    dtype = None if dtype is None else torch_dtype(dtype)
    device = None if device is None else torch_device(device)
    if key is None:
        encoder, decoder = VQEncoder(arch, dtype=dtype, device=device), Decoder(arch, dtype=dtype, device=device)
    else:
        encoder, decoder = make_layers(arch, init_params(arch, key), dtype, device, ("encoder", "decoder"))
    quantizer = _quantizer(arch, ema, decay, epsilon, DEFAULT_CODEBOOK_SEED if key is None else key, dtype, device)
    return VQVAE(encoder, quantizer, decoder)


def build_conv(input_shape: tuple[int, ...] = (1, 28, 28), channels: tuple[int, ...] = (32, 64),
               embedding_dim: int = 64, num_embeddings: int = 512, kernel_size: int = 4, stride: int = 2,
               padding: int = 1, activation: str = "relu", *, ema: bool = False, decay: float = DEFAULT_DECAY,
               epsilon: float = DEFAULT_EPSILON, key: Key | int | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype | str | None = None,
               **unknown: object) -> VQVAE:
    """Build a convolutional VQ-VAE (`vaespec.spec.conv_vq.ConvVQArchitecture`; defaults MNIST-sized:
    1×28×28 → 32×14×14 → 64×7×7 → z_e [B, 7, 7, 64], 512 codes).

    **Arguments** the `ConvVQArchitecture`'s fields, then `ema`, `decay`, `epsilon`, `key`, `device`, `dtype` as
    `build` (with `key`, the layers are `init_params(arch, key)` and the codebook `init_codebook(K, E, key)`;
    without it, torch's default initialisation and the codebook of key 42).

    **Returns** a `VQVAE` of a `ConvVQEncoder` and a `ConvVQDecoder`: `model(x [B, C, H, W])` quantizes every
    position of z_e [B, H′, W′, E] and returns x̂ [B, C, H, W] and indices [B, H′, W′].
    """
    reject_unknown_options(build_conv, unknown)
    arch = ConvVQArchitecture(tuple(input_shape), tuple(channels), embedding_dim, num_embeddings, kernel_size,
                              stride, padding, activation)
    check_ema_options(ema, decay, epsilon)
    dtype = None if dtype is None else torch_dtype(dtype)
    device = None if device is None else torch_device(device)
    if key is None:
        encoder, decoder = ConvVQEncoder(arch, dtype, device), ConvVQDecoder(arch, dtype, device)
    else:
        encoder = ConvVQEncoder(arch, dtype, device)
        decoder = ConvVQDecoder(arch, dtype, device)
        conv_load_params(init_params(arch, key), encoder, decoder)
    quantizer = _quantizer(arch, ema, decay, epsilon, DEFAULT_CODEBOOK_SEED if key is None else key, dtype, device)
    return VQVAE(encoder, quantizer, decoder)


def make_layers(arch: VQArchitecture, params: Mapping[str, np.ndarray], dtype: torch.dtype | str | None,
                device: torch.device | str | None,
                parts: tuple[str, ...]) -> list:
    """New modules for `parts` ("encoder", "decoder") holding `params`, made on the meta device and then given
    their parameters (`fill_layers`): torch's initialisation (and its global random generator) is skipped."""
    target = device if device is not None else torch.empty(()).device
    modules = [_PARTS[part](arch, dtype=dtype, device="meta") for part in parts]
    fill_layers(params, modules, torch_device(target))
    return modules


def _check_model(model: nn.Module) -> VQVAE:
    if not isinstance(model, VQVAE):
        raise DTypeError(f"model: expected a vaespec.impl.vq VQVAE, got {describe(model)}")
    return model


def to_params(model: VQVAE) -> dict[str, np.ndarray]:
    """The model's dense layers as the spec's flat mapping of float64 numpy copies.

    **Arguments** `model`: a `VQVAE`.

    **Returns** `{"<layer>.kernel": [in, out], "<layer>.bias": [out], …}` in `arch.dense_layers()` order
    (the codebook is not a layer: see `to_codebook`).
    """
    params: dict[str, np.ndarray] = {}
    for module in (_check_model(model).encoder, model.decoder):
        for name, layer in module.dense_layers():  # a conv layer's kernel [kh, kw, in, out] (contract_kernel)
            weight, bias = layer.weight, layer.bias
            assert isinstance(weight, Tensor) and isinstance(bias, Tensor)  # every layer is built with a bias
            params[f"{name}.kernel"] = to_numpy(contract_kernel(name, weight))
            params[f"{name}.bias"] = to_numpy(bias)
    return params


def to_codebook(model: VQVAE) -> np.ndarray:
    """The model's codebook as a float64 numpy copy `[num_embeddings, embedding_dim]`."""
    return to_numpy(_check_model(model).quantizer.codebook)


def load_params(params: Mapping[str, np.ndarray], model: VQVAE, codebook: np.ndarray | None = None) -> None:
    """Copy spec-layout parameters (and optionally a codebook) into `model`, in place, in its dtype and device.

    **Arguments**
    - `params`: every name of `model.arch.parameter_shapes()` with its documented shape (finite floats).
    - `model`: a `VQVAE`.
    - `codebook`: a finite float array `[num_embeddings, embedding_dim]`, or None to keep the model's.

    **Raises** `ShapeError` (missing, unexpected or mis-shaped names, wrong codebook shape), `DTypeError`,
    `DomainError`.
    """
    _check_model(model)
    if codebook is not None:  # checked before anything is copied, so a bad codebook changes nothing
        _check_codebook(model.arch, codebook)
    if isinstance(model.encoder, ConvVQEncoder):
        assert isinstance(model.decoder, ConvVQDecoder)  # VQVAE pairs the conv encoder with the conv decoder
        conv_load_params(params, model.encoder, model.decoder)
    else:
        assert isinstance(model.encoder, VQEncoder) and isinstance(model.decoder, Decoder)
        load_layers(params, [model.encoder, model.decoder])
    if codebook is not None:
        _copy_codebook(model.quantizer.codebook, codebook)


def _check_codebook(arch: VQArchitecture | ConvVQArchitecture, codebook: object) -> None:
    check_array("codebook", codebook, ("codes", "embedding"),
                {"codes": arch.num_embeddings, "embedding": arch.embedding_dim})


def _copy_codebook(target: Tensor, codebook: np.ndarray) -> None:
    """Copy `codebook` into a quantizer's codebook buffer `target`, in place."""
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(codebook)))


def from_params(arch: VQArchitecture | ConvVQArchitecture, params: Mapping[str, np.ndarray], codebook: np.ndarray,
                dtype: torch.dtype | str | None = torch.float32, device: torch.device | str | None = "cpu", *,
                ema: bool = False, decay: float = DEFAULT_DECAY,
                epsilon: float = DEFAULT_EPSILON) -> VQVAE:
    """A new `VQVAE` for `arch` holding `params` and `codebook` (an EMA quantizer starts from a zero state).

    **Arguments**
    - `arch`: a `VQArchitecture` or a `ConvVQArchitecture`.
    - `params`: spec-layout parameters (see `load_params`); `codebook`: `[K, D]` float array.
    - `dtype`, `device`: of the new model (a torch dtype or its name; a device or its name).
    - `ema`, `decay`, `epsilon`: as `build`.

    **Returns** the `VQVAE`.
    """
    if not isinstance(arch, (VQArchitecture, ConvVQArchitecture)):
        raise DTypeError(f"arch: expected a vaespec.spec.architecture.VQArchitecture or a "
                         f"vaespec.spec.conv_vq.ConvVQArchitecture, got {describe(arch)}")
    check_ema_options(ema, decay, epsilon)
    _check_codebook(arch, codebook)
    dtype, device = torch_dtype(dtype), torch_device(device)
    if isinstance(arch, ConvVQArchitecture):
        encoder, decoder = ConvVQEncoder(arch, dtype, device), ConvVQDecoder(arch, dtype, device)
        conv_load_params(params, encoder, decoder)
    else:
        encoder, decoder = make_layers(arch, params, dtype, device, ("encoder", "decoder"))
    return assemble(arch, encoder, decoder, codebook, dtype, device, ema=ema, decay=decay, epsilon=epsilon)


def assemble(arch: VQArchitecture | ConvVQArchitecture, encoder: VQEncoder | ConvVQEncoder,
             decoder: Decoder | ConvVQDecoder, codebook: np.ndarray,
             dtype: torch.dtype, device: torch.device, *, ema: bool = False, decay: float = DEFAULT_DECAY,
             epsilon: float = DEFAULT_EPSILON) -> VQVAE:
    """A `VQVAE` of the given layers and a new quantizer holding `codebook` (an EMA one at a zero state).

    For callers that checked `arch`, `codebook` and the EMA options (`from_params`, and `TorchBackend`,
    whose layers come from its module cache); the layers are used as they are, not copied."""
    # Made on meta, so no codebook is drawn only to be overwritten; the EMA state then starts at zero.
    quantizer = _quantizer(arch, ema, decay, epsilon, DEFAULT_CODEBOOK_SEED, dtype, "meta").to_empty(device=device)
    _copy_codebook(quantizer.codebook, codebook)
    if ema:
        for name in ("ema_counts", "ema_sums", "ema_step"):
            getattr(quantizer, name).zero_()
    return VQVAE(encoder, quantizer, decoder)
