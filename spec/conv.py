"""A convolutional VAE architecture and its explicit parameter layout (issue 15).

Images are channels-first, `x [batch, channels, height, width]` (torch's NCHW). Every convolution is
torch's `Conv2d` (a cross-correlation, no kernel flip) with stride s and zero padding p, every
transposed convolution torch's `ConvTranspose2d` (its adjoint), with

    conv:        y[b, o, i, j] = bias[o] + Σ_{c, p, q} x̃[b, c, s·i + p, s·j + q] · K[p, q, c, o]
                 x̃ = x zero-padded by p on each side;  H_out = (H + 2p − k) / s + 1
    transposed:  ỹ[b, o, s·i + p, s·j + q] += x[b, c, i, j] · K[p, q, c, o]  (summed over c, i, j, p, q)
                 y = ỹ cropped by p on each side, + bias[o];  H_out = (H − 1)·s − 2p + k

**Kernel layout.** Every kernel is `[kh, kw, in, out]` ("HWIO", Axon's and Flax's layout; `in` the
channels the layer reads, `out` those it writes), every bias `[out]`, the dense layers' kernels
`[in, out]` as in `vaespec.spec.architecture`. From torch:

    Conv2d.weight           [out, in, kh, kw]  kernel = weight.permute(2, 3, 1, 0); weight = kernel.permute(3, 2, 0, 1)
    ConvTranspose2d.weight  [in, out, kh, kw]  kernel = weight.permute(2, 3, 0, 1); weight = kernel.permute(2, 3, 0, 1)
    Linear.weight           [out, in]           kernel = weight.T

**Layers** (defaults: an MNIST-sized VAE, 1×28×28 → 32×14×14 → 64×7×7 → 16 latents and back):

    encoder_conv_0 … encoder_conv_{n-1}   Conv2d(k, s, p), each followed by the activation
    mu, log_var                           dense heads on the flattened last feature map (C order: c, h, w)
    decoder_dense                         dense latent → the last feature map's C·H·W, then the activation
    decoder_deconv_0 … decoder_deconv_{n-2}  ConvTranspose2d(k, s, p), each followed by the activation
    decoder_output                        ConvTranspose2d(k, s, p) to the input's channels (no activation)

The decoder mirrors the encoder's channels, so `decode(z)` has the input's shape exactly; sizes that
do not divide (`(H + 2p − k) mod s ≠ 0`) are refused, since the transposed convolution could not
give the input's size back.

**Rounding chains** (`vaespec.spec.chains`' principle: a dot product of length n adds n roundings):
a convolution's output is a dot product of length `in·kh·kw`; a transposed convolution's output
collects at most `in·⌈kh/s⌉·⌈kw/s⌉` products (the kernel taps that land on it); a dense layer's `in`;
each layer adds 2 (bias add, activation) and 3 rounded results (`ConvArchitecture.longest_path`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .architecture import MAX_LAYERS, MAX_PARAMETERS, check_activation
from .errors import ConfigError, show


def check_positive(option: str, value: object) -> int:
    """`value` if it is a positive integer (not a bool), else a ConfigError naming `option`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{option}: expected a positive integer, got {show(value)}")
    return value


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """`(size + 2·padding − kernel) / stride + 1`, refusing a size the stride does not divide (ConfigError)."""
    span = size + 2 * padding - kernel
    if span < 0 or span % stride:
        raise ConfigError(f"kernel_size, stride, padding: a side of {size} gives (size + 2p − k) = {span}, which "
                          f"must be ≥ 0 and divisible by the stride {stride}, so the transposed convolution gives "
                          f"the side back")
    return span // stride + 1


def check_conv_options(arch: Any) -> None:
    """The options a convolutional network shares (`ConvArchitecture`, `vaespec.spec.conv_vq.ConvVQArchitecture`),
    checked and normalised in place on the frozen dataclass `arch`: `input_shape` (C, H, W), `channels`,
    `kernel_size`, `stride`, `padding`, `activation`; sides the strides divide; at most `MAX_PARAMETERS`."""
    shape = tuple(arch.input_shape) if isinstance(arch.input_shape, (tuple, list)) else None
    if shape is None or len(shape) != 3:
        raise ConfigError(f"input_shape: expected (channels, height, width), got {show(arch.input_shape)}")
    object.__setattr__(arch, "input_shape", tuple(check_positive(f"input_shape[{i}]", v) for i, v in enumerate(shape)))
    if not isinstance(arch.channels, (tuple, list)) or not 1 <= len(arch.channels) <= MAX_LAYERS:
        raise ConfigError(f"channels: expected 1 to {MAX_LAYERS} positive integers, got {show(arch.channels)}")
    channels = tuple(check_positive(f"channels[{i}]", v) for i, v in enumerate(arch.channels))
    object.__setattr__(arch, "channels", channels)
    for option in ("kernel_size", "stride"):
        check_positive(option, getattr(arch, option))
    if isinstance(arch.padding, bool) or not isinstance(arch.padding, int) or arch.padding < 0:
        raise ConfigError(f"padding: expected an integer ≥ 0, got {show(arch.padding)}")
    check_activation(arch.activation)
    feature_shapes(arch)  # sizes divide
    count = sum(math.prod(s) for s in arch.parameter_shapes().values())
    if count > MAX_PARAMETERS:  # name the option that blew the count up (`vaespec.spec.architecture`'s rule)
        sizes = {k: v for k, v in arch.to_dict().items() if isinstance(v, int) and not isinstance(v, bool)}
        sizes.update({f"channels[{i}]": v for i, v in enumerate(arch.channels)})
        largest = max(sizes, key=lambda k: sizes[k])
        raise ConfigError(f"{largest}: the architecture would have {show(count)} parameters, more than the "
                          f"{MAX_PARAMETERS} vaespec allows; got {largest} = {show(sizes[largest])}")


