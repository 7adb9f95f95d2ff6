"""Golden vectors: language-neutral input/output pairs of every contract function and gradient.

    vaespec vectors export DIR [--seed N]                 # .npy files + DIR/manifest.json
    vaespec vectors verify DIR [--backend pkg.mod:obj]    # checksums, then a backend (default: the reference)

An export (`vaespec.proofs_tests.vectors.export`) holds cases of every function of every
chapter, with inputs exact in every dtype, the float64 reference's outputs and gradients,
and per output the suite's tolerance rule; `manifest.json` (schema:
`vectors.manifest.schema.json`) lists them with the sha256 of every file, and the manifest's
own sha256 (`manifest_digest`, printed by export and kept in `manifest.json.sha256`) covers
it all. `verify` trusts nothing it has not checked: the manifest's digest (against `--digest`,
a value the user trusts, or else the recorded one), its size, nesting and schema, that every
case belongs to the contract's function and chapter, then every file's size and sha256,
then each array's shape and dtype, before comparing a backend's outputs with the recorded
rule for its dtype, honouring what the backend declares as the laws do (`laws.declared`: a function
it lacks is n/a, a case in a convention it does not declare is skipped, its variants change the
expected values through `laws.variants`, never the tolerance). Files are read only inside DIR,
never through a symbolic link, never from a FIFO or device, never beyond a size cap
(`vaespec.spec.files.read_inside`). A file that is missing, truncated, corrupt or tampered with
is a `VectorsError` naming it, and a verify that checked no case fails. docs/porting.md shows
how a port in another language reads the same files. Nothing here loads a pickle.
"""

from __future__ import annotations

import importlib.metadata
import io
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import PRESETS, Convention
from vaespec.spec.errors import ConfigError
from vaespec.spec.keys import Key

from .export import chosen_functions, export
from .manifest import (
    DIGEST,
    DTYPES,
    FORMAT,
    MANIFEST,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    SCHEMA,
    Unsupported,
    VectorsError,
    array_entries,
    check_files,
    manifest_digest,
    read_manifest,
    read_manifest_and_digest,
    schema_errors,
)

__all__ = ["DIGEST", "DTYPES", "FORMAT", "MANIFEST", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_MANIFEST_BYTES", "SCHEMA",
           "Unsupported", "VectorResult", "Vectors", "VectorsError", "array_entries", "check_files", "configure",
           "export", "manifest_digest", "read_manifest", "run", "schema_errors", "verify"]

# An arch entry's type -> the network a backend declares to take it (`laws.declared.ARCHITECTURES`).
NETWORKS = {"Architecture": "dense", "VQArchitecture": "dense", "ConvArchitecture": "conv",
            "ConvVQArchitecture": "conv_vq"}


@dataclass
class VectorResult:
    """One row of `verify`: a backend's agreement with the vectors of one function (values or gradients)."""

    backend: str
    device: str
    dtype: str
    function: str
    kind: str  # "value" or "gradient"
    cases: int = 0
    worst_ratio: float = 0.0
    verdict: str = "pass"  # "pass", "FAIL", "ERROR" or "n/a"
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in ("pass", "n/a")


