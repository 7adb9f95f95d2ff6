"""Timing and peak-memory helpers shared by every benchmark.

**Time.** `compare(cases)` times several callables *interleaved*: each repeat runs every
case once, in turn, so a slow spell of the machine (2 shared cores) lands on all cases
alike and the ratios stay meaningful. Each sample is the mean over `number` calls, with
`number` calibrated so a sample lasts at least `min_sample_s` (short calls are otherwise
dominated by timer resolution); the reported figure is the median of the samples, with
the interquartile range as its spread. On CUDA every sample is bracketed by
`torch.cuda.synchronize()`, so it measures finished work, not queued launches.

**Memory.** CPU: neither tracemalloc nor any torch API sees torch's CPU allocations, so
`peak_rss_growth` runs the configuration in a fresh subprocess and reads the kernel's
resident-set high-water mark: it builds the inputs, resets the mark to the current
resident size (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0), runs the operation once
and reports `VmHWM − VmRSS(before)`, the extra memory the operation touched at its peak.
A fresh process per configuration means no allocator cache from an earlier
configuration hides or inflates the figure. Where the mark cannot be reset the figure
is `ru_maxrss` after minus before, a lower bound, and the result says so. CUDA:
`torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus the memory
allocated before the call (exact for the caching allocator, no subprocess needed).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Timing:
    """Median seconds per call over `repeats` samples, and the samples' interquartile range."""

    median: float
    iqr: float
    repeats: int
    number: int
    samples: tuple[float, ...] = ()  # in repeat order: sample i of every case comes from the same round


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = {"name": "wall"}


def set_clock(name: str) -> None:
    """Time samples by "wall" (`perf_counter`, the default) or "cpu" (`process_time`: CPU seconds of
    every thread of this process, which other processes' load does not inflate; sound with one
    torch thread, since idle OpenMP workers spin and bill CPU time). CUDA cases always use wall time."""
    if name not in _CLOCKS:
        raise ValueError(f"clock: expected one of {sorted(_CLOCKS)}, got {name!r}")
    _clock["name"] = name


def clock_name(device: str = "cpu") -> str:
    return "wall" if device.startswith("cuda") else _clock["name"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _sample(fn: Callable[[], object], number: int, device: str) -> float:
    now = _CLOCKS[clock_name(device)]
    _sync(device)
    start = now()
    for _ in range(number):
        fn()
    _sync(device)
    return (now() - start) / number


def _calibrate(fn: Callable[[], object], device: str, min_sample_s: float) -> int:
    once = _sample(fn, 1, device)
    return max(1, min(10_000, int(min_sample_s / max(once, 1e-9)) + 1)) if once < min_sample_s else 1


def quartiles(samples) -> tuple[float, float]:
    """(first, third) quartile; (min, max) for fewer than 4 samples."""
    samples = list(samples)
    if len(samples) < 4:
        return min(samples), max(samples)
    q = statistics.quantiles(samples, n=4)
    return q[0], q[2]


def _iqr(samples: list[float]) -> float:
    if len(samples) < 4:
        return max(samples) - min(samples)
    q = statistics.quantiles(samples, n=4)
    return q[2] - q[0]


def compare(cases: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 2, device: str = "cpu",
            min_sample_s: float = 0.02) -> dict[str, Timing]:
    """Median time per call of each case, the cases interleaved within every repeat.

    **Arguments**
    - `cases`: name -> zero-argument callable doing one unit of work.
    - `repeats`: samples per case (the median is taken over these).
    - `warmup`: untimed calls per case first (allocator, lazy init, autotuning).
    - `device`: "cpu" or a CUDA device; CUDA samples are bracketed by synchronisation.
    - `min_sample_s`: a sample averages enough calls to last at least this long.

    **Returns** name -> `Timing`.
    """
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    numbers = {name: _calibrate(fn, device, min_sample_s) for name, fn in cases.items()}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(_sample(fn, numbers[name], device))
    return {name: Timing(statistics.median(s), _iqr(s), len(s), numbers[name], tuple(s)) for name, s in samples.items()}


def time_once(fn: Callable[[], object], device: str = "cpu") -> float:
    """Wall seconds of one call, whatever the clock (compile times: the work runs in worker processes)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_peak_of(fn: Callable[[], object]) -> dict:
    """Run `fn` once in *this* process and report the resident-set growth at its peak (bytes).

    Meant to run in a fresh subprocess (see `peak_rss_growth`); returns
    `{"bytes": ..., "method": "VmHWM reset" | "ru_maxrss (lower bound)"}`.
    """
    import resource

    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        reset = _status_kib("VmHWM") is not None and before is not None
    except OSError:
        reset = False
    if reset:
        before = _status_kib("VmRSS")
        fn()
        return {"bytes": (_status_kib("VmHWM") - before) * 1024, "method": "VmHWM reset"}
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    max_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"bytes": (max_after - max_before) * 1024, "method": "ru_maxrss (lower bound)"}


_RSS_SCRIPT = """\
import importlib, json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from benchmarks.timing import rss_peak_of
module, function, jobs, shared = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5] == "shared"
build = getattr(importlib.import_module(module), function)
def trim():  # hand freed heap pages back, so that a later job's growth is not served by an earlier one's
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
for kwargs, warmup in jobs:
    if warmup:
        build(**warmup)()
    op = build(**kwargs)
    if shared:
        trim()
    result = rss_peak_of(op)
    if shared:
        result["method"] += ", one process for several (toy)"
    print(json.dumps(result), flush=True)
