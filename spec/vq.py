"""The VQ-VAE chapter of the contract: quantization, its losses, EMA codebooks, codebook health.

Notation: `z_e` [batch, *positions, embedding] is the encoder output, channels-last: positions = ()
for the dense network's [batch, embedding], (T,) for a token sequence [batch, tokens, embedding],
(H, W) for an image's [batch, height, width, embedding]. `codebook` (C) [codes, embedding] holds K rows
e_k. Every position is quantized on its own: for each of the N = batch·∏positions vectors z = z_e[b, p],
`k(b, p) = argmin_k ‖z − e_k‖²` with ties to the **lowest** index, and `z_q[b, p] = e_{k(b, p)}`; each
function below is its [N, embedding] form applied to `z_e.reshape(N, embedding)`, indices [batch,
*positions] reshaped back. Below, `b` ranges over those N vectors. `sg` is stop-gradient: its value
passes, its derivative is 0.

**The networks.** The dense `VQArchitecture` (x [batch, input], z_e [batch, embedding]) and the convolutional
`vaespec.spec.conv_vq.ConvVQArchitecture` (x [batch, C, H, W]; z_e, z_q and decode's input [batch, H′, W′, E]
channels-last, indices [batch, H′, W′]: its arch binds `*positions` = (H′, W′)). The network functions
(vq_encode, vq_forward, vq_loss, and the VAE chapter's decode) take either; every position of the conv
network's last feature map is quantized on its own, as above.

**Discrete choices.** The index `k(b)` is not a continuous function of its inputs, so a
backend that computes distances in lower precision (or by the expanded form
‖z‖² − 2 z·e + ‖e‖², which cancels in float32) may pick another code when two are nearly
tied. The contract accepts that, within a stated bound (`NEAR_TIE_CRITERION`; the bound
itself is `vaespec.spec.tolerances.distance_bound`). Every other VQ function is then
compared with the reference *evaluated at the backend's own choices*, which are checked
against the criterion separately; so a backend must make the same choice for the same
inputs in every function (deterministic argmin).

**Reductions.** The codebook and commitment losses are means over batch × positions × embedding,
that is over all N·D entries of z_e (Edifice, sonnet; for positions = () over batch × embedding);
usage, EMA counts and sums count all N vectors. The reconstruction term of `vq_loss` follows the
convention argument, like the VAE's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .architecture import VQArchitecture
from .chains import STRAIGHT_THROUGH, CodebookChain, NetworkChain, decoder, encoder, network_positions, total
from .conv_vq import ConvVQArchitecture
from .conventions import Convention
from .errors import DomainError, ShapeError
from .keys import Key
from .numerics import MAX_FINITE, NARROW, distance_bound
from .shapes import INPUT_EVENT, OUTPUT_EVENT, POSITIONS, Float, Int
from .signature import Arg, Domain, FunctionSpec, Law, Output
from .vae import output_matches_input
from .validation import check_args

DEFAULT_COMMITMENT_WEIGHT = 0.25
DEFAULT_DECAY = 0.99
DEFAULT_EPSILON = 1e-5
DEFAULT_CODEBOOK_SEED = 42

NEAR_TIE_CRITERION = (
    "Let d_k = ‖z − e_k‖² computed exactly (float64 direct differences of the inputs as the backend "
    "received them) and τ_k = distance_bound(dtype, D, ‖z‖, ‖e_k‖), the largest error the backend's "
    "arithmetic may make in d_k by either the direct or the expanded form. A chosen index j is "
    "acceptable iff d_j − τ_j ≤ min_k (d_k + τ_k): some rounding within the bound makes it a minimiser. "
    "The reference's index k* is then the only acceptable one wherever its margin to the runner-up "
    "exceeds τ_k* + τ_runner-up, so exact agreement is required there and only there. Exact ties "
    "(equal d_k, e.g. duplicated rows) go to the lowest index."
)


def acceptable_codes(dtype: str, z_e: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """The near-tie criterion as a mask: `[b, k]` is True iff index k is acceptable for row b.

    **Arguments**
    - `dtype`: the compute dtype of the backend whose choices are judged.
    - `z_e` [batch, *positions, embedding], `codebook` [codes, embedding]: the inputs *as the backend
      received them* (already rounded to its dtype).

    **Returns** a bool array [batch, *positions, codes]: `d_k − τ_k ≤ min_j (d_j + τ_j)` with `d` the
    float64 direct squared distances and `τ` = `vaespec.spec.tolerances.distance_bound`. A vector with a
    single True entry is *unambiguous*: every conforming backend must pick exactly that code.
    """
    checked = check_args(FUNCTIONS["quantize"], {"z_e": z_e, "codebook": codebook}, dtype)[0]  # shapes, domain
    z, e = checked["z_e"], checked["codebook"]
    lead = z.shape[:-1]
    z = z.reshape(-1, z.shape[-1])
    d = ((z[:, None, :] - e[None, :, :]) ** 2).sum(axis=2)
    tau = distance_bound(dtype, z.shape[1], np.linalg.norm(z, axis=1)[:, None], np.linalg.norm(e, axis=1)[None, :])
    return (d - tau <= (d + tau).min(axis=1, keepdims=True)).reshape(*lead, e.shape[0])


# The dense VQ-VAE (x [batch, input], z_e [batch, embedding]) or the convolutional one (x [batch, C, H, W], z_e
# [batch, H′, W′, embedding] channels-last: the arch binds +input, +output and *positions, issue 15).
ARCH = Arg("arch", "arch", types=(VQArchitecture, ConvVQArchitecture))
PARAMS = Arg("params", "params", differentiable=True)
ENCODER_PARAMS = Arg("params", "params", differentiable=True, layout="encoder")
X = Arg("x", "array", ("batch", INPUT_EVENT), True)
Z_E = Arg("z_e", "array", ("batch", POSITIONS, "embedding"), True)
CODEBOOK = Arg("codebook", "array", ("codes", "embedding"), True, "finite reals, K ≥ 1 rows")
FROZEN_CODEBOOK = Arg("codebook", "array", ("codes", "embedding"), False, "finite reals, K ≥ 1 rows")
FROZEN_Z_E = Arg("z_e", "array", ("batch", POSITIONS, "embedding"), False)
CONVENTION = Arg("convention", "convention")
COMMITMENT_WEIGHT = Arg("commitment_weight", "scalar", domain="w ≥ 0 (default 0.25)", low=0.0)
NUM_EMBEDDINGS = Arg("num_embeddings", "size", ("codes",), domain="K ≥ 1")
EMBEDDING_DIM = Arg("embedding_dim", "size", ("embedding",), domain="D ≥ 1")
INDICES = Arg("indices", "index", ("batch", POSITIONS), domain="0 ≤ index < K", bound="codes")
KEY = Arg("key", "key", domain="a Key or an integer seed in [0, 2⁶⁴)")
EMA_COUNTS = Arg("ema_counts", "array", ("codes",), domain="≥ 0 (biased moving average of counts)", low=0.0)
EMA_SUMS = Arg("ema_sums", "array", ("codes", "embedding"), domain="finite (biased moving average of sums)")
EMA_STEP = Arg("ema_step", "count", domain="integer ≥ 0: updates applied so far")
# decay = 1 is outside: 1 − decayᵗ = 0, and the debiasing divides by it
DECAY = Arg("decay", "scalar", domain="0 ≤ decay < 1 (default 0.99)", low=0.0, high=1.0, exclusive_high=True)
EPSILON = Arg("epsilon", "scalar", domain="ε ≥ 0 (default 1e-5)", low=0.0)
TRAINING = Arg("training", "flag", domain="True or False")
COUNTS = Arg("counts", "array", ("codes",), domain="≥ 0, not all 0", low=0.0)
USAGE = Arg("usage", "index", ("codes",), domain="≥ 0 (codebook_health's usage)")


# ----------------------------------------------------------------------------- domains and chains
def _distances_magnitude(a):
    """max_b (‖z_e[b]‖ + max_k ‖e_k‖)² over the N vectors of z_e: every squared distance, and the aux losses'
    sums, stay below it."""
    z, e = a["z_e"], a["codebook"]
    if z.ndim < 2 or e.ndim != 2:
        raise ShapeError(f"z_e, codebook: expected [batch, *positions, embedding] and [codes, embedding], got shapes "
                         f"{z.shape} and {e.shape}")
    z = z.reshape(-1, z.shape[-1])
    return float(np.max((np.sqrt(np.sum(z * z, axis=1)) + np.sqrt(np.max(np.sum(e * e, axis=1)))) ** 2))


def _distances_refuse(a, m, limit, dtype, n):
    raise DomainError(
        f"{n('z_e')}: the squared distances' magnitude max_b(‖z_e[b]‖ + max_k ‖e_k‖)² must stay ≤ {limit:.4g} (the "
        f"largest value of the dtype distances are computed in) so every ‖z_e − e_k‖² is finite; got max |z_e| = "
        f"{float(np.abs(a['z_e']).max()):.6g}, max |{n('codebook')}| = {float(np.abs(a['codebook']).max()):.6g} "
        f"(magnitude {m:.4g})")


def _distances_limit(dtype: str) -> float:
    """Narrow backends choose codes from float32 distances (the module doc), so float32's largest value."""
    return MAX_FINITE["float32" if dtype in NARROW else dtype]


