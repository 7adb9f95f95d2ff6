"""The Python API fuzz harness (`vaespec.proofs_tests.fuzz.api`): it covers every public function, finds no
bad outcome at the CI size, and — negative controls — classifies a foreign exception, a silent NaN, an
unnamed error, an accepted NaN and a hang as the bad outcomes they are."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from vaespec import impl, reference
from vaespec.impl import vq as impl_vq
from vaespec.proofs_tests.fuzz import api as fuzz_api
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import DomainError

CI_SIZE = 1  # random draws per parameter on top of the fixed catalogue; ~15 s on 2 loaded cores


@pytest.fixture(scope="module")
def report():
    return fuzz_api.run(size=CI_SIZE, seed=0)


def test_no_bad_outcome_at_the_ci_size(report):
    assert report["bad"] == [], "\n".join(" | ".join(map(str, case)) for case in report["bad"][:30])
    assert all(report["outcomes"][k] == 0 for k in fuzz_api.BAD)
    assert report["outcomes"]["refused"] > 5000 and report["outcomes"]["accepted"] > 1000


def test_every_public_function_is_covered(report):
    assert report["uncovered"] == []
    names = {t.name for t in fuzz_api.targets()}
    for function in FUNCTIONS:  # every contract function, on both backends, and every VJP
        for backend in ("ReferenceBackend", "TorchBackend"):
            assert f"{backend}.{function}" in names
            assert not FUNCTIONS[function].differentiable or f"{backend}.vjp[{function}]" in names
    for module in (reference, impl, impl_vq):  # every name of the layers' __all__ that is a callable to check
        for name in module.__all__:
            obj = getattr(module, name)
            assert fuzz_api.skip(obj, name) or f"{module.__name__}.{name}" in names, name
    for category in ("spec", "reference", "impl", "reference backend", "torch backend", "keys", "tolerances",
                     "domains"):
        assert report["calls"].get(category, 0) > 50, category


def _outcome(fn, bad_value=math.nan, accept=False):
    """Classify one call of `fn(x=bad_value)`, as the harness does."""
    target = fuzz_api.Target("test", "test.fn", fn, "vae", "numpy")
    return fuzz_api.classify(target, "x", fuzz_api.Bad("test", bad_value, accept), {"x": bad_value})[0]


def test_negative_controls_are_bad_outcomes(monkeypatch):
    def named(x):
        raise DomainError("x: expected finite values, got nan")

    def unnamed(x):
        raise DomainError("something is not finite")

    def foreign(x):
        return {}["missing"]

    def silent_nan(x):
        return np.array([x])

    def accepts(x):
        return np.zeros(2)

    def hangs(x):
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(fuzz_api, "TIME_LIMIT", 0.2)
    assert _outcome(named) == "refused"
    assert _outcome(unnamed) == "unnamed"
    assert _outcome(foreign) == "foreign"
    assert _outcome(silent_nan) == "non-finite"
    assert _outcome(accepts) == "accepted-bad"
    assert _outcome(accepts, accept=True) == "accepted"
    assert _outcome(hangs) == "timeout"


def test_a_broken_boundary_is_found(monkeypatch):
    # Negative control end to end: the reference's kl_divergence without its checks must show up as bad outcomes.
    from vaespec.reference import losses
    from vaespec.spec.conventions import PRESETS

    monkeypatch.setattr(losses, "validate_args", lambda function, args: {**args, "convention": PRESETS["elbo"]})
    monkeypatch.setattr(losses, "finite", lambda function, result, what="result": result)
    targets = [t for t in fuzz_api.targets() if t.name == "vaespec.reference.kl_divergence"]
    monkeypatch.setattr(fuzz_api, "targets", lambda: targets)
    broken = fuzz_api.run(size=0)
    assert broken["outcomes"]["foreign"] + broken["outcomes"]["non-finite"] + broken["outcomes"]["accepted-bad"] > 10


def test_cli_prints_counts(capsys, monkeypatch):
    few = [t for t in fuzz_api.targets() if t.name.startswith("TorchBackend.kl_divergence")]
    monkeypatch.setattr(fuzz_api, "targets", lambda: few)
    assert fuzz_api.main(["--size", "0"]) == 0
    out = capsys.readouterr().out
    assert "calls  torch backend" in out and "BAD    foreign" in out
