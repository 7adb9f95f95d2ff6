"""Hypothesis profiles used by the suite and by `vaespec check`.

- `ci`: derandomized (the same examples every run), no example database, no deadline.
  `.ci/run` and `vaespec check` use it by default, so a verdict is reproducible.
- `dev`: few examples, for a quick loop while editing.
- `thorough`: many examples, randomized, for a release or a new port.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

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


def profile_settings(name: str) -> settings:
    """The Hypothesis settings of profile `name` ("ci", "dev" or "thorough")."""
    if name not in PROFILES:
        raise ValueError(f"profile: expected one of {sorted(PROFILES)}, got {name!r}")
    return settings.get_profile(f"vaespec-{name}")
