"""Run a law against backends with Hypothesis and summarise the outcome.

Used by the pytest suite (one test per law × backend) and by `vaespec check` (one table row
per law × backend), so both report the same verdicts.

`run_laws` draws each law's examples once and checks every backend on each of them; `run_law`
checks one backend alone. Both give the same verdict for every backend: a backend that fails
(or whose in-check draws differ from the others') is re-run alone, so Hypothesis shrinks its
counterexample exactly as it would have, and a backend that passes saw the very examples and
draws that a run of its own would have seen (the same seed, the same choice sequence).
"""

from __future__ import annotations

import copy
import secrets
import traceback
from dataclasses import asdict, dataclass

from hypothesis import given
from hypothesis import seed as with_seed
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import UnsatisfiedAssumption
from hypothesis.internal.conjecture.utils import int_from_bytes
from hypothesis.internal.reflection import function_digest

from vaespec.reference.backend import ReferenceBackend
from vaespec.spec.laws import LAWS

from ..laws import declared
from ..laws.checking import Check
from ..laws.compare import LawViolation
from ..laws.registry import CHECKS


@dataclass
class LawResult:
    law: str
    backend: str
    device: str
    dtype: str
    examples: int
    worst_ratio: float
    verdict: str  # "pass", "FAIL", "ERROR", "n/a"; with a skip/xfail file also "skipped", "xfail", "XPASS"
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in ("pass", "n/a", "skipped", "xfail")

    def to_dict(self) -> dict:
        return asdict(self)


def _label(law: str, backend) -> dict:
    return {"law": law, "backend": getattr(backend, "name", type(backend).__name__),
            "device": str(getattr(backend, "device", "?")), "dtype": str(getattr(backend, "dtype", "?"))}


def compares_with_reference(law: str) -> bool:
    """Whether `law` compares a backend with the float64 reference (`<function>_matches_reference`, …)."""
    return law.endswith("_matches_reference")


def not_applicable(law: str, backend) -> LawResult | None:
    """The "n/a" result when `law` cannot be asked of `backend`, else None."""
    label = _label(law, backend)
    chapter = LAWS[law].chapter
    if chapter not in getattr(backend, "chapters", ("vae",)):
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a",
                         message=f"backend does not declare the {chapter!r} chapter")
    requires = LAWS[law].requires
    if requires and not callable(getattr(backend, requires, None)):
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a",
                         message=f"backend has no {requires}()")
    if type(backend) is ReferenceBackend and compares_with_reference(law):  # subclasses (controls) are checked
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a",
                         message="the reference is what this law compares against")
    reason = declared.not_applicable(law, backend)
    if reason:
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a", message=reason)
    return None


def _note(backend, example) -> str:
    """What the first line of every failure adds: the convention handed to the backend, if the example has one,
    and always the variants it declares (`declared.named`), e.g. " [convention 'elbo'; variants: ema_debias=False]"
    or " [variants: none]"."""
    parts = []
    drawn = getattr(example, "args", {}).get("convention")
    if drawn is not None and hasattr(drawn, "name"):
        parts.append(f"convention {declared.convention_for(backend, drawn).name!r}")
    parts.append(declared.named(backend))
    return f" [{'; '.join(parts)}]"


def _labelled(check: Check) -> Check:
    """`check` whose LawViolations name, in their first line, the convention and the declared variants (the
    exception itself is amended and re-raised, so Hypothesis sees the same failure at the same place)."""
    def run(backend, example, draw):
        try:
            return check.run(backend, example, draw)
        except LawViolation as violation:
            text = str(violation)
            first, sep, rest = text.partition("\n")
            note = _note(backend, example)
            if not first.endswith(note):
                violation.args = (first + note + sep + rest, *violation.args[1:])
            raise
    return Check(check.law, check.strategy, run)


def _with_diagnosis(violation: LawViolation) -> str:
    """The message of `violation` with its diagnosis (`laws.diagnosis`) as the second line, where it has one."""
    text = str(violation)
    diagnose = getattr(violation, "diagnose", None)
    if diagnose is None:
        return text
    try:
        line = diagnose()
    except Exception as error:  # noqa: BLE001  (a diagnosis never changes a verdict, whatever it raises)
        line = f"diagnosis: not available ({type(error).__name__}: {str(error)[:200]})"
    first, sep, rest = text.partition("\n")
    return first + "\n" + line + sep + rest


def _solo_test(check, backend, settings: Settings, stats: dict):
    # The text of `run` (decorators included) is Hypothesis's derandomization seed: keep it as it is,
    # or every law's examples change. run_laws reads the seed from here too.
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
    return run


def _violations(error: BaseException) -> list[LawViolation]:
    """The LawViolations in `error`: itself, or those of the group Hypothesis raises when shrinking
    ends at several distinct failures (report_multiple_bugs)."""
    if isinstance(error, LawViolation):
        return [error]
    group = getattr(error, "exceptions", None)  # an ExceptionGroup (Python ≥ 3.11, or its backport)
    return [v for e in group for v in _violations(e)] if isinstance(group, (list, tuple)) else []


def _outcome(label: dict, stats: dict, error: BaseException | None) -> LawResult:
    found = [] if error is None else _violations(error)
    if found and not isinstance(error, LawViolation):  # several distinct failures: each one breaks the law
        more = f"\n(Hypothesis found {len(error.exceptions)} distinct failures; the first is shown)"
        return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="FAIL",
                         message=_with_diagnosis(found[0]) + more)
    if error is None:
        return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="pass")
    if isinstance(error, LawViolation):
        return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="FAIL",
                         message=_with_diagnosis(error))
    if isinstance(error, declared.NotApplicable):
        return LawResult(**label, examples=0, worst_ratio=0.0, verdict="n/a", message=str(error))
    # a crash is a verdict too, not a harness failure
    return LawResult(**label, examples=stats["examples"], worst_ratio=stats["worst"], verdict="ERROR",
                     message="".join(traceback.format_exception_only(type(error), error)).strip())


