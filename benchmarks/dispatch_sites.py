"""Count string-dispatch sites on contract function names (issue 11's measure of hand-written wiring).

    python -m benchmarks.dispatch_sites            # per file, then the total
    python -m benchmarks.dispatch_sites --list     # every site, file:line

A site is, outside vaespec's own unit tests: a comparison (`==`, `!=`, `in`, `not in`) against a
string literal naming a contract function (or a tuple/list/set of them), a `match` case on such a
literal, a dict literal most of whose keys name functions (a table keyed on function names; a dict of
options whose keys happen to include one, such as `vaespec bayes`'s evidence kinds "exact", "elbo",
"iwae", is not dispatch on a function name), or a `.startswith/.endswith/.removesuffix/.removeprefix`
test on a function-name suffix such as "_vjp". Subscripts (`FUNCTIONS["encode"]`) and calls that
name a function (`backend.vjp("loss", …)`) are uses, not dispatch, and are not counted.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("spec", "reference", "impl", "proofs_tests")


def function_names() -> set[str]:
    from vaespec.spec.contract import FUNCTIONS
    names = set(FUNCTIONS)
    return names | {f"{n}_vjp" for n in names}


def _is_unit_test(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return path.name.startswith("test_") or path.name == "conftest.py" or "selftests" in parts or \
        parts[:2] == ("proofs_tests", "impl")


def _named(node, names) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value in names
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_named(e, names) for e in node.elts)
    return False


def _keyed_by_functions(node: ast.Dict, names: set[str]) -> bool:
    """A dict literal more than half of whose keys are string literals naming functions."""
    keys = [k for k in node.keys if k is not None]
    return 2 * sum(_named(k, names) for k in keys) > len(keys)


def sites(path: Path, names: set[str]) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    lines = []
    for node in ast.walk(tree):
        compared = isinstance(node, ast.Compare) and any(_named(n, names) for n in (node.left, *node.comparators))
        keyed = isinstance(node, ast.Dict) and _keyed_by_functions(node, names)
        if compared or keyed:
            lines.append(node.lineno)
        elif isinstance(node, ast.match_case) and isinstance(node.pattern, ast.MatchValue) and \
                _named(node.pattern.value, names):
            lines.append(node.pattern.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "endswith", "removesuffix", "removeprefix") and \
                any(isinstance(a, ast.Constant) and a.value == "_vjp" for a in node.args):
            lines.append(node.lineno)
    return sorted(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every site as file:line")
    options = parser.parse_args(argv)
    names = function_names()
    counts: Counter[str] = Counter()
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            if _is_unit_test(path):
                continue
            found = sites(path, names)
            rel = str(path.relative_to(ROOT))
            counts[rel] = len(found)
            if options.list:
                for line in found:
                    print(f"{rel}:{line}")
    for rel, n in counts.most_common():
        if n:
            print(f"{n:5d} {rel}")
    print(f"{sum(counts.values())} string-dispatch sites on function names outside unit tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
