"""The profiles' draws do not depend on which modules are loaded (`profiles.draws_ignore_loaded_modules`):
Hypothesis would mix constants from the source of every loaded local module into them."""

from __future__ import annotations

import importlib
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.strategies import profiles

MARKERS = (0.123456789012, 987654321, "vaespec-marker-string")


def _draws() -> list:
    seen: list = []

    @settings(profiles.profile_settings("ci"), max_examples=300)
    @given(st.floats(allow_nan=False), st.integers(), st.text())
    def record(x, n, s):
        seen.append((x, n, s))

    record()
    return seen


def test_draws_are_the_same_after_a_local_module_with_new_constants_is_loaded(tmp_path, monkeypatch):
    assert profiles.DRAWS_IGNORE_LOADED_MODULES  # the pinned Hypothesis has the pool, and the hook holds
    before = _draws()
    (tmp_path / "vaespec_marker_module.py").write_text(
        f"FLOAT = {MARKERS[0]!r}\nINT = {MARKERS[1]!r}\nTEXT = {MARKERS[2]!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("vaespec_marker_module")
        after = _draws()
    finally:
        sys.modules.pop("vaespec_marker_module", None)
    assert after == before
    drawn = {value for example in after for value in example}
    assert not drawn & set(MARKERS)
