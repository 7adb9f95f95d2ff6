"""A failed value or gradient law, diagnosed: which known variant of the reference the backend matches.

When `<f>_matches_reference` or `<f>_gradient_matches_reference` fails, the backend's output is compared,
with the law's own tolerance, against the reference evaluated every way a correct library may differ
from vaespec or a common slip produces (`KINDS`, in this order):

1. each other convention preset (and each convention the backend declares), for a function of a convention;
2. each variant of `laws.variants.VARIANTS` that concerns the function, turned the other way (EMA debiasing,
   the Gaussian constant ½·D·log 2π, the codebook term of vq_loss), then the candidates each variant's effect
   adds (`Effect.candidates`): for vq_loss the codebook term weighted by the commitment weight w, for
   `ema_update` a Laplace ε of 0, 1e-5, 1e-6 or 1e-3;
2b. the values each effect adds that are no variant (`Effect.extras`): for `ema_update`, its averages computed
   as torch's `lerp_` does in the backend's dtype (a form that cancels at small decay,
   `laws.variants.ema_as_lerp`);
3. a float32 computation (inputs and arithmetic in float32, the float32 tolerance) for a float64 backend;
4. slips: twice, half, or minus the reference.

The first candidate that matches is named on the failure's second line, with how close it came:
`diagnosis: matches the reference without EMA debiasing 1/(1 − γᵗ) (to 7.2e-08; 0.0031× the tolerance)`.
None: `diagnosis: matches none of …`. The candidates are evaluated only when the message is shown.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conventions import PRESETS

from . import declared
from .compare import LawViolation, as_input, assert_within, leaves
from .variants import VARIANTS, effects

KINDS = ("convention presets", "declared variants turned the other way", "a codebook term weighted by w",
         "Laplace ε in {0, 1e-5, 1e-6, 1e-3}", "an EMA as torch's lerp", "float32 arithmetic",
         "×2, ×½ and sign slips")


def _map(fn, value):
    if isinstance(value, Mapping):
        return {k: _map(fn, v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_map(fn, v) for v in value)
    return fn(np.asarray(value, dtype=np.float64))


def _floats(function: str, outputs):
    from .checking import one_or_tuple, split_outputs

    return one_or_tuple(split_outputs(function, outputs)[0])


def _candidates(function: str, args, chosen: dict, gradient: bool, backend=None):
    """(description, {**args changes}, variants) for every alternative of the reference, cheapest first."""
    spec = FUNCTIONS[function]
    convention = args.get("convention")
    if any(a.kind == "convention" for a in spec.args) and convention is not None:
        own = declared.conventions(backend) if backend is not None else None
        for preset in dict.fromkeys([*PRESETS.values(), *(own or ())]):
            if preset != convention:
                yield (f"the reference under the convention {preset.name!r} (not {convention.name!r})",
                       {"convention": preset}, chosen)
    for v in VARIANTS.values():
        if not v.supported or v.kind is not bool or not v.flips or not v.concerns(function):
            continue
        current = chosen.get(v.name, v.default)
        yield f"the reference {v.says(not current)}", {}, {**chosen, v.name: not current}
    for effect in effects(function):  # what each variant adds (vq_loss's c = w, ema_update's ε values)
        yield from effect.candidates(function, args, chosen, gradient)


def _close(function: str, actual, expected, tol) -> float | None:
    """max |actual − expected| if within `tol` entrywise, else None."""
    try:
        assert_within(function, actual, expected, tol)
    except (LawViolation, ValueError, TypeError):
        return None
    a, e = dict(leaves(actual)), dict(leaves(expected))
    return max((float(np.max(np.abs(a[k] - e[k]), initial=0.0)) for k in e), default=0.0)


def _diagnose(function: str, backend, args, actual, tol, evaluate, gradient: bool, extra=()) -> str:
    chosen = declared.variants(backend)

    def attempt(description, make):
        try:
            expected = make()
        except Exception:  # noqa: BLE001  (a candidate the reference refuses is no match)
            return None
        distance = _close(function, actual, expected, tol_now[0])
        return None if distance is None else \
            f"diagnosis: matches {description} " + ("(exactly)" if distance == 0 else f"(to {distance:.2g})")

    tol_now = [tol]
    for description, changes, variants in _candidates(function, args, chosen, gradient, backend):
        found = attempt(description, lambda c=changes, v=variants: evaluate({**args, **c}, v))
        if found:
            return found
    for description, make in extra:
        found = attempt(description, make)
        if found:
            return found
    if backend.dtype == "float64":
        from .tolerance import tolerance

        narrow = as_input("float32", dict(args))
        tol_now[0] = tolerance("float32", function, narrow, **evaluate.tolerance_keywords)
        found = attempt("a float32 computation (the backend declares float64)",
                        lambda: _map(lambda a: as_input("float32", a), evaluate(narrow, chosen)))
        if found:
            return found
        tol_now[0] = tol
    for factor, slip in ((2.0, "twice"), (0.5, "half"), (-1.0, "minus")):
        found = attempt(f"{slip} the reference", lambda f=factor: _map(lambda a: f * a, evaluate(args, chosen)))
        if found:
            return found
    return "diagnosis: matches none of the known variants (" + "; ".join(KINDS) + ")"


class _Evaluate:
    """The reference (under variants) at changed args, floats only; `tolerance_keywords` for the float32 bound."""

    def __init__(self, fn, **tolerance_keywords):
        self.fn, self.tolerance_keywords = fn, tolerance_keywords

    def __call__(self, args, chosen):
        return self.fn(args, chosen)


def values(backend, function: str, args, indices, actual_f: tuple) -> str:
    """The diagnosis line for a failed `<function>_matches_reference` (`actual_f`: the backend's float outputs)."""
    from . import variants
    from .checking import one_or_tuple
    from .tolerance import tolerance

    outputs = FUNCTIONS[function].outputs
    floats = [i for i, o in enumerate(outputs) if o.kind == "float"]

    def fn(a, chosen):
        result = variants.value(function, a, indices, chosen) if chosen else \
            variants.plain_reference(function, a, indices)
        return _floats(function, result)

    tol = tolerance(backend.dtype, function, args, indices=indices)
    tol_f = one_or_tuple(tuple(tol[i] for i in floats) if len(outputs) > 1 else (tol,))
    evaluate = _Evaluate(fn, indices=indices)
    chosen = declared.variants(backend)
    extra = [(description, lambda make=make: _floats(function, make()))
             for effect in effects(function) for description, make in
             effect.extras(function, args, indices, chosen, backend.dtype)]  # ema_update's torch-lerp rounding
    return _diagnose(function, backend, args, one_or_tuple(actual_f), tol_f, evaluate, gradient=False, extra=extra)


def gradients(backend, function: str, args, cotangent, indices, actual) -> str:
    """The diagnosis line for a failed `<function>_gradient_matches_reference`."""
    from . import variants
    from .tolerance import tolerance

    def fn(a, chosen):
        return variants.gradient(function, a, cotangent, indices, chosen)

    tol = tolerance(backend.dtype, function, args, cotangent=cotangent, indices=indices)
    evaluate = _Evaluate(fn, cotangent=cotangent, indices=indices)
    return _diagnose(function, backend, args, actual, tol, evaluate, gradient=True)
