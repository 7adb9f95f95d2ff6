"""Hypothesis strategies for the Bayesian chapter (`vaespec.spec.bayes`): linear-Gaussian models.

W [output, latent] with 1 ≤ L ≤ D ≤ 5 and entries |W| ≤ 1.5, |b| ≤ 2, x within `MAX_ABS_X`,
log σ² within ±1.5: M = WᵀW + σ²I stays well conditioned (κ ≤ 1 + 34/e^−1.5 ≈ 150), so the
normwise bounds of `vaespec.reference.bayes` stay meaningful in float32. `orthogonal=True` draws
W = Q·diag(s) with orthonormal columns Q, so the exact posterior is diagonal (the contract's
encoder can represent it); `spread` bounds s_max/s_min (the statistical laws keep the
posterior's variances within a small ratio, where the delta method is accurate at K = 16).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .vae import MAX_ABS_X, Builder, Example, arrays, floats, pick

MAX_ABS_WEIGHT = 1.5
MAX_ABS_BIAS = 2.0
MAX_ABS_NOISE_LOG_VAR = 1.5


@st.composite
def linear_gaussian_examples(draw, max_output: int = 5, max_latent: int = 5, max_batch: int = 4,
                             orthogonal: bool = False, spread: float = 4.0):
    """(x, weight, bias, noise_log_var) of a linear-Gaussian VAE; extra: `q_offset`, `q_log_var` [latent]
    for an arbitrary diagonal encoder and `q_scale` [latent] in [1, 1.3] for the statistical laws."""
    output = draw(st.integers(1, max_output))
    latent = draw(st.integers(1, min(output, max_latent)))
    batch = draw(st.integers(1, max_batch))
    if orthogonal:
        raw = draw(arrays((output, latent), -1.0, 1.0)) + np.eye(output, latent)  # full column rank
        q, _ = np.linalg.qr(raw)
        low = draw(floats(0.3, 1.5))
        weight = q * (low * draw(arrays((latent,), 1.0, spread)))
    else:
        weight = draw(arrays((output, latent), -MAX_ABS_WEIGHT, MAX_ABS_WEIGHT))
    return Example({
        "x": draw(arrays((batch, output), -MAX_ABS_X, MAX_ABS_X)),
        "weight": weight,
        "bias": draw(arrays((output,), -MAX_ABS_BIAS, MAX_ABS_BIAS)),
        "noise_log_var": draw(floats(-MAX_ABS_NOISE_LOG_VAR, MAX_ABS_NOISE_LOG_VAR)),
    }, {"q_offset": draw(arrays((latent,), -2.0, 2.0)), "q_log_var": draw(arrays((latent,), -2.0, 2.0)),
        "q_scale": draw(arrays((latent,), 1.0, 1.3)), "q_shift": draw(arrays((latent,), -0.3, 0.3))})


BUILDERS = (Builder("bayes", ("x", "weight", "bias", "noise_log_var"), lambda own: linear_gaussian_examples()),)


def examples_for(function: str):
    """The strategy whose examples carry the arguments of bayes-chapter `function`."""
    return pick(BUILDERS, function)
