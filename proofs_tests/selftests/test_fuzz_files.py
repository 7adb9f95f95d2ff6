"""The files-and-CLI fuzz harness (`vaespec.proofs_tests.fuzz.files`) at CI size, and its own negative controls:
each bad outcome class is produced on purpose and must be classified bad.

`VAESPEC_FUZZ_SIZE` (default 40 cases per category, about 20 s) sets the size; the larger run is
`python -m vaespec.proofs_tests.fuzz.files --size 1000`.
"""

from __future__ import annotations

import os
import time

import pytest

pytest.importorskip("safetensors")
pytest.importorskip("sklearn")

from vaespec.proofs_tests import cli
from vaespec.proofs_tests.fuzz import files as fuzz_files


def test_every_generated_case_ends_in_exit_2_and_one_line(tmp_path):
    size = int(os.environ.get("VAESPEC_FUZZ_SIZE", "40"))
    result = fuzz_files.run(size, seed=0, workdir=str(tmp_path))
    assert result["calls"] == {c: size for c in ("cli", "data", "vectors", "checkpoints", "forgeries")}
    assert sum(result["outcomes"].values()) == 5 * size
    assert result["bad"] == [], result["bad"][:3]
    assert result["outcomes"][fuzz_files.GOOD] >= 4 * size // 2  # most cases reach vaespec's own errors


def _classify(monkeypatch, behaviour, watched=()) -> str:
    monkeypatch.setattr(cli, "main", behaviour)
    return fuzz_files.call(["x"], ["named"], list(watched))[0]


def test_the_harness_calls_bad_what_is_bad(monkeypatch, tmp_path, capsys):
    import sys

    def printing(code, text):
        def main(argv):
            print(text, file=sys.stderr)
            return code
        return main

    assert _classify(monkeypatch, printing(2, "vaespec x: named thing")) == fuzz_files.GOOD
    assert _classify(monkeypatch, printing(0, "vaespec x: named thing")) == "BAD: exit 0"
    assert _classify(monkeypatch, printing(2, "vaespec x: something else")) == "BAD: names neither argument nor file"
    assert _classify(monkeypatch, printing(2, "vaespec x: named\nand more")) == "BAD: 2 lines"
    assert _classify(monkeypatch, printing(2, "Traceback (most recent call last):\nvaespec named")) == \
        "BAD: traceback printed"

    def raising(argv):
        raise KeyError("boom")
    assert _classify(monkeypatch, raising) == "BAD: traceback (KeyError)"

    outside = tmp_path / "outside.txt"
    outside.write_text("secret")

    def reading(argv):
        outside.read_text()
        print("vaespec x: named", file=sys.stderr)
        return 2
    assert _classify(monkeypatch, reading, [str(outside)]) == "BAD: read outside the named directory"

    monkeypatch.setattr(fuzz_files, "LIMIT", 0.2)

    def hanging(argv):
        time.sleep(30)
    started = time.perf_counter()
    assert _classify(monkeypatch, hanging) == "BAD: hang" and time.perf_counter() - started < 10
