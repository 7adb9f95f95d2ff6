"""The convolutional VAE in torch: `Conv2d` encoder, `ConvTranspose2d` decoder (`vaespec.spec.conv`).

    ConvEncoder(arch)(x [B, C, H, W]) -> {"mu", "log_var"} [B, L]   convolutions, each activated; flatten; heads
    ConvDecoder(arch)(z [B, L]) -> x̂ [B, C, H, W]            dense (activated), unflatten, transposed convs

The encoder returns `{"mu", "log_var"}` as `vaespec.impl.modules.Encoder` does, so the VAE chapter's Torch
bodies (`vaespec.impl.vae_bodies`) run either network; `TorchBackend` reaches these through
`vaespec.impl.convert` when the arch is a `ConvArchitecture`.

The convolutional VQ-VAE (`vaespec.spec.conv_vq.ConvVQArchitecture`):

    ConvVQEncoder(arch)(x [B, C, H, W]) -> z_e [B, H′, W′, E]   convolutions, each activated; a 1×1 Conv2d to E;
                                                                   .permute(0, 2, 3, 1): channels-last
    ConvVQDecoder(arch)(z_q [B, H′, W′, E]) -> x̂ [B, C, H, W]   .permute(0, 3, 1, 2) back; a 1×1 Conv2d
                                                                   (activated); the transposed convolutions

Both check their input's shape (a vaespec `ShapeError` naming the expected one and the np.moveaxis fix): they
are what a `VQVAE` holds (`vaespec.impl.vq_modules.VQVAE`) and what `TorchBackend` builds for the VQ bodies.

`from_params(arch, params)` builds both from the contract's flat layout (kernels `[kh, kw, in, out]`),
converting to torch's (`Conv2d.weight = kernel.permute(3, 2, 0, 1)`, `ConvTranspose2d.weight =
kernel.permute(2, 3, 0, 1)`, `Linear.weight = kernel.T`); `to_params` converts back. A kernel given in
torch's layout is refused naming the conversion (`vaespec.spec.conv.check_conv_params`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vaespec.spec.conv import ConvArchitecture, check_conv_params, image_error, is_transposed
from vaespec.spec.conv_vq import ConvVQArchitecture, latent_error
from vaespec.spec.errors import DTypeError, ShapeError, describe

from .activations import get_activation


def _conv_weight(name: str, kernel: Tensor) -> Tensor:
    return kernel.permute(2, 3, 0, 1) if is_transposed(name) else kernel.permute(3, 2, 0, 1)


class ConvEncoder(nn.Module):
    """`(μ, log σ²) = heads(flatten(act(conv_{n-1}(… act(conv_0(x)) …))))` for x [B, C, H, W]."""

    def __init__(self, arch: ConvArchitecture, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.arch = arch
        k, s, p = arch.kernel_size, arch.stride, arch.padding
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, s, p, dtype=dtype, device=device)
                                   for _, cin, cout in arch.encoder_convs())
        self.act = get_activation(arch.activation)
        self.mu = nn.Linear(arch.flat_size, arch.latent_size, dtype=dtype, device=device)
        self.log_var = nn.Linear(arch.flat_size, arch.latent_size, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.arch.input_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else describe(x)
            raise ShapeError(f"x: expected [batch, {', '.join(map(str, self.arch.input_shape))}] (batch, channels, "
                             f"height, width) for this ConvArchitecture, got {got}")
        h = x
        for conv in self.convs:
            h = self.act(conv(h))
        h = h.flatten(1)
        return {"mu": self.mu(h), "log_var": self.log_var(h)}

    def dense_layers(self) -> list[tuple[str, nn.Module]]:
        """(spec layer name, layer) for every layer of the encoder (the `"params"` leaves of a Torch body)."""
        return [(name, conv) for (name, _, _), conv in zip(self.arch.encoder_convs(), self.convs)] + [
            ("mu", self.mu), ("log_var", self.log_var)]

    def to_contract(self, name: str, grad: Tensor) -> Tensor:
        return contract_kernel(name, grad)


class ConvDecoder(nn.Module):
    """`x̂ = deconv_out(act(… act(deconv_0(unflatten(act(dense(z))))) …))` for z [B, L]."""

    def __init__(self, arch: ConvArchitecture, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.dense = nn.Linear(arch.latent_size, arch.flat_size, dtype=dtype, device=device)
        self.deconvs = deconv_stack(arch, dtype, device)
        self.act = get_activation(arch.activation)

    def forward(self, z: Tensor) -> Tensor:
        h = self.act(self.dense(z)).unflatten(1, self.arch.feature_shapes()[-1])
        return run_deconvs(self.deconvs, self.act, h)

    def dense_layers(self) -> list[tuple[str, nn.Module]]:
        """(spec layer name, layer) for every layer of the decoder."""
        return [("decoder_dense", self.dense)] + [
            (name, deconv) for (name, _, _), deconv in zip(self.arch.decoder_deconvs(), self.deconvs)]

    def to_contract(self, name: str, grad: Tensor) -> Tensor:
        return contract_kernel(name, grad)


def deconv_stack(arch: ConvArchitecture | ConvVQArchitecture, dtype: torch.dtype | None,
                 device: torch.device | str | None) -> nn.ModuleList:
    """The decoder's transposed convolutions (`arch.decoder_deconvs()`), the output one last."""
    k, s, p = arch.kernel_size, arch.stride, arch.padding
    return nn.ModuleList(nn.ConvTranspose2d(cin, cout, k, s, p, dtype=dtype, device=device)
                         for _, cin, cout in arch.decoder_deconvs())


