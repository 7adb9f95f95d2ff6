"""Hypothesis strategies for the quantizers chapter (`vaespec.spec.quantizers`), drawn from the Arg metadata.

One builder serves every function of the chapter: it draws the sizes and the levels first, then each
argument the function declares, by its kind and name:

- `z` [batch, *positions, dim] ("array"; positions as the VQ chapter's, `strategies.vq.positions`: () half the
  time, else 1–2 axes of 1–3, kept in `extra["positions"]`): per entry, a uniform value in [−4, 4], exactly 0, a
  large value (±8), or a point on or next to a rounding boundary of FSQ — z* = atanh((k + ½ + offset)/half_l) − shift,
  where fsq_bound(z*) = k + ½ — moved by 0 or ±10⁻¹², ±10⁻⁶, ±10⁻³: the inputs where a backend's
  rounding of the bound may differ from the reference's, and LFQ's sign change at 0.
- `levels` [dim] ("index" with a stated range): from the Arg's `low` (2) to `max_level` (9) levels per coordinate.
- `indices` [batch, *positions]: integers in [0, ∏ L) beside `levels` (FSQ), in [0, 2^dim) otherwise (LFQ);
  `codebook_dim` = dim;
- `inv_temperature`: vqp's default 100, or in [0.01, 10]; `diversity_gamma`: 1, or in [0, 2].

Residual VQ's arguments (`z_e`, `codebooks`, `num_stages` and the EMA state) are drawn together by `rvq_examples`,
z_e [batch, *positions, embedding] with the VQ chapter's position axes (`strategies.vq.positions`: () half the time).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.quantizers import LEVELS, fsq_constants

from . import sizes
from .sizes import strategy_cache
from .vae import Builder, Example, floats
from .vq import MAX_BATCH_WITH_POSITIONS, MAX_POSITION_AXES, MIN_DECAY, MIN_EPSILON, positions

MAX_ABS_Z = 4.0
NUDGES = (0.0, 1e-12, -1e-12, 1e-6, -1e-6, 1e-3, -1e-3)


def boundaries(level: int) -> np.ndarray:
    """The z at which fsq_bound(z) = k + ½ for each rounding boundary k + ½ inside the bound's range."""
    h, o, s, _ = (np.asarray(c, dtype=np.float64).item() for c in fsq_constants([level]))
    ks = np.arange(-(level // 2), (level + 1) // 2 - 1) + 0.5
    return np.arctanh((ks + o) / h) - s


_KINDS = st.sampled_from(("uniform", "uniform", "boundary", "boundary", "zero", "large"))
_UNIFORM = floats(-MAX_ABS_Z, MAX_ABS_Z)
_ZEROS = st.sampled_from((0.0, 1e-12, -1e-12, 1e-6, -1e-6))
_LARGE = st.sampled_from((-8.0, 8.0))
_NUDGES = st.sampled_from(NUDGES)


@strategy_cache
def _boundary_points(level: int):
    points = boundaries(level)
    return None if points.size == 0 else st.sampled_from([float(p) for p in points])


@strategy_cache  # one strategy per level: drawn once per entry of z
@st.composite
def z_entries(draw, level: int) -> float:
    """One entry of z for a coordinate with `level` levels (see the module doc)."""
    kind = draw(_KINDS)
    if kind == "uniform":
        return draw(_UNIFORM)
    if kind == "zero":
        return draw(_ZEROS)
    if kind == "large":
        return draw(_LARGE)
    points = _boundary_points(level)
    if points is None:
        return 0.0
    return draw(points) + draw(_NUDGES)


@st.composite
def quantizer_examples(draw, own=(), max_batch: int = 6, max_dim: int = 4, max_level: int = 9,
                       max_position_axes: int = MAX_POSITION_AXES):
    """The arguments `own` of a quantizers-chapter function, drawn together (sizes, positions and levels shared)."""
    dim = draw(sizes.size(1, max_dim))
    low = int(LEVELS.low)
    levels = np.array(draw(st.lists(st.integers(low, max_level), min_size=dim, max_size=dim)), dtype=np.int64)
    where = draw(positions(max_position_axes)) if {"z", "indices"} & set(own) else ()
    batch = draw(sizes.size(1, min(max_batch, MAX_BATCH_WITH_POSITIONS) if where else max_batch))
    vectors = batch * int(np.prod(where, dtype=np.int64))
    args: dict = {}
    for name in own:
        if name == "levels":
            args[name] = levels
        elif name == "z":
            args[name] = np.array([[draw(z_entries(int(level))) for level in levels] for _ in range(vectors)],
                                  dtype=np.float64).reshape(batch, *where, dim)
        elif name == "indices":  # FSQ's: rows of the implicit codebook; LFQ's: vertices of the hypercube
            size = int(np.prod(levels)) if "levels" in own else 2**dim
            args[name] = np.array(draw(st.lists(st.integers(0, size - 1), min_size=vectors, max_size=vectors)),
                                  dtype=np.int64).reshape(batch, *where)
        elif name == "codebook_dim":
            args[name] = dim
        elif name == "inv_temperature":  # vqp's default 100 (confident, entropies near 0) and a range around 1
            args[name] = draw(st.one_of(st.just(100.0), floats(0.01, 10.0)))
        elif name == "diversity_gamma":
            args[name] = draw(st.one_of(st.just(1.0), floats(0.0, 2.0)))
        else:
            raise KeyError(name)
    return Example(args, {"positions": where})


FIELDS = ("z", "levels", "indices", "codebook_dim", "inv_temperature", "diversity_gamma")
BUILDERS = (Builder("quantizers", FIELDS, lambda own, **kw: quantizer_examples(own=own, **kw)),)


MAX_EMA_COUNT, MIN_EMA_COUNT = 20.0, 1e-3  # as the VQ chapter's counts: 0 or ≥ 1e-3 (none rounds to 0 in float32)


def _ema_state(rng, stages: int, codes: int, dim: int, fresh: bool) -> dict:
    """Each stage's EMA state: fresh (all 0, step 0: a run's first update) or running — counts 0 or in
    [1e-3, 20], sums = counts × centres in [−3, 3] (a reachable state: the update itself keeps sums/counts at a
    centre), steps in [0, 50]."""
    if fresh:
        return {"ema_counts": np.zeros((stages, codes)), "ema_sums": np.zeros((stages, codes, dim)),
                "ema_step": np.zeros(stages, dtype=np.int64)}
    counts = np.where(rng.random((stages, codes)) < 0.25, 0.0, rng.uniform(MIN_EMA_COUNT, MAX_EMA_COUNT,
                                                                            (stages, codes)))
    return {"ema_counts": counts, "ema_sums": counts[..., None] * rng.uniform(-3.0, 3.0, (stages, codes, dim)),
            "ema_step": rng.integers(0, 51, stages).astype(np.int64)}


@st.composite
def rvq_examples(draw, own=(), max_batch: int = 5, max_dim: int = 4, max_codes: int = 6, max_stages: int = 4,
                 max_position_axes: int = MAX_POSITION_AXES):
    """Residual VQ: S stages of K codes with the stage scale halving (as trained residual codebooks shrink), z_e
    [batch, *positions, D] near sums of one code per stage (so later stages have residuals to quantize) or uniform;
    exact ties by duplicated rows, and n from 1 to S. The EMA state (`_ema_state`), decay (0.99, 0 or in
    [10⁻³, 0.999]), ε (10⁻⁵, 0 or in [10⁻⁵, 0.1]) and the training flag as the VQ chapter draws them."""
    stages, codes = draw(sizes.size(1, max_stages)), draw(sizes.size(1, max_codes))
    dim = draw(sizes.size(1, max_dim))
    where = draw(positions(max_position_axes))
    batch = draw(sizes.size(1, min(max_batch, MAX_BATCH_WITH_POSITIONS) if where else max_batch))
    vectors = batch * int(np.prod(where, dtype=np.int64))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    books = rng.standard_normal((stages, codes, dim)) * (0.5 ** np.arange(stages))[:, None, None]
    if codes > 1 and draw(st.booleans()):
        books[:, -1] = books[:, 0]  # duplicated rows: exact ties go to the lowest index
    picks = rng.integers(0, codes, (vectors, stages))
    near = books[np.arange(stages)[None, :], picks].sum(axis=1) + 0.1 * rng.standard_normal((vectors, dim))
    z_e = near if draw(st.booleans()) else rng.uniform(-2.0, 2.0, (vectors, dim))
    values = {"z_e": z_e.reshape(batch, *where, dim), "codebooks": books, "num_stages": draw(st.integers(1, stages))}
    if {"ema_counts", "ema_sums", "ema_step"} & set(own):
        values.update(_ema_state(rng, stages, codes, dim, fresh=draw(st.booleans())))
    later = {
        "decay": lambda: draw(st.one_of(st.just(0.99), st.just(0.0), floats(MIN_DECAY, 0.999))),
        "epsilon": lambda: draw(st.one_of(st.just(1e-5), st.just(0.0), floats(MIN_EPSILON, 0.1))),
        "training": lambda: draw(st.booleans()),
    }
    values.update((name, make()) for name, make in later.items() if name in own)
    return Example({name: values[name] for name in own}, {"positions": where})


RVQ_FIELDS = ("z_e", "codebooks", "num_stages", "ema_counts", "ema_sums", "ema_step", "decay", "epsilon", "training")
BUILDERS = (*BUILDERS, Builder("quantizers", RVQ_FIELDS, lambda own, **kw: rvq_examples(own=own, **kw)))
