"""`vaespec.spec.tolerances.function_bound` gives every function of every chapter the rounding chain the
three former code paths gave it (`checking.function_bound` with `chain_length`/`reduction_length` for the
VAE chapter, `laws.checking_vq.vq_bound` with `vq_chain_length` for the VQ chapter, the chapters' own
`chain_length` for estimators and bayes), at several shapes, forward and VJP.

`OLD` was recorded from those code paths on main (94ecc5d), before the chains moved into the
declarations (`FunctionSpec.chain`); it is frozen here so the comparison can still fail after the
old tables are gone."""

from __future__ import annotations

import numpy as np
import pytest

from vaespec.reference import init_params
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError, DTypeError
from vaespec.spec.tolerances import bound, chain_length, function_bound, reduction_length, vq_chain_length

VAE_ARCHS = {"small": Architecture(4, 2, (3,), (3,)), "default": Architecture(784),
             "deep": Architecture(6, 3, (5, 4, 7), (2,), "tanh", output_size=9)}
VQ_ARCHS = {"small": VQArchitecture(4, embedding_dim=2, num_embeddings=5, encoder_sizes=(3,), decoder_sizes=(3,)),
            "wide": VQArchitecture(7, embedding_dim=6, num_embeddings=11, encoder_sizes=(8, 5), decoder_sizes=(4,))}
BATCHES = (1, 64)


def _vae(arch, batch, rng, likelihood="gaussian"):
    n = lambda *shape: rng.standard_normal(shape) * 0.5  # noqa: E731
    return {"arch": arch, "params": init_params(arch, 0), "x": n(batch, arch.input_size),
            "z": n(batch, arch.latent_size), "eps": n(batch, arch.latent_size), "mu": n(batch, arch.latent_size),
            "log_var": n(batch, arch.latent_size), "x_hat": n(batch, arch.output_size), "beta": 0.5,
            "convention": "elbo"}


def _vq(arch, batch, rng):
    n = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    codes, dim = arch.num_embeddings, arch.embedding_dim
    return {"arch": arch, "params": init_params(arch, 0), "x": n(batch, arch.input_size), "z": n(batch, dim),
            "z_e": n(batch, dim), "codebook": n(codes, dim), "commitment_weight": 0.25, "convention": "edifice",
            "num_embeddings": codes, "embedding_dim": dim, "key": 7, "ema_counts": np.ones(codes),
            "ema_sums": n(codes, dim), "ema_step": 3, "decay": 0.99, "epsilon": 1e-5, "training": True,
            "counts": np.arange(1.0, codes + 1.0), "indices": rng.integers(0, codes, batch),
            "usage": rng.integers(0, 3, codes)}


def _estimators(arch, batch, particles, likelihood, rng):
    n = lambda *shape: rng.standard_normal(shape) * 0.5  # noqa: E731
    out = arch.output_size
    return {"arch": arch, "params": init_params(arch, 0), "x": rng.random((batch, arch.input_size)),
            "x_hat": n(batch, out), "log_var": n(batch, out), "logits": n(batch, out),
            "log_weights": n(particles, batch), "eps": n(particles, batch, arch.latent_size),
            "decoder_log_var": np.zeros(out), "likelihood": likelihood, "table": n(5, 3),
            "indices": rng.integers(0, 5, batch)}


def _bayes(output, latent, batch, rng):
    return {"x": rng.standard_normal((batch, output)), "weight": rng.standard_normal((output, latent)) * 0.5,
            "bias": rng.standard_normal(output), "noise_log_var": -1.0}


def cases():
    """(function, label, args): every function at each shape, with only its own arguments."""
    rng = np.random.default_rng(0)
    out = []

    def add(function, label, pool):
        out.append((function, label, {a.name: pool[a.name] for a in FUNCTIONS[function].args}))

    for name, arch in VAE_ARCHS.items():
        for batch in BATCHES:
            pool = _vae(arch, batch, rng)
            target = {**pool, "x": rng.standard_normal((batch, arch.output_size))}  # R(x̂, x) compares outputs
            for function, spec in FUNCTIONS.items():
                if spec.chapter == "vae" and (function != "loss" or arch.output_size == arch.input_size):
                    add(function, f"{name}-b{batch}", target if function == "reconstruction_loss" else pool)
    for name, arch in VQ_ARCHS.items():
        for batch in BATCHES:
            pool = _vq(arch, batch, rng)
            for function, spec in FUNCTIONS.items():
                if spec.chapter == "vq":
                    add(function, f"{name}-b{batch}", pool)
    for name, batch, particles, likelihood in (("small", 1, 1, "gaussian"), ("small", 3, 4, "bernoulli"),
                                               ("default", 3, 4, "gaussian"), ("default", 1, 4, "bernoulli")):
        pool = _estimators(VAE_ARCHS[name], batch, particles, likelihood, rng)
        for function, spec in FUNCTIONS.items():
            if spec.chapter == "estimators":
                add(function, f"{name}-b{batch}-k{particles}-{likelihood}", pool)
    for output, latent in ((4, 2), (5, 5), (3, 1)):
        for batch in (1, 3):
            pool = _bayes(output, latent, batch, rng)
            for function, spec in FUNCTIONS.items():
                if spec.chapter == "bayes":
                    add(function, f"d{output}-l{latent}-b{batch}", pool)
    return out


