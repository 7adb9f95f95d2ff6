"""The layer rule: impl/ imports only torch, numpy, the standard library and vaespec.spec."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import vaespec.impl

IMPL_FILES = sorted(Path(vaespec.impl.__file__).parent.glob("*.py"))
ALLOWED_ROOTS = {"torch", "numpy"} | set(sys.stdlib_module_names)


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:  # relative imports stay in impl
            names.append(node.module)
    return names


def test_impl_files_were_found():
    assert {p.name for p in IMPL_FILES} >= {"backend.py", "functional.py", "modules.py"}


@pytest.mark.parametrize("path", IMPL_FILES, ids=lambda p: p.name)
def test_imports_follow_the_layer_rule(path):
    bad = [name for name in _imports(path)
           if name.split(".")[0] not in ALLOWED_ROOTS and not (name + ".").startswith("vaespec.spec.")]
    assert not bad, f"{path.name} imports {bad}"
