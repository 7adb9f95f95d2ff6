"""Hypothesis strategies for the VQ-VAE chapter, exported for users' own suites.

    from vaespec.proofs_tests.strategies.vq import vq_examples
    @given(vq_examples())
    def test_my_quantizer(ex): z_q, k = my_quantize(ex.args["z_e"], ex.args["codebook"])

One `Example` carries every argument of every VQ function (named as in
`vaespec.spec.vq.FUNCTIONS`; `vq_examples_for(function)`: only that function's), with consistent sizes:
`codebook` [K, D] matches `arch.num_embeddings` × `arch.embedding_dim`, `z_e` is [B, *positions, D]
channels-last with positions = () half the time and else one or two position axes of 1–3 (`positions`;
`indices` [B, *positions] alike), `x` [B, input], or for a convolutional VQ-VAE (`conv_vq_architectures`,
one network example in `CONV_VQ_SHARE` of the seeded and kinks regimes) x [B, C, H, W] whose z_e is
[B, H′, W′, E]. Some draws put
`z_e` on or near codebook rows and duplicate rows, so ties and near-ties are exercised, not
just the generic case; others put it at near ties whose answer depends on the declared precision
(`precision_ties`). Networks come in the regimes of `strategies.vae.REGIMES` (kinks, formula switches).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.architecture import ACTIVATIONS, VQArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.dtypes import PRECISION_ORDER, narrower
from vaespec.spec.errors import ConfigError
from vaespec.spec.init import init_codebook
from vaespec.spec.tolerances import distance_bound

from . import sizes
from .kinks import clear_inexact_kinks
from .vae import (
    CONV_LAYOUTS,
    MAX_ABS_X,
    REGIMES,
    Builder,
    Example,
    arrays,
    conventions,
    floats,
    integer_arrays,
    pick,
    pin_kinks,
    regime_activations,
    regime_params,
    seeded_image,
    uniform_choice,
)

MAX_ABS_Z = 3.0
MAX_COUNT = 20.0
MIN_COUNT = 1e-3
# ε is 0 or at least this: smaller values underflow in a narrow dtype's arithmetic (the law's stated domain).
MIN_EPSILON = 1e-5
# The decay likewise: decay · count with decay = 1e-216 is 0 in float32, so a code whose count is only that
# stays put in float32 and moves in float64 (a discrete difference no float32 backend can avoid).
MIN_DECAY = 1e-3


def _counts(codes: int):
    """Counts ≥ 0, each 0 or ≥ MIN_COUNT: a count of 1e-300 would round to 0 in float32 and change the problem."""
    return st.lists(st.one_of(st.just(0.0), floats(MIN_COUNT, MAX_COUNT)), min_size=codes, max_size=codes).map(
        lambda values: np.array(values, dtype=np.float64))


# Position axes: () (the dense [B, D]) half the time, else a sequence [B, T, D] or an image [B, H, W, D].
MAX_POSITION = 3
MAX_POSITION_AXES = 2
MAX_BATCH_WITH_POSITIONS = 3  # every vector costs the engine D draws: B·∏positions stays ≤ 27


def positions(max_axes: int = MAX_POSITION_AXES, max_size: int = MAX_POSITION):
    """() or a tuple of 1..max_axes sizes in [1, max_size]: the position axes of z_e [B, *positions, D]."""
    axes = st.lists(st.integers(1, max_size), min_size=1, max_size=max_axes).map(tuple)
    return st.one_of(st.just(()), axes) if max_axes else st.just(())


@st.composite
def vq_architectures(draw, max_layers: int = 2, max_width: int = 8, max_features: int = 6, max_dim: int = 5,
                     max_codes: int = 8, activations=tuple(ACTIVATIONS), min_layers: int = 0):
    widths = sizes.layer_widths(max_layers, max_width, min_layers)
    return VQArchitecture(
        input_size=draw(sizes.size(1, max_features)),
        embedding_dim=draw(sizes.size(1, max_dim)),
        num_embeddings=draw(sizes.size(1, max_codes)),
        encoder_sizes=tuple(draw(widths)),
        decoder_sizes=tuple(draw(widths)),
        activation=draw(uniform_choice(activations)),
    )


CONV_VQ_SHARE = 3  # one network example in CONV_VQ_SHARE of the seeded and kinks regimes is a conv VQ-VAE (4 to 43 %
# of each of the 8 network laws' network calls in the ci profile: selftests/test_reference_conv_vq.py)
MAX_CONV_VQ_BATCH = 3  # its z_e has up to 25 positions per example: B·H′·W′ ≤ 75 vectors


@st.composite
def conv_vq_architectures(draw, max_channels: int = 3, max_dim: int = 3, max_codes: int = 6,
                          activations=tuple(ACTIVATIONS)):
    """Small convolutional VQ-VAEs (`vaespec.spec.conv_vq.ConvVQArchitecture`): 1 or 2 input channels, sides 4 to 8
    (`strategies.vae.CONV_LAYOUTS`: a stride-1 "same" convolution and strided ones), one or two convolutions of 1
    to `max_channels` channels, z_e [B, H′, W′, E] with H′·W′ from 1 to 25 and E ≤ `max_dim`; small so the
    suite's time barely grows."""
    k, stride, padding, sides = draw(uniform_choice(CONV_LAYOUTS))
    side = draw(uniform_choice(sides))
    layers = draw(sizes.size(1, 2))
    shape = (draw(sizes.size(1, 2)), side, side)
    channels = tuple(draw(sizes.size(1, max_channels)) for _ in range(layers))
    dim, codes, activation = draw(sizes.size(1, max_dim)), draw(sizes.size(1, max_codes)), draw(
        uniform_choice(activations))
    try:
        return ConvVQArchitecture(shape, channels, dim, codes, k, stride, padding, activation)
    except ConfigError:  # a second stride that does not divide the first layer's output: one layer then
        return ConvVQArchitecture(shape, channels[:1], dim, codes, k, stride, padding, activation)


