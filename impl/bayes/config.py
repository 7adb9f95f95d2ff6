"""The options of `vaespec bayes`, checked once and saved with the results."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from vaespec.spec.bayes import PRIOR_SCALE
from vaespec.spec.errors import ConfigError

DATA = ("digits", "synthetic")
EVIDENCE = ("exact",)  # the spec's surrogate kinds ("elbo", "iwae") are not offered by the command yet


@dataclass
class BayesConfig:
    """Every option of `vaespec bayes` (docs/bayes.md).

    Model: `data` ("digits": the first `examples` of a seeded permutation of scikit-learn's 8×8
    digits in [0, 1]; "synthetic": `examples` draws of the generative path at parameters drawn from
    the prior, `synthetic_output` features), `latent_size` L, `noise_log_var` (log σ², fixed),
    `prior_scale` s, `evidence` (what log p(x | θ) is: "exact"). SVI: `steps`, `particles` (ELBO
    particles), `lr` (Adam). NUTS: `warmup`, `samples`, `chains` (run one after the other, each
    started from its own draw of the SVI guide), `step_size` (initial; adapted in warmup),
    `max_tree_depth`, `target_accept`. Run: `seed`, `threads`, `predictive` (images in the PNG), `out`.
    """

    data: str = "digits"
    examples: int = 200
    synthetic_output: int = 8
    latent_size: int = 2
    noise_log_var: float = -3.0
    prior_scale: float = PRIOR_SCALE
    evidence: str = "exact"
    steps: int = 1000
    particles: int = 1
    lr: float = 0.05
    warmup: int = 200
    samples: int = 200
    chains: int = 2
    step_size: float = 0.01
    max_tree_depth: int = 5
    target_accept: float = 0.8
    seed: int = 0
    threads: int = 1
    predictive: int = 16
    out: str = "vaespec-bayes"

    def __post_init__(self):
        bad = []
        for name, allowed in (("data", DATA), ("evidence", EVIDENCE)):
            if getattr(self, name) not in allowed:
                bad.append(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        for name in ("examples", "synthetic_output", "latent_size", "steps", "particles", "warmup", "samples",
                     "chains", "max_tree_depth", "threads", "predictive"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad.append(f"{name}: expected a positive integer, got {value!r}")
        if isinstance(self.samples, int) and not isinstance(self.samples, bool) and 1 <= self.samples < 4:
            bad.append(f"samples: expected at least 4 per chain (split R-hat halves each chain), got {self.samples}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            bad.append(f"seed: expected an integer in [0, 2**31), got {self.seed!r}")
        for name, low, high in (("lr", 0.0, math.inf), ("step_size", 0.0, math.inf), ("prior_scale", 0.0, math.inf),
                                ("target_accept", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
                bad.append(f"{name}: expected a number in ({low}, {high}), got {value!r}")
        value = self.noise_log_var
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -20.0 <= value <= 20.0:
            bad.append(f"noise_log_var: expected a number in [-20, 20] (log σ²), got {value!r}")
        if not bad and self.data == "digits" and self.latent_size > 64:
            bad.append(f"latent_size: expected at most 64 (the digits' features), got {self.latent_size}")
        if not bad and self.data == "synthetic" and self.latent_size > self.synthetic_output:
            bad.append(f"latent_size: expected at most synthetic_output = {self.synthetic_output}, got "
                       f"{self.latent_size}")
        if bad:
            raise ConfigError("; ".join(bad))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
