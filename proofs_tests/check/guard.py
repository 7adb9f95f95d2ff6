"""A backend under guard for the command line: every call time-limited, `sys.exit` turned into an error.

`vaespec check` and `vaespec vectors verify` wrap each user backend in `Guarded`, so that a law's
verdict, not the run, absorbs what the backend does wrong:

- a call that takes longer than `limit` seconds is interrupted by `SIGALRM` (`signal.setitimer`) and
  raises `BackendTimeout`, an ERROR verdict for that law; later calls on that backend fail at once
  (`BackendTimeout`, "an earlier call hung"), so a hung backend costs one limit, not one per law;
- a call stuck in C code never returns to Python, where no signal handler can run: a watchdog thread
  (one per process, polling once a second) then prints one line naming the call and ends the
  process with exit status 2 (`os._exit`) after `limit` + `GRACE` seconds;
- `sys.exit()` inside a call raises `BackendExit`, an ERROR verdict, instead of ending the run
  (with status 0 and nothing checked).

The base attributes (`name`, `device`, `dtype`, `chapters`) are read once, when the backend is
wrapped; a property that raises is a `ConfigError` naming it. Limits apply only in the main thread
(where signals are delivered); elsewhere calls run unguarded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from vaespec.spec.errors import ConfigError

GRACE = 30.0  # seconds past the limit before the watchdog ends a call stuck outside Python
DEFAULT_LIMIT = 120.0


class BackendTimeout(Exception):
    """A backend call did not return within the time limit."""


class BackendExit(Exception):
    """A backend call raised SystemExit (called sys.exit)."""


class Guarded:
    """`backend` with every callable attribute time-limited (see the module docstring)."""

    def __init__(self, backend, limit: float | None, origin: str = "--backend"):
        object.__setattr__(self, "_target", backend)
        object.__setattr__(self, "_limit", limit or None)
        object.__setattr__(self, "_hung", None)
        cached = {}
        for name in ("name", "device", "dtype", "chapters"):
            try:
                if hasattr(backend, name):
                    cached[name] = getattr(backend, name)
            except Exception as error:  # noqa: BLE001  (a user's property may raise anything)
                raise ConfigError(f"{origin}: reading {name!r} of the backend raised {type(error).__name__}: "
                                  f"{str(error)[:200]}") from None
        object.__setattr__(self, "_cached", cached)

    def __getattr__(self, name):
        cached = object.__getattribute__(self, "_cached")
        if name in cached:
            return cached[name]
        value = getattr(object.__getattribute__(self, "_target"), name)
        return self._guard(name, value) if callable(value) and not isinstance(value, type) else value

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_target"), name, value)

    def __repr__(self) -> str:
        return repr(object.__getattribute__(self, "_target"))

    def _guard(self, name: str, method):
        limit = object.__getattribute__(self, "_limit")

        def call(*args, **kwargs):
            hung = object.__getattribute__(self, "_hung")
            if hung is None:
                timed = limit is not None and threading.current_thread() is threading.main_thread()
                if timed:
                    previous = signal.signal(signal.SIGALRM, _expire)
                    signal.setitimer(signal.ITIMER_REAL, limit)
                    _Watchdog.arm(name, limit)
                try:
                    return method(*args, **kwargs)
                except _Expired:
                    hung = f"{name}()"
                    object.__setattr__(self, "_hung", hung)
                except SystemExit as exit_:
                    raise BackendExit(f"{name}() called sys.exit({exit_.code!r})") from None
                finally:
                    if timed:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                        signal.signal(signal.SIGALRM, previous)
                        _Watchdog.disarm()
            # one raise site, outside any handler, for the first timeout and every call after it: Hypothesis,
            # replaying the failing example, then sees one failure, not several
            raise BackendTimeout(f"{hung} did not return within {limit:g} s (--call-timeout); later calls on this "
                                 "backend are not made")
        return call


class _Expired(BaseException):
    """Raised by the SIGALRM handler inside a backend call (a BaseException: the backend's own
    `except Exception` cannot swallow it)."""


def _expire(_signum, _frame):
    raise _Expired


class _Watchdog:
    """One daemon thread for the process, polling once a second: a call still running `GRACE` seconds past
    its limit (its SIGALRM could not run: it is stuck outside Python) ends the process with one line."""

    call: tuple[str, float, float] | None = None  # (name, limit, deadline) of the guarded call in progress
    thread: threading.Thread | None = None

    @classmethod
    def arm(cls, name: str, limit: float) -> None:
        cls.call = (name, limit, time.monotonic() + limit + GRACE)
        if cls.thread is None:
            cls.thread = threading.Thread(target=cls._watch, name="vaespec-backend-watchdog", daemon=True)
            cls.thread.start()

    @classmethod
    def disarm(cls) -> None:
        cls.call = None

    @classmethod
    def _watch(cls) -> None:
        while True:
            time.sleep(1.0)
            call = cls.call
            if call is not None and time.monotonic() > call[2]:
                print(f"vaespec: the backend's {call[0]}() did not return within {call[1] + GRACE:g} s and cannot be "
                      "interrupted (stuck outside Python); stopping", file=sys.stderr, flush=True)
                os._exit(2)


def guard_all(backends, limit: float | None, origin: str = "--backend") -> list:
    """Each backend wrapped in `Guarded` (limit None or 0: no time limit, still no sys.exit)."""
    return [Guarded(b, limit, origin) for b in backends]