@st.composite
def _codebook(draw, codes: int, dim: int):
    """N(0, 1) from a drawn key (init_codebook), scaled; sometimes with a duplicated row."""
    codebook = init_codebook(codes, dim, draw(st.integers(0, 2**32 - 1))) * draw(st.sampled_from((0.5, 1.0, 2.0)))
    if codes >= 2 and draw(st.booleans()):
        i, j = draw(st.lists(st.integers(0, codes - 1), min_size=2, max_size=2, unique=True))
        codebook[j] = codebook[i]
    return codebook


def precision_ties(codebook: np.ndarray, rows, levels, signs) -> np.ndarray:
    """z_e [len(rows), D] whose every row is nearly tied between code rows[b] and its nearest distinct
    neighbour j, with margin d_k − d_j = sign·√(τ_T · τ_T′) (T = levels[b], T′ the next narrower dtype,
    τ the pair's `distance_bound`): ≈ 10⁴ times T's bound and 10⁴ times below T′'s for T = float64.
    So the answer is clear in T and in every more precise dtype, and a backend computing its
    distances in T′ (or rounding z_e to T′) chooses wrongly about half the time.

    Built on the segment between the two codes: z = m + t·u with m = (e_k + e_j)/2, u = e_j − e_k gives
    d_k − d_j = 2t‖u‖² exactly; j is the nearest code to e_k, so no third code is nearer to m."""
    D = codebook.shape[1]
    out = []
    for k, level, sign in zip(rows, levels, signs):
        gaps = ((codebook - codebook[k]) ** 2).sum(1)
        gaps[gaps == 0] = np.inf  # itself and its duplicates
        if not np.isfinite(gaps.min()):
            out.append(codebook[k].copy())
            continue
        j = int(gaps.argmin())
        m, u = (codebook[k] + codebook[j]) / 2, codebook[j] - codebook[k]
        norms = np.linalg.norm(m), np.linalg.norm(codebook[[k, j]], axis=1)
        tau = {t: float(np.sum(distance_bound(t, D, norms[0], norms[1]))) for t in (level, narrower(level))}
        margin = sign * np.sqrt(tau[level] * tau[narrower(level)])
        out.append(m + margin / (2 * float(u @ u)) * u)
    return np.array(out).reshape(len(rows), D)


