"""Layer import rules, enforced by parsing every module of spec/, reference/ and impl/.

    spec       stdlib, numpy, jaxtyping (the shape annotations), vaespec.spec
    reference  stdlib, numpy, vaespec.spec, vaespec.reference
    impl       stdlib, numpy, torch, vaespec.spec, vaespec.impl

Every import statement counts, including those inside functions and `if TYPE_CHECKING:`
blocks: a lazy `import torch` in the reference still makes it depend on torch.
Relative imports are resolved as Python resolves them: the three folders install as
`vaespec.spec`, `vaespec.reference` and `vaespec.impl`, so `from ..impl import x` in
reference/vae.py means `vaespec.impl.x`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vaespec.impl
import vaespec.reference
import vaespec.spec

ROOTS = {name: Path(module.__file__).parent
         for name, module in (("spec", vaespec.spec), ("reference", vaespec.reference), ("impl", vaespec.impl))}

ALLOWED = {
    "spec": ("numpy", "jaxtyping", "vaespec.spec"),
    "reference": ("numpy", "vaespec.spec", "vaespec.reference"),
    "impl": ("numpy", "torch", "vaespec.spec", "vaespec.impl"),
}
# `vaespec.impl.train` (the `vaespec train` command) may also use the optional `train` extra: scikit-learn's
# bundled digits, safetensors checkpoints, matplotlib plots. Nothing else in impl may, so `import vaespec.impl`
# never needs them.
TRAIN_EXTRA = ("sklearn", "safetensors", "matplotlib")
# `vaespec.impl.bayes` (the `vaespec bayes` command) may use the `bayes` extra, Pyro, besides the train extra's
# data, checkpoints and plots it reuses.
BAYES_EXTRA = (*TRAIN_EXTRA, "pyro")
# The rules named one by one; implied by ALLOWED, checked separately so a too-wide
# allow-list cannot hide them.
FORBIDDEN = {
    "spec": ("torch", "vaespec.reference", "vaespec.impl", "vaespec.proofs_tests"),
    "reference": ("torch", "vaespec.impl", "vaespec.proofs_tests"),
    "impl": ("vaespec.reference", "vaespec.proofs_tests"),
}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def package_of(layer: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, e.g. ['vaespec', 'reference']."""
    relative = path.relative_to(ROOTS[layer]).with_suffix("")
    return ["vaespec", layer, *relative.parts[:-1]]


def imported_modules(source: str, package: list[str]) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in `source`.

    `from P import a, b` yields P.a and P.b when P is a package of the vaespec
    namespace (so `from vaespec import impl` is caught) and P otherwise.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    found.append((node.lineno, "." * node.level + (node.module or "") + " (beyond the top level)"))
                    continue
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            if module == "vaespec" or (node.level and not node.module):
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def violations(layer: str, source: str, package: list[str], filename: str) -> list[str]:
    """A message for each import of `source` that breaks `layer`'s rules."""
    messages = []
    extra = {"train": TRAIN_EXTRA, "bayes": BAYES_EXTRA}.get(package[2], ()) if package[:2] == ["vaespec", "impl"] \
        and len(package) > 2 else ()
    for line, module in imported_modules(source, package):
        top = module.split(".")[0]
        stdlib = top in sys.stdlib_module_names and top != "vaespec"
        allowed = stdlib or any(_within(module, prefix) for prefix in (*ALLOWED[layer], *extra))
        forbidden = [prefix for prefix in FORBIDDEN[layer] if _within(module, prefix)]
        if forbidden or not allowed:
            messages.append(f"{filename}:{line}: {layer} imports {module!r}; {layer} may import only the "
                            f"standard library and {', '.join(ALLOWED[layer])}")
    return messages


def layer_files():
    return [(layer, path) for layer, root in ROOTS.items() for path in sorted(root.rglob("*.py"))]


def test_every_layer_folder_is_found_and_parsed():
    files = {(layer, path.relative_to(ROOTS[layer]).as_posix()) for layer, path in layer_files()}
    for expected in [("spec", "contract.py"), ("spec", "errors.py"), ("reference", "vae.py"),
                     ("reference", "registry.py"), ("impl", "backend.py"), ("impl", "__init__.py")]:
        assert expected in files, f"{expected} not found under {ROOTS}"


@pytest.mark.parametrize("layer", sorted(ROOTS))
def test_layer_imports_only_what_its_rules_allow(layer):
    messages = []
    for file_layer, path in layer_files():
        if file_layer == layer:
            messages += violations(layer, path.read_text(encoding="utf-8"), package_of(layer, path), str(path))
    assert not messages, "\n".join(messages)


