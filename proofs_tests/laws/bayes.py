"""The Bayesian chapter's law checks: the exact evidence measures the estimators chapter's ELBO and IWAE.

Each structural law builds the linear VAE the evidence describes with the contract's own layout
(`Architecture(D, latent_size=L, encoder_sizes=(), decoder_sizes=())`: decoder kernel Wᵀ, bias b;
an input-independent encoder whose biases are the posterior's mean and log-variance, one row of x
at a time) and calls the backend's `log_importance_weights`, `elbo` or `iwae_bound` on it, the
Gaussian likelihood with log σ² = noise_log_var. Tolerances are the policy's for every backend
evaluation (`laws.tolerance.tolerance`: `vaespec.spec.bayes.chain_length` and the estimators chapter's) plus the
first-order effect of the backend posterior's own tolerance on the quantity the law compares. The statistical
laws use a fixed seed and z = statistical_z(MAX_CHECKS × the tests per example) for the policy's
false-alarm rate.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.architecture import Architecture
from vaespec.spec.bayes import FUNCTIONS, GAP_PARTICLES, MAX_CHECKS, RATE_PARTICLES, REPLICATIONS
from vaespec.spec.tolerances import bound, statistical_z

from ..strategies import bayes as strat
from ..strategies import vae as strategies
from .checking import Check, context
from .compare import LawViolation, assert_within, require_finite, round_to
from .tolerance import tolerance

SEED = 20261201


def _args(example, backend):
    a = {p.name: round_to(backend.dtype, example.args[p.name]) for p in FUNCTIONS["linear_gaussian_posterior"].args}
    a["noise_log_var"] = float(round_to(backend.dtype, np.asarray(a["noise_log_var"])))
    return a


def _network(backend, a, mean_row, log_var_q):
    """(arch, params, decoder_log_var) of the linear VAE with the encoder fixed at N(mean_row, diag e^log_var_q)."""
    output, latent = a["weight"].shape
    arch = Architecture(output, latent_size=latent, encoder_sizes=(), decoder_sizes=())
    zeros = np.zeros((output, latent))
    params = {"mu.kernel": zeros, "mu.bias": round_to(backend.dtype, mean_row), "log_var.kernel": zeros,
              "log_var.bias": round_to(backend.dtype, log_var_q), "decoder_output.kernel": a["weight"].T.copy(),
              "decoder_output.bias": a["bias"]}
    return arch, params, np.full(output, a["noise_log_var"])


def _posterior(backend, a):
    mean, cov = backend.linear_gaussian_posterior(a["x"], a["weight"], a["bias"], a["noise_log_var"])
    tol_mean, tol_cov = tolerance(backend.dtype, "linear_gaussian_posterior", a)
    return mean, cov, tol_mean, tol_cov


def _estimate(backend, function, arch, params, x, eps, dlv):
    args = {"arch": arch, "params": params, "x": x, "eps": eps, "decoder_log_var": dlv, "likelihood": "gaussian"}
    return getattr(backend, function)(*args.values()), tolerance(backend.dtype, function, args), args


# ----------------------------------------------------------------------------- exact posterior
def log_weights_eq_log_evidence_at_exact_posterior(backend, example, draw):
    a = _args(example, backend)
    evidence = backend.linear_gaussian_log_evidence(a["x"], a["weight"], a["bias"], a["noise_log_var"])
    tol_evidence = tolerance(backend.dtype, "linear_gaussian_log_evidence", a)
    mean, cov, tol_mean, tol_cov = _posterior(backend, a)
    var = np.diag(cov).copy()
    if np.any(var <= np.diag(tol_cov)):
        raise LawViolation(f"linear_gaussian_posterior: covariance diagonal {var!r} is not positive beyond its "
                           f"tolerance\n{context('linear_gaussian_posterior', a, backend)}")
    sd = np.sqrt(var)
    off = np.abs(cov - np.diag(var)) + tol_cov - np.diag(np.diag(tol_cov))  # dropped by a diagonal encoder
    particles = draw(st.integers(1, 4))
    worst = 0.0
    for n in range(a["x"].shape[0]):
        eps = round_to(backend.dtype, np.asarray(draw(strategies.arrays((particles, 1, len(var)), -3.0, 3.0))))
        arch, params, dlv = _network(backend, a, mean[n], np.log(var))
        log_w, tol_w, net = _estimate(backend, "log_importance_weights", arch, params, a["x"][n:n + 1], eps, dlv)
        e = np.abs(eps[:, 0, :])
        # first order in the posterior's errors: ∂(log w)/∂μ_j = ε_j/σ_j, ∂/∂lv_j = ½(ε_j² − 1), the dropped
        # off-diagonals ½ Σ_{i≠j} ε_i ε_j Δ_ij/(σ_i σ_j)
        carried = (e / sd) @ tol_mean[n] + (0.5 * np.abs(e ** 2 - 1)) @ (np.diag(tol_cov) / var) \
            + 0.5 * np.einsum("ki,kj,ij->k", e, e, off / np.outer(sd, sd))
        worst = max(worst, assert_within(
            "log_importance_weights", log_w[:, 0], np.full(particles, evidence[n]),
            tol_w[:, 0] + tol_evidence[n] + carried,
            context=context("log_importance_weights", net, backend)
            + f"\n# the exact posterior of\n{context('linear_gaussian_log_evidence', a, backend)}"))
    return worst


def _kl(mean_q, var_q, mean_p, cov_p):
    """KL(N(m_q, diag v_q) ‖ N(m_p, S_p)) in float64, and its gradients in (m_p, S_p)."""
    p_inv = np.linalg.inv(cov_p)
    d = mean_p - mean_q
    kl = 0.5 * (np.sum(np.diag(p_inv) * var_q) + d @ p_inv @ d - len(d) + np.linalg.slogdet(cov_p)[1]
                - np.sum(np.log(var_q)))
    d_mean = p_inv @ d
    d_cov = 0.5 * (p_inv - p_inv @ (np.diag(var_q) + np.outer(d, d)) @ p_inv)
    return kl, d_mean, d_cov


def elbo_gap_eq_kl_to_exact_posterior(backend, example, draw):
    a = _args(example, backend)
    evidence = backend.linear_gaussian_log_evidence(a["x"], a["weight"], a["bias"], a["noise_log_var"])
    tol_evidence = tolerance(backend.dtype, "linear_gaussian_log_evidence", a)
    mean, cov, tol_mean, tol_cov = _posterior(backend, a)
    latent = cov.shape[0]
    eps = np.concatenate([np.eye(latent), -np.eye(latent)])[:, None, :] * math.sqrt(latent)
    eps = round_to(backend.dtype, eps)
    log_var_q = round_to(backend.dtype, example.extra["q_log_var"])
    worst = 0.0
    for n in range(a["x"].shape[0]):
        mean_q = round_to(backend.dtype, mean[n] + example.extra["q_offset"])
        arch, params, dlv = _network(backend, a, mean_q, log_var_q)
        elbo, tol_elbo, net = _estimate(backend, "elbo", arch, params, a["x"][n:n + 1], eps, dlv)
        kl, d_mean, d_cov = _kl(mean_q, np.exp(log_var_q), mean[n], cov)
        kl_roundoff = bound("float64", 4 * latent + 10).tolerance(abs(kl) + latent * np.linalg.cond(cov))
        carried = np.abs(d_mean) @ tol_mean[n] + np.sum(np.abs(d_cov) * tol_cov) + kl_roundoff
        worst = max(worst, assert_within(
            "elbo", elbo, np.asarray([evidence[n] - kl]), tol_elbo + tol_evidence[n] + carried,
            context=context("elbo", net, backend) + f"\n# KL(q ‖ p(z | x)) = {kl!r}, log p(x) = {evidence[n]!r} for"
            f"\n{context('linear_gaussian_log_evidence', a, backend)}"))
    return worst


# ----------------------------------------------------------------------------- statistical
def _renyi(n, mean_q, var_q, mean_p, cov_p):
    """log E_q[(p/q)^n] = log ∫ p^n q^{1−n} for Gaussians p = N(m_p, S_p), q = N(m_q, diag v_q)."""
    p_inv, q_inv = np.linalg.inv(cov_p), np.diag(1.0 / var_q)
    a = n * p_inv - (n - 1) * q_inv
    h = n * p_inv @ mean_p - (n - 1) * q_inv @ mean_q
    c = n * mean_p @ p_inv @ mean_p - (n - 1) * mean_q @ q_inv @ mean_q
    return (-0.5 * n * np.linalg.slogdet(cov_p)[1] + 0.5 * (n - 1) * np.sum(np.log(var_q))
            - 0.5 * np.linalg.slogdet(a)[1] + 0.5 * h @ np.linalg.solve(a, h) - 0.5 * c)


def _replicated(backend, example):
    """The first row of x replicated N times, the encoder N(mean + shift·sd, scale·λ_max(S)), noise [K, N, L]."""
    a = _args(example, backend)
    a = {**a, "x": a["x"][:1]}
    evidence = float(backend.linear_gaussian_log_evidence(a["x"], a["weight"], a["bias"], a["noise_log_var"])[0])
    tol_evidence = float(tolerance(backend.dtype, "linear_gaussian_log_evidence", a)[0])
    mean, cov, _, _ = _posterior(backend, a)
    mean_q = round_to(backend.dtype, mean[0] + example.extra["q_shift"] * np.sqrt(np.diag(cov)))
    var_q = np.exp(round_to(backend.dtype, np.log(example.extra["q_scale"] * np.linalg.eigvalsh(cov).max())))
    arch, params, dlv = _network(backend, a, mean_q, np.log(var_q))
    latent = cov.shape[0]
    noise = round_to(backend.dtype, np.random.default_rng(SEED).standard_normal((max(GAP_PARTICLES + (RATE_PARTICLES,)),
                                                                                REPLICATIONS, latent)))
    x = np.repeat(a["x"], REPLICATIONS, axis=0)
    return a, evidence, tol_evidence, (mean[0], cov, mean_q, var_q), (arch, params, x, noise, dlv)


_TOLERANCE_ROWS = 128  # the replications are iid: the mean roundoff bound over a subsample estimates its mean


def _iwae(backend, net, k):
    """IWAE_K on every replication, and the mean of its policy tolerance (over the first `_TOLERANCE_ROWS`)."""
    arch, params, x, noise, dlv = net
    args = {"arch": arch, "params": params, "x": x, "eps": noise[:k], "decoder_log_var": dlv, "likelihood": "gaussian"}
    few = {**args, "x": x[:_TOLERANCE_ROWS], "eps": noise[:k, :_TOLERANCE_ROWS]}
    values = backend.iwae_bound(*args.values())
    require_finite(f"iwae_bound at K = {k} particles, N = {len(x)} replications", values,
                   context=context("iwae_bound", {**args, "x": x[:1], "eps": noise[:k, :1]}, backend))
    return values, float(np.mean(tolerance(backend.dtype, "iwae_bound", few))), args


def iwae_bound_le_log_evidence(backend, example, draw):
    """mean_n IWAE_K ≤ log p(x) + z·s/√N + roundoff for each K in GAP_PARTICLES."""
    a, evidence, tol_evidence, _, net = _replicated(backend, example)
    z = statistical_z(MAX_CHECKS * len(GAP_PARTICLES))
    worst = 0.0
    for k in GAP_PARTICLES:
        values, roundoff, _ = _iwae(backend, net, k)
        allowed = z * float(np.std(values, ddof=1)) / math.sqrt(REPLICATIONS) + roundoff + tol_evidence
        excess = float(np.mean(values)) - evidence
        if excess > allowed:
            raise LawViolation(
                f"iwae_bound: mean over N = {REPLICATIONS} replications (seed {SEED}) of IWAE_{k} is "
                f"{float(np.mean(values))!r}, above log p(x) = {evidence!r} by {excess:.3e} > {allowed:.3e} "
                f"(z = {z:.2f})\n{context('linear_gaussian_log_evidence', a, backend)}", ratio=excess / allowed)
        worst = max(worst, excess / allowed)
    return max(worst, 0.0)


def iwae_gap_matches_delta_method(backend, example, draw):
    """K·(log p − mean IWAE_K) within z·K·s/√N + |c₂|/K + K·roundoff of ρ/2 − c₂/K."""
    a, evidence, tol_evidence, (mean, cov, mean_q, var_q), net = _replicated(backend, example)
    k = RATE_PARTICLES
    second, third = (math.exp(_renyi(n, mean_q, var_q, mean, cov)) for n in (2, 3))
    rho, kappa3 = second - 1.0, third - 3.0 * second + 2.0
    c2 = kappa3 / 3.0 - 0.75 * rho ** 2
    values, roundoff, _ = _iwae(backend, net, k)
    z = statistical_z(MAX_CHECKS)
    measured = k * (evidence - float(np.mean(values)))
    expected = rho / 2.0 - c2 / k
    allowed = z * k * float(np.std(values, ddof=1)) / math.sqrt(REPLICATIONS) + abs(c2) / k \
        + k * (roundoff + tol_evidence)
    ratio = abs(measured - expected) / allowed
    if ratio > 1:
        raise LawViolation(
            f"iwae_bound: K·(log p(x) − mean IWAE_K) = {measured:.4g} at K = {k} over N = {REPLICATIONS} replications "
            f"(seed {SEED}), the delta method gives ρ/2 − c₂/K = {expected:.4g} (ρ = {rho:.4g}, κ₃ = {kappa3:.4g}) "
            f"± {allowed:.3g}\n{context('linear_gaussian_log_evidence', a, backend)}", ratio=ratio)
    return ratio


_STATISTICAL = strat.linear_gaussian_examples(max_output=4, max_latent=2, max_batch=1, orthogonal=True, spread=1.2)
CHECKS = {c.law: c for c in (
    Check("log_weights_eq_log_evidence_at_exact_posterior", strat.linear_gaussian_examples(orthogonal=True),
          log_weights_eq_log_evidence_at_exact_posterior),
    Check("elbo_gap_eq_kl_to_exact_posterior", strat.linear_gaussian_examples(), elbo_gap_eq_kl_to_exact_posterior),
    Check("iwae_bound_le_log_evidence", _STATISTICAL, iwae_bound_le_log_evidence),
    Check("iwae_gap_matches_delta_method", _STATISTICAL, iwae_gap_matches_delta_method),
)}