@st.composite
def _encodings(draw, batch: int, codebook: np.ndarray):
    """z_e: free draws; codebook rows plus a small offset (near the Voronoi cells' centres and edges, and at the
    exact ties of duplicated rows); or `precision_ties` at every dtype's scale."""
    free = draw(arrays((batch, codebook.shape[1]), -MAX_ABS_Z, MAX_ABS_Z))
    kind = draw(st.sampled_from(("free", "near", "ties", "precision", "precision")))
    if kind == "free":
        return free
    codes = codebook.shape[0]
    rows = np.array(draw(st.lists(st.integers(0, codes - 1), min_size=batch, max_size=batch)))
    if kind == "precision":
        levels = [draw(st.sampled_from(PRECISION_ORDER[:-1]))] * batch
        signs = draw(st.lists(st.sampled_from((-1.0, 1.0)), min_size=batch, max_size=batch))
        return precision_ties(codebook, rows, levels, signs)
    if kind == "ties":  # rows of duplicated codes, off the row itself so the gradient to the chosen code is not 0
        tied = [k for k in range(codes) if ((codebook == codebook[k]).all(1).sum() > 1)]
        rows = np.array(tied)[rows % len(tied)] if tied else rows
        return codebook[rows] + draw(st.sampled_from((1e-3, 0.3))) * free / MAX_ABS_Z
    scale = draw(st.sampled_from((0.0, 1e-3, 0.3)))
    return codebook[rows] + scale * free / MAX_ABS_Z


VQ_FIELDS = ("arch", "params", "x", "z_e", "codebook", "commitment_weight", "convention", "num_embeddings",
             "embedding_dim", "key", "ema_counts", "ema_sums", "ema_step", "decay", "epsilon", "training", "counts",
             "indices", "usage")


@st.composite
def vq_examples(draw, min_batch: int = 1, max_batch: int = 6, arch=None, fields=VQ_FIELDS,
                max_position_axes: int = MAX_POSITION_AXES):
    """Every argument of every VQ function, sizes consistent with one `VQArchitecture`.

    `z_e` and `indices` share drawn position axes (`positions`, kept in `extra["positions"]`;
    `max_position_axes=0`: always [B, D] and [B]).

    `fields`: which of `VQ_FIELDS` to draw (with what they are made from: `z_e` needs the codebook,
    `usage` the indices, `ema_sums` the counts, `params` and `x` the regime); `vq_examples_for` draws
    only one function's arguments, since each array costs the engine a draw per element. The network
    regime (`strategies.vae.REGIMES`) is drawn first and kept in `extra["regime"]`.
    """
    unknown = sorted(set(fields) - set(VQ_FIELDS))
    if unknown:
        raise ConfigError(f"fields: vq_examples draws some of {list(VQ_FIELDS)}, got unknown {unknown}")
    need = set(fields)
    regime = draw(uniform_choice(REGIMES))
    if arch is None and need & {"params", "x"} and regime != "reach" \
            and draw(uniform_choice(range(CONV_VQ_SHARE))) == CONV_VQ_SHARE - 1:
        arch = draw(conv_vq_architectures(activations=regime_activations(regime)))
    arch = draw(vq_architectures(activations=regime_activations(regime), min_layers=int(regime != "seeded"))) \
        if arch is None else arch
    conv = isinstance(arch, ConvVQArchitecture)
    where = draw(positions(max_position_axes)) if need & {"z_e", "indices", "usage"} else ()
    cap = MAX_CONV_VQ_BATCH if conv else MAX_BATCH_WITH_POSITIONS if where else max_batch
    batch = draw(sizes.size(min_batch, max(min_batch, min(max_batch, cap))))
    vectors = batch * int(np.prod(where, dtype=np.int64))
    codes, dim = arch.num_embeddings, arch.embedding_dim
    args = {"arch": arch, "num_embeddings": codes, "embedding_dim": dim}
    if need & {"codebook", "z_e"}:
        args["codebook"] = draw(_codebook(codes, dim))
    if "z_e" in need:
        args["z_e"] = draw(_encodings(vectors, args["codebook"])).reshape(batch, *where, dim)
    if need & {"indices", "usage"}:
        args["indices"] = np.array(draw(st.lists(st.integers(0, codes - 1), min_size=vectors, max_size=vectors)),
                                   dtype=np.int64).reshape(batch, *where)
    if "counts" in need:
        counts = draw(_counts(codes))
        if not counts.sum() > 0:
            counts[draw(st.integers(0, codes - 1))] = 1.0
        args["counts"] = counts
    if need & {"ema_counts", "ema_sums"}:
        args["ema_counts"] = draw(_counts(codes))
    if "ema_sums" in need:
        # A reachable EMA state: each code's running sum is its running count times a centre, as the update
        # itself produces; independent draws would pair a count of 1e-40 with a sum of 1, an overflow no run makes.
        centres = draw(arrays((codes, dim), -MAX_ABS_Z, MAX_ABS_Z))
        args["ema_sums"] = args["ema_counts"][:, None] * centres
    if need & {"params", "x"}:  # drawn together: the kinks regime pins the first layer to x
        args["params"] = regime_params(arch, regime, draw(st.integers(0, 2**32 - 1)))
        if conv:  # an image [B, C, H, W] from one drawn seed (a draw per pixel is slow)
            shape = (batch, *arch.input_shape)
            args["x"] = draw(st.integers(0, 2**32 - 1).map(lambda seed: seeded_image(seed, shape, regime)))
        else:
            args["x"] = draw(integer_arrays((batch, arch.input_size)) if regime == "kinks"
                             else arrays((batch, arch.input_size), -MAX_ABS_X, MAX_ABS_X))
        if regime == "kinks":
            pin_kinks(arch, args["params"], "encoder", args["x"])
            clear_inexact_kinks(arch, args["params"], x=args["x"], codebook=args.get("codebook"))
    later = {
        "commitment_weight": lambda: draw(st.one_of(st.just(0.25), st.just(0.0), floats(0.0, 2.0))),
        "convention": lambda: draw(conventions()),
        "key": lambda: draw(st.integers(0, 2**64 - 1)),
        "ema_step": lambda: draw(st.integers(0, 50)),
        "decay": lambda: draw(st.one_of(st.just(0.99), st.just(0.0), floats(MIN_DECAY, 0.999))),
        "epsilon": lambda: draw(st.one_of(st.just(1e-5), st.just(0.0), floats(MIN_EPSILON, 0.1))),
        "training": lambda: draw(st.booleans()),
    }
    args.update((name, make()) for name, make in later.items() if name in need)
    if "usage" in need:
        args["usage"] = np.bincount(args["indices"].ravel(), minlength=codes).astype(np.int64)
    return Example({name: args[name] for name in VQ_FIELDS if name in args and (name in need or name == "arch")},
                   {"regime": regime, "positions": where})


