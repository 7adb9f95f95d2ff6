"""Hypothesis strategies for valid contract inputs, exported for users' own suites.

    from vaespec.proofs_tests.strategies import network_examples
    @given(network_examples())
    def test_my_port(ex): ...

Magnitudes are bounded so every value stays in the float32 domain (|log σ²| ≤ 20
keeps exp(log σ²) < 5·10⁸); subnormals are excluded (their relative error is
unbounded; proofs_tests/test_extremes.py tests them and the domain edges). Parameters come from an integer seed
(`vaespec.reference.init_params`), so shrinking acts on the seed and the sizes.
Hypothesis never seeds torch: all noise here is an explicit array.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from vaespec.reference.init import init_params
from vaespec.spec.architecture import ACTIVATIONS, Architecture
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conventions import PRESETS, get_convention
from vaespec.spec.errors import ConfigError

from . import sizes

MAX_ABS_X = 3.0
MAX_ABS_EPS = 4.0
MAX_ABS_MU = 5.0
MAX_ABS_LOG_VAR = 20.0


def floats(low: float, high: float):
    """Finite float64 values in [low, high], no subnormals."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def arrays(shape, low: float, high: float):
    """float64 arrays of `shape` with elements in [low, high]."""
    return hnp.arrays(np.float64, shape, elements=floats(low, high))


def conventions():
    """Every named convention preset."""
    return st.sampled_from(sorted(PRESETS)).map(get_convention)


def betas(high: float = 10.0):
    """β ∈ {0} ∪ [0, high]: zero is drawn on purpose (β = 0 is a law)."""
    return st.one_of(st.just(0.0), floats(0.0, high))


@st.composite
def architectures(draw, max_layers: int = 2, max_width: int = 8, max_features: int = 6, max_latent: int = 4,
                  activations=tuple(ACTIVATIONS)):
    """Small dense VAE architectures over every activation (output_size = input_size)."""
    widths = sizes.layer_widths(max_layers, max_width)
    return Architecture(
        input_size=draw(sizes.size(1, max_features)),
        latent_size=draw(sizes.size(1, max_latent)),
        encoder_sizes=tuple(draw(widths)),
        decoder_sizes=tuple(draw(widths)),
        activation=draw(st.sampled_from(activations)),
    )


@dataclass
class Example:
    """One drawn input: `args` named as in the contract (`FUNCTIONS`), plus extras for laws."""

    args: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        for name in ("x", "mu", "eps", "x_hat", "z"):
            if name in self.args:
                return self.args[name].shape[0]
        raise KeyError("no batched argument")


NETWORK_FIELDS = ("x", "z", "eps", "beta", "convention")
LATENT_FIELDS = ("mu", "log_var", "eps", "convention")


def _fields(fields, allowed: tuple[str, ...], strategy: str) -> tuple[str, ...]:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ConfigError(f"fields: {strategy} draws some of {list(allowed)}, got unknown {unknown}")
    return tuple(fields)


@st.composite
def network_examples(draw, min_batch: int = 1, max_batch: int = 5, arch=None, fields=NETWORK_FIELDS):
    """(arch, params, x, z, eps, beta, convention) for the network functions.

    `fields`: which of `NETWORK_FIELDS` to draw (arch and params always are); `examples_for` draws
    only the function's own arguments, since each array costs the engine a draw per element.
    """
    fields = _fields(fields, NETWORK_FIELDS, "network_examples")
    arch = draw(architectures()) if arch is None else arch
    batch = draw(sizes.size(min_batch, max_batch))
    args = {"arch": arch, "params": init_params(arch, draw(st.integers(0, 2**32 - 1)))}
    latent = arrays((batch, arch.latent_size), -MAX_ABS_EPS, MAX_ABS_EPS)
    strategies = {"x": arrays((batch, arch.input_size), -MAX_ABS_X, MAX_ABS_X), "z": latent, "eps": latent,
                  "beta": betas(), "convention": conventions()}
    args.update((name, draw(strategies[name])) for name in NETWORK_FIELDS if name in fields)
    return Example(args)


@st.composite
def latent_examples(draw, min_batch: int = 1, max_batch: int = 6, max_latent: int = 5,
                    max_abs_mu: float = MAX_ABS_MU, max_abs_log_var: float = MAX_ABS_LOG_VAR, fields=LATENT_FIELDS):
    """(mu, log_var, eps, convention) for reparameterize and kl_divergence; `fields` as `network_examples`."""
    fields = _fields(fields, LATENT_FIELDS, "latent_examples")
    batch = draw(sizes.size(min_batch, max_batch))
    latent = draw(sizes.size(1, max_latent))
    strategies = {"mu": arrays((batch, latent), -max_abs_mu, max_abs_mu),
                  "log_var": arrays((batch, latent), -max_abs_log_var, max_abs_log_var),
                  "eps": arrays((batch, latent), -MAX_ABS_EPS, MAX_ABS_EPS), "convention": conventions()}
    return Example({name: draw(strategies[name]) for name in LATENT_FIELDS if name in fields})


@st.composite
def reconstruction_examples(draw, min_batch: int = 1, max_batch: int = 6, max_features: int = 8):
    """(x_hat, x, convention) for reconstruction_loss."""
    batch = draw(sizes.size(min_batch, max_batch))
    features = draw(sizes.size(1, max_features))
    return Example({
        "x_hat": draw(arrays((batch, features), -MAX_ABS_X, MAX_ABS_X)),
        "x": draw(arrays((batch, features), -MAX_ABS_X, MAX_ABS_X)),
        "convention": draw(conventions()),
    })


def examples_for(function: str, **kwargs):
    """The strategy whose examples carry the arguments of contract function `function` (only those,
    unless `fields` is given)."""
    own = [a.name for a in FUNCTIONS[function].args]
    if function in ("reparameterize", "kl_divergence"):
        return latent_examples(**{"fields": [n for n in own if n in LATENT_FIELDS], **kwargs})
    if function == "reconstruction_loss":
        return reconstruction_examples(**kwargs)
    return network_examples(**{"fields": [n for n in own if n in NETWORK_FIELDS], **kwargs})


def cotangents(function: str, outputs):
    """A cotangent strategy shaped like `outputs` (entries in [−1, 1]; scalars include 1)."""
    if isinstance(outputs, tuple):
        return st.tuples(*(arrays(o.shape, -1.0, 1.0) for o in outputs))
    if np.ndim(outputs) == 0:
        return st.one_of(st.just(1.0), floats(-2.0, 2.0))
    return arrays(np.shape(outputs), -1.0, 1.0)
