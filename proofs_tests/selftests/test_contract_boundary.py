"""Bad input at the contract boundary: vaespec's own backends raise a vaespec error naming
the argument, for every contract function (the reference and the Torch backend alike)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import TorchBackend
from vaespec.reference import ReferenceBackend
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS, call, validate_args
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError, VaespecError
from vaespec.spec.init import init_params

ARCH = Architecture(4, 2, (3,), (3,))
VQ_ARCH = VQArchitecture(4, embedding_dim=2, num_embeddings=5, encoder_sizes=(3,), decoder_sizes=(3,))
BACKENDS = [ReferenceBackend(), TorchBackend("cpu", torch.float32)]
CHAPTERS = ("vae", "vq")  # the chapters both of vaespec's own backends serve; estimators test their own


def _valid(function):
    rng = np.random.default_rng(0)
    if FUNCTIONS[function].chapter == "vq":
        pool = {"arch": VQ_ARCH, "params": init_params(VQ_ARCH, 0), "x": rng.standard_normal((3, 4)),
                "z_e": rng.standard_normal((3, 2)), "codebook": rng.standard_normal((5, 2)), "commitment_weight": 0.25,
                "convention": "edifice", "num_embeddings": 5, "embedding_dim": 2, "key": 7,
                "ema_counts": np.ones(5), "ema_sums": rng.standard_normal((5, 2)), "ema_step": 3, "decay": 0.99,
                "epsilon": 1e-5, "training": True, "counts": np.arange(5.0), "indices": np.array([0, 4, 4]),
                "usage": np.array([1, 0, 0, 0, 2])}
    else:
        pool = {"arch": ARCH, "params": init_params(ARCH, 0), "x": rng.standard_normal((3, 4)),
                "z": rng.standard_normal((3, 2)), "eps": rng.standard_normal((3, 2)), "mu": rng.standard_normal((3, 2)),
                "log_var": rng.standard_normal((3, 2)), "x_hat": rng.standard_normal((3, 4)), "beta": 1.0,
                "convention": "edifice"}
    return {a.name: pool[a.name] for a in FUNCTIONS[function].args}


def _arrays(function):
    return [a.name for a in FUNCTIONS[function].args if a.kind == "array"]


# Functions with array arguments, in the chapters vaespec's backends serve; "wrong size" needs a second
# argument (an arch or an earlier array) to bind the size it breaks.
CHECKED = sorted(f for f, spec in FUNCTIONS.items() if spec.chapter in CHAPTERS and _arrays(f))
SIZED = [f for f in CHECKED if len(_arrays(f)) > 1 or "arch" in _valid(f)]


def _target(function, case):
    """The argument a case breaks. A size mismatch is reported on the array that disagrees with
    the sizes bound before it (by `arch` or by earlier arrays), so it breaks the last array."""
    arrays = _arrays(function)
    return arrays[-1] if case == "wrong size" else arrays[0]


# (case, mutate(args, array_name) -> args, error, message pattern with {name})
CASES = [
    # rank 1 for a matrix (z_e [batch, *positions, embedding] takes any rank ≥ 2), an extra axis for a vector
    ("wrong rank", lambda a, n: {**a, n: a[n].reshape(-1) if a[n].ndim >= 2 else a[n][..., None]}, ShapeError,
     r"{name}: expected rank (at least )?\d"),
    ("wrong size", lambda a, n: {**a, n: np.zeros((3, 7))}, ShapeError, r"{name}: dimension '[*+]?\w+' \(axis 1\)"),
    ("empty", lambda a, n: {**a, n: a[n][:0]}, ShapeError, r"{name}: dimension '\w+' \(axis 0\) is empty"),
    ("NaN", lambda a, n: {**a, n: np.full_like(a[n], np.nan)}, DomainError, r"{name}: expected finite values"),
    ("integer dtype", lambda a, n: {**a, n: a[n].astype(np.int64)}, DTypeError, r"{name}: expected a floating-point"),
    ("list", lambda a, n: {**a, n: a[n].tolist()}, DTypeError, r"{name}: expected a numpy array"),
]


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
@pytest.mark.parametrize("function, case, mutate, error, pattern",
                         [(f, *c) for f in CHECKED for c in CASES if c[0] != "wrong size" or f in SIZED],
                         ids=[f"{f}-{c[0]}" for f in CHECKED for c in CASES if c[0] != "wrong size" or f in SIZED])
def test_bad_array_named(own, function, case, mutate, error, pattern):
    name = _target(function, case)
    with pytest.raises(error, match=pattern.format(name=name)):
        call(own, function, mutate(_valid(function), name))


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
@pytest.mark.parametrize("beta, error", [(-0.5, DomainError), (float("nan"), DomainError), ("1", DTypeError)])
def test_bad_beta_named(own, beta, error):
    with pytest.raises(error, match="beta"):
        call(own, "loss", {**_valid("loss"), "beta": beta})


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
def test_unknown_convention_and_missing_params(own):
    with pytest.raises(ConfigError, match="convention"):
        call(own, "kl_divergence", {**_valid("kl_divergence"), "convention": "pythea"})
    with pytest.raises(ShapeError, match=r"params.*missing \['decoder"):
        call(own, "decode", {**_valid("decode"), "params": {}})


# VQ input the issue names: a codebook of the wrong width, an empty codebook, NaN, indices out of range,
# decay 1 (the debiasing would divide by 1 − 1ᵗ = 0), a negative count.
VQ_CASES = [
    ("quantize", {"codebook": np.zeros((5, 3))}, ShapeError, r"codebook: dimension 'embedding' \(axis 1\) must be 2"),
    ("quantize", {"codebook": np.zeros((0, 2))}, ShapeError, r"codebook: dimension 'codes' \(axis 0\) is empty"),
    ("codebook_loss", {"z_e": np.full((3, 2), np.nan)}, DomainError, r"z_e: expected finite values"),
    ("vq_forward", {"codebook": np.zeros((4, 2))}, ShapeError, r"codebook: dimension 'codes' \(axis 0\) must be 5"),
    ("codebook_health", {"indices": np.array([0, 5, 1])}, DomainError, r"indices: expected integers in \[0, 5\)"),
    ("codebook_health", {"indices": np.array([0.0, 1.0])}, DTypeError, r"indices: expected an integer array"),
    ("ema_update", {"decay": 1.0}, DomainError, r"decay: expected 0 ≤ decay < 1"),
    ("ema_update", {"ema_counts": -np.ones(5)}, DomainError, r"ema_counts: expected values ≥ 0"),
    ("ema_update", {"training": 1}, DTypeError, r"training: expected True or False"),
    ("laplace_smooth", {"counts": np.zeros(5)}, DomainError, r"counts: expected a positive total"),
    ("init_codebook", {"num_embeddings": 0}, ConfigError, r"num_embeddings: expected a positive integer"),
    ("reset_dead_codes", {"key": -1}, ConfigError, r"key: expected a seed in \[0, 2\*\*64\)"),
    ("vq_loss", {"arch": ARCH}, DTypeError,
     (r"arch: expected a vaespec.spec.architecture.VQArchitecture or vaespec.spec.conv_vq.ConvVQArchitecture "
      r"\(for vq_loss\)")),
]


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
@pytest.mark.parametrize("function, change, error, pattern", VQ_CASES,
                         ids=[f"{c[0]}-{next(iter(c[1]))}" for c in VQ_CASES])
def test_bad_vq_input_named(own, function, change, error, pattern):
    with pytest.raises(error, match=pattern):
        call(own, function, {**_valid(function), **change})


def test_validate_args_accepts_valid_input_for_every_function():
    for function in (f for f, spec in FUNCTIONS.items() if spec.chapter in CHAPTERS):
        checked = validate_args(function, _valid(function))
        assert set(checked) == {a.name for a in FUNCTIONS[function].args}


def test_every_error_is_a_vaespec_error_and_a_builtin():
    for error in (ShapeError, DomainError, ConfigError):
        assert issubclass(error, VaespecError) and issubclass(error, ValueError)
    assert issubclass(DTypeError, VaespecError) and issubclass(DTypeError, TypeError)


# Issue 14's repros, one per root cause: each now ends in a vaespec error naming the argument, or converts as stated.
def test_masked_arrays_and_matrices_are_refused_not_misread():
    lv = np.zeros((3, 2))
    lv[0, 0] = np.nan
    for own in BACKENDS:
        with pytest.raises(DTypeError, match="log_var: expected a plain numpy array.*masked"):
            own.kl_divergence(np.ones((3, 2)), np.ma.masked_invalid(lv), "elbo")
        square = np.matrix(np.ones((2, 2)))
        with pytest.raises(DTypeError, match=r"mu: expected a plain numpy array.*numpy\.matrix"):
            own.reparameterize(square, square, square)


def test_narrow_float_input_is_widened_exactly_and_the_reference_returns_float64():
    rng = np.random.default_rng(3)
    mu, lv, eps = (rng.standard_normal((3, 2)).astype(np.float16) for _ in range(3))
    z = ReferenceBackend().reparameterize(mu, lv, eps)
    assert z.dtype == np.float64
    assert np.array_equal(z, ReferenceBackend().reparameterize(*(a.astype(np.float64) for a in (mu, lv, eps))))
    with pytest.raises(DTypeError, match="longdouble|float128|narrowing"):
        ReferenceBackend().reparameterize(mu.astype(np.longdouble), lv, eps)


def test_torch_backend_checks_its_results_and_its_key_draw():
    args = _valid("encode")
    with pytest.raises(DomainError, match=r"encode: the float32 result is not finite.*\(params, x\)"):
        TorchBackend("cpu", "float32").encode(args["arch"], args["params"], args["x"] * 1e39)
    for own in BACKENDS:
        with pytest.raises(DomainError, match="log_var"):
            own.reparameterize_key(np.zeros((3, 2)), np.full((3, 2), 1e4), 3)
        with pytest.raises(DTypeError, match="mu"):
            own.reparameterize_key([[0.0, 1.0]], np.zeros((1, 2)), 3)


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
def test_vjp_names_a_bad_function_args_or_cotangent(own):
    with pytest.raises(ConfigError, match=r"^function: expected one of"):
        own.vjp(["loss"], {}, 1.0)
    with pytest.raises(DTypeError, match=r"^args: expected a mapping"):
        own.vjp("kl_divergence", [1, 2], 1.0)
    with pytest.raises(ConfigError, match="ema_update|function"):
        own.vjp("ema_update", _valid("ema_update"), 1.0)
    for cotangent, error in ((None, DTypeError), (float("nan"), DomainError), ("1", DTypeError)):
        with pytest.raises(error, match=r"^d_kl \(cotangent\)"):
            own.vjp("kl_divergence", _valid("kl_divergence"), cotangent)
    with pytest.raises(DomainError, match=r"d_x_hat \(cotangent\): expected finite"):
        own.vjp("decode", _valid("decode"), np.full((3, 4), np.inf))


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
def test_huge_integers_and_unusable_devices_and_dtypes_are_named(own):
    with pytest.raises(DomainError, match=r"^beta: .*1101 bits"):
        call(own, "loss", {**_valid("loss"), "beta": 2**1100})
    with pytest.raises(DomainError, match=r"^ema_step"):
        call(own, "ema_update", {**_valid("ema_update"), "ema_step": 2**1100})
    for device in ("meta", "xpu", "mps", "cuda:99"):
        with pytest.raises(ConfigError, match=r"^device"):
            TorchBackend(device)
    with pytest.raises(ConfigError, match=r"^dtype: expected one of"):
        validate_args("kl_divergence", _valid("kl_divergence"), "float8")


def test_in_domain_non_finite_results_are_out_of_the_stated_domain():
    from vaespec.reference import decode_vjp, estimators, kl_divergence_vjp

    rng = np.random.default_rng(0)
    x_hat, x = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for own in (*BACKENDS, estimators):  # log σ² = −745: e^745 overflows, the density was −inf
        with pytest.raises(DomainError, match=r"^log_var: the Gaussian's magnitude"):
            own.gaussian_log_likelihood(x_hat, x, np.full((3, 4), -745.0))
    # A VJP refuses where its forward does: huge weights overflow the decoder (the gradient was Inf).
    args = _valid("decode")
    params = {k: v * 1e200 for k, v in args["params"].items()}
    with pytest.raises(DomainError, match=r"^decode: the float64 result is not finite"):
        decode_vjp({**args, "params": params}, np.ones((3, 4)))
    with pytest.raises(DomainError, match=r"^kl_divergence: the float64 gradient is not finite.*cotangent"):
        kl_divergence_vjp({"mu": np.zeros((3, 2)), "log_var": np.full((3, 2), 700.0), "convention": "elbo"}, 1e300)
