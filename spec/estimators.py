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

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .architecture import Architecture
from .chains import REPARAMETERIZE, backward, decoder, encoder, total
from .conv import ConvArchitecture
from .errors import ConfigError, DomainError, show
from .shapes import EVENT, INPUT_EVENT, OUTPUT_EVENT, Float, Int
from .signature import Arg, Domain, FunctionSpec, Law, Output, split_vjp
from .vae import output_matches_input
from .validation import check_args, validate_in

LIKELIHOODS = ("gaussian", "bernoulli")
# The nearest double to log 2π; math.log(2 * math.pi) rounds 2π first and lands one ulp below it
# (found by proofs_tests/proofs `reference_constants`).
LOG_2PI = 1.8378770664093456

ARCH = Arg("arch", "arch", types=(Architecture, ConvArchitecture))
PARAMS = Arg("params", "params", differentiable=True)
X = Arg("x", "array", ("batch", INPUT_EVENT), True,  # [batch, input] dense, [batch, C, H, W] conv
        "finite reals; with the bernoulli likelihood 0 ≤ x ≤ 1 (binary data or probabilities)")
# The likelihoods score whole examples: [batch, *event] ([batch, output] for the dense network's), summed over
# every event axis (the log-density of the example), as reconstruction_loss's features are all ∏event entries.
X_HAT = Arg("x_hat", "array", ("batch", EVENT), True)
TARGET = Arg("x", "array", ("batch", EVENT), True)
LOG_VAR = Arg("log_var", "array", ("batch", EVENT), True, "finite reals: the decoder's log σ² per entry")
LOGITS = Arg("logits", "array", ("batch", EVENT), True)
BINARY_TARGET = Arg("x", "array", ("batch", EVENT), True, "0 ≤ x ≤ 1 (binary data or probabilities)",
                    low=0.0, high=1.0)
LOG_WEIGHTS = Arg("log_weights", "array", ("particles", "batch"), True, "finite reals, K ≥ 1 particles")
EPS = Arg("eps", "array", ("particles", "batch", "latent"), False, "finite reals (standard normal noise), K ≥ 1")
DECODER_LOG_VAR = Arg("decoder_log_var", "array", (OUTPUT_EVENT,), True,  # [output] dense, [C, H, W] conv
                      "finite reals: the Gaussian decoder's log σ² per entry of x̂'s event, fixed or learned "
                      "(read only by the gaussian likelihood)")
LIKELIHOOD = Arg("likelihood", "likelihood", domain="'gaussian' or 'bernoulli'", choices=LIKELIHOODS)
TABLE = Arg("table", "array", ("categories", "embedding"), True, "finite reals, one row per category")
CATEGORY = Arg("indices", "index", ("batch",), domain="0 ≤ index < categories", bound="categories")

LOG_2 = math.log(2.0)


# ----------------------------------------------------------------------------- domains (vaespec.spec.domains)
def _event_axes(x: np.ndarray) -> tuple[int, ...]:
    """The event axes of x [batch, *event], counted from the end: a likelihood sums over them (and keeps any
    leading particle axes of x̂ [..., batch, *event])."""
    return tuple(range(-(np.ndim(x) - 1), 0))


def _gaussian_magnitude(a):
    """per row ½Σ_d (log 2π + |ℓ| + (|x̂| + |x|)²·e^{−ℓ} + e^{−ℓ}), the largest row; e^{−ℓ} itself is an
    intermediate: it must be finite even where x = x̂."""
    lv = a["log_var"]
    w = np.exp(-lv)
    terms = LOG_2PI + np.abs(lv) + (np.abs(a["x_hat"]) + np.abs(a["x"])) ** 2 * w + w
    return np.max(0.5 * np.sum(np.broadcast_to(terms, np.broadcast_shapes(*(v.shape for v in
                                                  (a["x_hat"], a["x"], lv)))), axis=_event_axes(a["x"])))


