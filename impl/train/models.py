"""The models `vaespec train` fits, their per-batch objectives and their held-out figures.

VAE (objective "elbo"): loss = mean_b [−log p(x_b | z_b) + β · KL(q(z | x_b) ‖ N(0, I))] with one
particle z_b = μ + σ ⊙ ε_b and the closed-form KL; objective "iwae": loss = −mean_b IWAE_K(x_b).
Held-out: −ELBO from the Monte-Carlo `elbo` with `eval_particles` particles, and the IWAE
log-likelihood estimate `iwae_bound` with `iwae_particles` (nats per example).

VQ-VAE: loss = `VQVAE.loss` (½‖x − x̂‖² averaged over the batch + codebook + w · commitment);
held-out: the same reconstruction term, the per-feature MSE, codebook perplexity and dead codes.

Noise comes from `torch.Generator`s seeded from (seed, purpose, index): the same seed gives the
same run, and a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vaespec.impl.builder import build
from vaespec.impl.estimators import elbo, generate, iwae_bound, reconstruct
from vaespec.impl.functional import kl_divergence, reconstruction_loss
from vaespec.impl.likelihoods import build_likelihood

from .config import TrainConfig

_PURPOSES = {"shuffle": 1, "step": 2, "eval": 3, "final": 4, "plot": 5}
EVAL_CHUNK = 64  # held-out rows per evaluation batch (× particles rows through the decoder)


# What `build_model` makes: nn.ModuleDict(encoder, decoder) and a likelihood module for cfg.model "vae", a VQVAE
# and None for "vq". The functions below branch on cfg.model, not on the type, so the checker cannot narrow
# a union; these aliases say what is meant.
Model = Any
Likelihood = Any

def seed_for(seed: int, purpose: str, index: int = 0) -> int:
    """A 63-bit seed for (`seed`, `purpose`, `index`), by numpy's SeedSequence hashing."""
    return int(np.random.SeedSequence([seed, _PURPOSES[purpose], index]).generate_state(1, np.uint64)[0] >> 1)


def generator(seed: int, purpose: str, index: int, device: torch.device | str) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed_for(seed, purpose, index))


def build_model(cfg: TrainConfig, features: int, device: torch.device | str) -> tuple[nn.Module, nn.Module | None]:
    """The model (VAE: `ModuleDict(encoder, decoder)`; VQ-VAE: `VQVAE`) and the likelihood module (VAE only),
    float32 on `device`, initialised from `cfg.seed` (spec `init_params`)."""
    if cfg.model == "vq":
        from vaespec.impl.vq import build as build_vq

        return build_vq(features, cfg.embedding_dim, cfg.num_embeddings, cfg.encoder_sizes, cfg.decoder_sizes,
                        cfg.activation, ema=cfg.ema, key=cfg.seed, device=device, dtype=torch.float32), None
    encoder, decoder = build(features, cfg.latent_size, cfg.encoder_sizes, cfg.decoder_sizes, cfg.activation,
                             key=cfg.seed, device=device, dtype=torch.float32)
    likelihood = build_likelihood(cfg.likelihood, features, learn_scale=cfg.learn_scale, dtype=torch.float32,
                                  device=device)
    return nn.ModuleDict({"encoder": encoder, "decoder": decoder}), likelihood


def batch_loss(cfg: TrainConfig, model: Model, likelihood: Likelihood, x: Tensor, gen: torch.Generator) -> Tensor:
    """The training objective on batch `x` (0-d), noise from `gen`."""
    if cfg.model == "vq":
        return model.loss(x, cfg.commitment_weight, "elbo")
    encoder, decoder = model["encoder"], model["decoder"]
    if cfg.objective == "iwae":
        eps = torch.randn((cfg.particles, x.shape[0], cfg.latent_size), generator=gen, device=x.device)
        return -iwae_bound(encoder, decoder, x, eps, likelihood).mean()
    out = encoder(x)
    eps = torch.randn(out["mu"].shape, generator=gen, device=x.device)
    z = out["mu"] + torch.exp(0.5 * out["log_var"]) * eps
    # "elbo" convention: KL summed over the latent, averaged over the batch.
    return -likelihood(decoder(z), x).mean() + cfg.beta * kl_divergence(out["mu"], out["log_var"], "elbo",
                                                                        validate=False)


