"""Performance benchmarks of issue 7 (not installed with vaespec; run `python -m benchmarks` from the repo root).

`BENCHMARKS` maps each name to `run(report, devices, *, toy, repeats, compile)`, which adds its
timings, memory figures and ratios to the report. See docs/performance.md for the figures.
"""

from __future__ import annotations

import importlib


def _runner(module: str):
    def run(report, devices, **options):
        benchmark = importlib.import_module(f"{__name__}.{module}")
        for device in devices:
            benchmark.run(report, device, **options)
    return run


BENCHMARKS = {name: _runner(name) for name in ("train_step", "quantize", "reference_speed", "suite")}
