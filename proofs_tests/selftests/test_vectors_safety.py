"""`vaespec vectors` on hostile directories: the data-loss and security repros of issue 14, each failing safe.

verify reads nothing outside DIR (no symlinks, files or directories, anywhere below it), never a FIFO
or device, never unbounded; a tampered manifest is caught by its digest; a verify that checked nothing
fails. export removes only files it can prove it wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading

import pytest

from vaespec.proofs_tests.cli import main
from vaespec.proofs_tests.vectors import verify as vectors
from vaespec.proofs_tests.vectors.export import export
from vaespec.proofs_tests.vectors.verify import VectorsError, verify

# The safety checks read files, links and manifests, not values: two functions' vectors (chapters vae and vq,
# 135 files) serve them as well as the full export's ~3700, which every damaged copy below would copy again.
FEW = ("kl_divergence", "quantize")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors") / "v"
    export(directory, seed=0, functions=FEW)
    return directory


@pytest.fixture
def copy(exported, tmp_path):
    target = tmp_path / "v"
    shutil.copytree(exported, target, symlinks=True)
    return target


def _manifest(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _digest(directory) -> str:
    return hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()


def _resign(directory, manifest) -> None:
    """A consistent forgery: the manifest and its recorded digest rewritten together."""
    data = json.dumps(manifest).encode()
    (directory / "manifest.json").write_bytes(data)
    (directory / vectors.DIGEST).write_text(f"{hashlib.sha256(data).hexdigest()}  manifest.json\n")


def _first_file(directory) -> str:
    return next(iter(_manifest(directory)["files"]))


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_a_listed_file_replaced_by_a_symlink_out_of_the_directory_is_refused(copy, tmp_path, capsys):
    relative = _first_file(copy)
    outside = tmp_path / "secret.npy"
    shutil.copy(copy / relative, outside)  # same bytes: the checksum alone would pass it
    (copy / relative).unlink()
    (copy / relative).symlink_to(outside)
    code, err = _cli(capsys, "vectors", "verify", str(copy))
    assert code == 2 and f"{copy / relative}: a symbolic link" in err


def test_a_symlinked_directory_inside_the_export_is_refused(copy, tmp_path):
    folder = copy / "vae"
    shutil.move(folder, tmp_path / "elsewhere")
    folder.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(VectorsError, match=rf"{folder}: a symbolic link, expected a directory"):
        verify(copy)


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd"])
def test_a_manifest_that_is_a_link_to_a_system_file_is_refused(copy, target):
    if not os.path.exists(target):
        pytest.skip(f"no {target}")
    (copy / "manifest.json").unlink()
    (copy / "manifest.json").symlink_to(target)
    with pytest.raises(VectorsError, match=r"manifest.json: a symbolic link"):
        verify(copy)


def test_fifo_and_device_are_refused_without_waiting(copy):
    relative = _first_file(copy)
    (copy / relative).unlink()
    os.mkfifo(copy / relative)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("error", pytest.raises(VectorsError, verify, copy)))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "verify waited on a FIFO"
    assert "a FIFO, expected a regular file" in str(outcome["error"].value)


def test_traversal_and_over_long_names_are_refused(copy):
    manifest = _manifest(copy)
    record = next(iter(manifest["files"].values()))
    for name, message in (("../x.npy", "outside"), ("a/" + "b" * 300 + ".npy", "over 255"),
                          ("a/" * 600 + "x.npy", "over 1024")):
        _resign(copy, {**manifest, "files": {**manifest["files"], name: record}})
        with pytest.raises(VectorsError, match=message):
            verify(copy)


def test_deeply_nested_and_oversized_manifests_are_refused(copy):
    (copy / vectors.DIGEST).unlink()
    (copy / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(VectorsError, match="not readable JSON|nested deeper"):
        verify(copy)
    (copy / "manifest.json").write_text(json.dumps({**_manifest_of_depth(40)}))
    with pytest.raises(VectorsError, match="nested deeper than 32"):
        verify(copy)


def _manifest_of_depth(depth: int) -> dict:
    node: dict = {}
    for _ in range(depth):
        node = {"x": node}
    return node


def test_a_manifest_with_no_cases_or_relabelled_chapters_checks_nothing_and_fails(copy, capsys):
    manifest = _manifest(copy)
    _resign(copy, {**manifest, "cases": []})
    code, err = _cli(capsys, "vectors", "verify", str(copy))
    assert code == 2 and "holds no case" in err
    relabelled = [{**case, "chapter": "vq" if case["chapter"] != "vq" else "vae"} for case in manifest["cases"]]
    _resign(copy, {**manifest, "cases": relabelled})
    code, err = _cli(capsys, "vectors", "verify", str(copy))
    assert code == 2 and "the contract puts it in" in err


def test_a_backend_of_which_nothing_could_be_checked_fails(exported, capsys):
    code, err = _cli(capsys, "vectors", "verify", str(exported), "--backend",
                     f"{__name__}:NO_CHAPTER")
    assert code == 2 and "no case could be checked" in err


class _NoChapter:
    """A backend declaring no chapter: every vector would be n/a."""

    name, device, dtype, chapters = "nothing", "cpu", "float64", ()

    def vjp(self, *args):
        raise AssertionError("never called")

    def kl_divergence(self, *args):
        raise AssertionError("never called")


NO_CHAPTER = _NoChapter()


def test_tampered_bounds_are_caught_by_the_trusted_digest(copy, capsys):
    trusted = _digest(copy)
    manifest = _manifest(copy)
    manifest["bounds"] = [{k: {d: v * 1e300 for d, v in b[k].items()} for k in ("rel", "floor")}
                          for b in manifest["bounds"]]
    _resign(copy, manifest)  # a forger rewrites the recorded digest too
    code, err = _cli(capsys, "vectors", "verify", str(copy), "--digest", trusted)
    assert code == 2 and f"differs from the trusted --digest {trusted}" in err
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))  # the recorded digest catches an edit
    code, err = _cli(capsys, "vectors", "verify", str(copy))
    assert code == 2 and "differs from the one recorded in manifest.json.sha256" in err


def test_export_prints_the_digest_that_verify_accepts(tmp_path, capsys):
    functions = [arg for name in FEW for arg in ("--function", name)]
    assert main(["vectors", "export", str(tmp_path / "v"), "--seed", "3", *functions]) == 0
    assert _manifest(tmp_path / "v")["seed"] == 3
    assert {c["function"] for c in _manifest(tmp_path / "v")["cases"]} == set(FEW)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("manifest sha256: "))
    digest = line.split()[2]
    assert digest == _digest(tmp_path / "v")
    assert (tmp_path / "v" / vectors.DIGEST).read_text() == f"{digest}  manifest.json\n"
    assert main(["vectors", "verify", str(tmp_path / "v"), "--digest", digest]) == 0
    assert main(["vectors", "verify", str(tmp_path / "v"), "--digest", "0" * 64]) == 2
    assert main(["vectors", "verify", str(tmp_path / "v"), "--digest", "xyz"]) == 2


def test_export_never_deletes_a_users_files(tmp_path, capsys):
    """The repro of issue 14: a manifest merely listing files made export delete them."""
    target = tmp_path / "D"
    target.mkdir()
    (target / "important.txt").write_text("x")
    (target / "manifest.json").write_text('{"files": {"important.txt": {}}}')
    code, err = _cli(capsys, "vectors", "export", str(target))
    assert code == 2 and "not a vaespec export" in err
    assert (target / "important.txt").read_text() == "x"
    (target / vectors.DIGEST).write_text(hashlib.sha256((target / "manifest.json").read_bytes()).hexdigest()
                                         + "  manifest.json\n")  # even with a matching digest: not the schema
    code, err = _cli(capsys, "vectors", "export", str(target))
    assert code == 2 and "holds no intact previous export" in err and (target / "important.txt").exists()


def test_export_replaces_only_an_intact_export(copy, tmp_path, capsys):
    relative = _first_file(copy)
    (copy / relative).write_bytes((copy / relative).read_bytes()[:-1] + b"\x00")  # edited since the export
    code, err = _cli(capsys, "vectors", "export", str(copy))
    assert code == 2 and "changed since" in err and (copy / relative).exists()
    shutil.copy(copy / relative, tmp_path / "mine.npy")
    os.unlink(copy / relative)
    (copy / relative).symlink_to(tmp_path / "mine.npy")  # a link: never followed, never removed
    code, err = _cli(capsys, "vectors", "export", str(copy))
    assert code == 2 and "not part of the previous export" in err and (tmp_path / "mine.npy").exists()


def test_export_into_an_unwritable_place_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for target in ("/proc/x", str(tmp_path / "file"), str(tmp_path / "file" / "sub")):
        code, err = _cli(capsys, "vectors", "export", target)
        assert code == 2 and err.count("\n") == 1 and err.startswith("vaespec vectors: "), (target, err)
