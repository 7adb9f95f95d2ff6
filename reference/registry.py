"""Every contract function's float64 reference, by name, and the validated entry points that look it up.

`REFERENCE[name]` is the `ReferenceFunction` of `vaespec.spec.contract.FUNCTIONS[name]`: its
forward, VJP, magnitude and VJP magnitude, defined side by side in the chapter's module
(`losses` and `vae`; `vq` and `vq_network`; `estimators`; `bayes`; `quantizers`), each of which lists its
entries in `REFERENCE_FUNCTIONS`. A new contract function is one more entry there;
`missing()` names the declared functions that have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vaespec.spec.contract import FUNCTIONS, validate_vjp
from vaespec.spec.errors import ConfigError, show

from . import bayes, estimators, losses, quantizers, vae, vq, vq_network
from .function import VJP, ReferenceFunction

__all__ = ["REFERENCE", "ReferenceFunction", "magnitude", "missing", "vjp", "vjp_magnitude"]

CHAPTER_MODULES = (losses, vae, vq, vq_network, estimators, bayes, quantizers)


def _collect() -> dict[str, ReferenceFunction]:
    table: dict[str, ReferenceFunction] = {}
    for module in CHAPTER_MODULES:
        for entry in module.REFERENCE_FUNCTIONS:
            if entry.name in table:
                raise ConfigError(f"{module.__name__}: {entry.name} is already registered by another module")
            table[entry.name] = entry
    return {name: table[name] for name in FUNCTIONS if name in table}  # the spec's order


REFERENCE: dict[str, ReferenceFunction] = _collect()


def missing() -> list[str]:
    """The contract functions (`FUNCTIONS`) without a reference entry; [] when the reference is complete."""
    return [name for name in FUNCTIONS if name not in REFERENCE]


def _entry(function: object) -> ReferenceFunction:
    if not isinstance(function, str) or function not in REFERENCE:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    return REFERENCE[function]


def _differentiable(function: str, args: Mapping[str, Any], cotangent: object) -> tuple[VJP, VJP]:
    """`(vjp, vjp_magnitude)` of a function with a VJP; for one without, `validate_vjp`'s error (after the
    arguments' own)."""
    entry = _entry(function)
    if entry.vjp is None or entry.vjp_magnitude is None:  # both or neither (ReferenceFunction checks)
        validate_vjp(function, args, cotangent)  # raises: checks the arguments, then names the differentiable ones
        raise ConfigError(f"function: {function} has no VJP")  # unreachable while the spec and registry agree
    return entry.vjp, entry.vjp_magnitude


def vjp(function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
    """The reference's vector-Jacobian product of `function` at `args` for `cotangent`: `{arg: gradient}` for
    each differentiable argument ("params": a dict of arrays over every parameter passed).

    `function` must be a contract function with a differentiable argument; `args` (contract names; the VQ
    functions also read an optional `indices`) and `cotangent` (one entry per float output, a tuple when
    several) are checked by `vaespec.spec.contract.validate_vjp` and raise a vaespec error naming what is wrong.
    """
    if not isinstance(function, str) or function not in REFERENCE:
        raise ConfigError(f"function: expected one of {sorted(f for f, e in REFERENCE.items() if e.vjp)}, "
                          f"got {show(function)}")
    return _differentiable(function, args, cotangent)[0](args, cotangent)


def magnitude(function: str, args: Mapping[str, Any]) -> Any:
    """Error scale of `function` at `args`, structured like its output: the value the computation takes on
    absolute values (with every error-propagating derivative by its absolute value), so a backend with unit
    roundoff u and n roundings along the chain errs by at most ≈ γ_n · M (`vaespec.spec.tolerances`).

    `function` and `args` are checked as the function's own (`validate_args`); extra entries of `args`
    (VQ's `indices`: the code choices to condition on) are kept.
    """
    return _entry(function).magnitude(args)


def vjp_magnitude(function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
    """Error scale of `vjp(function, args, cotangent)`, structured like its result: the backward pass run on
    absolute values (|W|ᵀ, |act′|, |ȳ|) from the magnitude of each loss derivative — e.g. d KL / d lv =
    ½(exp(lv) − 1) has magnitude ½(exp(lv) + 1), the size of what an autograd backend actually cancels.
    Arguments checked as `vjp`'s (`validate_vjp`).
    """
    return _differentiable(function, args, cotangent)[1](args, cotangent)
