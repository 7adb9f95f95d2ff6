"""The training loop of `vaespec train`: epochs of shuffled minibatches, Adam, checkpoints, plots.

Deterministic given `seed`: the split, each epoch's permutation (numpy, from (seed, epoch)), each
step's noise (a `torch.Generator` from (seed, step)) and the initialisation (`init_params`) are all
derived from it, and `torch.use_deterministic_algorithms` is switched on. Because nothing depends
on a generator's running state, a run resumed from a checkpoint continues exactly as an
uninterrupted one.

A non-finite loss stops the run with `TrainingDiverged`: the batch's update is not applied and the
last good checkpoint (written at the end of an earlier epoch) stays on disk. A run holds
`checkpoint.lock(cfg.out)` throughout, so a second run into the same `--out` is refused; a write that
fails (a full disk) is a one-line `ConfigError`/`CheckpointError`, the previous checkpoint kept.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from vaespec.spec.errors import ConfigError, VaespecError
from vaespec.spec.files import check_output_dir

from . import checkpoint, models, plots
from .config import TrainConfig
from .data import Dataset, load_dataset
from .progress import Progress

CHECKPOINT_DIR = "checkpoint"


class TrainingDiverged(VaespecError, RuntimeError):
    """The loss became NaN or infinite; the message says where and which checkpoint is kept."""


def _device(name: str) -> torch.device:
    from vaespec.impl._dtypes import torch_device

    device = torch_device(name)
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    if device.type == "cuda":  # cuBLAS needs this before its first call to be deterministic
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return device


def _describe(cfg: TrainConfig) -> str:
    if cfg.model == "vq":
        return (f"VQ-VAE ({cfg.num_embeddings} codes × {cfg.embedding_dim}, "
                f"{'EMA' if cfg.ema else 'trained'} codebook)")
    return f"VAE (latent {cfg.latent_size}, {cfg.likelihood} decoder, {cfg.objective} objective)"


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool | None = None,
          log: Callable[..., None] = print) -> dict:
    """Fit `cfg`'s model on `cfg.data`; write checkpoints, metrics.json and plots under `cfg.out`.

    **Arguments**
    - `cfg`: the `TrainConfig`.
    - `resume`: continue from `cfg.out/checkpoint` (its epoch, step, history, optimizer state) up to `cfg.epochs`.
    - `progress`: show the progress bar (None: when stderr is a terminal).
    - `log`: where the per-epoch lines go (default `print`).

    **Returns** `{"metrics", "history", "plots", "checkpoint", "seconds"}`.

    **Raises** `TrainingDiverged` on a NaN/Inf loss; `DataError`, `ShapeError`, `DomainError`,
    `ConfigError`, `CheckpointError` for bad data, options or checkpoints.
    """
    # Both settings are global; they are restored on the way out, so a library call leaves no trace.
    threads = torch.get_num_threads()
    deterministic = (torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled())
    check_output_dir("--out", cfg.out)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with checkpoint.lock(cfg.out):
            return _train(cfg, resume, progress, log)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])


def _train(cfg: TrainConfig, resume: bool, progress: bool | None, log: Callable[..., None]) -> dict:
    started = time.perf_counter()
    device = _device(cfg.device)
    data = load_dataset(cfg.data, seed=cfg.seed, test_fraction=cfg.test_fraction,
                        likelihood=cfg.likelihood if cfg.model == "vae" else "gaussian", image_shape=cfg.image_shape)
    cfg.check_size(data.features)
    x_train = torch.as_tensor(data.train, device=device)
    x_test = torch.as_tensor(data.test, device=device)
    model, likelihood = models.build_model(cfg, data.features, device)
    parameters = list(model.parameters()) + (list(likelihood.parameters()) if likelihood is not None else [])
    optimizer = torch.optim.Adam(parameters, lr=cfg.lr)
    ck_dir = os.path.join(cfg.out, CHECKPOINT_DIR)
    checkpoint.check_target(os.path.abspath(ck_dir))  # before any epoch, not after the first
    checkpoint.clean_leftovers(os.path.abspath(ck_dir))  # of a crashed save; we hold the lock
    history: dict[str, list] = {"step_losses": [], "epochs": []}
    epoch, step = 0, 0
    if resume:
        state = checkpoint.load(ck_dir, model, likelihood, optimizer, device)
        if checkpoint.locate(ck_dir) != ck_dir:
            log(f"vaespec train: {ck_dir} is missing (a save was interrupted); resuming from "
                f"{checkpoint.locate(ck_dir)}, the last good checkpoint")
        epoch, step, history = state["epoch"], state["step"], state["history"]
        for group in optimizer.param_groups:  # a resumed run may lower the rate (e.g. after a divergence)
            group["lr"] = cfg.lr
    steps_per_epoch = math.ceil(x_train.shape[0] / cfg.batch_size)
    log(f"vaespec train: {_describe(cfg)} on {data.name}: {x_train.shape[0]} train / {x_test.shape[0]} held-out "
        f"examples of {data.features} features, {cfg.epochs} epochs × {steps_per_epoch} steps, device {device}, "
        f"seed {cfg.seed}" + (f"; resuming at epoch {epoch}" if resume else ""))
    bar = Progress(cfg.epochs, steps_per_epoch, progress)
    last_good = (epoch, step) if resume else None
    model.train()
    while epoch < cfg.epochs:
        t0, losses = time.perf_counter(), []
        order = torch.as_tensor(np.random.default_rng([cfg.seed, epoch]).permutation(x_train.shape[0]), device=device)
        for i, rows in enumerate(order.split(cfg.batch_size)):
            loss = models.batch_loss(cfg, model, likelihood, x_train[rows],
                                     models.generator(cfg.seed, "step", step, device))
            value = loss.item()
            if not math.isfinite(value):
                bar.clear()
                raise _diverged(cfg, f"the loss is {value} at epoch {epoch + 1}, step {step + 1}; stopped before "
                                     "applying that update", last_good, ck_dir)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(value)
            step += 1
            bar.update(epoch + 1, i + 1, value)
        epoch += 1
        heldout = models.heldout_loss(cfg, model, likelihood, x_test)
        history["step_losses"].extend(losses)
        history["epochs"].append({"epoch": epoch, "step": step, "train_loss": float(np.mean(losses)),
                                  "heldout_loss": heldout, "seconds": time.perf_counter() - t0})
        bar.clear()
        log(f"epoch {epoch:4d}/{cfg.epochs}  train loss {np.mean(losses):10.4f}  held-out loss {heldout:10.4f}  "
            f"({time.perf_counter() - t0:.2f} s)")
        if not math.isfinite(heldout):
            raise _diverged(cfg, f"the held-out loss is {heldout} after epoch {epoch}", last_good, ck_dir)
        if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
            checkpoint.save(ck_dir, model, likelihood, optimizer,
                            {"config": cfg.to_dict(), "epoch": epoch, "step": step, "history": history,
                             "features": data.features})
            last_good = (epoch, step)
    metrics = models.final_metrics(cfg, model, likelihood, x_test)
    try:
        written = _plots(cfg, model, data, x_test, history) if cfg.plots and history["epochs"] else {}
        seconds = time.perf_counter() - started
        with open(os.path.join(cfg.out, "metrics.json"), "w") as handle:
            json.dump({"config": cfg.to_dict(), "metrics": metrics, "epochs": history["epochs"], "plots": written,
                       "seconds": seconds}, handle, indent=1)
    except OSError as error:  # a full disk after the last checkpoint: that checkpoint is complete
        raise ConfigError(f"--out: cannot write {error.filename or cfg.out!r} ({error.strerror}); the checkpoint "
                          f"in {ck_dir} is complete") from None
    return {"metrics": metrics, "history": history, "plots": written, "checkpoint": ck_dir, "seconds": seconds}


def _diverged(cfg: TrainConfig, what: str, last_good: tuple[int, int] | None, ck_dir: str) -> TrainingDiverged:
    kept = (f"The last good checkpoint (epoch {last_good[0]}, step {last_good[1]}) is kept in {ck_dir}; resume it "
            f"with a lower learning rate (vaespec train --resume --out {cfg.out} --lr {cfg.lr / 10:g})"
            if last_good else f"No checkpoint had been written yet; start again with a lower --lr than {cfg.lr:g}")
    return TrainingDiverged(f"training diverged: {what}. {kept}, or a smaller --beta.")


def _plots(cfg: TrainConfig, model: nn.Module, data: Dataset, x_test: Tensor,
           history: Mapping[str, list]) -> dict[str, str]:
    files = plots.paths(cfg.out)
    arrays = models.plot_arrays(cfg, model, x_test)
    shape, labels = data.image_shape, data.test_labels
    # one held-out example per label where there are labels (the first of each), else the first ten
    show = (np.array([int(np.argmax(labels == v)) for v in np.unique(labels)[:10]]) if labels is not None
            else np.arange(min(10, x_test.shape[0])))
    what = "VQ-VAE" if cfg.model == "vq" else "VAE"
    plots.loss_curves(files["loss_curves"], history["step_losses"], history["epochs"],
                      f"{_describe(cfg)}: training loss" + (" (−ELBO, nats)" if cfg.model == "vae" else ""))
    plots.image_rows(files["reconstructions"],
                     [("held-out", data.test[show]), ("reconstructed", arrays["recon"][show])],
                     shape, f"{what}: held-out examples and reconstruct(x) = decode(" +
                     ("nearest code)" if cfg.model == "vq" else "μ(x))"))
    plots.image_grid(files["samples"], arrays["samples"], shape,
                     f"{what}: generate — " + ("codes drawn by held-out usage, decoded" if cfg.model == "vq"
                                               else "z ~ N(0, I) decoded" + (" (probabilities)" if
                                                                            cfg.likelihood == "bernoulli" else "")))
    points, codes, axis = plots.project_2d(arrays["latent"], arrays.get("codes"))
    plots.latent_map(files["latent_map"], points, data.test_labels,
                     f"{what}: held-out " + ("z_e" if cfg.model == "vq" else "posterior means μ(x)") + f" ({axis})",
                     extra=codes)
    return files