# z_e [B, *P, D] and the codebook [K, D] are not elementwise operands: no broadcast.
DISTANCES = Domain.bounded(("z_e", "codebook"), _distances_magnitude, _distances_refuse, broadcast=False,
                           limit=_distances_limit)


def _positive_total(function: str, checked: Mapping[str, Any]) -> None:
    if not np.sum(checked["counts"]) > 0:
        raise DomainError("counts: expected a positive total (Laplace smoothing rescales to Σ N), got Σ N = 0")


def _vq_loss_chain(arch, batch):
    """vq_forward, then the reconstruction's feature and batch reductions, the two aux losses (each a mean over
    batch × positions × embedding plus 4 ops) and 8 elementwise ops: 12 rounded results besides the network's."""
    aux = arch.embedding_dim * batch * int(np.prod(network_positions(arch), dtype=np.int64)) + 4
    return total(encoder(arch), STRAIGHT_THROUGH, decoder(arch), (arch.output_size + batch + 2 * aux + 8, 12))


# quantize: the straight-through z_e + (e − z_e), 2 roundings (its index is judged by the near-tie criterion);
# its VJP passes the upstream gradient: the same chain.
_QUANTIZE = CodebookChain(lambda batch, dim, codes: STRAIGHT_THROUGH)
# The auxiliary losses: a mean over batch × dim of squared differences (4 elementwise ops); gradients 2 more.
_AUX = CodebookChain(lambda batch, dim, codes: (batch * dim + 4, 6))
_AUX_VJP = CodebookChain(lambda batch, dim, codes: (batch * dim + 6, 8))

