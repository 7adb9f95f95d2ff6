"""pytest plugin (entry point `vaespec`): run vaespec's law suite against any Python-reachable backend.

    pytest --pyargs vaespec.proofs_tests.test_laws --vaespec-backend mypkg.port:backends \\
        --vaespec-xfail known.txt --vaespec-skip slow.txt --vaespec-report report.json --junitxml report.xml

Options:
- `--vaespec-backend PKG.MOD:OBJ` (repeatable): the backends `test_law` runs on; vaespec's own
  suite falls back to the reference and the Torch implementation when none is named.
- `--vaespec-skip FILE`, `--vaespec-xfail FILE`: law tests a port knowingly cannot run, or
  knowingly fails. One entry per line, `#` starts a comment: `law_prefix` or
  `law_prefix[backend_prefix]`, both prefixes (`kl_` matches every law starting with it;
  `[independent-cpu-bfloat16]` one backend label, `name-device-dtype`). An entry that matches
  no law, or whose backend part matches no selected backend, is stale: a warning names it.
  xfail is strict, as `vaespec check --xfail` is: a law that passes after all is an XPASS(strict), a
  failed test (and `xpass` in the report), so a stale xfail entry fails the run.
  The parser is `check.expectations` (`vaespec check --skip/--xfail` reads the same files).
- A law that is n/a for a backend (a chapter or function it does not declare, `laws.declared`) is
  skipped with its reason, so pytest's summary does not count it as passed; the report keeps `n/a`.
- `--vaespec-fixed-shapes`: every size drawn from a small fixed set (docs/porting.md).
- `--vaespec-report FILE`: a JSON report, one row per law × backend × device × dtype with the
  verdict (`pass`, `FAIL`, `ERROR`, `n/a`, `skipped`, `xfail`, `xpass`), the worst error ÷
  tolerance and the examples checked. With pytest's `--junitxml`, each law test's properties
  carry the same fields. Under pytest-xdist (`-n N --dist loadgroup`) the workers' rows are merged
  into one report, in collection order.

Inert until asked: with none of these options it registers the options and nothing else, and
its hooks touch only tests that take vaespec's `law` and `backend` parameters, so installing
vaespec changes no other project's test run.
"""

from __future__ import annotations

import json
import warnings

import pytest

from .check.expectations import Entry, first_match, stale
from .check.expectations import read_entries as _read_entries


class StaleEntryWarning(UserWarning):
    """A skip/xfail entry that matches no law or no selected backend."""


def pytest_addoption(parser):
    group = parser.getgroup("vaespec", "vaespec conformance suite")
    group.addoption("--vaespec-backend", action="append", default=[], metavar="PKG.MOD:OBJ",
                    help="check this backend (repeatable); default: the reference and the Torch implementation")
    group.addoption("--vaespec-report", default=None, metavar="FILE",
                    help="write a JSON report (law × backend × device × dtype → verdict, worst error ratio)")
    group.addoption("--vaespec-skip", action="append", default=[], metavar="FILE",
                    help="skip the law tests listed in FILE (law_prefix or law_prefix[backend_prefix] per line)")
    group.addoption("--vaespec-xfail", action="append", default=[], metavar="FILE",
                    help="expect the law tests listed in FILE to fail (same format as --vaespec-skip)")
    group.addoption("--vaespec-fixed-shapes", action="store_true", default=False,
                    help="draw every size from a small fixed set (for ports that compile per shape)")


def selected_backends(config) -> list:
    """The backends named with --vaespec-backend, or the defaults when none is named."""
    from .check.backends import default_backends, load_backends

    specs = config.getoption("--vaespec-backend", default=[]) or []
    if not specs:
        return default_backends()
    return [b for spec in specs for b in load_backends(spec)]


def read_entries(path: str, kind: str) -> list[Entry]:
    """Parse a skip/xfail file (`check.expectations.read_entries`); a problem is a pytest usage error."""
    from vaespec.spec.errors import ConfigError

    try:
        return _read_entries(path, kind)
    except ConfigError as error:
        raise pytest.UsageError(str(error)) from None


