"""Comparison helpers: round inputs to a backend's dtype, compare with a stated bound,
and fail with the function name, the worst entry and a repro snippet.

In the style of array-api-tests: the function under test comes first in every
helper, and a failure message is enough to reproduce the failure by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from vaespec.spec import dtypes
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import PRESETS, Convention
from vaespec.spec.tolerances import Bound


class LawViolation(AssertionError):
    """A law does not hold for a backend. `ratio` = worst error / tolerance (> 1)."""

    def __init__(self, message: str, ratio: float = float("inf")):
        super().__init__(message)
        self.ratio = ratio


def round_to(dtype: str, value):
    """`value` rounded to `dtype` and back to float64: one round-to-nearest-even from float64
    (`vaespec.spec.dtypes.round_to`; a cast through float32 would round twice).

    Inputs are rounded before both the backend and the reference see them, so
    input quantisation is never counted as backend error.
    """
    def one(array):
        if dtype not in dtypes.FORMATS:
            raise ValueError(f"dtype: expected float64, float32, float16 or bfloat16, got {dtype!r}")
        return dtypes.round_to(dtype, array)

    return _each_float_array(one, value)


def _each_float_array(fn, value):
    """`fn` applied to every float array in `value` (through mappings and tuples); the rest unchanged."""
    if isinstance(value, Mapping):
        return {k: _each_float_array(fn, v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_each_float_array(fn, v) for v in value)
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        return value
    return fn(value)


def as_input(dtype: str, value):
    """`value` as the laws hand it to a backend in `dtype`: rounded (`round_to`), then with the dtype's
    subnormals set to zero (`flush_inputs`), so no law depends on whether a backend flushes its operands."""
    return flush_inputs(dtype, round_to(dtype, value))


def flush_inputs(dtype: str, value):
    """`value` (as `round_to` returns it) with entries below `dtype`'s smallest normal set to zero: the
    laws' inputs are never subnormal in the backend's dtype (`vaespec.spec.dtypes`, subnormal policy)."""
    return _each_float_array(lambda a: dtypes.flush(dtype, a), value)


def _literal(value) -> str:
    if isinstance(value, np.ndarray):
        return "np.array(" + np.array2string(value, separator=", ", precision=17, threshold=10**6) + ")"
    if isinstance(value, (Architecture, VQArchitecture, ConvArchitecture, ConvVQArchitecture)):
        fields = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in value.to_dict().items())
        return f"{type(value).__name__}({fields})"
    if isinstance(value, Convention):
        if PRESETS.get(value.name) == value:
            return f"get_convention({value.name!r})"
        fields = ", ".join(f"{k}={v!r}" for k, v in value.to_dict().items())
        return f"Convention({fields})"
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ",)"
    return repr(value)


class LazyText:
    """Text made by `make()` when first formatted, `str()`-ed or joined with `+`.

    Failure context (a repro snippet with every argument printed to 17 digits) costs far more than
    most checks; building it only when a failure message is formatted keeps passing examples cheap.
    """

    __slots__ = ("_make", "_text")

    def __init__(self, make):
        self._make, self._text = make, None

    def __str__(self) -> str:
        if self._text is None:
            self._text = str(self._make())
        return self._text

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __add__(self, other) -> LazyText:
        return LazyText(lambda: str(self) + str(other))

    def __radd__(self, other) -> LazyText:
        return LazyText(lambda: str(other) + str(self))


def literal(value) -> str:
    """`value` as Python source that rebuilds it (arrays to 17 digits), for repro snippets."""
    return _literal(value)


def _constructor(backend) -> tuple[list[str], str]:
    """(import lines, expression) that build `backend` again, where its class can be imported and built from
    its device and dtype alone; else no import and `...` for the user to fill in."""
    import importlib
    import inspect

    target = getattr(backend, "_target", backend)  # a `check.guard.Guarded` backend: the user's object
    cls = type(target)
    module, name = cls.__module__, cls.__qualname__
    try:
        importable = "." not in name and getattr(importlib.import_module(module), name, None) is cls
        parameters = inspect.signature(cls).parameters.values()
    except (ImportError, TypeError, ValueError):
        return [], "..."
    given, imports = [], [f"from {module} import {name}"]
    for p in parameters:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in ("device", "dtype"):
            if p.default is p.empty:
                return [], "..."
            continue
        value = str(getattr(target, p.name, "?"))
        if p.name == "dtype" and type(p.default).__module__ == "torch":  # a torch dtype is what it takes
            imports.append("import torch")
            given.append(f"dtype=torch.{value}")
        else:
            given.append(f"{p.name}={value!r}")
    if not importable:
        return [], "..."
    return imports, f"{name}({', '.join(given)})"


def repro(function: str, args: Mapping[str, Any], backend) -> str:
    """A Python snippet that calls `function` on `backend` and on the reference with `args` and prints both;
    it builds `backend` where its class is importable (`_constructor`), else leaves `backend = ...` to fill in."""
    imports, build = _constructor(backend)
    lines = ["import numpy as np", "from vaespec.spec.architecture import Architecture, VQArchitecture",
             "from vaespec.spec.conv import ConvArchitecture",
             "from vaespec.spec.conv_vq import ConvVQArchitecture",
             "from vaespec.spec.conventions import Convention, get_convention",
             "from vaespec.reference import ReferenceBackend", *imports,
             "np.set_printoptions(precision=17)",
             (f"backend = {build}  # {getattr(backend, 'name', backend)!s} on {getattr(backend, 'device', '?')}, "
              f"{getattr(backend, 'dtype', '?')}"),
             "args = {"]
    lines += [f"    {k!r}: {_literal(v)}," for k, v in args.items()]
    # Positional, in the contract's order (args is built from FUNCTIONS[function].args).
    lines += ["}", f"print(backend.{function}(*args.values()))",
              f"print(ReferenceBackend().{function}(*args.values()))"]
    return "\n".join(lines)


def leaves(value, path=""):
    """(path, float64 array) for every leaf of a nested structure of mappings, tuples and lists: `[0]['mu']`."""
    if isinstance(value, Mapping):
        for k in value:
            yield from leaves(value[k], f"{path}[{k!r}]")
    elif isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, np.asarray(value, dtype=np.float64)


def equal_and_finite(actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray]) -> bool:
    """Whether every leaf of `actual` equals its leaf of `expected` (same paths and shapes) and is finite: then a
    comparison's ratio is 0 whatever its tolerance (|inf − inf| is NaN, which a comparison rejects; NaN ≠ NaN)."""
    return all(np.array_equal(actual[path], exp) and np.isfinite(exp).all() for path, exp in expected.items())