_fns = (
    FunctionSpec("vq_encode", (ARCH, ENCODER_PARAMS, X), (Output("z_e", ("batch", POSITIONS, "embedding")),),
                 "z_e = act(…act(x·W₀ + b₀)…)·W_emb + b_emb (a ConvVQArchitecture: the convolutions, the 1×1 "
                 "convolution to E channels, permuted channels-last to [batch, H′, W′, E])", "vq",
                 chain=NetworkChain(lambda arch, batch: encoder(arch))),
    FunctionSpec("quantize", (Z_E, CODEBOOK),
                 (Output("z_q", ("batch", POSITIONS, "embedding")), Output("indices", ("batch", POSITIONS), "int")),
                 "for each vector b of the N = batch·∏positions: k(b) = argmin_k ‖z_e[b] − e_k‖² (lowest index on "
                 "ties); z_q = z_e + sg(e_k − z_e) "
                 "(value e_k, gradient to z_e is the upstream gradient, none to the codebook)", "vq",
                 domain=DISTANCES, chain=_QUANTIZE, vjp_chain=_QUANTIZE, discrete=True,
                 kink="at an exact tie the lowest index is chosen, and every gradient through the choice (the "
                      "codebook loss's, the EMA's assignment) goes to that code only"),
    FunctionSpec("codebook_loss", (Z_E, CODEBOOK), (Output("loss", ()),),
                 "L_cb = mean_{b,d} (sg(z_e) − e_{k(b)})² over the N·D entries (N = batch·∏positions; gradient to the "
                 "codebook only)", "vq",
                 domain=DISTANCES, chain=_AUX, vjp_chain=_AUX_VJP, discrete=True),
    FunctionSpec("commitment_loss", (Z_E, CODEBOOK), (Output("loss", ()),),
                 "L_commit = mean_{b,d} (z_e − sg(e_{k(b)}))² over the N·D entries (gradient to z_e only)", "vq",
                 domain=DISTANCES, chain=_AUX, vjp_chain=_AUX_VJP, discrete=True),
    FunctionSpec("vq_forward", (ARCH, PARAMS, CODEBOOK, X),
                 (Output("x_hat", ("batch", OUTPUT_EVENT)), Output("indices", ("batch", POSITIONS), "int")),
                 "vq_forward(x) = (decode(z_q), k) with (z_q, k) = quantize(vq_encode(x), C)", "vq",
                 chain=NetworkChain(lambda arch, batch: total(encoder(arch), STRAIGHT_THROUGH, decoder(arch))),
                 discrete=True),
    FunctionSpec("vq_loss", (ARCH, PARAMS, CODEBOOK, X, COMMITMENT_WEIGHT, CONVENTION), (Output("loss", ()),),
                 "loss = R(vq_forward(x), x) + L_cb(z_e, C) + w · L_commit(z_e, C), z_e = vq_encode(x)", "vq",
                 rules=(output_matches_input("compares x̂ with x"),), chain=NetworkChain(_vq_loss_chain),
                 discrete=True),
    FunctionSpec("init_codebook", (NUM_EMBEDDINGS, EMBEDDING_DIM, KEY), (Output("codebook", ("codes", "embedding")),),
                 "C = normal(key, (K, D))[0] ~ N(0, 1), default key 42", "vq", exact=True),
    FunctionSpec("laplace_smooth", (COUNTS, EPSILON), (Output("smoothed", ("codes",)),),
                 "Ñ_k = (N_k + ε) / (Σ_j N_j + K·ε) · Σ_j N_j  (with ε = the EMA's epsilon argument)", "vq",
                 rules=(_positive_total,), chain=CodebookChain(lambda batch, dim, codes: (codes + 4, 4))),
    FunctionSpec("ema_update",
                 (FROZEN_CODEBOOK, EMA_COUNTS, EMA_SUMS, EMA_STEP, FROZEN_Z_E, DECAY, EPSILON, TRAINING),
                 (Output("codebook", ("codes", "embedding")), Output("ema_counts", ("codes",)),
                  Output("ema_sums", ("codes", "embedding")), Output("ema_step", (), "int")),
                 "if not training: unchanged. Else with k = quantize indices, n_k = #{b: k(b) = k} over the N vectors, "
                 "s_k = Σ_{b: k(b)=k} z_e[b], t = step + 1: counts′ = γ·counts + (1−γ)·n, sums′ = γ·sums + (1−γ)·s, "
                 "N̂ = counts′/(1 − γᵗ), Ŝ = sums′/(1 − γᵗ) (debiased), Ñ = laplace_smooth(N̂, ε), "
                 "e′_k = Ŝ_k / Ñ_k where Ñ_k > 0, else e_k unchanged", "vq",
                 # the per-code sum over the batch, the moving average, debiasing, smoothing (a sum over codes)
                 # and the division: batch + codes + 10 roundings
                 domain=DISTANCES, chain=CodebookChain(lambda batch, dim, codes: (batch + codes + 10, 10)),
                 discrete=True),
    FunctionSpec("codebook_health", (INDICES, NUM_EMBEDDINGS),
                 (Output("usage", ("codes",), "int"), Output("perplexity", ()), Output("dead_codes", (), "int")),
                 "usage_k = #{b: k(b) = k} over all N = batch·∏positions indices; p = usage / N; "
                 "perplexity = exp(−Σ_k p_k log p_k) (0 log 0 = 0); "
                 "dead_codes = #{k: usage_k = 0}", "vq",
                 chain=lambda sizes: (sizes["codes"] + 6, 6)),  # the perplexity: K terms p log p, then exp
    FunctionSpec("reset_dead_codes", (FROZEN_CODEBOOK, USAGE, FROZEN_Z_E, KEY),
                 (Output("codebook", ("codes", "embedding")), Output("key", (), "key")),
                 "(j, key′) = randint(key, N, (#dead,)) with N = batch·∏positions; the dead rows (usage 0), in "
                 "increasing index order, become Z[j₀], Z[j₁], … of Z = z_e.reshape(N, D); live rows are unchanged",
                 "vq", exact=True),
)
FUNCTIONS: dict[str, FunctionSpec] = {f.name: f for f in _fns}

