"""vector-quantize-pytorch's FSQ, LFQ and ResidualVQ through the quantizers chapter's laws (the adapter
`vaespec.proofs_tests.thirdparty.vqp_quantizers`), in float64 and float32: every law it holds must hold, and
every declared difference (`DECLARED_DIFFERENCES`, law × dtype → reason) must actually fail — so the table
cannot go stale in either direction. The library's behaviours the table and docs/quantizers.md state are
checked directly below, with minimal reproductions."""

from __future__ import annotations

import pytest

pytest.importorskip("vector_quantize_pytorch")

import torch
from hypothesis import settings
from vector_quantize_pytorch import FSQ, ResidualVQ

from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.thirdparty.vqp_quantizers import DECLARED_DIFFERENCES, DTYPES, VQPQuantizers
from vaespec.spec.laws import LAWS

CHAPTER = sorted(name for name, law in LAWS.items() if law.chapter == "quantizers")


def test_declared_differences_name_laws_of_the_chapter():
    assert all(law in CHAPTER and dtype in DTYPES for law, dtype in DECLARED_DIFFERENCES), DECLARED_DIFFERENCES


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("law", CHAPTER)
def test_vqp_holds_every_law_but_the_declared_differences(law, dtype):
    result = run_law(law, VQPQuantizers(dtype), settings())
    if (law, dtype) in DECLARED_DIFFERENCES:
        assert result.verdict == "FAIL", (f"{law} on vqp/{dtype} is declared different "
                                          f"({DECLARED_DIFFERENCES[law, dtype]}) but gave {result.verdict}: "
                                          f"update the table")
    else:
        assert result.verdict == "pass", f"{law} on vqp/{dtype}: {result.verdict}\n{result.message}"


def test_fsq_float64_constants_are_float32():
    """The minimal reproduction in docs/quantizers.md: FSQ's bound in float64 has a float32 slope at 0."""
    fsq = FSQ(levels=[3]).double()
    z = torch.zeros(1, 1, 1, dtype=torch.float64, requires_grad=True)
    fsq.bound(z).sum().backward()  # d/dz round_ste(tanh(z)·half_l)/⌊3/2⌋ = half_l = 1.001 at z = 0
    assert z.grad.item() == float(torch.tensor(1.001, dtype=torch.float32))  # 1.0010000467300415, not 1.001
    assert z.grad.item() != 1.001


def test_fsq_refuses_two_levels():
    """The adapter rejects L = 2 because vqp does (without preserve_symmetry, a different bound)."""
    with pytest.raises(AssertionError):
        FSQ(levels=[2, 3])


def test_residual_vq_passes_the_gradient_once_per_stage():
    """ResidualVQ's z_e gradient is n·ȳ with the plain straight-through (rotation_trick=False)."""
    torch.manual_seed(0)
    for n in (1, 2, 3):
        module = ResidualVQ(dim=2, num_quantizers=n, codebook_size=4, rotation_trick=False, ema_update=False).train()
        z = torch.randn(5, 1, 2, requires_grad=True)
        out, _, _ = module(z)
        out.sum().backward()
        assert torch.equal(z.grad, torch.full_like(z, float(n)))
