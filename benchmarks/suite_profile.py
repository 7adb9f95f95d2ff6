"""Where `vaespec check`'s time goes: every law × default backend, timed in this process.

    python -m benchmarks.suite_profile                  # ci profile, every law, top 25 rows
    python -m benchmarks.suite_profile --law kl_ --top 10 --cprofile 30

For each law it times `run_laws` (what `vaespec check` spends on the law: its examples drawn once
for every backend), and for each law × backend the part spent inside that backend's checks
(`Check.run`: the backend, the reference, the comparison); a row's total is the law's time shared
evenly over the backends it checks, and the rest is Hypothesis drawing examples, the engine, and
the copies of each example handed to each backend. Totals are given per backend and per law family.
`--cprofile N` also prints the N functions with the most cumulative time (one profiled pass over the
selected rows).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import json
import os
import pstats
import sys
import time
from collections import defaultdict

import torch

_now = {"clock": time.perf_counter}


def _family(law: str) -> str:
    if law.endswith("_gradient_matches_reference"):
        return "gradient_matches_reference"
    if law.endswith("_matches_reference"):
        return "matches_reference"
    from vaespec.spec.laws import LAWS
    return f"{LAWS[law].chapter} chapter laws"


def profile(laws: list[str], backends: list, settings) -> list[dict]:
    """Time `run_laws` (as `vaespec check` runs a law: examples drawn once for every backend) for each law;
    one row per law × backend with the time inside that backend's checks, the law's total shared out
    evenly over its checked backends."""
    from vaespec.proofs_tests.check import runner

    rows = []
    for law in laws:
        check = runner.CHECKS[law]
        inside = {id(b): {"s": 0.0, "calls": 0} for b in backends}

        def timed(backend, example, draw, _run=check.run, _inside=inside):
            start = _now['clock']()
            try:
                return _run(backend, example, draw)
            finally:
                _inside[id(backend)]["s"] += _now['clock']() - start
                _inside[id(backend)]["calls"] += 1

        runner.CHECKS[law] = dataclasses.replace(check, run=timed)
        try:
            start = _now['clock']()
            results = runner.run_laws(law, backends, settings)
            total = _now['clock']() - start
        finally:
            runner.CHECKS[law] = check
        checked = max(1, sum(r.verdict != "n/a" for r in results))
        for backend, result in zip(backends, results):
            share = 0.0 if result.verdict == "n/a" else total / checked
            rows.append({"law": law, "backend": f"{result.backend}/{result.device}/{result.dtype}", "total": share,
                         "check": inside[id(backend)]["s"], "calls": inside[id(backend)]["calls"],
                         "examples": result.examples, "verdict": result.verdict})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", help="Hypothesis profile (default ci, as vaespec check)")
    parser.add_argument("--law", action="append", default=[], help="only laws containing this (repeatable)")
    parser.add_argument("--top", type=int, default=25, help="rows of the slowest law × backend table")
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print the N costliest functions")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time (robust to other load; use with --threads 1)")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(args.threads or cores)
    _now["clock"] = time.process_time if args.clock == "cpu" else time.perf_counter

    from vaespec.proofs_tests.check.backends import default_backends
    from vaespec.proofs_tests.strategies.profiles import profile_settings
    from vaespec.spec.laws import LAWS

    laws = [law for law in LAWS if not args.law or any(s in law for s in args.law)]
    backends, settings = default_backends(), profile_settings(args.profile)
    profiler = cProfile.Profile(_now["clock"]) if args.cprofile else None
    start = _now['clock']()
    if profiler:
        profiler.enable()
    rows = profile(laws, backends, settings)
    if profiler:
        profiler.disable()
    elapsed = _now['clock']() - start

    total = sum(r["total"] for r in rows)
    inside = sum(r["check"] for r in rows)
    print(f"{len(laws)} laws × {len(backends)} backends, profile {args.profile}, {args.clock} clock, torch threads "
          f"{torch.get_num_threads()}: {elapsed:.1f} s; inside the checks {inside:.1f} s "
          f"({inside / max(total, 1e-9):.0%}), Hypothesis (drawing, filtering, engine) {total - inside:.1f} s "
          f"({1 - inside / total:.0%})")
    by = defaultdict(lambda: [0.0, 0.0, 0])
    for r in rows:
        for key in (("backend", r["backend"]), ("family", _family(r["law"]))):
            by[key][0] += r["total"]
            by[key][1] += r["check"]
            by[key][2] += 1
    print(f"\n{'group':<48} {'rows':>5} {'total s':>8} {'check s':>8} {'share':>6}")
    for (kind, name), (t, c, n) in sorted(by.items(), key=lambda kv: (kv[0][0], -kv[1][0])):
        print(f"{kind + ': ' + name:<48} {n:>5} {t:>8.2f} {c:>8.2f} {t / total:>6.1%}")
    print(f"\n{'law':<55} {'backend':<22} {'total s':>8} {'check s':>8} {'calls':>6} {'ex':>4} verdict")
    for r in sorted(rows, key=lambda r: -r["total"])[: args.top]:
        print(f"{r['law']:<55} {r['backend']:<22} {r['total']:>8.2f} {r['check']:>8.2f} {r['calls']:>6} "
              f"{r['examples']:>4} {r['verdict']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"profile": args.profile, "clock": args.clock, "threads": torch.get_num_threads(),
                       "elapsed": elapsed, "rows": rows}, handle, indent=1)
    if profiler:
        print()
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