class Vectors:
    """An export opened for checking: the manifest read and schema-checked, every file's size and
    sha256 verified (`VectorsError` naming the file otherwise); arrays are loaded on first use."""

    def __init__(self, directory, digest: str | None = None):
        self.root = Path(directory)
        self.manifest, self.digest = read_manifest_and_digest(directory, digest)
        self._bytes = check_files(directory, self.manifest)  # arrays are parsed from these, never re-read
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, entry: dict) -> np.ndarray:
        """The array an entry names (never a pickle), checked against its recorded shape and dtype; a copy."""
        if entry["file"] not in self._arrays:
            path = self.root / entry["file"]
            try:
                value = np.load(io.BytesIO(self._bytes[entry["file"]]), allow_pickle=False)
            except Exception as error:  # noqa: BLE001  (numpy's header parser raises ValueError, tokenize errors, …)
                raise VectorsError(f"{path}: not a readable .npy file ({error})") from None
            if list(value.shape) != entry["shape"] or str(value.dtype) != entry["dtype"]:
                raise VectorsError(f"{path}: holds {value.dtype} {list(value.shape)}, {MANIFEST} records "
                                   f"{entry['dtype']} {entry['shape']}")
            self._arrays[entry["file"]] = value
        return self._arrays[entry["file"]].copy()  # a backend that writes into its inputs spoils no other case

    def args(self, case: dict) -> dict:
        """A case's arguments as the contract takes them (Architecture, Convention, Key, arrays, scalars)."""
        args = {}
        for name, entry in case["inputs"].items():
            kind = entry["kind"]
            if kind in ("array", "index"):
                args[name] = self.array(entry["array"])
            elif kind == "params":
                args[name] = {k: self.array(e) for k, e in entry["arrays"].items()}
            elif kind == "arch":
                cls = {"Architecture": Architecture, "VQArchitecture": VQArchitecture,
                       "ConvArchitecture": ConvArchitecture, "ConvVQArchitecture": ConvVQArchitecture}[entry["type"]]
                args[name] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["value"].items()})
            elif kind == "convention":
                args[name] = _convention(entry["value"])
            elif kind == "key":
                args[name] = Key(int(entry["value"]))
            else:
                args[name] = entry["value"]
        return args

    @staticmethod
    def conventions(case: dict) -> list[Convention]:
        """The Conventions among a case's arguments (read without loading its arrays)."""
        return [_convention(e["value"]) for e in case["inputs"].values() if e["kind"] == "convention"]

    def expected(self, entry: dict, dtype: str, value=None):
        """(expected value, entrywise tolerance) of one output or gradient entry for a backend in `dtype`; with
        `value` (the reference under a backend's declared variants), that value under the entry's recorded rule."""
        from ..laws.compare import round_to

        if entry["kind"] == "key":
            return Key(int(entry["value"])), 0.0
        rule = entry["tolerance"]
        value = self.array(entry["array"]) if value is None else np.asarray(value, dtype=np.float64)
        if rule["rule"] == "bound":
            b = self.manifest["bounds"][rule["bound"]]
            return value, b["rel"][dtype] * self.array(rule["magnitude"]) + b["floor"][dtype]
        return (round_to(dtype, value) if rule["rule"] == "exact_in_dtype" else value), 0.0

    def cast(self, entry: dict, dtype: str, value=None):
        """For an `exact_in_dtype` entry, the value a cast through float32 gives (torch's float64 → bfloat16/float16
        conversion), which the rule accepts besides the RNE value (`vaespec.spec.dtypes`); else None."""
        if entry.get("tolerance", {}).get("rule") != "exact_in_dtype":
            return None
        from vaespec.spec.dtypes import through_float32
        return through_float32(dtype, self.array(entry["array"]) if value is None else np.asarray(value))

    def check_case(self, case: dict, backend, kind: str) -> float:
        """Worst error ratio of `backend` on one case's values or gradients; raises LawViolation on failure.

        As in the laws (`laws.declared`), the backend and the reference are handed the case's arguments as the
        backend's declared variants fix them, and where a declared variant concerns the function the expected
        values are the reference's under those variants (`laws.variants`), judged by the recorded rule: a
        variant never changes a tolerance."""
        from ..laws import declared, variants

        function, dtype = case["function"], backend.dtype
        args, where = declared.adapt_args(backend, function, self.args(case)), f"{case['id']} ({function}"
        chosen = declared.variants(backend)
        redo = any(variants.VARIANTS[n].concerns(function, args) for n in chosen)  # else the recorded values
        outputs = FUNCTIONS[function].outputs  # order comes from the contract: JSON objects have none
        if kind == "value":
            actual = call(backend, function, args)
            actual = actual if len(outputs) > 1 else (actual,)
            if redo:
                expected = variants.value(function, args, None, chosen)
                expected = expected if len(outputs) > 1 else (expected,)
            else:
                expected = (None,) * len(outputs)
            return max(_compare(f"{where}, output {o.name})", a, *self.expected(case["outputs"][o.name], dtype, e),
                                alternative=self.cast(case["outputs"][o.name], dtype, e))
                       for o, a, e in zip(outputs, actual, expected))
        cotangent = [self.array(case["vjp"]["cotangent"][o.name]["array"]) for o in outputs if o.kind == "float"]
        cotangent = [float(c) if c.ndim == 0 else c for c in cotangent]
        cotangent = tuple(cotangent) if len(cotangent) > 1 else cotangent[0]
        grads = backend.vjp(function, args, cotangent)
        reference = variants.gradient(function, args, cotangent, None, chosen) if redo else None
        worst = 0.0
        for name, entry in case["vjp"]["gradients"].items():
            subs = entry["entries"].items() if entry["kind"] == "params" else [(None, entry)]
            for key, sub in subs:
                actual = grads[name] if key is None else grads[name][key]
                value = None if reference is None else reference[name] if key is None else reference[name][key]
                label = f"{where}, gradient {name}" + ("" if key is None else f"[{key!r}]") + ")"
                worst = max(worst, _compare(label, actual, *self.expected(sub, dtype, value)))
        return worst

    def check(self, backend, functions: Iterable[str] | None = None) -> list[VectorResult]:
        """One `VectorResult` per function × kind for `backend`, honouring its declarations as the laws do
        (`laws.declared`): `n/a` with the reason for a chapter it does not declare or a function it lacks; a case
        whose convention it does not declare is skipped (a function none of whose cases it can take: `n/a`);
        declared variants change the expected values (`check_case`). `functions`: only these functions' cases
        (default: every function's)."""
        from ..check.backends import chapters
        from ..laws import declared
        from ..laws.compare import LawViolation
        from ..laws.declared import architectures

        if backend.dtype not in self.manifest["dtypes"]:
            raise VectorsError(f"{backend!r}: dtype {backend.dtype!r} has no tolerances in the vectors "
                               f"({self.manifest['dtypes']})")
        label = {"backend": getattr(backend, "name", type(backend).__name__), "device": str(backend.device),
                 "dtype": backend.dtype}
        rows: dict[tuple, VectorResult] = {}
        skipped: dict[int, list[str]] = {}
        wanted = None if functions is None else set(functions)
        for case in self.manifest["cases"]:
            if wanted is not None and case["function"] not in wanted:
                continue
            for kind in ("value", "gradient") if "vjp" in case else ("value",):
                row = rows.setdefault((case["function"], kind),
                                      VectorResult(**label, function=case["function"], kind=kind))
                lacking = declared.not_provided(backend, (case["function"],))
                convention = next((declared.unsupported_convention(backend, v) for v in self.conventions(case)), None)
                if case["chapter"] not in chapters(backend):
                    row.verdict, row.message = "n/a", f"backend does not declare the {case['chapter']!r} chapter"
                elif lacking:
                    row.verdict, row.message = "n/a", lacking
                elif backend.dtype not in case.get("dtypes", self.manifest["dtypes"]):
                    continue  # a precision case: its answer is fixed only in the dtypes it lists
                elif any(NETWORKS.get(e.get("type"), "dense") not in architectures(backend)
                         for e in case["inputs"].values()
                         if e.get("type") in NETWORKS or not declared.own_architectures(backend)):
                    continue  # a conv network's case, for a port declaring the dense network only (laws.declared);
                    # a port with only its own network takes the network-free cases (no arch among the inputs)
                elif convention:  # a fixed case cannot be redrawn in a convention it declares, as the laws do
                    skipped.setdefault(id(row), []).append(convention)
                elif row.passed:  # after a function's first failure, later cases would only repeat it
                    try:
                        row.worst_ratio = max(row.worst_ratio, self.check_case(case, backend, kind))
                        row.cases += 1
                    except LawViolation as violation:
                        row.verdict, row.message = "FAIL", _noted(str(violation), self.conventions(case), backend)
                        row.worst_ratio = max(row.worst_ratio, violation.ratio)
                    except VectorsError:
                        raise
                    except Exception as error:  # noqa: BLE001  (a crash is a verdict, as in the law runner)
                        row.verdict, row.message = "ERROR", f"{case['id']}: {type(error).__name__}: {error}"
        for row in rows.values():
            reasons = sorted(set(skipped.get(id(row), ())))
            if reasons and row.verdict == "pass":
                left = f"{len(skipped[id(row)])} cases skipped ({'; '.join(reasons)})"
                row.verdict, row.message = ("n/a", left) if row.cases == 0 else (row.verdict, left)
        if not any(row.cases or not row.passed for row in rows.values()):  # all n/a: a pass would mean nothing
            raise VectorsError(f"{self.root / MANIFEST}: no case could be checked on {label['backend']}/"
                               f"{label['device']}/{label['dtype']}: it declares chapters {list(chapters(backend))}, "
                               f"the vectors hold {sorted({c['chapter'] for c in self.manifest['cases']})[:10]}")
        return list(rows.values())


