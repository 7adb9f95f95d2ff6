"""The `vaespec` command. `vaespec check` (here) runs every law against a backend and prints a
verdict table; the other subcommands live in the modules named in `SUBCOMMANDS`, each with
`configure(parser)` and `run(args) -> int`.

    vaespec check                                   # reference + Torch on every device × dtype
    vaespec check --backend mypkg.port:backend      # your implementation
    vaespec check --profile thorough --json report.json
    vaespec check --law kl_ --dtype float32         # a subset
    vaespec check -j 1 --verbose                    # one process (default: one per core); the full table

Exit status 0 only if every law holds (laws a backend cannot be asked, such as the
key law for a backend without keys, show "n/a"); 1 if any fails; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

from vaespec.spec.errors import ConfigError, VaespecError
from vaespec.spec.laws import LAWS
from vaespec.spec.signature import CHAPTERS

from .strategies.profiles import PROFILES, profile_settings

# name -> (module, help); each module provides configure(parser) and run(args).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": (__name__, "check every law against a backend"),
    "train": ("vaespec.impl.train.cli", "train a VAE or VQ-VAE on the bundled digits or your .npy/.npz"),
    "bayes": ("vaespec.impl.bayes.cli", "SVI and NUTS over the linear decoder's parameters (exact evidence, Pyro)"),
    "fidelity": ("vaespec.proofs_tests.check.fidelity",
                 "measure the float64 reference against a 60-digit oracle, in ulps"),
    "vectors": ("vaespec.proofs_tests.vectors.verify",
                "export golden vectors, or verify them and a backend against them"),
}


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line's parser. Given the `argv` it will parse, only the subcommand `argv` names is configured
    (every one when it names none): the others' modules import torch, which `vaespec check` imports later,
    alongside its workers."""
    parser = argparse.ArgumentParser(prog="vaespec", description="The VAE conformance oracle.")
    commands = parser.add_subparsers(dest="command", required=True)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if chosen in (None, name):
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
                       help="only laws whose name contains SUBSTRING (repeatable); a full law name selects that "
                            "law alone")
    check.add_argument("--dtype", action="append", default=[], help="only backends of this dtype (repeatable)")
    check.add_argument("--device", action="append", default=[], help="only backends on this device (repeatable)")
    check.add_argument("--no-reference", action="store_true", help="with the defaults, skip the reference itself")
    check.add_argument("--call-timeout", type=float, default=None, metavar="SECONDS",
                       help="time limit of each call into a --backend (default 120; 0: none); a call over it is "
                            "an ERROR verdict for its law")
    check.add_argument("-j", "--jobs", type=_jobs, default="auto", metavar="N",
                       help="spread the laws over N worker processes (1: this process alone); default auto: one "
                            f"per usable core when more than {AUTO_JOBS_MIN_LAWS} laws are selected, else 1")
    check.add_argument("--fixed-shapes", action="store_true",
                       help="draw every size from a small fixed set (values stay random): for ports that compile "
                            "once per shape (JAX, torch.compile); see docs/porting.md")
    check.add_argument("--skip", action="append", default=[], metavar="FILE",
                       help="do not run the law × backend rows listed in FILE (law_prefix or "
                            "law_prefix[backend_prefix] per line, as pytest's --vaespec-skip); they show as skipped")
    check.add_argument("--xfail", action="append", default=[], metavar="FILE",
                       help="expect the rows listed in FILE to fail (same format): a failure shows as xfail, a row "
                            "that holds as XPASS, which fails the run (strict)")
    check.add_argument("-v", "--verbose", action="store_true",
                       help="print the full law × backend table and every failure message in full")


# Below this many laws a worker's start-up (a fresh interpreter importing torch and Hypothesis, ≈ 3 CPU s)
# costs more than it saves, so `-j auto` stays in one process.
AUTO_JOBS_MIN_LAWS = 16


