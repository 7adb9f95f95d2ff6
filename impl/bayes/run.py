"""`vaespec bayes`'s run: SVI with a mean-field Normal guide, then NUTS, over the linear decoder's θ.

Everything is Pyro's: `pyro.infer.SVI` with `Trace_ELBO(num_particles)` and
`autoguide.AutoNormal` (quivers' `AutoNormalGuide`), `pyro.infer.NUTS` inside `pyro.infer.MCMC`
(quivers' `MCMC(NUTSKernel(step_size, max_tree_depth, target_accept), …)`), and the diagnostics
`pyro.ops.stats.split_gelman_rubin` and `effective_sample_size`. Chains run one after another,
chain c seeded with seed + 1 + c and started at its own draw from the fitted guide, so a run is
deterministic given `seed` (and `threads`). Computation is float64 on the CPU.

Results go to `out/` only: `posterior.safetensors` (every chain's samples, the guide's loc and
scale, the ELBO curve), `report.json`, `elbo.png` and `posterior_predictive.png`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .config import BayesConfig
from .model import BIAS, KERNEL, linear_gaussian_model, predictive

# The rotation z → Qz leaves p(x | θ) unchanged for W → WQᵀ: W's entries are not identified, W Wᵀ is.
IDENTIFIED = ("decoder_output.bias", "W Wᵀ diagonal")


def _data(cfg: BayesConfig) -> tuple[Tensor, tuple[int, int] | None, str, dict[str, Tensor] | None]:
    """(x [N, D] float64, image_shape or None, description, θ* for synthetic data or None)."""
    if cfg.data == "digits":
        from vaespec.impl.train.data import load_dataset

        data = load_dataset("digits", seed=cfg.seed, likelihood="gaussian")
        pool = np.concatenate([data.train, data.test])
        if cfg.examples > len(pool):
            from vaespec.spec.errors import ConfigError
            raise ConfigError(f"examples: expected at most {len(pool)} for the digits, got {cfg.examples}")
        x = torch.as_tensor(pool[: cfg.examples], dtype=torch.float64)
        return x, data.image_shape, f"digits: {cfg.examples} images 8×8 in [0, 1]", None
    g = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.latent_size, cfg.synthetic_output)
    theta = {KERNEL: cfg.prior_scale * torch.randn(shape, generator=g, dtype=torch.float64),
             BIAS: cfg.prior_scale * torch.randn(cfg.synthetic_output, generator=g, dtype=torch.float64)}
    z = torch.randn(cfg.examples, cfg.latent_size, generator=g, dtype=torch.float64)
    noise = torch.randn(cfg.examples, cfg.synthetic_output, generator=g, dtype=torch.float64)
    x = z @ theta[KERNEL] + theta[BIAS] + math.exp(0.5 * cfg.noise_log_var) * noise
    return x, None, f"synthetic: {cfg.examples} draws of x = W z + b + σν at θ* ~ prior", theta


def _progress(enabled: bool, label: str, done: int, total: int, value: float | None = None) -> None:
    if enabled:
        tail = "" if value is None else f" ELBO {value:.2f}"
        sys.stderr.write(f"\r{label} {done}/{total}{tail}\033[K")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def fit_svi(model: Callable[..., Any], args: tuple, cfg: BayesConfig, progress: bool = False
            ) -> tuple[Any, np.ndarray]:
    """SVI with `AutoNormal` and `Trace_ELBO(cfg.particles)`, `cfg.steps` Adam steps at `cfg.lr`.
    Returns (guide, ELBO per step: −loss, an estimate of the lower bound on log p(X))."""
    import pyro
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    pyro.clear_param_store()
    pyro.set_rng_seed(cfg.seed)
    guide = AutoNormal(model)
    # pyro.optim makes its torch-optimizer wrappers (Adam, …) at import time: no stub declares them.
    svi = SVI(model, guide, pyro.optim.Adam({"lr": cfg.lr}),  # type: ignore[attr-defined]
              Trace_ELBO(num_particles=cfg.particles))
    curve = []
    for step in range(cfg.steps):
        curve.append(-svi.step(*args))
        if step % 50 == 0 or step + 1 == cfg.steps:
            _progress(progress, "SVI step", step + 1, cfg.steps, curve[-1])
    return guide, np.asarray(curve)


def run_nuts(model: Callable[..., Any], args: tuple, guide: Any, cfg: BayesConfig, progress: bool = False
             ) -> tuple[dict[str, Tensor], list[dict[str, float]], list[int], list[float]]:
    """`cfg.chains` NUTS chains, one after another. Returns (samples {site: [chains, samples, …]},
    per chain: the acceptance statistics (`mean_accept_prob`, the mean Metropolis acceptance probability
    of the trees over the samples, which warmup adapts the step size towards `target_accept`; `moved`,
    Pyro's "acceptance rate", the share of iterations whose draw differs from the last), divergence
    counts and adapted step sizes)."""
    import pyro
    from pyro.infer import MCMC, NUTS

    chains, accept, divergences, steps = [], [], [], []
    for c in range(cfg.chains):
        pyro.set_rng_seed(cfg.seed + 1 + c)
        with torch.no_grad():
            start = {site: value.detach() for site, value in guide(*args).items()}
        kernel = NUTS(model, step_size=cfg.step_size, adapt_step_size=True, max_tree_depth=cfg.max_tree_depth,
                      target_accept_prob=cfg.target_accept)
        # Pyro resets the kernel's running mean when the run ends: read it as the samples are drawn
        seen: dict[str, float] = {}

        def hook(kernel, params, stage, i, seen=seen):
            if stage == "Sample":
                seen["mean_accept_prob"] = float(kernel._mean_accept_prob)
        mcmc = MCMC(kernel, num_samples=cfg.samples, warmup_steps=cfg.warmup, num_chains=1, initial_params=start,
                    disable_progbar=not progress, hook_fn=hook)
        mcmc.run(*args)
        diagnostics = mcmc.diagnostics()
        accept.append({"mean_accept_prob": seen["mean_accept_prob"],  # Pyro's "acc. prob" over the samples
                       "moved": float(diagnostics["acceptance rate"]["chain 0"])})  # share of iterations that moved
        divergences.append(len(diagnostics["divergences"]["chain 0"]))
        steps.append(float(kernel.step_size))
        chains.append({site: value.detach() for site, value in mcmc.get_samples().items()})
    samples = {site: torch.stack([chain[site] for chain in chains]) for site in chains[0]}
    return samples, accept, divergences, steps


def diagnostics(samples: dict) -> dict:
    """Split R-hat and ESS (Pyro's) of the identified quantities and of W's raw entries."""
    from pyro.ops.stats import effective_sample_size, split_gelman_rubin

    groups = {"decoder_output.bias": samples[BIAS],
              "W Wᵀ diagonal": (samples[KERNEL] ** 2).sum(-2),  # Σ_l kernel[l, d]² = (W Wᵀ)_dd
              "decoder_output.kernel (not identified)": samples[KERNEL]}
    out = {}
    for name, values in groups.items():
        flat = values.reshape(values.shape[0], values.shape[1], -1)
        rhat = split_gelman_rubin(flat, chain_dim=0, sample_dim=1)
        ess = effective_sample_size(flat, chain_dim=0, sample_dim=1)
        out[name] = {"max_rhat": float(rhat.max()), "median_rhat": float(rhat.median()),
                     "min_ess": float(ess.min()), "median_ess": float(ess.median())}
    return out


def _plot_elbo(path, curve):
    from vaespec.impl.train.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot(np.arange(1, len(curve) + 1), curve, lw=0.8)
    low, high = np.percentile(curve, 1), np.max(curve)
    ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    ax.set_xlabel("SVI step")
    ax.set_ylabel("ELBO (nats, all data)")
    ax.set_title("SVI: Trace_ELBO estimate of the lower bound on log p(X)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def bayes(cfg: BayesConfig, progress: bool | None = None) -> dict:
    """Run `vaespec bayes` with `cfg`; returns the report (also written to `cfg.out`/report.json)."""
    from .model import import_pyro

    import_pyro()  # a ConfigError naming the missing extra, before any work
    from safetensors.torch import save_file

    from vaespec.impl.train.plots import image_rows

    progress = sys.stderr.isatty() if progress is None else progress
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()
    try:
        x, image_shape, description, truth = _data(cfg)
        args = (x, cfg.latent_size, cfg.noise_log_var, cfg.prior_scale)
        guide, curve = fit_svi(linear_gaussian_model, args, cfg, progress)
        svi_seconds = time.perf_counter() - start
        samples, accept, divergences, steps = run_nuts(linear_gaussian_model, args, guide, cfg, progress)
        nuts_seconds = time.perf_counter() - start - svi_seconds
        diag = diagnostics(samples)
        g = torch.Generator().manual_seed(cfg.seed)
        pooled = {site: v.reshape(-1, *v.shape[2:]) for site, v in samples.items()}
        pick = torch.linspace(0, pooled[BIAS].shape[0] - 1, cfg.predictive).round().long()
        means, draws = predictive({site: v[pick] for site, v in pooled.items()}, cfg.noise_log_var, g)
    finally:
        torch.set_num_threads(threads)
    os.makedirs(cfg.out, exist_ok=True)
    tensors = {f"nuts.{site}": v.contiguous() for site, v in samples.items()}
    with torch.no_grad():
        for site in (KERNEL, BIAS):
            loc, scale = guide._get_loc_and_scale(site)  # unconstrained = constrained for Normal sites
            tensors[f"svi.loc.{site}"], tensors[f"svi.scale.{site}"] = loc.detach().clone(), scale.detach().clone()
    tensors["svi.elbo"] = torch.as_tensor(curve)
    tensors["posterior_predictive"] = draws.contiguous()
    if truth is not None:
        tensors.update({f"truth.{site}": v for site, v in truth.items()})
    save_file(tensors, os.path.join(cfg.out, "posterior.safetensors"), metadata={"format": "vaespec-bayes-1"})
    plots = {name: os.path.join(cfg.out, f"{name}.png") for name in ("elbo", "posterior_predictive")}
    _plot_elbo(plots["elbo"], curve)
    rows = [("data", x[: cfg.predictive].numpy()), ("W z + b", means.numpy()), ("x = W z + b\n+ σν", draws.numpy())]
    image_rows(plots["posterior_predictive"], rows, image_shape,
               f"x = W z + b + σν, one θ from the NUTS posterior per image (L = {cfg.latent_size}, σ² = "
               f"{math.exp(cfg.noise_log_var):.3g})")
    tail = curve[-max(1, len(curve) // 10):]
    report = {
        "config": cfg.to_dict(), "data": description, "parameters": int(sum(v[0, 0].numel() for v in samples.values())),
        "log_likelihood_term": "exact: log p(x | θ) = linear_gaussian_log_evidence(x; W, b, σ²), z integrated out",
        "svi": {"elbo_first": float(curve[0]), "elbo_last": float(curve[-1]),
                "elbo_last_tenth_mean": float(np.mean(tail)), "elbo_last_tenth_sd": float(np.std(tail)),
                "seconds": svi_seconds},
        "nuts": {"acceptance_rate": accept, "divergences": divergences, "adapted_step_size": steps,
                 "seconds": nuts_seconds, "diagnostics": diag},
        "files": {"posterior": os.path.join(cfg.out, "posterior.safetensors"), **plots},
        "seconds": time.perf_counter() - start,
    }
    with open(os.path.join(cfg.out, "report.json"), "w") as handle:
        json.dump(report, handle, indent=1)
    return report
