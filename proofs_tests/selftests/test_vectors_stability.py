"""Adding a function to the contract leaves every other function's golden vectors byte-identical.

Each function's draws are seeded by its name (`vectors.export.function_seed`), not by its place among
the others. The test exports once, then again with one extra function put *first* in `FUNCTIONS` (a
network function, so the activations' rotation is exercised too: a place-based seed or turn would move
every other function's inputs), and compares every file of the first export, and every other case's
manifest entry (its tolerance bounds resolved to their values: the shared list of bounds may grow).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from vaespec.proofs_tests.vectors import export as vectors_export
from vaespec.reference import ReferenceBackend, vae
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.laws import LAWS
from vaespec.spec.signature import Law

EXTRA = "aaa_encode"  # first in sorted order, and put first in FUNCTIONS


def _resolved(case, bounds: list):
    """`case` with each tolerance rule's `"bound": index` replaced by the bound it names."""
    if isinstance(case, dict):
        resolved = {k: _resolved(v, bounds) for k, v in case.items()}
        if case.get("rule") == "bound":
            resolved["bound"] = bounds[case["bound"]]
        return resolved
    if isinstance(case, list):
        return [_resolved(v, bounds) for v in case]
    return case


@pytest.fixture
def extra_function(monkeypatch):
    """An extra contract function: encode under another name, without a gradient, first in FUNCTIONS."""
    spec = FUNCTIONS["encode"]
    fake = dataclasses.replace(spec, name=EXTRA, args=tuple(dataclasses.replace(a, differentiable=False)
                                                            for a in spec.args))
    monkeypatch.setattr(ReferenceBackend, EXTRA, staticmethod(vae.encode), raising=False)
    monkeypatch.setitem(LAWS, f"{EXTRA}_matches_reference", Law(f"{EXTRA}_matches_reference", "a test's extra law",
                                                                (EXTRA,), "any", "roundoff"))
    def as_encode(function):  # the extra one's tolerance is encode's
        return "encode" if function == EXTRA else function

    bound, magnitude, exact = vectors_export.function_bound, vectors_export.magnitude, vectors_export.exact
    monkeypatch.setattr(vectors_export, "function_bound", lambda dtype, f, *a, **k: bound(dtype, as_encode(f), *a, **k))
    monkeypatch.setattr(vectors_export, "magnitude", lambda f, *a, **k: magnitude(as_encode(f), *a, **k))
    monkeypatch.setattr(vectors_export, "exact", lambda f: exact(as_encode(f)))
    saved = dict(FUNCTIONS)
    FUNCTIONS.clear()
    FUNCTIONS.update({EXTRA: fake, **saved})
    try:
        yield fake
    finally:
        FUNCTIONS.clear()
        FUNCTIONS.update(saved)


def test_an_extra_function_changes_no_other_functions_files(tmp_path, request):
    before = vectors_export.export(tmp_path / "before", seed=3)
    request.getfixturevalue("extra_function")
    after = vectors_export.export(tmp_path / "after", seed=3)
    assert any(c["function"] == EXTRA for c in after["cases"]) and not after["skipped"]
    assert next(iter(after["functions"])) == EXTRA
    added = {k for k in after["files"] if k.startswith(f"vae/{EXTRA}/")}
    assert added and set(after["files"]) - set(before["files"]) == added
    for relative, record in before["files"].items():
        assert after["files"][relative] == record, relative
        assert (tmp_path / "before" / relative).read_bytes() == (tmp_path / "after" / relative).read_bytes(), relative
    others = [c for c in after["cases"] if c["function"] != EXTRA]
    assert [_resolved(c, after["bounds"]) for c in others] == [_resolved(c, before["bounds"]) for c in before["cases"]]
    assert json.loads(json.dumps(before["functions"])) == {k: v for k, v in after["functions"].items() if k != EXTRA}


def test_the_seed_is_the_names_and_drawn_inputs_follow_it():
    """A place-based seed would pass the test above only by luck of the order; the name's hash does not move."""
    assert vectors_export.function_seed("encode") == int.from_bytes(
        __import__("hashlib").sha256(b"encode").digest()[:8], "big")
    a = vectors_export.case_inputs("kl_divergence", vectors_export.variants("kl_divergence")[0], 0, 0)
    b = vectors_export.case_inputs("kl_divergence", vectors_export.variants("kl_divergence")[0], 0, 0)
    assert np.array_equal(a["mu"], b["mu"]) and np.array_equal(a["log_var"], b["log_var"])
