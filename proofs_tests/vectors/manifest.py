"""The golden vectors' format: the manifest's names, limits and schema, and reading it safely.

`vaespec.proofs_tests.vectors.verify` (verify, the command) and `vaespec.proofs_tests.vectors.export` (export) both
build on this module; neither imports the other's internals. See `vectors` for what is checked and why.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError
from vaespec.spec.files import json_depth, read_inside
from vaespec.spec.tolerances import UNIT_ROUNDOFF

FORMAT = "vaespec-vectors/2"  # 2: each function's draws seeded by its name (vectors.export.function_seed)
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


# ----------------------------------------------------------------------------- reading
def manifest_digest(directory) -> str:
    """The sha256 (hex) of `directory`/manifest.json's bytes: the one value a port must trust (docs/porting.md)."""
    return hashlib.sha256(read_inside(directory, MANIFEST, MAX_MANIFEST_BYTES, VectorsError)).hexdigest()


def read_manifest(directory, digest: str | None = None) -> dict:
    """Read `directory`/manifest.json safely, check its digest (against `digest` if given, else against
    `manifest.json.sha256` if present), its nesting and schema, and that every case is the contract's;
    raise VectorsError naming the file."""
    return read_manifest_and_digest(directory, digest)[0]


def read_manifest_and_digest(directory, digest: str | None = None) -> tuple[dict, str]:
    """`read_manifest`, and the manifest's sha256 (hex) as read."""
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
    unlisted = sorted({entry["file"] for entry in array_entries(manifest["cases"])} - set(manifest["files"]))
    problems += [f"{root / name}: referenced by {MANIFEST} but has no checksum in its 'files'" for name in unlisted]
    if problems:
        more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise VectorsError("; ".join(problems[:10]) + more)
    return verified


def array_entries(node):
    """Every `{"file", "shape", …}` array entry under a manifest node (cases, inputs, outputs, gradients)."""
    if isinstance(node, dict):
        if "file" in node and "shape" in node:
            yield node
        for value in node.values():
            yield from array_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from array_entries(value)


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
