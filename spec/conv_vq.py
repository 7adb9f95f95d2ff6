"""A convolutional, spatial VQ-VAE architecture and its explicit parameter layout (issue 15).

The images are `vaespec.spec.conv`'s: `x [batch, channels, height, width]` (torch's NCHW), every convolution
torch's `Conv2d` (a cross-correlation), every transposed convolution its `ConvTranspose2d`, kernels
`[kh, kw, in, out]` and biases `[out]`. The encoder's last feature map is quantized **at every position**:

    encoder_conv_0 … encoder_conv_{n-1}   Conv2d(k, s, p), each followed by the activation
    encoder_to_embedding                  Conv2d(1, 1, 0) to E = embedding_dim channels (linear), then
                                          z_e = h.permute(0, 2, 3, 1): [batch, H′, W′, E], channels-last
    decoder_from_embedding                z_q [batch, H′, W′, E] permuted back (z_q.permute(0, 3, 1, 2)), then
                                          Conv2d(1, 1, 0) to the last feature map's channels, then the activation
    decoder_deconv_0 … decoder_deconv_{n-2}  ConvTranspose2d(k, s, p), each followed by the activation
    decoder_output                        ConvTranspose2d(k, s, p) to the input's channels (no activation)

so `z_e[b, i, j, :] = Σ_c K_emb[0, 0, c, :] · h[b, c, i, j] + bias_emb` and
`x̂ = decoder(z_q) [batch, C, H, W]`. (H′, W′) is the last feature map's side, `ConvVQArchitecture.positions`:
the VQ chapter's `*positions` of the network's z_e and indices (`vaespec.spec.vq`, z_e [batch, *positions, D]).

**Channels-last z.** The VQ chapter quantizes the last axis, so the network's z_e, z_q and the decoder's
input are channels-last `[B, H′, W′, E]`; torch's feature maps are channels-first `[B, E, H′, W′]`. The
transposition is a permutation of axes, never a reshape: z_e = h.permute(0, 2, 3, 1) (numpy:
np.moveaxis(h, 1, -1)) and back h = z_q.permute(0, 3, 1, 2) (np.moveaxis(z_q, -1, 1)). A reshape keeps the
shape for H′·W′ > 1 and E > 1 but mixes positions and channels (the negative controls
`TorchConvVQEncoderReshaped`, `TorchConvVQDecoderReshaped`).

**Defaults** (an MNIST-sized VQ-VAE): `input_shape` (1, 28, 28), `channels` (32, 64), kernel 4, stride 2,
padding 1: 1×28×28 → 32×14×14 → 64×7×7 → z_e [B, 7, 7, 64]; `embedding_dim` 64, `num_embeddings` 512 (the
dense `VQArchitecture`'s, Edifice's), relu. 49 vectors per example are quantized.

**Kernel layout.** As `vaespec.spec.conv`: `[kh, kw, in, out]`, from torch's `Conv2d.weight [out, in, kh, kw]`
by `weight.permute(2, 3, 1, 0)` (the two 1×1 convolutions too: `[1, 1, in, out]`) and from
`ConvTranspose2d.weight [in, out, kh, kw]` by `weight.permute(2, 3, 0, 1)`; a kernel in torch's layout is
refused naming that conversion (`vaespec.spec.conv.check_conv_params`).

**Rounding chains** (`vaespec.spec.chains`' principle): the encoder's path is Σ_conv in·k² plus the 1×1
convolution's C_{n-1}, the decoder's E plus Σ_deconv in·⌈k/s⌉²; each layer adds 2 and 3 rounded results. A
kernel's gradient sums over the batch and every output position of its layer, so a VJP's weight-gradient sum
is `batch · weight_gradient_positions()` long (the largest map a kernel slides over, H₁·W₁).
"""

from __future__ import annotations

from dataclasses import dataclass

from .conv import ConvLayout, check_conv_options, check_positive


