"""Hypothesis strategies for valid contract inputs, exported for users' own suites.

    from vaespec.proofs_tests.strategies.vae import network_examples
    @given(network_examples())
    def test_my_port(ex): ...

Magnitudes are bounded so every value stays in the float32 domain (|log σ²| ≤ 20
keeps exp(log σ²) < 5·10⁸); subnormals are excluded (their relative error is
unbounded; proofs_tests/selftests/test_extremes.py tests them and the domain edges). Parameters come from an
integer seed (`vaespec.reference.init_params`), so shrinking acts on the seed and the sizes.
Hypothesis never seeds torch: all noise here is an explicit array.

Networks come in three regimes (`REGIMES`, `regime_params`): `seeded` (init_params as drawn),
`kinks` (weights and inputs small multiples of powers of two, so pre-activations are exactly 0
often and each kink of `vaespec.spec.dtypes.KINKS` is hit exactly, where every dtype computes the
pre-activation exactly; one that some dtype rounds is kept off its kink by the policy's bound,
`strategies.kinks.clear_inexact_kinks`) and `reach` (each hidden
layer's biases on both sides of the pre-activations where implementations switch formulas,
`vaespec.spec.dtypes.FORMULA_SWITCHES`, and the layer reading it scaled down so that the rest of
the network stays in range).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vaespec.reference.init import init_params
from vaespec.spec.architecture import ACTIVATIONS, Architecture
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import PRESETS, get_convention
from vaespec.spec.dtypes import FORMULA_SWITCHES, KINKS
from vaespec.spec.errors import ConfigError

from . import sizes
from .kinks import clear_inexact_kinks
from .sizes import strategy_cache

MAX_ABS_X = 3.0
MAX_ABS_EPS = 4.0
MAX_ABS_MU = 5.0
MAX_ABS_LOG_VAR = 20.0


@strategy_cache
def floats(low: float, high: float):
    """Finite float64 values in [low, high], no subnormals."""
    return st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


def arrays(shape, low: float, high: float):
    """float64 arrays of `shape` with elements in [low, high]."""
    return _arrays(tuple(int(n) for n in np.atleast_1d(shape)) if np.ndim(shape) else int(shape), low, high)


@strategy_cache
def _arrays(shape, low: float, high: float):
    return hnp.arrays(np.float64, shape, elements=floats(low, high))


@strategy_cache
def conventions():
    """Every named convention preset."""
    return st.sampled_from(sorted(PRESETS)).map(get_convention)


@strategy_cache
def betas(high: float = 10.0):
    """β ∈ {0} ∪ [0, high]: zero is drawn on purpose (β = 0 is a law)."""
    return st.one_of(st.just(0.0), floats(0.0, high))


@st.composite
def architectures(draw, max_layers: int = 2, max_width: int = 8, max_features: int = 6, max_latent: int = 4,
                  activations=tuple(ACTIVATIONS), min_layers: int = 0):
    """Small dense VAE architectures over every activation (output_size = input_size)."""
    widths = sizes.layer_widths(max_layers, max_width, min_layers)
    return Architecture(
        input_size=draw(sizes.size(1, max_features)),
        latent_size=draw(sizes.size(1, max_latent)),
        encoder_sizes=tuple(draw(widths)),
        decoder_sizes=tuple(draw(widths)),
        activation=draw(uniform_choice(activations)),
    )


# (kernel_size, stride, padding, input sides) of the conv examples: small images (4×4 to 8×8) whose sides the
# strides divide, a stride-1 "same" convolution and strided ones (the transposed conv's overlapping taps).
CONV_LAYOUTS = ((3, 1, 1, (4, 5)), (4, 2, 1, (4, 8)), (2, 2, 0, (4, 8)), (3, 2, 1, (5,)))
# One network example in CONV_SHARE (of the seeded and kinks regimes) is convolutional, chosen by `uniform_choice`
# (a plain st.integers(0, 3) favours some values). One in two gives every VAE network law 2 or more conv examples of
# its 25 in the ci profile, where one in four left two gradient laws none (selftests/test_reference_conv.py counts).
CONV_SHARE = 2


@st.composite
def conv_architectures(draw, max_channels: int = 3, max_latent: int = 3, activations=tuple(ACTIVATIONS)):
    """Small convolutional VAEs (`vaespec.spec.conv.ConvArchitecture`): 1 or 2 input channels, sides 4 to 8,
    one or two (transposed) convolutions of 1 to `max_channels` channels; small so the suite's time barely grows."""
    k, stride, padding, sides = draw(uniform_choice(CONV_LAYOUTS))
    side = draw(uniform_choice(sides))
    layers = draw(sizes.size(1, 2))
    shape = (draw(sizes.size(1, 2)), side, side)
    channels = tuple(draw(sizes.size(1, max_channels)) for _ in range(layers))
    try:
        return ConvArchitecture(shape, channels, draw(sizes.size(1, max_latent)), k, stride, padding,
                                draw(uniform_choice(activations)))
    except ConfigError:  # a second stride that does not divide the first layer's output: one layer then
        return ConvArchitecture(shape, channels[:1], draw(sizes.size(1, max_latent)), k, stride, padding,
                                draw(uniform_choice(activations)))