# The laws of this chapter; `<function>_matches_reference` and `<function>_gradient_matches_reference`
# are added for every function by `vaespec.spec.laws`.
_laws = (
    Law("quantize_nearest_code_within_bound", "every chosen index satisfies the near-tie "
                                              "criterion: " + NEAR_TIE_CRITERION,
        ("quantize",), "finite z_e and codebook, K ≥ 1", "criterion", "vq"),
    Law("quantize_output_is_codebook_row", "z_q[b] = codebook[indices[b]] (up to the straight-through rounding "
        "z_e + (e − z_e), at most 2 roundings of |z_e| + |e|)", ("quantize",), "any input", "roundoff", "vq"),
    Law("quantize_ties_to_lowest_index", "if rows i < j of the codebook are at exactly the same distance from a "
        "vector of z_e, at any position, and nearest, its index is i (checked on small-integer data, where every "
        "form computes distances exactly)",
        ("quantize",), "integer entries in [−2, 2], D ≤ 8, duplicated rows, z_e [B, *positions, D] with ≤ 2 "
        "position axes", "exact", "vq"),
    Law("quantize_idempotent", "quantize(z_q, C) returns z_q again: its index is acceptable for z_q and, where the "
        "margin exceeds the bound, the output equals z_q", ("quantize",), "any input", "criterion", "vq"),
    Law("quantize_codebook_permutation_equivariance", "permuting the codebook rows by π maps each index k to "
        "π⁻¹(k) and leaves z_q unchanged (where the margin exceeds the bound)", ("quantize",), "K ≥ 2",
        "criterion", "vq"),
    Law("quantize_translation_invariance", "translating z_e and every codebook row by the same vector v leaves "
        "the indices unchanged (where the margin exceeds the bound in both problems)", ("quantize",),
        "|v| ≤ 10", "criterion", "vq"),
    Law("quantize_straight_through_gradient", "the vjp of quantize gives z_e exactly the upstream gradient of z_q "
        "and the codebook exactly 0", ("quantize",), "any input", "exact", "vq"),
    Law("aux_losses_zero_at_codebook_rows", "z_e made of codebook rows ⇒ codebook_loss = commitment_loss = 0 "
        "(up to the distance bound where another row is within it)", ("codebook_loss", "commitment_loss"),
        "any codebook", "roundoff", "vq"),
    Law("codebook_loss_eq_commitment_loss", "codebook_loss(z_e, C) = commitment_loss(z_e, C) in value: they differ "
        "only in where the stop-gradient sits", ("codebook_loss", "commitment_loss"), "any input", "roundoff", "vq"),
    Law("codebook_loss_gradient_reaches_codebook_only", "d codebook_loss / d z_e = 0 exactly, and the codebook "
        "receives what the encoder would: d/d e_k codebook_loss = −Σ_{b: k(b)=k} d/d z_e[b] commitment_loss",
        ("codebook_loss", "commitment_loss", "quantize"), "any input", "roundoff", "vq"),
    Law("commitment_loss_gradient_reaches_encoder_only", "d commitment_loss / d C = 0 exactly, and "
        "d/d z_e commitment_loss = 2 (z_e − z_q) / (N·D) with z_q from quantize (N = batch·∏positions)",
        ("commitment_loss", "quantize"), "any input", "roundoff", "vq"),
    Law("vq_forward_eq_decode_quantize_encode", "vq_forward(x) = (decode(z_q), k) with (z_q, k) = "
        "quantize(vq_encode(x), C)", ("vq_forward", "decode", "quantize", "vq_encode"), "any architecture",
        "roundoff", "vq"),
    Law("vq_loss_eq_reconstruction_add_codebook_add_commitment",
        "vq_loss = R(vq_forward(x), x) + codebook_loss(z_e, C) + w · commitment_loss(z_e, C), z_e = vq_encode(x)",
        ("vq_loss", "reconstruction_loss", "codebook_loss", "commitment_loss", "vq_forward", "vq_encode"),
        "w ≥ 0, every convention preset", "roundoff", "vq"),
    Law("ema_kmeans_step", "with ε = 0, an EMA update with decay 0 (any state), or from a fresh state (any decay), "
        "is one k-means step: each used code moves to the mean of its assigned z_e, unused codes keep their rows. "
        "(Debiasing scales sums and counts alike, so with ε = 0 it cancels; ema_update_matches_reference checks it "
        "at ε > 0.)", ("ema_update", "quantize"), "0 ≤ decay < 1", "roundoff", "vq"),
    Law("ema_eval_mode_leaves_codebook_unchanged", "ema_update(…, training=False) returns the codebook and the "
        "EMA state unchanged", ("ema_update",), "any state", "exact", "vq"),
    Law("laplace_smoothing_preserves_total_count", "Σ_k laplace_smooth(N, ε)_k = Σ_k N_k, and every smoothed "
        "count is > 0 when ε > 0", ("laplace_smooth",), "N ≥ 0, ΣN > 0, ε = 0 or ε ≥ 1e-5 (smaller ε underflows in "
                                                        "narrow arithmetic)",
        "roundoff", "vq"),
    Law("codebook_health_usage_sums_to_batch", "Σ usage = N (batch·∏positions, every index counted), "
        "usage_k = #{b: indices[b] = k}, dead_codes = "
        "#{k: usage_k = 0}", ("codebook_health",), "any indices", "exact", "vq"),
    Law("perplexity_in_one_to_num_codes", "1 ≤ perplexity ≤ K; = 1 when one code is used, = K when all K are "
        "used equally often", ("codebook_health",), "any indices", "roundoff", "vq"),
    Law("reset_dead_codes_keeps_live_codes", "live rows are unchanged, each dead row becomes some row of z_e, and "
        "the result is a function of the key (same key, same codebook)", ("reset_dead_codes",), "any usage",
        "exact", "vq"),
    Law("quantize_positions_eq_quantize_rows", "quantizing z_e [B, *positions, D] equals quantizing its N = "
        "B·∏positions vectors z_e.reshape(N, D) and reshaping back: the indices agree on every vector with a clear "
        "nearest code (both judged by the near-tie criterion), z_q within both straight-through roundings",
        ("quantize",), "positions = () or 1–2 position axes", "criterion", "vq"),
    Law("aux_losses_positions_eq_rows", "codebook_loss and commitment_loss of z_e [B, *positions, D] equal those "
        "of z_e.reshape(N, D) (a mean over all N·D entries), and so do their gradients, reshaped",
        ("codebook_loss", "commitment_loss"), "positions = () or 1–2 position axes", "roundoff", "vq"),
    Law("ema_update_positions_eq_rows", "ema_update with z_e [B, *positions, D] equals ema_update with "
        "z_e.reshape(N, D): every vector is counted and summed", ("ema_update",),
        "positions = () or 1–2 position axes", "roundoff", "vq"),
    Law("codebook_health_positions_eq_rows", "codebook_health of indices [B, *positions] equals codebook_health "
        "of indices.reshape(N): usage and dead codes exactly, the perplexity within its bound",
        ("codebook_health",), "positions = () or 1–2 position axes", "roundoff", "vq"),
    Law("init_codebook_deterministic_given_key", "init_codebook(K, D, key) is the same array on every call and "
        "different keys give different codebooks; on vaespec's key stream (a backend declaring key_stream = "
        "'vaespec') it equals normal(key, (K, D))[0]", ("init_codebook",),
        "K, D ≥ 1", "exact", "vq"),
)
LAWS: dict[str, Law] = {law.name: law for law in _laws}


