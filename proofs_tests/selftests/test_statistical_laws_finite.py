"""The statistical laws (a mean over N replications or samples against a z·s/√N allowance) reject a non-finite value.

A NaN in one replication makes the mean, the spread and so every comparison NaN, and `x > NaN` is false: before
`laws.compare.require_finite`, a backend whose `iwae_bound` returned NaN (or ±inf) for one row of a large batch
passed the three IWAE laws with ratio 0, and one whose `reparameterize` did so passed `reparameterize_moments`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import Phase

from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.strategies.profiles import profile_settings
from vaespec.reference.backend import ReferenceBackend

STATISTICAL = ["iwae_bound_monotone_in_particles", "iwae_bound_le_log_evidence", "iwae_gap_matches_delta_method"]
SAMPLED = ["reparameterize_moments", "kl_eq_monte_carlo"]  # the statistical laws of reparameterize's N samples


class LastRowNotFinite(ReferenceBackend):
    """The reference, but `iwae_bound`'s last row is `value` whenever the batch has more than one row."""
    name = "last-row-not-finite"

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def iwae_bound(self, arch, params, x, eps, decoder_log_var, likelihood):
        out = np.array(super().iwae_bound(arch, params, x, eps, decoder_log_var, likelihood), dtype=np.float64)
        if out.shape[0] > 1:
            out[-1] = self.value
        return out


class LastSampleNotFinite(ReferenceBackend):
    """The reference, but `reparameterize`'s last row is `value` whenever the batch has more than one row."""
    name = "last-sample-not-finite"

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def reparameterize(self, mu, log_var, eps):
        out = np.array(super().reparameterize(mu, log_var, eps), dtype=np.float64)
        if out.shape[0] > 1:
            out[-1] = self.value
        return out


def _failing_fast():
    settings = profile_settings("dev")
    # the first example fails; shrinking it re-runs N-replication bounds and changes no verdict
    return type(settings)(settings, max_examples=2, phases=[p for p in settings.phases if p is not Phase.shrink])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("law", STATISTICAL)
def test_a_non_finite_replication_fails_the_law(law, value):
    result = run_law(law, LastRowNotFinite(value), _failing_fast())
    assert result.verdict == "FAIL", (law, value, result.verdict, result.message[:300])
    assert "values are not finite" in result.message and f"{float(value)!r}" in result.message, result.message[:300]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("law", SAMPLED)
def test_a_non_finite_sample_fails_the_law(law, value):
    result = run_law(law, LastSampleNotFinite(value), _failing_fast())
    assert result.verdict == "FAIL", (law, value, result.verdict, result.message[:300])
    assert "values are not finite" in result.message, result.message[:300]


@pytest.mark.parametrize("law", STATISTICAL + SAMPLED)
def test_the_reference_passes_the_same_law(law):
    settings = profile_settings("dev")
    assert run_law(law, ReferenceBackend(), type(settings)(settings, max_examples=2)).verdict == "pass"