def example_shape(arch) -> tuple[int, ...]:
    """The axes of one example x: `(input_size,)` for the dense network, `input_shape` (C, H, W) for a conv one."""
    return tuple(arch.input_shape) if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)) else (arch.input_size,)


def uniform_choice(options):
    """One of `options`, each about equally often (a wide integer modulo the count: Hypothesis's own
    `sampled_from` favours some options by a factor of 4 or more in a run), shrinking to the first."""
    return _uniform_choice(tuple(options))


@strategy_cache
def _uniform_choice(options: tuple):
    return st.integers(0, 2**16 - 1).map(lambda i: options[i % len(options)])


REGIMES = ("seeded", "kinks", "reach")
KINKED = tuple(a for a in ACTIVATIONS if a in KINKS)  # relu, elu, leaky_relu, softplus
SWITCHING = tuple(a for a in ACTIVATIONS if FORMULA_SWITCHES[a])
SMALL_INTEGERS = (-2.0, -1.0, 0.0, 1.0, 2.0)


def regime_activations(regime: str) -> tuple[str, ...]:
    """The activations a regime is about: those with kinks, those with formula switches, or all."""
    return {"kinks": KINKED, "reach": SWITCHING}.get(regime, tuple(ACTIVATIONS))


def _stacks(arch):
    """(hidden layer names, then the layers that read the last one) for the encoder and the decoder."""
    return [([n for n, _, _ in arch.encoder_layers()], list(arch.HEADS)),
            ([n for n, _, _ in arch.decoder_layers()], ["decoder_output"])]


def regime_params(arch, regime: str, seed: int) -> dict[str, np.ndarray]:
    """Parameters of `arch` for one of `REGIMES`, deterministic in `seed`.

    - `seeded`: `init_params(arch, seed)`.
    - `kinks`: every entry in {−1, 0, 1}·2^−⌊log₂ fan_in⌋ (biases mostly 0): with inputs in {−2, …, 2} each
      pre-activation is a short sum of dyadic numbers, computed exactly in every dtype (bfloat16 included),
      and 0 often.
    - `reach`: each hidden layer's biases are y_s ± o, y_s a (signed) formula switch of the activation
      (`FORMULA_SWITCHES`; the first, the commonest library threshold, half the time) and o ∈ [0.5, 4], so the
      pre-activations straddle every switch; each unit's outgoing weights (the next layer's kernel row) are
      divided by its |bias|, so the next pre-activations stay moderate and every unit's error stays visible.
    """
    params = init_params(arch, seed)
    rng = np.random.default_rng(seed)
    if regime == "reach" and isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        raise ConfigError(f"regime: 'reach' places dense hidden layers' biases; a {type(arch).__name__} is drawn in "
                          f"the 'seeded' and 'kinks' regimes")
    if regime == "kinks":
        for name, value in params.items():
            fan_in = math.prod(params[name.replace(".bias", ".kernel")].shape[:-1])  # in, or kh·kw·in
            steps = rng.integers(-1, 2, value.shape) * (name.endswith(".kernel") | (rng.random(value.shape) < 0.25))
            params[name] = steps * 2.0 ** -math.floor(math.log2(fan_in))
    elif regime == "reach":
        points = np.array([y for y, _ in FORMULA_SWITCHES[arch.activation]] or [30.0])
        weights = np.full(len(points), 0.5 / max(len(points) - 1, 1))
        weights[0] = 0.5 if len(points) > 1 else 1.0  # the first switch is the commonest library threshold
        for hidden, readers in _stacks(arch):
            for i, name in enumerate(hidden):
                width = params[f"{name}.bias"].shape[0]
                offset = rng.choice([-1.0, 1.0], width) * rng.uniform(0.5, 4.0, width)  # either side of the switch
                bias = rng.choice(points, width, p=weights) + offset
                params[f"{name}.bias"] = bias
                for reader in hidden[i + 1:i + 2] or readers:  # each unit's outgoing weights over its own reach
                    params[f"{reader}.kernel"] = params[f"{reader}.kernel"] / np.abs(bias)[:, None]
    elif regime != "seeded":
        raise ConfigError(f"regime: expected one of {list(REGIMES)}, got {regime!r}")
    return params


