"""Hypothesis strategies for the VQ-VAE chapter, exported for users' own suites.

    from vaespec.proofs_tests.strategies_vq import vq_examples
    @given(vq_examples())
    def test_my_quantizer(ex): z_q, k = my_quantize(ex.args["z_e"], ex.args["codebook"])

One `Example` carries every argument of every VQ function (named as in
`vaespec.spec.vq.FUNCTIONS`; `vq_examples_for(function)`: only that function's), with consistent sizes: `codebook` [K, D] matches
`arch.num_embeddings` × `arch.embedding_dim`, `z_e` is [B, D], `x` [B, input]. Some draws put
`z_e` on or near codebook rows and duplicate rows, so ties and near-ties are exercised, not
just the generic case.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from vaespec.reference.init import init_params
from vaespec.spec.architecture import ACTIVATIONS, VQArchitecture
from vaespec.spec.errors import ConfigError
from vaespec.spec.init import init_codebook

from . import sizes
from .strategies import MAX_ABS_X, Example, arrays, conventions, floats

MAX_ABS_Z = 3.0
MAX_COUNT = 20.0
MIN_COUNT = 1e-3
# ε is 0 or at least this: smaller values underflow in a narrow dtype's arithmetic (the law's stated domain).
MIN_EPSILON = 1e-5


def _counts(codes: int):
    """Counts ≥ 0, each 0 or ≥ MIN_COUNT: a count of 1e-300 would round to 0 in float32 and change the problem."""
    return st.lists(st.one_of(st.just(0.0), floats(MIN_COUNT, MAX_COUNT)), min_size=codes, max_size=codes).map(
        lambda values: np.array(values, dtype=np.float64))


@st.composite
def vq_architectures(draw, max_layers: int = 2, max_width: int = 8, max_features: int = 6, max_dim: int = 5,
                     max_codes: int = 8):
    widths = sizes.layer_widths(max_layers, max_width)
    return VQArchitecture(
        input_size=draw(sizes.size(1, max_features)),
        embedding_dim=draw(sizes.size(1, max_dim)),
        num_embeddings=draw(sizes.size(1, max_codes)),
        encoder_sizes=tuple(draw(widths)),
        decoder_sizes=tuple(draw(widths)),
        activation=draw(st.sampled_from(tuple(ACTIVATIONS))),
    )


@st.composite
def _codebook(draw, codes: int, dim: int):
    """N(0, 1) from a drawn key (init_codebook), scaled; sometimes with a duplicated row."""
    codebook = init_codebook(codes, dim, draw(st.integers(0, 2**32 - 1))) * draw(st.sampled_from((0.5, 1.0, 2.0)))
    if codes >= 2 and draw(st.booleans()):
        i, j = draw(st.lists(st.integers(0, codes - 1), min_size=2, max_size=2, unique=True))
        codebook[j] = codebook[i]
    return codebook


@st.composite
def _encodings(draw, batch: int, codebook: np.ndarray):
    """z_e: free draws, or codebook rows plus a small offset (near the Voronoi cells' centres and edges)."""
    free = draw(arrays((batch, codebook.shape[1]), -MAX_ABS_Z, MAX_ABS_Z))
    if not draw(st.booleans()):
        return free
    rows = np.array(draw(st.lists(st.integers(0, codebook.shape[0] - 1), min_size=batch, max_size=batch)))
    scale = draw(st.sampled_from((0.0, 1e-3, 0.3)))
    return codebook[rows] + scale * free / MAX_ABS_Z


VQ_FIELDS = ("arch", "params", "x", "z_e", "codebook", "commitment_weight", "convention", "num_embeddings",
             "embedding_dim", "key", "ema_counts", "ema_sums", "ema_step", "decay", "epsilon", "training", "counts",
             "indices", "usage")


@st.composite
def vq_examples(draw, min_batch: int = 1, max_batch: int = 6, arch=None, fields=VQ_FIELDS):
    """Every argument of every VQ function, sizes consistent with one `VQArchitecture`.

    `fields`: which of `VQ_FIELDS` to draw (with what they are made from: `z_e` needs the codebook,
    `usage` the indices, `ema_sums` the counts); `vq_examples_for` draws only one function's
    arguments, since each array costs the engine a draw per element.
    """
    unknown = sorted(set(fields) - set(VQ_FIELDS))
    if unknown:
        raise ConfigError(f"fields: vq_examples draws some of {list(VQ_FIELDS)}, got unknown {unknown}")
    need = set(fields)
    arch = draw(vq_architectures()) if arch is None else arch
    batch = draw(sizes.size(min_batch, max_batch))
    codes, dim = arch.num_embeddings, arch.embedding_dim
    args = {"arch": arch, "num_embeddings": codes, "embedding_dim": dim}
    if need & {"codebook", "z_e"}:
        args["codebook"] = draw(_codebook(codes, dim))
    if "z_e" in need:
        args["z_e"] = draw(_encodings(batch, args["codebook"]))
    if need & {"indices", "usage"}:
        args["indices"] = np.array(draw(st.lists(st.integers(0, codes - 1), min_size=batch, max_size=batch)),
                                   dtype=np.int64)
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
    later = {
        "params": lambda: init_params(arch, draw(st.integers(0, 2**32 - 1))),
        "x": lambda: draw(arrays((batch, arch.input_size), -MAX_ABS_X, MAX_ABS_X)),
        "commitment_weight": lambda: draw(st.one_of(st.just(0.25), st.just(0.0), floats(0.0, 2.0))),
        "convention": lambda: draw(conventions()),
        "key": lambda: draw(st.integers(0, 2**64 - 1)),
        "ema_step": lambda: draw(st.integers(0, 50)),
        "decay": lambda: draw(st.one_of(st.just(0.99), st.just(0.0), floats(0.0, 0.999))),
        "epsilon": lambda: draw(st.one_of(st.just(1e-5), st.just(0.0), floats(MIN_EPSILON, 0.1))),
        "training": lambda: draw(st.booleans()),
    }
    args.update((name, make()) for name, make in later.items() if name in need)
    if "usage" in need:
        args["usage"] = np.bincount(args["indices"], minlength=codes).astype(np.int64)
    return Example({name: args[name] for name in VQ_FIELDS if name in args and (name in need or name == "arch")})


def vq_examples_for(function: str, **kwargs):
    """`vq_examples` drawing only the arguments of VQ function `function`."""
    from vaespec.spec.contract import FUNCTIONS

    return vq_examples(fields=tuple(a.name for a in FUNCTIONS[function].args), **kwargs)


@st.composite
def tie_examples(draw, max_batch: int = 4, max_dim: int = 8, max_codes: int = 6):
    """Small-integer z_e and codebook with duplicated nearest rows: every distance form is exact
    (entries in [−2, 2], D ≤ 8 ⇒ all partial sums are integers ≤ 128, exact even in bfloat16)."""
    dim = draw(sizes.size(1, max_dim))
    codes = draw(sizes.size(2, max_codes))
    ints = st.integers(-2, 2)
    codebook = np.array(draw(st.lists(st.lists(ints, min_size=dim, max_size=dim), min_size=codes, max_size=codes)),
                        dtype=np.float64)
    batch = draw(sizes.size(1, max_batch))
    z_e = np.array(draw(st.lists(st.lists(ints, min_size=dim, max_size=dim), min_size=batch, max_size=batch)),
                   dtype=np.float64)
    # Duplicate each row's nearest code into a later slot, so the tie is real and the lowest index matters.
    nearest = ((z_e[:, None, :] - codebook[None]) ** 2).sum(2).argmin(1)
    source = int(nearest[0])
    target = draw(st.integers(0, codes - 1).filter(lambda t: t != source))
    codebook[target] = codebook[source]
    return Example({"z_e": z_e, "codebook": codebook})
