"""Shared pieces of the law checks: a law's check, an example rounded to a backend, the reference at
the backend's choices, exact comparisons, and the repro context. Tolerances: `laws.tolerance.tolerance`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaespec.reference.backend import ReferenceBackend
from vaespec.spec import dtypes
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import describe
from vaespec.spec.keys import Key, as_key
from vaespec.spec.tolerances import LOG_VAR_DOMAIN

from . import declared, variants
from .compare import LawViolation, LazyText, as_input, repro, round_to
from .memo import memoized
from .tolerance import with_choices
from .variants import plain_reference

REFERENCE = ReferenceBackend()

# Scalar arguments handed to a backend rounded to its dtype, as arrays are: the noise log-variance enters
# σ² = e^ℓ, and a backend computing in its dtype rounds ℓ first. (β, weights, decay and ε stay float64, as
# every law and negative control has been calibrated with them.)
ROUNDED_SCALARS = ("noise_log_var",)


@dataclass(frozen=True)
class Check:
    """How one law is checked: its example strategy and a function
    `run(backend, example, draw) -> worst ratio` that raises LawViolation on failure."""

    law: str
    strategy: Any
    run: Callable


def function_args(function: str, example, backend) -> dict[str, Any]:
    """The arguments of `function` taken from `example`, as the laws hand them to `backend` (or to a backend
    computing in the dtype named by `backend`, a string): arrays rounded and flushed (`laws.compare.as_input`),
    the `ROUNDED_SCALARS` rounded, and a log-variance clipped to the dtype's stated domain (`LOG_VAR_DOMAIN`:
    only float16's is narrower than the strategies' |lv| ≤ 20). Given a backend, what it declares
    (`laws.declared`) is applied too: a drawn convention it does not support becomes one it does, and a
    variant that fixes an argument (ε, the decoder variance, binary targets) fixes it here, for the backend
    and the reference alike."""
    dtype = backend if isinstance(backend, str) else backend.dtype
    args = {}
    for a in FUNCTIONS[function].args:
        value = example.args[a.name]
        if a.name in ROUNDED_SCALARS:
            value = float(round_to(dtype, np.asarray(value, dtype=np.float64)))
        args[a.name] = as_input(dtype, value)
    if "log_var" in args:
        args["log_var"] = np.clip(args["log_var"], -LOG_VAR_DOMAIN[dtype], LOG_VAR_DOMAIN[dtype])
    return args if isinstance(backend, str) else declared.adapt_args(backend, function, args)


def reference_at(function: str, args, indices=None, backend=None):
    """The float64 reference of `function` at `args`, at the code choices `indices` where it makes one; under
    the variants `backend` declares (`laws.variants`), if given."""
    chosen = declared.variants(backend) if backend is not None else {}
    if chosen:
        return memoized("value", lambda: variants.value(function, args, indices, chosen), function, args, indices,
                        chosen)
    return memoized("value", lambda: plain_reference(function, args, indices), function, args, indices)


def reference_vjp_at(function: str, args, cotangent, indices=None, backend=None):
    """The reference's vjp of `function` at `args` (at the code choices `indices`, if any), under the variants
    `backend` declares, if given."""
    chosen = declared.variants(backend) if backend is not None else {}
    if chosen:
        return memoized("vjp", lambda: variants.gradient(function, args, cotangent, indices, chosen), function,
                        args, cotangent, indices, chosen)
    return memoized("vjp", lambda: REFERENCE.vjp(function, with_choices(args, indices), cotangent), function, args,
                    cotangent, indices)


def split_outputs(function: str, value, ctx="") -> tuple[tuple, tuple]:
    """(float outputs, integer and key outputs) of `function`'s result, by the contract's Output kinds;
    a LawViolation if a function of several outputs returned another number of them."""
    outputs = FUNCTIONS[function].outputs
    if len(outputs) > 1:
        if not isinstance(value, (tuple, list)) or len(value) != len(outputs):
            raise LawViolation(f"{function}: expected {len(outputs)} outputs {[o.name for o in outputs]}, got "
                               f"{describe(value)}\n{ctx}")
        values = tuple(value)
    else:
        values = (value,)
    floats = tuple(v for o, v in zip(outputs, values) if o.kind == "float")
    others = tuple(v for o, v in zip(outputs, values) if o.kind != "float")
    return floats, others


def one_or_tuple(values: tuple):
    """A single value bare, several as the tuple: how a function's float outputs are compared and drawn for."""
    return values[0] if len(values) == 1 else values


def assert_exact(function: str, actual, expected, ctx) -> None:
    """Integer outputs, keys and copied rows must agree exactly."""
    if isinstance(expected, Key) or isinstance(actual, Key):
        if not isinstance(actual, (Key, int, np.integer)) or as_key(actual) != as_key(expected):
            raise LawViolation(f"{function}: returned key {actual!r}, expected {expected!r}\n{ctx}")
    elif np.shape(actual) != np.shape(expected) or not np.array_equal(np.asarray(actual), np.asarray(expected)):
        raise LawViolation(f"{function}: got {np.asarray(actual).tolist()!r}, expected exactly "
                           f"{np.asarray(expected).tolist()!r}\n{ctx}")


def assert_exact_in_dtype(function: str, actual, value, backend, ctx) -> None:
    """Draws and copies: `actual` is `value` rounded into the backend's dtype (RNE from float64, or a cast
    through float32), flushed where the backend declares that it flushes subnormals (`vaespec.spec.dtypes`)."""
    value = np.asarray(value, dtype=np.float64)
    if dtypes.flushes_subnormals(backend):
        value = dtypes.flush(backend.dtype, dtypes.round_to(backend.dtype, value))
    actual = np.asarray(actual, dtype=np.float64)
    if actual.shape != value.shape or not np.all(dtypes.equal_in_dtype(backend.dtype, actual, value)):
        raise LawViolation(f"{function}: got {actual.tolist()!r}, expected exactly "
                           f"{dtypes.round_to(backend.dtype, value).tolist()!r} (the draws rounded to "
                           f"{backend.dtype})\n{ctx}")


def context(function: str, args, backend) -> LazyText:
    """The repro snippet of a failure message, formatted only if a message is (most examples pass)."""
    return LazyText(lambda: "Reproduce with:\n" + repro(function, args, backend))
