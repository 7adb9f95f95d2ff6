"""The laws: named statements every VAE implementation must satisfy.

One registry, read by the tests (one test per law), by `vaespec check` (one table row
per law × device × dtype) and by the docs (docs/laws.md is generated from it).
Names state the identity, TorchLean-style, so a law's statement, its reference,
its Torch code and its test are found by one name.

Tolerance classes:
- `exact`: IEEE arithmetic makes both sides identical (e.g. `μ + σ·0 = μ`).
- `roundoff`: both sides agree within the tolerance policy (`vaespec.spec.tolerances`).
- `order`: an inequality, allowed to fail only by the policy's roundoff.
- `statistical`: a z-bound with the policy's false-alarm rate.
- `criterion`: a stated acceptance rule (quantize's near-tie criterion, `vaespec.spec.vq`).
"""

from __future__ import annotations

from . import bayes as _bayes
from . import estimators as _estimators
from . import quantizers as _quantizers
from . import vq as _vq
from .functions import FUNCTIONS
from .signature import Law

_LAWS: list[Law] = [
    Law("forward_eq_decode_reparameterize", "forward(x, ε) = decode(reparameterize(encode(x), ε))",
        ("forward", "decode", "reparameterize", "encode"), "any architecture, finite x and ε", "roundoff"),
    Law("sample_latent_eq_reparameterize_encode", "sample_latent(x, ε) = reparameterize(μ(x), log σ²(x), ε)",
        ("sample_latent", "reparameterize", "encode"), "any architecture, finite x and ε", "roundoff"),
    Law("generate_eq_decode_prior_sample", "generate(ε) = decode(reparameterize(0, 0, ε)) = decode(ε)",
        ("generate", "decode"), "any architecture, finite ε", "roundoff", proofs=("prior_and_zero_noise",)),
    Law("loss_eq_reconstruction_add_kl", "loss(x, ε, β) = R(forward(x, ε), x) + β · KL(encode(x))",
        ("loss", "reconstruction_loss", "kl_divergence", "forward", "encode"),
        "β ≥ 0, every convention preset", "roundoff", proofs=("kl_closed_form", "squared_error_is_gaussian_nll")),
    Law("loss_beta_zero_eq_reconstruction", "loss(x, ε, 0) = R(forward(x, ε), x)",
        ("loss", "reconstruction_loss", "forward"), "every convention preset", "roundoff"),
    Law("loss_monotone_in_beta", "β₁ ≤ β₂ ⇒ loss(x, ε, β₁) ≤ loss(x, ε, β₂)  (because KL ≥ 0)",
        ("loss",), "0 ≤ β₁ ≤ β₂ ≤ 10", "order", proofs=("kl_nonnegative_zero_iff_standard",)),
    Law("kl_nonnegative", "KL(μ, log σ²) ≥ 0", ("kl_divergence",), "finite μ, |log σ²| ≤ 20", "order",
        proofs=("kl_closed_form", "kl_log_variance_form", "kl_nonnegative_zero_iff_standard")),
    Law("kl_zero_iff_standard_normal",
        "KL(μ, log σ²) = 0 iff μ = 0 and log σ² = 0 (checked: KL(0, 0) = 0, and KL > 0 when some |μ_j| or "
        "|log σ²_j| ≥ 0.01)", ("kl_divergence",), "finite μ, |log σ²| ≤ 20", "order",
        proofs=("kl_nonnegative_zero_iff_standard",)),
    Law("kl_additive_over_latent",
        "KL(μ, lv) = reduce_j KL(μ[:, j], lv[:, j]) with the convention's latent reduction (sum, or mean)",
        ("kl_divergence",), "finite μ, |log σ²| ≤ 20, every preset", "roundoff",
        proofs=("kl_diagonal_sums_over_coordinates", "batch_split_means")),
    Law("reparameterize_zero_noise_eq_mu", "reparameterize(μ, log σ², 0) = μ", ("reparameterize",),
        "finite μ, log σ² in the float domain", "exact", proofs=("prior_and_zero_noise",)),
    Law("kl_eq_monte_carlo",
        "KL(μ, lv) (sum over latent, per example) = E_ε[log q(z) − log p(z)], z = reparameterize(μ, lv, ε); "
        "checked against the mean of N = 4096 samples within z·sd/√N, sd² = Σ_j μ_j²σ_j² + (σ_j² − 1)²/2; every "
        "sample finite",
        ("kl_divergence", "reparameterize"), "|μ| ≤ 3, |log σ²| ≤ 2", "statistical",
        proofs=("kl_closed_form", "monte_carlo_kl_mean_variance", "normal_fourth_moment",
                "gaussian_log_density_form")),
    Law("reparameterize_moments",
        "for ε ~ N(0, I): mean of z is μ (within z·σ/√N) and variance of z is σ² (within z·σ²·√(2/(N−1))); "
        "every sample finite",
        ("reparameterize",), "|μ| ≤ 5, |log σ²| ≤ 4, N = 4096", "statistical",
        proofs=("reparameterize_moments", "sample_variance_variance", "normal_fourth_moment")),
    Law("batch_permutation_equivariance",
        "permuting the batch permutes encode, forward, sample_latent, generate row-wise and leaves every loss "
        "unchanged",
        ("encode", "forward", "sample_latent", "generate", "reconstruction_loss", "kl_divergence", "loss"),
        "batch ≥ 2", "roundoff"),
    Law("reductions_consistent_under_batch_splitting",
        "for a batch split into parts A and B: L(A ∪ B) = (|A|·L(A) + |B|·L(B)) / |A ∪ B| for mean batch reduction, "
        "L(A) + L(B) for sum", ("reconstruction_loss", "kl_divergence", "loss"), "batch ≥ 2, every preset",
        "roundoff", proofs=("batch_split_means",)),
    Law("network_gradients_eq_own_finite_differences",
        "for each network function f with a VJP (encode, decode, sample_latent, forward, generate, loss), a drawn "
        "cotangent ȳ and direction v over its differentiable arguments: ⟨vjp(f)(ȳ), v⟩ = ⟨ȳ, f(θ + tv) − f(θ − tv)⟩"
        " / 2t, the backend's own central difference at t = ∛(3·rel)/2 (rel the policy's bound of one evaluation); "
        "judged where the differences at t and 2t agree and f's even part scales as t² (no kink within the step), "
        "else at t/4, then t/16",
        ("encode", "decode", "sample_latent", "forward", "generate", "loss"),
        "any network, vaespec's or the backend's own; float64 and float32", "roundoff"),
    Law("reparameterize_key_eq_explicit_noise",
        "reparameterize_key(μ, lv, key) = (reparameterize(μ, lv, ε), key′) with (ε, key′) = normal(key, shape); "
        "deterministic given the key", ("reparameterize",), "any key", "roundoff", requires="reparameterize_key"),
]

