"""`laws.memo`: the reference's expected values are shared between backends only for arguments of equal content."""

import numpy as np
import pytest

from vaespec.proofs_tests.laws import memo
from vaespec.proofs_tests.laws.checking import reference_at
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.architecture import Architecture
from vaespec.spec.conventions import get_convention
from vaespec.spec.keys import Key


@pytest.fixture(autouse=True)
def _empty():
    memo.clear()
    yield
    memo.clear()


def _counting():
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return {"g": np.full(2, value) * 2.0, "t": (np.ones(2), 3.0)}
        return run
    return calls, compute


def test_equal_content_is_computed_once_and_changed_content_again():
    calls, compute = _counting()
    a = np.arange(3.0)
    arch = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(4,))
    parts = ("kl", {"a": a, "arch": arch, "c": get_convention("elbo"), "k": Key(7)})
    first = memo.memoized("vjp", compute(1.0), *parts)
    again = memo.memoized("vjp", compute(1.0), "kl", {"a": a.copy(), "arch": arch, "c": get_convention("elbo"),
                                                       "k": Key(7)})
    assert calls == [1.0]  # a copy with the same bytes is the same key
    np.testing.assert_array_equal(first["g"], again["g"])
    a[0] = 0.5  # changed in place: a new key
    memo.memoized("vjp", compute(2.0), *parts)
    memo.memoized("value", compute(3.0), *parts)  # another kind: a new key
    memo.memoized("vjp", compute(4.0), "kl", {"a": a, "arch": arch, "c": get_convention("elbo"), "k": Key(8)})
    memo.memoized("vjp", compute(5.0), "kl", {"a": a.astype(np.float32), "arch": arch,
                                              "c": get_convention("elbo"), "k": Key(7)})
    assert calls == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_cached_arrays_are_read_only_and_containers_fresh():
    _, compute = _counting()
    first = memo.memoized("vjp", compute(1.0), "f", np.zeros(2))
    second = memo.memoized("vjp", compute(1.0), "f", np.zeros(2))
    assert first is not second and first["t"] is not second["t"]
    with pytest.raises(ValueError, match="read-only"):
        first["g"][0] = 9.0
    first["g"] = None  # a caller's own dict: the next one still reads the stored arrays
    assert memo.memoized("vjp", compute(1.0), "f", np.zeros(2))["g"] is not None


def test_unkeyable_arguments_and_raising_calls_are_never_stored():
    calls = []

    def boom():
        calls.append(1)
        raise ValueError("no")

    for _ in range(2):
        with pytest.raises(ValueError):
            memo.memoized("value", boom, "f", np.zeros(2))
    assert calls == [1, 1]
    plain = object()
    assert memo.memoized("value", lambda: calls.append(2) or 5.0, "f", plain) == 5.0
    assert memo.memoized("value", lambda: calls.append(2) or 5.0, "f", plain) == 5.0
    assert calls == [1, 1, 2, 2]
    boxes = np.empty(1, dtype=object)  # an object array's bytes are pointers: changed content keeps them
    boxes[0] = [1.0]
    memo.memoized("value", lambda: calls.append(3) or 5.0, "f", boxes)
    boxes[0].append(2.0)
    memo.memoized("value", lambda: calls.append(3) or 5.0, "f", boxes)
    assert calls == [1, 1, 2, 2, 3, 3]


def test_strings_and_dataclasses_are_keyed_by_content_not_by_layout():
    calls, compute = _counting()
    memo.memoized("value", compute(1.0), ("ab", "c"))
    memo.memoized("value", compute(2.0), ("a", "bc"))  # the same characters, split otherwise
    memo.memoized("value", compute(3.0), {"x;": "y"})
    memo.memoized("value", compute(4.0), {"x": ";y"})
    small = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(4,))
    memo.memoized("value", compute(5.0), small)
    memo.memoized("value", compute(5.0), Architecture(input_size=3, latent_size=2, encoder_sizes=(4,),
                                                       decoder_sizes=(4,)))  # another object, equal content
    memo.memoized("value", compute(6.0), Architecture(input_size=3, latent_size=2, encoder_sizes=(4,),
                                                       decoder_sizes=(5,)))
    assert calls == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_reference_at_gives_what_a_fresh_reference_call_gives():
    mu, log_var = np.array([[0.3, -1.2]]), np.array([[0.1, -0.4]])
    args = {"mu": mu, "log_var": log_var, "convention": get_convention("elbo")}
    fresh = ReferenceBackend().kl_divergence(mu, log_var, get_convention("elbo"))
    for _ in range(2):
        assert reference_at("kl_divergence", args) == fresh
    assert memo.stats()["hits"] >= 1
