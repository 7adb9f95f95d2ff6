"""The Bayesian side (`vaespec.impl.bayes`, Pyro) against what is known exactly.

- The Pyro model's log joint is the prior plus the exact evidence, term by term (its trace), and
  NUTS's potential energy is minus the reference's `log_joint` at the same θ.
- On `bias_model` (W fixed, b ~ N(0, s²I)) the posterior is Gaussian in closed form
  (`conjugate_bias_posterior`): NUTS's posterior mean and variance, and SVI's AutoNormal guide
  (whose optimum is the mean-field Normal with the same mean and sd 1/√Λ_dd), must recover it.
  Each comparison is a z-test |estimate − exact| ≤ z·sd/√ESS, ESS Pyro's `effective_sample_size`
  of the chain (for SVI: of the iterates averaged, Polyak–Ruppert), z = statistical_z(checks) for
  the policy's FALSE_ALARM_RATE (10⁻⁶ per test, Bonferroni over its checks). The rate is
  asymptotic (the Markov-chain CLT with an estimated ESS); the seeds are fixed, so a run is
  reproducible and a failure is a real change.
- `vaespec bayes` runs, is deterministic per seed, writes safetensors + JSON only, and names bad options.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

pyro = pytest.importorskip("pyro", reason="the bayes extra (pip install 'vaespec[bayes]') is not installed")

from pyro.infer import MCMC, NUTS, SVI, Trace_ELBO  # noqa: E402
from pyro.infer.autoguide import AutoNormal  # noqa: E402
from pyro.ops.stats import effective_sample_size  # noqa: E402

from vaespec import reference  # noqa: E402
from vaespec.impl.bayes import model as bm  # noqa: E402
from vaespec.reference import bayes as ref  # noqa: E402
from vaespec.spec.bayes import PRIOR_SCALE  # noqa: E402
from vaespec.spec.errors import ConfigError  # noqa: E402
from vaespec.spec.estimators import LOG_2PI  # noqa: E402
from vaespec.spec.tolerances import bound, statistical_z  # noqa: E402

NOISE_LOG_VAR = -0.5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as `vaespec bayes` runs: these models are tiny, and extra threads spin-wait on a busy
    machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _problem(output=3, latent=1, n=20, seed=0):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((output, latent))
    bias = rng.standard_normal(output)
    x = rng.standard_normal((n, latent)) @ weight.T + bias + math.exp(0.5 * NOISE_LOG_VAR) * rng.standard_normal(
        (n, output))
    return torch.as_tensor(x), torch.as_tensor(weight)


def _roundoff(terms: np.ndarray) -> float:
    """The policy's float64 bound for a sum of `terms` (each a few ops): 2·γ_n·Σ|t| + floor."""
    b = bound("float64", terms.size + 8)
    return 2 * b.rel * float(np.sum(np.abs(terms))) + b.floor


def _prior_terms(value):
    return -0.5 * (value / PRIOR_SCALE) ** 2 - math.log(PRIOR_SCALE) - 0.5 * LOG_2PI


def _evidence_tolerance(x, theta):
    """Each side's policy bound on Σ_n linear_gaussian_log_evidence (float64), plus the sum's own roundoff."""
    args = {"x": x, "weight": theta[bm.KERNEL].T, "bias": theta[bm.BIAS], "noise_log_var": NOISE_LOG_VAR}
    from vaespec.spec.bayes import chain_length

    per_row = 2 * bound("float64", *chain_length("linear_gaussian_log_evidence", args)).rel * reference.magnitude(
        "linear_gaussian_log_evidence", args)
    return float(np.sum(per_row)) + _roundoff(ref.linear_gaussian_log_evidence(**args))


