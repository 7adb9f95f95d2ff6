"""`python -m benchmarks`: every benchmark of issue 7, one table of medians and ratios.

    python -m benchmarks                       # everything, CPU and CUDA when available
    python -m benchmarks --only train_step --only quantize --repeats 30
    python -m benchmarks --toy --repeats 1     # toy sizes: checks the harness, measures nothing
    python -m benchmarks --json bench.json     # also write the figures as JSON

Run from the repository root (the `benchmarks` folder is not installed with vaespec).
Ratios are of medians measured in the same run, cases interleaved (see timing.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import BENCHMARKS

# Libraries that size their thread pools from these variables when first loaded (numpy's OpenBLAS,
# OpenMP, MKL); main() sets them from --threads before importing torch or numpy.
_POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _devices(requested: list[str]) -> list[str]:
    import torch

    available = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if not requested:
        return available
    unknown = [d for d in requested if d not in available]
    if unknown:
        raise SystemExit(f"--device: {unknown} not available here; available: {available}")
    return requested


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable)")
    parser.add_argument("--device", action="append", default=[], help="cpu or cuda (repeatable; default: all)")
    parser.add_argument("--repeats", type=int, default=15, help="timed samples per case (median taken; default 15)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of torch, OpenMP and numpy's BLAS (default: the cores this process may use)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="CPU cases timed by wall time (default) or process CPU time (robust to other load; "
                             "use with --threads 1)")
    parser.add_argument("--toy", action="store_true", help="toy sizes, for checking the harness")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile case")
    parser.add_argument("--suite-case", action="append", default=[], choices=("vaespec check", "CI pytest run"),
                        help="time only this suite command (repeatable; default both)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or cores
    if "torch" in sys.modules or "numpy" in sys.modules:  # called in-process: the pools are already sized
        print("note: numpy or torch was imported before main(); only torch's thread count is set", file=sys.stderr)
    for variable in _POOL_VARIABLES:
        os.environ[variable] = str(threads)  # also inherited by the memory and suite subprocesses
    import torch

    from .report import Report, machine, render
    from .timing import set_clock

    torch.set_num_threads(threads)
    set_clock(args.clock)
    report = Report(machine())
    report.machine["thread_variables"] = {v: os.environ[v] for v in _POOL_VARIABLES}
    report.machine["clock"] = args.clock
    report.machine["load_before"] = os.getloadavg()
    devices = _devices(args.device)
    for name in args.only or list(BENCHMARKS):
        print(f"running {name} …", file=sys.stderr, flush=True)
        BENCHMARKS[name](report, devices, toy=args.toy, repeats=args.repeats, compile=not args.no_compile,
                         suite_cases=args.suite_case)
    report.machine["load_after"] = os.getloadavg()
    if max(report.machine["load_before"][0], report.machine["load_after"][0]) > cores:
        advice = ("CPU-clock figures are less affected, wall times (CUDA, compile, suite) are inflated"
                  if args.clock == "cpu" else "wall times are inflated and noisy (try --clock cpu --threads 1)")
        before, after = report.machine["load_before"][0], report.machine["load_after"][0]
        report.notes.append(f"warning: load average above {cores} during the run ({before:.1f} → {after:.1f}): "
                            f"other processes shared the cores; {advice}")
    print(render(report))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report.to_dict(), handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