def _gaussian_refuse(a, m, limit, dtype, n):
    lv = a["log_var"]
    raise DomainError(
        f"{n('log_var')}: the Gaussian's magnitude ½Σ_d(log 2π + |ℓ| + (|x̂| + |x|)²·e^(−ℓ) + e^(−ℓ)) must stay ≤ "
        f"{limit:.4g} ({dtype}'s largest value), so ℓ ≥ −{math.log(limit):.4g} at the very least and larger "
        f"where x̂, x are large; got log_var in [{float(np.min(lv)):.6g}, {float(np.max(lv)):.6g}], "
        f"max |{n('x_hat')}| = {float(np.abs(a['x_hat']).max()):.6g}, max |{n('x')}| = "
        f"{float(np.abs(a['x']).max()):.6g} (magnitude {m:.4g})")


def _bernoulli_magnitude(a):
    """per row Σ_d (|x|·|l| + |l| + log 2), the largest row."""
    logits = a["logits"]
    return np.max(np.sum(np.abs(a["x"]) * np.abs(logits) + np.abs(logits) + LOG_2, axis=_event_axes(a["x"])))


def _bernoulli_refuse(a, m, limit, dtype, n):
    raise DomainError(
        f"{n('logits')}: the Bernoulli's magnitude Σ_d(|x|·|l| + |l| + log 2) must stay ≤ {limit:.4g} ({dtype}'s "
        f"largest value); got max |{n('logits')}| = {float(np.abs(a['logits']).max()):.6g} (magnitude {m:.4g})")


GAUSSIAN_DOMAIN = Domain.bounded(("x_hat", "x", "log_var"), _gaussian_magnitude, _gaussian_refuse)
BERNOULLI_DOMAIN = Domain.bounded(("logits", "x"), _bernoulli_magnitude, _bernoulli_refuse)


def _bernoulli_target(function: str, checked: Mapping[str, Any]) -> None:
    """With the Bernoulli likelihood the target x lies in [0, 1]."""
    if checked["likelihood"] == "bernoulli" and (checked["x"].min() < 0.0 or checked["x"].max() > 1.0):
        raise DomainError(f"x: expected values in [0, 1] for the Bernoulli likelihood, got values in "
                          f"[{checked['x'].min()}, {checked['x'].max()}]")


# ----------------------------------------------------------------------------- chains
# Likelihoods: the feature reduction plus 8 elementwise ops (subtract, square, exp, multiply, add ℓ and
# log 2π, halve; softplus's max, abs, exp, log1p). log_mean_exp: the particle sum plus max, subtract, exp,
# log, add, subtract log K. The network estimators: forward's chain, the likelihood, the latent terms (a
# sum over the latent plus 6 ops), then the particle reduction; their gradients sum the weight gradients
# over particles × batch.
def _likelihood_chain(s):
    features = int(np.prod(s[EVENT], dtype=np.int64)) if EVENT in s else s["output"]  # every event entry
    return features + 8, 8


def _log_weights_chain(s):
    arch = s["arch"]
    return total(encoder(arch), REPARAMETERIZE, decoder(arch), (arch.output_size + 8 + arch.latent_size + 6 + 1, 15))


def _network_vjp(chain):
    return lambda s: backward(chain(s), s["particles"] * s["batch"])


def _elbo_chain(s):
    return total(_log_weights_chain(s), (s["particles"] + 1, 1))


def _iwae_chain(s):
    return total(_log_weights_chain(s), (s["particles"] + 6, 6))


def _network(name, output, formula, chain):
    """A network estimator: the same arguments and rules, its particle reduction `chain`."""
    return FunctionSpec(name, _NETWORK, (output,), formula, "estimators",
                        rules=(_bernoulli_target, output_matches_input("scores x̂ against x")),
                        chain=chain, vjp_chain=_network_vjp(chain))


