"""Every registered law, against every selected backend (reference, Torch on each device × dtype,
or the backends named with --vaespec-backend)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from vaespec.spec.laws import LAWS

from vaespec.proofs_tests.runner import run_law


@pytest.mark.parametrize("law", sorted(LAWS))
def test_law(law, backend, record_law_result):
    result = run_law(law, backend, settings())
    record_law_result(result.to_dict())
    assert result.passed, f"{law} [{result.verdict}] on {backend.name}/{backend.device}/{backend.dtype}:\n{result.message}"
    if result.verdict == "pass":
        assert result.examples > 0, f"{law}: no example was checked"
