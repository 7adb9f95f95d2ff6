"""The suite's one tolerance: the policy's bound for one evaluation times the reference's magnitude.

    tolerance(dtype, function, args)                          # like function's outputs
    tolerance(dtype, function, args, cotangent=ȳ)             # like vjp(function, args, ȳ)
    tolerance(dtype, function, args, indices=k)               # a VQ function at the backend's choices k

is, entrywise, `sides · rel · M + floor` (`laws.compare.tolerance_from`) with `(rel, floor) =
function_bound(dtype, function, args, vjp=…)` — `vaespec.spec.tolerances.bound` of the function's
rounding chain — and `M = magnitude(function, args)` or `vjp_magnitude(function, args, ȳ)`, the
float64 reference's computation on absolute values (docs/tolerances.md). Every law, the golden
vectors (`vectors.export`) and the docs tables (`docs_tolerances`) take their numbers from here;
`exact(function)` says where a function's values must agree exactly instead (draws and copies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vaespec import reference
from vaespec.spec import tolerances as policy
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError, show
from vaespec.spec.laws import LAWS
from vaespec.spec.tolerances import Bound

from .compare import tolerance_from
from .memo import memoized


def _spec(function: str):
    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    return FUNCTIONS[function]


def function_bound(dtype: str, function: str, args: Mapping[str, Any], *, vjp: bool = False) -> Bound:
    """The policy's bound for one evaluation of `function` (its vjp if `vjp`) at `args` in `dtype`:
    `vaespec.spec.tolerances.function_bound` of the chain the FunctionSpec declares. `args` are what a
    backend received (already checked at its boundary) or, for the docs tables, only the arrays and the
    architecture the chain's sizes are read from."""
    _spec(function)
    return policy.function_bound(dtype, function, args, vjp=vjp, validate=False)


def function_chain(function: str, args: Mapping[str, Any], *, vjp: bool = False) -> tuple[int, int]:
    """(n, n_ops) of the longest rounding chain of `function` (its vjp if `vjp`) at `args`, as declared."""
    return tuple(_spec(function).rounding_chain(args, vjp=vjp))


def with_choices(args: Mapping[str, Any], indices) -> Mapping[str, Any]:
    """`args` with the backend's code choices (`indices`) for the reference to condition on, if any."""
    return args if indices is None else {**args, "indices": indices}


# Outputs whose magnitude the laws state themselves, by output name: a perplexity exp(H) ≤ K has been compared
# at M = K (laws and vectors alike), not at the reference's perplexity·(H + 2) (`codebook_health_magnitude` in
# vaespec.reference.vq). Neither is larger everywhere; which one the policy states is open (issue 11's note).
STATED_MAGNITUDES = {"perplexity": lambda args: float(args["num_embeddings"])}


def magnitude(function: str, args: Mapping[str, Any], *, indices=None):
    """The reference's magnitude M of `function` at `args` (at the code choices `indices`), like its outputs."""
    spec = _spec(function)
    args = with_choices(args, indices)
    m = memoized("magnitude", lambda: reference.magnitude(function, args), function, args)
    stated = [i for i, o in enumerate(spec.outputs) if o.name in STATED_MAGNITUDES]
    if not stated:
        return m
    m = list(m) if len(spec.outputs) > 1 else [m]
    for i in stated:
        m[i] = STATED_MAGNITUDES[spec.outputs[i].name](args)
    return tuple(m) if len(spec.outputs) > 1 else m[0]


def vjp_magnitude(function: str, args: Mapping[str, Any], cotangent, *, indices=None):
    """The reference's magnitude M̄ of `vjp(function, args, cotangent)` (at the choices `indices`), like its result."""
    _spec(function)  # refuses an unknown function name with the contract's error
    args = with_choices(args, indices)
    return memoized("vjp_magnitude", lambda: reference.vjp_magnitude(function, args, cotangent), function, args,
                    cotangent)


