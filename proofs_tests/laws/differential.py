"""Differential laws: every contract function of every chapter, and every gradient, equals the float64 reference.

`<function>_matches_reference` hands the backend an example rounded to its dtype and compares its
outputs with the reference's: integer outputs and keys exactly; float outputs entrywise within
`tolerance(dtype, function, args)` = `2 · rel · M + floor` (M: the reference's magnitude, rel and floor:
the policy's bound for the function's chain), or, for an exact function (draws, copied rows:
`laws.tolerance.exact`), exactly once rounded to the dtype. Where the function makes a discrete choice
(`laws.checking_vq.makes_choices`: VQ's codes), the backend's choices are judged by its
chapter's criterion (`laws.choices.backend_choices`) and the reference is evaluated at them.
`<function>_gradient_matches_reference` compares the vector-Jacobian product for a drawn cotangent
(on the float outputs) entrywise within `tolerance(…, cotangent=ȳ)`: M̄ the reference's backward pass on
absolute values (`vjp_magnitude`), n the forward plus backward chain.

One generator for every chapter: a function's laws, strategy and tolerance all come from its
declaration (`FUNCTIONS`), the chapters' strategy builders (`strategies.chapters`) and `tolerance`.
"""

from __future__ import annotations

import numpy as np

from vaespec.spec.contract import FUNCTIONS, call

from ..strategies import vae as strategies
from ..strategies.chapters import examples_for
from .checking import (
    Check,
    assert_exact,
    assert_exact_in_dtype,
    context,
    function_args,
    one_or_tuple,
    reference_at,
    reference_vjp_at,
    split_outputs,
)
from .choices import backend_choices
from .compare import as_input, assert_within
from .tolerance import exact, tolerance


def _matches_reference(function: str):
    outputs = FUNCTIONS[function].outputs
    floats = [i for i, o in enumerate(outputs) if o.kind == "float"]

    def run(backend, example, draw):
        args = function_args(function, example, backend.dtype)
        ctx = context(function, args, backend)
        indices = backend_choices(backend, function, args, ctx)
        actual_f, actual_o = split_outputs(function, call(backend, function, args), ctx)
        expected_f, expected_o = split_outputs(function, reference_at(function, args, indices))
        for act, exp in zip(actual_o, expected_o):
            assert_exact(function, act, exp, ctx)
        if not floats:
            return 0.0
        if exact(function):
            for act, exp in zip(actual_f, expected_f):
                assert_exact_in_dtype(function, act, exp, backend, ctx)
            return 0.0
        tol = tolerance(backend.dtype, function, args, indices=indices)
        tol_f = tuple(tol[i] for i in floats) if len(outputs) > 1 else (tol,)
        return assert_within(function, one_or_tuple(actual_f), one_or_tuple(expected_f), one_or_tuple(tol_f),
                             context=ctx)
    return run


def _as_cotangent(dtype: str, value):
    """A drawn cotangent as the backend gets it: rounded to its dtype; a 0-d one as a float."""
    if isinstance(value, tuple):
        return tuple(_as_cotangent(dtype, v) for v in value)
    value = as_input(dtype, np.asarray(value, dtype=np.float64))
    return value if value.ndim else float(value)


def _gradient_matches_reference(function: str):
    def run(backend, example, draw):
        args = function_args(function, example, backend.dtype)
        ctx = context(function, args, backend)
        indices = backend_choices(backend, function, args, ctx)
        floats, _ = split_outputs(function, reference_at(function, args, indices))
        cotangent = _as_cotangent(backend.dtype, draw(strategies.cotangents(function, one_or_tuple(floats))))
        expected = reference_vjp_at(function, args, cotangent, indices)
        actual = backend.vjp(function, args, cotangent)
        tol = tolerance(backend.dtype, function, args, cotangent=cotangent, indices=indices)
        ctx = ctx + f"\n# gradient: backend.vjp({function!r}, args, {cotangent!r})"
        return assert_within(f"vjp({function})", actual, expected, tol, context=ctx)
    return run


CHECKS: dict[str, Check] = {}
for _function, _spec in FUNCTIONS.items():
    CHECKS[f"{_function}_matches_reference"] = Check(
        f"{_function}_matches_reference", examples_for(_function), _matches_reference(_function))
    if _spec.differentiable:
        CHECKS[f"{_function}_gradient_matches_reference"] = Check(
            f"{_function}_gradient_matches_reference", examples_for(_function), _gradient_matches_reference(_function))
