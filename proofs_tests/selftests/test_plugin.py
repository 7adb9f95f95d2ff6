"""The pytest plugin: inert unless asked; skip/xfail files (prefix match, stale-entry warnings); the JSON
report and JUnit properties; and the real suite run end to end against the independent port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent.parent

# A stand-in for vaespec's own test_law: parametrized by `law` and `backend`, reporting through
# `record_law_result`, with outcomes fixed by the law's name so the plugin alone is under test.
FAKE_SUITE = '''
import pytest
from types import SimpleNamespace

BACKENDS = [SimpleNamespace(name="port", device="cpu", dtype=d) for d in ("float64", "float32")]
LAWS = ["kl_nonnegative", "kl_additive_over_latent", "loss_monotone_in_beta", "quantize_idempotent"]

@pytest.fixture
def record_law_result():
    return lambda result: None

@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: f"{b.name}-{b.device}-{b.dtype}")
@pytest.mark.parametrize("law", LAWS)
def test_law(law, backend, record_law_result):
    verdict = "FAIL" if law.startswith("quantize") and backend.dtype == "float32" else "pass"
    record_law_result({"law": law, "examples": 3, "worst_ratio": 2.5 if verdict == "FAIL" else 0.25,
                       "verdict": verdict, "message": "worst entry …" if verdict == "FAIL" else ""})
    assert verdict == "pass"

def test_unrelated():
    assert True
'''

BROKEN_SUITE = '''
import pytest
from types import SimpleNamespace

@pytest.fixture
def record_law_result():
    raise RuntimeError("no law runner today")

@pytest.mark.parametrize("backend", [SimpleNamespace(name="port", device="cpu", dtype="float32")])
@pytest.mark.parametrize("law", ["kl_nonnegative"])
def test_law(law, backend, record_law_result):
    pass
'''


COUNTING_PLUGIN = '''
import json, os

def pytest_configure(config):
    from vaespec.proofs_tests.check import runner

    def counted(name, run):
        def wrapper(law, backends, *args, **kwargs):
            labels = [b.dtype for b in backends] if isinstance(backends, list) else [backends.dtype]
            with open(os.environ["VAESPEC_COUNT_FILE"], "a") as out:
                out.write(json.dumps([name, law, labels, hasattr(config, "workerinput")]) + "\\n")
            return run(law, backends, *args, **kwargs)
        return wrapper

    runner.run_law = counted("run_law", runner.run_law)
    runner.run_laws = counted("run_laws", runner.run_laws)
'''


@pytest.fixture
def fake(pytester):
    pytester.makepyfile(test_fake=FAKE_SUITE)
    return pytester


def test_inert_when_not_asked(pytester):
    pytester.makepyfile(test_other="def test_one():\n    assert 1 + 1 == 2\n")
    loaded = pytester.runpytest("-rA")
    assert "vaespec-" in loaded.stdout.str()  # the entry point loaded the plugin …
    without = pytester.runpytest("-rA", "-p", "no:vaespec")
    loaded.assert_outcomes(passed=1)
    without.assert_outcomes(passed=1)  # … and it changed nothing
    body = [line for line in loaded.stdout.lines if not line.startswith(("plugins:", "rootdir:", "platform"))]
    assert not [line for line in body if "vaespec" in line.lower()], body
    assert not list(Path(pytester.path).glob("*.json")), "no report without --vaespec-report"


def test_inert_registers_no_hooks_without_options(pytester):
    pytester.makepyfile(test_other="def test_plugins(request):\n"
                        "    pm = request.config.pluginmanager\n"
                        "    assert pm.get_plugin('vaespec-report') is None\n"
                        "    assert pm.get_plugin('vaespec-expectations') is None\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_skip_and_xfail_files_match_prefixes_and_warn_on_stale_entries(fake):
    fake.makefile(".txt", skip="# slow laws\nkl_\n\nno_such_law   # stale\n")
    fake.makefile(".txt", xfail="quantize_idempotent[port-cpu-float32]\nloss_[port-gpu]\n")
    result = fake.runpytest("--vaespec-skip", "skip.txt",
                            "--vaespec-xfail", "xfail.txt", "-rsx")
    result.assert_outcomes(passed=4, skipped=4, xfailed=1)  # the one failing law is the xfailed one
    out = result.stdout.str()
    assert "skip.txt:4: 'no_such_law' matches no law" in out
    assert "xfail.txt:2: [port-gpu] matches no selected backend" in out
    assert "listed in skip.txt:2" in out and "listed in xfail.txt:1" in out


def test_malformed_or_missing_files_are_usage_errors(fake):
    fake.makefile(".txt", bad="kl_[port\n")
    result = fake.runpytest("--vaespec-skip", "bad.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "bad.txt:1: expected 'law_prefix' or 'law_prefix[backend_prefix]', got 'kl_[port'" in result.stderr.str()
    result = fake.runpytest("--vaespec-xfail", "absent.txt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--vaespec-xfail absent.txt: cannot read the file" in result.stderr.str()


def test_json_report_and_junit_properties(fake):
    fake.makefile(".txt", xfail="kl_additive\n")
    # -rN: no short summary, which pytest prints untruncated (the reason once more per test) when CI is set
    result = fake.runpytest("--vaespec-xfail", "xfail.txt", "-rN",
                            "--vaespec-report", "report.json", "--junitxml", "report.xml")
    result.assert_outcomes(passed=6, failed=3)  # strict: both listed kl_additive tests passed after all
    assert result.stdout.str().count("[XPASS(strict)] listed in xfail.txt:1") == 2
    rows = json.loads((fake.path / "report.json").read_text())["results"]
    assert len(rows) == 8  # law tests only
    by = {(r["law"], r["dtype"]): r for r in rows}
    assert by[("quantize_idempotent", "float32")] | {"message": ""} == {
        "law": "quantize_idempotent", "backend": "port", "device": "cpu", "dtype": "float32", "examples": 3,
        "worst_ratio": 2.5, "verdict": "FAIL", "message": "", "outcome": "failed"}
    assert by[("kl_additive_over_latent", "float64")] | {"message": ""} == {
        "law": "kl_additive_over_latent", "backend": "port", "device": "cpu", "dtype": "float64", "examples": 3,
        "worst_ratio": 0.25, "verdict": "xpass", "message": "", "outcome": "failed"}
    assert by[("kl_nonnegative", "float64")]["worst_ratio"] == 0.25
    cases = ET.parse(fake.path / "report.xml").getroot().iter("testcase")
    props = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert props["test_law[quantize_idempotent-port-cpu-float32]"]["vaespec_verdict"] == "FAIL"
    assert props["test_law[quantize_idempotent-port-cpu-float32]"]["vaespec_worst_ratio"] == "2.5"
    assert props["test_unrelated"] == {}


def test_xdist_workers_merge_into_one_report(fake):
    """`-n 2`: every worker's rows reach the controller's one report, in collection order, as a serial run."""
    fake.makefile(".txt", xfail="kl_additive\n")
    options = ["--vaespec-xfail", "xfail.txt", "-p", "no:randomly"]
    fake.runpytest_subprocess(*options, "--vaespec-report", "serial.json").assert_outcomes(passed=6, failed=3)
    fake.runpytest_subprocess(*options, "-n", "2", "--dist", "loadgroup", "--vaespec-report", "parallel.json"
                              ).assert_outcomes(passed=6, failed=3)
    serial = json.loads((fake.path / "serial.json").read_text())["results"]
    assert len(serial) == 8 and json.loads((fake.path / "parallel.json").read_text())["results"] == serial


def test_real_suite_against_the_independent_port(tmp_path):
    """The documented command, on a few laws: the real conftest, the real test_law, the real port, on an xdist
    worker. The worker runs a law's backends together, one `run_laws` per law as a serial run does (xdist resets a
    worker's `dist` option to "no"; the choice is read from `loadgroup`), and the controller writes the report (the
    merge of two workers' rows: test_xdist_workers_merge_into_one_report). One worker: a second costs a start-up."""
    (tmp_path / "known.txt").write_text("kl_eq_monte_carlo[independent-cpu-bfloat16]\nkl_zero\n")
    (tmp_path / "counting.py").write_text(COUNTING_PLUGIN)
    calls = tmp_path / "calls.jsonl"
    env = {**os.environ, "VAESPEC_PROFILE": "dev", "PYTHONPATH": str(tmp_path), "VAESPEC_COUNT_FILE": str(calls)}
    command = [sys.executable, "-m", "pytest", "--pyargs", "vaespec.proofs_tests.test_laws", "-q",
               "-k", "kl_ or quantize_output", "-p", "counting", "-n", "1", "--dist", "loadgroup",
               "--vaespec-backend", "vaespec.proofs_tests.ports.independent:backends",
               "--vaespec-xfail", str(tmp_path / "known.txt"), "--vaespec-report", str(tmp_path / "report.json")]
    done = subprocess.run(command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    rows = json.loads((tmp_path / "report.json").read_text())["results"]
    verdicts = {(r["law"], r["dtype"]): r["verdict"] for r in rows}
    # strict xfail: the listed laws the port passes fail the run as XPASS(strict), and nothing else fails
    xpassed = sum(v == "xpass" for v in verdicts.values())
    assert done.returncode == 1 and f"{xpassed} failed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert {v for v in verdicts.values()} <= {"pass", "n/a", "xpass", "skipped"}, verdicts
    assert {r["backend"] for r in rows} == {"independent"}
    assert verdicts[("kl_nonnegative", "float32")] == "pass"
    assert verdicts[("kl_eq_monte_carlo", "bfloat16")] == "xpass"  # listed, but the port passes it
    assert verdicts[("kl_zero_iff_standard_normal", "float64")] == "xpass"
    assert verdicts[("quantize_output_is_codebook_row", "bfloat16")] == "pass"
    # n/a rows (a chapter the backend does not declare in that dtype, e.g. "bayes" in bfloat16) check nothing
    assert all(r["worst_ratio"] is not None and r["examples"] > 0 for r in rows if r["verdict"] != "n/a")
    runs = [json.loads(line) for line in calls.read_text().splitlines()]
    assert runs and all(on_worker for *_, on_worker in runs), runs
    assert [name for name, *_ in runs] == ["run_laws"] * len(runs), runs  # never one backend alone
    assert sorted(law for _, law, *_ in runs) == sorted({r["law"] for r in rows}), runs  # one run per law
    assert all(sorted(dtypes) == sorted({r["dtype"] for r in rows}) for _, _, dtypes, _ in runs), runs


def test_report_keeps_law_tests_that_broke_before_the_runner(pytester):
    pytester.makepyfile(test_broken=BROKEN_SUITE)
    pytester.runpytest("--vaespec-report", "report.json").assert_outcomes(errors=1)
    (row,) = json.loads((pytester.path / "report.json").read_text())["results"]
    assert row["verdict"] == "ERROR" and "no law runner today" in row["message"]
