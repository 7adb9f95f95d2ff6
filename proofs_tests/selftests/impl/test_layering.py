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


# ----------------------------------------------------------------------------- structure (issue 11)
PACKAGE = Path(vaespec.impl.__file__).parent


class Tree:
    """The modules of a package folder named `vaespec.impl` (the real one, or a made-up one in a test)."""

    def __init__(self, root: Path):
        self.root, self.files = root, sorted(root.rglob("*.py"))
        self.modules = {self.name(p) for p in self.files}

    def name(self, path: Path) -> str:
        parts = ("vaespec", "impl", *path.relative_to(self.root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    def resolve(self, path: Path, node: ast.ImportFrom) -> str:
        """The absolute module an ImportFrom names (relative ones resolved against `path`'s package)."""
        if node.level == 0:
            return node.module or ""
        package = self.name(path).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        return ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))

    def imports(self, path: Path) -> set[str]:
        """The impl modules `path` imports, lazy imports inside functions included (`from pkg import name` counts
        as importing `pkg.name` when that is a module)."""
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in self.modules}
            elif isinstance(node, ast.ImportFrom):
                module = self.resolve(path, node)
                for alias in node.names:
                    target = f"{module}.{alias.name}"
                    found |= {target} if target in self.modules else {module} & self.modules
        return found - {self.name(path)}

    def private_imports(self) -> list[str]:
        return [f"{path.name}:{node.lineno} imports {a.name}" for path in self.files
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and self.resolve(path, node).startswith("vaespec")
                for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]

    def private_attributes(self) -> list[str]:
        bad = []
        for path in self.files:
            tree = ast.parse(path.read_text())
            modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                       for alias in node.names if f"{self.resolve(path, node)}.{alias.name}" in self.modules}
            modules |= {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                        for alias in node.names if alias.name in self.modules}
            bad += [f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}" for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_") and not node.attr.startswith("__")]
        return bad

    def cycles(self) -> list[list[str]]:
        graph = {self.name(p): sorted(self.imports(p)) for p in self.files}
        cycles: list[list[str]] = []
        state: dict[str, str] = {}

        def visit(node, stack):
            state[node] = "open"
            for succ in graph.get(node, ()):
                if state.get(succ) == "open":
                    cycles.append(stack[stack.index(succ):] + [succ])
                elif succ not in state:
                    visit(succ, [*stack, succ])
            state[node] = "done"

        for node in sorted(graph):
            if node not in state:
                visit(node, [node])
        return cycles


IMPL = Tree(PACKAGE)


def test_no_private_names_are_imported_across_impl_modules():
    """What several modules share has a public name (in a named internal module such as `_checks`)."""
    assert IMPL.private_imports() == []


def test_no_private_attributes_of_impl_modules_are_used_across_them():
    assert IMPL.private_attributes() == []


def test_impl_modules_import_no_cycle():
    """Counting imports inside functions too: a function-level import that breaks a cycle is still one."""
    assert "vaespec.impl.registry" in IMPL.imports(PACKAGE / "backend.py")  # the scan sees the imports
    assert IMPL.cycles() == []


def test_the_structure_checks_find_what_they_look_for(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "a.py").write_text("from . import b\nfrom .b import _hidden\n")
    (tmp_path / "b.py").write_text("def f():\n    from .sub import c\n    return c._private\n")
    (tmp_path / "sub" / "__init__.py").write_text("")
    (tmp_path / "sub" / "c.py").write_text("from ..a import x\n")
    tree = Tree(tmp_path)
    assert tree.private_imports() == ["a.py:2 imports _hidden"]
    assert tree.private_attributes() == ["b.py:3 uses c._private"]
    assert tree.cycles() == [["vaespec.impl.a", "vaespec.impl.b", "vaespec.impl.sub.c", "vaespec.impl.a"]]


def test_impl_has_no_string_dispatch_on_function_names():
    """No `if function == "…"` chains, `function in (…)` tests or `{"name": …}` tables: the bodies register
    under their names (vaespec.impl.registry). Counted as `python -m benchmarks.dispatch_sites` counts."""
    dispatch = pytest.importorskip("benchmarks.dispatch_sites", reason="benchmarks/ is in the source tree only")
    names = dispatch.function_names()
    found = [f"{path.relative_to(PACKAGE)}:{line}" for path in IMPL.files for line in dispatch.sites(path, names)]
    assert not found, found
