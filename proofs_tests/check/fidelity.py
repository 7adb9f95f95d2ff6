"""`vaespec fidelity`: the float64 reference against the mpmath oracle, in ulps.

    vaespec fidelity                        # every function, 2000 draws each (reductions: 40 arrays)
    vaespec fidelity --samples 20000        # more draws
    vaespec fidelity --function kl --json fidelity.json

One row per reference function: its worst error in ulps (of the exact result, or of the
magnitude M where the exact result cancels: `measure`), the part not explained by the C
library's erfc (gelu), the target (`REFERENCE_ULPS` elementwise, `sum_ulps` for reductions)
and the verdict; then the C-library primitives' own worst errors for comparison. Exit status
0 iff every row is within its target. See docs/numerics.md.
"""

from __future__ import annotations

import json
import sys
import time

MAX_SAMPLES = 10**7  # draws per function; each is a 60-digit mpmath evaluation (about 10⁴ per second)
COLUMNS = ("function", "kind", "measure", "samples", "worst ulps", "unexplained", "target", "verdict")


def configure(parser) -> None:
    parser.add_argument("--samples", type=int, default=2000,
                        help="draws per elementwise function (reductions draw samples/50 arrays; default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--function", action="append", default=[], metavar="SUBSTRING",
                        help="only functions whose name contains SUBSTRING (repeatable)")
    parser.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")


def _row(values, widths) -> str:
    return "  ".join(str(v).ljust(w) for v, w in zip(values, widths))


def run(args) -> int:
    from vaespec.spec.errors import ConfigError
    from vaespec.spec.files import check_output_file
    from vaespec.spec.tolerances import PRIMITIVE_ULPS

    from .. import oracle

    if not 1 <= args.samples <= MAX_SAMPLES:
        raise ConfigError(f"--samples: expected an integer in [1, {MAX_SAMPLES}], got {args.samples}")
    if not 0 <= args.seed < 2**32:
        raise ConfigError(f"--seed: expected an integer in [0, 2**32), got {args.seed}")
    if args.json:  # before the measurements, which take minutes
        check_output_file("--json", args.json)
    chosen = {name: t for name, t in oracle.targets().items()
              if not args.function or any(s in name for s in args.function)}
    if not chosen:
        print("vaespec fidelity: no function matches the filters", file=sys.stderr)
        return 2
    print(f"vaespec fidelity: {len(chosen)} reference functions against mpmath at {oracle.DIGITS} digits, "
          f"seed {args.seed}", flush=True)
    widths = (max(len(n) for n in chosen), 11, 9, 7, 10, 11, 8, 7)
    print(_row(COLUMNS, widths))
    print(_row(["-" * w for w in widths], widths), flush=True)
    started, results = time.perf_counter(), []
    for name, target in chosen.items():
        n = args.samples if target.kind == "elementwise" else max(2, args.samples // 50)
        m = oracle.measure(target, n, args.seed)
        results.append(m)
        print(_row((name, m.kind, m.measure, m.samples, f"{m.worst:.3g}", f"{m.unexplained:.3g}", f"{m.target:.3g}",
                    "ok" if m.passed else "MISS"), widths), flush=True)
    print("\nC-library primitives the reference calls (worst ulps over their ranges; what erfc loses beyond "
          f"{PRIMITIVE_ULPS:g} ulp at gelu's arguments is excluded from gelu's 'unexplained'):")
    primitives = {p: oracle.measure_primitive(p, args.samples, args.seed) for p in oracle.PRIMITIVES}
    print("  " + ", ".join(f"{p} {u:.3g}" for p, u in primitives.items()))
    missed = [m for m in results if not m.passed]
    for m in missed:
        print(f"\nMISS: {m.name}: {m.unexplained:.3g} ulps (of the {m.measure}) > {m.target:.3g} at {m.worst_at}; "
              f"domain {m.domain}")
    print(f"\n{len(results) - len(missed)} within target, {len(missed)} missed in "
          f"{time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w") as handle:  # (checked writable before the measurements)
            json.dump({"seed": args.seed, "samples": args.samples, "digits": oracle.DIGITS,
                       "results": [m.to_dict() for m in results], "primitives": primitives}, handle, indent=1)
    return 1 if missed else 0
