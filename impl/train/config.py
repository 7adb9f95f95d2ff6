"""The options of a training run, checked once, saved with every checkpoint."""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass

from vaespec.spec.errors import ConfigError

# Upper limits: far above any model this command is for, low enough that a typo (a width of 10¹²)
# is refused here instead of exhausting memory later (`check_size` bounds the product).
MAX_WIDTH = 1 << 16
MAX_CODES = 1 << 20
MAX_COUNT = 1 << 31  # epochs, batch size, particles, checkpoint_every
MAX_THREADS = 1024
MAX_ELEMENTS = 1 << 30  # parameters, or floats of one step's largest activation

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
    fastest for these small layers, and on a shared machine extra threads spin-wait, ~10× slower). Evaluation:
    `eval_particles` (held-out ELBO), `iwae_particles` (held-out IWAE log-likelihood). Output: `out`,
    `checkpoint_every` (epochs), `plots`.
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
        for name in ("data", "out", "activation", "device"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name}: expected a non-empty string, got {str(getattr(self, name))[:80]!r}")
        for name in ("learn_scale", "ema", "plots"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, got {str(getattr(self, name))[:80]!r}")
        for name in ("encoder_sizes", "decoder_sizes", "image_shape"):
            value = getattr(self, name)
            if value is None and name == "image_shape":
                continue
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH for v in value) \
                    or (name == "image_shape" and len(value) != 2):
                raise ConfigError(f"{name}: expected {'two' if name == 'image_shape' else 'a list of'} integers in "
                                  f"[1, {MAX_WIDTH}], got {str(value)[:80]}")
            setattr(self, name, tuple(value))
        if not re.fullmatch(r"cpu|cuda(:[0-9]{1,3})?", self.device):
            raise ConfigError(f"device: vaespec train runs on 'cpu' or 'cuda' (or 'cuda:N'), got {self.device[:80]!r}")
        from vaespec.spec.architecture import ACTIVATIONS

        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {self.activation[:80]!r}")
        for name, allowed in (("model", MODELS), ("objective", OBJECTIVES), ("likelihood", LIKELIHOODS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if not self.learn_scale and self.likelihood != "gaussian":  # --fixed-scale: the Gaussian's option only
            raise ConfigError(f"learn_scale: only the gaussian likelihood has a scale to fix (--fixed-scale), got "
                              f"likelihood {self.likelihood!r}")
        for name in ("threads", "particles", "latent_size", "embedding_dim", "num_embeddings", "epochs", "batch_size",
                     "eval_particles", "iwae_particles", "checkpoint_every"):
            highs = {"latent_size": MAX_WIDTH, "embedding_dim": MAX_WIDTH, "threads": MAX_THREADS,
                     "num_embeddings": MAX_CODES}
            value, high = getattr(self, name), highs.get(name, MAX_COUNT)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ConfigError(f"{name}: expected an integer in [1, {high}], got {str(value)[:80]}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed: expected an integer in [0, 2**63), got {self.seed!r}")
        for name, low in (("lr", 0.0), ("beta", 0.0), ("commitment_weight", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < float("inf"):
                raise ConfigError(f"{name}: expected a finite number ≥ {low}, got {value!r}")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction: expected a number in (0, 1), got {str(self.test_fraction)[:80]}")
        if self.lr == 0:
            raise ConfigError("lr: expected a positive learning rate, got 0")
        if self.objective == "iwae" and self.model != "vae":
            raise ConfigError("objective: 'iwae' trains a VAE; the VQ-VAE has no importance weights")

    def check_size(self, features: int) -> None:
        """Refuse a model whose parameters, or one step's largest activation, exceed `MAX_ELEMENTS` floats."""
        latent = self.embedding_dim if self.model == "vq" else self.latent_size
        widths = (features, *self.encoder_sizes, latent, *self.decoder_sizes, features)
        params = sum(a * b + b for a, b in itertools.pairwise(widths)) + (self.num_embeddings * latent
                                                                           if self.model == "vq" else 2 * latent)
        rows = max(self.particles * self.batch_size, (self.eval_particles + self.iwae_particles) * 64)
        activation = rows * max(widths)
        if max(params, activation) > MAX_ELEMENTS:
            raise ConfigError(f"sizes: this model needs about {params:.3g} parameters and {activation:.3g} floats per "
                              f"step, over the limit of {MAX_ELEMENTS:.3g} (widths {widths}, particles × batch "
                              f"{rows}); choose smaller sizes")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"config: unknown options {unknown}")
        return cls(**values)
