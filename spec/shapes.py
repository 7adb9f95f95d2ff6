"""Named dimensions and shape-typed annotations.

`Float[np.ndarray, "batch latent"]` and `Int[np.ndarray, " batch"]` are jaxtyping's own
annotations (re-exported here): type checkers read them as `Annotated[np.ndarray, ...]`, and
beartype or typeguard can check the shapes at run time through jaxtyping. The contract's
boundary does not rely on that: `check_array` checks dtype, shape, the dimension bindings
across arguments and finiteness, and raises vaespec errors that name the argument. A single
dimension is written with a leading space (" batch", jaxtyping's advice) so linters do not
read the string as a forward reference. The dimension names used across vaespec:

| name      | meaning                                   |
|-----------|-------------------------------------------|
| `batch`   | examples in a batch (B ≥ 1)               |
| `input`   | observed features (D)                     |
| `output`  | decoder output features (usually D)       |
| `latent`  | latent coordinates (L)                    |
| `hidden`  | width of one hidden layer                 |
| `samples` | Monte-Carlo samples                        |
| `in`/`out`| fan-in and fan-out of a dense layer        |
| `*positions` | zero or more spatial or sequence axes (VQ) |
| `+event`  | the axes of one example, ≥ 1 (x [batch, *event]) |
| `+input`  | the network's x axes of one example: (input,) dense, (C, H, W) conv |
| `+output` | the network's x̂ axes of one example: (output,) dense, (C, H, W) conv |

A scalar is written with the empty string: `Float[np.ndarray, ""]`.

**Variadic dimensions.** A name starting with `*` (`POSITIONS = "*positions"`, jaxtyping's spelling)
matches zero or more axes, one starting with `+` (`EVENT = "+event"`, written `*event` in the docs)
one or more; it binds the tuple of their sizes, and every array naming it must have the same tuple.
So `("batch", "*positions", "embedding")` is `[B, D]`, `[B, T, D]` or `[B, H, W, D]`, and
`("batch", "*positions")` of the same call is `[B]`, `[B, T]` or `[B, H, W]`. At most one
variadic name per shape. `bind_shape(dims, shape)` and `shape_of(dims, sizes)` convert between a
shape and the sizes of its named dimensions; `shape_of` reads an absent `*` variadic as `()` and an
absent `+event` or `+output` as `(output,)`, an absent `+input` as `(input,)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, MutableMapping

import numpy as np
from jaxtyping import Float as Float  # `X as X`: re-exported (PEP 484), the shape annotations
from jaxtyping import Int as Int

from .errors import DomainError, DTypeError, ShapeError, describe, show

POSITIONS = "*positions"
# The event axes of one example, one or more: x [batch, *event] (an image [batch, channels, height, width]);
# [batch, D] is (D,). Declared "+event": "+" is a variadic of at least one axis.
EVENT = "+event"
# The network's x [batch, *input] and x̂ [batch, *output] (issue 15): the dense network's (input,) and (output,),
# a ConvArchitecture's (channels, height, width); the arch binds both (`vaespec.spec.validation.arch_bindings`).
INPUT_EVENT = "+input"
OUTPUT_EVENT = "+output"
# An absent variadic in `shape_of`: "*" ones are (), "+event" and "+output" the dense network's (output,), "+input"
# its (input,).
_DEFAULT_VARIADIC = {EVENT: "output", INPUT_EVENT: "input", OUTPUT_EVENT: "output"}

# dimension name -> size; a variadic name ("*positions") -> the tuple of its axes' sizes
Size = int | tuple[int, ...]


@functools.lru_cache(maxsize=1024)  # a few dozen distinct dims tuples, checked on every call
def _variadic(dims: tuple[str, ...]) -> int | None:
    """The axis of the one variadic name in `dims` (a name starting with "*" or "+"), or None."""
    found = [i for i, d in enumerate(dims) if d.startswith(("*", "+"))]
    if len(found) > 1:
        raise ShapeError(f"dims: at most one variadic dimension per shape, got {dims}")
    return found[0] if found else None


def split_shape(dims: tuple[str, ...], shape: tuple[int, ...]) -> list[tuple[str, Size, tuple[int, ...]]] | None:
    """`[(name, size, axes)]` pairing `dims` with `shape` (a variadic name takes the axes left over, its size
    the tuple of their sizes), or None when the rank does not fit."""
    v = _variadic(dims)
    if v is None:
        if len(shape) != len(dims):
            return None
        return [(d, int(n), (i,)) for i, (d, n) in enumerate(zip(dims, shape))]
    after = len(dims) - v - 1
    if len(shape) < len(dims) - (not dims[v].startswith("+")):
        return None
    stop = len(shape) - after
    out: list[tuple[str, Size, tuple[int, ...]]] = [(d, int(shape[i]), (i,)) for i, d in enumerate(dims[:v])]
    out.append((dims[v], tuple(int(n) for n in shape[v:stop]), tuple(range(v, stop))))
    out += [(d, int(shape[stop + j]), (stop + j,)) for j, d in enumerate(dims[v + 1:])]
    return out


def bind_shape(dims: tuple[str, ...], shape: tuple[int, ...]) -> dict[str, Size]:
    """The sizes `shape` gives the names in `dims` (no checks; a rank that does not fit binds nothing)."""
    pairs = split_shape(tuple(dims), tuple(shape))
    return {} if pairs is None else {name: size for name, size, _ in pairs}


def shape_of(dims: tuple[str, ...], sizes: Mapping[str, Size]) -> tuple[int, ...]:
    """The shape named by `dims` at `sizes` (a variadic name expands to its tuple; when absent, a "*" one is
    `()`, "+event" and "+output" are `(sizes["output"],)` and "+input" is `(sizes["input"],)`)."""
    shape: list[int] = []
    for d in dims:
        if d.startswith(("*", "+")):
            default = (sizes[_DEFAULT_VARIADIC[d]],) if d in _DEFAULT_VARIADIC else ()
            shape.extend(sizes.get(d, default))  # type: ignore[arg-type]
        else:
            shape.append(int(sizes[d]))  # type: ignore[arg-type]
    return tuple(shape)


def _plain_array(name: str, value: object, expected: str = "") -> np.ndarray:
    """`value` as a plain `numpy.ndarray`, refusing the two subclasses whose meaning differs.

    - a masked array (`numpy.ma`): its mask would hide entries (a NaN under the mask passes a
      finiteness check) and the contract's functions have no notion of a mask: `DTypeError`;
    - a `numpy.matrix`: `*` is a matrix product and every slice stays 2-d, so the contract's
      elementwise formulas would compute something else: `DTypeError`;
    - any other subclass (e.g. `numpy.memmap`) is viewed as the plain array it is (`np.asarray`).
    """
    where = f" [{expected}]" if expected else ""
    if isinstance(value, np.ma.MaskedArray):
        raise DTypeError(f"{name}: expected a plain numpy array{where}, got a masked array: the contract has no mask "
                         f"(a masked NaN would pass unseen); pass value.filled(...) or drop the masked entries")
    if isinstance(value, np.matrix):
        raise DTypeError(f"{name}: expected a plain numpy array{where}, got a numpy.matrix (its * is a matrix "
                         f"product, so elementwise formulas change meaning); pass np.asarray(value)")
    return value if type(value) is np.ndarray else np.asarray(value)


def _axes(axes: tuple[int, ...]) -> str:
    return f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"


def check_array(
    name: str,
    value: object,
    dims: tuple[str, ...] | str,
    bindings: MutableMapping[str, Size] | None = None,
    *,
    kind: str = "float",
    finite: bool = True,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check that `value` is a numpy array of the named shape and bind its sizes.

    `bindings` maps dimension names to sizes already seen; a new name is bound to
    this array's size, a known name must match it. Floats must be finite unless
    `finite=False`. Zero-sized dimensions (an empty batch) are refused unless
    `allow_empty`.

    **Dtypes.** `kind="float"` accepts float16, float32 and float64 and returns **float64**:
    widening is exact, so the value is the one given (the float64 reference computes on it and
    returns float64, never the input's narrow dtype). Wider floats (`longdouble`) are refused,
    since narrowing them would round; bool, integer, complex, object and string arrays are
    refused (`DTypeError`), as are masked arrays and `numpy.matrix` (`_plain_array`).
    `kind="int"` accepts any integer dtype and returns it unchanged. A Python float or int
    (not a bool) is accepted for a scalar (`dims == ()`).
    """
    if isinstance(dims, str):
        dims = tuple(dims.split())
    if bindings is None:
        bindings = {}
    expected = " ".join(dims) or "scalar"
    if not isinstance(value, np.ndarray):
        if kind == "float" and isinstance(value, (float, int, np.floating)) and not isinstance(value, bool) \
                and not dims:
            value = check_scalar(name, value)  # a huge int is a DomainError here, not an OverflowError
            value = np.asarray(value, dtype=np.float64)
        else:
            raise DTypeError(f"{name}: expected a numpy array [{expected}], got {describe(value)}")
    if type(value) is not np.ndarray:  # the common case, a plain array, skips the subclass checks
        value = _plain_array(name, value, expected)
    if kind == "float" and value.dtype.kind != "f":
        raise DTypeError(f"{name}: expected a floating-point array [{expected}], got dtype {value.dtype}")
    if kind == "float" and value.dtype.itemsize > 8:
        raise DTypeError(f"{name}: expected float16, float32 or float64 [{expected}] (widened exactly to float64), "
                         f"got dtype {value.dtype}: narrowing it would round, so convert it yourself")
    if kind == "int" and value.dtype.kind not in "iu":
        raise DTypeError(f"{name}: expected an integer array [{expected}], got dtype {value.dtype}")
    pairs = split_shape(dims, value.shape)
    if pairs is None:
        v = _variadic(dims)
        rank = str(len(dims)) if v is None else f"at least {len(dims) - dims[v].startswith('*')}"
        raise ShapeError(
            f"{name}: expected rank {rank} [{expected}], got shape {value.shape}"
        )
    for dim, size, axes in pairs:
        if value.shape and not allow_empty and any(value.shape[a] == 0 for a in axes):
            raise ShapeError(f"{name}: dimension '{dim}' ({_axes(axes)}) is empty; expected at least 1, got shape "
                             f"{value.shape}")
        if dim in bindings and bindings[dim] != size:
            raise ShapeError(
                f"{name}: dimension '{dim}' ({_axes(axes)}) must be {bindings[dim]} to match the other "
                f"arguments, got {size} (shape {value.shape})"
                f"{_channels_first_hint(name, dims, value.shape, dim, bindings)}"
            )
        bindings[dim] = size
    if kind == "float" and value.dtype != np.float64:
        value = value.astype(np.float64)
    if finite and kind == "float" and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))[0]
        raise DomainError(
            f"{name}: expected finite values, got {value[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return value


def _channels_first_hint(name: str, dims: tuple[str, ...], shape: tuple[int, ...], dim: str,
                         bindings: Mapping[str, Size]) -> str:
    """A hint when a channels-last shape [batch, *positions, C] was given channels-first [batch, C, *positions]."""
    v = _variadic(dims)
    if v is None or dim != dims[-1] or v != len(dims) - 2 or len(shape) < 3 or shape[v] != bindings.get(dim):
        return ""
    return (f"; it looks channels-first: {name} is channels-last [{', '.join(dims)}], so move the channel axis "
            f"last (np.moveaxis({name}, {v}, -1), torch: {name}.movedim({v}, -1))")


def channels_first_note(name: str, dims: tuple[str, ...], shape: tuple[int, ...], other_dims: tuple[str, ...],
                        other_shape: tuple[int, ...]) -> str:
    """A note for a size clash between a channels-last array `name` [batch, *positions, C] checked first and a
    later one naming C: when `name`'s axis 1 has the later one's C, `name` is probably channels-first."""
    v = _variadic(dims)
    if v is None or v != len(dims) - 2 or len(shape) < 3 or dims[-1] not in other_dims:
        return ""
    axis = other_dims.index(dims[-1])
    if len(other_shape) != len(other_dims) or other_shape[axis] != shape[v] or other_shape[axis] == shape[-1]:
        return ""
    return (f"; or {name} (shape {tuple(shape)}) is channels-first: it is channels-last [{', '.join(dims)}], so "
            f"move its channel axis last (np.moveaxis({name}, {v}, -1), torch: {name}.movedim({v}, -1))")


def as_real_array(name: str, value: object, dims: tuple[str, ...], bindings: MutableMapping[str, Size] | None = None
                  ) -> np.ndarray:
    """A real array-like (a number, nested lists, an integer or float array) as a checked float64 array.

    For cotangents, which callers often write as `1.0` or `[[1, 0]]`: integers are converted to
    float64; None, bools, strings, complex numbers, objects, masked arrays and matrices are refused
    (`DTypeError`), so a missing cotangent never becomes NaN gradients.
    """
    expected = " ".join(dims) or "scalar"
    if not isinstance(value, np.ndarray):
        if value is None or isinstance(value, (bool, str, bytes, complex, np.bool_)):
            raise DTypeError(f"{name}: expected a real array [{expected}], got {describe(value)}")
        if isinstance(value, int) and not dims:
            value = check_scalar(name, value)
        try:
            value = np.asarray(value)
        except (TypeError, ValueError, OverflowError) as error:
            raise DTypeError(f"{name}: expected a real array [{expected}], got {describe(value)} ({error})") from None
    if type(value) is not np.ndarray:  # the common case, a plain array, skips the subclass checks
        value = _plain_array(name, value, expected)
    if value.dtype.kind in "iu":
        value = value.astype(np.float64)
    return check_array(name, value, dims, bindings)


def check_scalar(name: str, value: object, *, low: float = -math.inf, high: float = math.inf) -> float:
    """Check a real scalar option (such as β) lies in [low, high] and is finite; return it as a float.

    Python and numpy ints and floats and 0-d float/int arrays are accepted (not bools, strings,
    complex numbers or masked values); an integer too large for a float is a `DomainError`.
    """
    if isinstance(value, np.ndarray) and value.shape == () and not isinstance(value, np.ma.MaskedArray) \
            and value.dtype.kind in "fiu":
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise DTypeError(f"{name}: expected a real number, got {describe(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise DomainError(f"{name}: expected a finite number in [{low}, {high}], got {show(value)} "
                          f"(beyond float64's range)") from None
    if not math.isfinite(value) or not (low <= value <= high):
        raise DomainError(f"{name}: expected a finite number in [{low}, {high}], got {value}")
    return value


def check_params(
    name: str,
    params: object,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    allowed: Mapping[str, tuple[int, ...]] | None = None,
    finite: bool = True,
) -> dict[str, np.ndarray]:
    """Check a parameter mapping holds the names and shapes of `shapes`; return it with float64 arrays.

    Names outside `shapes` are refused unless listed in `allowed` (the whole model's layout,
    so an encoder accepts the full mapping); those must have their `allowed` shape too. Every
    array follows `check_array`'s dtype rule (float16/32/64, widened to float64).
    """
    if not isinstance(params, Mapping):
        raise DTypeError(f"{name}: expected a mapping of parameter name to array, got {describe(params)}")
    odd = [key for key in params if not isinstance(key, str)]
    if odd:
        raise DTypeError(f"{name}: expected string parameter names such as 'mu.kernel', got {show(odd[0])}")
    layout = {**(allowed or {}), **shapes}
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(layout))
    if missing or extra:
        raise ShapeError(f"{name}: parameter names differ from the layout: missing {missing}, unexpected {extra}")
    checked: dict[str, np.ndarray] = {}
    for key, array in params.items():
        shape = tuple(layout[key])
        if type(array) is not np.ndarray or array.dtype != np.float64 or array.shape != shape:
            label = f"{name}[{key!r}]"  # built only here: the common case (float64, right shape) needs none
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
                raise DTypeError(f"{label}: expected a floating-point numpy array of shape {shape}, got "
                                 f"{describe(array)}")
            array = _plain_array(label, array, f"shape {shape}")
            if array.shape != shape:
                raise ShapeError(f"{label}: expected shape {shape}, got {array.shape}")
            array = check_array(label, array, tuple(f"axis{i}" for i in range(len(shape))), finite=False)
        checked[key] = array
    # One finiteness test over every entry (a ufunc call per array cost more than the rest of the check).
    if finite and checked and not np.isfinite(np.concatenate([a.reshape(-1) for a in checked.values()])).all():
        bad = next(key for key, array in checked.items() if not np.isfinite(array).all())
        raise DomainError(f"{name}[{bad!r}]: expected finite values, got a NaN or Inf")
    return checked
