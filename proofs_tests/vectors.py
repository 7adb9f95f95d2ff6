"""Golden vectors: language-neutral input/output pairs of every contract function and gradient.

    vaespec vectors export DIR [--seed N]                 # .npy files + DIR/manifest.json
    vaespec vectors verify DIR [--backend pkg.mod:obj]    # checksums, then a backend (default: the reference)

An export (`vaespec.proofs_tests.vectors_export`) holds cases of every function of every
chapter, with inputs exact in every dtype, the float64 reference's outputs and gradients,
and per output the suite's tolerance rule; `manifest.json` (schema:
`vectors_manifest.schema.json`) lists them with the sha256 of every file, and the manifest's
own sha256 (`manifest_digest`, printed by export and kept in `manifest.json.sha256`) covers
it all. `verify` trusts nothing it has not checked: the manifest's digest (against `--digest`,
a value the user trusts, or else the recorded one), its size, nesting and schema, that every
case belongs to the contract's function and chapter, then every file's size and sha256,
then each array's shape and dtype, before comparing a backend's outputs with the recorded
rule for its dtype. Files are read only inside DIR, never through a symbolic link, never
from a FIFO or device, never beyond a size cap (`vaespec.spec.files.read_inside`). A file
that is missing, truncated, corrupt or tampered with is a `VectorsError` naming it, and a
verify that checked no case fails. docs/porting.md shows how a port in another language
reads the same files. Nothing here loads a pickle.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from vaespec.spec.architecture import Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.conventions import PRESETS, Convention
from vaespec.spec.errors import ConfigError
from vaespec.spec.files import json_depth, read_inside
from vaespec.spec.keys import Key
from vaespec.spec.tolerances import UNIT_ROUNDOFF

FORMAT = "vaespec-vectors/2"  # 2: each function's draws seeded by its name (vectors_export.function_seed)
MANIFEST = "manifest.json"
DIGEST = MANIFEST + ".sha256"  # `sha256sum` format: "<hex>  manifest.json"
MAX_MANIFEST_BYTES = 64 << 20  # an export of every function is under 1 MB
MAX_FILE_BYTES = 64 << 20  # per .npy file
MAX_DEPTH = 32  # JSON nesting; an export's manifest is 11 deep
SCHEMA = Path(__file__).with_name("vectors_manifest.schema.json")
DTYPES = tuple(UNIT_ROUNDOFF)


class VectorsError(ConfigError):
    """A vectors directory that cannot be trusted or read; the message starts with the file."""


class Unsupported(VectorsError):
    """A function the vectors cannot cover yet (no reference, an argument kind or chapter without rules)."""


# ----------------------------------------------------------------------------- verify
def manifest_digest(directory) -> str:
    """The sha256 (hex) of `directory`/manifest.json's bytes: the one value a port must trust (docs/porting.md)."""
    return hashlib.sha256(read_inside(directory, MANIFEST, MAX_MANIFEST_BYTES, VectorsError)).hexdigest()


def read_manifest(directory, digest: str | None = None) -> dict:
    """Read `directory`/manifest.json safely, check its digest (against `digest` if given, else against
    `manifest.json.sha256` if present), its nesting and schema, and that every case is the contract's;
    raise VectorsError naming the file."""
    return _read_manifest(directory, digest)[0]


