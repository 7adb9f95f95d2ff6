"""Differential laws: every VAE contract function and every gradient equals the float64 reference.

`<function>_matches_reference` compares outputs entrywise within
`2 · γ_n · M + floor` (M: the reference's magnitude, n: the function's chain length).
`<function>_gradient_matches_reference` compares the vector-Jacobian product for a drawn
cotangent entrywise within `2 · γ_n · M̄ + floor`, where M̄ is the reference's gradient
magnitude (the backward pass on absolute values, `vjp_magnitude`) and n the forward plus
backward chain.
"""

from __future__ import annotations

from vaespec.reference import vjp_magnitude
from vaespec.spec.contract import FUNCTIONS, call

from . import strategies
from .checking import REFERENCE, Check, context, function_args, function_bound, function_tolerance
from .compare import assert_within, as_input, tolerance_from


def _matches_reference(function: str):
    def run(backend, example, draw):
        args = function_args(function, example, backend.dtype)
        expected = call(REFERENCE, function, args)
        actual = call(backend, function, args)
        return assert_within(function, actual, expected, function_tolerance(backend, function, args),
                             context=context(function, args, backend))
    return run


def _gradient_matches_reference(function: str):
    def run(backend, example, draw):
        args = function_args(function, example, backend.dtype)
        outputs = call(REFERENCE, function, args)
        cotangent = as_input(backend.dtype, draw(strategies.cotangents(function, outputs)))
        expected = REFERENCE.vjp(function, args, cotangent)
        actual = backend.vjp(function, args, cotangent)
        tolerance = tolerance_from(function_bound(backend.dtype, f"{function}_vjp", args),
                                   vjp_magnitude(function, args, cotangent))
        ctx = context(function, args, backend) + f"\n# gradient: backend.vjp({function!r}, args, {cotangent!r})"
        return assert_within(f"vjp({function})", actual, expected, tolerance, context=ctx)
    return run


CHECKS = {}
for _function, _spec in FUNCTIONS.items():
    if _spec.chapter != "vae":  # other chapters check their functions in their own modules (laws_vq_codebook, …)
        continue
    CHECKS[f"{_function}_matches_reference"] = Check(
        f"{_function}_matches_reference", strategies.examples_for(_function), _matches_reference(_function))
    CHECKS[f"{_function}_gradient_matches_reference"] = Check(
        f"{_function}_gradient_matches_reference", strategies.examples_for(_function),
        _gradient_matches_reference(_function))
