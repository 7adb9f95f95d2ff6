"""The benchmark report: timing rows, ratio rows with their targets, the machine, and printing."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .timing import Timing, quartiles


def machine() -> dict:
    """What the figures were measured on: CPU, cores, torch threads, versions, GPU by name."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "cuda": cuda,
    }


@dataclass
class Row:
    """One timed case: `median` seconds per call (None for a case that could not run, see `note`)."""

    benchmark: str
    device: str
    config: str
    case: str
    median: float | None
    iqr: float | None = None
    repeats: int = 0
    note: str = ""
    samples: tuple[float, ...] = ()


@dataclass
class Ratio:
    """`numerator / denominator` of two rows' medians (or of two memory figures), with its target."""

    benchmark: str
    device: str
    config: str
    name: str
    value: float | None
    target: float | None = None  # holds iff value <= target
    note: str = ""
    # Quartiles of the per-round ratios (cases are interleaved, so round i of both is paired): a
    # target "held" or "missed" by less than this spread is within the noise.
    spread: tuple[float, float] | None = None

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        if self.target is None:
            return "-"
        if self.value <= self.target:
            return "ok"
        return "MISS (within paired IQR)" if self.spread and self.spread[0] <= self.target else "MISS"


@dataclass
class Memory:
    """Peak memory one case needed above what its inputs held (bytes), and how it was measured."""

    benchmark: str
    device: str
    config: str
    case: str
    bytes: int
    method: str


@dataclass
class Report:
    machine: dict
    rows: list[Row] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_timings(self, benchmark: str, device: str, config: str, timings: dict[str, Timing]) -> None:
        for case, t in timings.items():
            self.rows.append(Row(benchmark, device, config, case, t.median, t.iqr, t.repeats, samples=t.samples))

    def row(self, benchmark: str, device: str, config: str, case: str) -> Row | None:
        for row in self.rows:
            if (row.benchmark, row.device, row.config, row.case) == (benchmark, device, config, case):
                return row
        return None

    def median(self, benchmark: str, device: str, config: str, case: str) -> float | None:
        row = self.row(benchmark, device, config, case)
        return None if row is None else row.median

    def ratio(self, benchmark: str, device: str, config: str, numerator: str, denominator: str,
              target: float | None = None, note: str = "") -> Ratio:
        """Add the ratio of two recorded cases' medians (None where either is missing)."""
        top, bottom = (self.row(benchmark, device, config, c) for c in (numerator, denominator))
        value = top.median / bottom.median if top and bottom and top.median is not None and bottom.median else None
        spread = None
        if value is not None and top.samples and len(top.samples) == len(bottom.samples):
            spread = quartiles(a / b for a, b in zip(top.samples, bottom.samples))
        ratio = Ratio(benchmark, device, config, f"{numerator} / {denominator}", value, target, note, spread)
        self.ratios.append(ratio)
        return ratio

    def to_dict(self) -> dict:
        return {"machine": self.machine, "rows": [asdict(r) for r in self.rows],
                "memory": [asdict(m) for m in self.memory],
                "ratios": [dict(asdict(r), verdict=r.verdict) for r in self.ratios], "notes": self.notes}


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])


def render(report: Report) -> str:
    """The printed report: the machine, every timing (median ± IQR), every ratio with its target."""
    m = report.machine
    out = [(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} threads, "
           f"numpy {m['numpy']}, Python {m['python']}, {m['os']}"),
           "cuda: " + (", ".join(m["cuda"]) if m["cuda"] else "none")
           + f"; clock: {m.get('clock', 'wall')} (CUDA: wall); load average "
           + " → ".join(f"{m[k][0]:.2f}" for k in ("load_before", "load_after") if k in m), ""]
    out.append(_table(("benchmark", "device", "config", "case", "median", "IQR", "n", "note"),
                      [(r.benchmark, r.device, r.config, r.case, _fmt_time(r.median), _fmt_time(r.iqr),
                        str(r.repeats), r.note) for r in report.rows]))
    if report.memory:
        out.append("")
        out.append(_table(("benchmark", "device", "config", "case", "peak growth", "method"),
                          [(m.benchmark, m.device, m.config, m.case, f"{m.bytes / 2**20:.3g} MiB", m.method)
                           for m in report.memory]))
    out.append("")
    out.append(_table(("benchmark", "device", "config", "ratio", "value", "paired IQR", "target", "verdict", "note"),
                      [(r.benchmark, r.device, r.config, r.name, "-" if r.value is None else f"{r.value:.3g}×",
                        "-" if r.spread is None else f"{r.spread[0]:.3g}–{r.spread[1]:.3g}",
                        "-" if r.target is None else f"≤ {r.target:g}×", r.verdict, r.note) for r in report.ratios]))
    if report.notes:
        out += ["", *report.notes]
    return "\n".join(out)