def pin_kinks(arch, params, stack: str, inputs: np.ndarray) -> None:
    """Set the biases of `stack`'s first hidden layer so that its pre-activations at the first row of `inputs`
    are exactly 0 (b_u = −x₀·W_u: dyadic sums, exact in every dtype): every kink is met at that row (and, for
    relu, the next layer's too, where its biases are 0); the other rows stay generic integers."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):  # a kernel shared across positions: not pinned
        return
    layers = arch.encoder_layers() if stack == "encoder" else arch.decoder_layers()
    if not layers or inputs.shape[0] == 0:
        return
    name = layers[0][0]
    kernel = params[f"{name}.kernel"]
    params[f"{name}.bias"] = -(inputs[0] @ kernel)


@strategy_cache
def integer_arrays(shape):
    """float64 arrays of `shape` with entries in {−2, −1, 0, 1, 2} (the `kinks` regime's inputs)."""
    return hnp.arrays(np.float64, shape, elements=st.sampled_from(SMALL_INTEGERS))


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
    The regime (`REGIMES`) is drawn first and kept in `extra["regime"]`: it chooses the activations
    (`regime_activations`), the parameters (`regime_params`) and, for `kinks`, integer inputs with the
    first hidden layer pinned to its kink (`pin_kinks`) and every pre-activation some dtype rounds kept off its
    kinks (`strategies.kinks.clear_inexact_kinks`, on the stacks the drawn fields reach).
    """
    fields = _fields(fields, NETWORK_FIELDS, "network_examples")
    regime = draw(uniform_choice(REGIMES))
    if arch is None and regime != "reach" and draw(uniform_choice(range(CONV_SHARE))) == CONV_SHARE - 1:
        arch = draw(conv_architectures(activations=regime_activations(regime)))
    if arch is None:
        arch = draw(architectures(activations=regime_activations(regime), min_layers=int(regime != "seeded")))
    batch = draw(sizes.size(min_batch, max_batch))
    args = {"arch": arch, "params": regime_params(arch, regime, draw(st.integers(0, 2**32 - 1)))}
    shape = (batch, *example_shape(arch))
    if isinstance(arch, ConvArchitecture):  # an image's entries from one drawn seed: a draw per entry is slow
        x = st.integers(0, 2**32 - 1).map(lambda seed: seeded_image(seed, shape, regime))
    elif regime == "kinks":
        x = integer_arrays(shape)
    else:
        x = arrays(shape, -MAX_ABS_X, MAX_ABS_X)
    if regime == "kinks":
        latent = integer_arrays((batch, arch.latent_size))
    else:
        latent = arrays((batch, arch.latent_size), -MAX_ABS_EPS, MAX_ABS_EPS)
    strategies = {"x": x, "z": latent, "eps": latent, "beta": betas(), "convention": conventions()}
    args.update((name, draw(strategies[name])) for name in NETWORK_FIELDS if name in fields)
    if regime == "kinks":
        inputs = next((n for n in ("x", "z", "eps") if n in args), None)
        if inputs:
            pin_kinks(arch, args["params"], "encoder" if inputs == "x" else "decoder", args[inputs])
        clear_inexact_kinks(arch, args["params"], x=args.get("x"), z=args.get("z"), eps=args.get("eps"))
    return Example(args, {"regime": regime})


def seeded_image(seed: int, shape: tuple[int, ...], regime: str) -> np.ndarray:
    """x [batch, C, H, W] from `seed`: integers in {−2, …, 2} for `kinks`, else uniform in ±MAX_ABS_X."""
    rng = np.random.default_rng(seed)
    if regime == "kinks":
        return rng.integers(-2, 3, shape).astype(np.float64)
    return rng.uniform(-MAX_ABS_X, MAX_ABS_X, shape)


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


def event_shapes(max_features: int = 8, max_side: int = 3, max_channels: int = 2):
    """The event of x [batch, *event]: (features,) half the time, else a sequence (T, C) or an image (C, H, W)."""
    side, channels = st.integers(1, max_side), st.integers(1, max_channels)
    return st.one_of(st.tuples(sizes.size(1, max_features)), st.tuples(side, channels),
                     st.tuples(channels, side, side))


@st.composite
def reconstruction_examples(draw, min_batch: int = 1, max_batch: int = 6, max_features: int = 8):
    """(x_hat, x, convention) for reconstruction_loss; x̂ and x [batch, *event] (`event_shapes`)."""
    batch = draw(sizes.size(min_batch, max_batch))
    event = draw(event_shapes(max_features))
    return Example({
        "x_hat": draw(arrays((batch, *event), -MAX_ABS_X, MAX_ABS_X)),
        "x": draw(arrays((batch, *event), -MAX_ABS_X, MAX_ABS_X)),
        "convention": draw(conventions()),
    })


@dataclass(frozen=True)
class Builder:
    """A strategy that draws a group of contract arguments together (shared sizes, related values).

    It serves a function of `chapter` whose arguments are all among `fields` (argument names: the
    Arg metadata decides, never the function's name); `make(own, **kwargs)` is the strategy, given the
    names of the function's own arguments, so a builder that draws only what is asked for can."""

    chapter: str
    fields: tuple[str, ...]
    make: Callable[..., Any]

    def serves(self, spec) -> bool:
        return spec.chapter == self.chapter and {a.name for a in spec.args} <= set(self.fields)


def pick(builders, function: str, **kwargs):
    """The strategy of the first of `builders` that serves contract function `function`; a ConfigError if none."""
    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {function!r}")
    spec = FUNCTIONS[function]
    own = tuple(a.name for a in spec.args)
    for builder in builders:
        if builder.serves(spec):
            return builder.make(own, **kwargs)
    raise ConfigError(f"function: no strategy of the {spec.chapter} chapter draws {function}'s arguments {list(own)}")


BUILDERS = (  # in order: the first that serves a function draws its examples
    Builder("vae", ("arch", "params", *NETWORK_FIELDS),
            lambda own, **kw: network_examples(**{"fields": [n for n in own if n in NETWORK_FIELDS], **kw})),
    Builder("vae", LATENT_FIELDS, lambda own, **kw: latent_examples(**{"fields": list(own), **kw})),
    Builder("vae", ("x_hat", "x", "convention"), lambda own, **kw: reconstruction_examples(**kw)),
)


def examples_for(function: str, **kwargs):
    """The strategy whose examples carry the arguments of VAE-chapter function `function` (only those,
    unless `fields` is given): the first of `BUILDERS` whose fields hold them all
    (`vaespec.proofs_tests.strategies.chapters.examples_for`: any chapter)."""
    return pick(BUILDERS, function, **kwargs)


def cotangents(function: str, outputs):
    """A cotangent strategy shaped like `outputs` (entries in [−1, 1]; scalars include 1)."""
    if isinstance(outputs, tuple):
        return st.tuples(*(arrays(o.shape, -1.0, 1.0) for o in outputs))
    if np.ndim(outputs) == 0:
        return st.one_of(st.just(1.0), floats(-2.0, 2.0))
    return arrays(np.shape(outputs), -1.0, 1.0)


@st.composite
def own_network_examples(draw, archs, min_batch: int = 1, max_batch: int = 4):
    """(arch, params, x, z, eps, beta, convention) on a backend's own network (`vaespec.spec.own.OwnArchitecture`):
    one of `archs`, parameters `arch.init_params(seed)` at a drawn seed, x [batch, *input_shape] uniform in
    ±MAX_ABS_X and z, ε [batch, latent_size] in ±MAX_ABS_EPS, each from a drawn seed (one draw per array)."""
    arch = draw(uniform_choice(archs))
    batch = draw(sizes.size(min_batch, max_batch))
    seeds = st.integers(0, 2**32 - 1)
    latent = (batch, arch.latent_size)
    return Example({
        "arch": arch, "params": arch.init_params(draw(seeds)),
        "x": np.random.default_rng(draw(seeds)).uniform(-MAX_ABS_X, MAX_ABS_X, (batch, *arch.input_shape)),
        "z": np.random.default_rng(draw(seeds)).uniform(-MAX_ABS_EPS, MAX_ABS_EPS, latent),
        "eps": np.random.default_rng(draw(seeds)).uniform(-MAX_ABS_EPS, MAX_ABS_EPS, latent),
        "beta": draw(betas()), "convention": draw(conventions()),
    }, {"regime": "own"})
