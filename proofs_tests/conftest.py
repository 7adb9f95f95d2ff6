"""vaespec's own suite: backend parametrization and the Hypothesis profile (the JSON report is the plugin's)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from vaespec.proofs_tests.check.backends import label
from vaespec.proofs_tests.plugin import selected_backends
from vaespec.proofs_tests.strategies import profiles  # noqa: F401  (registers the vaespec-* profiles)


def pytest_configure(config):
    config.addinivalue_line("markers", "xdist_group(name): pytest-xdist's --dist loadgroup keeps a group on one worker")
    # One torch intra-op thread, as `vaespec check`: the suite's tensors are tiny, and idle OpenMP workers
    # spin; with two threads on a loaded 2-core machine one law's shared run took 142 s instead of ~6 s.
    import torch

    torch.set_num_threads(1)
    # CI selects the derandomized profile; VAESPEC_PROFILE overrides; --hypothesis-profile wins over both.
    if not config.getoption("--hypothesis-profile", default=None):
        name = os.environ.get("VAESPEC_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
        settings.load_profile(f"vaespec-{name}")


def pytest_collection(session):
    # Every declared function has its reference entry, Torch body, strategy, port body and docs entry, or the
    # run stops here naming what lacks (`completeness`): a gap found at collection, not as a KeyError in a law.
    from vaespec.proofs_tests.laws import completeness

    problems = completeness.missing()
    if problems:
        raise pytest.UsageError("incomplete contract functions (vaespec.proofs_tests.laws.completeness):\n  "
                                + "\n  ".join(problems))


def _argnames(names) -> list[str]:
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


def pytest_generate_tests(metafunc):
    # A test that names its own backends (the independent port's) keeps them.
    named = any("backend" in _argnames(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if "backend" in metafunc.fixturenames and not named:
        backends = selected_backends(metafunc.config)
        metafunc.parametrize("backend", backends, ids=[label(b) for b in backends], scope="session")


@pytest.fixture
def record_law_result():
    """Tests hand their LawResult dicts here; the plugin (`--vaespec-report`) intercepts and writes them."""
    return lambda result: None


def _law_items(items, unskipped: bool = False):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "law" in params and "backend" in params and not (unskipped and item.get_closest_marker("skip")):
            yield item, params["law"], params["backend"]


def pytest_collection_modifyitems(config, items):
    # Under `pytest -n N --dist loadgroup` every backend of a law runs on one worker, which draws the
    # law's examples once for all of them (`law_results`).
    for item, law, _ in _law_items(items):
        item.add_marker(pytest.mark.xdist_group(law))


@pytest.fixture(scope="session")
def law_results(request):
    """`result(law, backend)`: the LawResult of `law` on `backend`. The first test of a law runs
    `check.runner.run_laws` over every backend a selected, unskipped test of that law runs on (so the
    examples are drawn once for all), the others take their row from it. An xdist worker not
    grouped by law (`--dist load`) runs each test alone instead: its peers may hold the other rows."""
    from vaespec.proofs_tests.check.runner import run_law, run_laws

    config = request.config
    # On a worker xdist resets `dist` to "no" and keeps the controller's choice as `loadgroup` (remote.py).
    shared = not hasattr(config, "workerinput") or bool(config.getoption("loadgroup", default=False))
    wanted: dict[str, list] = {}
    for _, law, backend in _law_items(request.session.items, unskipped=True):
        if all(b is not backend for b in wanted.setdefault(law, [])):
            wanted[law].append(backend)
    done: dict[str, list] = {}

    def result(law, backend):
        if not shared:
            return run_law(law, backend, settings())
        if law not in done:
            backends = wanted.get(law, [])
            backends = backends if any(b is backend for b in backends) else [*backends, backend]
            done[law] = list(zip(backends, run_laws(law, backends, settings())))
        return next(r for b, r in done[law] if b is backend)
    return result
