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
from . import diagnosis
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
from .compare import LawViolation, LazyText, as_input, assert_within, literal
from .tolerance import exact, tolerance


def check_values(backend, function: str, args) -> float:
    """`<function>_matches_reference` at `args` (as handed to `backend`): the worst error ÷ tolerance, or a
    LawViolation. Repro snippets call it, so a snippet raises what the law raised."""
    outputs = FUNCTIONS[function].outputs
    floats = [i for i, o in enumerate(outputs) if o.kind == "float"]
    ctx = context(function, args, backend) + _replay("check_values", function)
    indices = backend_choices(backend, function, args, ctx)
    actual_f, actual_o = split_outputs(function, call(backend, function, args), ctx)
    expected_f, expected_o = split_outputs(function, reference_at(function, args, indices, backend))
    for act, exp in zip(actual_o, expected_o):
        assert_exact(function, act, exp, ctx)
    if not floats:
        return 0.0
    if exact(function):
        for act, exp in zip(actual_f, expected_f):
            assert_exact_in_dtype(function, act, exp, backend, ctx)
        return 0.0
    def tol_f():
        tol = tolerance(backend.dtype, function, args, indices=indices)
        return one_or_tuple(tuple(tol[i] for i in floats) if len(outputs) > 1 else (tol,))
    try:
        return assert_within(function, one_or_tuple(actual_f), one_or_tuple(expected_f), tol_f, context=ctx)
    except LawViolation as violation:
        violation.diagnose = lambda: diagnosis.values(backend, function, args, indices, actual_f)
        raise


def _replay(check: str, function: str, cotangent: str = "") -> LazyText:
    """The snippet's last lines: the law's own comparison, which raises the LawViolation again."""
    return LazyText(lambda: f"\nfrom vaespec.proofs_tests.laws.differential import {check}\n"
                            f"{check}(backend, {function!r}, args{cotangent})  # the law's comparison: raises")


def _matches_reference(function: str):
    def run(backend, example, draw):
        return check_values(backend, function, function_args(function, example, backend))
    return run


_CHOOSE = object()  # check_gradient's default: ask the backend for its code choices


def _as_cotangent(dtype: str, value):
    """A drawn cotangent as the backend gets it: rounded to its dtype; a 0-d one as a float."""
    if isinstance(value, tuple):
        return tuple(_as_cotangent(dtype, v) for v in value)
    value = as_input(dtype, np.asarray(value, dtype=np.float64))
    return value if value.ndim else float(value)


def check_gradient(backend, function: str, args, cotangent, *, indices=_CHOOSE) -> float:
    """`<function>_gradient_matches_reference` at `args` and `cotangent`: the worst error ÷ tolerance, or a
    LawViolation (what the repro snippet of a gradient failure calls)."""
    shown = literal(cotangent)
    ctx = (context(function, args, backend)
           + f"\nprint(backend.vjp({function!r}, args, {shown}))"
           + f"\nprint(ReferenceBackend().vjp({function!r}, args, {shown}))"
           + _replay("check_gradient", function, f", {shown}"))
    if indices is _CHOOSE:
        indices = backend_choices(backend, function, args, ctx)
    expected = reference_vjp_at(function, args, cotangent, indices, backend)
    actual = backend.vjp(function, args, cotangent)
    def tol():
        return tolerance(backend.dtype, function, args, cotangent=cotangent, indices=indices)
    try:
        return assert_within(f"vjp({function})", actual, expected, tol, context=ctx)
    except LawViolation as violation:
        violation.diagnose = lambda: diagnosis.gradients(backend, function, args, cotangent, indices, actual)
        raise


def _gradient_matches_reference(function: str):
    def run(backend, example, draw):
        args = function_args(function, example, backend)
        ctx = context(function, args, backend)
        indices = backend_choices(backend, function, args, ctx)
        floats, _ = split_outputs(function, reference_at(function, args, indices, backend))
        cotangent = _as_cotangent(backend.dtype, draw(strategies.cotangents(function, one_or_tuple(floats))))
        return check_gradient(backend, function, args, cotangent, indices=indices)
    return run


CHECKS: dict[str, Check] = {}
for _function, _spec in FUNCTIONS.items():
    CHECKS[f"{_function}_matches_reference"] = Check(
        f"{_function}_matches_reference", examples_for(_function), _matches_reference(_function))
    if _spec.differentiable:
        CHECKS[f"{_function}_gradient_matches_reference"] = Check(
            f"{_function}_gradient_matches_reference", examples_for(_function), _gradient_matches_reference(_function))
