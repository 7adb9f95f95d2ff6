"""The suite's one tolerance: the policy's bound for one evaluation times the reference's magnitude.

    tolerance(dtype, function, args)                          # like function's outputs
    tolerance(dtype, function, args, cotangent=ȳ)             # like vjp(function, args, ȳ)
    tolerance(dtype, function, args, indices=k)               # a VQ function at the backend's choices k

is, entrywise, `sides · rel · M + floor` (`compare.tolerance_from`) with `(rel, floor) =
function_bound(dtype, function, args, vjp=…)` — `vaespec.spec.tolerances.bound` of the function's
rounding chain — and `M = magnitude(function, args)` or `vjp_magnitude(function, args, ȳ)`, the
float64 reference's computation on absolute values (docs/tolerances.md). Every law, the golden
vectors (`vectors_export`) and the docs tables (`docs_tolerances`) take their numbers from here;
`exact(function)` says where a function's values must agree exactly instead (draws and copies).
"""

from __future__ import annotations

from typing import Any, Mapping

from vaespec import reference
from vaespec.spec import tolerances as policy
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError, show
from vaespec.spec.laws import LAWS
from vaespec.spec.tolerances import Bound, bound

from .compare import tolerance_from


def _spec(function: str):
    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    return FUNCTIONS[function]


def function_bound(dtype: str, function: str, args: Mapping[str, Any], *, vjp: bool = False) -> Bound:
    """The policy's bound for one evaluation of `function` (its vjp if `vjp`) at `args` in `dtype`:
    `vaespec.spec.tolerances.function_bound` where the spec provides it, else `bound(dtype, n, n_ops)`
    of `function_chain` (the same numbers)."""
    _spec(function)
    declared = getattr(policy, "function_bound", None)
    if declared is not None:
        return declared(dtype, function, args, vjp=vjp)
    return bound(dtype, *function_chain(function, args, vjp=vjp))


def function_chain(function: str, args: Mapping[str, Any], *, vjp: bool = False) -> tuple[int, int]:
    """(n, n_ops) of the longest rounding chain of `function` (its vjp if `vjp`) at `args`: the FunctionSpec's
    declared `chain` / `vjp_chain` where it has them, else `_chain_until_spec`."""
    spec = _spec(function)
    declared = getattr(spec, "vjp_chain" if vjp else "chain", None)
    if callable(declared):
        return declared(args)
    return _chain_until_spec(function, args, vjp)


def _chain_until_spec(function: str, args: Mapping[str, Any], vjp: bool) -> tuple[int, int]:
    """TO BE REPLACED at the merge of issue 11 by each FunctionSpec's declared `chain` (and
    `vaespec.spec.tolerances.function_bound`). Today's rule, from the chapters' chain-length helpers:

    - estimators, bayes: the chapter's `chain_length(name, args)`;
    - VQ network functions (an `arch`): `chain_length(name, arch, batch)`; the other VQ functions
      `vq_chain_length(name, batch, D, K)`, and a function of indices alone (codebook_health's
      perplexity: a sum over the K codes, then exp) K + 6 roundings, 6 of them op results;
    - VAE: a scalar loss on direct inputs (no `arch`) reduces over its first array's shape
      (`reduction_length`; its vjp 2 more ops); the rest `chain_length(name, arch or None, batch)`.
    """
    from vaespec.spec import bayes, estimators

    spec = FUNCTIONS[function]
    name = f"{function}_vjp" if vjp else function
    kinds = {a.name: a.kind for a in spec.args}
    arrays = [args[a.name] for a in spec.args if a.kind == "array"]
    if spec.chapter == "estimators":
        return estimators.chain_length(name, args)
    if spec.chapter == "bayes":
        return bayes.chain_length(name, args)
    if spec.chapter == "vq":
        if "arch" in kinds:
            return policy.chain_length(name, args["arch"], args["x"].shape[0])
        if "codebook" not in kinds and "counts" not in kinds:
            return args["num_embeddings"] + 6, 6
        batch = args["z_e"].shape[0] if "z_e" in kinds else 1
        codes = next(args[k].shape[0] for k in ("codebook", "counts") if k in kinds)
        dim = args["codebook"].shape[1] if "codebook" in kinds else 1
        return policy.vq_chain_length(name, batch, dim, codes)
    if "arch" not in kinds and spec.scalar_output:
        n, ops = policy.reduction_length(*arrays[0].shape)
        return (n + 2, ops + 2) if vjp else (n, ops)
    return policy.chain_length(name, args.get("arch"), arrays[0].shape[0])


def with_choices(args: Mapping[str, Any], indices) -> Mapping[str, Any]:
    """`args` with the backend's code choices (`indices`) for the reference to condition on, if any."""
    return args if indices is None else {**args, "indices": indices}


# Outputs whose magnitude the laws state themselves, by output name: a perplexity exp(H) ≤ K has been compared
# at M = K (laws and vectors alike), not at the reference's perplexity·(H + 2) (`vaespec.reference.vq_magnitude`).
# TO BE SETTLED at the merge of issue 11 (the reference's magnitude, or the declaration's).
STATED_MAGNITUDES = {"perplexity": lambda args: float(args["num_embeddings"])}


def magnitude(function: str, args: Mapping[str, Any], *, indices=None):
    """The reference's magnitude M of `function` at `args` (at the code choices `indices`), like its outputs."""
    spec = _spec(function)
    args = with_choices(args, indices)
    # Until the reference registry (issue 11) serves every chapter from `vaespec.reference.magnitude`, the
    # bayes chapter's magnitudes are its own module's. TO BE REPLACED at the merge.
    if spec.chapter == "bayes":
        m = reference.bayes.magnitude(function, args)
    else:
        m = reference.magnitude(function, args)
    stated = [i for i, o in enumerate(spec.outputs) if o.name in STATED_MAGNITUDES]
    if not stated:
        return m
    m = list(m) if len(spec.outputs) > 1 else [m]
    for i in stated:
        m[i] = STATED_MAGNITUDES[spec.outputs[i].name](args)
    return tuple(m) if len(spec.outputs) > 1 else m[0]


def vjp_magnitude(function: str, args: Mapping[str, Any], cotangent, *, indices=None):
    """The reference's magnitude M̄ of `vjp(function, args, cotangent)` (at the choices `indices`), like its result."""
    spec = _spec(function)
    args = with_choices(args, indices)
    if spec.chapter == "bayes":  # as `magnitude`: until the reference registry
        return reference.bayes.vjp_magnitude(function, args, cotangent)
    return reference.vjp_magnitude(function, args, cotangent)


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
