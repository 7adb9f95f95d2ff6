"""The completeness check (`completeness`): every declared function has its reference entry and vjp, Torch
body, strategy, independent-port body and docs entry; one without fails vaespec's own collection."""

from __future__ import annotations

import os
import subprocess
import sys

from vaespec.proofs_tests.laws import completeness
from vaespec.reference import ReferenceBackend
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.signature import Arg, FunctionSpec, Output

EVERYTHING = ("a reference entry", "a reference vjp", "a Torch body", "a strategy", "an independent-port body",
              "a docs entry")
FAKE = FunctionSpec("zz_extra", (Arg("zz_input", "array", ("batch",), True),), (Output("y", ("batch",)),),
                    "y = zz_input", "vae")


def test_every_declared_function_is_complete():
    assert completeness.missing() == []


def test_an_extra_function_is_named_with_everything_it_lacks(monkeypatch):
    monkeypatch.setitem(FUNCTIONS, FAKE.name, FAKE)
    (line,) = completeness.missing()
    assert line.startswith("zz_extra (vae) lacks ")
    for what in EVERYTHING:
        assert what in line, (what, line)


def test_what_a_function_has_is_not_reported(monkeypatch, tmp_path):
    monkeypatch.setitem(FUNCTIONS, FAKE.name, FAKE)
    monkeypatch.setattr(ReferenceBackend, FAKE.name, staticmethod(lambda zz_input: zz_input), raising=False)
    (tmp_path / "contract.md").write_text("| `zz_extra(zz_input)` | y = zz_input |\n", encoding="utf-8")
    (line,) = [x for x in completeness.missing(tmp_path) if x.startswith("zz_extra")]  # the others: no docs there
    assert "a reference entry" not in line and "a docs entry" not in line
    assert all(what in line for what in EVERYTHING if what not in ("a reference entry", "a docs entry"))


def test_docs_count_only_as_code():
    assert completeness.documented("encode", "vae")
    assert not completeness.documented("encod", "vae")  # a prefix of a name is not the name


PLUGIN = '''
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.signature import Arg, FunctionSpec, Output

def pytest_configure(config):
    FUNCTIONS["zz_extra"] = FunctionSpec("zz_extra", (Arg("zz_input", "array", ("batch",), True),),
                                         (Output("y", ("batch",)),), "y = zz_input", "vae")
'''


def test_an_incomplete_function_fails_collection(tmp_path):
    (tmp_path / "zz_plugin.py").write_text(PLUGIN, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    here = os.path.dirname(__file__)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "zz_plugin", "-p", "no:cacheprovider", "-q",
                          "--collect-only", os.path.join(here, "test_completeness.py")],
                         capture_output=True, text=True, env=env, cwd=here, timeout=300, check=False)
    assert run.returncode != 0, run.stdout
    assert "zz_extra (vae) lacks a reference entry" in run.stdout + run.stderr, run.stdout + run.stderr
