"""`vaespec check`'s output: failing rows first with their reason and a command that reproduces each,
a summary per chapter × backend, the full table only with --verbose, no redraws off a terminal;
and `-j 2` reports exactly what one process does."""

from __future__ import annotations

import json
import shlex

import pytest

from vaespec.proofs_tests.cli import main
from vaespec.spec.laws import LAWS

CONTROL = "vaespec.proofs_tests.controls.vae:KLSignFlipped"


def test_failing_rows_come_with_their_reason_and_a_command_that_reproduces_them(capsys):
    assert main(["check", "--backend", CONTROL, "--law", "kl_nonnegative", "--law", "kl_additive_over_latent",
                 "--profile", "dev"]) == 1
    out = capsys.readouterr()
    assert "\r" not in out.out + out.err  # not a terminal: no progress redraws
    lines = out.out.splitlines()
    at = lines.index("FAIL  kl_nonnegative on control:KLSignFlipped/cpu/float64")
    assert lines[at + 1].strip().startswith("0 ≤ kl_divergence: ")  # the violation's first line
    command = lines[at + 2].strip().removeprefix("reproduce: ")
    assert command == (f"vaespec check --law kl_nonnegative --backend {CONTROL} --device cpu --dtype float64 "
                       "--profile dev --verbose")
    assert "law  " not in out.out  # no full table without --verbose
    summary = next(line for line in lines if line.startswith("vae "))
    assert summary.split()[:5] == ["vae", "control:KLSignFlipped/cpu/float64", "1", "1", "0"]
    assert lines[-2].startswith("1 held, 1 failed, 0 n/a in ") and lines[-1] == "failing laws: kl_nonnegative"

    assert main(shlex.split(command)[1:]) == 1  # the command re-runs that row alone, in full
    again = capsys.readouterr().out
    assert "vaespec check: 1 laws × 1 backends" in again
    assert again.count("kl_nonnegative  ") == 1 and "Reproduce with:" in again  # the table row; the snippet


def test_two_processes_report_what_one_does(tmp_path, capsys):
    options = ["check", "--law", "kl_", "--law", "reparameterize_zero", "--dtype", "float32", "--profile", "dev"]
    assert main([*options, "--json", str(tmp_path / "one.json")]) == 0
    assert main([*options, "-j", "2", "--json", str(tmp_path / "two.json")]) == 0
    one, two = (json.loads((tmp_path / f"{n}.json").read_text())["results"] for n in ("one", "two"))
    selected = [law for law in LAWS if "kl_" in law or "reparameterize_zero" in law]
    assert len(one) == len(selected) >= 7 and two == one
    assert main([*options, "-j", "0"]) == 2
    assert "-j/--jobs: expected a number of processes ≥ 1, got 0" in capsys.readouterr().err


def test_an_error_after_the_workers_started_ends_them_with_one_line(tmp_path, capsys):
    import multiprocessing

    # every law is selected, so -j 2 starts its worker before the skip file is read
    assert main(["check", "-j", "2", "--skip", str(tmp_path / "missing.txt")]) == 2
    assert "--skip" in capsys.readouterr().err
    assert multiprocessing.active_children() == []  # the worker was told to stop and joined


def test_jobs_auto_uses_every_core_only_for_a_large_selection(monkeypatch):
    from .. import cli

    monkeypatch.setattr(cli, "usable_cores", lambda: 6)
    assert cli.resolve_jobs("auto", cli.AUTO_JOBS_MIN_LAWS + 1) == 6
    assert cli.resolve_jobs("auto", cli.AUTO_JOBS_MIN_LAWS) == 1
    assert cli.resolve_jobs(3, 1) == 3


def test_jobs_must_be_a_count_or_auto(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["check", "-j", "many"])
    assert stop.value.code == 2
    assert "expected a number of processes ≥ 1 or auto, got 'many'" in capsys.readouterr().err
