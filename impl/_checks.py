"""Argument checks shared by impl's modules, raising vaespec errors that name the argument.

The tensor checks serve the functional ops; `check_contract_domain` the contract's numeric
domains on tensors; `reject_unknown_options` and `require_option` the builders.
Shape, dtype and device checks read tensor metadata only. The finiteness check
(`torch.isfinite(t).all()`) reads the data, which synchronises a CUDA stream; that is
why every public op makes checking optional (`validate=False` on the hot path).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

from vaespec.spec.conventions import Convention
from vaespec.spec.domains import check_domain
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError, describe
from vaespec.spec.shapes import channels_first_note, check_scalar, split_shape

from ._dtypes import dtype_name, to_numpy

T = TypeVar("T")

# dimension name -> (size, name of the argument that fixed it)
Bindings = dict[str, tuple[int | tuple[int, ...], str]]  # a variadic name ("*positions") binds a tuple


def check_tensor(name: str, value: object, dims: tuple[str, ...], bindings: Bindings, like: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Check `value` is a finite floating tensor of the named shape, binding new dimension sizes.

    **Arguments**
    - `name`: the argument's name, used in messages.
    - `dims`: dimension names, e.g. `("batch", "latent")`; one may be variadic (`"*positions"`: zero or
      more axes, bound to the tuple of their sizes, `vaespec.spec.shapes`).
    - `bindings`: sizes fixed by earlier arguments; updated in place.
    - `like`: an earlier argument whose dtype and device `value` must share.

    **Returns** `value`. **Raises** `DTypeError`, `ShapeError` or `DomainError`.
    """
    expected = "[" + ", ".join(dims) + "]"
    if not isinstance(value, torch.Tensor):
        raise DTypeError(f"{name}: expected a torch.Tensor of shape {expected}, got {describe(value)}")
    if not value.is_floating_point():
        raise DTypeError(f"{name}: expected a floating-point tensor {expected}, got dtype {value.dtype}")
    if value.layout != torch.strided or value.device.type == "meta":
        raise DTypeError(f"{name}: expected a dense tensor with storage {expected}, got layout {value.layout} on "
                         f"{value.device}")
    shape = tuple(value.shape)
    pairs = split_shape(dims, shape)
    if pairs is None:
        variadic = any(d.startswith(("*", "+")) for d in dims)
        least = len(dims) - any(d.startswith("*") for d in dims)  # "*": zero or more axes, "+": one or more
        raise ShapeError(f"{name}: expected rank {'at least ' if variadic else ''}{least} {expected}, "
                         f"got shape {shape}")
    clashes = [d for d, size, _ in pairs if d in bindings and bindings[d][0] != size]
    if clashes:
        want = [bindings[d][0] if d in bindings else size for d, size, _ in pairs]
        sources = " and ".join(sorted({bindings[d][1] for d in clashes}))
        hint = ""
        if clashes == [dims[-1]] and len(dims) >= 3 and dims[-2].startswith("*") and len(shape) >= 3 \
                and shape[len(dims) - 2] == bindings[dims[-1]][0]:
            hint = (f"; it looks channels-first: {name} is channels-last {expected}, so move the channel axis last "
                    f"({name}.movedim({len(dims) - 2}, -1))")
        raise ShapeError(f"{name}: expected shape {expected} = {want} to match {sources}, got {shape}{hint}")
    for dim, size, axes in pairs:
        if any(shape[a] == 0 for a in axes):
            where = f"axis {axes[0]}" if len(axes) == 1 else f"axes {axes}"
            raise ShapeError(f"{name}: dimension '{dim}' ({where}) is empty; expected at least 1, "
                             f"got shape {shape}")
        bindings.setdefault(dim, (size, name))
    if like is not None and value.dtype != like.dtype:
        raise DTypeError(f"{name}: expected dtype {like.dtype} to match the first tensor argument, got {value.dtype}")
    if like is not None and value.device != like.device:
        raise DTypeError(f"{name}: expected a tensor on {like.device} to match the first tensor argument, "
                         f"got one on {value.device}")
    if not bool(torch.isfinite(value).all()):
        bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(value))[0])
        raise DomainError(f"{name}: expected finite values, got {value[bad].item()} at index {bad}")
    return value


def check_tensors(args: dict[str, torch.Tensor], dims: dict[str, tuple[str, ...]]) -> None:
    """`check_tensor` on each argument in order, sharing bindings, dtype and device."""
    bindings: Bindings = {}
    first = None
    for name, value in args.items():
        try:
            check_tensor(name, value, dims[name], bindings, first)
        except ShapeError as error:  # a channels-first z_e checked first makes the codebook look wrong
            notes = [channels_first_note(other, dims[other], tuple(args[other].shape), dims[name], tuple(value.shape))
                     for other in args if other != name and isinstance(args[other], torch.Tensor)
                     and isinstance(value, torch.Tensor)]
            if not any(notes):
                raise
            raise ShapeError(f"{error}{''.join(notes)}") from None
        if first is None:
            first = value


def check_beta(beta: object, name: str = "beta") -> float | torch.Tensor:
    """β must be a finite real number ≥ 0 (a Python or numpy number, a 0-d array or a one-element tensor);
    returns it as a float, or as the tensor given (which may carry a gradient)."""
    if isinstance(beta, torch.Tensor):
        if beta.numel() != 1 or not (beta.is_floating_point() or beta.dtype in (torch.int32, torch.int64)) \
                or beta.device.type == "meta":
            raise DTypeError(f"{name}: expected a real number or a one-element real tensor, got {describe(beta)}")
        check_scalar(name, beta.item(), low=0.0)
        return beta
    return check_scalar(name, beta, low=0.0)


def check_contract_domain(function: str, tensors: Mapping[str, torch.Tensor], convention: Convention | None = None,
                          names: Mapping[str, str] | None = None) -> None:
    """The spec's domain check for contract `function` (`vaespec.spec.domains.check_domain`) on `tensors`,
    in their dtype, evaluated in float64 on the host; `names`: how the caller names the contract's arguments."""
    args: dict[str, Any] = {name: to_numpy(t) for name, t in tensors.items()}
    if convention is not None:
        args["convention"] = convention
    check_domain(function, args, dtype_name(next(iter(tensors.values())).dtype), names)


def reject_unknown_options(builder: Callable, unknown: Mapping) -> None:
    """A builder's `**unknown` keywords are a `ConfigError` naming them and listing `builder`'s options
    (Edifice ignores unknown options; here a typo such as `latent_dim=` cannot build the default network)."""
    if unknown:
        valid = [p for p in inspect.signature(builder).parameters if p != "unknown"]
        raise ConfigError(f"{', '.join(sorted(unknown))}: unknown option for {builder.__name__}; "
                          f"valid options are {valid}")


def require_option(option: str, value: T | None, what: str) -> T:
    """A builder option without a default (`what` says what it is) must be given: `value`, else `ConfigError`."""
    if value is None:
        raise ConfigError(f"{option}: required ({what}), got None")
    return value
