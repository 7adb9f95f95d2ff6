"""The `vaespec` command. `vaespec check` (here) runs every law against a backend and prints a
verdict table; the other subcommands live in the modules named in `SUBCOMMANDS`, each with
`configure(parser)` and `run(args) -> int`.

    vaespec check                                   # reference + Torch on every device × dtype
    vaespec check --backend mypkg.port:backend      # your implementation
    vaespec check --profile thorough --json report.json
    vaespec check --law kl_ --dtype float32         # a subset

Exit status 0 only if every law holds (laws a backend cannot be asked, such as the
key law for a backend without keys, show "n/a"); 1 if any fails; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from vaespec.spec.errors import ConfigError, VaespecError
from vaespec.spec.laws import LAWS
from vaespec.spec.signature import CHAPTERS

from .profiles import PROFILES, profile_settings

COLUMNS = ("law", "backend", "device", "dtype", "examples", "error/tol", "verdict")


# name -> (module, help); each module provides configure(parser) and run(args).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": (__name__, "check every law against a backend"),
    "train": ("vaespec.impl.train.cli", "train a VAE or VQ-VAE on the bundled digits or your .npy/.npz"),
    "bayes": ("vaespec.impl.bayes.cli", "SVI and NUTS over the linear decoder's parameters (exact evidence, Pyro)"),
    "fidelity": ("vaespec.proofs_tests.fidelity", "measure the float64 reference against a 60-digit oracle, in ulps"),
    "vectors": ("vaespec.proofs_tests.vectors", "export golden vectors, or verify them and a backend against them"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vaespec", description="The VAE conformance oracle.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        importlib.import_module(module).configure(sub)
        sub.set_defaults(_module=module)
    return parser


def configure(check: argparse.ArgumentParser) -> None:
    check.add_argument("--backend", action="append", default=[], metavar="PKG.MOD:OBJ",
                       help="backend to check (repeatable); default: the reference and the Torch implementation "
                            "on every available device and dtype")
    check.add_argument("--profile", choices=sorted(PROFILES), default="ci",
                       help="Hypothesis profile (default: ci, derandomized and reproducible)")
    check.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    check.add_argument("--chapter", action="append", default=[], choices=CHAPTERS,
                       help="only laws of this spec chapter (repeatable)")
    check.add_argument("--law", action="append", default=[], metavar="SUBSTRING",
                       help="only laws whose name contains SUBSTRING (repeatable)")
    check.add_argument("--dtype", action="append", default=[], help="only backends of this dtype (repeatable)")
    check.add_argument("--device", action="append", default=[], help="only backends on this device (repeatable)")
    check.add_argument("--no-reference", action="store_true", help="with the defaults, skip the reference itself")
    check.add_argument("--call-timeout", type=float, default=None, metavar="SECONDS",
                       help="time limit of each call into a --backend (default 120; 0: none); a call over it is "
                            "an ERROR verdict for its law")


def _row(values, widths) -> str:
    return "  ".join(str(v).ljust(w) for v, w in zip(values, widths))


def run(args) -> int:
    from vaespec.spec.files import check_output_file

    from .backends import default_backends, load_backends
    from .guard import DEFAULT_LIMIT, guard_all
    from .runner import run_law

    if args.json:  # before any law runs: a results file that cannot be written would lose them all
        check_output_file("--json", args.json)
    limit = _call_timeout(args, DEFAULT_LIMIT)
    if args.call_timeout is not None and not args.backend:
        raise ConfigError("--call-timeout: limits the calls into a --backend; the default backends are vaespec's own")
    backends = ([b for spec in args.backend for b in guard_all(load_backends(spec), limit)]
                if args.backend else default_backends(include_reference=not args.no_reference))
    backends = [b for b in backends if (not args.dtype or b.dtype in args.dtype)
                and (not args.device or str(b.device) in args.device)]
    laws = [law for law in LAWS if (not args.law or any(s in law for s in args.law))
            and (not args.chapter or LAWS[law].chapter in args.chapter)]
    if not backends or not laws:
        print("vaespec check: nothing to check (no backend or no law matches the filters)", file=sys.stderr)
        return 2
    settings = profile_settings(args.profile)
    widths = (max(len(law) for law in laws), 24, 6, 8, 8, 10, 7)
    total = len(laws) * len(backends)
    print(f"vaespec check: {len(laws)} laws × {len(backends)} backends, profile {args.profile}", flush=True)
    print(_row(COLUMNS, widths))
    print(_row(["-" * w for w in widths], widths), flush=True)
    results, failures, started = [], [], time.perf_counter()
    for backend in backends:
        for law in laws:
            if sys.stderr.isatty():
                print(f"\r[{len(results) + 1}/{total}] {law} …", end="", file=sys.stderr, flush=True)
            result = run_law(law, backend, settings)
            results.append(result)
            if sys.stderr.isatty():
                print("\r\033[K", end="", file=sys.stderr)
            ratio = "-" if result.verdict == "n/a" else f"{result.worst_ratio:.3g}"
            print(_row((law, result.backend, result.device, result.dtype, result.examples, ratio, result.verdict),
                       widths), flush=True)
            if not result.passed:
                failures.append(result)
    elapsed = time.perf_counter() - started
    for result in failures:
        print(f"\n{result.verdict}: {result.law} on {result.backend}/{result.device}/{result.dtype}\n{result.message}")
    held = sum(r.verdict == "pass" for r in results)
    na = sum(r.verdict == "n/a" for r in results)
    print(f"\n{held} held, {len(failures)} failed, {na} n/a in {elapsed:.1f} s")
    if failures:
        print("failing laws: " + ", ".join(sorted({r.law for r in failures})))
    if args.json:
        try:
            with open(args.json, "w") as handle:
                json.dump({"profile": args.profile, "elapsed_s": elapsed, "results": [r.to_dict() for r in results]},
                          handle, indent=1)
        except OSError as error:
            raise VaespecError(f"--json: cannot write {args.json!r} ({error.strerror})") from None
    return 1 if failures else 0


def _call_timeout(args, default: float) -> float | None:
    limit = default if args.call_timeout is None else args.call_timeout
    if not 0 <= limit < float("inf"):
        raise ConfigError(f"--call-timeout: expected seconds ≥ 0 (0: no limit), got {args.call_timeout!r}")
    return limit or None


def main(argv=None) -> int:
    """Run the command line `argv`; return the exit status (2 with one line on stderr for a usage error,
    bad input or a file that cannot be read or written; for an interrupt too)."""
    args = _parser().parse_args(argv)
    try:
        return importlib.import_module(args._module).run(args)
    except VaespecError as error:  # one line, whatever the message (a library's may span several)
        print(f"vaespec {args.command}: " + " ".join(str(error).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, or a backend raising it: one line, not a traceback
        print(f"vaespec {args.command}: interrupted (KeyboardInterrupt); nothing more was checked or written",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