# function, shape label, forward (n, n_ops) and, for a differentiable function, the VJP's: recorded from the
# former code paths (module docstring).
_ROWS = """
bernoulli_log_likelihood default-b1-k4-bernoulli 792 8 1585 17
bernoulli_log_likelihood default-b3-k4-gaussian 792 8 1587 17
bernoulli_log_likelihood small-b1-k1-gaussian 12 8 25 17
bernoulli_log_likelihood small-b3-k4-bernoulli 12 8 27 17
codebook_loss small-b1 6 6 8 8
codebook_loss small-b64 132 6 134 8
codebook_loss wide-b1 10 6 12 8
codebook_loss wide-b64 388 6 390 8
commitment_loss small-b1 6 6 8 8
commitment_loss small-b64 132 6 134 8
commitment_loss wide-b1 10 6 12 8
commitment_loss wide-b64 388 6 390 8
decode deep-b1 9 6 19 13
decode deep-b64 9 6 82 13
decode default-b1 422 9 845 19
decode default-b64 422 9 908 19
decode small-b1 9 6 19 13
decode small-b64 9 6 82 13
elbo default-b1-k4-bernoulli 2436 38 4876 77
elbo default-b3-k4-gaussian 2436 38 4884 77
elbo small-b1-k1-gaussian 47 32 95 65
elbo small-b3-k4-bernoulli 50 32 112 65
ema_update small-b1 16 10
ema_update small-b64 79 10
ema_update wide-b1 22 10
ema_update wide-b64 85 10
embedding_lookup default-b1-k4-bernoulli 1 1 3 3
embedding_lookup default-b3-k4-gaussian 1 1 5 3
embedding_lookup small-b1-k1-gaussian 1 1 3 3
embedding_lookup small-b3-k4-bernoulli 1 1 5 3
encode deep-b1 30 12 61 25
encode deep-b64 30 12 124 25
encode default-b1 1174 9 2349 19
encode default-b64 1174 9 2412 19
encode small-b1 11 6 23 13
encode small-b64 11 6 86 13
forward deep-b1 43 22 87 45
forward deep-b64 43 22 150 45
forward default-b1 1600 22 3201 45
forward default-b64 1600 22 3264 45
forward small-b1 24 16 49 33
forward small-b64 24 16 112 33
gaussian_log_likelihood default-b1-k4-bernoulli 792 8 1585 17
gaussian_log_likelihood default-b3-k4-gaussian 792 8 1587 17
gaussian_log_likelihood small-b1-k1-gaussian 12 8 25 17
gaussian_log_likelihood small-b3-k4-bernoulli 12 8 27 17
generate deep-b1 9 6 19 13
generate deep-b64 9 6 82 13
generate default-b1 422 9 845 19
generate default-b64 422 9 908 19
generate small-b1 9 6 19 13
generate small-b64 9 6 82 13
iwae_bound default-b1-k4-bernoulli 2441 43 4886 87
iwae_bound default-b3-k4-gaussian 2441 43 4894 87
iwae_bound small-b1-k1-gaussian 52 37 105 75
iwae_bound small-b3-k4-bernoulli 55 37 122 75
kl_divergence deep-b1 8 6 10 8
kl_divergence deep-b64 71 6 73 8
kl_divergence default-b1 37 6 39 8
kl_divergence default-b64 100 6 102 8
kl_divergence small-b1 7 6 9 8
kl_divergence small-b64 70 6 72 8
laplace_smooth small-b1 9 4
laplace_smooth small-b64 9 4
laplace_smooth wide-b1 15 4
laplace_smooth wide-b64 15 4
linear_gaussian_log_evidence d3-l1-b1 26 10 53 21
linear_gaussian_log_evidence d3-l1-b3 26 10 55 21
linear_gaussian_log_evidence d4-l2-b1 32 10 65 21
linear_gaussian_log_evidence d4-l2-b3 32 10 67 21
linear_gaussian_log_evidence d5-l5-b1 40 10 81 21
linear_gaussian_log_evidence d5-l5-b3 40 10 83 21
linear_gaussian_posterior d3-l1-b1 26 10 53 21
linear_gaussian_posterior d3-l1-b3 26 10 55 21
linear_gaussian_posterior d4-l2-b1 32 10 65 21
linear_gaussian_posterior d4-l2-b3 32 10 67 21
linear_gaussian_posterior d5-l5-b1 40 10 81 21
linear_gaussian_posterior d5-l5-b3 40 10 83 21
log_importance_weights default-b1-k4-bernoulli 2431 37 4866 75
log_importance_weights default-b3-k4-gaussian 2431 37 4874 75
log_importance_weights small-b1-k1-gaussian 45 31 91 63
log_importance_weights small-b3-k4-bernoulli 45 31 102 63
log_mean_exp default-b1-k4-bernoulli 10 6 21 13
log_mean_exp default-b3-k4-gaussian 10 6 23 13
log_mean_exp small-b1-k1-gaussian 7 6 15 13
log_mean_exp small-b3-k4-bernoulli 10 6 23 13
loss default-b1 2425 30 4851 61
loss default-b64 2488 30 5040 61
loss small-b1 39 24 79 49
loss small-b64 102 24 268 49
quantize small-b1 2 2 2 2
quantize small-b64 2 2 2 2
quantize wide-b1 2 2 2 2
quantize wide-b64 2 2 2 2
reconstruct default-b1-k4-bernoulli 1596 18 3193 37
reconstruct default-b3-k4-gaussian 1596 18 3195 37
reconstruct small-b1-k1-gaussian 20 12 41 25
reconstruct small-b3-k4-bernoulli 20 12 43 25
reconstruction_loss deep-b1 14 6 16 8
reconstruction_loss deep-b64 77 6 79 8
reconstruction_loss default-b1 789 6 791 8
reconstruction_loss default-b64 852 6 854 8
reconstruction_loss small-b1 9 6 11 8
reconstruction_loss small-b64 72 6 74 8
reparameterize deep-b1 4 4 9 9
reparameterize deep-b64 4 4 72 9
reparameterize default-b1 4 4 9 9
reparameterize default-b64 4 4 72 9
reparameterize small-b1 4 4 9 9
reparameterize small-b64 4 4 72 9
sample_latent deep-b1 34 16 69 33
sample_latent deep-b64 34 16 132 33
sample_latent default-b1 1178 13 2357 27
sample_latent default-b64 1178 13 2420 27
sample_latent small-b1 15 10 31 21
sample_latent small-b64 15 10 94 21
vq_encode small-b1 11 6 23 13
vq_encode small-b64 11 6 86 13
vq_encode wide-b1 26 9 53 19
vq_encode wide-b64 26 9 116 19
vq_forward small-b1 22 14 45 29
vq_forward small-b64 22 14 108 29
vq_forward wide-b1 42 17 85 35
vq_forward wide-b64 42 17 148 35
vq_loss small-b1 47 26 95 53
vq_loss small-b64 362 26 788 53
vq_loss wide-b1 78 29 157 59
vq_loss wide-b64 897 29 1858 59
"""