_NETWORK = (ARCH, PARAMS, X, EPS, DECODER_LOG_VAR, LIKELIHOOD)
_fns = (
    FunctionSpec("gaussian_log_likelihood", (X_HAT, TARGET, LOG_VAR), (Output("log_prob", ("batch",)),),
                 "log N(x; x̂, diag e^ℓ) = −½ Σ_d (log 2π + ℓ_d + (x_d − x̂_d)² e^{−ℓ_d}), d over all ∏event entries of "
                 "an example x [batch, *event]", "estimators",
                 domain=GAUSSIAN_DOMAIN, chain=_likelihood_chain),
    FunctionSpec("bernoulli_log_likelihood", (LOGITS, BINARY_TARGET), (Output("log_prob", ("batch",)),),
                 "log Bern(x; σ(l)) = Σ_d (x_d l_d − softplus(l_d)) = −Σ_d BCEWithLogits(l_d, x_d), d over all ∏event "
                 "entries of an example x [batch, *event]", "estimators",
                 domain=BERNOULLI_DOMAIN, chain=_likelihood_chain),
    FunctionSpec("log_mean_exp", (LOG_WEIGHTS,), (Output("estimate", ("batch",)),),
                 "log (1/K Σ_k e^{w_k}) = m + log Σ_k e^{w_k − m} − log K, m = max_k w_k", "estimators",
                 chain=lambda s: (s["particles"] + 6, 6)),
    _network("log_importance_weights", Output("log_weights", ("particles", "batch")),
             "log w_k = ℓ(decode(z_k), x) + ½ Σ_j (lv_j + ε_kj² − z_kj²), z_k = μ + e^{½lv} ⊙ ε_k, "
             "(μ, lv) = encode(x)", _log_weights_chain),
    _network("elbo", Output("elbo", ("batch",)),
             "elbo = (1/K) Σ_k log w_k  (Monte-Carlo ELBO with K particles)", _elbo_chain),
    _network("iwae_bound", Output("bound", ("batch",)),
             "iwae = log_mean_exp_k(log w_k)  (importance-weighted bound; estimates log p(x))", _iwae_chain),
    FunctionSpec("reconstruct", (ARCH, PARAMS, X), (Output("x_hat", ("batch", OUTPUT_EVENT)),),
                 "reconstruct(x) = decode(μ(x)) = forward(x, 0)  (quivers' encoder >> decoder at the posterior "
                 "mean)", "estimators", chain=lambda s: total(decoder(s["arch"]), encoder(s["arch"]))),
    FunctionSpec("embedding_lookup", (TABLE, CATEGORY), (Output("embedded", ("batch", "embedding")),),
                 "embedded[b] = table[indices[b]] = one_hot(indices)[b] · table", "estimators",
                 chain=lambda s: (1, 1), exact=True),  # copied rows: exact in every dtype
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
    Law("gaussian_log_likelihood_event_eq_flattened",
        "gaussian_log_likelihood on x̂, x, ℓ [batch, *event] equals it on their [batch, ∏event] flattening (C order): "
        "the log-density of a whole example, summed over every event axis", ("gaussian_log_likelihood",),
        "events (D,), (T, C), (C, H, W)", "roundoff", _C),
    Law("bernoulli_log_likelihood_event_eq_flattened",
        "bernoulli_log_likelihood on l, x [batch, *event] equals it on their [batch, ∏event] flattening (C order): "
        "the log-probability of a whole example, summed over every event axis", ("bernoulli_log_likelihood",),
        "events (D,), (T, C), (C, H, W)", "roundoff", _C),
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
        "(conservative); every replication's bound finite (a NaN would make every comparison false)",
        ("iwae_bound",), "both likelihoods", "statistical", _C),
    Law("reconstruct_eq_decode_encoder_mean", "reconstruct(x) = decode(μ(x)), (μ, lv) = encode(x): the reconstruction "
        "path decodes the posterior mean, i.e. forward(x, 0)", ("reconstruct", "decode", "encode"),
        "any architecture", "roundoff", _C),
    Law("embedding_lookup_eq_one_hot_matmul", "embedding_lookup(table, i) = one_hot(i) · table, exactly: each row is "
        "one table row (1·t + Σ 0·t′ is exact in every dtype)", ("embedding_lookup",), "any table and indices",
        "exact", _C),
)
LAWS: dict[str, Law] = {law.name: law for law in _laws}


