"""The independent port (`vaespec.proofs_tests.ports.independent`) passes every law of the chapters it
declares: evidence that the suite accepts correct implementations it was not written against.

The port is written in another style from `vaespec.impl` (functional torch, torch.distributions,
torch.cdist, torch.func.vjp) and imports neither `vaespec.impl` nor `vaespec.reference`; this
file checks both facts, then runs every law of its chapters through the law runner at the `ci`
profile (float64: the tightest bounds; float32: the common port dtype). bfloat16 and CUDA are
covered by `vaespec check --backend vaespec.proofs_tests.ports.independent:backends`.

Each law's examples are drawn once for both dtypes and for the law suite's own backends (`test_laws`): the
port's tests take their rows from the suite's `law_results` fixture, whose `run_laws` checks every backend of
the law's tests on the same examples, with verdicts those of each backend checked alone (at the suite's profile:
`ci` in CI). A law's tests here and in `test_laws` share its xdist group, so `--dist loadgroup` runs them on one
worker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vaespec.proofs_tests.check.backends import check_backend, load_backends
from vaespec.proofs_tests.ports import independent
from vaespec.spec.laws import LAWS

PORTS = Path(independent.__file__).parent
LAWS_OF_PORT = sorted(name for name, law in LAWS.items() if law.chapter in independent.CHAPTERS)
DTYPES = ("float64", "float32")
PORTS_BY_DTYPE = [independent.IndependentPort("cpu", d) for d in DTYPES]


def test_port_declares_every_chapter_and_provides_it():
    assert set(independent.CHAPTERS) == {"vae", "vq", "estimators", "bayes", "quantizers"}
    backends = load_backends("vaespec.proofs_tests.ports.independent:backends")
    assert {"float64", "float32", "bfloat16"} <= {b.dtype for b in backends}
    for backend in backends:
        check_backend(backend)  # raises ConfigError naming anything missing from its chapters


@pytest.mark.parametrize("module", sorted(p.name for p in PORTS.glob("*.py")))
def test_port_imports_neither_impl_nor_reference(module):
    tree = ast.parse((PORTS / module).read_text(encoding="utf-8"))
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    leaks = sorted(m for m in imported if m.startswith(("vaespec.impl", "vaespec.reference")))
    assert not leaks, f"{module} imports {leaks}: the port must be independent of vaespec.impl and the reference"


@pytest.mark.parametrize("backend", PORTS_BY_DTYPE, ids=DTYPES)  # the suite's conftest then groups by law
@pytest.mark.parametrize("law", LAWS_OF_PORT)
def test_port_satisfies_law(law, backend, law_results):
    result = law_results(law, backend)
    assert result.verdict == "pass", \
        f"{law} [{result.verdict}] on the independent port ({backend.dtype}):\n{result.message}"
    assert result.examples > 0, f"{law}: no example was checked"
