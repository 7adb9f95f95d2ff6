"""Arguments checked against a function's declaration (a `FunctionSpec`), with no per-function code.

`vaespec.spec.contract.validate_args` / `validate_vjp` (every chapter, by name) and the chapters'
own helpers (`vaespec.spec.estimators.validate`, `vaespec.spec.vq.acceptable_codes`, …) call these;
what is checked for each argument kind is stated in `validate_args`'s docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

import numpy as np

from .architecture import Architecture, VQArchitecture
from .conv import ConvArchitecture, check_conv_params, image_error
from .conv_vq import ConvVQArchitecture, latent_error
from .conventions import get_convention
from .errors import ConfigError, DomainError, DTypeError, ShapeError, describe, show
from .keys import MAX_DRAW, as_key
from .numerics import check_dtype
from .own import OwnArchitecture
from .shapes import (
    INPUT_EVENT,
    OUTPUT_EVENT,
    POSITIONS,
    Size,
    as_real_array,
    channels_first_note,
    check_array,
    check_params,
    check_scalar,
)
from .signature import FunctionSpec


def validate_in(functions: Mapping[str, FunctionSpec], function: str, args: Mapping[str, Any],
                dtype: str = "float64") -> dict[str, Any]:
    """`check_args` for `function`, a name in `functions` (else `ConfigError` listing them); the checked arguments."""
    return check_args(named(functions, function), args, dtype)[0]


def named(functions: Mapping[str, FunctionSpec], function: str) -> FunctionSpec:
    """The declaration of `function` in `functions`, else `ConfigError` listing their names."""
    if not isinstance(function, str) or function not in functions:
        raise ConfigError(f"function: expected one of {sorted(functions)}, got {show(function)}")
    return functions[function]


def arch_bindings(arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture) -> dict[str, Size]:
    """The sizes `arch` binds: `input`, `latent`, `output`, the example's axes `+input` (x [batch, *input]) and
    `+output` (x̂): `(input,)`, `(output,)` for a dense network, `input_shape` (C, H, W) for a convolutional one;
    a `VQArchitecture` also binds `embedding` and `codes`, a `ConvVQArchitecture` those and `*positions`, its
    z_e's (H′, W′)."""
    assert arch.output_size is not None  # __post_init__ sets it
    bindings: dict[str, Size] = {"input": arch.input_size, "latent": arch.latent_size, "output": arch.output_size}
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture, OwnArchitecture)):  # a backend's own: its event
        bindings.update({INPUT_EVENT: arch.input_shape, OUTPUT_EVENT: arch.input_shape})
    else:
        bindings.update({INPUT_EVENT: (arch.input_size,), OUTPUT_EVENT: (arch.output_size,)})
    if isinstance(arch, (VQArchitecture, ConvVQArchitecture)):
        bindings.update(embedding=arch.embedding_dim, codes=arch.num_embeddings)
    if isinstance(arch, ConvVQArchitecture):
        bindings[POSITIONS] = arch.positions
    return bindings


_DENSE_AXES = {INPUT_EVENT: "input", OUTPUT_EVENT: "output"}


def network_dims(arch: object, dims: tuple[str, ...]) -> tuple[str, ...]:
    """`dims` as checked for `arch`: a dense network's example axes are the one axis `input` (`output`), so its
    messages say "rank 2 [batch input]"; a convolutional one's stay the variadic `+input` (`+output`). Only a
    `ConvVQArchitecture` has `*positions` (its z_e [batch, H′, W′, E]); every other network's latent is
    [batch, latent], so the name is dropped there."""
    if isinstance(arch, ConvVQArchitecture):
        return dims
    if arch is not None:
        dims = tuple(d for d in dims if d != POSITIONS)
    if isinstance(arch, (ConvArchitecture, OwnArchitecture)):
        return dims
    return tuple(_DENSE_AXES.get(d, d) for d in dims)


def _image_check(arch: object, name: str, value: object, dims: tuple[str, ...], error: ShapeError) -> ShapeError:
    """A convolutional network's image argument states its expected [batch, C, H, W] (and the channels-last fix);
    a `ConvVQArchitecture`'s latent (z [batch, H′, W′, E]) its channels-last shape (and the channels-first fix)."""
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)) and (INPUT_EVENT in dims or OUTPUT_EVENT in dims):
        return ShapeError(image_error(arch, name, np.shape(value), batched=dims[:1] == ("batch",)))  # type: ignore[call-overload]
    if isinstance(arch, ConvVQArchitecture) and POSITIONS in dims:
        return ShapeError(latent_error(arch, name, np.shape(value)))  # type: ignore[call-overload]
    return error


