"""vaespec.impl.train: fit a VAE or VQ-VAE on real data (`vaespec train`).

- `TrainConfig`: every option, checked; saved with each checkpoint.
- `train(cfg, resume=False)`: the loop (deterministic given the seed), checkpoints as safetensors
  plus JSON, held-out figures, PNG plots.
- `load_dataset`: scikit-learn's bundled 8×8 digits or a user's .npy/.npz, validated and split.

Needs the `train` extra: `pip install -c constraints.txt -e ".[train]"` (scikit-learn,
safetensors, matplotlib). See docs/training.md.
"""

from .config import TrainConfig
from .data import DataError, Dataset, load_dataset
from .loop import TrainingDiverged, train

__all__ = ["DataError", "Dataset", "TrainConfig", "TrainingDiverged", "load_dataset", "train"]
