"""Before/after: `vaespec check` (or any command) from two checkouts, alternated under the same load,
with wall and CPU time (user + sys of the command and its children), and the JSON reports compared
row by row.

    python -m benchmarks.suite_ab --before /work/wt/base/.venv/bin/python --after .venv/bin/python
    python -m benchmarks.suite_ab --before … --after … --rounds 2 --after-args=-j,2
    python -m benchmarks.suite_ab --compare before.json after.json       # reports only

Each round runs before then after (then after then before the next round), each in a fresh
process from a scratch directory, so a slow spell falls on both alike. CPU time is the robust
figure on a shared machine; wall time is what a user waits. The comparison keys rows by
(law, backend, device, dtype) and lists every row whose verdict or example count differs, and
how the worst error/tolerance moved.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], cwd: str, env: dict) -> dict:
    """Run `command`; wall seconds, CPU seconds (user + sys of it and its children), exit status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    return {"wall_s": wall, "cpu_s": cpu, "exit": done.returncode, "load_before": load,
            "load_after": os.getloadavg()[0], "tail": tail}


def _rows(path) -> dict:
    return {(r["law"], r["backend"], r["device"], r["dtype"]): r for r in json.loads(Path(path).read_text())["results"]}


def compare(before_path, after_path) -> int:
    """Print every row whose verdict or example count differs; return how many differ. The reference's
    `…_matches_reference` rows going from pass to n/a (it is not compared with itself) are counted apart."""
    before, after = _rows(before_path), _rows(after_path)
    differ = self_compared = 0
    for key in sorted(before.keys() | after.keys()):
        b, a = before.get(key), after.get(key)
        if b is None or a is None:
            differ += 1
            print(f"only {'after' if b is None else 'before'}: {key}")
            continue
        if b["verdict"] == "pass" and a["verdict"] == "n/a" and key[1] == "reference" and \
                key[0].endswith("_matches_reference"):
            self_compared += 1  # by design: the reference is no longer compared with itself
            continue
        if (b["verdict"], b["examples"]) != (a["verdict"], a["examples"]):
            differ += 1
            print(f"differs: {key}: {b['verdict']} ({b['examples']} ex) → {a['verdict']} ({a['examples']} ex)"
                  f"{'  [' + a['message'][:80] + ']' if a['message'] else ''}")
    same_ratio = sum(before[k]["worst_ratio"] == after[k]["worst_ratio"] for k in before.keys() & after.keys())
    print(f"{len(before)} rows before, {len(after)} after: {differ} differ in verdict or examples "
          f"({self_compared} reference-vs-reference rows pass → n/a not counted); "
          f"worst error/tolerance identical in {same_ratio} of {len(before.keys() & after.keys())}")
    return differ


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="python of the 'before' checkout's environment")
    parser.add_argument("--after", help="python of the 'after' checkout's environment")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--args", default="", help="comma-separated arguments after `vaespec check` (both sides)")
    parser.add_argument("--before-args", default="", help="comma-separated extra arguments, 'before' only")
    parser.add_argument("--after-args", default="", help="comma-separated extra arguments, 'after' only")
    parser.add_argument("--out", default=None, help="folder for the JSON reports and timings (default: a temp dir)")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"), help="only compare two reports")
    args = parser.parse_args(argv)
    if args.compare:
        return 1 if compare(*args.compare) else 0
    if not (args.before and args.after):
        parser.error("--before and --after are required (or --compare)")
    out = Path(args.out or tempfile.mkdtemp(prefix="suite_ab-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    split = lambda text: [a for a in text.split(",") if a]  # noqa: E731
    sides = {"before": (args.before, split(args.args) + split(args.before_args)),
             "after": (args.after, split(args.args) + split(args.after_args))}
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("CI", None)
    timings = []
    for round_ in range(args.rounds):
        for side in (("before", "after") if round_ % 2 == 0 else ("after", "before")):
            python, extra = sides[side]
            report = out / f"{side}-{round_}.json"
            command = [python, "-m", "vaespec.proofs_tests.cli", "check", *extra, "--json", str(report)]
            result = {"side": side, "round": round_, **timed(command, str(out), env)}
            timings.append(result)
            print(f"{side:<6} round {round_}: wall {result['wall_s']:.1f} s, CPU {result['cpu_s']:.1f} s, "
                  f"exit {result['exit']}, load {result['load_before']:.1f}→{result['load_after']:.1f}: "
                  f"{result['tail'][:70]}", flush=True)
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    print(f"reports and timings in {out}")
    return 1 if compare(out / "before-0.json", out / "after-0.json") else 0


if __name__ == "__main__":
    sys.exit(main())