def test_log_joint_is_prior_plus_evidence_term_by_term():
    x, _ = _problem(output=4, latent=2)
    rng = np.random.default_rng(1)
    theta = {bm.KERNEL: rng.standard_normal((2, 4)), bm.BIAS: rng.standard_normal(4)}
    conditioned = pyro.poutine.condition(bm.linear_gaussian_model,
                                         data={k: torch.as_tensor(v) for k, v in theta.items()})
    trace = pyro.poutine.trace(conditioned).get_trace(x, 2, NOISE_LOG_VAR)
    trace.compute_log_prob()
    sites = {name: float(site["log_prob_sum"]) for name, site in trace.nodes.items() if site["type"] == "sample"}
    assert set(sites) == {bm.KERNEL, bm.BIAS, bm.EVIDENCE_SITE}
    for name in (bm.KERNEL, bm.BIAS):
        terms = _prior_terms(theta[name])
        assert abs(sites[name] - terms.sum()) <= _roundoff(terms), name
    evidence = ref.linear_gaussian_log_evidence(x.numpy(), theta[bm.KERNEL].T, theta[bm.BIAS], NOISE_LOG_VAR)
    tol = _evidence_tolerance(x.numpy(), theta)
    assert abs(sites[bm.EVIDENCE_SITE] - evidence.sum()) <= tol
    prior = np.concatenate([_prior_terms(v).ravel() for v in theta.values()])
    assert abs(sum(sites.values()) - ref.log_joint(theta, x.numpy(), NOISE_LOG_VAR)) <= tol + 2 * _roundoff(prior)


def test_potential_energy_is_minus_the_reference_log_joint():
    from pyro.infer.mcmc.util import initialize_model

    x, _ = _problem(output=5, latent=2, n=12, seed=3)
    _, potential, transforms, _ = initialize_model(bm.linear_gaussian_model, model_args=(x, 2, NOISE_LOG_VAR))
    rng = np.random.default_rng(4)
    for _ in range(3):
        theta = {bm.KERNEL: rng.standard_normal((2, 5)), bm.BIAS: rng.standard_normal(5)}
        # Normal sites are unconstrained: NUTS's coordinates are θ itself (no Jacobian term)
        assert all(t(torch.as_tensor(v)).equal(torch.as_tensor(v)) for (k, t), v in
                   ((item, theta[item[0]]) for item in transforms.items()))
        energy = float(potential({k: torch.as_tensor(v) for k, v in theta.items()}))
        prior = np.concatenate([_prior_terms(v).ravel() for v in theta.values()])
        tol = _evidence_tolerance(x.numpy(), theta) + 2 * _roundoff(prior)
        assert abs(-energy - ref.log_joint(theta, x.numpy(), NOISE_LOG_VAR)) <= tol


def _z_test(what, estimate, exact, sd, ess, z, slack=0.0):
    """|estimate − exact| ≤ z·sd/√ESS + slack entrywise; returns the worst ratio."""
    allowed = z * sd / np.sqrt(ess) + slack
    ratio = np.abs(estimate - exact) / allowed
    assert np.all(ratio <= 1.0), f"{what}: |{estimate} − {exact}| exceeds z·sd/√ESS + slack = {allowed} (z = {z:.2f})"
    return float(ratio.max())


def test_nuts_recovers_the_conjugate_posterior_of_the_bias():
    x, weight = _problem()
    mean, cov, _ = (t.numpy() for t in bm.conjugate_bias_posterior(x, weight, NOISE_LOG_VAR))
    pyro.set_rng_seed(11)
    kernel = NUTS(bm.bias_model, step_size=0.1, max_tree_depth=3, target_accept_prob=0.8)
    mcmc = MCMC(kernel, num_samples=250, warmup_steps=100, num_chains=1, disable_progbar=True)
    mcmc.run(x, weight, NOISE_LOG_VAR)
    draws = mcmc.get_samples()[bm.BIAS]                                   # [samples, output]
    sd = np.sqrt(np.diag(cov))
    z = statistical_z(2 * draws.shape[1])                                 # mean and variance of each coordinate
    ess_mean = effective_sample_size(draws[None], chain_dim=0, sample_dim=1).numpy()
    _z_test("posterior mean", draws.mean(0).numpy(), mean, sd, ess_mean, z)
    # the sample variance: mean of (b − m)², whose sd is var·√2 for a Gaussian, with its own ESS
    squares = (draws - torch.as_tensor(mean)) ** 2
    ess_var = effective_sample_size(squares[None], chain_dim=0, sample_dim=1).numpy()
    _z_test("posterior variance", squares.mean(0).numpy(), np.diag(cov), math.sqrt(2) * np.diag(cov), ess_var, z)


