"""The case generators of the files-and-CLI fuzz harness (`vaespec.proofs_tests.fuzz.files`).

Each generator takes a `random.Random` and a scratch directory and yields, forever, `(argv, names,
watched)`: a command line that must fail, the strings of which one must appear in its error (the
argument or the file), and the files outside the named directory that it must not read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(path: str, data: bytes | str, mode: str = "wb") -> None:
    with open(path, mode) as f:
        f.write(data)


def _pick(rng, values):
    return values[rng.randrange(len(values))]


def _bad_number(rng, integer=True):
    values = ["0", "-1", "-7", str(10**12), str(2**63), str(-(2**63))] if integer else \
        ["nan", "inf", "-inf", "-1", "1e309", "-0.5"]
    return _pick(rng, values)


def cli_cases(rng, tmp, data):
    """(argv, names) of bad invocations that must fail before any work."""
    a_file = os.path.join(tmp, "a-file")
    open(a_file, "w").close()
    train_ints = ["--latent-size", "--epochs", "--batch-size", "--particles", "--embedding-dim", "--num-embeddings",
                  "--eval-particles", "--iwae-particles", "--threads", "--seed"]
    while True:
        kind = rng.randrange(9)
        base = ["train", "--data", data, "--out", os.path.join(tmp, f"o{rng.randrange(10**6)}"), "--epochs", "1",
                "--progress", "never", "--no-plots"]
        if kind == 0:
            option = _pick(rng, train_ints)
            value = _bad_number(rng) if option != "--seed" else _pick(rng, ["-1", str(2**64), str(-(2**63))])
            yield [*base, f"{option}={value}"], [option.lstrip("-").replace("-", "_"), option]
        elif kind == 1:
            yield [*base, "--lr", _bad_number(rng, False)], ["lr"]
        elif kind == 2:
            yield [*base, "--device", _pick(rng, ["meta", "mps", "xla", "cuda:99", "tpu", "", "cpu:0", "-1",
                                                  "x" * 300])], ["device"]
        elif kind == 3:
            shape = _pick(rng, ["-8,-8", "0,12", "1,2,3", "5,5", "3,5", "70000,1"])
            yield [*base, f"--image-shape={shape}"], ["image_shape", "image-shape"]
        elif kind == 4:
            sizes = ",".join(str(_pick(rng, [0, -3, 70000, 2**40])) for _ in range(rng.randint(1, 3)))
            option = _pick(rng, ["--encoder-sizes", "--decoder-sizes"])
            yield [*base, f"{option}={sizes}"], [option.lstrip("-").replace("-", "_")]
        elif kind == 5:
            out = _pick(rng, [a_file, os.path.join(a_file, "sub"), "/proc/vaespec-x"])
            yield ["train", "--data", data, "--out", out, "--epochs", "1", "--no-plots"], ["--out", out]
        elif kind == 6:
            option, value = _pick(rng, [("--seed", "-1"), ("--seed", str(2**40)), ("--samples", "0"),
                                        ("--samples", str(10**12)), ("--json", os.path.join(tmp, "missing", "f.json")),
                                        ("--json", tmp)])
            yield ["fidelity", option, value], [option]
        elif kind == 7:
            spec = _pick(rng, [".rel:obj", "os:path", "vaespec.spec:FUNCTIONS", "no_such_module_x:obj", "a:", ":b",
                               "a b:c", "vaespec.spec.contract:FUNCTIONS.keys", "sys:exit", "vaespec:__name__"])
            yield ["check", "--backend", spec, "--law", "kl_nonnegative"], ["--backend"]
        else:
            option, value = _pick(rng, [("--json", os.path.join(tmp, "missing", "r.json")), ("--json", tmp),
                                        ("--call-timeout", "-1"), ("--call-timeout", "nan")])
            yield ["check", "--backend", "vaespec.reference.backend:ReferenceBackend", option, value], [option]


def data_cases(rng, tmp):
    """(argv, names) of `train --data F` on broken files."""
    good = np.asarray(np.random.default_rng(0).random((40, 6)) < 0.5, dtype=np.float32)
    i = 0
    while True:
        i += 1
        path = os.path.join(tmp, f"d{i}" + _pick(rng, [".npy", ".npz"]))
        kind = rng.randrange(8)
        if path.endswith(".npz"):
            np.savez_compressed(path, x=good)
            raw = bytearray(_read(path))
            if kind < 5:  # flip a bit of the member's deflate stream (not its last byte: padding bits), or truncate
                import zipfile

                with zipfile.ZipFile(path) as archive:
                    info = archive.infolist()[0]
                at = info.header_offset  # the local header's own name and extra lengths (numpy writes a zip64 extra)
                start = at + 30 + int.from_bytes(raw[at + 26:at + 28], "little") + int.from_bytes(raw[at + 28:at + 30],
                                                                                                  "little")
                stream = bytes(raw[start:start + info.compress_size])
                while True:  # a flip that still inflates to the same bytes is no corruption (an unused code length)
                    flipped = bytearray(stream)
                    flipped[rng.randrange(len(flipped) - 1)] ^= 1 << rng.randrange(8)
                    if not _inflates_to(bytes(flipped), stream):
                        break
                raw[start:start + info.compress_size] = flipped
            else:
                raw = raw[: rng.randrange(len(raw) - 1)]
            _write(path, bytes(raw))
        elif kind == 0:
            np.save(path, good)
            raw = _read(path)
            rows = _pick(rng, [10**12, 41, 2**40, 10**18])
            _write(path, raw.replace(b"(40, 6)", f"({rows}, 6)".encode()).ljust(len(raw), b" "))
        elif kind == 1:
            np.save(path, good)
            raw = _read(path)
            _write(path, raw[: rng.randrange(len(raw) - 1)])
        elif kind == 2:
            np.save(path, good)
            raw = bytearray(_read(path))
            at = raw.index(b"(40, 6)") + rng.randrange(7)
            raw[at] = ord(_pick(rng, "x]{!a"))
            _write(path, bytes(raw))
        elif kind == 3:
            np.save(path, _pick(rng, [np.zeros(5), np.zeros((2, 2, 2, 2)), np.zeros((1, 6)), np.full((4, 6), np.nan),
                                      np.zeros((0, 6)), np.array(["a", "b"])]))
        elif kind == 4:
            np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        elif kind == 5:
            os.mkfifo(path)
        elif kind == 6:
            os.symlink(_pick(rng, ["/dev/zero", "/dev/null", tmp]), path)
        else:
            path = os.path.join(tmp, "missing", f"d{i}.npy")
        yield ["train", "--data", path, "--out", os.path.join(tmp, f"o{i}"), "--epochs", "1", "--no-plots",
               "--progress", "never"], [path, repr(path)]


def forge(directory: str, manifest) -> None:
    """Rewrite manifest.json and its recorded digest consistently (a forgery only a trusted digest catches)."""
    data = _dumps(manifest).encode() if not isinstance(manifest, bytes) else manifest
    _write(os.path.join(directory, "manifest.json"), data)
    _write(os.path.join(directory, "manifest.json.sha256"), f"{hashlib.sha256(data).hexdigest()}  manifest.json\n",
           "w")


def _damage_file(rng, directory: str, relative: str, outside: str, watched: list[str]) -> None:
    """One file-level damage to `directory`/`relative`."""
    path = os.path.join(directory, relative)
    kind = rng.randrange(9)
    raw = bytearray(_read(path))
    if kind == 0 and raw:
        at = rng.randrange(len(raw))
        raw[at] ^= 1 << rng.randrange(8)
        _write(path, bytes(raw))
    elif kind == 1:
        _write(path, bytes(raw[: rng.randrange(max(1, len(raw)))]))
    elif kind == 2:
        _write(path, bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))), "ab")
    elif kind == 3:
        os.unlink(path)
    elif kind == 4:  # an identical copy outside: the checksum alone would pass it
        copy = os.path.join(outside, f"c{rng.randrange(10**9)}")
        shutil.copyfile(path, copy)
        watched.append(copy)
        os.unlink(path)
        os.symlink(copy, path)
    elif kind == 5:
        os.unlink(path)
        os.symlink(_pick(rng, ["/dev/zero", "/dev/urandom", "/etc/hostname", "/nonexistent"]), path)
    elif kind == 6:
        os.unlink(path)
        os.mkfifo(path)
    elif kind == 7:
        os.unlink(path)
        os.mkdir(path)
    else:  # the file's directory swapped for a link to an identical copy outside
        folder = os.path.dirname(path)
        if os.path.realpath(folder) == os.path.realpath(directory):
            return _damage_file(rng, directory, relative, outside, watched)
        copy = os.path.join(outside, f"d{rng.randrange(10**9)}")
        shutil.copytree(folder, copy)
        watched.extend(os.path.join(copy, n) for n in os.listdir(copy))
        shutil.rmtree(folder)
        os.symlink(copy, folder)


def _mutate_json(rng, value, depth=0):
    """`value` with one node deleted, retyped, renamed out of bounds or nested deep, at a random path."""
    if isinstance(value, dict) and value and (depth < 2 or rng.random() < 0.7):
        key = _pick(rng, sorted(value))
        value = dict(value)
        roll = rng.random()
        if roll < 0.2 and depth > 0:
            del value[key]
        elif roll < 0.3:
            bad = _pick(rng, ["../../etc/x.npy", "/abs.npy", "a/" * 600 + "x.npy", "b" * 300 + ".npy"])
            value[bad] = value.pop(key)
        else:
            value[key] = _mutate_json(rng, value[key], depth + 1)
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        value = list(value)
        at = rng.randrange(len(value))
        value[at] = _mutate_json(rng, value[at], depth + 1)
        return value
    nested: object = 0
    for _ in range(40):
        nested = [nested]
    return _pick(rng, [None, -1, 2**70, "x" * 5000, [], {}, True, 1e308, nested, DEEP, "../x.npy"])


def _changed(rng, value):
    """`_mutate_json(value)`, drawn again until it differs (a value replaced by an equal one is no damage)."""
    while True:
        mutated = _mutate_json(rng, value)
        if _dumps(mutated) != _dumps(value):
            return mutated


def _inflates_to(flipped: bytes, stream: bytes) -> bool:
    """Whether `flipped` still yields `stream`'s bytes as zipfile reads a member (the first `file_size`
    bytes, with no complaint about a damaged end-of-stream code after them): then nothing is corrupt."""
    import zlib

    expected = zlib.decompress(stream, -15)
    try:
        return zlib.decompressobj(-15).decompress(flipped, len(expected)) == expected  # and no further, as zipfile
    except zlib.error:
        return False


DEEP = "__deeply nested__"  # written as 100,000 nested brackets by `_dumps` (json.dumps cannot go that deep)


def _dumps(value) -> str:
    return json.dumps(value).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)


def vectors_cases(rng, tmp, mini):
    """(argv, names, watched) of `vectors verify` on a damaged copy of the export `mini`: files damaged,
    checked against the trusted digest; the manifest damaged in place, checked against the recorded one;
    forgeries (consistently re-recorded), checked against the trusted digest."""
    manifest = json.loads(_read(os.path.join(mini, "manifest.json")))
    trusted = hashlib.sha256(_read(os.path.join(mini, "manifest.json"))).hexdigest()
    files = sorted(manifest["files"]) + ["manifest.json"]
    i = 0
    while True:
        i += 1
        target, outside, watched = os.path.join(tmp, f"v{i}"), os.path.join(tmp, f"outside{i}"), []
        shutil.copytree(mini, target)
        os.mkdir(outside)
        kind, digest = rng.randrange(5), ["--digest", trusted]
        if kind < 2:
            _damage_file(rng, target, _pick(rng, files), outside, watched)
        elif kind == 2:  # an in-place edit, no --digest: the recorded digest catches it
            _damage_file(rng, target, "manifest.json", outside, watched)
            digest = []
        elif kind == 3:
            forge(target, _forgery(rng, manifest))
        else:
            forge(target, _changed(rng, manifest))
        yield ["vectors", "verify", target, *digest], [target], watched


def _forgery(rng, manifest: dict):
    """One of the issue's tampering repros (relabelled chapters: not all drawn equal to the old ones)."""
    while True:
        forged = json.loads(json.dumps(manifest))
        _pick(rng, [lambda m: m.update(cases=[]),
                    lambda m: [c.update(chapter=_pick(rng, ["vq", "vae", "estimators", "x"])) for c in m["cases"]],
                    lambda m: [b[k].update({d: v * 1e300 for d, v in b[k].items()}) for b in m["bounds"]
                               for k in ("rel", "floor")],
                    lambda m: m["cases"].pop(), lambda m: m["cases"][0]["outputs"].clear()])(forged)
        if forged != manifest:
            return forged