def check_args(spec: FunctionSpec, args: Mapping[str, Any], dtype: str = "float64", *, own_networks: bool = False
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`args` checked and converted against `spec` in `dtype`, and the dimension sizes they bind.

    `own_networks`: the caller computes networks of its own, so an `OwnArchitecture` (`vaespec.spec.own`) is
    accepted wherever the dense `Architecture` is (its event shape, latent size and parameter layout checked);
    the reference and vaespec's Torch backend pass False and refuse it as any other type.

    Order: the mapping and `dtype`; missing arguments; `arch` (its type, and the sizes it binds);
    sizes; each argument by kind; the declaration's `rules`; its numeric `domain` in `dtype`.
    Keys of `args` that are not arguments of `spec` pass through unchanged.
    """
    function = spec.name
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to value for {function}, got {describe(args)}")
    check_dtype(dtype)
    missing = [a.name for a in spec.args if a.name not in args]
    if missing:
        raise ConfigError(f"args: {function} needs {[a.name for a in spec.args]}; missing {missing}")
    checked: dict[str, Any] = dict(args)
    bindings: dict[str, Any] = {}
    arch: Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture | None = None
    for arg in spec.args:
        if arg.kind == "arch":
            arch = args[arg.name]
            own = own_networks and isinstance(arch, OwnArchitecture) and Architecture in arg.types
            if not own and not isinstance(arch, arg.types):
                names = " or ".join(f"{t.__module__}.{t.__name__}" for t in arg.types)
                raise DTypeError(f"arch: expected a {names} (for {function}), got {describe(arch)}")
            bindings = arch_bindings(arch)
    for arg in spec.args:  # sizes first: they bind the dimensions the arrays are checked against
        if arg.kind == "size":
            value = args[arg.name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_DRAW:
                raise ConfigError(f"{arg.name}: expected a positive integer ≤ {MAX_DRAW} ({arg.domain}), got "
                                  f"{show(value)}")
            checked[arg.name] = bindings[arg.dims[0]] = int(value)
    for arg in spec.args:
        value = args[arg.name]
        if arg.kind == "array":
            value = checked[arg.name] = _checked_array(spec, arg, value, checked, bindings, "float", arch)
            if arg.high < np.inf and (np.any(value < arg.low) or np.any(value > arg.high)):
                raise DomainError(f"{arg.name}: expected values in [{arg.low:g}, {arg.high:g}] ({arg.domain}), "
                                  f"got values in [{value.min()}, {value.max()}]")
            if arg.low > -np.inf and np.any(value < arg.low):
                raise DomainError(f"{arg.name}: expected values ≥ {arg.low} ({arg.domain}), got min {value.min()}")
        elif arg.kind == "index":
            value = checked[arg.name] = _checked_array(spec, arg, value, checked, bindings, "int", arch)
            high = bindings.get(arg.bound)
            if value.size and (value.min() < 0 or (high is not None and value.max() >= high)):
                raise DomainError(f"{arg.name}: expected integers in [0, {high}) ({arg.domain}), got values in "
                                  f"[{value.min()}, {value.max()}]")
            if value.size and (value.min() < arg.low or value.max() > arg.high):  # an index's own stated range
                raise DomainError(f"{arg.name}: expected integers in [{arg.low:g}, {arg.high:g}] ({arg.domain}), got "
                                  f"values in [{value.min()}, {value.max()}]")
        elif arg.kind == "params":
            if arch is None:  # a declaration error: the layout of params comes from the arch argument
                raise ConfigError(f"{arg.name}: {function} declares a params argument but no arch argument to lay "
                                  f"it out (FunctionSpec args {[a.name for a in spec.args]})")
            checked[arg.name] = (check_conv_params(arch, value, arg.layout)
                                 if isinstance(arch, (ConvArchitecture, ConvVQArchitecture))
                                 else check_params("params", value, arch.parameter_shapes(arg.layout),
                                                   allowed=arch.parameter_shapes("all")))
        elif arg.kind == "scalar":
            checked[arg.name] = check_scalar(arg.name, value, low=arg.low, high=arg.high)
            if arg.exclusive_high and checked[arg.name] >= arg.high:
                raise DomainError(f"{arg.name}: expected {arg.low:g} ≤ {arg.name} < {arg.high:g}, got "
                                  f"{checked[arg.name]}")
        elif arg.kind == "convention":
            checked[arg.name] = get_convention(value)
        elif arg.kind == "flag":
            if not isinstance(value, (bool, np.bool_)):
                raise DTypeError(f"{arg.name}: expected True or False, got {describe(value)}")
            checked[arg.name] = bool(value)
        elif arg.kind == "count":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
                raise DomainError(f"{arg.name}: expected an integer in [0, 2**63) ({arg.domain}), got {show(value)}")
            checked[arg.name] = int(value)
        elif arg.kind == "key":
            checked[arg.name] = as_key(value)
        elif arg.kind == "likelihood" and (not isinstance(value, str) or value not in arg.choices):
            raise ConfigError(f"{arg.name}: expected one of {arg.choices}, got {show(value)}")
    for rule in spec.rules:
        rule(function, checked)
    if spec.domain is not None:
        spec.domain.check(function, checked, dtype, checked=True)
    return checked, bindings


def _checked_array(spec: FunctionSpec, arg: Any, value: Any, checked: Mapping[str, Any],
                   bindings: MutableMapping[str, Any], kind: str, arch: object) -> np.ndarray:
    """`check_array` of one array or index argument (its network axes as `arch` has them, `network_dims`); a size
    clash with an earlier array names that array too (a channels-first z_e, or a z of another rank, checked before
    makes the codebook or the levels look wrong), and an image argument of a conv network states its shape."""
    try:
        return check_array(arg.name, value, network_dims(arch, arg.dims), bindings, kind=kind)
    except ShapeError as error:
        earlier = [a for a in spec.args[: spec.args.index(arg)] if a.kind == "array"
                   and isinstance(checked.get(a.name), np.ndarray)]
        notes = [channels_first_note(a.name, a.dims, np.shape(checked[a.name]), arg.dims, np.shape(value))
                 for a in earlier]
        # a variadic size is fixed by the whole shape of the array that bound it: name that array
        notes += [f" (bound by {a.name}, shape {np.shape(checked[a.name])})" for a in earlier
                  if any(d.startswith(("*", "+")) and d in arg.dims for d in a.dims)]
        if not any(notes):
            raise _image_check(arch, arg.name, value, arg.dims, error) from None
        raise ShapeError(f"{error}{''.join(notes)}") from None


def check_cotangent(spec: FunctionSpec, cotangent: Any, bindings: Mapping[str, Any], arch: object = None
                    ) -> tuple[Any, ...]:
    """One float64 cotangent per float output of `spec` (see `vaespec.spec.contract.validate_vjp`), each an
    array of the output's named shape at `bindings` or, for a 0-d output, a finite real number."""
    function = spec.name
    outputs = [o for o in spec.outputs if o.kind == "float"]
    if len(outputs) > 1:
        if not isinstance(cotangent, (tuple, list)):
            raise DTypeError(f"cotangent: expected a tuple of {len(outputs)} arrays for {function}'s outputs "
                             f"{[o.name for o in outputs]}, got {describe(cotangent)}")
        given = tuple(cotangent)
    else:
        given = (cotangent,)
    if len(given) != len(outputs):
        raise ShapeError(f"cotangent: expected {len(outputs)} arrays for {function}'s outputs "
                         f"{[o.name for o in outputs]}, got {len(given)}")
    result: list[Any] = []  # floats and arrays
    for out, value in zip(outputs, given):
        name = f"d_{out.name} (cotangent)"  # the cotangent of output `y` is named d_y in every message
        if out.dims == ():
            result.append(check_scalar(name, value))
        else:
            try:
                result.append(as_real_array(name, value, network_dims(arch, out.dims), dict(bindings)))
            except ShapeError as error:
                # a variadic size (*positions) is fixed by the arguments' shapes: name those arguments too
                dims = network_dims(arch, out.dims)  # a dense network's +output is the one axis output
                bound = [a.name for a in spec.args if a.kind in ("array", "index")
                         and any(d.startswith(("*", "+")) and d in dims for d in a.dims)]
                image = _image_check(arch, f"d_{out.name}", value, out.dims, error)
                if image is not error or not bound:
                    raise image from None
                raise ShapeError(f"{error} (its {next(d for d in dims if d.startswith(('*', '+')))} bound by "
                                 f"{', '.join(bound)})") from None
    return tuple(result)