def _old() -> dict[tuple[str, str, bool], tuple[int, int]]:
    table = {}
    for line in _ROWS.strip().splitlines():
        function, label, *cells = line.split()
        numbers = [int(c) for c in cells]
        table[function, label, False] = tuple(numbers[:2])
        if numbers[2:]:
            table[function, label, True] = tuple(numbers[2:])
    return table


OLD = _old()


CASES = cases()


@pytest.mark.parametrize("function, label, vjp", sorted(OLD), ids=[f"{f}-{l}-{'vjp' if v else 'fwd'}"
                                                                    for f, l, v in sorted(OLD)])
def test_function_bound_keeps_every_former_chain(function, label, vjp):
    args = next(a for f, l, a in CASES if f == function and l == label)
    n, ops = OLD[function, label, vjp]
    assert FUNCTIONS[function].rounding_chain(args, vjp=vjp) == (n, ops)
    for dtype in ("float64", "float32", "bfloat16", "float16"):
        assert function_bound(dtype, function, args, vjp=vjp) == bound(dtype, n, ops)


# Chapters declared after OLD was recorded: their chains have no "before" to agree with, and are pinned by their own
# tests (test_quantizers_reference.test_chains_at_chosen_sizes).
LATER_CHAPTERS = ("quantizers",)


def test_every_function_with_a_roundoff_law_is_compared():
    """Every function but the exact ones (init_codebook, reset_dead_codes) has a chain, and every one is in
    OLD for every chapter's shapes, forward and (where differentiable) VJP; codebook_health's perplexity
    chain is new (it was written out in its laws) and is pinned by its formula."""
    compared = {(f, v) for f, _, v in OLD}
    for function, spec in FUNCTIONS.items():
        if spec.chain is None:
            assert spec.exact, function
            continue
        if function == "codebook_health" or spec.chapter in LATER_CHAPTERS:
            continue
        assert (function, False) in compared, function
        assert not spec.differentiable or (function, True) in compared, function
    args = next(a for f, _, a in CASES if f == "codebook_health")
    assert FUNCTIONS["codebook_health"].rounding_chain(args) == (args["num_embeddings"] + 6, 6)


