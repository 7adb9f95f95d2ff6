"""Named dimensions and shape-typed annotations.

`Float[np.ndarray, "batch latent"]` reads exactly as in jaxtyping, but this module
depends on numpy alone (the spec layer's rule), and the checks raise vaespec errors
that name the argument. The dimension names used across vaespec:

| name      | meaning                                   |
|-----------|-------------------------------------------|
| `batch`   | examples in a batch (B ≥ 1)               |
| `input`   | observed features (D)                     |
| `output`  | decoder output features (usually D)       |
| `latent`  | latent coordinates (L)                    |
| `hidden`  | width of one hidden layer                 |
| `samples` | Monte-Carlo samples                        |
| `in`/`out`| fan-in and fan-out of a dense layer        |

A scalar is written with the empty string: `Float[np.ndarray, ""]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass

import numpy as np

from .errors import DomainError, DTypeError, ShapeError, describe


@dataclass(frozen=True)
class ArrayType:
    """An annotation: array kind ("float" or "int") with named dimensions."""

    kind: str
    container: object
    dims: tuple[str, ...]

    def __repr__(self) -> str:
        name = getattr(self.container, "__name__", str(self.container))
        return f'{self.kind.capitalize()}[{name}, "{" ".join(self.dims)}"]'


class _Subscriptable:
    def __init__(self, kind: str):
        self.kind = kind

    def __getitem__(self, item) -> ArrayType:
        container, dims = item
        return ArrayType(self.kind, container, tuple(dims.split()))


Float = _Subscriptable("float")
Int = _Subscriptable("int")


def check_array(
    name: str,
    value,
    dims: tuple[str, ...] | str,
    bindings: MutableMapping[str, int] | None = None,
    *,
    kind: str = "float",
    finite: bool = True,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check that `value` is a numpy array of the named shape and bind its sizes.

    `bindings` maps dimension names to sizes already seen; a new name is bound to
    this array's size, a known name must match it. Floats must be finite unless
    `finite=False`. Zero-sized dimensions (an empty batch) are refused unless
    `allow_empty`. Returns the array unchanged.
    """
    if isinstance(dims, str):
        dims = tuple(dims.split())
    if bindings is None:
        bindings = {}
    expected = " ".join(dims) or "scalar"
    if not isinstance(value, np.ndarray):
        if kind == "float" and isinstance(value, (float, int, np.floating)) and not dims:
            value = np.asarray(value, dtype=np.float64)
        else:
            raise DTypeError(f"{name}: expected a numpy array [{expected}], got {describe(value)}")
    if kind == "float" and value.dtype.kind != "f":
        raise DTypeError(f"{name}: expected a floating-point array [{expected}], got dtype {value.dtype}")
    if kind == "int" and value.dtype.kind not in "iu":
        raise DTypeError(f"{name}: expected an integer array [{expected}], got dtype {value.dtype}")
    if value.ndim != len(dims):
        raise ShapeError(
            f"{name}: expected rank {len(dims)} [{expected}], got shape {value.shape}"
        )
    for axis, (dim, size) in enumerate(zip(dims, value.shape)):
        if size == 0 and not allow_empty:
            raise ShapeError(f"{name}: dimension '{dim}' (axis {axis}) is empty; expected at least 1, got shape {value.shape}")
        if dim in bindings and bindings[dim] != size:
            raise ShapeError(
                f"{name}: dimension '{dim}' (axis {axis}) must be {bindings[dim]} to match the other "
                f"arguments, got {size} (shape {value.shape})"
            )
        bindings[dim] = size
    if finite and kind == "float" and not np.all(np.isfinite(value)):
        bad = np.argwhere(~np.isfinite(value))[0]
        raise DomainError(
            f"{name}: expected finite values, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return value


def check_scalar(name: str, value, *, low: float = -math.inf, high: float = math.inf) -> float:
    """Check a real scalar option (such as β) lies in [low, high] and is finite."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise DTypeError(f"{name}: expected a real number, got {describe(value)}")
    value = float(value)
    if not math.isfinite(value) or not (low <= value <= high):
        raise DomainError(f"{name}: expected a finite number in [{low}, {high}], got {value}")
    return value


def check_params(
    name: str,
    params,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    allowed: Mapping[str, tuple[int, ...]] | None = None,
    finite: bool = True,
) -> Mapping[str, np.ndarray]:
    """Check a parameter mapping holds the names and shapes of `shapes`.

    Names outside `shapes` are refused unless listed in `allowed` (the whole model's
    layout, so an encoder accepts the full mapping); those are not checked further.
    """
    if not isinstance(params, Mapping):
        raise DTypeError(f"{name}: expected a mapping of parameter name to array, got {describe(params)}")
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes) - set(allowed or ()))
    if missing or extra:
        raise ShapeError(f"{name}: parameter names differ from the layout: missing {missing}, unexpected {extra}")
    for key, shape in shapes.items():
        array = params[key]
        if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            raise DTypeError(f"{name}[{key!r}]: expected a floating-point numpy array of shape {shape}, got {describe(array)}")
        if array.shape != tuple(shape):
            raise ShapeError(f"{name}[{key!r}]: expected shape {tuple(shape)}, got {array.shape}")
        if finite and not np.all(np.isfinite(array)):
            raise DomainError(f"{name}[{key!r}]: expected finite values, got a NaN or Inf")
    return params