def _read_manifest(directory, digest: str | None) -> tuple[dict, str]:
    path = Path(directory) / MANIFEST
    if not Path(directory).is_dir():
        raise VectorsError(f"{directory}: not a directory" if Path(directory).exists() else
                           f"{directory}: missing; export vectors with `vaespec vectors export {directory}`")
    if not (path.exists() or path.is_symlink()):
        raise VectorsError(f"{path}: missing; export vectors with `vaespec vectors export {directory}`")
    data = read_inside(directory, MANIFEST, MAX_MANIFEST_BYTES, VectorsError)
    actual = hashlib.sha256(data).hexdigest()
    if digest is not None:
        if actual != digest.strip().lower():
            raise VectorsError(f"{path}: sha256 {actual} differs from the trusted --digest {digest.strip()} "
                               "(tampered, corrupt or another export)")
    elif (Path(directory) / DIGEST).exists() or (Path(directory) / DIGEST).is_symlink():
        recorded = read_inside(directory, DIGEST, 4096, VectorsError).decode("ascii", "replace").split()
        if not recorded or recorded[0] != actual:
            raise VectorsError(f"{path}: sha256 {actual} differs from the one recorded in {DIGEST} at export "
                               f"({recorded[0] if recorded else 'empty'}): edited or corrupt")
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise VectorsError(f"{path}: not readable JSON ({str(error)[:200]})") from None
    if json_depth(manifest, MAX_DEPTH) > MAX_DEPTH:
        raise VectorsError(f"{path}: nested deeper than {MAX_DEPTH} levels; an export is {11}")
    problems = schema_errors(manifest, json.loads(SCHEMA.read_text(encoding="utf-8")))
    if problems:
        raise VectorsError(f"{path}: does not match {SCHEMA.name}: " + "; ".join(p[:300] for p in problems[:5]))
    if manifest["format"] != FORMAT:
        raise VectorsError(f"{path}: format {manifest['format']!r}; this vaespec reads {FORMAT!r}")
    _check_contract(path, manifest)
    return manifest, actual


def _check_contract(path: Path, manifest: dict) -> None:
    """Every case names a contract function under that function's chapter (relabelling one hides it as n/a)."""
    if not manifest["cases"]:
        raise VectorsError(f"{path}: holds no case ('cases' is empty): nothing could be verified")
    for case in manifest["cases"]:
        spec = FUNCTIONS.get(case["function"])
        if spec is None:
            raise VectorsError(f"{path}: case {case['id'][:100]!r} names {case['function'][:100]!r}, which is not a "
                               "contract function")
        if case["chapter"] != spec.chapter or not case["id"].startswith(f"{spec.chapter}/{case['function']}/"):
            raise VectorsError(f"{path}: case {case['id'][:100]!r} of {case['function']} is labelled chapter "
                               f"{case['chapter'][:100]!r}; the contract puts it in {spec.chapter!r}")
        listed = manifest["functions"].get(case["function"], {}).get("chapter")
        if listed != spec.chapter:
            raise VectorsError(f"{path}: 'functions' puts {case['function']} in chapter {str(listed)[:100]!r}; "
                               f"the contract puts it in {spec.chapter!r}")


def check_files(directory, manifest: dict) -> dict[str, bytes]:
    """Every listed file exists inside `directory` (no link, no special file) with its recorded size and
    sha256, and every referenced file is listed; else a VectorsError naming each bad file (the first one
    leads the message). Returns the verified bytes by relative path."""
    root, problems, verified = Path(directory), [], {}
    for relative, record in manifest["files"].items():
        path = root / relative
        try:
            if Path(relative).is_absolute() or ".." in Path(relative).parts:
                raise VectorsError(f"{relative[:200]}: a path outside the vectors directory")
            data = read_inside(root, relative, min(record["bytes"], MAX_FILE_BYTES), VectorsError)
        except VectorsError as error:
            message = str(error)
            if " bytes, over the limit of " in message and record["bytes"] <= MAX_FILE_BYTES:
                message = f"{path}: larger than the {record['bytes']} bytes {MANIFEST} records (corrupt)"
            problems.append(message + (f" (listed in {MANIFEST})" if message.endswith(": missing") else ""))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != record["bytes"]:
            problems.append(f"{path}: {len(data)} bytes, {MANIFEST} records {record['bytes']} (truncated or corrupt)")
        elif digest != record["sha256"]:
            problems.append(f"{path}: sha256 {digest} differs from the recorded {record['sha256']} "
                            "(tampered or corrupt)")
        else:
            verified[relative] = data
    unlisted = sorted({entry["file"] for entry in _array_entries(manifest["cases"])} - set(manifest["files"]))
    problems += [f"{root / name}: referenced by {MANIFEST} but has no checksum in its 'files'" for name in unlisted]
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise VectorsError("; ".join(problems[:10]) + more)
    return verified


