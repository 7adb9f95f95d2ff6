"""Every symbolic proof runs (SymPy derives and asserts its identity), every citation in the law
registry names a proof, every proof is cited by a law and listed in docs/numerics.md, and the
proofs can fail: a wrong formula or constant substituted into them is rejected."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sympy")

import vaespec.proofs_tests
from vaespec.proofs_tests.proofs import PROOFS, forms, gradients
from vaespec.reference import activations, elementwise
from vaespec.spec.laws import LAWS

DOCS = Path(vaespec.proofs_tests.__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(PROOFS))
def test_proof_derives_its_identity(name):
    assert PROOFS[name].run() is not None


def test_every_citation_names_a_proof():
    unknown = {law.name: [p for p in law.proofs if p not in PROOFS] for law in LAWS.values()}
    assert not {k: v for k, v in unknown.items() if v}, unknown


def test_every_proof_is_cited_by_a_law():
    cited = {p for law in LAWS.values() for p in law.proofs}
    assert not sorted(set(PROOFS) - cited)


@pytest.mark.skipif(not DOCS.is_dir(), reason="no docs folder: installed without the source tree")
def test_every_proof_is_in_the_numerics_page():
    text = (DOCS / "numerics.md").read_text(encoding="utf-8")
    assert not [name for name in PROOFS if f"`{name}`" not in text]


# ----------------------------------------------------------------------------- the proofs can fail
def test_a_wrong_derivative_is_rejected(monkeypatch):
    import sympy as sp
    wrong = dict(gradients.ACTIVATIONS, tanh=(sp.tanh, lambda t: 1 - sp.tanh(t)))
    monkeypatch.setattr(gradients, "ACTIVATIONS", wrong)
    with pytest.raises(AssertionError, match="tanh"):
        PROOFS["activation_derivatives"].run()


def test_a_wrong_constant_is_rejected(monkeypatch):
    import math
    monkeypatch.setattr(elementwise, "LOG_2PI", (math.log(2 * math.pi), elementwise.LOG_2PI[1]))  # one ulp low
    with pytest.raises(AssertionError, match="log"):
        PROOFS["reference_constants"].run()


def test_a_wrong_gradient_step_is_rejected():
    """The network proof with the target path dropped from x̄ (LatentDetachedInLoss's sibling bug) fails."""
    with pytest.raises(AssertionError, match="^x$"):
        gradients.network_loss_vjp(target_path=False)


def test_a_wrong_series_is_rejected(monkeypatch):
    import sympy as sp
    real_series = sp.series
    monkeypatch.setattr(forms.sp, "series", lambda expr, *a: real_series(expr + a[0] ** 20 / 10**30, *a))
    with pytest.raises(AssertionError):
        PROOFS["kl_reference_series"].run()


# ----------------------------------------------------------------------------- the reference's exact arithmetic
def test_error_free_transformations_are_exact():
    """two_sum and two_prod, which the reference's accurate formulas rest on, return s + e = a + b and
    p + e = a·b exactly (checked in rational arithmetic) across magnitudes."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal(2000) * 10.0 ** rng.uniform(-150, 150, 2000)
    b = rng.standard_normal(2000) * 10.0 ** rng.uniform(-150, 150, 2000)
    s, e = activations.two_sum(a, b)
    p, f = activations.two_prod(a, b)
    for i in range(a.size):
        assert Fraction(s[i]) + Fraction(e[i]) == Fraction(a[i]) + Fraction(b[i])
        assert Fraction(p[i]) + Fraction(f[i]) == Fraction(a[i]) * Fraction(b[i])


@pytest.mark.skipif(not DOCS.is_dir(), reason="no docs folder: installed without the source tree")
def test_numerics_page_proof_table_is_generated():
    """docs/numerics.md's proof table is `docs_tolerances.render_proofs()` (statements and citing laws)."""
    from vaespec.proofs_tests import docs_tolerances
    text = (DOCS / "numerics.md").read_text(encoding="utf-8")
    assert docs_tolerances.updated(text, docs_tolerances.render_proofs()) == text, (
        "docs/numerics.md is stale; run python -m vaespec.proofs_tests.docs_tolerances")