def _law_test(item):
    """(law, backend) of a vaespec law test, or None for any other test."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "law" in params and "backend" in params:
        return params["law"], params["backend"]
    return None


def _label(backend) -> str:
    return f"{getattr(backend, 'name', type(backend).__name__)}-{backend.device}-{backend.dtype}"


class _Expectations:
    """Marks law tests listed in skip/xfail files; warns about stale entries."""

    def __init__(self, entries: list[Entry]):
        self.entries = entries

    def pytest_collection_modifyitems(self, config, items):
        labels = set()
        for item in items:
            found = _law_test(item)
            if found is None:
                continue
            law, backend = found
            labels.add(_label(backend))
            entry = first_match(self.entries, law, _label(backend))
            if entry is not None:
                reason = f"listed in {entry.where}"
                item.add_marker(pytest.mark.skip(reason=reason) if entry.kind == "skip"
                                else pytest.mark.xfail(reason=reason, strict=True))
        for line in stale(self.entries, labels):
            warnings.warn(StaleEntryWarning(line), stacklevel=1)


class _Report:
    """Collects each law test's LawResult and pytest outcome; writes the JSON report at the end.

    The row travels on the test report (`report.vaespec_row`), so under pytest-xdist the controller
    merges every worker's rows into one report, in collection order, and only it writes the file."""

    def __init__(self, path: str):
        self.path, self.rows, self.merged = path, {}, {}

    def pytest_collection_modifyitems(self, items):
        for index, item in enumerate(items):
            found = _law_test(item)
            if found:
                law, backend = found
                self.rows[id(item)] = {"law": law, "backend": getattr(backend, "name", type(backend).__name__),
                                          "device": str(backend.device), "dtype": str(backend.dtype),
                                          "examples": 0, "worst_ratio": None, "verdict": "not run", "message": "",
                                          "index": index}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        # test_law hands its LawResult to the `record_law_result` fixture; keep a copy on the way.
        record = pyfuncitem.funcargs.get("record_law_result")
        if record is not None and id(pyfuncitem) in self.rows:
            row = self.rows[id(pyfuncitem)]

            def tee(result: dict):
                row.update({k: result[k] for k in ("examples", "worst_ratio", "verdict", "message") if k in result})
                for key in ("verdict", "worst_ratio", "examples"):
                    pyfuncitem.user_properties.append((f"vaespec_{key}", result.get(key)))
                return record(result)
            pyfuncitem.funcargs["record_law_result"] = tee
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if id(item) in self.rows:  # by identity: loadgroup renames node ids (their hash) after collection
            outcome.get_result().vaespec_row = dict(self.rows[id(item)])

    def pytest_runtest_logreport(self, report):
        carried = getattr(report, "vaespec_row", None)
        if carried is None or not (report.when == "call" or report.skipped or report.failed):
            return
        row = self.merged.setdefault(report.nodeid, {})
        row.update(carried)
        if report.failed and row["verdict"] == "not run":  # it broke before the law runner could say why
            row["verdict"], row["message"] = "ERROR", str(report.longrepr)[-2000:]
        elif hasattr(report, "wasxfail"):
            row["verdict"] = "xfail" if report.skipped else "xpass"
            row["message"] = row["message"] or report.wasxfail
        elif report.failed and str(report.longrepr).startswith("[XPASS(strict)]"):  # listed, yet it held
            row["verdict"], row["message"] = "xpass", row["message"] or str(report.longrepr)
        elif report.skipped and row["verdict"] != "n/a":  # an n/a law is skipped with its reason: keep n/a
            row["verdict"] = "skipped"
            row["message"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        row["outcome"] = report.outcome

    @pytest.hookimpl(trylast=True)  # after conftest.py's own report, which this one supersedes
    def pytest_sessionfinish(self, session):
        if not self.path or hasattr(session.config, "workerinput"):  # junit only, or an xdist worker
            return
        rows = sorted((row for row in self.merged.values() if row["verdict"] != "not run"), key=lambda r: r["index"])
        with open(self.path, "w", encoding="utf-8") as handle:
            json.dump({"results": [{k: v for k, v in row.items() if k != "index"} for row in rows]}, handle, indent=1)


def pytest_configure(config):
    if config.getoption("--vaespec-fixed-shapes", default=False):
        from .strategies import sizes

        sizes.use_fixed_shapes(True)
    entries = [e for kind in ("skip", "xfail") for path in config.getoption(f"--vaespec-{kind}", default=[]) or []
               for e in read_entries(path, kind)]
    if entries:
        config.pluginmanager.register(_Expectations(entries), "vaespec-expectations")
    report = config.getoption("--vaespec-report", default=None)
    if report or getattr(config.option, "xmlpath", None):
        config.pluginmanager.register(_Report(report), "vaespec-report")