def feature_shapes(arch: Any) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the input and of each encoder convolution's output (every convolution
    `kernel_size`, `stride`, `padding`; a size the stride does not divide is a ConfigError)."""
    c, h, w = arch.input_shape
    shapes = [(c, h, w)]
    for out in arch.channels:
        h = conv_output_size(h, arch.kernel_size, arch.stride, arch.padding)
        w = conv_output_size(w, arch.kernel_size, arch.stride, arch.padding)
        shapes.append((out, h, w))
    return shapes


def is_transposed(name: str) -> bool:
    """Whether the layer `name` of a convolutional layout is a `ConvTranspose2d` (the decoder's `decoder_deconv_i`
    and `decoder_output`); every other 4-d kernel is a `Conv2d`'s."""
    return name.startswith(("decoder_deconv", "decoder_output"))


class ConvLayout:
    """What the convolutional networks (`ConvArchitecture`, `vaespec.spec.conv_vq.ConvVQArchitecture`) share: an
    image `input_shape` (C, H, W) and the encoder's `channels`, from which the sizes and layer lists follow."""

    input_shape: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def input_size(self) -> int:
        """∏input_shape: the features of one example."""
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        return self.input_size

    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(channels, height, width) of the input and of each encoder convolution's output."""
        return feature_shapes(self)

    def encoder_convs(self) -> list[tuple[str, int, int]]:
        """(name, in channels, out channels) of the encoder's k×k convolutions."""
        widths = (self.input_shape[0], *self.channels)
        return [(f"encoder_conv_{i}", widths[i], widths[i + 1]) for i in range(len(self.channels))]

    def decoder_deconvs(self) -> list[tuple[str, int, int]]:
        """(name, in channels, out channels) of the decoder's transposed convolutions, the output last."""
        widths = (*reversed(self.channels), self.input_shape[0])
        names = [f"decoder_deconv_{i}" for i in range(len(self.channels) - 1)] + ["decoder_output"]
        return [(name, widths[i], widths[i + 1]) for i, name in enumerate(names)]


@dataclass(frozen=True)
class ConvArchitecture(ConvLayout):
    """Sizes of a convolutional VAE (layout in the module docstring).

    **Arguments**
    - `input_shape`: `(channels, height, width)` of one example (default `(1, 28, 28)`, MNIST).
    - `channels`: output channels of the encoder's convolutions (default `(32, 64)`).
    - `latent_size`: latent coordinates L (default 16).
    - `kernel_size`, `stride`, `padding`: of every (transposed) convolution (default 4, 2, 1: each halves
      a side, 28 → 14 → 7).
    - `activation`: one of `vaespec.spec.architecture.ACTIVATIONS` (default "relu").
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    channels: tuple[int, ...] = (32, 64)
    latent_size: int = 16
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    activation: str = "relu"

    HEADS = ("mu", "log_var")

    def __post_init__(self) -> None:
        check_positive("latent_size", self.latent_size)
        check_conv_options(self)


    # ------------------------------------------------------------------------- shapes
    @property
    def flat_size(self) -> int:
        """C·H·W of the last feature map: the dense heads' fan-in and `decoder_dense`'s fan-out."""
        return math.prod(self.feature_shapes()[-1])

    def parameter_shapes(self, part: str = "all") -> dict[str, tuple[int, ...]]:
        """The documented parameter layout: name -> shape, for "encoder", "decoder" or "all"."""
        if part not in ("all", "encoder", "decoder"):
            raise ConfigError(f"part: expected 'all', 'encoder' or 'decoder', got {part!r}")
        k = self.kernel_size
        shapes: dict[str, tuple[int, ...]] = {}
        if part in ("all", "encoder"):
            for name, cin, cout in self.encoder_convs():
                shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (k, k, cin, cout), (cout,)
            for head in self.HEADS:
                shapes[f"{head}.kernel"] = (self.flat_size, self.latent_size)
                shapes[f"{head}.bias"] = (self.latent_size,)
        if part in ("all", "decoder"):
            shapes["decoder_dense.kernel"] = (self.latent_size, self.flat_size)
            shapes["decoder_dense.bias"] = (self.flat_size,)
            for name, cin, cout in self.decoder_deconvs():
                shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (k, k, cin, cout), (cout,)
        return shapes

    # ------------------------------------------------------------------------- rounding chains
    def conv_taps(self, transposed: bool) -> int:
        """Products per output of one (transposed) convolution, per input channel: kh·kw, or ⌈kh/s⌉·⌈kw/s⌉."""
        k = self.kernel_size
        return (-(-k // self.stride)) ** 2 if transposed else k * k

    def longest_path(self, part: str) -> int:
        """Sum of the dot-product lengths along `part` ("encoder" or "decoder"), as the dense layout's."""
        if part == "encoder":
            return sum(cin * self.conv_taps(False) for _, cin, _ in self.encoder_convs()) + self.flat_size
        if part == "decoder":
            return self.latent_size + sum(cin * self.conv_taps(True) for _, cin, _ in self.decoder_deconvs())
        raise ConfigError(f"part: expected 'encoder' or 'decoder', got {part!r}")

    def layers(self, part: str) -> int:
        """Layers along `part`: the convolutions and the dense head (encoder) or layer (decoder)."""
        return len(self.channels) + 1

    def to_dict(self) -> dict:
        return {"input_shape": list(self.input_shape), "channels": list(self.channels),
                "latent_size": self.latent_size, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "activation": self.activation}