def _array_entries(node):
    if isinstance(node, dict):
        if "file" in node and "shape" in node:
            yield node
        for value in node.values():
            yield from _array_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _array_entries(value)


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
        self.manifest, self.digest = _read_manifest(directory, digest)
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
                cls = {"Architecture": Architecture, "VQArchitecture": VQArchitecture}[entry["type"]]
                args[name] = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["value"].items()})
            elif kind == "convention":
                preset = PRESETS.get(entry["value"]["name"])
                args[name] = preset if preset and preset.to_dict() == entry["value"] else Convention(**entry["value"])
            elif kind == "key":
                args[name] = Key(int(entry["value"]))
            else:
                args[name] = entry["value"]
        return args

    def expected(self, entry: dict, dtype: str):
        """(expected value, entrywise tolerance) of one output or gradient entry for a backend in `dtype`."""
        from .compare import round_to

        if entry["kind"] == "key":
            return Key(int(entry["value"])), 0.0
        value, rule = self.array(entry["array"]), entry["tolerance"]
        if rule["rule"] == "bound":
            b = self.manifest["bounds"][rule["bound"]]
            return value, b["rel"][dtype] * self.array(rule["magnitude"]) + b["floor"][dtype]
        return (round_to(dtype, value) if rule["rule"] == "exact_in_dtype" else value), 0.0

    def cast(self, entry: dict, dtype: str):
        """For an `exact_in_dtype` entry, the value a cast through float32 gives (torch's float64 → bfloat16/float16
        conversion), which the rule accepts besides the RNE value (`vaespec.spec.dtypes`); else None."""
        if entry.get("tolerance", {}).get("rule") != "exact_in_dtype":
            return None
        from vaespec.spec.dtypes import through_float32
        return through_float32(dtype, self.array(entry["array"]))

    def check_case(self, case: dict, backend, kind: str) -> float:
        """Worst error ratio of `backend` on one case's values or gradients; raises LawViolation on failure."""
        function, dtype = case["function"], backend.dtype
        args, where = self.args(case), f"{case['id']} ({function}"
        outputs = FUNCTIONS[function].outputs  # order comes from the contract: JSON objects have none
        if kind == "value":
            actual = call(backend, function, args)
            actual = actual if len(outputs) > 1 else (actual,)
            return max(_compare(f"{where}, output {o.name})", a, *self.expected(case["outputs"][o.name], dtype),
                                alternative=self.cast(case["outputs"][o.name], dtype))
                       for o, a in zip(outputs, actual))
        cotangent = [self.array(case["vjp"]["cotangent"][o.name]["array"]) for o in outputs if o.kind == "float"]
        cotangent = [float(c) if c.ndim == 0 else c for c in cotangent]
        grads = backend.vjp(function, args, tuple(cotangent) if len(cotangent) > 1 else cotangent[0])
        worst = 0.0
        for name, entry in case["vjp"]["gradients"].items():
            subs = entry["entries"].items() if entry["kind"] == "params" else [(None, entry)]
            for key, sub in subs:
                actual = grads[name] if key is None else grads[name][key]
                label = f"{where}, gradient {name}" + ("" if key is None else f"[{key!r}]") + ")"
                worst = max(worst, _compare(label, actual, *self.expected(sub, dtype)))
        return worst

    def check(self, backend) -> list[VectorResult]:
        """One `VectorResult` per function × kind for `backend` (`n/a` for chapters it does not declare)."""
        from .backends import chapters
        from .compare import LawViolation

        if backend.dtype not in self.manifest["dtypes"]:
            raise VectorsError(f"{backend!r}: dtype {backend.dtype!r} has no tolerances in the vectors "
                               f"({self.manifest['dtypes']})")
        label = {"backend": getattr(backend, "name", type(backend).__name__), "device": str(backend.device),
                 "dtype": backend.dtype}
        rows: dict[tuple, VectorResult] = {}
        for case in self.manifest["cases"]:
            for kind in ("value", "gradient") if "vjp" in case else ("value",):
                row = rows.setdefault((case["function"], kind), VectorResult(**label, function=case["function"], kind=kind))
                if case["chapter"] not in chapters(backend):
                    row.verdict, row.message = "n/a", f"backend does not declare the {case['chapter']!r} chapter"
                elif backend.dtype not in case.get("dtypes", self.manifest["dtypes"]):
                    continue  # a precision case: its answer is fixed only in the dtypes it lists
                elif row.passed:  # after a function's first failure, later cases would only repeat it
                    try:
                        row.worst_ratio = max(row.worst_ratio, self.check_case(case, backend, kind))
                        row.cases += 1
                    except LawViolation as violation:
                        row.verdict, row.message = "FAIL", str(violation)
                        row.worst_ratio = max(row.worst_ratio, violation.ratio)
                    except VectorsError:
                        raise
                    except Exception as error:  # noqa: BLE001  (a crash is a verdict, as in the law runner)
                        row.verdict, row.message = "ERROR", f"{case['id']}: {type(error).__name__}: {error}"
        if not any(row.cases or not row.passed for row in rows.values()):  # all n/a: a pass would mean nothing
            raise VectorsError(f"{self.root / MANIFEST}: no case could be checked on {label['backend']}/"
                               f"{label['device']}/{label['dtype']}: it declares chapters {list(chapters(backend))}, "
                               f"the vectors hold {sorted({c['chapter'] for c in self.manifest['cases']})[:10]}")
        return list(rows.values())


