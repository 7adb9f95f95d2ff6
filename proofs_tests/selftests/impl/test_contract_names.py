"""impl functions that share a contract function's name but not its arguments say so, in the docstring and in
docs/impl.md's table; the others take the contract's arguments in the contract's order."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import vaespec.impl
from vaespec.spec.contract import FUNCTIONS

# The public modules of functional ops (the packages' __all__ and the chapters' modules).
MODULES = ("vaespec.impl", "vaespec.impl.vq", "vaespec.impl.functional", "vaespec.impl.vq_functional",
           "vaespec.impl.likelihoods", "vaespec.impl.estimators", "vaespec.impl.embedding", "vaespec.impl.evidence",
           "vaespec.impl.keys")
DOCS = Path(vaespec.impl.__file__).resolve().parents[1] / "docs" / "impl.md"


def _same_named() -> dict[str, object]:
    """`"module.name"` (the shortest public path) -> function, for every public function named as a contract one."""
    found: dict[int, tuple[str, object]] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n, v in vars(module).items()
                                                     if inspect.isfunction(v) and v.__module__ == module_name]
        for name in names:
            obj = getattr(module, name)
            if name in FUNCTIONS and inspect.isfunction(obj) and id(obj) not in found:
                found[id(obj)] = (f"{module_name}.{name}", obj)
    return dict(found.values())


def _contract_signature(name: str) -> str:
    return f"{name}({', '.join(a.name for a in FUNCTIONS[name].args)})"


def _takes_the_contracts_arguments(function) -> bool:
    """The contract's arguments first, in its order; anything after them optional or keyword-only."""
    name = function.__name__
    positional = [p for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    contract = [a.name for a in FUNCTIONS[name].args]
    return [p.name for p in positional[:len(contract)]] == contract and \
        all(p.default is not p.empty for p in positional[len(contract):])


DIFFERENT = sorted(path for path, f in _same_named().items() if not _takes_the_contracts_arguments(f))


def test_the_scan_finds_both_kinds():
    same = set(_same_named()) - set(DIFFERENT)
    assert {"vaespec.impl.loss", "vaespec.impl.vq.codebook_loss"} <= set(DIFFERENT)
    assert {"vaespec.impl.kl_divergence", "vaespec.impl.vq.quantize"} <= same


@pytest.mark.parametrize("path", DIFFERENT)
def test_a_different_signature_is_stated_in_the_docstring(path):
    function = _same_named()[path]
    text = " ".join(inspect.getdoc(function).split())
    assert f"not the contract's `{_contract_signature(function.__name__)}`" in text, (
        f"{path}'s docstring does not say it is not the contract's `{_contract_signature(function.__name__)}`")


@pytest.mark.skipif(not DOCS.is_file(), reason="no docs folder: vaespec is installed without its source tree")
def test_docs_table_lists_exactly_the_different_ones():
    rows = re.findall(r"^\| `(vaespec\.impl[\w.]*)` \| `\(([^`]*)\)` \| `([^`]*)` \|", DOCS.read_text(), re.MULTILINE)
    listed = {path: (args, contract) for path, args, contract in rows}
    assert sorted(listed) == DIFFERENT, "docs/impl.md's 'Same name, different arguments' table is stale"
    for path, (args, contract) in listed.items():
        function = _same_named()[path]
        positional = [p.name for p in inspect.signature(function).parameters.values() if p.kind != p.KEYWORD_ONLY]
        assert args == ", ".join(positional), f"docs/impl.md gives {path} the arguments ({args})"
        assert contract == _contract_signature(function.__name__)
