"""A backend's discrete choices, for any chapter: the one entry point the generated laws call.

A function makes choices when its reference can be conditioned on them (a keyword-only `indices`,
`checking_vq.makes_choices`); the generic `<function>_matches_reference` / `_gradient_matches_reference`
laws (`laws.differential`) then ask `backend_choices`, which hands the function to its chapter's chooser:
`chooser(backend, function, args, ctx) -> choices` reads the backend's choices, judges them by the
chapter's stated criterion (raising `LawViolation`) and returns them for the reference to be evaluated
at. A chapter with discrete choices has one entry in `CHOOSERS` (and `CLEAR`), naming its chooser module
(`checking_<chapter>`, which must not import the laws, so the imports stay acyclic); a new function of the
chapter needs no entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError

from . import checking_quantizers, checking_vq
from .checking_vq import makes_choices

Chooser = Callable[[Any, str, Any, Any], Any]
# clear(function, args) -> bool: every conforming backend, in every dtype, must make the reference's choices at
# args (the golden vectors redraw a case until it is; VQ's cases are placed by the exporter itself).
Clear = Callable[[str, Any], bool]

CHOOSERS: dict[str, Chooser] = {"vq": checking_vq.backend_choices, "quantizers": checking_quantizers.choices}
CLEAR: dict[str, Clear] = {"quantizers": checking_quantizers.clear}


def clear(function: str, args) -> bool:
    """Whether every dtype must make the reference's choices for `function` at `args` (True when it makes
    none, or its chapter states no test)."""
    if not makes_choices(function):
        return True
    test = CLEAR.get(FUNCTIONS[function].chapter)
    return True if test is None else bool(test(function, args))


def backend_choices(backend, function: str, args, ctx):
    """The backend's judged choices for `function` at `args` (its chapter's chooser), or None if it makes none."""
    if not makes_choices(function):
        return None
    chapter = FUNCTIONS[function].chapter
    if chapter not in CHOOSERS:
        raise ConfigError(f"{function}: its reference takes choices (indices=…), but the {chapter!r} chapter has "
                          f"no chooser in vaespec.proofs_tests.laws.choices.CHOOSERS")
    return CHOOSERS[chapter](backend, function, args, ctx)