def assert_within(function: str, actual, expected, tolerance, *, context: str = "") -> float:
    """Check |actual − expected| ≤ tolerance entrywise over matching structures.

    `tolerance` has the structure of `expected` (or is one number for all), or is a function of no arguments
    giving it: then it is called only when some entry differs (where every entry is equal the ratio is 0 whatever
    the tolerance, and the tolerance's reference magnitude is the costly part of a comparison). Returns the worst
    ratio |error| / tolerance; raises LawViolation naming the worst entry.
    """
    actual_leaves = dict(leaves(actual))
    expected_leaves = dict(leaves(expected))
    if actual_leaves.keys() != expected_leaves.keys():
        raise LawViolation(f"{function}: output structure {sorted(actual_leaves)} differs from the expected "
                           f"{sorted(expected_leaves)}\n{context}")
    for path, exp in expected_leaves.items():
        if actual_leaves[path].shape != exp.shape:
            raise LawViolation(f"{function}{path}: shape {actual_leaves[path].shape} differs from the expected "
                               f"{exp.shape}\n{context}")
    if callable(tolerance):
        if equal_and_finite(actual_leaves, expected_leaves):
            return 0.0
        tolerance = tolerance()
    if isinstance(tolerance, (int, float)):
        tolerance_leaves = {k: np.float64(tolerance) for k in expected_leaves}
    else:
        tolerance_leaves = dict(leaves(tolerance))
    worst, worst_at = 0.0, None
    for path, exp in expected_leaves.items():
        act = actual_leaves[path]
        tol = np.broadcast_to(tolerance_leaves[path], exp.shape)
        if exp.size == 0:
            continue
        err = np.abs(act - exp)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(err), err / tol, np.inf)
        ratio = np.where((err == 0), 0.0, ratio)
        index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[index] > worst or worst_at is None:
            worst, worst_at = float(ratio[index]), (path, index, act[index], exp[index], tol[index])
    if worst > 1.0:
        path, index, a, e, t = worst_at
        where = f"{function}{path}" + (str([int(i) for i in index]) if index else "")
        raise LawViolation(
            f"{where}: got {float(a)!r}, expected {float(e)!r}; |error| = {abs(a - e):.3e} exceeds the "
            f"tolerance {t:.3e} ({worst:.3g}×)\n{context}", ratio=worst)
    return worst


def tolerance_from(bound: Bound, magnitude, sides: int = 2):
    """Entrywise tolerance `sides · rel · M + floor`: each side of a comparison may err by γ·M."""
    if isinstance(magnitude, tuple):
        return tuple(tolerance_from(bound, m, sides) for m in magnitude)
    if isinstance(magnitude, Mapping):
        return {k: tolerance_from(bound, m, sides) for k, m in magnitude.items()}
    return sides * bound.rel * np.asarray(magnitude, dtype=np.float64) + bound.floor


def require_finite(what: str, values, *, context: str = "") -> None:
    """Raise a LawViolation naming the first non-finite entry of `values`: a statistical law compares means and
    spreads, and a NaN there makes every comparison false, so a NaN bound would otherwise pass."""
    values = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise LawViolation(f"{what}: {bad.size} of {values.size} values are not finite (the first at index "
                           f"{int(bad[0])}: {float(values.flat[bad[0]])!r})\n{context}", ratio=float("inf"))


def check_order(function: str, smaller, larger, tolerance: float | Callable[[], float], *, context: str = ""
                ) -> float:
    """Check smaller ≤ larger + tolerance; return the violation ratio (0 when it holds strictly).

    `tolerance` may be a function of no arguments giving it: it is called only when smaller > larger (a law that
    holds strictly then needs no reference magnitude)."""
    excess = float(smaller) - float(larger)
    if not np.isfinite(excess):
        raise LawViolation(f"{function}: non-finite comparison {smaller!r} ≤ {larger!r}\n{context}")
    if excess <= 0:
        return 0.0
    if callable(tolerance):
        tolerance = tolerance()
    ratio = excess / tolerance if tolerance > 0 else np.inf
    if ratio > 1:
        raise LawViolation(f"{function}: {float(smaller)!r} > {float(larger)!r} by {excess:.3e}, beyond the tolerance "
                           f"{tolerance:.3e}\n{context}", ratio=ratio)
    return ratio
