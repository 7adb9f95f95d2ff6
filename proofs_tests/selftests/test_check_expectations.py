"""`vaespec check --skip/--xfail` (the plugin's file format, one parser; xfail strict), and pytest reporting
n/a laws as skipped with their reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from vaespec.proofs_tests.cli import main

CONTROL = "vaespec.proofs_tests.controls.vae:KLGradientMissingHalf"
LAWS = ["--law", "kl_divergence_gradient_matches_reference", "--law", "kl_nonnegative"]


def test_xfail_absorbs_a_failure_and_an_xpass_fails_the_run(tmp_path, capsys):
    known = tmp_path / "known.txt"
    known.write_text("kl_divergence_gradient_matches_reference  # the control's bug\nkl_nonnegative[control:KLG]\n")
    report = tmp_path / "r.json"
    status = main(["check", "--backend", CONTROL, *LAWS, "--xfail", str(known), "-j", "1", "--json", str(report)])
    out = capsys.readouterr().out
    verdicts = {r["law"]: r["verdict"] for r in json.loads(report.read_text())["results"]}
    assert verdicts == {"kl_divergence_gradient_matches_reference": "xfail", "kl_nonnegative": "XPASS"}
    assert status == 1, out  # strict: a listed law that holds fails the run
    assert f"listed in {known}:2 as expected to fail, but it holds" in out


def test_skip_and_xfail_leave_the_run_green(tmp_path, capsys):
    (tmp_path / "skip.txt").write_text("kl_nonnegative\nno_such_law\n")
    (tmp_path / "xfail.txt").write_text("kl_divergence_gradient\n")
    report = tmp_path / "r.json"
    status = main(["check", "--backend", CONTROL, *LAWS, "--skip", str(tmp_path / "skip.txt"),
                   "--xfail", str(tmp_path / "xfail.txt"), "-j", "1", "--json", str(report)])
    captured = capsys.readouterr()
    rows = {r["law"]: r for r in json.loads(report.read_text())["results"]}
    assert status == 0, captured.out
    assert rows["kl_nonnegative"]["verdict"] == "skipped" and rows["kl_nonnegative"]["examples"] == 0
    assert rows["kl_divergence_gradient_matches_reference"]["verdict"] == "xfail"
    assert "1 skipped, 1 xfail" in captured.out
    assert "skip.txt:2: 'no_such_law' matches no law" in captured.err  # stale: a warning, not an error


def test_malformed_file_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("kl_nonnegative[\n")
    assert main(["check", "--backend", CONTROL, *LAWS, "--xfail", str(tmp_path / "bad.txt"), "-j", "1"]) == 2
    assert "bad.txt:1: expected 'law_prefix' or 'law_prefix[backend_prefix]'" in capsys.readouterr().err


BACKEND = '''
from vaespec.reference.backend import ReferenceBackend

class VAEOnly(ReferenceBackend):
    name = "vae-only"
    chapters = ("vae",)
'''


def test_pytest_reports_na_laws_as_skipped_with_the_reason(tmp_path):
    (tmp_path / "vae_only.py").write_text(BACKEND)
    env = {**os.environ, "VAESPEC_PROFILE": "dev", "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "pytest", "--pyargs", "vaespec.proofs_tests.test_laws", "-q", "-rs", "-n", "0",
               "-p", "no:randomly", "-k", "(quantize_idempotent and not fsq_) or kl_nonnegative",
               "--vaespec-backend", "vae_only:VAEOnly", "--vaespec-report", str(tmp_path / "report.json")]
    done = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed, 1 skipped" in done.stdout, done.stdout[-2000:]
    assert "n/a: backend does not declare the 'vq' chapter" in done.stdout
    verdicts = {r["law"]: r["verdict"] for r in json.loads((tmp_path / "report.json").read_text())["results"]}
    assert verdicts == {"kl_nonnegative": "pass", "quantize_idempotent": "n/a"}
