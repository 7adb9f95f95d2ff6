"""The `Proof` record (its own module so the proof modules can import it while the package collects them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Proof:
    """A named symbolic derivation: `statement` in words, `run()` derives and asserts it."""

    name: str
    statement: str
    derive: Callable[[], object]

    def run(self):
        return self.derive()
