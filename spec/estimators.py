"""The estimators chapter: decoder likelihoods, Monte-Carlo ELBO, the IWAE bound, the
reconstruction path and the embedding lookup of a discrete-input encoder.

Notation: `(μ, lv) = encode(x)`, σ = exp(½ lv), K particles of noise `eps` [particles, batch,
latent], `z_k = μ + σ ⊙ ε_k`, `x̂_k = decode(z_k)` and `ℓ(x̂, x)` the decoder's log-likelihood
(`gaussian` with log-variance `decoder_log_var`, or `bernoulli` with x̂ as logits). The log
importance weight of particle k is

    log w_k = log p(x | z_k) + log N(z_k; 0, I) − log N(z_k; μ, σ²)
            = ℓ(x̂_k, x) + ½ Σ_j (lv_j + ε_kj² − z_kj²)        (the ½ log 2π terms cancel)

and the estimators reduce it over the particles: `elbo = mean_k log w_k` (the Monte-Carlo
ELBO), `iwae_bound = log_mean_exp_k log w_k` (Burda et al.'s bound; with many particles,
the importance-sampled estimate of log p(x)). Every function returns one value per example;
training averages them over the batch.

Noise is explicit, as everywhere in the contract. Log-weights pass through `log_mean_exp`,
which subtracts the largest weight first, so shifting every log-weight by c shifts the
result by c exactly in real arithmetic and never overflows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .architecture import Architecture
from .shapes import Float, Int
from .signature import Arg, FunctionSpec, Law, Output
from .tolerances import chain_length as _vae_chain_length

LIKELIHOODS = ("gaussian", "bernoulli")
# The nearest double to log 2π; math.log(2 * math.pi) rounds 2π first and lands one ulp below it
# (found by proofs_tests/proofs `reference_constants`).
LOG_2PI = 1.8378770664093456

ARCH = Arg("arch", "arch")
PARAMS = Arg("params", "params", differentiable=True)
X = Arg("x", "array", ("batch", "input"), True,
        "finite reals; with the bernoulli likelihood 0 ≤ x ≤ 1 (binary data or probabilities)")
X_HAT = Arg("x_hat", "array", ("batch", "output"), True)
TARGET = Arg("x", "array", ("batch", "output"), True)
LOG_VAR = Arg("log_var", "array", ("batch", "output"), True, "finite reals: the decoder's log σ² per entry")
LOGITS = Arg("logits", "array", ("batch", "output"), True)
BINARY_TARGET = Arg("x", "array", ("batch", "output"), True, "0 ≤ x ≤ 1 (binary data or probabilities)",
                    low=0.0, high=1.0)
LOG_WEIGHTS = Arg("log_weights", "array", ("particles", "batch"), True, "finite reals, K ≥ 1 particles")
EPS = Arg("eps", "array", ("particles", "batch", "latent"), False, "finite reals (standard normal noise), K ≥ 1")
DECODER_LOG_VAR = Arg("decoder_log_var", "array", ("output",), True,
                      "finite reals: the Gaussian decoder's log σ² per feature, fixed or learned "
                      "(read only by the gaussian likelihood)")
LIKELIHOOD = Arg("likelihood", "likelihood", domain="'gaussian' or 'bernoulli'")
TABLE = Arg("table", "array", ("categories", "embedding"), True, "finite reals, one row per category")
CATEGORY = Arg("indices", "index", ("batch",), domain="0 ≤ index < categories", bound="categories")

_NETWORK = (ARCH, PARAMS, X, EPS, DECODER_LOG_VAR, LIKELIHOOD)
_fns = (
    FunctionSpec("gaussian_log_likelihood", (X_HAT, TARGET, LOG_VAR), (Output("log_prob", ("batch",)),),
                 "log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d})", "estimators"),
    FunctionSpec("bernoulli_log_likelihood", (LOGITS, BINARY_TARGET), (Output("log_prob", ("batch",)),),
                 "log Bern(x; σ(l)) = Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d)", "estimators"),
    FunctionSpec("log_mean_exp", (LOG_WEIGHTS,), (Output("estimate", ("batch",)),),
                 "log (1/K Σ_k e^{w_k}) = m + log Σ_k e^{w_k − m} − log K, m = max_k w_k", "estimators"),
    FunctionSpec("log_importance_weights", _NETWORK, (Output("log_weights", ("particles", "batch")),),
                 "log w_k = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²), z_k = μ + e^{½lv} ⊙ ε_k, "
                 "(μ, lv) = encode(x)", "estimators"),
    FunctionSpec("elbo", _NETWORK, (Output("elbo", ("batch",)),),
                 "elbo = (1/K) Σ_k log w_k  (Monte-Carlo ELBO with K particles)", "estimators"),
    FunctionSpec("iwae_bound", _NETWORK, (Output("bound", ("batch",)),),
                 "iwae = log_mean_exp_k(log w_k)  (importance-weighted bound; estimates log p(x))", "estimators"),
    FunctionSpec("reconstruct", (ARCH, PARAMS, X), (Output("x_hat", ("batch", "output")),),
                 "reconstruct(x) = decode(μ(x)) = forward(x, 0)  (quivers' encoder >> decoder at the posterior "
                 "mean)", "estimators"),
    FunctionSpec("embedding_lookup", (TABLE, CATEGORY), (Output("embedded", ("batch", "embedding")),),
                 "embedded[b] = table[indices[b]] = one_hot(indices)[b] · table", "estimators"),
)
FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in _fns}

# Statistical law parameters: replications and particle counts of the IWAE monotonicity check.
IWAE_REPLICATIONS = 1024
IWAE_PARTICLES = (1, 2, 4, 8)

_C = "estimators"
_laws = (
    Law("gaussian_nll_eq_scaled_reconstruction_loss",
        "MSE is a scaled Gaussian negative log-likelihood minus a constant: for one fixed decoder variance σ² = e^ℓ, "
        "reconstruction_loss(x̂, x, c) = ρ_b(s · c_d · 2σ² · (−gaussian_log_likelihood(x̂, x, ℓ)_b − ½D·log(2πσ²))), "
        "c_d = 1 for a feature sum and 1/D for a mean", ("gaussian_log_likelihood", "reconstruction_loss"),
        "|ℓ| ≤ 4, every convention preset", "roundoff", _C),
    Law("bernoulli_log_prob_eq_neg_bce_with_logits",
        "bernoulli_log_likelihood(l, x)_b = −Σ_d BCE(l_d, x_d) with BCE(l, x) = −[x log σ(l) + (1 − x) log(1 − σ(l))], "
        "evaluated in float64 as x·softplus(−l) + (1 − x)·softplus(l)", ("bernoulli_log_likelihood",),
        "0 ≤ x ≤ 1, |l| ≤ 30", "roundoff", _C),
    Law("log_mean_exp_shift_invariant",
        "log_mean_exp(w + c) − c = log_mean_exp(w) for every real c, including shifts at which a naive "
        "exp(w + c) overflows or underflows", ("log_mean_exp",), "|w| ≤ 50, |c| ≤ 10⁴", "roundoff", _C),
    Law("log_mean_exp_between_mean_and_max",
        "mean_k w_k ≤ log_mean_exp(w) ≤ max_k w_k (Jensen, and a mean of e^{w_k} is at most the largest)",
        ("log_mean_exp",), "|w| ≤ 50", "order", _C),
    Law("log_weights_eq_likelihood_add_log_prior_sub_log_posterior",
        "log_importance_weights(x, ε)_k = ℓ(decode(z_k), x) + log N(z_k; 0, I) − log N(z_k; μ, σ²), with "
        "(μ, lv) = encode(x), z_k = reparameterize(μ, lv, ε_k) and ℓ the contract's gaussian or bernoulli "
        "log-likelihood; the log densities are evaluated as −½Σ z_k² and −½Σ(lv + ε_k²) (the ½ log 2π cancel)",
        ("log_importance_weights", "encode", "reparameterize", "decode", "gaussian_log_likelihood",
         "bernoulli_log_likelihood"), "any architecture, both likelihoods", "roundoff", _C),
    Law("elbo_eq_mean_log_weights", "elbo(x, ε) = (1/K) Σ_k log_importance_weights(x, ε)_k",
        ("elbo", "log_importance_weights"), "K ≥ 1, both likelihoods", "roundoff", _C),
    Law("iwae_bound_eq_log_mean_exp_log_weights", "iwae_bound(x, ε) = log_mean_exp(log_importance_weights(x, ε))",
        ("iwae_bound", "log_mean_exp", "log_importance_weights"), "K ≥ 1, both likelihoods", "roundoff", _C),
    Law("iwae_one_particle_eq_elbo", "with K = 1 particle, iwae_bound(x, ε) = elbo(x, ε) for the same noise",
        ("iwae_bound", "elbo"), "K = 1, both likelihoods", "roundoff", _C),
    Law("elbo_le_iwae_bound", "elbo(x, ε) ≤ iwae_bound(x, ε) for the same K particles (Jensen: mean log ≤ log mean)",
        ("elbo", "iwae_bound"), "K ≥ 1, both likelihoods", "order", _C),
    Law("iwae_bound_ge_mean_of_half_bounds",
        "iwae_bound over 2K particles ≥ the mean of the bounds over its two halves of K particles each "
        "(log of a mean ≥ mean of logs; pathwise, for the same noise)", ("iwae_bound",), "K ≥ 1, both likelihoods",
        "order", _C),
    Law("iwae_bound_monotone_in_particles",
        f"the mean IWAE bound does not decrease with K: for K ∈ {IWAE_PARTICLES} and N = {IWAE_REPLICATIONS} "
        "independent replications (fixed seed), mean_n(IWAE_2K − IWAE_K) ≥ −z·s/√N with s the sample standard "
        "deviation of the paired differences (the first K of the 2K particles are IWAE_K's) and "
        "z = statistical_z(1000 examples × 4 values of K), the policy's two-sided quantile used one-sided "
        "(conservative)", ("iwae_bound",), "both likelihoods", "statistical", _C),
    Law("reconstruct_eq_decode_encoder_mean", "reconstruct(x) = decode(μ(x)), (μ, lv) = encode(x): the reconstruction "
        "path decodes the posterior mean, i.e. forward(x, 0)", ("reconstruct", "decode", "encode"),
        "any architecture", "roundoff", _C),
    Law("embedding_lookup_eq_one_hot_matmul", "embedding_lookup(table, i) = one_hot(i) · table, exactly: each row is "
        "one table row (1·t + Σ 0·t′ is exact in every dtype)", ("embedding_lookup",), "any table and indices",
        "exact", _C),
)
LAWS: dict[str, Law] = {law.name: law for law in _laws}


def validate(function: str, args: Mapping[str, Any], dtype: str = "float64") -> dict[str, Any]:
    """`vaespec.spec.contract.validate_args` (which applies this chapter's `_chapter_rules`); kept by this name
    for the chapter's callers. Returns the checked arguments."""
    from .contract import validate_args

    return validate_args(function, args, dtype)


def _chapter_rules(function: str, checked: Mapping[str, Any]) -> None:
    """The chapter's own rules on already-checked arguments, applied by `validate_args`: a Bernoulli target
    lies in [0, 1]; the network estimators compare x̂ with x, so `arch.output_size` must equal
    `arch.input_size`. (`likelihood` is one of `LIKELIHOODS`: checked with the argument kinds.)"""
    from .errors import ConfigError, DomainError

    bernoulli = function == "bernoulli_log_likelihood" or checked.get("likelihood") == "bernoulli"
    if bernoulli and (checked["x"].min() < 0.0 or checked["x"].max() > 1.0):
        raise DomainError(f"x: expected values in [0, 1] for the Bernoulli likelihood, got values in "
                          f"[{checked['x'].min()}, {checked['x'].max()}]")
    if "likelihood" in checked and checked["arch"].output_size != checked["arch"].input_size:
        arch = checked["arch"]
        raise ConfigError(f"arch: {function} scores x̂ against x, so output_size must equal input_size; got "
                          f"output_size={arch.output_size}, input_size={arch.input_size}")


def chain_length(function: str, args: Mapping[str, Any]) -> tuple[int, int]:
    """(n, n_ops) of the longest rounding chain of `function` (or `<function>_vjp`) at `args`.

    Likelihoods: the feature reduction plus 8 elementwise ops (subtract, square, exp, multiply,
    add ℓ and log 2π, halve; softplus's max, abs, exp, log1p). `log_mean_exp`: the particle sum
    plus max, subtract, exp, log, add, subtract log K. The network estimators: `forward`'s chain,
    the likelihood, the latent terms (a sum over the latent plus 6 ops), then the particle
    reduction. A gradient adds the backward chain and the sum over particles × batch of the
    weight gradients (as `vaespec.spec.tolerances.chain_length`).
    """
    from .contract import validate_args
    from .errors import ConfigError, show

    if not isinstance(function, str) or function.removesuffix("_vjp") not in FUNCTIONS:
        raise ConfigError(f"function: expected an estimators function (or <function>_vjp), one of "
                          f"{sorted(FUNCTIONS)}, got {show(function)}")
    if not function.endswith("_vjp"):
        args = validate_args(function, args)
    if function.endswith("_vjp"):
        n, ops = chain_length(function[: -len("_vjp")], args)
        rows = np.shape(args["eps"])[0] * np.shape(args["eps"])[1] if "eps" in args else _batch(args)
        return 2 * n + rows, 2 * ops + 1
    if function in ("gaussian_log_likelihood", "bernoulli_log_likelihood"):
        return np.shape(args["x"])[1] + 8, 8
    if function == "log_mean_exp":
        return np.shape(args["log_weights"])[0] + 6, 6
    if function == "embedding_lookup":
        return 1, 1
    arch = args["arch"]
    if function == "reconstruct":
        return _vae_chain_length("generate", arch, 1)[0] + _vae_chain_length("encode", arch, 1)[0], \
            _vae_chain_length("generate", arch, 1)[1] + _vae_chain_length("encode", arch, 1)[1]
    particles, batch = np.shape(args["eps"])[:2]
    n, ops = _vae_chain_length("forward", arch, batch)
    n, ops = n + arch.output_size + 8 + arch.latent_size + 6 + 1, ops + 8 + 6 + 1
    if function == "log_importance_weights":
        return n, ops
    if function == "elbo":
        return n + particles + 1, ops + 1
    if function == "iwae_bound":
        return n + particles + 6, ops + 6
    raise ValueError(f"function: {function!r} is not in the estimators chapter")


def _batch(args: Mapping[str, Any]) -> int:
    for name in ("x", "x_hat", "logits", "indices"):
        if name in args:
            return int(np.shape(args[name])[0])
    return int(np.shape(args["log_weights"])[1])


@runtime_checkable
class EstimatorsBackend(Protocol):
    """What a backend declaring the `estimators` chapter provides, besides the VAE chapter's
    `encode`, `decode`, `reparameterize`, `forward` and `reconstruction_loss`, which its laws
    also call. Float64 numpy in and out, as every chapter; `vjp` covers these functions too."""

    name: str
    device: str
    dtype: str

    def gaussian_log_likelihood(self, x_hat: Float[np.ndarray, "batch output"], x: Float[np.ndarray, "batch output"],
                                log_var: Float[np.ndarray, "batch output"]) -> Float[np.ndarray, " batch"]: ...

    def bernoulli_log_likelihood(self, logits: Float[np.ndarray, "batch output"],
                                 x: Float[np.ndarray, "batch output"]) -> Float[np.ndarray, " batch"]: ...

    def log_mean_exp(self, log_weights: Float[np.ndarray, "particles batch"]) -> Float[np.ndarray, " batch"]: ...

    def log_importance_weights(self, arch: Architecture, params: Mapping[str, np.ndarray],
                               x: Float[np.ndarray, "batch input"], eps: Float[np.ndarray, "particles batch latent"],
                               decoder_log_var: Float[np.ndarray, " output"], likelihood: str
                               ) -> Float[np.ndarray, "particles batch"]: ...

    def elbo(self, arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"],
             eps: Float[np.ndarray, "particles batch latent"], decoder_log_var: Float[np.ndarray, " output"],
             likelihood: str) -> Float[np.ndarray, " batch"]: ...

    def iwae_bound(self, arch: Architecture, params: Mapping[str, np.ndarray], x: Float[np.ndarray, "batch input"],
                   eps: Float[np.ndarray, "particles batch latent"], decoder_log_var: Float[np.ndarray, " output"],
                   likelihood: str) -> Float[np.ndarray, " batch"]: ...

    def reconstruct(self, arch: Architecture, params: Mapping[str, np.ndarray],
                    x: Float[np.ndarray, "batch input"]) -> Float[np.ndarray, "batch output"]: ...

    def embedding_lookup(self, table: Float[np.ndarray, "categories embedding"],
                         indices: Int[np.ndarray, " batch"]) -> Float[np.ndarray, "batch embedding"]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]: ...