def _jobs(value: str):
    """`-j` as given: "auto" or an integer (checked ≥ 1 in `run`, where errors are reported)."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of processes ≥ 1 or auto, got {value!r}") from None


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def resolve_jobs(jobs, laws: int) -> int:
    """The number of processes `-j jobs` means for `laws` selected laws."""
    if jobs == "auto":
        return usable_cores() if laws > AUTO_JOBS_MIN_LAWS else 1
    return jobs


def _selects(value: str, law: str) -> bool:
    return value == law if value in LAWS else value in law


def _results(laws, backends, args, settings, skips):
    """Yield (law, [LawResult per backend]) in the order laws finish."""
    if args.jobs > 1 and len(laws) > 1:
        from .check.parallel import run_parallel

        options = {"specs": args.backend, "no_reference": args.no_reference, "dtypes": args.dtype,
                   "devices": args.device, "profile": args.profile, "fixed_shapes": args.fixed_shapes,
                   "limit": args.call_limit}
        yield from run_parallel(laws, options, min(args.jobs, len(laws)), len(backends), skips,
                                local=(backends, settings), workers=args.workers)
        return
    from .check.runner import run_laws

    for law in laws:
        yield law, run_laws(law, backends, settings, skips.get(law))


def _expectations(args, laws, backends):
    """(skips: law -> {backend index: reason}, xfails: (law, index) -> reason) from --skip and --xfail files;
    a stale entry is a warning line on stderr."""
    from .check.backends import label
    from .check.expectations import first_match, read_entries, stale

    entries = [e for kind, paths in (("skip", args.skip), ("xfail", args.xfail)) for path in paths
               for e in read_entries(path, kind, f"--{kind}")]
    skips: dict[str, dict[int, str]] = {}
    xfails: dict[tuple[str, int], str] = {}
    labels = [label(b) for b in backends]
    for law in laws:
        for index, name in enumerate(labels):
            entry = first_match(entries, law, name)
            if entry is not None and entry.kind == "skip":
                skips.setdefault(law, {})[index] = f"listed in {entry.where}"
            elif entry is not None:
                xfails[(law, index)] = entry.where
    for line in stale(entries, set(labels)):
        print(f"vaespec check: warning: stale entry {line}", file=sys.stderr)
    return skips, xfails


def _expected_failure(result, where: str):
    """A row listed in an xfail file: a failure is "xfail", a law that holds "XPASS" (a failure: strict)."""
    from dataclasses import replace

    if result.verdict in ("FAIL", "ERROR"):
        return replace(result, verdict="xfail", message=f"expected to fail (listed in {where}): {result.message}")
    if result.verdict == "pass":
        return replace(result, verdict="XPASS",
                       message=f"listed in {where} as expected to fail, but it holds: remove the entry")
    return result


def run(args) -> int:
    from vaespec.spec.files import check_output_file

    from .check.guard import DEFAULT_LIMIT
    from .check.parallel import Workers

    if args.json:  # before any law runs: a results file that cannot be written would lose them all
        check_output_file("--json", args.json)
    if args.jobs != "auto" and args.jobs < 1:
        raise ConfigError(f"-j/--jobs: expected a number of processes ≥ 1, got {args.jobs}")
    limit = args.call_limit = _call_timeout(args, DEFAULT_LIMIT)
    if args.call_timeout is not None and not args.backend:
        raise ConfigError("--call-timeout: limits the calls into a --backend; the default backends are vaespec's own")
    if args.fixed_shapes:
        from .strategies import sizes

        sizes.use_fixed_shapes(True)
    laws = [law for law in LAWS if (not args.law or any(_selects(s, law) for s in args.law))
            and (not args.chapter or LAWS[law].chapter in args.chapter)]
    args.jobs = resolve_jobs(args.jobs, len(laws))
    # The workers start now, importing torch while this process does (their set-up waits for this one's).
    args.workers = Workers(min(args.jobs, len(laws)) - 1) if args.jobs > 1 and len(laws) > 1 else None
    try:
        return _check(args, laws, limit)
    finally:
        if args.workers is not None:
            args.workers.close()


def _check(args, laws: list[str], limit: float | None) -> int:
    from .check import output as out
    from .check.parallel import select_backends

    pairs = select_backends(args.backend, args.no_reference, args.dtype, args.device, limit)
    backends, origins = [b for b, _ in pairs], [o for _, o in pairs]
    if "torch" in sys.modules:
        # One intra-op thread: every example is a few dozen numbers, and idle OpenMP workers spin, which
        # doubled the check's CPU time on 2 cores and inflated its wall time several-fold under load.
        # A backend that wants more sets its own (torch.set_num_threads) when it runs.
        sys.modules["torch"].set_num_threads(1)
    if not backends or not laws:
        print("vaespec check: nothing to check (no backend or no law matches the filters)", file=sys.stderr)
        return 2
    skips, xfails = _expectations(args, laws, backends)
    settings = profile_settings(args.profile)
    print(f"vaespec check: {len(laws)} laws × {len(backends)} backends, profile {args.profile}"
          + (", fixed shapes" if args.fixed_shapes else "") + (f", {args.jobs} processes" if args.jobs > 1 else ""),
          flush=True)
    started = time.perf_counter()
    by_law, progress = {}, out.Progress(len(laws))
    try:
        for law, law_results in _results(laws, backends, args, settings, skips):
            law_results = [_expected_failure(r, xfails[(law, i)]) if (law, i) in xfails else r
                           for i, r in enumerate(law_results)]
            by_law[law] = law_results
            progress.update(law, law_results)
    finally:
        progress.finish()
    elapsed = time.perf_counter() - started
    # Backend-major, laws in registry order: the order of the table and of the JSON report, however run.
    results = [by_law[law][b] for b in range(len(backends)) for law in laws]
    row_origins = [origins[b] for b in range(len(backends)) for _ in laws]
    failed = [r for r in results if not r.passed]
    if args.verbose:
        print(out.table(results, laws))
        print(out.full_messages(results))
    if failed:
        print(f"\n{len(failed)} failing:")
        print(out.failures(results, row_origins, args.profile))
    print()
    print(out.summary(results))
    held = sum(r.verdict == "pass" for r in results)
    na = sum(r.verdict == "n/a" for r in results)
    expected = {v: sum(r.verdict == v for r in results) for v in ("skipped", "xfail")}
    extra = "".join(f", {n} {v}" for v, n in expected.items() if n)
    print(f"\n{held} held, {len(failed)} failed, {na} n/a{extra} in {elapsed:.1f} s")
    if failed:
        print("failing laws: " + ", ".join(sorted({r.law for r in failed})))
    if args.json:
        try:
            with open(args.json, "w") as handle:
                json.dump({"profile": args.profile, "elapsed_s": elapsed, "results": [r.to_dict() for r in results]},
                          handle, indent=1)
        except OSError as error:
            raise VaespecError(f"--json: cannot write {args.json!r} ({error.strerror})") from None
    return 1 if failed else 0


def _call_timeout(args, default: float) -> float | None:
    limit = default if args.call_timeout is None else args.call_timeout
    if not 0 <= limit < float("inf"):
        raise ConfigError(f"--call-timeout: expected seconds ≥ 0 (0: no limit), got {args.call_timeout!r}")
    return limit or None


def main(argv=None) -> int:
    """Run the command line `argv`; return the exit status (2 with one line on stderr for a usage error,
    bad input or a file that cannot be read or written; for an interrupt too)."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(argv).parse_args(argv)
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
