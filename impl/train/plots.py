"""PNG plots of a training run (matplotlib, Agg backend: no display needed).

- `loss_curves.png`: the training loss per step (faint), its mean per epoch, the held-out loss per epoch;
- `reconstructions.png`: held-out examples (top) and their reconstructions (bottom), the
  reconstruct path (decode the posterior mean; for a VQ-VAE, decode the nearest codes);
- `samples.png`: the generative path: decoded prior samples (VAE: z ~ N(0, I); VQ-VAE: codes drawn
  with their held-out usage frequencies);
- `latent_map.png`: held-out posterior means (VQ-VAE: z_e) in 2-D — the latent itself when it is
  2-D, else its first two principal components — coloured by label when the data has labels.
Bernoulli decoders are shown as probabilities σ(logits).
"""

from __future__ import annotations

import os

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: matplotlib is the `train` extra)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _show(ax, row, image_shape):
    ax.set_xticks([])
    ax.set_yticks([])
    if image_shape is None:
        ax.plot(row, lw=0.8)
    else:
        ax.imshow(row.reshape(image_shape), cmap="gray_r", vmin=0.0, vmax=max(1.0, float(row.max())))


def loss_curves(path, step_losses, epochs, title):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    steps = np.arange(1, len(step_losses) + 1)
    ax.plot(steps, step_losses, color="tab:blue", alpha=0.25, lw=0.6, label="train (per step)")
    ends = [e["step"] for e in epochs]
    marker = "o" if len(epochs) <= 60 else ""  # markers would hide the training line on long runs
    ax.plot(ends, [e["heldout_loss"] for e in epochs], marker=marker, color="tab:orange", ms=2.5, lw=1.2,
            label="held-out (epoch)")
    ax.plot(ends, [e["train_loss"] for e in epochs], color="tab:blue", lw=1.2, ls="--", label="train (epoch mean)")
    low, high = np.percentile(step_losses, 1), np.percentile(step_losses[: max(1, len(step_losses) // 20)], 99)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per example)" if "VAE" in title and "VQ" not in title else "loss")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def image_rows(path: str, rows: list[tuple[str, np.ndarray]], image_shape: tuple[int, ...] | None,
               title: str) -> None:
    """A grid with one labelled row per `(label, examples [n, features])`."""
    plt = pyplot()
    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.0 * n, 1.1 * len(rows) + 0.4), dpi=100, squeeze=False)
    for r, (label, examples) in enumerate(rows):
        for c in range(n):
            _show(axes[r][c], examples[c], image_shape)
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def image_grid(path: str, examples: np.ndarray, image_shape: tuple[int, ...] | None, title: str,
               columns: int = 8) -> None:
    plt = pyplot()
    rows = int(np.ceil(examples.shape[0] / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 0.9 + 0.4), dpi=100, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < examples.shape[0]:
            _show(ax, examples[i], image_shape)
        else:
            ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def project_2d(points: np.ndarray, others: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(points in 2-D, `others` by the same map, axis label): the points themselves when 2-D, else their
    first two principal components (centred SVD of `points`)."""
    if points.shape[1] <= 2:
        pad = (lambda a: np.column_stack([a[:, 0], np.zeros(len(a))])) if points.shape[1] == 1 else (lambda a: a)
        return pad(points), None if others is None else pad(others), "z"
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)

    def project(a):
        return (a - mean) @ vt[:2].T
    return project(points), None if others is None else project(others), "first two principal components"


def latent_map(path, points, labels, title, extra=None):
    """Scatter of 2-D `points` coloured by `labels`; `extra` ([m, 2]) is overlaid as crosses (codebook rows)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 4.4), dpi=100)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=7, alpha=0.8,
                             vmin=-0.5, vmax=9.5 if labels.max() < 10 else labels.max() + 0.5)
        fig.colorbar(scatter, ax=ax, ticks=np.unique(labels)[:20], label="label")
    if extra is not None:
        ax.scatter(extra[:, 0], extra[:, 1], marker="x", color="black", s=14, lw=0.8, label="codebook rows (used)")
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def paths(out_dir: str) -> dict[str, str]:
    return {name: os.path.join(out_dir, f"{name}.png")
            for name in ("loss_curves", "reconstructions", "samples", "latent_map")}
