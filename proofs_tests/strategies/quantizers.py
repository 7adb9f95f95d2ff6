"""Hypothesis strategies for the quantizers chapter (`vaespec.spec.quantizers`), drawn from the Arg metadata.

One builder serves every function of the chapter: it draws the sizes and the levels first, then each
argument the function declares, by its kind and name:

- `z` [batch, dim] ("array"): per entry, a uniform value in [−4, 4], exactly 0, a large value (±8),
  or a point on or next to a rounding boundary of FSQ — z* = atanh((k + ½ + offset)/half_l) − shift,
  where fsq_bound(z*) = k + ½ — moved by 0 or ±10⁻¹², ±10⁻⁶, ±10⁻³: the inputs where a backend's
  rounding of the bound may differ from the reference's, and LFQ's sign change at 0.
- `levels` [dim] ("index" with a stated range): from the Arg's `low` (2) to `max_level` (9) levels per coordinate.
- `indices`: integers in [0, ∏ L) beside `levels` (FSQ), in [0, 2^dim) otherwise (LFQ); `codebook_dim` = dim;
- `inv_temperature`: vqp's default 100, or in [0.01, 10]; `diversity_gamma`: 1, or in [0, 2].

Residual VQ's arguments (`z_e`, `codebooks`, `num_stages`) are drawn together by `rvq_examples`.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from vaespec.spec.quantizers import LEVELS, fsq_constants

from . import sizes
from .vae import Builder, Example, floats

MAX_ABS_Z = 4.0
NUDGES = (0.0, 1e-12, -1e-12, 1e-6, -1e-6, 1e-3, -1e-3)


def boundaries(level: int) -> np.ndarray:
    """The z at which fsq_bound(z) = k + ½ for each rounding boundary k + ½ inside the bound's range."""
    h, o, s, _ = (np.asarray(c, dtype=np.float64).item() for c in fsq_constants([level]))
    ks = np.arange(-(level // 2), (level + 1) // 2 - 1) + 0.5
    return np.arctanh((ks + o) / h) - s


@st.composite
def z_entries(draw, level: int) -> float:
    """One entry of z for a coordinate with `level` levels (see the module doc)."""
    kind = draw(st.sampled_from(("uniform", "uniform", "boundary", "boundary", "zero", "large")))
    if kind == "uniform":
        return draw(floats(-MAX_ABS_Z, MAX_ABS_Z))
    if kind == "zero":
        return draw(st.sampled_from((0.0, 1e-12, -1e-12, 1e-6, -1e-6)))
    if kind == "large":
        return draw(st.sampled_from((-8.0, 8.0)))
    points = boundaries(level)
    if points.size == 0:
        return 0.0
    return float(draw(st.sampled_from(list(points)))) + draw(st.sampled_from(NUDGES))


@st.composite
def quantizer_examples(draw, own=(), max_batch: int = 6, max_dim: int = 4, max_level: int = 9):
    """The arguments `own` of a quantizers-chapter function, drawn together (sizes and levels shared)."""
    dim = draw(sizes.size(1, max_dim))
    low = int(LEVELS.low)
    levels = np.array(draw(st.lists(st.integers(low, max_level), min_size=dim, max_size=dim)), dtype=np.int64)
    batch = draw(sizes.size(1, max_batch))
    args: dict = {}
    for name in own:
        if name == "levels":
            args[name] = levels
        elif name == "z":
            args[name] = np.array([[draw(z_entries(int(level))) for level in levels] for _ in range(batch)],
                                  dtype=np.float64).reshape(batch, dim)
        elif name == "indices":  # FSQ's: rows of the implicit codebook; LFQ's: vertices of the hypercube
            size = int(np.prod(levels)) if "levels" in own else 2**dim
            args[name] = np.array(draw(st.lists(st.integers(0, size - 1), min_size=batch, max_size=batch)),
                                  dtype=np.int64)
        elif name == "codebook_dim":
            args[name] = dim
        elif name == "inv_temperature":  # vqp's default 100 (confident, entropies near 0) and a range around 1
            args[name] = draw(st.one_of(st.just(100.0), floats(0.01, 10.0)))
        elif name == "diversity_gamma":
            args[name] = draw(st.one_of(st.just(1.0), floats(0.0, 2.0)))
        else:
            raise KeyError(name)
    return Example(args)


FIELDS = ("z", "levels", "indices", "codebook_dim", "inv_temperature", "diversity_gamma")
BUILDERS = (Builder("quantizers", FIELDS, lambda own, **kw: quantizer_examples(own=own, **kw)),)


@st.composite
def rvq_examples(draw, own=(), max_batch: int = 5, max_dim: int = 4, max_codes: int = 6, max_stages: int = 4):
    """Residual VQ: S stages of K codes with the stage scale halving (as trained residual codebooks shrink), z_e
    near sums of one code per stage (so later stages have residuals to quantize) or uniform; exact ties by
    duplicated rows, and n from 1 to S."""
    stages, codes = draw(sizes.size(1, max_stages)), draw(sizes.size(1, max_codes))
    dim, batch = draw(sizes.size(1, max_dim)), draw(sizes.size(1, max_batch))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    books = rng.standard_normal((stages, codes, dim)) * (0.5 ** np.arange(stages))[:, None, None]
    if codes > 1 and draw(st.booleans()):
        books[:, -1] = books[:, 0]  # duplicated rows: exact ties go to the lowest index
    picks = rng.integers(0, codes, (batch, stages))
    near = books[np.arange(stages)[None, :], picks].sum(axis=1) + 0.1 * rng.standard_normal((batch, dim))
    z_e = near if draw(st.booleans()) else rng.uniform(-2.0, 2.0, (batch, dim))
    values = {"z_e": z_e, "codebooks": books, "num_stages": draw(st.integers(1, stages))}
    return Example({name: values[name] for name in own})


RVQ_FIELDS = ("z_e", "codebooks", "num_stages")
BUILDERS = (*BUILDERS, Builder("quantizers", RVQ_FIELDS, lambda own, **kw: rvq_examples(own=own, **kw)))