BUILDERS = (Builder("vq", VQ_FIELDS, lambda own, **kw: vq_examples(fields=own, **kw)),)


def vq_examples_for(function: str, **kwargs):
    """`vq_examples` drawing only the arguments of VQ function `function`."""
    return pick(BUILDERS, function, **kwargs)


@st.composite
def tie_examples(draw, max_batch: int = 4, max_dim: int = 8, max_codes: int = 6,
                 max_position_axes: int = MAX_POSITION_AXES):
    """Small-integer z_e [B, *positions, D] and codebook with a duplicated nearest row: every distance form is
    exact (entries in [−2, 2], D ≤ 8 ⇒ all partial sums are integers ≤ 128, exact even in bfloat16).

    positions as in `positions` (() half the time: the dense [B, D]; kept in `extra["positions"]`); the tie is
    at a drawn vector, not always the first, so a backend right at position 0 only is seen too."""
    dim = draw(sizes.size(1, max_dim))
    codes = draw(sizes.size(2, max_codes))
    ints = st.integers(-2, 2)
    codebook = np.array(draw(st.lists(st.lists(ints, min_size=dim, max_size=dim), min_size=codes, max_size=codes)),
                        dtype=np.float64)
    where = draw(positions(max_position_axes))
    batch = draw(sizes.size(1, min(max_batch, MAX_BATCH_WITH_POSITIONS) if where else max_batch))
    vectors = batch * int(np.prod(where, dtype=np.int64))
    z_e = np.array(draw(st.lists(st.lists(ints, min_size=dim, max_size=dim), min_size=vectors, max_size=vectors)),
                   dtype=np.float64)
    # Duplicate one vector's nearest code into another slot, so the tie is real and the lowest index matters
    # (for that vector and every other whose nearest code it is).
    nearest = ((z_e[:, None, :] - codebook[None]) ** 2).sum(2).argmin(1)
    source = int(nearest[draw(st.integers(0, vectors - 1))])
    target = draw(st.integers(0, codes - 1).filter(lambda t: t != source))
    codebook[target] = codebook[source]
    return Example({"z_e": z_e.reshape(batch, *where, dim), "codebook": codebook}, {"positions": where})
