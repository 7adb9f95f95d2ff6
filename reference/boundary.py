"""What every reference function does at its boundary besides the contract's checks.

`vaespec.spec.contract.validate_args` (and `validate_vjp`, which adds the cotangent) check and
convert the arguments; on the way out, a network function's domain is where its magnitude stays
within float64 (spec/domains.py), which the spec cannot evaluate, so the reference checks its
results instead: it never returns Inf or NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from vaespec.spec.domains import check_result

T = TypeVar("T")


def finite(function: str, result: T, what: str = "result") -> T:
    """`result` (arrays, nested in tuples or dicts) if every float entry is finite, else a `DomainError`
    naming `function`'s inputs (`vaespec.spec.domains.check_result`)."""
    return check_result(function, result, "float64", what)


def finite_gradients(function: str, grads: dict) -> dict:
    """A VJP's result, refused if not finite (the message also names the cotangent)."""
    return check_result(function, grads, "float64", "gradient")


def zero_gradients(params: Mapping[str, np.ndarray]) -> dict:
    """Parameter gradients start at zero for every parameter passed (those a function does not read stay 0)."""
    return {name: np.zeros_like(value, dtype=np.float64) for name, value in params.items()}
