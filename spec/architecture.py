"""The dense VAE architecture and its explicit parameter layout.

**Layout.** Every dense layer computes `y = x · W + b` with `W` of shape `[in, out]`
and `b` of shape `[out]` (Axon's layout). Parameters form one flat mapping from
`"<layer>.kernel"` / `"<layer>.bias"` to arrays. Layer names follow Edifice:

    encoder_dense_0 … encoder_dense_{n-1}   hidden layers, each followed by the activation
    mu, log_var                             linear heads of the encoder
    decoder_dense_0 … decoder_dense_{m-1}   hidden layers, each followed by the activation
    decoder_output                          linear output layer (no activation)

So `encode(x) = (h · W_mu + b_mu, h · W_lv + b_lv)` with
`h = act(… act(x · W_0 + b_0) …)`, and `decode(z) = act(… act(z · V_0 + c_0) …) · V_out + c_out`.

`VQArchitecture` (the VQ-VAE) has the same hidden layers; its encoder ends in one linear
head `encoder_to_embedding` (no activation, Edifice's name) giving `z_e`, and its decoder
reads the embedding dimension where the VAE's reads the latent one. The codebook is not
a dense layer: it is an explicit argument `[num_embeddings, embedding_dim]`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import ConfigError, show

# name -> formula; the reference and the Torch implementation provide exactly these.
ACTIVATIONS: dict[str, str] = {
    "relu": "max(x, 0); derivative 1 for x > 0, else 0",
    "gelu": "x · Φ(x) = x/2 · (1 + erf(x/√2)) (exact, not the tanh approximation)",
    "silu": "x · σ(x) with σ the logistic sigmoid",
    "tanh": "tanh(x)",
    "sigmoid": "σ(x) = 1 / (1 + exp(−x))",
    "elu": "x for x > 0, else exp(x) − 1 (α = 1)",
    "leaky_relu": "x for x > 0, else 0.01 · x (derivative 0.01 at x ≤ 0, as torch)",
    "softplus": "log(1 + exp(x)), computed as max(x, 0) + log1p(exp(−|x|)); derivative σ(x) everywhere (½ at 0)",
    "identity": "x",
}

# Most parameters an architecture may have (2³¹, 8 GiB in float32): a larger one is a typo or hostile
# (input_size=2**40), and would fail later inside numpy or torch with a MemoryError.
MAX_PARAMETERS = 2**31

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0


def _positive_int(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{option}: expected a positive integer, got {show(value)}")
    if value <= 0:
        raise ConfigError(f"{option}: expected a positive integer, got {show(value)}")
    return value


def _check_size(arch: Architecture | VQArchitecture) -> None:
    count = sum(fan_in * fan_out + fan_out for _, fan_in, fan_out in arch.dense_layers())
    if count > MAX_PARAMETERS:
        sizes = {k: v for k, v in arch.to_dict().items() if isinstance(v, int)}
        sizes.update({f"{k}[{i}]": v for k in ("encoder_sizes", "decoder_sizes")
                      for i, v in enumerate(getattr(arch, k))})
        largest = max(sizes, key=lambda k: sizes[k])  # name the option that blew the count up
        raise ConfigError(f"{largest}: the architecture would have {show(count)} parameters, more than the "
                          f"{MAX_PARAMETERS} vaespec allows; got {largest} = {show(sizes[largest])}")


MAX_LAYERS = 64  # hidden layers per part; also stops an endless iterator from hanging the constructor


def _sizes(option: str, value: object) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise ConfigError(f"{option}: expected a sequence of positive integers, got {show(value)}")
    sizes = tuple(itertools.islice(value, MAX_LAYERS + 1))
    if len(sizes) > MAX_LAYERS:
        raise ConfigError(f"{option}: expected at most {MAX_LAYERS} hidden layers, got more")
    return tuple(_positive_int(f"{option}[{i}]", v) for i, v in enumerate(sizes))


def check_activation(value: object) -> str:
    """Return `value` if it names a supported activation, else raise ConfigError."""
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {show(value)}")
    return value


class _DenseLayout:
    """The layer layout shared by `Architecture` and `VQArchitecture`; subclasses name their encoder `HEADS`."""

    HEADS: tuple[str, ...] = ()
    # The sizes both subclasses hold (dataclass fields, set by their __post_init__), for the type checker;
    # `output_size` is never None after __post_init__ (None there means `input_size`).
    input_size: int
    encoder_sizes: tuple[int, ...]
    decoder_sizes: tuple[int, ...]
    output_size: int | None
    activation: str
    if TYPE_CHECKING:
        @property
        def latent_size(self) -> int: ...

    def encoder_layers(self) -> list[tuple[str, int, int]]:
        """(name, fan_in, fan_out) of the encoder's hidden layers, in order."""
        widths = (self.input_size, *self.encoder_sizes)
        return [(f"encoder_dense_{i}", widths[i], widths[i + 1]) for i in range(len(self.encoder_sizes))]

    def encoder_head_fan_in(self) -> int:
        return (self.input_size, *self.encoder_sizes)[-1]

    def decoder_layers(self) -> list[tuple[str, int, int]]:
        """(name, fan_in, fan_out) of the decoder's hidden layers, in order."""
        widths = (self.latent_size, *self.decoder_sizes)
        return [(f"decoder_dense_{i}", widths[i], widths[i + 1]) for i in range(len(self.decoder_sizes))]

    def decoder_output_fan_in(self) -> int:
        return (self.latent_size, *self.decoder_sizes)[-1]

    def dense_layers(self) -> list[tuple[str, int, int]]:
        """Every dense layer (name, fan_in, fan_out): encoder, heads, decoder, output."""
        head = self.encoder_head_fan_in()
        assert self.output_size is not None  # __post_init__ sets it
        return [
            *self.encoder_layers(),
            *((name, head, self.latent_size) for name in self.HEADS),
            *self.decoder_layers(),
            ("decoder_output", self.decoder_output_fan_in(), self.output_size),
        ]

    def parameter_shapes(self, part: str = "all") -> dict[str, tuple[int, ...]]:
        """The documented parameter layout: name -> shape, for "encoder", "decoder" or "all"."""
        if part not in ("all", "encoder", "decoder"):
            raise ConfigError(f"part: expected 'all', 'encoder' or 'decoder', got {part!r}")
        try:
            return dict(_cached_shapes(self, part))  # a fresh dict: the caller may change it
        except TypeError:  # an unhashable layout (a subclass that is not frozen): computed each time
            return _parameter_shapes(self, part)

    def longest_path(self, part: str) -> int:
        """Sum of fan-ins along `part` ("encoder" or "decoder"): the reduction length of a forward pass.

        Used by the tolerance policy: each dense layer's dot product of length fan_in adds
        at most fan_in roundings to the forward error bound.
        """
        if part == "encoder":
            return sum(f for _, f, _ in self.encoder_layers()) + self.encoder_head_fan_in()
        if part == "decoder":
            return sum(f for _, f, _ in self.decoder_layers()) + self.decoder_output_fan_in()
        raise ConfigError(f"part: expected 'encoder' or 'decoder', got {part!r}")