def tolerance(dtype: str, function: str, args: Mapping[str, Any], *, cotangent=None, indices=None, sides: int = 2):
    """Entrywise tolerance for `function` evaluated at `args` by a backend computing in `dtype`.

    **Arguments**
    - `dtype`: the backend's compute dtype ("float64", "float32", "bfloat16", "float16").
    - `function`, `args`: a contract function and its arguments (as the backend received them).
    - `cotangent`: None for the function's outputs; else the tolerance of `vjp(function, args, cotangent)`.
    - `indices`: for a VQ function, the backend's code choices the reference is conditioned on.
    - `sides`: how many of the compared values may err by rel·M (2: backend vs reference).

    **Returns** `sides · rel · M + floor` structured like the outputs (a tuple for several, integer outputs
    included: their M is 0) or like the vjp's result (a dict; "params" a dict of arrays).
    """
    vjp = cotangent is not None
    b = function_bound(dtype, function, args, vjp=vjp)
    m = vjp_magnitude(function, args, cotangent, indices=indices) if vjp else \
        magnitude(function, args, indices=indices)
    return tolerance_from(b, m, sides)


def exact(function: str) -> bool:
    """Whether `function`'s float values must equal the reference's exactly once rounded to the backend's dtype
    (draws, copied rows: its `<function>_matches_reference` law has tolerance class "exact")."""
    _spec(function)
    return LAWS[f"{function}_matches_reference"].tolerance == "exact"


def own_network_tolerance(dtype: str, function: str, args: Mapping[str, Any], lhs, rhs, *, sides: int = 2):
    """The tolerance of a law comparing two evaluations of `function` through a backend's own network
    (`args["arch"]` a `vaespec.spec.own.OwnArchitecture`), which the reference cannot evaluate.

    `sides · rel · M + floor` with `(rel, floor) = bound(dtype, n, n_ops)`: `(n, n_ops)` the network's stated
    `rounding_chain`, plus, for `loss`, its reductions over the batch and the event (`batch · ∏ input_shape`
    terms, 8 more ops); and M, in place of the reference's absolute-value magnitude, the larger of the two sides'
    largest |entry| of each output (one scale per output: a network's cancellations stay covered as long as they
    leave values of that scale elsewhere in the output). docs/tolerances.md, "a backend's own network"."""
    b = policy.bound(dtype, *own_network_chain(function, args))

    def scale(a, b_):
        if isinstance(a, (tuple, list)):
            return tuple(scale(x, y) for x, y in zip(a, b_))
        return max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b_), initial=0.0)))
    return tolerance_from(b, scale(lhs, rhs), sides)


def own_network_chain(function: str, args: Mapping[str, Any], *, vjp: bool = False) -> tuple[int, int]:
    """(n, n_ops) of `function` through a backend's own network (`args["arch"]` an `OwnArchitecture`): its
    stated `rounding_chain`, plus, for `loss`, the reductions over the batch and the event (`batch · ∏ input_shape`
    terms, 8 more ops); with `vjp`, as for vaespec's networks (`vaespec.spec.chains`), the forward chain, the
    backward chain (as long again) and the batch sum of the weight gradients: (2n + batch, 2·n_ops)."""
    arch = args["arch"]
    n, n_ops = arch.rounding_chain
    batch = int(np.shape(args["x"] if "x" in args else args["z"] if "z" in args else args["eps"])[0])
    if function == "loss":
        n, n_ops = n + batch * arch.input_size, n_ops + 8
    return (2 * n + batch, 2 * n_ops) if vjp else (n, n_ops)


def own_network_vjp_tolerance(dtype: str, function: str, args: Mapping[str, Any], gradient, *, sides: int = 1):
    """The tolerance of `vjp(function, args, ȳ)` through a backend's own network, like `gradient` (its result):
    `sides · rel · M + floor` with `(rel, floor) = bound(dtype, *own_network_chain(function, args, vjp=True))` and
    M, per array (each parameter, each input), its largest |entry| (`own_network_tolerance`'s scale, for the
    backward pass)."""
    b = policy.bound(dtype, *own_network_chain(function, args, vjp=True))

    def scale(g):
        if isinstance(g, Mapping):
            return {k: scale(v) for k, v in g.items()}
        return float(np.max(np.abs(g), initial=0.0))
    return tolerance_from(b, scale(gradient), sides)
