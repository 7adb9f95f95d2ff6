"""The docs cannot go stale: docs/laws.md is the generator's output, and the hand-written
pages name everything the code defines (laws, functions, presets, activations, profiles).

The docs folder lives in the source tree only; from an installed wheel these tests skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import vaespec.proofs_tests
from vaespec.proofs_tests.docs_laws import render
from vaespec.proofs_tests.laws.registry import CONTROLS
from vaespec.proofs_tests.strategies.profiles import PROFILES
from vaespec.spec.architecture import ACTIVATIONS
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conventions import PRESETS
from vaespec.spec.laws import LAWS

DOCS = Path(vaespec.proofs_tests.__file__).resolve().parents[1] / "docs"

pytestmark = pytest.mark.skipif(
    not DOCS.is_dir(), reason=f"no docs folder at {DOCS}: vaespec is installed without its source tree")


def _read(page: str) -> str:
    path = DOCS / page
    assert path.is_file(), f"docs/{page} is missing"
    return path.read_text(encoding="utf-8")


def test_laws_page_is_the_generators_output():
    assert _read("laws.md") == render(), (
        "docs/laws.md differs from render(); regenerate it with `python -m vaespec.proofs_tests.docs_laws`")


def test_the_generators_help_writes_nothing(tmp_path, monkeypatch, capsys):
    """`docs_laws --help` (and a second argument) print the usage; once `--help` wrote a file named "--help"."""
    from vaespec.proofs_tests.docs_laws import main

    monkeypatch.chdir(tmp_path)
    assert main(["--help"]) == 0 and "usage: python -m vaespec.proofs_tests.docs_laws" in capsys.readouterr().out
    assert main(["a.md", "b.md"]) == 2 and "unrecognized arguments: b.md" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    assert main(["laws.md"]) == 0 and (tmp_path / "laws.md").read_text(encoding="utf-8") == render()


def test_every_law_and_control_is_on_the_laws_page():
    text = _read("laws.md")
    missing = [name for name in (*LAWS, *CONTROLS) if f"`{name}`" not in text]
    assert not missing, f"docs/laws.md lacks {missing}"


def _chapter(name: str) -> list[str]:
    return [f for f, spec in FUNCTIONS.items() if spec.chapter == name]


# Each chapter's functions are written out on its own page; the VAE's also in the contract walk-through.
@pytest.mark.parametrize("page, names, what", [
    ("math.md", _chapter("vae"), "contract function"),
    ("contract.md", _chapter("vae"), "contract function"),
    ("vq.md", _chapter("vq"), "contract function"),
    ("estimators.md", _chapter("estimators"), "contract function"),
    ("bayes.md", _chapter("bayes"), "contract function"),
    ("quantizers.md", _chapter("quantizers"), "contract function"),
    ("math.md", ACTIVATIONS, "activation"),
    ("conventions.md", PRESETS, "convention preset"),
    ("testing.md", PROFILES, "Hypothesis profile"),
])
def test_hand_written_pages_name_everything(page, names, what):
    text = _read(page)
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/{page} does not mention the {what}(s) {missing}"
