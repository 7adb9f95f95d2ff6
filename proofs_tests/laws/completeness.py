"""Every declared function has what each layer owes it: the check vaespec's own suite runs at collection.

For each `FunctionSpec` in `vaespec.spec.contract.FUNCTIONS`, `missing()` names what lacks:

- a reference entry: a `ReferenceBackend` method, and for a differentiable function a vjp (probed: the
  reference's `vjp` refuses a function it has no vjp for by naming `function`, before anything else);
- a Torch body: a `TorchBackend` method;
- a strategy: a builder of `strategies.chapters` that draws its arguments;
- an independent-port body (`proofs_tests/ports/independent*.py`);
- a docs entry: docs/contract.md or its chapter's page (docs/<chapter>.md) names it as `name` or `name(`.

Capabilities are read through the backend objects and the docs files, so the check does not depend on
how a layer registers its functions. `proofs_tests/conftest.py` fails collection with the list.
"""

from __future__ import annotations

import re
from pathlib import Path

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import VaespecError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def has_vjp(backend, function: str) -> bool:
    """Whether `backend.vjp` serves `function`: called with no arguments, a vjp that knows the function
    complains about the arguments; one that does not names `function` (the contract's error convention)."""
    try:
        backend.vjp(function, {}, None)
    except VaespecError as error:
        return not str(error).startswith("function")
    except Exception:  # noqa: BLE001 (any exception from a user's vjp) not the contract's refusal: count it as missing, so that it is looked at
        return False
    return True


def documented(function: str, chapter: str, docs: Path = DOCS) -> bool:
    """Whether docs/contract.md or docs/<chapter>.md names `function` in code (`name` or `name(`)."""
    pattern = re.compile(r"`" + re.escape(function) + r"[`(]")
    pages = [docs / "contract.md", docs / f"{chapter}.md"]
    return any(page.is_file() and pattern.search(page.read_text(encoding="utf-8")) for page in pages)


def missing(docs: Path = DOCS) -> list[str]:
    """One line per function that lacks something, naming what (empty when every function is complete).
    The docs are checked only where they exist (an installed wheel has none)."""
    from vaespec.impl import TorchBackend
    from vaespec.reference import ReferenceBackend

    from ..ports import independent
    from ..strategies.chapters import has_strategy

    reference, torch = ReferenceBackend(), TorchBackend("cpu", "float64")
    lines = []
    for name, spec in FUNCTIONS.items():
        lacks = []
        if not callable(getattr(reference, name, None)):
            lacks.append("a reference entry (ReferenceBackend method)")
        if spec.differentiable and not has_vjp(reference, name):
            lacks.append("a reference vjp")
        if not callable(getattr(torch, name, None)):
            lacks.append("a Torch body (TorchBackend method)")
        if not has_strategy(name):
            lacks.append("a strategy (a Builder in strategies_all.BUILDERS drawing its arguments)")
        if name not in independent.BODIES:
            lacks.append("an independent-port body (proofs_tests/ports/independent*.py)")
        if docs.is_dir() and not documented(name, spec.chapter, docs):
            lacks.append(f"a docs entry (`{name}` in docs/contract.md or docs/{spec.chapter}.md)")
        if lacks:
            lines.append(f"{name} ({spec.chapter}) lacks " + ", ".join(lacks))
    return lines


def check(docs: Path = DOCS) -> None:
    """Raise RuntimeError listing every incomplete function (see `missing`)."""
    lines = missing(docs)
    if lines:
        raise RuntimeError("incomplete contract functions:\n  " + "\n  ".join(lines))
