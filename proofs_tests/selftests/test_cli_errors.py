"""The command line on hostile backends and bad options: one line on stderr and exit 2, never a traceback;
a backend's crash, `sys.exit` or hang is an ERROR verdict, never an exit 0 with nothing checked.

Backends live in a module written to a temporary directory (some fail at import), and each run
asks one law (`kl_nonnegative`) of the dev profile, so the file takes seconds.
"""

from __future__ import annotations

import time

import pytest

from vaespec.proofs_tests.cli import main

MODULE = '''
import sys, time
from vaespec.reference.backend import ReferenceBackend

class Base(ReferenceBackend):
    name = "hostile"

class Raises(Base):
    def kl_divergence(self, *args):
        raise {exc}

class Exits(Base):
    def kl_divergence(self, *args):
        sys.exit(0)

class Sleeps(Base):
    def kl_divergence(self, *args):
        time.sleep(3600)

class BadProperty(Base):
    @property
    def dtype(self):
        raise RuntimeError("no dtype today")

class FiveChapters(Base):
    chapters = 5

def factory():
    raise ValueError("cannot build")

raises = Raises()
exits = Exits()
sleeps = Sleeps()
bad_property = BadProperty
five = FiveChapters()
'''


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """Write modules `hostile_ok` (the backends above), `hostile_boom` (raises on import), `hostile_exit`
    (sys.exit(0) on import) into a directory on sys.path."""
    (tmp_path / "hostile_ok.py").write_text(MODULE.replace("{exc}", "KeyboardInterrupt"))
    (tmp_path / "hostile_boom.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "hostile_exit.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _check(capsys, *argv) -> tuple[int, str, str]:
    code = main(["check", "--profile", "dev", "--law", "kl_nonnegative", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str, *words) -> bool:
    return err.count("\n") == 1 and err.startswith("vaespec ") and "Traceback" not in err and \
        all(w in err for w in words)


@pytest.mark.parametrize("spec, words", [
    (".relative:obj", ["absolute"]),
    ("hostile_boom:obj", ["RuntimeError", "boom at import"]),
    ("hostile_exit:obj", ["SystemExit"]),
    ("hostile_ok:factory", ["ValueError", "cannot build"]),
    ("hostile_ok:bad_property", ["'dtype'", "no dtype today"]),
    ("hostile_ok:five", ["chapters = 5"]),
    ("hostile_ok:missing", ["has no attribute"]),
    ("hostile_ok:", ["expected 'package.module:object'"]),
])
def test_bad_backends_are_one_line_errors(hostile, capsys, spec, words):
    code, _, err = _check(capsys, "--backend", spec)
    assert code == 2 and _one_line(err, *words), err


def test_keyboard_interrupt_from_a_backend_is_one_line(hostile, capsys):
    code, _, err = _check(capsys, "--backend", "hostile_ok:raises")
    assert code == 2 and _one_line(err, "interrupted"), err


def test_sys_exit_in_a_backend_is_an_error_verdict_not_a_pass(hostile, capsys):
    code, out, _ = _check(capsys, "--backend", "hostile_ok:exits")
    assert code == 1 and "ERROR" in out and "called sys.exit(0)" in out


def test_a_hanging_backend_call_is_a_timeout_verdict(hostile, capsys):
    started = time.perf_counter()
    code, out, _ = _check(capsys, "--backend", "hostile_ok:sleeps", "--call-timeout", "0.5")
    assert code == 1 and "ERROR" in out and "did not return within 0.5 s" in out
    assert time.perf_counter() - started < 60


def test_json_into_a_missing_directory_fails_before_any_law(hostile, tmp_path, capsys):
    code, out, err = _check(capsys, "--json", str(tmp_path / "missing" / "r.json"))
    assert code == 2 and _one_line(err, "--json", "does not exist") and "kl_nonnegative" not in out


@pytest.mark.parametrize("argv, words", [
    (["fidelity", "--seed", "-1"], ["--seed"]),
    (["fidelity", "--samples", str(10**12)], ["--samples"]),
    (["fidelity", "--samples", "0"], ["--samples"]),
    (["fidelity", "--json", "/nonexistent-dir/x.json"], ["--json", "does not exist"]),
    (["check", "--call-timeout", "-1", "--backend", "vaespec.reference.backend:ReferenceBackend"],
     ["--call-timeout"]),
    (["check", "--call-timeout", "nan", "--backend", "vaespec.reference.backend:ReferenceBackend"],
     ["--call-timeout"]),
    (["check", "--call-timeout", "5"], ["--call-timeout", "--backend"]),
    (["vectors", "export", "/nonexistent-dir/v", "--function", "kl_divergenz"], ["--function", "kl_divergenz"]),
])
def test_bad_options_are_one_line_errors(capsys, argv, words):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err, *words), err


def test_verify_guards_its_backends_too(hostile, tmp_path, capsys):
    from vaespec.proofs_tests.vectors.export import export

    export(tmp_path / "v", functions=["kl_divergence"])  # the function the hostile backend exits in
    code = main(["vectors", "verify", str(tmp_path / "v"), "--backend", "hostile_ok:exits"])
    out = capsys.readouterr().out
    assert code == 1 and "called sys.exit(0)" in out


def test_guard_passes_results_and_attributes_through():
    import numpy as np

    from vaespec.proofs_tests.check.guard import Guarded
    from vaespec.reference.backend import ReferenceBackend
    reference = ReferenceBackend()
    guarded = Guarded(reference, 5.0)
    mu, log_var = np.zeros((2, 3)), np.zeros((2, 3))
    assert guarded.kl_divergence(mu, log_var) == reference.kl_divergence(mu, log_var)
    assert (guarded.name, guarded.dtype, guarded.chapters) == (reference.name, reference.dtype, reference.chapters)


STUCK = '''
import signal, sys, time
import vaespec.proofs_tests.check.guard as guard
guard.GRACE = 0.5
from vaespec.reference.backend import ReferenceBackend

class Stuck(ReferenceBackend):
    name = "stuck"
    def kl_divergence(self, *args):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as C code that never returns to Python
        time.sleep(120)

stuck = Stuck()
from vaespec.proofs_tests.cli import main
sys.exit(main(["check", "--profile", "dev", "--law", "kl_nonnegative", "--backend", "__main__:stuck",
               "--call-timeout", "0.5"]))
'''


def test_a_call_stuck_outside_python_ends_the_run_with_one_line():
    import subprocess
    import sys

    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", STUCK], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and time.perf_counter() - started < 100
    assert result.stderr.strip().splitlines()[-1] == ("vaespec: the backend's kl_divergence() did not return within "
                                                      "1 s and cannot be interrupted (stuck outside Python); stopping")
