"""The options of a training run, checked once, saved with every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vaespec.spec.errors import ConfigError

MODELS = ("vae", "vq")
OBJECTIVES = ("elbo", "iwae")
LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass
class TrainConfig:
    """Every option of `vaespec train` (see docs/training.md).

    Data: `data` ("digits" or a .npy/.npz path), `test_fraction`, `image_shape`. Model: `model`
    ("vae" or "vq"), `latent_size`, `encoder_sizes`, `decoder_sizes`, `activation`; VAE: `likelihood`
    ("bernoulli" or "gaussian"), `learn_scale` (learn the Gaussian's per-feature log σ²), `beta`,
    `objective` ("elbo": one particle with the closed-form KL; "iwae": the IWAE bound with `particles`);
    VQ-VAE: `embedding_dim`, `num_embeddings`, `commitment_weight`, `ema`. Optimisation: `epochs`,
    `batch_size`, `lr` (Adam), `seed`, `device`, `threads` (torch's CPU threads during the run: one is
    fastest for these small layers, and on a shared machine extra threads spin-wait, ~10× slower). Evaluation: `eval_particles` (held-out ELBO),
    `iwae_particles` (held-out IWAE log-likelihood). Output: `out`, `checkpoint_every` (epochs), `plots`.
    """

    data: str = "digits"
    out: str = "vaespec-train"
    model: str = "vae"
    likelihood: str = "bernoulli"
    learn_scale: bool = True
    objective: str = "elbo"
    particles: int = 1
    beta: float = 1.0
    latent_size: int = 8
    encoder_sizes: tuple[int, ...] = (128, 64)
    decoder_sizes: tuple[int, ...] = (64, 128)
    activation: str = "relu"
    embedding_dim: int = 8
    num_embeddings: int = 64
    commitment_weight: float = 0.25
    ema: bool = False
    epochs: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    test_fraction: float = 0.2
    image_shape: tuple[int, int] | None = None
    eval_particles: int = 100
    iwae_particles: int = 1000
    checkpoint_every: int = 1
    plots: bool = True

    def __post_init__(self):
        self.encoder_sizes = tuple(self.encoder_sizes)
        self.decoder_sizes = tuple(self.decoder_sizes)
        if self.image_shape is not None:
            self.image_shape = tuple(self.image_shape)
        for name, allowed in (("model", MODELS), ("objective", OBJECTIVES), ("likelihood", LIKELIHOODS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        for name in ("threads", "particles", "latent_size", "embedding_dim", "num_embeddings", "epochs", "batch_size",
                     "eval_particles", "iwae_particles", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed: expected an integer in [0, 2**63), got {self.seed!r}")
        for name, low in (("lr", 0.0), ("beta", 0.0), ("commitment_weight", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < float("inf"):
                raise ConfigError(f"{name}: expected a finite number ≥ {low}, got {value!r}")
        if self.lr == 0:
            raise ConfigError("lr: expected a positive learning rate, got 0")
        if self.objective == "iwae" and self.model != "vae":
            raise ConfigError("objective: 'iwae' trains a VAE; the VQ-VAE has no importance weights")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"config: unknown options {unknown}")
        return cls(**values)
