"""Identity and order laws of the VAE contract, checked on the backend alone.

Each check evaluates both sides with the backend's own functions, so a backend that
is self-consistently wrong in one function is still caught when that function meets
another. Tolerances: `2 · γ_n · M` of the composite (both sides may err by γ·M).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.keys import Key, normal
from vaespec.spec.own import OwnArchitecture

from ..strategies import vae as strategies
from . import declared
from .checking import Check, context, function_args
from .compare import LawViolation, as_input, assert_within, check_order
from .tolerance import own_network_tolerance, tolerance


def _net(backend, example, draw=None, min_batch: int = 1):
    """The network example's arguments as handed to `backend`; for a backend with its own network
    (`declared.own_architectures`), an example of that network drawn in its place (`own_network_examples`)."""
    own = declared.own_architectures(backend)
    if own and draw is not None:
        example = draw(strategies.own_network_examples(own, min_batch=min_batch))
    return function_args("loss", example, backend)


def _tol(backend, function: str, args, lhs, rhs):
    """The law's tolerance of `function` at `args`: the policy's (`tolerance`), or, through a backend's own
    network, `own_network_tolerance` of the two sides."""
    if isinstance(args.get("arch"), OwnArchitecture):
        return own_network_tolerance(backend.dtype, function, args, lhs, rhs)
    return tolerance(backend.dtype, function, args)


def forward_eq_decode_reparameterize(backend, example, draw):
    a = _net(backend, example, draw)
    lhs = backend.forward(a["arch"], a["params"], a["x"], a["eps"])
    mu, log_var = backend.encode(a["arch"], a["params"], a["x"])
    rhs = backend.decode(a["arch"], a["params"], backend.reparameterize(mu, log_var, a["eps"]))
    return assert_within("forward", lhs, rhs, lambda: _tol(backend, "forward", a, lhs, rhs),
                         context=context("forward", a, backend))


def sample_latent_eq_reparameterize_encode(backend, example, draw):
    a = _net(backend, example, draw)
    lhs = backend.sample_latent(a["arch"], a["params"], a["x"], a["eps"])
    mu, log_var = backend.encode(a["arch"], a["params"], a["x"])
    rhs = backend.reparameterize(mu, log_var, a["eps"])
    return assert_within("sample_latent", lhs, rhs, lambda: _tol(backend, "sample_latent", a, lhs, rhs),
                         context=context("sample_latent", a, backend))


def generate_eq_decode_prior_sample(backend, example, draw):
    a = _net(backend, example, draw)
    zeros = np.zeros_like(a["eps"])
    lhs = backend.generate(a["arch"], a["params"], a["eps"])
    rhs = backend.decode(a["arch"], a["params"], backend.reparameterize(zeros, zeros, a["eps"]))
    return assert_within("generate", lhs, rhs, lambda: _tol(backend, "generate", a, lhs, rhs),
                         context=context("generate", a, backend))


def _loss_decomposition(backend, a, beta):
    arch, params, x, eps, c = a["arch"], a["params"], a["x"], a["eps"], a["convention"]
    lhs = backend.loss(arch, params, x, eps, beta, c)
    recon = backend.reconstruction_loss(backend.forward(arch, params, x, eps), x, c)
    rhs = recon + beta * backend.kl_divergence(*backend.encode(arch, params, x), c)
    return assert_within("loss", lhs, rhs, lambda: _tol(backend, "loss", {**a, "beta": beta}, lhs, rhs),
                         context=context("loss", {**a, "beta": beta}, backend))


def loss_eq_reconstruction_add_kl(backend, example, draw):
    a = _net(backend, example, draw)
    return _loss_decomposition(backend, a, a["beta"])


def loss_beta_zero_eq_reconstruction(backend, example, draw):
    return _loss_decomposition(backend, _net(backend, example, draw), 0.0)


def loss_monotone_in_beta(backend, example, draw):
    a = _net(backend, example, draw)
    beta_1, beta_2 = sorted((a["beta"], draw(strategies.betas())))
    args_2 = {**a, "beta": beta_2}
    low = backend.loss(a["arch"], a["params"], a["x"], a["eps"], beta_1, a["convention"])
    high = backend.loss(a["arch"], a["params"], a["x"], a["eps"], beta_2, a["convention"])
    return check_order(f"loss(β={beta_1}) ≤ loss(β={beta_2})", low, high,
                       lambda: float(_tol(backend, "loss", args_2, low, high)),
                       context=context("loss", args_2, backend))


def kl_nonnegative(backend, example, draw):
    a = function_args("kl_divergence", example, backend)
    kl = backend.kl_divergence(a["mu"], a["log_var"], a["convention"])
    return check_order("0 ≤ kl_divergence", 0.0, kl, lambda: float(tolerance(backend.dtype, "kl_divergence", a)),
                       context=context("kl_divergence", a, backend))


SIGNIFICANT = 0.01


def kl_zero_iff_standard_normal(backend, example, draw):
    a = function_args("kl_divergence", example, backend)
    zeros = np.zeros_like(a["mu"])
    at_zero = backend.kl_divergence(zeros, zeros, a["convention"])
    if at_zero != 0:
        raise LawViolation(f"kl_divergence(0, 0) = {at_zero!r}, expected exactly 0\n"
                           + context("kl_divergence", {**a, "mu": zeros, "log_var": zeros}, backend))
    if np.any(np.abs(a["mu"]) >= SIGNIFICANT) or np.any(np.abs(a["log_var"]) >= SIGNIFICANT):
        kl = backend.kl_divergence(a["mu"], a["log_var"], a["convention"])
        if not kl > 0:
            raise LawViolation(f"kl_divergence = {kl!r} for (μ, log σ²) ≠ 0 (some entry ≥ {SIGNIFICANT} in size); "
                               "expected > 0\n" + context("kl_divergence", a, backend))
    return 0.0


def kl_additive_over_latent(backend, example, draw):
    a = function_args("kl_divergence", example, backend)
    mu, log_var, c = a["mu"], a["log_var"], a["convention"]
    total = backend.kl_divergence(mu, log_var, c)
    parts = [backend.kl_divergence(mu[:, j:j + 1], log_var[:, j:j + 1], c) for j in range(mu.shape[1])]
    combined = np.sum(parts) if c.kl_latent_reduction == "sum" else np.mean(parts)
    return assert_within("kl_divergence", total, combined, lambda: tolerance(backend.dtype, "kl_divergence", a),
                         context=context("kl_divergence", a, backend))


def reparameterize_zero_noise_eq_mu(backend, example, draw):
    a = function_args("reparameterize", example, backend)
    z = backend.reparameterize(a["mu"], a["log_var"], np.zeros_like(a["mu"]))
    return assert_within("reparameterize", z, a["mu"], 0.0, context=context("reparameterize", a, backend))


def batch_permutation_equivariance(backend, example, draw):
    a = _net(backend, example, draw, min_batch=2)
    perm = np.asarray(draw(st.permutations(range(a["x"].shape[0]))))
    arch, params, x, eps, beta, c = a["arch"], a["params"], a["x"], a["eps"], a["beta"], a["convention"]
    permuted = {**a, "x": x[perm], "eps": eps[perm]}
    worst = 0.0
    for fn, call in (("encode", lambda x_, e_: backend.encode(arch, params, x_)),
                     ("forward", lambda x_, e_: backend.forward(arch, params, x_, e_)),
                     ("sample_latent", lambda x_, e_: backend.sample_latent(arch, params, x_, e_)),
                     ("generate", lambda x_, e_: backend.generate(arch, params, e_))):
        original, after = call(x, eps), call(x[perm], eps[perm])
        expected = tuple(o[perm] for o in original) if isinstance(original, tuple) else original[perm]
        worst = max(worst, assert_within(fn, after, expected, partial(_tol, backend, fn, permuted, after, expected),
                                         context=context(fn, permuted, backend)))
    lhs = backend.loss(arch, params, x[perm], eps[perm], beta, c)
    rhs = backend.loss(arch, params, x, eps, beta, c)
    return max(worst, assert_within("loss", lhs, rhs, lambda: _tol(backend, "loss", a, lhs, rhs),
                                    context=context("loss", permuted, backend)))


def _combine(how: str, parts, sizes):
    if how == "sum":
        return sum(parts)
    return sum(p * s for p, s in zip(parts, sizes)) / sum(sizes)


def reductions_consistent_under_batch_splitting(backend, example, draw):
    a = _net(backend, example, draw, min_batch=2)
    batch = a["x"].shape[0]
    k = draw(st.integers(1, batch - 1))
    parts, c = (slice(0, k), slice(k, batch)), a["convention"]
    sizes = (k, batch - k)
    arch, params, x, eps = a["arch"], a["params"], a["x"], a["eps"]
    x_hat = backend.forward(arch, params, x, eps)
    mu, log_var = backend.encode(arch, params, x)
    r_args = {"x_hat": x_hat, "x": x, "convention": c}
    k_args = {"mu": mu, "log_var": log_var, "convention": c}
    worst = assert_within(
        "reconstruction_loss", backend.reconstruction_loss(x_hat, x, c),
        _combine(c.reconstruction_batch_reduction, [backend.reconstruction_loss(x_hat[s], x[s], c) for s in parts],
                 sizes),
        lambda: tolerance(backend.dtype, "reconstruction_loss", r_args),
        context=context("reconstruction_loss", r_args, backend))
    worst = max(worst, assert_within(
        "kl_divergence", backend.kl_divergence(mu, log_var, c),
        _combine(c.kl_batch_reduction, [backend.kl_divergence(mu[s], log_var[s], c) for s in parts], sizes),
        lambda: tolerance(backend.dtype, "kl_divergence", k_args), context=context("kl_divergence", k_args, backend)))
    if c.reconstruction_batch_reduction == c.kl_batch_reduction:
        whole = backend.loss(arch, params, x, eps, a["beta"], c)
        split = _combine(c.kl_batch_reduction,
                         [backend.loss(arch, params, x[s], eps[s], a["beta"], c) for s in parts], sizes)
        worst = max(worst, assert_within("loss", whole, split, lambda: _tol(backend, "loss", a, whole, split),
                                         context=context("loss", a, backend)))
    return worst


def reparameterize_key_eq_explicit_noise(backend, example, draw):
    a = function_args("reparameterize", example, backend)
    key = Key(draw(st.integers(0, 2**64 - 1)))
    z, new_key = backend.reparameterize_key(a["mu"], a["log_var"], key)
    z_again, _ = backend.reparameterize_key(a["mu"], a["log_var"], key)
    eps, expected_key = normal(key, a["mu"].shape)
    eps = as_input(backend.dtype, eps)
    ctx = context("reparameterize", {**a, "eps": eps}, backend) + f"\n# key: {key!r}"
    if new_key != expected_key:
        raise LawViolation(f"reparameterize_key: returned key {new_key!r}, expected {expected_key!r}\n{ctx}")
    if not np.array_equal(z, z_again):
        raise LawViolation(f"reparameterize_key: two calls with the same key differ\n{ctx}")
    expected = backend.reparameterize(a["mu"], a["log_var"], eps)
    return assert_within("reparameterize_key", z, expected,
                         lambda: tolerance(backend.dtype, "reparameterize", {**a, "eps": eps}), context=ctx)


_NET_BATCHED = strategies.network_examples(min_batch=2)
CHECKS = {c.law: c for c in (
    Check("forward_eq_decode_reparameterize", strategies.network_examples(), forward_eq_decode_reparameterize),
    Check("sample_latent_eq_reparameterize_encode", strategies.network_examples(),
          sample_latent_eq_reparameterize_encode),
    Check("generate_eq_decode_prior_sample", strategies.network_examples(), generate_eq_decode_prior_sample),
    Check("loss_eq_reconstruction_add_kl", strategies.network_examples(), loss_eq_reconstruction_add_kl),
    Check("loss_beta_zero_eq_reconstruction", strategies.network_examples(), loss_beta_zero_eq_reconstruction),
    Check("loss_monotone_in_beta", strategies.network_examples(), loss_monotone_in_beta),
    Check("kl_nonnegative", strategies.latent_examples(), kl_nonnegative),
    Check("kl_zero_iff_standard_normal", strategies.latent_examples(), kl_zero_iff_standard_normal),
    Check("kl_additive_over_latent", strategies.latent_examples(), kl_additive_over_latent),
    Check("reparameterize_zero_noise_eq_mu", strategies.latent_examples(), reparameterize_zero_noise_eq_mu),
    Check("batch_permutation_equivariance", _NET_BATCHED, batch_permutation_equivariance),
    Check("reductions_consistent_under_batch_splitting", _NET_BATCHED, reductions_consistent_under_batch_splitting),
    Check("reparameterize_key_eq_explicit_noise", strategies.latent_examples(), reparameterize_key_eq_explicit_noise),
)}
