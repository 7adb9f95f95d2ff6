"""Deliberately wrong Torch backends for the convolutional VAE (issue 15): each must be rejected by `caught_by`.

The contract's convolution is torch's `Conv2d`, a cross-correlation (`vaespec.spec.conv`:
y[b, o, i, j] = Σ x̃[b, c, s·i + p, s·j + q] · K[p, q, c, o], no kernel flip), and its transposed
convolution `ConvTranspose2d`, cropped by p on each side. Each control is `vaespec.impl`'s
TorchBackend with one of the two bugs ports make there; on the dense network it is the backend itself.

    vaespec check --backend vaespec.proofs_tests.controls.conv:TorchConvKernelFlipped --law encode_matches_reference
"""

from __future__ import annotations

import types
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaespec.impl import conv
from vaespec.impl.backend import TorchBackend
from vaespec.spec.conv import ConvArchitecture


class ConvControl(TorchBackend):
    """TorchBackend whose conv modules (of a `network`) are built fresh each call (the cache would keep a broken
    copy) and then broken by `breaks(encoder, decoder)`."""

    bug = ""
    caught_by = ""
    network: ClassVar[type] = ConvArchitecture

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"control:{type(self).__name__}"

    def _modules(self, arch: Any, params: Any, part: str = "all") -> Any:
        if not isinstance(arch, self.network):
            return super()._modules(arch, params, part)
        encoder, decoder = conv.from_params(arch, params, self._dtype, self._device, part=part)
        self.breaks(encoder, decoder)
        return encoder, decoder

    def breaks(self, encoder: conv.ConvEncoder | None, decoder: conv.ConvDecoder | None) -> None:
        raise NotImplementedError


class TorchConvKernelFlipped(ConvControl):
    bug = ("the encoder's kernels flipped in both spatial axes: a true convolution (scipy.signal.convolve2d, "
           "textbook formulas) where the contract's Conv2d is a cross-correlation; right for symmetric kernels only")
    caught_by = "encode_matches_reference"

    def breaks(self, encoder: conv.ConvEncoder | None, decoder: conv.ConvDecoder | None) -> None:
        if encoder is not None:
            with torch.no_grad():
                for layer in encoder.convs:
                    layer.weight.copy_(layer.weight.flip(2, 3))


def _cropped_off_by_one(self: nn.ConvTranspose2d, h: Tensor) -> Tensor:
    """ConvTranspose2d computed uncropped and then cropped starting one row and column early (p − 1 where p is
    right), a zero row and column padded in front where p = 0: the output keeps its size, shifted by one."""
    p = int(self.padding[0])  # type: ignore[index]
    full = F.conv_transpose2d(h, self.weight, self.bias, self.stride, 0)
    size = (h.shape[2] - 1) * int(self.stride[0]) - 2 * p + self.weight.shape[2]
    full = F.pad(full, (1, 1, 1, 1))  # index i of the padded map is i − 1 of the uncropped one
    return full[:, :, p: p + size, p: p + size]


class TorchDeconvPaddingOffByOne(ConvControl):
    bug = ("the decoder's transposed convolutions cropped one pixel early (padding p − 1 on the top and left, p + 1 "
           "on the bottom and right, so the shape still fits): x̂ shifted by one row and column")
    caught_by = "decode_matches_reference"

    def breaks(self, encoder: conv.ConvEncoder | None, decoder: conv.ConvDecoder | None) -> None:
        if decoder is not None:
            for layer in decoder.deconvs:
                layer.forward = types.MethodType(_cropped_off_by_one, layer)  # type: ignore[method-assign]


CONTROLS: dict[str, type[ConvControl]] = {cls.__name__: cls for cls in ConvControl.__subclasses__()}
