"""A discrete-input encoder: an embedding lookup (quivers' `embed` of a `FinSet`) before the dense encoder.

    embedding_lookup(T, i)[b] = T[i_b] = one_hot(i)[b] · T        (T: [categories, embedding])

`EmbeddingEncoder` reads `fields` categorical values per example (integers in
`[0, categories)`), looks each one up in one shared table, concatenates the `fields`
embeddings and runs the spec's dense `Encoder` on them, so it returns `{"mu", "log_var"}`
like `Encoder` and composes with the same decoder, estimators and losses. quivers' example
(`Pixel : FinSet 8` embedded into a 16-wide hidden space) is
`EmbeddingEncoder(categories=8, fields=1, embedding_dim=16, latent_size=4, encoder_sizes=(16,))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaespec.spec.architecture import Architecture
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError, describe, show
from vaespec.spec.init import init_params
from vaespec.spec.keys import Key, as_key, normal

from ._checks import check_tensor
from .convert import load_params
from .modules import Encoder


def _check_indices(indices: object, categories: int, dims: tuple[str, ...]) -> None:
    if not isinstance(indices, Tensor) or indices.dtype not in (torch.int64, torch.int32) \
            or indices.layout != torch.strided or indices.device.type == "meta":
        raise DTypeError(f"indices: expected an int64 or int32 tensor [{', '.join(dims)}], got {describe(indices)}")
    if indices.dim() != len(dims) or indices.numel() == 0:
        raise ShapeError(f"indices: expected a non-empty tensor [{', '.join(dims)}], got shape {tuple(indices.shape)}")
    if bool((indices < 0).any() | (indices >= categories).any()):
        raise DomainError(f"indices: expected integers in [0, {categories}), got values in "
                          f"[{int(indices.min())}, {int(indices.max())}]")


def embedding_lookup(table: Tensor, indices: Tensor, *, validate: bool = True) -> Tensor:
    """`table[indices]`, the product `one_hot(indices) · table` without forming the one-hot matrix.

    **Arguments**
    - `table`: `[categories, embedding]` float tensor.
    - `indices`: integer tensor of any shape with values in `[0, categories)`.
    - `validate`: check types, shapes, finiteness and the index range first.

    **Returns** `indices.shape + [embedding]`. Its gradient with respect to `table` is
    `one_hot(indices)ᵀ · ȳ`: rows of repeated indices accumulate.
    """
    if validate:
        check_tensor("table", table, ("categories", "embedding"), {})
        _check_indices(indices, table.shape[0], ("batch",) if isinstance(indices, Tensor) and indices.dim() == 1
                       else ("batch", "fields"))
        if indices.device != table.device:
            raise DTypeError(f"indices: expected a tensor on {table.device} to match table, got one on "
                             f"{indices.device}")
    return F.embedding(indices, table)


class EmbeddingEncoder(nn.Module):
    """q(z | x) for categorical x: `Encoder(concat_f table[x_f])`.

    **Arguments**
    - `categories`: values each field takes (quivers' `FinSet n`).
    - `fields`: categorical values per example (default 1).
    - `embedding_dim`: width of one embedding (default 16).
    - `latent_size`, `encoder_sizes`, `activation`: of the dense encoder that follows (input width
      `fields · embedding_dim`).
    - `dtype`, `device`: of the parameters.
    - `key`: a `Key` or integer seed: the table is `normal(key)` (N(0, 1)) and the dense layers
      `init_params(arch, key′)`, as the reference draws them; without it torch's default
      initialisation (its global generator) is used.

    `forward(x)` takes `[batch, fields]` (or `[batch]` when `fields == 1`) integers and returns
    `{"mu": [batch, latent], "log_var": [batch, latent]}`.
    """

    def __init__(self, categories: int, fields: int = 1, embedding_dim: int = 16, latent_size: int = 4,
                 encoder_sizes: tuple[int, ...] = (16,), activation: str = "relu", *,
                 dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                 key: Key | int | None = None):
        super().__init__()
        for option, value in (("categories", categories), ("fields", fields), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{option}: expected a positive integer, got {show(value)}")
        self.categories, self.fields = categories, fields
        # encoder_sizes goes to Architecture as given: it refuses strings and bytes (tuple(b"ab") is (97, 98)).
        self.arch = Architecture(fields * embedding_dim, latent_size, encoder_sizes, (), activation)
        self.encoder = Encoder(self.arch, dtype=dtype, device=device)
        if key is None:
            weight = self.encoder.mu.weight  # dtype and device resolved (and checked) by the Encoder
            table = torch.empty(categories, embedding_dim, dtype=weight.dtype, device=weight.device).normal_()
        else:
            values, next_key = normal(as_key(key), (categories, embedding_dim))
            table = torch.as_tensor(values, dtype=self.encoder.mu.weight.dtype, device=self.encoder.mu.weight.device)
            load_params(init_params(self.arch, next_key), encoder=self.encoder)
        self.table = nn.Parameter(table)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if isinstance(x, Tensor) and x.dim() == 1:
            x = x[:, None]
        _check_indices(x, self.categories, ("batch", "fields"))
        if x.shape[1] != self.fields:
            raise ShapeError(f"x: expected [batch, fields] with fields = {self.fields}, got shape {tuple(x.shape)}")
        return self.encoder(embedding_lookup(self.table, x, validate=False).flatten(1))