@dataclass(frozen=True)
class Architecture(_DenseLayout):
    """Sizes and activation of a dense VAE; everything a backend needs besides parameters.

    **Arguments** (Edifice's `build` options and defaults):
    - `input_size`: observed features D (required).
    - `latent_size`: latent coordinates L (default 32).
    - `encoder_sizes`: hidden widths of the encoder (default (256, 128)).
    - `decoder_sizes`: hidden widths of the decoder (default (128, 256)).
    - `activation`: one of `ACTIVATIONS` (default "relu").
    - `output_size`: decoder output width (default: `input_size`).
    """

    input_size: int
    latent_size: int = 32
    encoder_sizes: tuple[int, ...] = (256, 128)
    decoder_sizes: tuple[int, ...] = (128, 256)
    activation: str = "relu"
    output_size: int | None = field(default=None)

    HEADS = ("mu", "log_var")

    def __post_init__(self):
        object.__setattr__(self, "input_size", _positive_int("input_size", self.input_size))
        object.__setattr__(self, "latent_size", _positive_int("latent_size", self.latent_size))
        object.__setattr__(self, "encoder_sizes", _sizes("encoder_sizes", self.encoder_sizes))
        object.__setattr__(self, "decoder_sizes", _sizes("decoder_sizes", self.decoder_sizes))
        check_activation(self.activation)
        out = self.input_size if self.output_size is None else _positive_int("output_size", self.output_size)
        object.__setattr__(self, "output_size", out)
        _check_size(self)

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "latent_size": self.latent_size,
            "encoder_sizes": list(self.encoder_sizes),
            "decoder_sizes": list(self.decoder_sizes),
            "activation": self.activation,
            "output_size": self.output_size,
        }


