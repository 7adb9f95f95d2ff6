"""Hypothesis strategies for the estimators chapter (`vaespec.spec.estimators`).

Magnitudes stay in the float32 domain and, where an exp meets a sum, in float16's: log σ² of
the Gaussian likelihood |ℓ| ≤ 4 (so e^{−ℓ}(x − x̂)² summed over ≤ 8 features stays below
65504), logits |l| ≤ 30, log-weights |w| ≤ 50, the decoder's log σ² in networks |ℓ| ≤ 2.
Bernoulli targets mix exact 0s and 1s with probabilities. Networks are the VAE chapter's
small architectures (`strategies.vae.architectures`), with 1 to 6 particles of explicit noise.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.reference.init import init_params
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.estimators import LIKELIHOODS

from . import sizes
from .vae import (
    CONV_SHARE,
    MAX_ABS_EPS,
    MAX_ABS_X,
    Builder,
    Example,
    architectures,
    arrays,
    conv_architectures,
    event_shapes,
    example_shape,
    floats,
    pick,
    uniform_choice,
)

MAX_ABS_LOG_VAR = 4.0
MAX_ABS_DECODER_LOG_VAR = 2.0
MAX_ABS_LOGIT = 30.0
MAX_ABS_LOG_WEIGHT = 50.0


def unit_arrays(shape):
    """Arrays in [0, 1] that mix exact 0s and 1s (binary data) with probabilities."""
    from hypothesis.extra import numpy as hnp

    return hnp.arrays(np.float64, shape, elements=st.one_of(st.sampled_from([0.0, 1.0]), floats(0.0, 1.0)))


@st.composite
def likelihood_examples(draw, max_batch: int = 6, max_features: int = 8):
    """(x_hat, x, log_var) for the Gaussian and (logits, x) for the Bernoulli likelihood, all [batch, *event]
    (`strategies.vae.event_shapes`: (features,), (T, C) or (C, H, W))."""
    batch, event = draw(sizes.size(1, max_batch)), draw(event_shapes(max_features))
    shape = (batch, *event)
    return Example({
        "x_hat": draw(arrays(shape, -MAX_ABS_X, MAX_ABS_X)),
        "x": draw(arrays(shape, -MAX_ABS_X, MAX_ABS_X)),
        "log_var": draw(arrays(shape, -MAX_ABS_LOG_VAR, MAX_ABS_LOG_VAR)),
    }, {"logits": draw(arrays(shape, -MAX_ABS_LOGIT, MAX_ABS_LOGIT)), "binary": draw(unit_arrays(shape))})


def bernoulli_examples(**kwargs):
    """(logits, x) with x in [0, 1]."""
    return likelihood_examples(**kwargs).map(
        lambda e: Example({"logits": e.extra["logits"], "x": e.extra["binary"]}))


@st.composite
def log_weight_examples(draw, max_particles: int = 8, max_batch: int = 5):
    """log_weights [particles, batch], |w| ≤ 50; equal weights are drawn on purpose (log_mean_exp = w)."""
    shape = (draw(sizes.size(1, max_particles)), draw(sizes.size(1, max_batch)))
    weights = draw(st.one_of(arrays(shape, -MAX_ABS_LOG_WEIGHT, MAX_ABS_LOG_WEIGHT),
                             floats(-MAX_ABS_LOG_WEIGHT, MAX_ABS_LOG_WEIGHT).map(lambda w: np.full(shape, w))))
    return Example({"log_weights": weights})


def seeded_event_arrays(seed: int, shape: tuple[int, ...], likelihood: str, decoder_shape: tuple[int, ...]):
    """(x, decoder_log_var) of a conv VAE's example from one drawn seed (a draw per entry of an image is slow):
    x in [0, 1], a quarter of its entries exact 0s and 1s, for the Bernoulli likelihood, else uniform in
    ±MAX_ABS_X; decoder_log_var uniform in ±MAX_ABS_DECODER_LOG_VAR."""
    rng = np.random.default_rng(seed)
    if likelihood == "bernoulli":
        x = rng.uniform(0.0, 1.0, shape)
        x = np.where(rng.random(shape) < 0.25, np.round(x), x)
    else:
        x = rng.uniform(-MAX_ABS_X, MAX_ABS_X, shape)
    return x, rng.uniform(-MAX_ABS_DECODER_LOG_VAR, MAX_ABS_DECODER_LOG_VAR, decoder_shape)


@st.composite
def network_examples(draw, min_particles: int = 1, max_particles: int = 6, max_batch: int = 4, likelihood=None):
    """(arch, params, x [batch, *event], eps [particles, batch, latent], decoder_log_var [*event], likelihood) for
    the network estimators: the dense VAE, or one example in CONV_SHARE the conv VAE (`strategies.vae`).

    x lies in [0, 1] for the Bernoulli likelihood (it is the target as well as the input)."""
    conv = draw(uniform_choice(range(CONV_SHARE))) == CONV_SHARE - 1
    arch = draw(conv_architectures() if conv else architectures())
    likelihood = draw(st.sampled_from(LIKELIHOODS)) if likelihood is None else likelihood
    particles, batch = draw(sizes.size(min_particles, max_particles)), draw(sizes.size(1, max_batch))
    event = example_shape(arch)
    shape = (batch, *event)
    if isinstance(arch, ConvArchitecture):
        x, decoder_log_var = seeded_event_arrays(draw(st.integers(0, 2**32 - 1)), shape, likelihood, event)
    else:
        x = draw(unit_arrays(shape) if likelihood == "bernoulli" else arrays(shape, -MAX_ABS_X, MAX_ABS_X))
        decoder_log_var = None
    params = init_params(arch, draw(st.integers(0, 2**32 - 1)))
    eps = draw(arrays((particles, batch, arch.latent_size), -MAX_ABS_EPS, MAX_ABS_EPS))
    if decoder_log_var is None:
        decoder_log_var = draw(arrays((arch.output_size,), -MAX_ABS_DECODER_LOG_VAR, MAX_ABS_DECODER_LOG_VAR))
    return Example({"arch": arch, "params": params, "x": x, "eps": eps, "decoder_log_var": decoder_log_var,
                    "likelihood": likelihood})


@st.composite
def embedding_examples(draw, max_categories: int = 6, max_dim: int = 5, max_batch: int = 8):
    """(table [categories, embedding], indices [batch]) with repeated indices likely."""
    categories, dim = draw(sizes.size(1, max_categories)), draw(sizes.size(1, max_dim))
    batch = draw(sizes.size(1, max_batch))
    indices = np.asarray(draw(st.lists(st.integers(0, categories - 1), min_size=batch, max_size=batch)), dtype=np.int64)
    return Example({"table": draw(arrays((categories, dim), -MAX_ABS_X, MAX_ABS_X)), "indices": indices})


BUILDERS = (  # the first that draws all of a function's arguments serves it (strategies.vae.Builder)
    Builder("estimators", ("x_hat", "x", "log_var"), lambda own: likelihood_examples()),
    Builder("estimators", ("logits", "x"), lambda own: bernoulli_examples()),
    Builder("estimators", ("log_weights",), lambda own: log_weight_examples()),
    Builder("estimators", ("table", "indices"), lambda own: embedding_examples()),
    Builder("estimators", ("arch", "params", "x", "eps", "decoder_log_var", "likelihood"),
            lambda own: network_examples()),
)


def examples_for(function: str):
    """The strategy whose examples carry the arguments of estimators-chapter `function`."""
    return pick(BUILDERS, function)