def run_deconvs(deconvs: nn.ModuleList, act: Callable[[Tensor], Tensor], h: Tensor) -> Tensor:
    """`deconvs` in order, the activation between them (none after the output one)."""
    for i, deconv in enumerate(deconvs):
        h = deconv(h)
        h = act(h) if i < len(deconvs) - 1 else h
    return h


def contract_kernel(name: str, weight: Tensor) -> Tensor:
    """A torch weight (or its gradient) in the contract's layout: `Linear [out, in]` → `[in, out]`, `Conv2d
    [out, in, kh, kw]` and `ConvTranspose2d [in, out, kh, kw]` → `[kh, kw, in, out]`."""
    if weight.dim() == 2:
        return weight.T
    return weight.permute(2, 3, 0, 1) if is_transposed(name) else weight.permute(2, 3, 1, 0)


class ConvVQEncoder(nn.Module):
    """`z_e = conv₁ₓ₁(act(conv_{n-1}(… act(conv_0(x)) …))).permute(0, 2, 3, 1)`: x [B, C, H, W] → z_e [B, H′, W′, E],
    channels-last (a transposition of torch's [B, E, H′, W′], never a reshape)."""

    def __init__(self, arch: ConvVQArchitecture, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.arch = arch
        k, s, p = arch.kernel_size, arch.stride, arch.padding
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, k, s, p, dtype=dtype, device=device)
                                   for _, cin, cout in arch.encoder_convs())
        self.act = get_activation(arch.activation)
        self.encoder_to_embedding = nn.Conv2d(arch.channels[-1], arch.embedding_dim, 1, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != self.arch.input_shape:
            raise ShapeError(image_error(self.arch, "x", tuple(x.shape)) if isinstance(x, Tensor)
                             else f"x: expected a tensor [batch, {', '.join(map(str, self.arch.input_shape))}], got "
                                  f"{describe(x)}")
        h = x
        for conv in self.convs:
            h = self.act(conv(h))
        return self.encoder_to_embedding(h).permute(0, 2, 3, 1)  # [B, E, H′, W′] → [B, H′, W′, E]

    def dense_layers(self) -> list[tuple[str, nn.Module]]:
        """(spec layer name, layer) for every layer of the encoder (the `"params"` leaves of a Torch body)."""
        return [(name, conv) for (name, _, _), conv in zip(self.arch.encoder_convs(), self.convs)] + [
            ("encoder_to_embedding", self.encoder_to_embedding)]

    def to_contract(self, name: str, grad: Tensor) -> Tensor:
        return contract_kernel(name, grad)


class ConvVQDecoder(nn.Module):
    """`x̂ = deconv_out(act(… act(deconv_0(act(conv₁ₓ₁(z_q.permute(0, 3, 1, 2))))) …))`: z_q [B, H′, W′, E]
    (channels-last, as the quantizer returns it) → x̂ [B, C, H, W]."""

    def __init__(self, arch: ConvVQArchitecture, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.decoder_from_embedding = nn.Conv2d(arch.embedding_dim, arch.channels[-1], 1, dtype=dtype, device=device)
        self.deconvs = deconv_stack(arch, dtype, device)
        self.act = get_activation(arch.activation)

    def forward(self, z: Tensor) -> Tensor:
        if not isinstance(z, Tensor) or z.dim() != 4 or tuple(z.shape[1:]) != self.arch.latent_shape:
            raise ShapeError(latent_error(self.arch, "z", tuple(z.shape)) if isinstance(z, Tensor)
                             else f"z: expected a tensor [batch, {', '.join(map(str, self.arch.latent_shape))}], got "
                                  f"{describe(z)}")
        h = self.act(self.decoder_from_embedding(z.permute(0, 3, 1, 2)))  # [B, H′, W′, E] → [B, E, H′, W′]
        return run_deconvs(self.deconvs, self.act, h)

    def dense_layers(self) -> list[tuple[str, nn.Module]]:
        """(spec layer name, layer) for every layer of the decoder."""
        return [("decoder_from_embedding", self.decoder_from_embedding)] + [
            (name, deconv) for (name, _, _), deconv in zip(self.arch.decoder_deconvs(), self.deconvs)]

    def to_contract(self, name: str, grad: Tensor) -> Tensor:
        return contract_kernel(name, grad)


ConvEncoders = ConvEncoder | ConvVQEncoder
ConvDecoders = ConvDecoder | ConvVQDecoder


def _layers(encoder: ConvEncoders, decoder: ConvDecoders) -> dict[str, nn.Module]:
    return dict(encoder.dense_layers() + decoder.dense_layers())


def from_params(arch: ConvArchitecture | ConvVQArchitecture, params: object, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None, *, part: str = "all"
                ) -> tuple[ConvEncoders | None, ConvDecoders | None]:
    """(encoder, decoder) holding `params` (the flat `[kh, kw, in, out]` layout, checked and converted); with
    `part` "encoder" or "decoder" only that one (the other None), reading that part of the layout. A
    `ConvVQArchitecture` gives a `ConvVQEncoder` and a `ConvVQDecoder`."""
    if isinstance(arch, ConvVQArchitecture):
        encoder: ConvEncoders | None = ConvVQEncoder(arch, dtype, device) if part in ("all", "encoder") else None
        decoder: ConvDecoders | None = ConvVQDecoder(arch, dtype, device) if part in ("all", "decoder") else None
    elif isinstance(arch, ConvArchitecture):
        encoder = ConvEncoder(arch, dtype, device) if part in ("all", "encoder") else None
        decoder = ConvDecoder(arch, dtype, device) if part in ("all", "decoder") else None
    else:
        raise DTypeError(f"arch: expected a vaespec.spec.conv.ConvArchitecture or a "
                         f"vaespec.spec.conv_vq.ConvVQArchitecture, got {describe(arch)}")
    load_params(params, encoder, decoder)
    return encoder, decoder


def load_params(params: object, encoder: ConvEncoders | None, decoder: ConvDecoders | None) -> None:
    """Copy the flat layout into the given modules, in place (checked whole before any parameter is written)."""
    modules = [m for m in (encoder, decoder) if m is not None]
    part = "all" if len(modules) == 2 else "encoder" if encoder is not None else "decoder"
    checked = check_conv_params(modules[0].arch, params, part)
    with torch.no_grad():
        for module in modules:
            for name, layer in module.dense_layers():
                weight, bias = layer.weight, layer.bias
                assert isinstance(weight, Tensor) and isinstance(bias, Tensor)  # every layer is built with a bias
                kernel = torch.as_tensor(checked[f"{name}.kernel"], dtype=weight.dtype, device=weight.device)
                weight.copy_(kernel.T if kernel.dim() == 2 else _conv_weight(name, kernel))
                bias.copy_(torch.as_tensor(checked[f"{name}.bias"], dtype=weight.dtype, device=weight.device))


def to_params(encoder: ConvEncoders, decoder: ConvDecoders) -> dict[str, Tensor]:
    """The flat layout of `encoder` and `decoder`'s parameters (views, `[kh, kw, in, out]` kernels)."""
    out: dict[str, Tensor] = {}
    for name, layer in _layers(encoder, decoder).items():
        weight, bias = layer.weight, layer.bias
        assert isinstance(weight, Tensor) and isinstance(bias, Tensor)  # every layer is built with a bias
        out[f"{name}.kernel"] = contract_kernel(name, weight)
        out[f"{name}.bias"] = bias
    return out
