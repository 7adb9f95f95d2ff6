"""`vaespec bayes`: the linear decoder's parameters as a Bayesian model, fitted by SVI and sampled by NUTS.

    vaespec bayes                                   # digits, L = 2, SVI then 2 NUTS chains (~1 min)
    vaespec bayes --data synthetic --latent-size 2  # data drawn from the generative path itself
    vaespec bayes --steps 4000 --warmup 500 --samples 500 --chains 4 --max-tree-depth 7

Prints the SVI ELBO, per-chain acceptance rate and divergences, split R-hat and ESS; writes
`OUT/posterior.safetensors`, `OUT/report.json`, `OUT/elbo.png`, `OUT/posterior_predictive.png`.
Exit status 0 on success, 2 for bad options (a `ConfigError` naming them).
"""

from __future__ import annotations

import argparse

from .config import DATA, EVIDENCE, BayesConfig

_OPTIONS = {  # flag -> (type, help)
    "data": (str, f"one of {DATA}"), "examples": (int, "data points N"),
    "synthetic-output": (int, "features D of synthetic data"), "latent-size": (int, "latent dimensions L"),
    "noise-log-var": (float, "log σ² of the decoder noise (fixed)"), "prior-scale": (float, "s in θ_i ~ N(0, s²)"),
    "evidence": (str, f"what log p(x | θ) is: one of {EVIDENCE}"), "steps": (int, "SVI steps"),
    "particles": (int, "ELBO particles per SVI step"), "lr": (float, "SVI Adam learning rate"),
    "warmup": (int, "NUTS warmup iterations per chain"), "samples": (int, "NUTS samples per chain"),
    "chains": (int, "NUTS chains"), "step-size": (float, "NUTS initial step size (adapted in warmup)"),
    "max-tree-depth": (int, "NUTS maximum tree depth"), "target-accept": (float, "NUTS target acceptance"),
    "seed": (int, "seed of the data subset, SVI and every chain"), "threads": (int, "torch CPU threads"),
    "predictive": (int, "posterior predictive images in the PNG"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    d = BayesConfig()
    for flag, (kind, text) in _OPTIONS.items():
        parser.add_argument(f"--{flag}", type=kind, default=None,
                            help=f"{text} (default {getattr(d, flag.replace('-', '_'))})")
    parser.add_argument("--out", default=d.out, help=f"output directory (default {d.out})")
    parser.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                        help="progress on stderr (default: on a terminal)")


def run(args: argparse.Namespace) -> int:
    from .run import IDENTIFIED, bayes

    given = {flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag in _OPTIONS}
    cfg = BayesConfig(**{k: v for k, v in given.items() if v is not None}, out=args.out)
    report = bayes(cfg, progress={"auto": None, "always": True, "never": False}[args.progress])
    svi, nuts = report["svi"], report["nuts"]
    print(f"{report['data']}; θ = decoder_output.kernel [{cfg.latent_size}, D] and bias [D]: "
          f"{report['parameters']} parameters, prior N(0, {cfg.prior_scale:g}²)")
    print(f"log p(x | θ): {report['log_likelihood_term']}")
    print(f"SVI (AutoNormal, {cfg.particles} particle(s), {cfg.steps} steps): ELBO {svi['elbo_first']:.1f} → "
          f"{svi['elbo_last']:.1f} nats (last tenth {svi['elbo_last_tenth_mean']:.1f} ± "
          f"{svi['elbo_last_tenth_sd']:.1f}), {svi['seconds']:.1f} s")
    for c, (acc, div, step) in enumerate(zip(nuts["acceptance_rate"], nuts["divergences"], nuts["adapted_step_size"])):
        print(f"NUTS chain {c}: mean acceptance probability {acc['mean_accept_prob']:.3f} (target "
              f"{cfg.target_accept:g}), moved on {acc['moved']:.0%} of iterations, divergences {div} of "
              f"{cfg.samples}, step size {step:.3g}")
    for name, d in nuts["diagnostics"].items():
        note = "" if name in IDENTIFIED else " (rotations of z leave the likelihood unchanged)"
        print(f"  {name}: split R-hat max {d['max_rhat']:.3f} (median {d['median_rhat']:.3f}), "
              f"ESS min {d['min_ess']:.1f} (median {d['median_ess']:.1f}){note}")
    print(f"NUTS {nuts['seconds']:.1f} s; total {report['seconds']:.1f} s; files: "
          f"{', '.join(report['files'].values())}")
    return 0
