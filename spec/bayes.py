"""The Bayesian chapter: the generative path's parameters θ as random variables, and the exact
evidence of the linear-Gaussian VAE (probabilistic PCA) that lets laws measure every estimator.

**The model** (`vaespec bayes`, docs/bayes.md). θ is the decoder's parameter mapping in the
contract's layout (`Architecture.parameter_shapes("decoder")`: `decoder_*.kernel` [in, out],
`decoder_*.bias` [out]), every entry a priori independent N(0, s²), s = `PRIOR_SCALE`:

    log p(θ, X) = Σ_i log N(θ_i; 0, s²) + Σ_n log p(x_n | θ)

What "log p(x | θ)" is depends on the decoder, and the three cases carry different names
(`EVIDENCE_KINDS`) so an estimate is never reported as the evidence:

- `"exact"` — a linear decoder `x = W z + b + σ·ν`, z ~ N(0, I_L), ν ~ N(0, I_D) with
  `W = decoder_output.kernelᵀ` [output, latent], `b = decoder_output.bias`, σ² = e^`noise_log_var`:
  the latent integrates out in closed form, log p(x | θ) = `linear_gaussian_log_evidence`
  = log N(x; b, W Wᵀ + σ² I). The posterior over θ is then the exact Bayesian posterior.
- `"elbo"` — any decoder with the estimators chapter's Gaussian or Bernoulli likelihood and
  an encoder (held fixed while θ is sampled): log p(x | θ) is *replaced* by
  `elbo(θ, φ, x, ε)` with K fixed noise particles ε, a lower bound on the evidence in
  expectation. The "posterior" is over this surrogate likelihood, not p(θ | X).
- `"iwae"` — as `"elbo"` with `iwae_bound` (K particles): a tighter bound in expectation,
  approaching log p(x | θ) as K → ∞ (`iwae_gap_matches_delta_method`); still a surrogate.

**Exact evidence and posterior** (Tipping & Bishop 1999). With r = x − b and M = WᵀW + σ² I_L:

    log p(x) = −½ (D log 2π + log det(W Wᵀ + σ² I_D) + rᵀ (W Wᵀ + σ² I_D)⁻¹ r)
             = −½ (D log 2π + (D − L) log σ² + log det M + (‖r‖² − rᵀ W M⁻¹ Wᵀ r) / σ²)
    p(z | x) = N(M⁻¹ Wᵀ r, σ² M⁻¹)

(the second form by the matrix determinant lemma and Woodbury's identity; both are correct
implementations). The laws below need exactly this: an estimator of log p(x) compared with
log p(x) itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .errors import ConfigError, DomainError, ShapeError, show
from .numerics import MAX_FINITE, UNIT_ROUNDOFF
from .shapes import Float
from .signature import Arg, Domain, FunctionSpec, Law, Output, split_vjp
from .validation import validate_in

PRIOR_SCALE = 1.0  # s: θ_i ~ N(0, s²), quivers' `parameter_prior_scale=1.0`
EVIDENCE_KINDS = {
    "exact": "log N(x; b, W Wᵀ + σ² I): the evidence of the linear-Gaussian decoder, z integrated out exactly",
    "elbo": "a K-particle Monte-Carlo ELBO with fixed noise and a fixed encoder: a lower bound in expectation",
    "iwae": "a K-particle importance-weighted bound with fixed noise and a fixed encoder: a lower bound in "
            "expectation, approaching the evidence as K grows",
}

X = Arg("x", "array", ("batch", "output"), True)
WEIGHT = Arg("weight", "array", ("output", "latent"), True, "finite reals: W in x = W z + b + σ·ν")
BIAS = Arg("bias", "array", ("output",), True, "finite reals: b, the mean of x")
NOISE_LOG_VAR = Arg("noise_log_var", "scalar", domain="|log σ²| ≤ 20: the isotropic decoder noise σ² = e^ℓ",
                    low=-20.0, high=20.0)

_C = "bayes"
_ARGS = (X, WEIGHT, BIAS, NOISE_LOG_VAR)


def _low_rank(function: str, checked: Mapping[str, Any]) -> None:
    """At most as many latent as observed dimensions (L ≤ D): the model is a low-rank Gaussian."""
    output, latent = checked["weight"].shape
    if latent > output:
        raise ShapeError(f"weight: expected [output, latent] with latent ≤ output (a low-rank Gaussian), got shape "
                         f"{checked['weight'].shape}")


def _chain(sizes):
    """Forming WᵀW (or W Wᵀ) and Wᵀr (dot products of length D), a Cholesky or LU solve (≤ 3 max(D, L)
    roundings along a chain), the quadratic form's sum over D and the log-determinant's over L, and 10
    elementwise ops; a gradient doubles it and adds the batch sum (the default `vjp_chain`)."""
    output, latent = sizes["output"], sizes["latent"]
    return 2 * output + 3 * max(output, latent) + latent + 10, 10


def _domain_rule(args, dtype, name):
    check_domain(args, dtype)


# x [batch, D], W [D, L] and b [D] enter through Gram matrices and solves: not elementwise operands.
DOMAIN = Domain(("weight", "x", "bias", "noise_log_var"), _domain_rule, broadcast=False)

_fns = (
    FunctionSpec("linear_gaussian_log_evidence", _ARGS, (Output("log_evidence", ("batch",)),),
                 "log p(x) = log N(x; b, W Wᵀ + σ² I) = −½(D log 2π + (D − L) log σ² + log det M "
                 "+ (‖r‖² − rᵀ W M⁻¹ Wᵀ r)/σ²), r = x − b, M = WᵀW + σ² I  (exact: z integrated out)", _C,
                 rules=(_low_rank,), domain=DOMAIN, chain=_chain),
    FunctionSpec("linear_gaussian_posterior", _ARGS,
                 (Output("mean", ("batch", "latent")), Output("covariance", ("latent", "latent"))),
                 "p(z | x) = N(M⁻¹ Wᵀ (x − b), σ² M⁻¹), M = WᵀW + σ² I  (exact)", _C,
                 rules=(_low_rank,), domain=DOMAIN, chain=_chain),
)
FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in _fns}

# Statistical laws: replications N and particle counts K, and the Bonferroni count of their z-tests.
REPLICATIONS = 2048
GAP_PARTICLES = (1, 16)
RATE_PARTICLES = 16
MAX_CHECKS = 1000  # examples a run may draw per law, as the estimators chapter

_laws = (
    Law("log_weights_eq_log_evidence_at_exact_posterior",
        "with the encoder set to the exact posterior (μ = mean, log σ²_q = log diag covariance, for W with "
        "orthogonal columns so that the posterior is diagonal), a linear decoder W z + b and the Gaussian "
        "likelihood with log σ² = noise_log_var: every log_importance_weights(x, ε)_k equals "
        "linear_gaussian_log_evidence(x), for every ε (zero variance), so elbo = iwae_bound = log p(x)",
        ("linear_gaussian_log_evidence", "linear_gaussian_posterior", "log_importance_weights"),
        "orthogonal columns, 1 ≤ L ≤ D ≤ 5, |log σ²| ≤ 1.5", "roundoff", _C),
    Law("elbo_gap_eq_kl_to_exact_posterior",
        "for any diagonal Gaussian encoder q = N(m, diag e^v): elbo(x, ε) over the 2L cubature points "
        "ε = ±√L e_j (exact for the quadratic log-weights of a linear decoder) equals "
        "linear_gaussian_log_evidence(x) − KL(q ‖ p(z | x)), the KL between Gaussians in closed form with "
        "p(z | x) = linear_gaussian_posterior(x)", ("elbo", "linear_gaussian_log_evidence",
                                                    "linear_gaussian_posterior"),
        "1 ≤ L ≤ D ≤ 5, |log σ²| ≤ 1.5, |m − mean| ≤ 2, |v| ≤ 2", "roundoff", _C),
    Law("iwae_bound_le_log_evidence",
        f"E[iwae_bound_K(x)] ≤ log p(x) for K ∈ {GAP_PARTICLES}: over N = {REPLICATIONS} replications (fixed "
        "seed), mean_n IWAE_K ≤ linear_gaussian_log_evidence(x) + z·s/√N, s the sample standard deviation, "
        "z = statistical_z(MAX_CHECKS × 2), every replication's bound finite; with elbo_le_iwae_bound this is "
        "ELBO ≤ IWAE_K ≤ log p(x)",
        ("iwae_bound", "linear_gaussian_log_evidence"), "as iwae_gap_matches_delta_method", "statistical", _C),
    Law("iwae_gap_matches_delta_method",
        f"IWAE_K → log p(x) at the delta method's rate: with K = {RATE_PARTICLES}, w = p(x, z)/q(z) and "
        "W = w/p(x) = p(z|x)/q(z), E[W] = 1, ρ = Var W, κ₃ = E(W − 1)³ (closed-form Gaussian integrals), "
        "K·(log p(x) − E IWAE_K) = ρ/2 − (κ₃/3 − 3ρ²/4)/K + O(K⁻²); checked over N replications within "
        "z·K·s/√N plus the second-order term's own size |κ₃/3 − 3ρ²/4|/K for the remainder; every "
        "replication's bound finite",
        ("iwae_bound", "linear_gaussian_log_evidence", "linear_gaussian_posterior"),
        "orthogonal columns (s_max ≤ 1.2 s_min), L ≤ 2, encoder variance in [1, 1.3]× the posterior's largest, "
        "|m − mean| ≤ 0.3 sd",
        "statistical", _C),
)
LAWS: dict[str, Law] = {law.name: law for law in _laws}


def validate(function: str, args: Mapping[str, Any], dtype: str = "float64") -> dict[str, Any]:
    """The contract's boundary checks (`vaespec.spec.contract.validate_args`) for one of this chapter's
    functions, with its rule (at most as many latent as observed dimensions, L ≤ D) and its domain
    (`check_domain`) from the declarations. Returns the checked arguments."""
    return validate_in(FUNCTIONS, function, args, dtype)


def check_domain(args: Mapping[str, Any], dtype: str = "float64") -> None:
    """This chapter's numeric domain in `dtype`; a `DomainError` naming the argument outside it.

    With σ² = e^ℓ, r_b = x_b − b and κ = 1 + ‖W‖²_F/σ² (an upper bound on the condition number of
    W Wᵀ + σ²I and of M = WᵀW + σ²I):
    - **magnitude**: ‖W‖²_F + σ² and max_b (‖x_b‖ + ‖b‖)²·κ/σ² stay ≤ the dtype's largest value, so the
      Gram matrices, the quadratic form and its gradient are finite;
    - **conditioning**: 20·D^{3/2}·κ·u ≤ 1 (u the dtype's unit roundoff): Higham's sufficient condition
      (Accuracy and Stability, Thm 10.7) for a Cholesky factorisation of a D×D SPD matrix to succeed in
      floating point, so every backend can factor the covariance it forms.
    """
    weight, x, bias = (np.asarray(args[k], dtype=np.float64) for k in ("weight", "x", "bias"))
    lv = float(args["noise_log_var"])
    with np.errstate(over="ignore", invalid="ignore"):
        var = math.exp(lv)
        gram = float(np.sum(weight * weight))
        kappa = 1.0 + gram / var
        x_norm, b_norm = float(np.max(np.sqrt(np.sum(x * x, axis=-1)))), float(np.sqrt(np.sum(bias * bias)))
        reach = x_norm + b_norm
        quadratic = reach * reach * kappa / var
    limit, u = MAX_FINITE[dtype], UNIT_ROUNDOFF[dtype]
    if not gram + var <= limit or not kappa <= 1.0 / (20.0 * weight.shape[0] ** 1.5 * u):
        raise DomainError(
            f"weight: ‖W‖²_F = {gram:.4g} with σ² = e^{lv:.4g} gives κ = 1 + ‖W‖²_F/σ² = {kappa:.4g}; in {dtype} the "
            f"domain needs ‖W‖²_F + σ² ≤ {limit:.4g} and 20·D^1.5·κ·u ≤ 1, i.e. κ ≤ "
            f"{1.0 / (20.0 * weight.shape[0] ** 1.5 * u):.4g} (so the covariance's Cholesky exists in {dtype}); "
            f"scale W down or raise noise_log_var")
    if not quadratic <= limit:
        raise DomainError(
            f"{'x' if not x_norm <= b_norm else 'bias'}: max_b (‖x_b‖ + ‖b‖)²·κ/σ² = {quadratic:.4g} must stay ≤ "
            f"{limit:.4g} ({dtype}'s largest value) so the "
            f"quadratic form (x − b)ᵀ(W Wᵀ + σ²I)⁻¹(x − b) and its gradient are finite; got max ‖x_b‖ = "
            f"{x_norm:.4g}, ‖b‖ = {b_norm:.4g} with σ² = e^{lv:.4g}")


def chain_length(function: str, args: Mapping[str, Any]) -> tuple[int, int]:
    """(n, n_ops) of the longest rounding chain of `function` (or `<function>_vjp`) at `args`: the
    declaration's (`_chain` above; `vaespec.spec.tolerances.function_bound` is the bound of any function)."""
    base, vjp = split_vjp(function) if isinstance(function, str) else (function, False)
    if not isinstance(base, str) or base not in FUNCTIONS:
        raise ConfigError(f"function: expected a bayes function (or <function>_vjp), one of {sorted(FUNCTIONS)}, "
                          f"got {show(function)}")
    return FUNCTIONS[base].rounding_chain(args, vjp=vjp)


@runtime_checkable
class BayesBackend(Protocol):
    """What a backend declaring the `bayes` chapter provides, besides the estimators chapter's
    `log_importance_weights`, `elbo` and `iwae_bound`, which its laws also call."""

    name: str
    device: str
    dtype: str

    def linear_gaussian_log_evidence(self, x: Float[np.ndarray, "batch output"],
                                     weight: Float[np.ndarray, "output latent"], bias: Float[np.ndarray, " output"],
                                     noise_log_var: float) -> Float[np.ndarray, " batch"]: ...

    def linear_gaussian_posterior(self, x: Float[np.ndarray, "batch output"],
                                  weight: Float[np.ndarray, "output latent"], bias: Float[np.ndarray, " output"],
                                  noise_log_var: float) -> tuple[Float[np.ndarray, "batch latent"],
                                                                 Float[np.ndarray, "latent latent"]]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]: ...