def forged_cases(rng, tmp, mini, run):
    """Forgeries a user trusts (the vectors' digest given as --digest; a checkpoint's checksums recomputed):
    structurally wrong ones must be refused; well-formed ones are judged by their values (exit 0 or 1)."""
    from vaespec.impl.train import checkpoint

    manifest = json.loads(_read(os.path.join(mini, "manifest.json")))
    state = json.loads(_read(os.path.join(run, "checkpoint", "state.json")))
    i = 0
    while True:
        i += 1
        if rng.random() < 0.5:
            target = os.path.join(tmp, f"v{i}")
            shutil.copytree(mini, target)
            data = _dumps(_changed(rng, manifest) if rng.random() < 0.7 else _forgery(rng, manifest)).encode()
            forge(target, data)
            yield ["vectors", "verify", target, "--digest", hashlib.sha256(data).hexdigest()], [target], []
            continue
        out = os.path.join(tmp, f"r{i}")
        shutil.copytree(run, out)
        ck = os.path.join(out, "checkpoint")
        if rng.random() < 0.6:  # a wrong structure with a valid checksum
            bad = _changed(rng, state)
            if isinstance(bad, dict) and _finite(bad):
                bad["sha256"] = hashlib.sha256(checkpoint.canonical_json(bad)).hexdigest()
            _write(os.path.join(ck, "state.json"), _dumps(bad), "w")
        else:  # a payload damaged in its header and re-recorded: only the parser can refuse it
            raw = bytearray(_read(os.path.join(ck, "tensors.safetensors")))
            raw[rng.randrange(min(len(raw), 300))] ^= 1 << rng.randrange(8)
            _write(os.path.join(ck, "tensors.safetensors"), bytes(raw))
            signed = {**state, "tensors": {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}}
            signed["sha256"] = hashlib.sha256(checkpoint.canonical_json(signed)).hexdigest()
            _write(os.path.join(ck, "state.json"), json.dumps(signed), "w")
        yield ["train", "--resume", "--out", out, "--epochs", "3", "--progress", "never"], [ck, out], []


def checkpoint_cases(rng, tmp, run):
    """(argv, names, watched) of `train --resume` on a copy of the run `run` with a damaged checkpoint file."""
    i = 0
    while True:
        i += 1
        out, outside, watched = os.path.join(tmp, f"r{i}"), os.path.join(tmp, f"outside-r{i}"), []
        shutil.copytree(run, out)
        os.mkdir(outside)
        _damage_file(rng, out, "checkpoint/" + _pick(rng, ["state.json", "tensors.safetensors"]), outside, watched)
        yield ["train", "--resume", "--out", out, "--epochs", "3", "--progress", "never"], \
            [os.path.join(out, "checkpoint"), out], watched


def _finite(value) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except ValueError:
        return False