def test_legacy_chain_helpers_read_the_declarations():
    arch, vq_arch = VAE_ARCHS["small"], VQ_ARCHS["small"]
    assert chain_length("forward", Architecture(input_size=784), 64) == (1600, 22)
    assert chain_length("loss_vjp", arch, 64) == tuple(OLD["loss", "small-b64", True])
    assert chain_length("reparameterize", None, 5) == (4, 4)
    assert chain_length("vq_loss", vq_arch, 64) == tuple(OLD["vq_loss", "small-b64", False])
    assert chain_length("decode", vq_arch, 3) == chain_length("decode", Architecture(4, 2, (3,), (3,)), 3)
    assert vq_chain_length("codebook_loss_vjp", 64, 2, 5) == tuple(OLD["codebook_loss", "small-b64", True])
    assert vq_chain_length("laplace_smooth", 1, 1, 5) == (9, 4)
    assert reduction_length(3, 4) == (11, 6)
    with pytest.raises(ConfigError, match="no chain length for 'kl_divergence'; losses on direct inputs"):
        chain_length("kl_divergence", arch, 3)
    with pytest.raises(ConfigError, match="arch: encode's chain runs through the network"):
        chain_length("encode", None, 3)
    with pytest.raises(DTypeError, match="arch: vq_encode needs a VQArchitecture"):
        chain_length("vq_encode", arch, 3)
    with pytest.raises(ConfigError, match="no VQ reduction length for 'vq_loss'"):
        vq_chain_length("vq_loss", 3, 2, 5)


def test_function_bound_names_bad_arguments():
    args = next(a for f, _, a in CASES if f == "kl_divergence")
    with pytest.raises(ConfigError, match=r"function: expected one of \["):
        function_bound("float32", "kl_divergence_vjp", args)
    with pytest.raises(ConfigError, match="dtype: expected one of"):
        function_bound("float8", "kl_divergence", args)
    with pytest.raises(ConfigError, match="init_codebook has no rounding chain"):
        function_bound("float32", "init_codebook", {"num_embeddings": 3, "embedding_dim": 2, "key": 1})
    with pytest.raises(ConfigError, match="vjp: laplace_smooth has no differentiable argument"):
        function_bound("float32", "laplace_smooth", {"counts": np.ones(3), "epsilon": 1e-5}, vjp=True)
    with pytest.raises(DTypeError, match="vjp: expected True or False"):
        function_bound("float32", "kl_divergence", args, vjp="yes")


def test_a_new_declaration_is_all_the_spec_needs(monkeypatch):
    """A function added to FUNCTIONS (here a scaled KL, declared as the VAE chapter's are) is validated, has
    its domain checked and gets its bound with no other edit in spec/: they read the declaration only."""
    from vaespec.spec import vae
    from vaespec.spec.contract import validate_args, validate_vjp
    from vaespec.spec.domains import check_domain, magnitudes
    from vaespec.spec.errors import DomainError
    from vaespec.spec.signature import FunctionSpec, Output

    spec = FunctionSpec("scaled_kl", (vae.MU, vae.LOG_VAR, vae.BETA, vae.CONVENTION), (Output("kl", ()),),
                        "β · KL(μ, lv)", domain=vae.KL_DOMAIN, chain=lambda s: reduction_length(s["batch"],
                                                                                               s["latent"]))
    monkeypatch.setitem(FUNCTIONS, "scaled_kl", spec)
    args = {"mu": np.zeros((3, 2)), "log_var": np.zeros((3, 2)), "beta": 2.0, "convention": "elbo"}
    assert validate_args("scaled_kl", args)["beta"] == 2.0
    assert validate_vjp("scaled_kl", args, 1.0)[1] == (1.0,)
    assert function_bound("float32", "scaled_kl", args) == bound("float32", 9, 6)
    assert function_bound("float32", "scaled_kl", args, vjp=True) == bound("float32", 2 * 9 + 3, 13)
    assert magnitudes("scaled_kl", args) == 12.0
    with pytest.raises(DomainError, match="log_var: the KL's magnitude"):
        check_domain("scaled_kl", {**args, "log_var": np.full((3, 2), 90.0)}, "float32")
    with pytest.raises(DomainError, match="beta: expected a finite number"):
        validate_args("scaled_kl", {**args, "beta": -1.0})
