"""A comparison's tolerance given as a function (`laws.compare`): computed only when it can change the outcome,
and the outcome the same as with the tolerance given as a value."""

from __future__ import annotations

import numpy as np
import pytest

from vaespec.proofs_tests.laws.compare import LawViolation, assert_within, check_order
from vaespec.proofs_tests.laws.vq_positions import rows_difference


class Counted:
    """A tolerance function that counts its calls."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_equal_finite_sides_need_no_tolerance():
    tol = Counted(1e-12)
    assert assert_within("f", (np.ones(3), {"a": -0.0}), (np.ones(3), {"a": 0.0}), tol) == 0.0
    assert tol.calls == 0


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # inf − inf in the comparison itself
@pytest.mark.parametrize("actual, expected", [
    (np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9])),  # within: the ratio needs the tolerance
    (np.array([1.0, 3.0]), np.array([1.0, 2.0])),  # beyond it
    (np.array([np.inf]), np.array([np.inf])),  # |inf − inf| is NaN: a violation, with the value or the function
    (np.array([np.nan]), np.array([np.nan])),
])
def test_a_lazy_tolerance_gives_what_the_value_gives(actual, expected):
    def outcome(tolerance):
        try:
            return assert_within("f", actual, expected, tolerance)
        except LawViolation as violation:
            return "violation", str(violation)
    tol = Counted(np.float64(1e-6))
    assert outcome(tol) == outcome(1e-6)
    assert tol.calls == 1


def test_structure_and_shape_are_checked_before_the_tolerance():
    tol = Counted(1.0)
    with pytest.raises(LawViolation, match="shape"):
        assert_within("f", np.zeros(2), np.zeros(3), tol)
    with pytest.raises(LawViolation, match="output structure"):
        assert_within("f", (np.zeros(2),), (np.zeros(2), np.zeros(2)), tol)
    assert tol.calls == 0


def test_check_order_calls_its_tolerance_only_when_the_order_fails():
    tol = Counted(0.5)
    assert check_order("f", 1.0, 2.0, tol) == 0.0 and tol.calls == 0
    assert check_order("f", 2.25, 2.0, tol) == 0.5 and tol.calls == 1
    with pytest.raises(LawViolation):
        check_order("f", 3.0, 2.0, tol)


def test_rows_difference_calls_its_tolerances_only_when_a_difference_is_unequal():
    tol, tol_rows = Counted(np.zeros((2, 2)) + 1e-3), Counted(np.zeros((4,)) + 1e-3)
    positions, rows = np.arange(4.0).reshape(2, 2), np.arange(4.0)
    assert rows_difference("f", positions, rows, positions, rows, tol, tol_rows, "") == 0.0
    assert (tol.calls, tol_rows.calls) == (0, 0)
    ratio = rows_difference("f", positions + 1e-3, rows, positions, rows, tol, tol_rows, "")
    assert ratio == pytest.approx(0.5) and (tol.calls, tol_rows.calls) == (1, 1)
