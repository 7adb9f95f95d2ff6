"""The vocabulary rounding chains are declared in (`FunctionSpec.chain`; the policy is `vaespec.spec.tolerances`).

A chain is `(n, n_ops)`: `n` roundings along the longest path of a computation (a dot product
of length k contributes k, each elementwise op 1), `n_ops` of them rounded op results (what a
bfloat16/float16 backend rounds to its narrow type). A function's declaration states its chain
as a rule of `sizes`, the sizes of its named dimensions at its arguments plus its `arch`
(`FunctionSpec.sizes`), built from the pieces below:

- a dense stack of L layers: its longest path of fan-ins plus 2 per layer (bias add,
  activation), and 3 rounded results per layer (product, bias add, activation): `encoder`,
  `decoder`;
- the reparameterization z = μ + e^{½lv}·ε: 4 ops (`REPARAMETERIZE`); the VQ straight-through
  z_e + (e − z_e): 2 (`STRAIGHT_THROUGH`);
- a VJP: the forward chain, the backward chain (the same layers transposed) and the sum over
  `rows` (the batch, or particles × batch) of the weight gradients: `backward`.

`NetworkChain` and `CodebookChain` mark the chains the legacy helpers
`tolerances.chain_length(function, arch, batch)` and `tolerances.vq_chain_length(function, batch,
dim, codes)` can evaluate from those sizes alone. Integers counted here pass `check_count`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .architecture import Architecture, VQArchitecture
from .conv import ConvArchitecture, conv_chain
from .conv_vq import ConvVQArchitecture
from .errors import ConfigError, show

Chain = tuple[int, int]
Sizes = Mapping[str, Any]  # named dimension -> size, plus "arch" when the function takes one

REPARAMETERIZE: Chain = (4, 4)  # halve, exp, multiply, add
STRAIGHT_THROUGH: Chain = (2, 2)  # z_e + (e − z_e): two rounded results


def check_count(name: str, value: object, low: int = 0) -> int:
    """An integer in [`low`, 2⁵³] (a rounding count or a size: exact as a float), else `ConfigError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= 2**53:
        raise ConfigError(f"{name}: expected an integer in [{low}, 2**53], got {show(value)}")
    return int(value)


def rows(sizes: Mapping[str, Any]) -> int:
    """N = batch·∏positions: the vectors of an input [batch, *positions, dim], each quantized on its own."""
    return int(sizes.get("batch", 1)) * int(np.prod(sizes.get("*positions", ()), dtype=np.int64))


def total(*chains: Chain) -> Chain:
    """Chains run one after the other: (Σ n_i, Σ n_ops_i)."""
    return sum(c[0] for c in chains), sum(c[1] for c in chains)


def encoder(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture) -> Chain:
    """The encoder stack of `arch` (L = hidden layers + 1): (longest fan-in path + 2L, 3L); a convolutional one's
    dot products are in·k² per convolution output (`vaespec.spec.conv.conv_chain`; a `ConvVQArchitecture`'s
    1×1 convolution to the embedding reads C_{n-1})."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        return conv_chain(arch, "encoder")
    layers = len(arch.encoder_sizes) + 1
    return arch.longest_path("encoder") + 2 * layers, 3 * layers


def decoder(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture) -> Chain:
    """The decoder stack of `arch` (L = hidden layers + 1): (longest fan-in path + 2L, 3L); a convolutional one's
    dot products are in·⌈k/s⌉² per transposed-convolution output (`vaespec.spec.conv.conv_chain`; a
    `ConvVQArchitecture`'s 1×1 convolution from the embedding reads E)."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        return conv_chain(arch, "decoder")
    layers = len(arch.decoder_sizes) + 1
    return arch.longest_path("decoder") + 2 * layers, 3 * layers


def network_positions(arch: object) -> tuple[int, ...]:
    """The positions of a network's z_e [batch, *positions, embedding]: a `ConvVQArchitecture`'s (H′, W′), else ()."""
    return arch.positions if isinstance(arch, ConvVQArchitecture) else ()


def gradient_rows(sizes: Mapping[str, Any]) -> int:
    """The length of a VJP's weight-gradient sum: the batch, times the positions one kernel slides over for a
    `ConvVQArchitecture` (`weight_gradient_positions`: its kernel's gradient sums over batch × positions)."""
    arch = sizes.get("arch")
    per = arch.weight_gradient_positions() if isinstance(arch, ConvVQArchitecture) else 1
    return int(sizes["batch"]) * per


def backward(chain: Chain, rows: int) -> Chain:
    """A VJP's chain: (2n + rows, 2·n_ops + 1), the forward and the backward chain and the sum over `rows`."""
    return 2 * chain[0] + rows, 2 * chain[1] + 1


@dataclass(frozen=True)
class NetworkChain:
    """A chain through the dense network, `rule(arch, batch)`; `needs_arch=False` when it reads no layer
    (`reparameterize`). Called with a function's sizes it reads `sizes["arch"]` and `sizes["batch"]`."""

    rule: Callable[[Any, int], Chain]
    needs_arch: bool = True

    def __call__(self, sizes: Sizes) -> Chain:
        return self.rule(sizes.get("arch"), sizes["batch"])


@dataclass(frozen=True)
class CodebookChain:
    """A chain of a VQ function on direct inputs, `rule(rows, dim, codes)` with z_e [batch, *positions, dim]
    (rows = batch·∏positions vectors, each quantized on its own) and a codebook [codes, dim]; a function
    without z_e (or a codebook) counts rows (or dim) as 1."""

    rule: Callable[[int, int, int], Chain]

    def __call__(self, sizes: Sizes) -> Chain:
        return self.rule(rows(sizes), sizes.get("embedding", 1), sizes["codes"])