# Every chapter's own laws (see `vaespec.spec.vq`).
_LAWS.extend(_vq.LAWS.values())
_LAWS.extend(_estimators.LAWS.values())
_LAWS.extend(_bayes.LAWS.values())
_LAWS.extend(_quantizers.LAWS.values())

# Agreement with the float64 reference, for every function of every chapter, as its declaration says:
# exact for integer results and key-driven draws (`FunctionSpec.exact`); a function with a discrete
# choice (quantize's index, `FunctionSpec.discrete`) is compared at the backend's own choices, which
# `quantize_nearest_code_within_bound` checks against the near-tie criterion; each law rests on the
# symbolic proofs (`vaespec.proofs_tests.proofs`) its declaration names.
for _fn, _spec in FUNCTIONS.items():
    _at = " at the backend's own code choices" if _spec.discrete else ""
    _LAWS.append(Law(f"{_fn}_matches_reference", f"{_fn} equals the float64 reference{_at} ({_spec.formula})",
                     (_fn,), "the strategies' domain", "exact" if _spec.exact else "roundoff", _spec.chapter,
                     proofs=_spec.proofs))
for _fn, _spec in FUNCTIONS.items():
    if _spec.differentiable:
        _LAWS.append(Law(f"{_fn}_gradient_matches_reference",
                         f"the vector-Jacobian product of {_fn} with respect to {', '.join(_spec.differentiable)} "
                         "equals the reference's hand-written backward "
                         f"pass{' at the backend’s own code choices' if _spec.discrete else ''}",
                         (_fn,), "the strategies' domain", "roundoff", _spec.chapter, proofs=_spec.gradient_proofs))

LAWS: dict[str, Law] = {law.name: law for law in _LAWS}