def _noted(message: str, conventions: list[Convention], backend) -> str:
    """`message` whose first line names, as the laws' do, the case's convention (if any) and the variants
    `backend` declares: "… [convention 'elbo'; variants: none]"."""
    from ..laws import declared

    first, sep, rest = message.partition("\n")
    parts = [f"convention {c.name!r}" for c in conventions] + [declared.named(backend)]
    return f"{first} [{'; '.join(parts)}]{sep}{rest}"


def _convention(value: dict) -> Convention:
    """A recorded convention: its preset where it is one, else a Convention of its fields."""
    preset = PRESETS.get(value["name"])
    return preset if preset and preset.to_dict() == value else Convention(**value)


def _compare(what: str, actual, expected, tolerance, alternative=None) -> float:
    from ..laws.compare import LawViolation, assert_within

    if isinstance(expected, Key):
        if not isinstance(actual, (Key, int, np.integer)) or Key(int(getattr(actual, "value", actual))) != expected:
            raise LawViolation(f"{what}: returned key {actual!r}, expected {expected!r}")
        return 0.0
    actual = np.asarray(actual, dtype=np.float64)
    if alternative is not None and alternative.shape == expected.shape == actual.shape:  # either rounding, exactly
        expected = np.where(actual == alternative, alternative, expected)
    return assert_within(what, actual, expected.astype(np.float64), tolerance)