def run_law(law: str, backend, settings: Settings, *, seed: int | None = None) -> LawResult:
    """Check `law` on `backend` alone over the examples `settings` allows; never raises for a failure.

    `seed` fixes Hypothesis's seed (a randomized profile's re-run of one backend of `run_laws`)."""
    skipped = not_applicable(law, backend)
    if skipped is not None:
        return skipped
    stats = {"examples": 0, "worst": 0.0}
    test = _solo_test(_labelled(CHECKS[law]), backend, settings, stats)
    if seed is not None:
        test = with_seed(seed)(test)
    try:
        test()
    except Exception as error:  # noqa: BLE001 (a user backend's own exception is an outcome of the law)
        return _outcome(_label(law, backend), stats, error)
    return _outcome(_label(law, backend), stats, None)


class _Diverged(BaseException):
    """A backend asked for a draw the shared run cannot replay (a BaseException, so checks never catch it)."""


class _Draws:
    """One backend's `draw` within a shared example: the k-th draw of every backend must be the same
    strategy (by repr), and is drawn from Hypothesis once and replayed (a fresh copy) to the others."""

    def __init__(self, data, record: list):
        self.data, self.record, self.count = data, record, 0

    def __call__(self, strategy):
        self.count += 1
        if self.count > len(self.record):
            value = self.data.draw(strategy)
            self.record.append((strategy, copy.deepcopy(value)))
            return value
        recorded, value = self.record[self.count - 1]
        # The same object (the strategies' factories cache them) is the same strategy; a repr, of a lazy
        # strategy built anew, costs more than many draws, so it is compared only when the objects differ.
        if recorded is not strategy and repr(recorded) != repr(strategy):
            raise _Diverged(repr(strategy))
        return copy.deepcopy(value)


def _derandomized_seed(law: str, backend, settings: Settings) -> int:
    """The seed Hypothesis derives for `run_law(law, backend, settings)` under `derandomize`."""
    inner = _solo_test(CHECKS[law], backend, settings, {}).hypothesis.inner_test
    return int_from_bytes(function_digest(inner))


def skipped(law: str, backend, reason: str) -> LawResult:
    """The "skipped" row of a law listed in a skip file."""
    return LawResult(**_label(law, backend), examples=0, worst_ratio=0.0, verdict="skipped", message=reason)


def run_laws(law: str, backends: list, settings: Settings, skip: dict[int, str] | None = None) -> list[LawResult]:
    """`run_law(law, b, settings)` for every backend `b`, drawing the examples once for all of them.

    Per example, each backend still checked gets its own copy of the example, and the draws a
    check makes are drawn once and replayed to the others. A backend that fails, crashes, or
    draws differently from the rest is dropped from the shared run and re-run alone with the
    same seed, which reproduces the examples it saw and lets Hypothesis shrink. `skip` maps the index of a
    backend not to run (a skip file's entry) to the reason.
    """
    skip = skip or {}
    results: list[LawResult | None] = [skipped(law, b, skip[i]) if i in skip else not_applicable(law, b)
                                       for i, b in enumerate(backends)]
    active = [i for i, r in enumerate(results) if r is None]
    if not active:
        return results  # type: ignore[return-value]
    check = _labelled(CHECKS[law])
    run_seed = (_derandomized_seed(law, backends[active[0]], settings) if settings.derandomize
                else secrets.randbits(64))
    stats = {i: {"examples": 0, "worst": 0.0} for i in active}
    alone: set[int] = set()  # failed, crashed or diverged: re-run alone
    shared_errors: dict[int, BaseException] = {}

    @with_seed(run_seed)
    @settings
    @given(example=check.strategy, data=st.data())
    def shared(example, data):
        record: list = []
        passed: list[tuple[int, _Draws, float]] = []
        live = [i for i in active if i not in alone]
        for position, i in enumerate(live):
            draws = _Draws(data, record)
            mine = example if position == len(live) - 1 else copy.deepcopy(example)
            try:
                ratio = check.run(backends[i], mine, draws)
            except _Diverged:
                alone.add(i)
                continue
            except UnsatisfiedAssumption:  # the test case is invalid for every backend: none saw it as run alone
                alone.update(live)
                raise
            except Exception as error:  # noqa: BLE001 (a user backend's own exception: replayed alone below)
                shared_errors[i] = error
                alone.add(i)
                continue
            passed.append((i, draws, ratio))
        for i, draws, ratio in passed:
            if draws.count != len(record):  # a later backend drew more: this one's own run would differ
                alone.add(i)
                continue
            stats[i]["examples"] += 1
            stats[i]["worst"] = max(stats[i]["worst"], ratio)

    try:
        shared()
    except Exception:  # noqa: BLE001 Hypothesis itself gave up (a health check, say): let each backend meet it alone
        alone.update(active)
    for i in active:
        if i in alone:
            result = run_law(law, backends[i], settings, seed=None if settings.derandomize else run_seed)
            if result.passed and i in shared_errors:  # only possible off the derandomized profiles
                result = _outcome(_label(law, backends[i]), stats[i], shared_errors[i])
            results[i] = result
        else:
            results[i] = _outcome(_label(law, backends[i]), stats[i], None)
    return results  # type: ignore[return-value]