@dataclass(frozen=True)
class VQArchitecture(_DenseLayout):
    """Sizes and activation of a dense VQ-VAE (Edifice's `VQVAE.build` options and defaults).

    **Arguments**
    - `input_size`: observed features D (required).
    - `embedding_dim`: width of `z_e`, `z_q` and each codebook row (default 64).
    - `num_embeddings`: codebook rows K (default 512); unlike Edifice's, honoured everywhere.
    - `encoder_sizes`, `decoder_sizes`, `activation`, `output_size`: as for `Architecture`.

    Layers: `encoder_dense_i`, `encoder_to_embedding` (linear), `decoder_dense_i`,
    `decoder_output` (linear); `latent_size` is `embedding_dim`, so the VAE's `decode`
    is the VQ-VAE's decoder.
    """

    input_size: int
    embedding_dim: int = 64
    num_embeddings: int = 512
    encoder_sizes: tuple[int, ...] = (256, 128)
    decoder_sizes: tuple[int, ...] = (128, 256)
    activation: str = "relu"
    output_size: int | None = field(default=None)

    HEADS = ("encoder_to_embedding",)

    def __post_init__(self):
        for option in ("input_size", "embedding_dim", "num_embeddings"):
            object.__setattr__(self, option, _positive_int(option, getattr(self, option)))
        object.__setattr__(self, "encoder_sizes", _sizes("encoder_sizes", self.encoder_sizes))
        object.__setattr__(self, "decoder_sizes", _sizes("decoder_sizes", self.decoder_sizes))
        check_activation(self.activation)
        out = self.input_size if self.output_size is None else _positive_int("output_size", self.output_size)
        object.__setattr__(self, "output_size", out)
        _check_size(self)

    @property
    def latent_size(self) -> int:
        """The decoder's input width: the embedding dimension."""
        return self.embedding_dim

    def to_dict(self) -> dict:
        return {
            "input_size": self.input_size,
            "embedding_dim": self.embedding_dim,
            "num_embeddings": self.num_embeddings,
            "encoder_sizes": list(self.encoder_sizes),
            "decoder_sizes": list(self.decoder_sizes),
            "activation": self.activation,
            "output_size": self.output_size,
        }


def _parameter_shapes(layout: _DenseLayout, part: str) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, fan_in, fan_out in layout.dense_layers():
        is_encoder = name.startswith("encoder") or name in layout.HEADS
        if part == "all" or (part == "encoder") == is_encoder:
            shapes[f"{name}.kernel"] = (fan_in, fan_out)
            shapes[f"{name}.bias"] = (fan_out,)
    return shapes


# Every validated call asks; a frozen layout's shapes never change (equal layouts, equal shapes).
_cached_shapes = functools.lru_cache(maxsize=512)(_parameter_shapes)