@dataclass(frozen=True)
class ConvVQArchitecture(ConvLayout):
    """Sizes of a convolutional VQ-VAE (layout in the module docstring).

    **Arguments**
    - `input_shape`: `(channels, height, width)` of one example (default `(1, 28, 28)`, MNIST).
    - `channels`: output channels of the encoder's convolutions (default `(32, 64)`).
    - `embedding_dim`: E, the channels of z_e and z_q and the width of each codebook row (default 64).
    - `num_embeddings`: K codebook rows (default 512).
    - `kernel_size`, `stride`, `padding`: of every (transposed) convolution but the two 1×1 ones (default 4, 2,
      1: each halves a side, 28 → 14 → 7).
    - `activation`: one of `vaespec.spec.architecture.ACTIVATIONS` (default "relu").
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    channels: tuple[int, ...] = (32, 64)
    embedding_dim: int = 64
    num_embeddings: int = 512
    kernel_size: int = 4
    stride: int = 2
    padding: int = 1
    activation: str = "relu"

    HEADS = ("encoder_to_embedding",)

    def __post_init__(self) -> None:
        for option in ("embedding_dim", "num_embeddings"):
            check_positive(option, getattr(self, option))
        check_conv_options(self)

    # ------------------------------------------------------------------------- shapes
    @property
    def latent_size(self) -> int:
        """The decoder's input channels: the embedding dimension (as `VQArchitecture`'s)."""
        return self.embedding_dim

    @property
    def positions(self) -> tuple[int, int]:
        """(H′, W′): the last feature map's sides, the positions of z_e [batch, H′, W′, E] and indices
        [batch, H′, W′]."""
        _, h, w = self.feature_shapes()[-1]
        return (h, w)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(H′, W′, E): one example's z_e, z_q and decoder input, channels-last."""
        return (*self.positions, self.embedding_dim)

    def parameter_shapes(self, part: str = "all") -> dict[str, tuple[int, ...]]:
        """The documented parameter layout: name -> shape, for "encoder", "decoder" or "all"."""
        from .errors import ConfigError

        if part not in ("all", "encoder", "decoder"):
            raise ConfigError(f"part: expected 'all', 'encoder' or 'decoder', got {part!r}")
        k, last, e = self.kernel_size, self.channels[-1], self.embedding_dim
        shapes: dict[str, tuple[int, ...]] = {}
        if part in ("all", "encoder"):
            for name, cin, cout in self.encoder_convs():
                shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (k, k, cin, cout), (cout,)
            shapes["encoder_to_embedding.kernel"], shapes["encoder_to_embedding.bias"] = (1, 1, last, e), (e,)
        if part in ("all", "decoder"):
            shapes["decoder_from_embedding.kernel"], shapes["decoder_from_embedding.bias"] = (1, 1, e, last), (last,)
            for name, cin, cout in self.decoder_deconvs():
                shapes[f"{name}.kernel"], shapes[f"{name}.bias"] = (k, k, cin, cout), (cout,)
        return shapes

    # ------------------------------------------------------------------------- rounding chains
    def conv_taps(self, transposed: bool) -> int:
        """Products per output of one k×k (transposed) convolution, per input channel: k², or ⌈k/s⌉²."""
        k = self.kernel_size
        return (-(-k // self.stride)) ** 2 if transposed else k * k

    def longest_path(self, part: str) -> int:
        """Σ of the dot-product lengths along `part`: Σ_conv in·k² + C_{n-1} (the 1×1 convolution) for the
        encoder, E + Σ_deconv in·⌈k/s⌉² for the decoder."""
        from .errors import ConfigError

        if part == "encoder":
            return sum(cin * self.conv_taps(False) for _, cin, _ in self.encoder_convs()) + self.channels[-1]
        if part == "decoder":
            return self.embedding_dim + sum(cin * self.conv_taps(True) for _, cin, _ in self.decoder_deconvs())
        raise ConfigError(f"part: expected 'encoder' or 'decoder', got {part!r}")

    def layers(self, part: str) -> int:
        """Layers along `part`: the k×k (transposed) convolutions and the 1×1 one."""
        return len(self.channels) + 1

    def weight_gradient_positions(self) -> int:
        """Positions a kernel's gradient sums over, per example, at most: the first feature map's H₁·W₁ (the
        encoder's first convolution writes it, the decoder's output layer reads it); the later maps are smaller."""
        return max(h * w for _, h, w in self.feature_shapes()[1:])

    def to_dict(self) -> dict:
        return {"input_shape": list(self.input_shape), "channels": list(self.channels),
                "embedding_dim": self.embedding_dim, "num_embeddings": self.num_embeddings,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "activation": self.activation}


def latent_error(arch: ConvVQArchitecture, name: str, shape: tuple[int, ...]) -> str:
    """The message for a channels-last latent `name` (z_e, z_q, the decoder's z, a cotangent) of `shape` that is not
    `[batch, H′, W′, E]`: the expected shape, what was given, and the fix when it is channels-first (torch's
    `[batch, E, H′, W′]`) or flattened."""
    h, w, e = arch.latent_shape
    hint = ""
    if len(shape) == 4 and tuple(shape[1:]) == (e, h, w) and (e, h, w) != (h, w, e):
        hint = (f"; it looks channels-first [batch, embedding, height, width] (torch's layout): move the channel "
                f"axis last (np.moveaxis({name}, 1, -1), torch: {name}.permute(0, 2, 3, 1))")
    elif len(shape) == 2 and shape[1] == h * w * e:
        hint = f"; it looks flattened: reshape it to [batch, {h}, {w}, {e}] ({name}.reshape(-1, {h}, {w}, {e}))"
    return (f"{name}: expected shape [batch, {h}, {w}, {e}] (batch, height, width, embedding: channels-last) for this "
            f"ConvVQArchitecture's positions {arch.positions} and embedding_dim {e}, got shape {tuple(shape)}{hint}")