def verify(directory, backends=None, digest: str | None = None) -> list[VectorResult]:
    """Check the manifest and every checksum of `directory`, then each backend against every case.

    **Arguments** `directory` (an export), `backends` (default: the float64 reference), `digest` (the
    manifest's sha256 as you trust it, e.g. printed by the export you vendored; default: the recorded one).
    **Returns** one `VectorResult` per backend × function × kind (value or gradient); raises
    `VectorsError`, naming the file, for a directory that cannot be trusted or a backend of which no
    case could be checked.
    """
    vectors = Vectors(directory, digest)
    if backends is None:
        from vaespec.reference.backend import ReferenceBackend
        backends = [ReferenceBackend()]
    return [row for backend in backends for row in vectors.check(backend)]


# ----------------------------------------------------------------------------- the command
def configure(parser) -> None:
    commands = parser.add_subparsers(dest="vectors_command", required=True)
    export_cmd = commands.add_parser("export", help="write golden vectors (.npy + manifest.json) to DIR")
    export_cmd.add_argument("directory", metavar="DIR")
    export_cmd.add_argument("--seed", type=int, default=0, help="input seed (default 0); same seed, same bytes")
    export_cmd.add_argument("--function", action="append", default=None, metavar="NAME", dest="functions",
                            help="export only this contract function's cases (repeatable; default: every function)")
    verify_cmd = commands.add_parser("verify", help="check DIR's checksums, then a backend against the vectors")
    verify_cmd.add_argument("directory", metavar="DIR")
    verify_cmd.add_argument("--backend", action="append", default=[], metavar="PKG.MOD:OBJ",
                            help="backend to check (repeatable); default: the float64 reference")
    verify_cmd.add_argument("--digest", metavar="SHA256",
                            help="the sha256 of manifest.json you trust (printed by export); refuse any other")


def run(args) -> int:
    started = time.perf_counter()
    if args.vectors_command == "export":
        if args.seed < 0:
            raise ConfigError(f"--seed: expected an integer ≥ 0, got {args.seed}")
        chosen_functions(args.functions, "--function")  # a bad name named as the user typed the option
        manifest = export(args.directory, args.seed, args.functions)
        size = sum(f["bytes"] for f in manifest["files"].values()) + (Path(args.directory) / MANIFEST).stat().st_size
        print(f"vaespec vectors: {len(manifest['cases'])} cases of {len({c['function'] for c in manifest['cases']})} "
              f"functions, {len(manifest['files'])} files + {MANIFEST}, {size / 1e6:.2f} MB, seed {args.seed}, "
              f"in {time.perf_counter() - started:.1f} s → {args.directory}")
        print(f"manifest sha256: {manifest_digest(args.directory)} (also in {DIGEST}; keep it where you trust it "
              "and pass it to `vaespec vectors verify --digest`)")
        for skip in manifest["skipped"]:
            print(f"  skipped {skip['function']}: {skip['reason']}", file=sys.stderr)
        return 0
    from ..check.backends import load_backends

    if args.digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.digest.strip()):
        raise VectorsError(f"--digest: expected 64 hexadecimal digits (a sha256), got {args.digest[:80]!r}")
    from ..check.guard import DEFAULT_LIMIT, guard_all

    backends = [b for spec in args.backend for b in guard_all(load_backends(spec), DEFAULT_LIMIT)]
    vectors = Vectors(args.directory, args.digest)
    manifest, installed = vectors.manifest, importlib.metadata.version("vaespec")
    trust = "matches the trusted --digest" if args.digest else "not authenticated: pass --digest to compare it"
    print(f"vaespec vectors: {args.directory}: {MANIFEST} sha256 {vectors.digest} ({trust}) matches its schema; "
          f"{len(manifest['files'])} files match their size and sha256")
    if manifest["spec_version"] != installed:
        print(f"note: vectors from vaespec {manifest['spec_version']}, checked with {installed}", file=sys.stderr)
    if not backends:
        from vaespec.reference.backend import ReferenceBackend
        backends = [ReferenceBackend()]
    results = [row for backend in backends for row in vectors.check(backend)]
    width = max(len(r.function) for r in results)
    for r in results:
        ratio = "-" if r.verdict == "n/a" else f"{r.worst_ratio:.3g}"
        print(f"{r.function.ljust(width)}  {r.kind:8}  {r.backend}/{r.device}/{r.dtype}  cases {r.cases:3}  "
              f"error/tol {ratio:>9}  {r.verdict}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"\n{r.verdict}: {r.function} ({r.kind}) on {r.backend}/{r.device}/{r.dtype}\n{r.message}")
    held = sum(r.verdict == "pass" for r in results)
    print(f"\n{held} held, {len(failed)} failed, {len(results) - held - len(failed)} n/a in "
          f"{time.perf_counter() - started:.1f} s")
    return 1 if failed else 0
