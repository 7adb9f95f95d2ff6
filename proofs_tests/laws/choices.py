"""A backend's discrete choices, for any chapter: the one entry point the generated laws call.

A function makes choices when its reference can be conditioned on them (a keyword-only `indices`,
`checking_vq.makes_choices`); the generic `<function>_matches_reference` / `_gradient_matches_reference`
laws (`laws.differential`) then ask `backend_choices`, which hands the function to its chapter's chooser:
`chooser(backend, function, args, ctx) -> choices` reads the backend's choices, judges them by the
chapter's stated criterion (raising `LawViolation`) and returns them for the reference to be evaluated
at. A chapter's laws module registers its chooser once (`register`, on import; `laws.registry` imports
every chapter's); a new function of the chapter needs no entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError

from . import checking_vq
from .checking_vq import makes_choices

Chooser = Callable[[Any, str, Any, Any], Any]

CHOOSERS: dict[str, Chooser] = {"vq": checking_vq.backend_choices}


def register(chapter: str, chooser: Chooser) -> Chooser:
    """Register `chooser` as the judge of `chapter`'s discrete choices (once per chapter)."""
    if chapter in CHOOSERS and CHOOSERS[chapter] is not chooser:
        raise ConfigError(f"chapter: {chapter!r} already has a chooser ({CHOOSERS[chapter].__qualname__})")
    CHOOSERS[chapter] = chooser
    return chooser


def backend_choices(backend, function: str, args, ctx):
    """The backend's judged choices for `function` at `args` (its chapter's chooser), or None if it makes none."""
    if not makes_choices(function):
        return None
    chapter = FUNCTIONS[function].chapter
    if chapter not in CHOOSERS:
        from . import registry  # noqa: F401  (importing every chapter's laws registers their choosers)
    if chapter not in CHOOSERS:
        raise ConfigError(f"{function}: its reference takes choices (indices=…), but the {chapter!r} chapter registers "
                          f"no chooser in vaespec.proofs_tests.laws.choices.CHOOSERS")
    return CHOOSERS[chapter](backend, function, args, ctx)