def conv_chain(arch: Any, part: str) -> tuple[int, int]:
    """(n, n_ops) of `arch`'s encoder or decoder: the longest path plus 2 per layer, 3 rounded results per layer
    (the dense stacks' rule, `vaespec.spec.chains.encoder`, with a convolution's dot-product lengths)."""
    layers = arch.layers(part)
    return arch.longest_path(part) + 2 * layers, 3 * layers


def torch_layout(arch: Any, name: str) -> tuple[int, ...] | None:
    """The shape torch stores parameter `name` of a convolutional layout in (Conv2d [out, in, k, k],
    ConvTranspose2d [in, out, k, k], Linear [out, in]), or None for a bias (the same in both)."""
    shape = arch.parameter_shapes()[name]
    if not name.endswith(".kernel"):
        return None
    if len(shape) == 2:
        return (shape[1], shape[0])
    k, _, cin, cout = shape
    return (cin, cout, k, k) if is_transposed(name) else (cout, cin, k, k)


def image_error(arch: Any, name: str, shape: tuple[int, ...], batched: bool = True) -> str:
    """The message for an image `name` of `shape` that is not `[batch, *arch.input_shape]` (`batched=False`: not
    `arch.input_shape`, an argument of one image's shape such as a decoder's log σ²): the expected shape
    (channels-first, torch's NCHW), what was given, and the fix when it is channels-last or flattened."""
    c, h, w = arch.input_shape
    lead, axes = ("batch, ", "batch, ") if batched else ("", "")
    hint = ""
    if len(shape) == 3 + batched and tuple(shape[batched:]) == (h, w, c) and (h, w, c) != (c, h, w):
        move = "np.moveaxis({0}, -1, 1), torch: {0}.permute(0, 3, 1, 2)" if batched else \
            "np.moveaxis({0}, -1, 0), torch: {0}.permute(2, 0, 1)"
        hint = (f"; it looks channels-last [{axes}height, width, channels]: move the channel axis to axis "
                f"{int(batched)} ({move.format(name)})")
    elif len(shape) == 1 + batched and shape[-1] == arch.input_size:
        hint = (f"; it looks flattened: reshape it to [{lead}{c}, {h}, {w}] "
                f"({name}.reshape({'-1, ' if batched else ''}{c}, {h}, {w}))")
    return (f"{name}: expected shape [{lead}{c}, {h}, {w}] ({axes}channels, height, width: channels-first) for "
            f"this {type(arch).__name__}'s input_shape {arch.input_shape}, got shape {tuple(shape)}{hint}")


def check_conv_params(arch: Any, params: object, part: str = "all") -> dict[str, Any]:
    """`params` checked against `arch.parameter_shapes(part)` (`vaespec.spec.shapes.check_params`), a kernel in
    torch's layout named with the conversion to `[kh, kw, in, out]`; returns the float64 arrays."""
    from .errors import ShapeError
    from .shapes import check_params

    shapes = arch.parameter_shapes(part)
    if isinstance(params, Mapping):
        for name, value in params.items():
            if name in shapes and hasattr(value, "shape") and tuple(value.shape) != shapes[name] \
                    and tuple(value.shape) == torch_layout(arch, name):
                fix = ("weight.T" if len(shapes[name]) == 2 else "weight.permute(2, 3, 0, 1)" if is_transposed(name)
                       else "weight.permute(2, 3, 1, 0)")
                raise ShapeError(f"params[{name!r}]: expected shape {shapes[name]} ([kh, kw, in, out]"
                                 f"{'' if len(shapes[name]) == 4 else ': [in, out]'}), got {tuple(value.shape)}, "
                                 f"torch's layout; convert it with {fix}")
    return check_params("params", params, shapes, allowed=arch.parameter_shapes("all"))
