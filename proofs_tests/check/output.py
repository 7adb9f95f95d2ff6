"""What `vaespec check` prints: a live progress line on a terminal, then the failing rows (one-line
reason and the command that reproduces each), then a summary per chapter × backend; `--verbose`
adds the full law × backend table and every failure message in full.

Nothing here redraws unless the stream is a terminal: in CI logs and pipes the progress is a plain
line once a minute.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections import defaultdict

from vaespec.spec.laws import LAWS

COLUMNS = ("law", "backend", "device", "dtype", "examples", "error/tol", "verdict")
REFERENCE_SPEC = "vaespec.reference.backend:ReferenceBackend"


class Progress:
    """`[laws done/total] elapsed, failures so far, the last law`, redrawn in place on a terminal."""

    def __init__(self, total: int, stream=None, interval_s: float = 60.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.total, self.done, self.failed, self.interval_s = total, 0, 0, interval_s
        self.started = self.last = time.perf_counter()

    def update(self, law: str, results) -> None:
        self.done += 1
        self.failed += sum(not r.passed for r in results)
        now = time.perf_counter()
        text = f"[{self.done}/{self.total} laws] {now - self.started:.0f} s, {self.failed} failed"
        if self.live:
            width = 100
            print(f"\r\033[K{(text + '  ' + law)[:width]}", end="", file=self.stream, flush=True)
        elif now - self.last >= self.interval_s and self.done < self.total:
            self.last = now
            print(f"… {text}", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.live:
            print("\r\033[K", end="", file=self.stream, flush=True)


def _row(values, widths) -> str:
    return "  ".join(str(v).ljust(w) for v, w in zip(values, widths))


def _ratio(result) -> str:
    return "-" if result.verdict in ("n/a", "skipped") else f"{result.worst_ratio:.3g}"


def table(results, laws) -> str:
    """Today's full table: one row per law × backend."""
    widths = (max(len(law) for law in laws), 24, 6, 8, 8, 10, 7)
    lines = [_row(COLUMNS, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row((r.law, r.backend, r.device, r.dtype, r.examples, _ratio(r), r.verdict), widths) for r in results]
    return "\n".join(lines)


def reproduce(result, origin: str | None, profile: str) -> str:
    """The `vaespec check` command that re-runs this one row alone (`origin`: the --backend spec, or
    None for the defaults)."""
    words = ["vaespec", "check", "--law", result.law]
    if origin is not None:
        words += ["--backend", origin]
    elif result.backend == "reference":
        words += ["--backend", REFERENCE_SPEC]
    else:
        words += ["--no-reference"]
    words += ["--device", result.device, "--dtype", result.dtype]
    if profile != "ci":
        words += ["--profile", profile]
    return shlex.join(words + ["--verbose"])


def failures(results, origins, profile: str) -> str:
    """Each failing row: verdict, law, backend, its one-line reason and the command that reproduces it."""
    lines = []
    for result, origin in zip(results, origins):
        if result.passed:
            continue
        said = [line for line in result.message.splitlines() if line.strip()]
        reason = said[0] if said else "(no message)"
        lines += [f"{result.verdict}  {result.law} on {result.backend}/{result.device}/{result.dtype}",
                  f"      {reason[:300]}"]
        lines += [f"      {line[:300]}" for line in said[1:2] if line.startswith("diagnosis:")]
        lines += [f"      reproduce: {reproduce(result, origin, profile)}"]
    return "\n".join(lines)


def summary(results) -> str:
    """Per chapter × backend: held, failed, n/a and the worst error/tolerance."""
    groups: dict[tuple, list] = defaultdict(list)
    for r in results:
        groups[(LAWS[r.law].chapter, f"{r.backend}/{r.device}/{r.dtype}")].append(r)
    widths = (10, max([24] + [len(b) for _, b in groups]), 5, 6, 4, 10)
    lines = [_row(("chapter", "backend", "held", "failed", "n/a", "worst err/tol"), widths),
             _row(["-" * w for w in widths], widths)]
    for (chapter, backend), rows in groups.items():
        checked = [r.worst_ratio for r in rows if r.verdict not in ("n/a", "skipped")]
        lines.append(_row((chapter, backend, sum(r.verdict == "pass" for r in rows),
                           sum(not r.passed for r in rows), sum(r.verdict == "n/a" for r in rows),
                           f"{max(checked):.3g}" if checked else "-"), widths))
    return "\n".join(lines)


def full_messages(results) -> str:
    return "\n".join(f"\n{r.verdict}: {r.law} on {r.backend}/{r.device}/{r.dtype}\n{r.message}"
                     for r in results if not r.passed)