def _compare(what: str, actual, expected, tolerance, alternative=None) -> float:
    from .compare import LawViolation, assert_within

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


# ----------------------------------------------------------------------------- the manifest's schema
def _is(value, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}[kind])


def schema_errors(value, schema: dict, root: dict | None = None, path: str = "$") -> list[str]:
    """Where `value` breaks `schema`: the subset of JSON Schema (2020-12) the manifest's schema uses
    ($ref to $defs, type, const, enum, pattern, minimum, anyOf, properties, required,
    additionalProperties, items, minItems). An empty list means valid."""
    root = schema if root is None else root
    if "$ref" in schema:
        return schema_errors(value, root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root, path)
    kinds = schema.get("type")
    if kinds and not any(_is(value, k) for k in ([kinds] if isinstance(kinds, str) else kinds)):
        return [f"{path}: expected {kinds}, got {type(value).__name__}"]
    errors = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: expected one of {schema['enum']}, got {value!r}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        errors.append(f"{path}: expected ≥ {schema['minimum']}, got {value!r}")
    if "anyOf" in schema and all(schema_errors(value, s, root, path) for s in schema["anyOf"]):
        errors.append(f"{path}: matches none of the allowed forms")
    if isinstance(value, dict):
        errors += [f"{path}: missing {k!r}" for k in schema.get("required", ()) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in schema.get("properties", {}):
                errors += schema_errors(item, schema["properties"][key], root, f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: unexpected {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, root, f"{path}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: expected at least {schema['minItems']} items, got {len(value)}")
        for i, item in enumerate(value if "items" in schema else ()):
            errors += schema_errors(item, schema["items"], root, f"{path}[{i}]")
    return errors


# ----------------------------------------------------------------------------- the command
def configure(parser) -> None:
    commands = parser.add_subparsers(dest="vectors_command", required=True)
    export_cmd = commands.add_parser("export", help="write golden vectors (.npy + manifest.json) to DIR")
    export_cmd.add_argument("directory", metavar="DIR")
    export_cmd.add_argument("--seed", type=int, default=0, help="input seed (default 0); same seed, same bytes")
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
        from .vectors_export import export

        manifest = export(args.directory, args.seed)
        size = sum(f["bytes"] for f in manifest["files"].values()) + (Path(args.directory) / MANIFEST).stat().st_size
        print(f"vaespec vectors: {len(manifest['cases'])} cases of {len({c['function'] for c in manifest['cases']})} "
              f"functions, {len(manifest['files'])} files + {MANIFEST}, {size / 1e6:.2f} MB, seed {args.seed}, "
              f"in {time.perf_counter() - started:.1f} s → {args.directory}")
        print(f"manifest sha256: {manifest_digest(args.directory)} (also in {DIGEST}; keep it where you trust it "
              "and pass it to `vaespec vectors verify --digest`)")
        for skip in manifest["skipped"]:
            print(f"  skipped {skip['function']}: {skip['reason']}", file=sys.stderr)
        return 0
    from .backends import load_backends

    if args.digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", args.digest.strip()):
        raise VectorsError(f"--digest: expected 64 hexadecimal digits (a sha256), got {args.digest[:80]!r}")
    from .guard import DEFAULT_LIMIT, guard_all

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
