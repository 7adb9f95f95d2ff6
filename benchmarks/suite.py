"""The suite: wall time of `vaespec check` (default: ci profile, every law × default backend) and of the CI
test run (`CI=true python -m pytest -q -p no:randomly`), each in a fresh subprocess with the torch threads
of this run (`OMP_NUM_THREADS`), so interpreter and torch start-up count as a user sees them.

`--toy` times a one-law check on the reference and one small test file instead: it checks the
harness, not the suite. Where the time goes, law by law: `python -m benchmarks.suite_profile`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch

from .report import Ratio, Report, Row
from .timing import ROOT

NAME = "suite"
# Issue 12's targets on the quiet 2-core machine: the default check in 30 s, the CI run in 240 s.
BUDGET_S = {"vaespec check": 30.0, "CI pytest run": 240.0}
FULL = {"vaespec check": [sys.executable, "-m", "vaespec.proofs_tests.cli", "check"],
        "CI pytest run": [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"]}
TOY = {"vaespec check": [sys.executable, "-m", "vaespec.proofs_tests.cli", "check", "--law", "kl_nonnegative",
                         "--backend", "vaespec.reference.backend:ReferenceBackend", "--profile", "dev"],
       "CI pytest run": [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                         "proofs_tests/selftests/test_layering.py::test_every_layer_folder_is_found_and_parsed"]}


def _timed(command: list[str], threads: int) -> tuple[float, int, str]:
    env = dict(os.environ, CI="true", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    return time.perf_counter() - start, done.returncode, tail


def run(report: Report, device: str, *, toy: bool, repeats: int, suite_cases=(), **_) -> None:
    if device != "cpu":
        return  # the suite runs on every available device by itself; it is timed once, as a whole
    commands = {case: command for case, command in (TOY if toy else FULL).items()
                if not suite_cases or case in suite_cases}
    threads = torch.get_num_threads()
    config = "toy subset" if toy else "default"
    for case, command in commands.items():
        seconds, code, tail = _timed(command, threads)
        note = f"exit {code}: {tail[:90]}" if code else tail[:90]
        report.rows.append(Row(NAME, "cpu+cuda" if torch.cuda.is_available() else "cpu", config, case, seconds,
                               repeats=1, note=note))
    device_label = report.rows[-1].device
    for case in commands:
        seconds = report.median(NAME, device_label, config, case)
        budget = BUDGET_S[case]
        report.ratios.append(Ratio(NAME, device_label, config, f"{case} / {budget:g} s", seconds / budget, 1.0))
