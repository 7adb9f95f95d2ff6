"""vaespec's own suite: backend parametrization and the Hypothesis profile (the JSON report is the plugin's)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings
from vaespec.proofs_tests import profiles  # noqa: F401  (registers the vaespec-* profiles)
from vaespec.proofs_tests.backends import label
from vaespec.proofs_tests.plugin import selected_backends


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
    """Tests hand their LawResult dicts here; the plugin (`--vaespec-report`) intercepts and writes them."""
    return lambda result: None
