"""`vaespec train`: fit a VAE or VQ-VAE on the bundled digits or your own .npy/.npz.

    vaespec train                                   # VAE, Bernoulli decoder, scikit-learn's 8×8 digits
    vaespec train --model vq --ema                  # VQ-VAE with an EMA codebook
    vaespec train --data my.npz --likelihood gaussian --epochs 100 --device cuda
    vaespec train --resume --out vaespec-train --epochs 120   # continue a run

Prints one line per epoch (and a progress bar on a terminal), then the held-out figures: −ELBO
and the IWAE log-likelihood for a VAE, reconstruction and codebook perplexity for a VQ-VAE.
Writes `OUT/checkpoint/` (safetensors + JSON), `OUT/metrics.json` and four PNG plots. Exit
status 0 on success, 1 if training diverged (NaN/Inf loss), 2 for bad options or data.
"""

from __future__ import annotations

import argparse
import sys

from .config import TrainConfig


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 128,64, got {text!r}") from error


def configure(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    add = parser.add_argument
    add("--data", default=None, help=f"'digits' (scikit-learn's 1,797 8×8 images) or a .npy/.npz path (default "
                                     f"{d.data})")
    add("--out", default=d.out, help=f"output directory: checkpoint/, metrics.json, plots (default {d.out})")
    add("--resume", action="store_true", help="continue the run saved in --out (its options; --epochs, --lr, "
                                              "--device may be changed)")
    add("--model", choices=("vae", "vq"), default=None, help=f"model (default {d.model})")
    add("--likelihood", choices=("bernoulli", "gaussian"), default=None, help="VAE decoder (default bernoulli)")
    add("--fixed-scale", action="store_true", help="gaussian decoder: keep log σ² = 0 instead of learning it")
    add("--objective", choices=("elbo", "iwae"), default=None, help="VAE objective (default elbo)")
    add("--particles", type=int, default=None, help="IWAE particles in training (default 1)")
    add("--beta", type=float, default=None, help="KL weight β (default 1)")
    add("--latent-size", type=int, default=None, help=f"VAE latent size (default {d.latent_size})")
    add("--encoder-sizes", type=_sizes, default=None, help="hidden widths, e.g. 128,64")
    add("--decoder-sizes", type=_sizes, default=None, help="hidden widths, e.g. 64,128")
    add("--activation", default=None, help=f"activation (default {d.activation})")
    add("--embedding-dim", type=int, default=None, help=f"VQ code width (default {d.embedding_dim})")
    add("--num-embeddings", type=int, default=None, help=f"VQ codes (default {d.num_embeddings})")
    add("--commitment-weight", type=float, default=None, help="VQ commitment weight (default 0.25)")
    add("--ema", action="store_true", help="VQ: EMA codebook instead of a trained one")
    add("--epochs", type=int, default=None, help=f"epochs (default {d.epochs})")
    add("--batch-size", type=int, default=None, help=f"minibatch size (default {d.batch_size})")
    add("--lr", type=float, default=None, help=f"Adam learning rate (default {d.lr})")
    add("--seed", type=int, default=None, help="seed of the split, initialisation, shuffles and noise (default 0)")
    add("--device", default=None, help="cpu or cuda (default cpu)")
    add("--threads", type=int, default=None, help="torch CPU threads during the run (default 1: fastest for "
                                                  "small layers)")
    add("--image-shape", type=_sizes, default=None, help="H,W to plot [N, H·W] data as images")
    add("--eval-particles", type=int, default=None, help=f"held-out ELBO particles (default {d.eval_particles})")
    add("--iwae-particles", type=int, default=None, help=f"held-out IWAE particles (default {d.iwae_particles})")
    add("--no-plots", action="store_true", help="skip the PNG plots")
    add("--progress", choices=("auto", "always", "never"), default="auto", help="progress bar (default: on a tty)")


_RESUMABLE = ("epochs", "lr", "device", "threads")


def _options(args: argparse.Namespace) -> dict:
    names = {"data": "data", "model": "model", "likelihood": "likelihood", "objective": "objective",
             "particles": "particles", "beta": "beta", "latent_size": "latent_size",
             "encoder_sizes": "encoder_sizes", "decoder_sizes": "decoder_sizes", "activation": "activation",
             "embedding_dim": "embedding_dim", "num_embeddings": "num_embeddings",
             "commitment_weight": "commitment_weight", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
             "seed": "seed", "device": "device", "threads": "threads", "image_shape": "image_shape",
             "eval_particles": "eval_particles",
             "iwae_particles": "iwae_particles"}
    given = {option: getattr(args, attr) for attr, option in names.items() if getattr(args, attr) is not None}
    given.update({k: True for k, flag in (("ema", args.ema),) if flag})
    given.update({k: False for k, flag in (("learn_scale", args.fixed_scale), ("plots", args.no_plots)) if flag})
    return given


def run(args: argparse.Namespace) -> int:
    from vaespec.spec.errors import ConfigError

    from . import checkpoint
    from .loop import CHECKPOINT_DIR, TrainingDiverged, train

    given = _options(args)
    if args.resume:
        fixed = sorted(set(given) - set(_RESUMABLE) - {"plots"})
        if fixed:
            raise ConfigError(f"--resume: {fixed} are fixed by the checkpoint; only {list(_RESUMABLE)} may change")
        import os

        ck_dir = os.path.join(args.out, CHECKPOINT_DIR)
        saved = checkpoint.read_state(ck_dir)["config"]
        try:
            cfg = TrainConfig.from_dict({**saved, **given, "out": args.out})
        except ConfigError as error:
            raise checkpoint.CheckpointError(f"resume: {os.path.join(checkpoint.locate(ck_dir), checkpoint.STATE)!r}"
                                             f" holds a config vaespec cannot use ({error})") from None
    else:
        cfg = TrainConfig(**given, out=args.out)
    progress = {"auto": None, "always": True, "never": False}[args.progress]
    try:
        result = train(cfg, resume=args.resume, progress=progress)
    except TrainingDiverged as error:
        print(f"vaespec train: {error}", file=sys.stderr)
        return 1
    m = result["metrics"]
    if cfg.model == "vae":
        print(f"held-out −ELBO: {m['heldout_negative_elbo']:.3f} nats per example ({m['eval_particles']} particles); "
              f"IWAE log-likelihood: {m['heldout_iwae_log_likelihood']:.3f} nats ({m['iwae_particles']} particles), "
              f"{m['heldout_examples']} held-out examples")
    else:
        print(f"held-out reconstruction (½‖x − x̂‖²): {m['heldout_reconstruction']:.4f} per example; MSE per feature "
              f"{m['heldout_mse_per_feature']:.5f}; codebook perplexity {m['codebook_perplexity']:.2f} of "
              f"{m['num_embeddings']} codes ({m['dead_codes']} unused)")
    print(f"checkpoint: {result['checkpoint']}/; plots: {', '.join(result['plots'].values()) or 'none'}; "
          f"{result['seconds']:.1f} s")
    return 0
