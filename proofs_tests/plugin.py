"""pytest plugin (entry point `vaespec`): adds `--vaespec-backend pkg.mod:obj`.

Inert until a backend is named: it registers the option and nothing else, so
installing vaespec changes no other project's test run. vaespec's own suite
(`pytest --pyargs vaespec.proofs_tests`) reads the option through
`selected_backends` and then runs every law against the named backends instead of
the defaults.
"""

from __future__ import annotations


def pytest_addoption(parser):
    group = parser.getgroup("vaespec", "vaespec conformance suite")
    group.addoption("--vaespec-backend", action="append", default=[], metavar="PKG.MOD:OBJ",
                    help="check this backend (repeatable); default: the reference and the Torch implementation")
    group.addoption("--vaespec-report", default=None, metavar="FILE",
                    help="write a JSON report (law × backend × device × dtype → verdict, worst error ratio)")


def selected_backends(config) -> list:
    """The backends named with --vaespec-backend, or the defaults when none is named."""
    from .backends import default_backends, load_backends

    specs = config.getoption("--vaespec-backend", default=[]) or []
    if not specs:
        return default_backends()
    return [b for spec in specs for b in load_backends(spec)]