@runtime_checkable
class VQBackend(Protocol):
    """What a VQ-VAE implementation provides (declare `chapters = ("vq",)` or `("vae", "vq")`).

    Same conventions as `VAEBackend`: float64 numpy in and out, integer indices as int64
    arrays; `z_e` [batch, *positions, embedding] channels-last with indices [batch, *positions] (the
    network functions' z_e is the dense network's [batch, embedding], or a `ConvVQArchitecture`'s
    [batch, H′, W′, embedding] with x [batch, C, H, W]), `vjp(function, args, cotangent)`
    for the differentiable functions (the cotangent covers the float outputs only: an array for `quantize`
    and `vq_forward`). `decode` and `reconstruction_loss` are the VAE chapter's functions, used with a
    `VQArchitecture` (or a `ConvVQArchitecture`: decode takes z_q [batch, H′, W′, E]).
    """

    name: str
    device: str
    dtype: str

    def vq_encode(self, arch: VQArchitecture | ConvVQArchitecture, params: Mapping[str, np.ndarray],
                  x: Float[np.ndarray, "batch ..."]) -> Float[np.ndarray, "batch *positions embedding"]: ...

    def quantize(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                 codebook: Float[np.ndarray, "codes embedding"]
                 ) -> tuple[Float[np.ndarray, "batch *positions embedding"], Int[np.ndarray, " batch *positions"]]: ...

    def codebook_loss(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                      codebook: Float[np.ndarray, "codes embedding"]) -> Float[np.ndarray, ""]: ...

    def commitment_loss(self, z_e: Float[np.ndarray, "batch *positions embedding"],
                        codebook: Float[np.ndarray, "codes embedding"]) -> Float[np.ndarray, ""]: ...

    def vq_forward(self, arch: VQArchitecture | ConvVQArchitecture, params: Mapping[str, np.ndarray],
                   codebook: Float[np.ndarray, "codes embedding"], x: Float[np.ndarray, "batch ..."]
                   ) -> tuple[Float[np.ndarray, "batch ..."], Int[np.ndarray, " batch *positions"]]: ...

    def vq_loss(self, arch: VQArchitecture | ConvVQArchitecture, params: Mapping[str, np.ndarray],
                codebook: Float[np.ndarray, "codes embedding"], x: Float[np.ndarray, "batch ..."],
                commitment_weight: float, convention: Convention) -> Float[np.ndarray, ""]: ...

    def init_codebook(self, num_embeddings: int, embedding_dim: int, key: Key | int
                      ) -> Float[np.ndarray, "codes embedding"]: ...

    def laplace_smooth(self, counts: Float[np.ndarray, " codes"], epsilon: float) -> Float[np.ndarray, " codes"]: ...

    def ema_update(self, codebook: Float[np.ndarray, "codes embedding"], ema_counts: Float[np.ndarray, " codes"],
                   ema_sums: Float[np.ndarray, "codes embedding"], ema_step: int,
                   z_e: Float[np.ndarray, "batch embedding"], decay: float, epsilon: float,
                   training: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]: ...

    def codebook_health(self, indices: Int[np.ndarray, " batch *positions"], num_embeddings: int
                        ) -> tuple[Int[np.ndarray, " codes"], float, int]: ...

    def reset_dead_codes(self, codebook: Float[np.ndarray, "codes embedding"], usage: Int[np.ndarray, " codes"],
                         z_e: Float[np.ndarray, "batch embedding"], key: Key | int) -> tuple[np.ndarray, Key]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]: ...
