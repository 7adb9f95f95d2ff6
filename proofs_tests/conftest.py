"""vaespec's own suite: backend parametrization, Hypothesis profile, JSON report."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import settings

from vaespec.proofs_tests import profiles  # noqa: F401  (registers the vaespec-* profiles)
from vaespec.proofs_tests.backends import label
from vaespec.proofs_tests.plugin import selected_backends

_RESULTS: list[dict] = []


def pytest_configure(config):
    # CI selects the derandomized profile; VAESPEC_PROFILE overrides; --hypothesis-profile wins over both.
    if not config.getoption("--hypothesis-profile", default=None):
        name = os.environ.get("VAESPEC_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
        settings.load_profile(f"vaespec-{name}")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        backends = selected_backends(metafunc.config)
        metafunc.parametrize("backend", backends, ids=[label(b) for b in backends], scope="session")


@pytest.fixture
def record_law_result():
    """Tests append LawResult dicts here; written out by --vaespec-report."""
    return _RESULTS.append


def pytest_sessionfinish(session):
    path = session.config.getoption("--vaespec-report", default=None)
    if path:
        with open(path, "w") as handle:
            json.dump({"results": _RESULTS}, handle, indent=1)
