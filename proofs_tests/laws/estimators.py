"""The estimators chapter's law checks: likelihoods, log_mean_exp, ELBO and IWAE, the paths, the lookup.

Identities are evaluated with the backend's own functions on both sides (as `laws.identities`);
`<function>_matches_reference` and `<function>_gradient_matches_reference` are `laws.differential`'s, as
for every chapter. Every bound is the policy's, `laws.tolerance.tolerance`: the chapter's chain lengths
(`vaespec.spec.estimators.chain_length`) times the reference's magnitudes. The statistical law uses a fixed seed and the
policy's z for `FALSE_ALARM_RATE` (Bonferroni over `MAX_CHECKS` examples × the particle counts).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.estimators import IWAE_PARTICLES, IWAE_REPLICATIONS
from vaespec.spec.tolerances import statistical_z

from ..strategies import estimators as strat
from ..strategies import vae as strategies
from . import declared, variants
from .checking import Check, context, function_args
from .compare import LawViolation, as_input, assert_within, literal, require_finite
from .tolerance import tolerance

SEED = 20261122
MAX_CHECKS = 1000
_MAX_SHIFT = 1e4


def _args(function, example, backend):
    return function_args(function, example, backend)


def _order(what: str, smaller, larger, tol, ctx: str) -> float:
    """Entrywise smaller ≤ larger + tol; returns the worst excess ÷ tol (0 when it holds strictly).

    `tol` may be a function of no arguments giving the tolerance: it is called only when some entry exceeds
    (where every entry holds strictly the ratio is 0 whatever the tolerance, and its reference magnitude is the
    costly part of an inequality law)."""
    excess = np.asarray(smaller, dtype=np.float64) - np.asarray(larger, dtype=np.float64)
    if not np.all(np.isfinite(excess)):
        raise LawViolation(f"{what}: non-finite comparison {smaller!r} ≤ {larger!r}\n{ctx}")
    if callable(tol):
        if not np.any(excess > 0):
            return 0.0
        tol = tol()
    tol = np.broadcast_to(tol, excess.shape)
    ratio = np.where(excess <= 0, 0.0, excess / np.where(tol > 0, tol, np.inf))
    ratio = np.where((excess > 0) & (tol <= 0), np.inf, ratio)
    worst = int(np.argmax(ratio))
    if ratio.flat[worst] > 1:
        raise LawViolation(f"{what}: at entry {worst}, {np.ravel(smaller)[worst]!r} > {np.ravel(larger)[worst]!r} by "
                           f"{excess.flat[worst]:.3e}, beyond the tolerance {tol.flat[worst]:.3e}\n{ctx}",
                           ratio=float(ratio.flat[worst]))
    return float(ratio.flat[worst])


def _softplus(y):
    return np.maximum(y, 0.0) + np.log1p(np.exp(-np.abs(y)))


# ----------------------------------------------------------------------------- likelihoods
def gaussian_nll_eq_scaled_reconstruction_loss(backend, example, draw):
    a = _args("gaussian_log_likelihood", example, backend)
    level = as_input(backend.dtype, np.asarray(draw(strategies.floats(-strat.MAX_ABS_LOG_VAR, strat.MAX_ABS_LOG_VAR))))
    c = declared.convention_for(backend, draw(strategies.conventions()))
    x_hat, x = a["x_hat"], a["x"]
    args = declared.adapt_args(backend, "gaussian_log_likelihood",
                               {"x_hat": x_hat, "x": x, "log_var": np.full_like(x, float(level))})
    level = float(args["log_var"].flat[0]) if args["log_var"].size else float(level)  # a declared unit variance: 0
    log_prob = backend.gaussian_log_likelihood(x_hat, x, args["log_var"])
    features, var = int(np.prod(x.shape[1:], dtype=np.int64)), math.exp(float(level))  # x [batch, *event]
    if declared.variants(backend).get("gaussian_constant", True) is False:  # put the declared-away constant back
        log_prob = np.asarray(log_prob, dtype=np.float64) - features * variants.HALF_LOG_2PI
    per_example = 2.0 * var * (-log_prob - 0.5 * features * math.log(2 * math.pi * var))
    feature_scale = 1.0 if c.reconstruction_feature_reduction == "sum" else 1.0 / features
    reduce = np.sum if c.reconstruction_batch_reduction == "sum" else np.mean
    expected = reduce(c.reconstruction_scale * feature_scale * per_example)
    actual = backend.reconstruction_loss(x_hat, x, c)
    r_args = {"x_hat": x_hat, "x": x, "convention": c}
    # The reconstruction's own error, plus the log-likelihood's error carried through the scaling.
    tol = (float(tolerance(backend.dtype, "reconstruction_loss", r_args))
           + reduce(c.reconstruction_scale * feature_scale * 2.0 * var
                    * tolerance(backend.dtype, "gaussian_log_likelihood", args)))
    return assert_within("reconstruction_loss", actual, expected, tol,
                         context=context("reconstruction_loss", r_args, backend)
                         + f"\n# with gaussian_log_likelihood(x_hat, x, full({float(level)!r})) = {literal(log_prob)}")


def bernoulli_log_prob_eq_neg_bce_with_logits(backend, example, draw):
    a = _args("bernoulli_log_likelihood", example, backend)
    logits, x = a["logits"], a["x"]
    bce = x * _softplus(-logits) + (1.0 - x) * _softplus(logits)  # −[x log σ(l) + (1 − x) log(1 − σ(l))]
    expected = -bce.reshape(len(x), -1).sum(axis=1)  # x [batch, *event]: every entry of an example
    return assert_within("bernoulli_log_likelihood", backend.bernoulli_log_likelihood(logits, x), expected,
                         lambda: tolerance(backend.dtype, "bernoulli_log_likelihood", a),
                         context=context("bernoulli_log_likelihood", a, backend))


def _event_eq_flattened(function: str, likelihood, names: tuple[str, ...], a: dict, backend) -> float:
    """likelihood(*a[names]) on [batch, *event] vs on the [batch, ∏event] flattening: each side within the policy's
    bound of the same reference value (the reference flattens), so the bounds add."""
    flat = {name: a[name].reshape(a[name].shape[0], -1) for name in names}
    tol = tolerance(backend.dtype, function, a) + tolerance(backend.dtype, function, flat)
    return assert_within(function, likelihood(*(a[n] for n in names)), likelihood(*(flat[n] for n in names)), tol,
                         context=context(function, a, backend) + f"\n# against its flattening to {flat['x'].shape}")


def gaussian_log_likelihood_event_eq_flattened(backend, example, draw):
    a = _args("gaussian_log_likelihood", example, backend)
    return _event_eq_flattened("gaussian_log_likelihood", backend.gaussian_log_likelihood,
                               ("x_hat", "x", "log_var"), a, backend)


def bernoulli_log_likelihood_event_eq_flattened(backend, example, draw):
    a = _args("bernoulli_log_likelihood", example, backend)
    return _event_eq_flattened("bernoulli_log_likelihood", backend.bernoulli_log_likelihood, ("logits", "x"), a,
                               backend)


# ----------------------------------------------------------------------------- log_mean_exp
def log_mean_exp_shift_invariant(backend, example, draw):
    a = _args("log_mean_exp", example, backend)
    w = a["log_weights"]
    shift = draw(st.one_of(strategies.floats(-_MAX_SHIFT, _MAX_SHIFT), st.sampled_from([-_MAX_SHIFT, -800.0, 800.0,
                                                                                           _MAX_SHIFT])))
    shifted = as_input(backend.dtype, w + shift)
    moved = float(np.max(np.abs(shifted - (w + shift))))  # the shifted inputs' own rounding moves the result ≤ this
    lhs = backend.log_mean_exp(shifted) - shift
    tol = (tolerance(backend.dtype, "log_mean_exp", a)
           + tolerance(backend.dtype, "log_mean_exp", {"log_weights": shifted}) + moved)
    return assert_within("log_mean_exp", lhs, backend.log_mean_exp(w), tol,
                         context=context("log_mean_exp", {"log_weights": shifted}, backend)
                         + f"\n# shift c = {shift!r}")


def log_mean_exp_between_mean_and_max(backend, example, draw):
    a = _args("log_mean_exp", example, backend)
    w = a["log_weights"]
    estimate = backend.log_mean_exp(w)
    tol, ctx = (lambda: tolerance(backend.dtype, "log_mean_exp", a)), context("log_mean_exp", a, backend)
    return max(_order("mean_k w ≤ log_mean_exp(w)", w.mean(axis=0), estimate, tol, ctx),
               _order("log_mean_exp(w) ≤ max_k w", estimate, w.max(axis=0), tol, ctx))


# ----------------------------------------------------------------------------- network estimators
def _net(backend, example):
    return _args("log_importance_weights", example, backend)


def _call(backend, function, a, **override):
    a = {**a, **override}
    return getattr(backend, function)(a["arch"], a["params"], a["x"], a["eps"], a["decoder_log_var"], a["likelihood"])


def log_weights_eq_likelihood_add_log_prior_sub_log_posterior(backend, example, draw):
    a = _net(backend, example)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    log_w = _call(backend, "log_importance_weights", a)
    mu, log_var = backend.encode(arch, params, x)
    expected = []
    for eps_k in eps:
        z = backend.reparameterize(mu, log_var, eps_k)
        x_hat = backend.decode(arch, params, z)
        if a["likelihood"] == "gaussian":
            ll = backend.gaussian_log_likelihood(x_hat, x, np.broadcast_to(a["decoder_log_var"], x.shape).copy())
        else:
            ll = backend.bernoulli_log_likelihood(x_hat, x)
        expected.append(ll + 0.5 * np.sum(log_var + eps_k ** 2 - z ** 2, axis=1))
    return assert_within("log_importance_weights", log_w, np.stack(expected),
                         lambda: tolerance(backend.dtype, "log_importance_weights", a),
                         context=context("log_importance_weights", a, backend))


def elbo_eq_mean_log_weights(backend, example, draw):
    a = _net(backend, example)
    return assert_within("elbo", _call(backend, "elbo", a), _call(backend, "log_importance_weights", a).mean(axis=0),
                         lambda: tolerance(backend.dtype, "elbo", a), context=context("elbo", a, backend))


def iwae_bound_eq_log_mean_exp_log_weights(backend, example, draw):
    a = _net(backend, example)
    log_w = _call(backend, "log_importance_weights", a)
    tol = tolerance(backend.dtype, "iwae_bound", a) + tolerance(backend.dtype, "log_mean_exp", {"log_weights": log_w})
    return assert_within("iwae_bound", _call(backend, "iwae_bound", a), backend.log_mean_exp(log_w), tol,
                         context=context("iwae_bound", a, backend))


def iwae_one_particle_eq_elbo(backend, example, draw):
    a = _net(backend, example)
    a = {**a, "eps": a["eps"][:1]}
    return assert_within("iwae_bound", _call(backend, "iwae_bound", a), _call(backend, "elbo", a),
                         lambda: tolerance(backend.dtype, "iwae_bound", a), context=context("iwae_bound", a, backend))


def elbo_le_iwae_bound(backend, example, draw):
    a = _net(backend, example)
    return _order("elbo ≤ iwae_bound", _call(backend, "elbo", a), _call(backend, "iwae_bound", a),
                  lambda: tolerance(backend.dtype, "iwae_bound", a), context("iwae_bound", a, backend))


def iwae_bound_ge_mean_of_half_bounds(backend, example, draw):
    a = _net(backend, example)
    second = as_input(backend.dtype, draw(strategies.arrays(a["eps"].shape, -strategies.MAX_ABS_EPS,
                                                            strategies.MAX_ABS_EPS)))
    whole = {**a, "eps": np.concatenate([a["eps"], second])}
    halves = 0.5 * (_call(backend, "iwae_bound", a) + _call(backend, "iwae_bound", whole, eps=second))
    def tol():
        return tolerance(backend.dtype, "iwae_bound", whole) + 0.5 * (
            tolerance(backend.dtype, "iwae_bound", a) + tolerance(backend.dtype, "iwae_bound", {**a, "eps": second}))
    return _order("mean of the halves' iwae_bound ≤ iwae_bound of all 2K particles", halves,
                  _call(backend, "iwae_bound", whole), tol, context("iwae_bound", whole, backend))


def iwae_bound_monotone_in_particles(backend, example, draw):
    """mean_n(IWAE_2K − IWAE_K) ≥ −z·s/√N − roundoff, paired on shared particles, for each K."""
    a = _net(backend, example)
    row = {**a, "x": a["x"][:1]}
    n, latent = IWAE_REPLICATIONS, row["arch"].latent_size
    replicated = {**row, "x": np.repeat(row["x"], n, axis=0)}
    noise = as_input(backend.dtype, np.random.default_rng(SEED).standard_normal((2 * max(IWAE_PARTICLES), n, latent)))
    z_crit = statistical_z(MAX_CHECKS * len(IWAE_PARTICLES))
    worst = 0.0
    bounds: dict[int, np.ndarray] = {}  # IWAE_m by m: K's "many" (2K particles) is the next K's "few"
    for k in IWAE_PARTICLES:
        few, many = ({**replicated, "eps": noise[:m]} for m in (k, 2 * k))
        for m, args in ((k, few), (2 * k, many)):
            if m not in bounds:
                bounds[m] = _call(backend, "iwae_bound", args)
                require_finite(f"iwae_bound at K = {m} particles, N = {n} replications", bounds[m],
                               context=context("iwae_bound", {**row, "eps": noise[:m, :1]}, backend))
        diff = bounds[2 * k] - bounds[k]
        shortfall = -float(np.mean(diff))
        if shortfall <= 0:  # holds whatever the allowance, its ratio ≤ 0: the roundoff's magnitudes are not needed
            continue
        roundoff = float(np.mean(tolerance(backend.dtype, "iwae_bound", many)
                                 + tolerance(backend.dtype, "iwae_bound", few)))
        allowed = z_crit * float(np.std(diff, ddof=1)) / math.sqrt(n) + roundoff
        if shortfall > allowed:
            raise LawViolation(
                f"iwae_bound: mean over N = {n} replications (seed {SEED}) of IWAE_{2 * k} − IWAE_{k} is "
                f"{-shortfall!r}, below −{allowed:.3e} (z = {z_crit:.2f}): the mean bound decreased with K\n"
                + context("iwae_bound", {**row, "eps": noise[:2 * k, :1]}, backend), ratio=shortfall / allowed)
        worst = max(worst, shortfall / allowed if allowed > 0 else 0.0)
    return max(worst, 0.0)


# ----------------------------------------------------------------------------- paths and lookup
def reconstruct_eq_decode_encoder_mean(backend, example, draw):
    a = _args("reconstruct", example, backend)
    arch, params, x = a["arch"], a["params"], a["x"]
    expected = backend.decode(arch, params, backend.encode(arch, params, x)[0])
    return assert_within("reconstruct", backend.reconstruct(arch, params, x), expected,
                         lambda: tolerance(backend.dtype, "reconstruct", a), context=context("reconstruct", a, backend))


def embedding_lookup_eq_one_hot_matmul(backend, example, draw):
    a = _args("embedding_lookup", example, backend)
    table, indices = a["table"], a["indices"]
    one_hot = np.eye(table.shape[0])[indices]
    return assert_within("embedding_lookup", backend.embedding_lookup(table, indices), one_hot @ table, 0.0,
                         context=context("embedding_lookup", a, backend))


CHECKS = {c.law: c for c in (
    Check("gaussian_nll_eq_scaled_reconstruction_loss", strat.likelihood_examples(),
          gaussian_nll_eq_scaled_reconstruction_loss),
    Check("bernoulli_log_prob_eq_neg_bce_with_logits", strat.bernoulli_examples(),
          bernoulli_log_prob_eq_neg_bce_with_logits),
    Check("gaussian_log_likelihood_event_eq_flattened", strat.likelihood_examples(),
          gaussian_log_likelihood_event_eq_flattened),
    Check("bernoulli_log_likelihood_event_eq_flattened", strat.bernoulli_examples(),
          bernoulli_log_likelihood_event_eq_flattened),
    Check("log_mean_exp_shift_invariant", strat.log_weight_examples(), log_mean_exp_shift_invariant),
    Check("log_mean_exp_between_mean_and_max", strat.log_weight_examples(), log_mean_exp_between_mean_and_max),
    Check("log_weights_eq_likelihood_add_log_prior_sub_log_posterior", strat.network_examples(),
          log_weights_eq_likelihood_add_log_prior_sub_log_posterior),
    Check("elbo_eq_mean_log_weights", strat.network_examples(), elbo_eq_mean_log_weights),
    Check("iwae_bound_eq_log_mean_exp_log_weights", strat.network_examples(), iwae_bound_eq_log_mean_exp_log_weights),
    Check("iwae_one_particle_eq_elbo", strat.network_examples(), iwae_one_particle_eq_elbo),
    Check("elbo_le_iwae_bound", strat.network_examples(), elbo_le_iwae_bound),
    Check("iwae_bound_ge_mean_of_half_bounds", strat.network_examples(), iwae_bound_ge_mean_of_half_bounds),
    Check("iwae_bound_monotone_in_particles", strat.network_examples(max_batch=1), iwae_bound_monotone_in_particles),
    Check("reconstruct_eq_decode_encoder_mean", strat.network_examples(), reconstruct_eq_decode_encoder_mean),
    Check("embedding_lookup_eq_one_hot_matmul", strat.embedding_examples(), embedding_lookup_eq_one_hot_matmul),
)}