def validate(function: str, args: Mapping[str, Any], dtype: str = "float64") -> dict[str, Any]:
    """The contract's boundary checks (`vaespec.spec.contract.validate_args`, which reads the declarations'
    rules: a Bernoulli target in [0, 1], output_size = input_size for the network estimators) for one of
    this chapter's functions. Returns the checked arguments."""
    return validate_in(FUNCTIONS, function, args, dtype)


def chain_length(function: str, args: Mapping[str, Any]) -> tuple[int, int]:
    """(n, n_ops) of the longest rounding chain of `function` (or `<function>_vjp`) at `args`, checked first:
    the declaration's chain (`FunctionSpec.chain`, `vjp_chain`; the rules are stated beside them above).
    `vaespec.spec.tolerances.function_bound` is the bound of any chapter's function."""
    base, vjp = split_vjp(function) if isinstance(function, str) else (function, False)
    if not isinstance(base, str) or base not in FUNCTIONS:
        raise ConfigError(f"function: expected an estimators function (or <function>_vjp), one of "
                          f"{sorted(FUNCTIONS)}, got {show(function)}")
    spec = FUNCTIONS[base]
    return spec.rounding_chain(check_args(spec, args)[0], vjp=vjp)


@runtime_checkable
class EstimatorsBackend(Protocol):
    """What a backend declaring the `estimators` chapter provides, besides the VAE chapter's
    `encode`, `decode`, `reparameterize`, `forward` and `reconstruction_loss`, which its laws
    also call. Float64 numpy in and out, as every chapter; `vjp` covers these functions too."""

    name: str
    device: str
    dtype: str

    def gaussian_log_likelihood(self, x_hat: Float[np.ndarray, " batch *event"], x: Float[np.ndarray, " batch *event"],
                                log_var: Float[np.ndarray, " batch *event"]) -> Float[np.ndarray, " batch"]: ...

    def bernoulli_log_likelihood(self, logits: Float[np.ndarray, " batch *event"],
                                 x: Float[np.ndarray, " batch *event"]) -> Float[np.ndarray, " batch"]: ...

    def log_mean_exp(self, log_weights: Float[np.ndarray, "particles batch"]) -> Float[np.ndarray, " batch"]: ...

    def log_importance_weights(self, arch: Architecture | ConvArchitecture, params: Mapping[str, np.ndarray],
                               x: Float[np.ndarray, " batch *input"], eps: Float[np.ndarray, "particles batch latent"],
                               decoder_log_var: Float[np.ndarray, " *output"], likelihood: str
                               ) -> Float[np.ndarray, "particles batch"]: ...

    def elbo(self, arch: Architecture | ConvArchitecture, params: Mapping[str, np.ndarray],
             x: Float[np.ndarray, " batch *input"], eps: Float[np.ndarray, "particles batch latent"],
             decoder_log_var: Float[np.ndarray, " *output"], likelihood: str) -> Float[np.ndarray, " batch"]: ...

    def iwae_bound(self, arch: Architecture | ConvArchitecture, params: Mapping[str, np.ndarray],
                   x: Float[np.ndarray, " batch *input"], eps: Float[np.ndarray, "particles batch latent"],
                   decoder_log_var: Float[np.ndarray, " *output"], likelihood: str) -> Float[np.ndarray, " batch"]: ...

    def reconstruct(self, arch: Architecture | ConvArchitecture, params: Mapping[str, np.ndarray],
                    x: Float[np.ndarray, " batch *input"]) -> Float[np.ndarray, " batch *output"]: ...

    def embedding_lookup(self, table: Float[np.ndarray, "categories embedding"],
                         indices: Int[np.ndarray, " batch"]) -> Float[np.ndarray, "batch embedding"]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]: ...