def test_svi_guide_recovers_the_mean_field_optimum():
    x, weight = _problem()
    mean, _, scale = (t.numpy() for t in bm.conjugate_bias_posterior(x, weight, NOISE_LOG_VAR))
    pyro.clear_param_store()
    pyro.set_rng_seed(12)
    guide = AutoNormal(bm.bias_model)
    svi = SVI(bm.bias_model, guide, pyro.optim.Adam({"lr": 0.02}), Trace_ELBO())
    locs, scales = [], []
    for step in range(800):
        svi.step(x, weight, NOISE_LOG_VAR)
        if step >= 400:  # past convergence: the iterates fluctuate around the optimum; average them
            loc, sc = guide._get_loc_and_scale(bm.BIAS)
            locs.append(loc.detach().clone())
            scales.append(sc.detach().clone())
    locs, scales = torch.stack(locs), torch.stack(scales)
    z = statistical_z(2 * locs.shape[1])
    for name, trace, exact in (("guide loc", locs, mean), ("guide scale", scales, scale)):
        ess = effective_sample_size(trace[None], chain_dim=0, sample_dim=1).numpy()
        spread = trace.std(0).numpy()
        # the average of the iterates is within z·sd/√ESS of the optimum: the loc's gradient is linear in it, so
        # Adam's iterates fluctuate around the optimum without bias; the scale's (softplus-parameterized)
        # is not, and its stationary bias is allowed 2% of the posterior sd
        slack = 0.02 * scale if name == "guide scale" else 0.0
        _z_test(name, trace.mean(0).numpy(), exact, spread, ess, z, slack)


# ----------------------------------------------------------------------------- the command
def _tiny(tmp_path, name, **over):
    from vaespec.impl.bayes.config import BayesConfig

    options = {"data": "synthetic", "examples": 16, "synthetic_output": 4, "latent_size": 1, "steps": 20,
               "warmup": 10, "samples": 8, "chains": 2, "max_tree_depth": 3, "predictive": 4,
               "out": str(tmp_path / name)}
    return BayesConfig(**{**options, **over})


def test_bayes_command_writes_safetensors_and_json_and_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    from vaespec.impl.bayes.run import bayes

    reports = [bayes(_tiny(tmp_path, name), progress=False) for name in ("a", "b")]
    first, second = (load_file(str(tmp_path / name / "posterior.safetensors")) for name in ("a", "b"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert first["nuts.decoder_output.kernel"].shape == (2, 8, 1, 4) and first["svi.elbo"].shape == (20,)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["elbo.png", "posterior.safetensors",
                                                                  "posterior_predictive.png", "report.json"]
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["nuts"]["divergences"] == reports[0]["nuts"]["divergences"]
    assert len(report["nuts"]["divergences"]) == 2
    assert set(report["nuts"]["diagnostics"]) >= {"decoder_output.bias", "W Wᵀ diagonal"}
    assert report["log_likelihood_term"].startswith("exact")
    other = load_file(bayes(_tiny(tmp_path, "c", seed=1), progress=False)["files"]["posterior"])
    assert not torch.equal(other["nuts.decoder_output.bias"], first["nuts.decoder_output.bias"])


@pytest.mark.parametrize("over, named", [
    ({"chains": 0}, "chains"), ({"target_accept": 1.0}, "target_accept"), ({"step_size": -1.0}, "step_size"),
    ({"data": "mnist"}, "data"), ({"evidence": "iwae"}, "evidence"), ({"samples": 2}, "samples"),
    ({"latent_size": 9}, "latent_size"), ({"max_tree_depth": 0, "warmup": 0}, "warmup"),
])
def test_bad_options_are_config_errors_naming_them(tmp_path, over, named):
    with pytest.raises(ConfigError, match=named):
        _tiny(tmp_path, "x", **over)


def test_cli_exit_status_two_names_the_option(tmp_path, capsys):
    from vaespec.proofs_tests.cli import main

    assert main(["bayes", "--chains", "0", "--max-tree-depth", "0", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "chains" in err and "max_tree_depth" in err
    assert not (tmp_path / "o").exists()