@torch.no_grad()
def heldout_loss(cfg: TrainConfig, model: Model, likelihood: Likelihood, x: Tensor) -> float:
    """The training objective on the held-out set, with the same fixed noise every epoch."""
    model.eval()
    try:
        gen = generator(cfg.seed, "eval", 0, x.device)
        total = sum(float(batch_loss(cfg, model, likelihood, chunk, gen)) * chunk.shape[0]
                    for chunk in x.split(256))
        return total / x.shape[0]
    finally:
        model.train()


@torch.no_grad()
def final_metrics(cfg: TrainConfig, model: Model, likelihood: Likelihood, x: Tensor) -> dict:
    """The held-out figures reported at the end of a run (see the module docstring)."""
    model.eval()
    if cfg.model == "vq":
        from vaespec.impl.vq import codebook_health

        out = model(x)
        health = codebook_health(out.indices, cfg.num_embeddings, validate=False)
        return {"heldout_reconstruction": float(reconstruction_loss(out.x_hat, x, "elbo", validate=False)),
                "heldout_mse_per_feature": float(((out.x_hat - x) ** 2).mean()),
                "codebook_perplexity": float(health.perplexity), "dead_codes": int(health.dead_codes),
                "num_embeddings": cfg.num_embeddings}
    encoder, decoder = model["encoder"], model["decoder"]
    gen = generator(cfg.seed, "final", 0, x.device)
    elbos, iwaes = [], []
    for chunk in x.split(EVAL_CHUNK):
        shape = (chunk.shape[0], cfg.latent_size)
        elbos.append(elbo(encoder, decoder, chunk, torch.randn((cfg.eval_particles, *shape), generator=gen,
                                                               device=x.device), likelihood))
        iwaes.append(iwae_bound(encoder, decoder, chunk, torch.randn((cfg.iwae_particles, *shape), generator=gen,
                                                                     device=x.device), likelihood))
    elbo_all, iwae_all = torch.cat(elbos), torch.cat(iwaes)
    return {"heldout_negative_elbo": float(-elbo_all.mean()), "heldout_iwae_log_likelihood": float(iwae_all.mean()),
            "eval_particles": cfg.eval_particles, "iwae_particles": cfg.iwae_particles,
            "heldout_examples": int(x.shape[0])}


@torch.no_grad()
def plot_arrays(cfg: TrainConfig, model: Model, x: Tensor, n_samples: int = 32) -> dict[str, np.ndarray]:
    """What the plots show, as numpy: originals, reconstructions, prior samples, 2-D latent points."""
    model.eval()
    gen = generator(cfg.seed, "plot", 0, x.device)
    show = (lambda t: torch.sigmoid(t)) if cfg.model == "vae" and cfg.likelihood == "bernoulli" else (lambda t: t)
    if cfg.model == "vq":
        out, z_e = model(x), model.encoder(x)
        usage = torch.bincount(out.indices, minlength=cfg.num_embeddings).to(torch.float32)
        codes = torch.multinomial(usage / usage.sum(), n_samples, replacement=True, generator=gen)
        codebook = model.quantizer.codebook
        return {"recon": out.x_hat.cpu().numpy(), "samples": model.decoder(codebook[codes]).cpu().numpy(),
                "latent": z_e.cpu().numpy(), "codes": codebook[usage > 0].cpu().numpy()}
    encoder, decoder = model["encoder"], model["decoder"]
    eps = torch.randn((n_samples, cfg.latent_size), generator=gen, device=x.device)
    return {"recon": show(reconstruct(encoder, decoder, x)).cpu().numpy(),
            "samples": show(generate(decoder, eps)).cpu().numpy(), "latent": encoder(x)["mu"].cpu().numpy()}
