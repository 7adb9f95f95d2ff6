"""The independent port (`vaespec.proofs_tests.ports.independent`) passes every law of the chapters it
declares: evidence that the suite accepts correct implementations it was not written against.

The port is written in another style from `vaespec.impl` (functional torch, torch.distributions,
torch.cdist, torch.func.vjp) and imports neither `vaespec.impl` nor `vaespec.reference`; this
file checks both facts, then runs every law of its chapters through the law runner at the `ci`
profile (float64: the tightest bounds; float32: the common port dtype). bfloat16 and CUDA are
covered by `vaespec check --backend vaespec.proofs_tests.ports.independent:backends`.

Each law's examples are drawn once for both dtypes (`run_laws`, as the law suite's own tests do): its
verdicts are those of each dtype checked alone. The two tests of a law share an xdist group, so
`--dist loadgroup` runs them on one worker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vaespec.proofs_tests.check.backends import check_backend, load_backends
from vaespec.proofs_tests.check.runner import LawResult, run_laws
from vaespec.proofs_tests.ports import independent
from vaespec.proofs_tests.strategies.profiles import profile_settings
from vaespec.spec.laws import LAWS

PORTS = Path(independent.__file__).parent
LAWS_OF_PORT = sorted(name for name, law in LAWS.items() if law.chapter in independent.CHAPTERS)
DTYPES = ("float64", "float32")
_RESULTS: dict[str, dict[str, LawResult]] = {}


def _port_result(law: str, dtype: str) -> LawResult:
    if law not in _RESULTS:
        ports = [independent.IndependentPort("cpu", d) for d in DTYPES]
        _RESULTS[law] = dict(zip(DTYPES, run_laws(law, ports, profile_settings("ci")), strict=True))
    return _RESULTS[law][dtype]


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("law", [pytest.param(law, marks=pytest.mark.xdist_group(f"port:{law}"))
                                 for law in LAWS_OF_PORT])
def test_port_satisfies_law(law, dtype):
    result = _port_result(law, dtype)
    assert result.verdict == "pass", f"{law} [{result.verdict}] on the independent port ({dtype}):\n{result.message}"
    assert result.examples > 0, f"{law}: no example was checked"
