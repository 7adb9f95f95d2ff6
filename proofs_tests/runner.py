"""Run a law against a backend with Hypothesis and summarise the outcome.

Used by the pytest suite (one test per law × backend) and by `vaespec check` (one
table row per law × backend), so both report the same verdicts.
"""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass

from hypothesis import given, settings as Settings
from hypothesis import strategies as st

from vaespec.spec.laws import LAWS

from .compare import LawViolation
from .registry import CHECKS


@dataclass
class LawResult:
    law: str
    backend: str
    device: str
    dtype: str
    examples: int
    worst_ratio: float
    verdict: str  # "pass", "FAIL", "ERROR" or "n/a"
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in ("pass", "n/a")

    def to_dict(self) -> dict:
        return asdict(self)


def run_law(law: str, backend, settings: Settings) -> LawResult:
    """Check `law` on `backend` over the examples `settings` allows; never raises for a failure."""
    check = CHECKS[law]
    label = dict(law=law, backend=getattr(backend, "name", type(backend).__name__),
                 device=str(getattr(backend, "device", "?")), dtype=str(getattr(backend, "dtype", "?")))
    chapter = LAWS[law].chapter
    if chapter not in getattr(backend, "chapters", ("vae",)):
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a",
                         message=f"backend does not declare the {chapter!r} chapter")
    requires = LAWS[law].requires
    if requires and not callable(getattr(backend, requires, None)):
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a",
                         message=f"backend has no {requires}()")
    stats = {"examples": 0, "worst": 0.0}

    @settings
    @given(example=check.strategy, data=st.data())
    def run(example, data):
        try:
            ratio = check.run(backend, example, data.draw)
        except LawViolation as violation:
            stats["worst"] = max(stats["worst"], violation.ratio)
            raise
        stats["examples"] += 1
        stats["worst"] = max(stats["worst"], ratio)

    try:
        run()
    except LawViolation as violation:
        return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="FAIL",
                         message=str(violation))
    except Exception as error:  # a crash is a verdict too, not a harness failure
        return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="ERROR",
                         message="".join(traceback.format_exception_only(type(error), error)).strip())
    return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="pass")
