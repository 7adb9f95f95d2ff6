"""Every registered law, against every selected backend (reference, Torch on each device × dtype,
or the backends named with --vaespec-backend). Each law's examples are drawn once for all its
backends (conftest.py's `law_results`, `check.runner.run_laws`): the verdicts are those of one
backend checked alone."""

from __future__ import annotations

import pytest

from vaespec.spec.laws import LAWS


@pytest.mark.parametrize("law", sorted(LAWS))
def test_law(law, backend, record_law_result, law_results):
    result = law_results(law, backend)
    record_law_result(result.to_dict())
    if result.verdict == "n/a":  # not asked of this backend: pytest counts it skipped, with the reason
        pytest.skip(f"n/a: {result.message}")
    assert result.passed, \
        f"{law} [{result.verdict}] on {backend.name}/{backend.device}/{backend.dtype}:\n{result.message}"
    if result.verdict == "pass":
        assert result.examples > 0, f"{law}: no example was checked"
