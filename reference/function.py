"""One contract function's float64 reference: its forward, VJP, magnitude and VJP magnitude together."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError, show

# The one VJP convention: `f_vjp(args, cotangent) -> {arg: gradient}` (and the VJP magnitude alike).
VJP = Callable[[Mapping[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class ReferenceFunction:
    """The reference of `FUNCTIONS[name]` (`vaespec.spec.contract`), as `vaespec.reference.registry.REFERENCE` holds it.

    - `forward(*args)`: the function, its contract arguments in the `FunctionSpec`'s order (the VQ
      functions that pick codes also take a keyword `indices`: evaluate at those choices);
    - `magnitude(args) -> like the output`: each output's first-order error scale M, which the tolerance
      policy multiplies by γ_n (`vaespec.spec.tolerances`); 0 for exact (integer) outputs;
    - `vjp(args, cotangent) -> {arg: gradient}`: the hand-written vector-Jacobian product, one entry per
      differentiable argument ("params": a dict of arrays over every parameter passed); `cotangent` has
      the structure of the float outputs (a tuple when there are several, e.g. encode's `(d_mu, d_log_var)`);
    - `vjp_magnitude(args, cotangent) -> like vjp's result`: the error scale of each gradient;
    - `surrogate(args, base) -> like the float outputs`, for a straight-through VJP only: the smooth function
      the VJP is the derivative of — the formula at `args` with every stop-gradient's operand evaluated at
      `base` — which the finite-difference checks differentiate instead of the piecewise-constant value
      (None: the forward).

    `args` maps contract argument names to values and may hold more (the VQ functions read an extra
    `indices`: the code choices to condition on). Each callable checks its own inputs as the contract
    does (`validate_args`, `validate_vjp`) and raises a vaespec error naming the argument. `vjp` and
    `vjp_magnitude` are given exactly when the function has a differentiable argument.
    """

    name: str
    forward: Callable[..., Any]
    magnitude: Callable[[Mapping[str, Any]], Any]
    vjp: VJP | None = None
    vjp_magnitude: VJP | None = None
    surrogate: Callable[[Mapping[str, Any], Mapping[str, Any]], Any] | None = None

    def __post_init__(self):
        if self.name not in FUNCTIONS:
            raise ConfigError("name: expected a contract function (vaespec.spec.contract.FUNCTIONS), got "
                              f"{show(self.name)}")
        differentiable = bool(FUNCTIONS[self.name].differentiable)
        for part in ("vjp", "vjp_magnitude"):
            if (getattr(self, part) is not None) != differentiable:
                raise ConfigError(f"{part}: {self.name} {'has' if differentiable else 'has no'} differentiable "
                                  f"argument, so its reference {'needs' if differentiable else 'takes no'} {part}")
