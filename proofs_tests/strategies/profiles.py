"""Hypothesis profiles used by the suite and by `vaespec check`.

- `ci`: derandomized (the same examples every run), no example database, no deadline.
  `.ci/run` and `vaespec check` use it by default, so a verdict is reproducible.
- `dev`: few examples, for a quick loop while editing.
- `thorough`: many examples, randomized, for a release or a new port.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "draws_ignore_loaded_modules", "profile_settings"]

PROFILES = {
    "ci": {"max_examples": 25, "derandomize": True, "database": None, "deadline": None, "print_blob": True},
    "dev": {"max_examples": 8, "derandomize": True, "database": None, "deadline": None},
    "thorough": {"max_examples": 300, "deadline": None},
}
# Networks are drawn by seed and size, so examples are cheap to draw but each runs a
# few small forward passes; too_slow would only flag the torch start-up cost.
_SUPPRESS = [HealthCheck.too_slow]

for _name, _kwargs in PROFILES.items():
    settings.register_profile(f"vaespec-{_name}", suppress_health_check=_SUPPRESS, **_kwargs)


def draws_ignore_loaded_modules() -> bool:
    """Keep Hypothesis's pool of *local* constants empty, so a derandomized profile draws the same examples
    whatever modules are loaded; True where this Hypothesis has the pool (the pinned 6.155.2 does), else False.

    Hypothesis mixes constants from the source of loaded modules outside site-packages into ≈ 5 % of its draws,
    so examples depended on the install and, under pytest-xdist, on a worker's earlier tests (docs/testing.md,
    "Hypothesis profiles"). Its global constants (0, ±inf, 1e-5, …) stay. There is no setting for this: the
    private `_get_local_constants` is replaced, and `selftests/test_profiles.py` checks that this still works."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # a Hypothesis before local constants
        return False
    if not callable(getattr(providers, "_get_local_constants", None)):
        return False
    empty = Constants()
    providers._get_local_constants = lambda: empty
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    if cache is not None:  # pools cached from draws made before this call
        cache.cache.clear()
    return True


DRAWS_IGNORE_LOADED_MODULES = draws_ignore_loaded_modules()


def profile_settings(name: str) -> settings:
    """The Hypothesis settings of profile `name` ("ci", "dev" or "thorough")."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {sorted(PROFILES)}, got {name!r}")
    return settings.get_profile(f"vaespec-{name}")
