"""The dense VAE as torch modules whose layers map one-to-one onto the spec layout.

Each dense layer is an `nn.Linear` registered under its spec name, so
`encoder.encoder_dense_0.weight` is the transpose of the spec's
`"encoder_dense_0.kernel"` (torch stores `[out, in]`, the spec `[in, out]`) and
`encoder.mu.bias` is `"mu.bias"`. `vaespec.impl.convert` moves parameters between
the two. `forward` does no shape checks: it is the training hot path.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.errors import DTypeError, describe

from ._dtypes import torch_device, torch_dtype
from .activations import get_activation


def check_arch(arch: object, types: tuple[type, ...], module: str) -> None:
    """A module's `arch` must be one of `types` (the constructors check once; `forward` never does)."""
    if not isinstance(arch, types):
        names = " or ".join(f"vaespec.spec.architecture.{t.__name__}" for t in types)
        raise DTypeError(f"arch: expected a {names} for {module}, got {describe(arch)}")


class Linear(nn.Linear):
    """`nn.Linear`, except that on the meta device it skips its random initialisation: a meta tensor holds no
    values, yet torch runs kaiming_uniform_'s decomposition in Python, which was most of the cost of
    building a module whose parameters are then given (`convert.fill_layers`). On any other device it
    initialises exactly as `nn.Linear` does."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


def _linear(name: str, layer: nn.Module) -> nn.Linear:
    """A `DenseStack` child, which `__init__` made an `nn.Linear` (torch types children as `Module`)."""
    if not isinstance(layer, nn.Linear):
        raise DTypeError(f"{name}: expected the nn.Linear this module was built with, got {describe(layer)}")
    return layer


class DenseStack(nn.Module):
    """What `Encoder`, `Decoder` and `VQEncoder` share: named `nn.Linear` layers, hidden ones followed by the
    activation, `dense_layers()` in the spec's order. Subclassed, never used alone."""

    part: str  # "encoder" or "decoder": the part of `arch.parameter_shapes` this module holds
    arch: Architecture | VQArchitecture

    def __init__(self, arch: Architecture | VQArchitecture, hidden: list[tuple[str, int, int]],
                 heads: list[tuple[str, int, int]], dtype: torch.dtype | str | None, device: torch.device | str | None):
        super().__init__()
        dtype = None if dtype is None else torch_dtype(dtype)
        device = None if device is None else torch_device(device, meta=True)  # meta: built, then filled
        self.arch = arch
        self.activation = get_activation(arch.activation)
        self.hidden_names = [name for name, _, _ in hidden]
        for name, fan_in, fan_out in (*hidden, *heads):
            self.add_module(name, Linear(fan_in, fan_out, dtype=dtype, device=device))

    def dense_layers(self) -> list[tuple[str, nn.Linear]]:
        """(spec layer name, `nn.Linear`) for every layer, in `arch.dense_layers()` order."""
        return [(name, _linear(name, layer)) for name, layer in self.named_children()]

    def _hidden(self, h: Tensor) -> Tensor:
        for name in self.hidden_names:
            h = self.activation(getattr(self, name)(h))
        return h


class Encoder(DenseStack):
    """q(z | x): `h = act(…act(x·W₀ + b₀)…)`, `μ = h·W_μ + b_μ`, `log σ² = h·W_lv + b_lv`.

    **Arguments**
    - `arch`: the `Architecture`; the encoder uses `input_size`, `encoder_sizes`,
      `latent_size` and `activation`.
    - `dtype`, `device`: of each `nn.Linear` (torch's defaults when None); a torch dtype or its name
      ("float32"), a device or its name ("cpu", "cuda", or "meta" for a module allocated later).

    Layers: `encoder_dense_0 … encoder_dense_{n-1}`, `mu`, `log_var`.
    `forward(x [batch, input])` returns `{"mu": [batch, latent], "log_var": [batch, latent]}`.
    """

    part = "encoder"
    arch: Architecture
    mu: nn.Linear
    log_var: nn.Linear

    def __init__(self, arch: Architecture, *, dtype: torch.dtype | str | None = None,
                 device: torch.device | str | None = None):
        check_arch(arch, (Architecture,), "Encoder")
        head = arch.encoder_head_fan_in()
        super().__init__(arch, arch.encoder_layers(),
                         [("mu", head, arch.latent_size), ("log_var", head, arch.latent_size)], dtype, device)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self._hidden(x)
        return {"mu": self.mu(h), "log_var": self.log_var(h)}


class Decoder(DenseStack):
    """p(x | z) mean: `x̂ = act(…act(z·V₀ + c₀)…)·V_out + c_out` (no output activation).

    **Arguments**
    - `arch`: the `Architecture`; the decoder uses `latent_size`, `decoder_sizes`,
      `output_size` and `activation`.
    - `dtype`, `device`: passed to each `nn.Linear` (torch's defaults when None).

    Layers: `decoder_dense_0 … decoder_dense_{m-1}`, `decoder_output`.
    `forward(z [batch, latent])` returns `x̂ [batch, output]`.
    """

    part = "decoder"
    decoder_output: nn.Linear

    def __init__(self, arch: Architecture | VQArchitecture, *, dtype: torch.dtype | str | None = None,
                 device: torch.device | str | None = None):
        check_arch(arch, (Architecture, VQArchitecture), "Decoder")
        super().__init__(arch, arch.decoder_layers(), [arch.dense_layers()[-1]], dtype, device)  # decoder_output

    def forward(self, z: Tensor) -> Tensor:
        return self.decoder_output(self._hidden(z))
