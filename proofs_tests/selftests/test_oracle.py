"""The float64 reference against the mpmath oracle (`vaespec.proofs_tests.oracle`): every function
within its target in ulps, the oracle itself exact to far below an ulp, and the measurement able
to fail (the naive formulas the reference replaced are caught)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from vaespec.proofs_tests import oracle
from vaespec.spec.tolerances import REFERENCE_ULPS, sum_ulps

TARGETS = oracle.targets()
# The suite's sample: a few seconds in all; `vaespec fidelity` draws 2000 per function by default.
ELEMENTWISE_SAMPLES, REDUCTION_SAMPLES = 160, 4

@pytest.mark.parametrize("name", sorted(TARGETS))
def test_reference_within_target(name):
    target = TARGETS[name]
    samples = ELEMENTWISE_SAMPLES if target.kind == "elementwise" else REDUCTION_SAMPLES
    m = oracle.measure(target, samples, seed=1)
    assert m.passed, (f"{name}: {m.unexplained:.3g} ulps of the {m.measure} > target {m.target:.3g} "
                      f"at {m.worst_at} (worst {m.worst:.3g}); domain {m.domain}")


def test_every_activation_and_its_derivative_is_measured():
    from vaespec.spec.architecture import ACTIVATIONS
    assert {f"{a}{suffix}" for a in ACTIVATIONS for suffix in ("", "′")} <= TARGETS.keys()
    assert {"kl_per_coordinate", "reparameterize", "squared_difference (x̂ − x)²", "gaussian_log_density",
            "reconstruction_loss", "kl_divergence", "squared_distances (VQ)"} <= TARGETS.keys()


def test_ulp_definition():
    with mpmath.workdps(oracle.DIGITS):
        assert oracle.ulp(mpmath.mpf(1)) == mpmath.mpf(2) ** -52
        assert oracle.ulp(mpmath.mpf("0.75")) == mpmath.mpf(2) ** -53
        assert oracle.ulp(mpmath.mpf(2) ** -1060) == mpmath.mpf(2) ** -1074  # subnormal spacing
        assert oracle.ulps(1.0 + 2.0**-52, mpmath.mpf(1)) == 1.0
        # fl(0.1) = 0.1 + 5.55e-18 = 0.1 + 0.4·2⁻⁵⁶; one step up adds an ulp
        assert oracle.ulps(math.nextafter(0.1, 1.0), mpmath.mpf("0.1")) == pytest.approx(1.4, abs=1e-9)


@pytest.mark.parametrize("name", ["gelu", "gelu′", "silu′", "tanh′", "sigmoid′", "kl_per_coordinate",
                                  "gaussian_log_density", "reparameterize"])
def test_oracle_is_exact_to_far_below_an_ulp(name):
    """The oracle at DIGITS agrees with itself at twice the digits to 10⁻³⁰ relative (of M)."""
    target = TARGETS[name]
    drawn = target.sample(np.random.default_rng(3), 40)
    for i in range(drawn[0].size):
        with mpmath.workdps(oracle.DIGITS):
            point = tuple(mpmath.mpf(float(a[i])) for a in drawn)
            low = target.exact(*point)
            scale = abs(target.magnitude(*point) if target.magnitude else low)
        with mpmath.workdps(2 * oracle.DIGITS):
            high = target.exact(*point)
        assert abs(low - high) <= mpmath.mpf(10) ** -30 * scale, (name, point)


def _naive_kl(mu, lv):
    return 0.5 * (np.exp(lv) - 1.0 - lv + mu * mu)


def _naive_gelu(y):
    from vaespec.reference.activations import erf
    return 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)))


@pytest.mark.parametrize("name, naive", [("kl_per_coordinate", _naive_kl), ("gelu", _naive_gelu),
                                         ("tanh′", lambda y: 1.0 - np.tanh(y) ** 2),
                                         ("sigmoid′", lambda y: 1 / (1 + np.exp(-y)) * (1 - 1 / (1 + np.exp(-y))))])
def test_the_naive_formulas_miss_the_target(name, naive):
    """The measurement can fail: each formula the reference replaced is off by orders of magnitude."""
    from dataclasses import replace
    m = oracle.measure(replace(TARGETS[name], reference=naive, libm=None), ELEMENTWISE_SAMPLES, seed=1)
    assert not m.passed and m.worst > 1e3 * REFERENCE_ULPS, (name, m.worst)


def test_reduction_bound_is_the_error_model():
    """sum_ulps(n) = 2·term + γ_n/u: n roundings above each term, each at most one ulp of the sum's scale."""
    assert sum_ulps(0) == 2 * REFERENCE_ULPS
    assert sum_ulps(100) == pytest.approx(2 * REFERENCE_ULPS + 100, rel=1e-12)
    assert sum_ulps(10, term_ulps=0.5) == pytest.approx(1 + 10, rel=1e-12)
    # and a reduction that drops terms is caught
    from dataclasses import replace
    target = replace(TARGETS["kl_divergence"], reference=lambda mu, lv, c: np.asarray(0.0))
    assert not oracle.measure(target, REDUCTION_SAMPLES, seed=1).passed


def test_fidelity_command(tmp_path, capsys):
    import json

    from vaespec.proofs_tests.cli import main
    report = tmp_path / "fidelity.json"
    assert main(["fidelity", "--samples", "40", "--function", "kl_per", "--function", "tanh",
                 "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "kl_per_coordinate" in out and "tanh′" in out and "2 within target" not in out
    data = json.loads(report.read_text())
    assert {r["name"] for r in data["results"]} == {"kl_per_coordinate", "tanh", "tanh′"}
    assert all(r["passed"] and r["worst"] <= REFERENCE_ULPS for r in data["results"])
    assert main(["fidelity", "--function", "no-such-function"]) == 2