@pytest.mark.parametrize("layer, source, package, offending", [
    ("spec", "import torch", ["vaespec", "spec"], "torch"),
    ("spec", "def f():\n    import torch.nn as nn", ["vaespec", "spec"], "torch.nn"),
    ("spec", "from vaespec.reference import vae", ["vaespec", "spec"], "vaespec.reference"),
    ("spec", "from vaespec import impl", ["vaespec", "spec"], "vaespec.impl"),
    ("spec", "import scipy.special", ["vaespec", "spec"], "scipy.special"),
    ("reference", "from ..impl import functional", ["vaespec", "reference"], "vaespec.impl"),
    ("reference", "from .. import proofs_tests", ["vaespec", "reference"], "vaespec.proofs_tests"),
    ("reference", "from torch import nn", ["vaespec", "reference"], "torch"),
    ("reference", "from ... import x", ["vaespec", "reference"], "beyond the top level"),
    ("impl", "from ..reference import vae", ["vaespec", "impl"], "vaespec.reference"),
    ("impl", "import matplotlib.pyplot", ["vaespec", "impl"], "matplotlib.pyplot"),  # only impl.train may
    ("impl", "from ...reference import vae", ["vaespec", "impl", "train"], "vaespec.reference"),
    ("impl", "from ...reference import vae", ["vaespec", "impl", "sub"], "vaespec.reference"),
    ("impl", "import vaespec.proofs_tests.strategies.vae", ["vaespec", "impl"], "vaespec.proofs_tests"),
    ("impl", "import pyro.infer", ["vaespec", "impl"], "pyro.infer"),  # only impl.bayes may
    ("impl", "import pyro", ["vaespec", "impl", "train"], "pyro"),
])
def test_checker_flags_forbidden_imports(layer, source, package, offending):
    messages = violations(layer, source, package, "f.py")
    assert len(messages) == 1 and offending in messages[0] and messages[0].startswith("f.py:"), messages


@pytest.mark.parametrize("layer, source, package", [
    ("spec", "from __future__ import annotations\nimport math, typing\nimport numpy as np", ["vaespec", "spec"]),
    ("spec", "from .errors import ShapeError\nfrom . import shapes", ["vaespec", "spec"]),
    ("reference", "from ..spec.shapes import check_array\nfrom vaespec.spec import errors", ["vaespec", "reference"]),
    ("reference", "from . import mlp, vae\nfrom .activations import get_activation", ["vaespec", "reference"]),
    ("impl", "import torch\nimport torch.nn.functional as F\nfrom ..spec import keys", ["vaespec", "impl"]),
    ("impl", "from .. import spec\nfrom .._checks import x", ["vaespec", "impl", "sub"]),
])
def test_checker_accepts_allowed_imports(layer, source, package):
    assert violations(layer, source, package, "f.py") == []


def test_relative_imports_resolve_as_python_does():
    assert imported_modules("from . import mlp, vae", ["vaespec", "reference"]) == [
        (1, "vaespec.reference.mlp"), (1, "vaespec.reference.vae")]
    assert imported_modules("from .activations import f", ["vaespec", "reference"]) == [
        (1, "vaespec.reference.activations")]
    assert imported_modules("\n\nfrom ..spec.keys import Key", ["vaespec", "impl"]) == [(3, "vaespec.spec.keys")]
    assert imported_modules("from .. import spec", ["vaespec", "impl", "sub"]) == [(1, "vaespec.impl.spec")]


SNIPPET = textwrap.dedent("""
    import importlib, pkgutil, sys
    import vaespec.spec, vaespec.reference
    for package in (vaespec.spec, vaespec.reference):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)
    loaded = sorted(m for m in sys.modules
                    if m.split(".")[0] == "torch" or m.startswith(("vaespec.impl", "vaespec.proofs_tests")))
    print("modules:", len([m for m in sys.modules if m.startswith("vaespec.")]))
    print("loaded:", loaded)
""")


def test_spec_and_reference_import_without_torch_at_runtime():
    result = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, f"importing vaespec.spec and vaespec.reference loaded:\n{result.stdout}"
    count = int(result.stdout.split("modules:")[1].split()[0])
    assert count >= 10, f"only {count} vaespec modules were imported; the walk found too little\n{result.stdout}"


def _package_tree():
    """Every module of the installed vaespec package but its own unit tests, named as Python names them."""
    from .impl.test_layering import Tree

    root = Path(vaespec.impl.__file__).parent.parent  # not resolved: the install links into the source tree

    class Package(Tree):
        def __init__(self, root: Path):
            self.root = root
            self.files = [p for p in sorted(root.rglob("*.py")) if "selftests" not in p.relative_to(root).parts]
            self.modules = {self.name(p) for p in self.files}

        def name(self, path: Path) -> str:
            parts = ("vaespec", *path.relative_to(self.root).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    return Package(root)


def test_no_private_names_cross_modules_and_no_cycles_anywhere_in_the_package():
    """Issue 11's structure rules for every layer (the impl tests check impl alone): what modules share has a
    public name, and no module imports itself back, function-level imports included."""
    tree = _package_tree()
    assert len(tree.files) > 100 and "vaespec.proofs_tests.laws.memo" in tree.modules  # the scan sees the package
    assert tree.private_imports() == []
    assert tree.private_attributes() == []
    assert tree.cycles() == []
