"""Loss conventions as data.

The seeds disagree on how the reconstruction and KL terms are reduced; a port is
only checkable once its convention is named. A `Convention` states each reduction:

    reconstruction(x̂, x) = batch_reduce_b( scale · feature_reduce_d (x̂_bd − x_bd)² )
    kl(μ, log σ²)        = batch_reduce_b( latent_reduce_j  ½(exp(lv_bj) + μ_bj² − 1 − lv_bj) )
    loss                 = reconstruction + β · kl

with each reduce one of "sum" or "mean".

**Default: `"elbo"`.** With β = 1 its loss is the negative ELBO of a decoder
N(x̂, I) per example (up to the constant D/2 · log 2π), averaged over the batch;
β then means what it means in the β-VAE paper. The other presets reproduce other
systems exactly, so their ports can be checked as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

REDUCTIONS = ("sum", "mean")


@dataclass(frozen=True)
class Convention:
    """How the loss terms are reduced. Every field is explicit; see the module docstring."""

    name: str
    reconstruction_feature_reduction: str
    reconstruction_batch_reduction: str
    reconstruction_scale: float
    kl_latent_reduction: str
    kl_batch_reduction: str
    description: str = ""

    def __post_init__(self):
        for field_name in (
            "reconstruction_feature_reduction",
            "reconstruction_batch_reduction",
            "kl_latent_reduction",
            "kl_batch_reduction",
        ):
            value = getattr(self, field_name)
            if value not in REDUCTIONS:
                raise ConfigError(f"{field_name}: expected one of {REDUCTIONS}, got {value!r}")
        if not (isinstance(self.reconstruction_scale, (int, float)) and self.reconstruction_scale > 0):
            raise ConfigError(f"reconstruction_scale: expected a positive number, got {self.reconstruction_scale!r}")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "reconstruction_feature_reduction": self.reconstruction_feature_reduction,
            "reconstruction_batch_reduction": self.reconstruction_batch_reduction,
            "reconstruction_scale": self.reconstruction_scale,
            "kl_latent_reduction": self.kl_latent_reduction,
            "kl_batch_reduction": self.kl_batch_reduction,
        }


PRESETS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention("elbo", "sum", "mean", 0.5, "sum", "mean",
                   "vaespec default: ½·SSE per example and KL summed over the latent, both averaged over the batch "
                   "(negative ELBO of a unit-variance Gaussian decoder, up to a constant); same as pythae's 'mse'."),
        Convention("edifice", "mean", "mean", 1.0, "sum", "mean",
                   "Edifice: MSE averaged over all batch × feature elements; KL summed over the latent, "
                   "averaged over the batch."),
        Convention("torchlean", "mean", "mean", 1.0, "mean", "mean",
                   "TorchLean: MSE averaged over the observation shape; KL averaged over the latent shape; "
                   "a batch (which TorchLean's per-example spec lacks) is averaged."),
        Convention("sum", "sum", "sum", 1.0, "sum", "sum",
                   "Everything summed (pytorch/examples' reduction, with squared error in place of BCE)."),
    )
}

DEFAULT_CONVENTION = "elbo"


def get_convention(convention: str | Convention | None = None) -> Convention:
    """Resolve a preset name (or a Convention, or None for the default) to a Convention."""
    if convention is None:
        return PRESETS[DEFAULT_CONVENTION]
    if isinstance(convention, Convention):
        return convention
    if isinstance(convention, str) and convention in PRESETS:
        return PRESETS[convention]
    raise ConfigError(f"convention: expected a Convention or one of {sorted(PRESETS)}, got {convention!r}")