"""


def peak_rss_growths(module: str, function: str, jobs: list[tuple[dict, dict | None]], threads: int,
                     parallel: int = 1, fresh: bool = True) -> list[dict]:
    """For each `(kwargs, warmup)`: `module.function(**kwargs)` builds a zero-argument operation, run once
    in a fresh Python; returns `rss_peak_of`'s results in order. Each subprocess pins torch to
    `threads` threads; up to `parallel` run at once (each has its own high-water mark, so they
    do not disturb each other's figures). With `warmup`, `module.function(**warmup)()` runs
    first: at small sizes it loads the kernels' libraries and thread pools, whose one-off
    memory would otherwise be charged to the operation. (A warm-up at the measured sizes would
    be wrong: glibc keeps freed blocks resident for reuse.)

    `fresh=False` (the toy run, which checks the harness and measures nothing) runs every job in one
    subprocess: an earlier job's freed blocks then serve a later one, so the figures are not comparable,
    and each result's method says so."""
    groups = [[i] for i in range(len(jobs))] if fresh else [list(range(len(jobs)))]
    results: list[dict | None] = [None] * len(jobs)
    running: list[tuple[list[int], subprocess.Popen]] = []

    def finish(indices: list[int], process: subprocess.Popen) -> None:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"memory subprocess for {module}.{function}({[jobs[i][0] for i in indices]}) "
                               f"failed:\n{stderr[-2000:]}")
        lines = stdout.strip().splitlines()[-len(indices):]
        for index, line in zip(indices, lines):
            results[index] = json.loads(line)

    for indices in groups:
        if len(running) >= max(1, parallel):
            finish(*running.pop(0))
        batch = [(jobs[i][0], jobs[i][1] or {}) for i in indices]
        running.append((indices, subprocess.Popen(
            [sys.executable, "-c", _RSS_SCRIPT, str(threads), module, function, json.dumps(batch),
             "fresh" if fresh else "shared"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)))
    for indices, process in running:
        finish(indices, process)
    return results


def cuda_peak_growth(fn: Callable[[], object], device: str) -> dict:
    """Peak bytes allocated by `fn` on `device` above what was allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return {"bytes": torch.cuda.max_memory_allocated(device) - before, "method": "cuda max_memory_allocated"}
