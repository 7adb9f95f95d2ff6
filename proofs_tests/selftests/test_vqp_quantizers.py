"""vector-quantize-pytorch's FSQ, LFQ and ResidualVQ through the quantizers chapter's laws (the adapter
`vaespec.proofs_tests.thirdparty.vqp_quantizers`), in float64, float32 and bfloat16: every law not declared in
`vqp_quantizers.differences` must hold (or be n/a where it needs a function the adapter declares NotProvided),
and every declared difference must give its declared verdict — so the
file cannot go stale in either direction. The library behaviours the file and docs/quantizers.md state are
checked directly below, with their minimal reproductions."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import Phase, settings

pytest.importorskip("vector_quantize_pytorch", reason="the thirdparty extra is not installed")

import torch
from vector_quantize_pytorch import FSQ, ResidualVQ

from vaespec.proofs_tests.check.runner import run_law, run_laws
from vaespec.proofs_tests.laws.declared import not_provided
from vaespec.proofs_tests.plugin import Entry, read_entries
from vaespec.proofs_tests.thirdparty import vqp_quantizers as vqp
from vaespec.spec.laws import LAWS

DIFFERENCES = Path(vqp.__file__).with_name(vqp.DIFFERENCES)
BACKENDS = {f"{b.name}-{b.device}-{b.dtype}": b for b in vqp.backends()}
CHAPTER = sorted(name for name, law in LAWS.items() if law.chapter == "quantizers")
_VERDICT = re.compile(r"#\s*(FAIL or ERROR|FAIL|ERROR):\s*(\S.*)$")  # "FAIL or ERROR": two differences, either first



def _settings(verdict: str):
    """The profile's settings; for a declared failure without the shrink phase: the verdict is what the file
    declares, and shrinking its counterexample (the slowest part of these runs) changes no verdict."""
    if verdict in ("pass", "n/a", "not provided"):
        return settings()
    return settings(settings(), phases=[p for p in settings().phases if p is not Phase.shrink])

@functools.cache
def declared() -> tuple[tuple[Entry, str, str], ...]:
    """(entry, verdict, reason) for every line of the differences file (which must parse as an xfail file)."""
    lines = DIFFERENCES.read_text(encoding="utf-8").splitlines()
    found = []
    for entry in read_entries(str(DIFFERENCES), "xfail"):
        match = _VERDICT.search(lines[int(entry.where.rsplit(":", 1)[1]) - 1])
        assert match, f"{entry.where}: expected '# FAIL: reason' or '# ERROR: reason' after the entry"
        found.append((entry, match[1], match[2]))
    return tuple(found)


def test_every_declared_difference_names_a_law_of_the_chapter_and_a_backend():
    for entry, _, _ in declared():
        assert any(law.startswith(entry.law) for law in CHAPTER), f"{entry.where}: {entry.law} is no quantizers law"
        assert any(entry.backend is None or label.startswith(entry.backend) for label in BACKENDS), (
            f"{entry.where}: [{entry.backend}] matches no vqp backend")


def _expected(law: str, label: str) -> tuple[str, str]:
    """(verdict, why) the differences file and the adapter's NotProvided declarations give `law` on `label`."""
    hits = [(verdict, reason) for entry, verdict, reason in declared() if entry.matches(law, label)]
    assert len(hits) <= 1, f"{law} on {label} is declared {len(hits)} times"
    verdict, why = hits[0] if hits else ("pass", "the contract's law")
    lacked = not_provided(BACKENDS[label], LAWS[law].functions)  # a function the adapter declares NotProvided
    if lacked is not None:
        assert not hits, f"{law} on {label} is declared {verdict} but needs a function vqp lacks: {lacked}"
        verdict, why = "n/a", lacked
    return verdict, why


@functools.cache
def _results(law: str) -> dict:
    """label -> `law`'s result on it: the backends expected to hold share one run's examples (`run_laws`: each
    verdict that of the backend alone); a declared failure runs alone, without shrinking (`_settings`)."""
    holding = [label for label in sorted(BACKENDS) if _expected(law, label)[0] in ("pass", "n/a", "not provided")]
    out = dict(zip(holding, run_laws(law, [BACKENDS[label] for label in holding], settings()), strict=True))
    for label in sorted(set(BACKENDS) - set(holding)):
        out[label] = run_law(law, BACKENDS[label], _settings(_expected(law, label)[0]))
    return out


@pytest.mark.parametrize("label", sorted(BACKENDS))
@pytest.mark.parametrize("law", [pytest.param(law, marks=pytest.mark.xdist_group(f"vqp:{law}")) for law in CHAPTER])
def test_vqp_law_verdict_is_as_declared(law, label):
    verdict, why = _expected(law, label)
    result = _results(law)[label]
    assert result.verdict in verdict.split(" or "), (f"{law} on {label}: expected {verdict} ({why}), got "
                                                     f"{result.verdict} after {result.examples} examples: "
                                                     f"{result.message}")


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


def _rvq_ema_state(epsilon: float) -> dict:
    """Two stages of three codes, every code used or not, with a running EMA state (steps 0 and 3), in float32."""
    import numpy as np

    from vaespec.proofs_tests.laws.compare import as_input

    rng = np.random.default_rng(3)
    codebooks = rng.standard_normal((2, 3, 2)) * np.array([1.0, 0.5])[:, None, None]
    counts = rng.uniform(0.5, 3.0, (2, 3))
    return as_input("float32", {"codebooks": codebooks, "ema_counts": counts,
                                "ema_sums": counts[..., None] * rng.standard_normal((2, 3, 2)),
                                "ema_step": np.array([0, 3]), "z_e": rng.standard_normal((2, 3, 2)), "num_stages": 2,
                                "decay": 0.9, "epsilon": epsilon, "training": True})


def test_residual_vq_ema_is_the_stagewise_update_without_debiasing():
    """What `vqp_quantizers.differences` says of rvq_ema_update at ε > 0: vqp's ResidualVQ EMA is the VQ chapter's
    step per stage on its residual without 1/(1 − γᵗ) (`laws.variants.ema_without_debiasing`), within float32
    rounding, while the debiased statement differs by far more."""
    import numpy as np

    from vaespec.proofs_tests.laws.quantizers_rvq import EMA_ORDER
    from vaespec.proofs_tests.laws.variants import ema_without_debiasing
    from vaespec.reference import ReferenceBackend
    from vaespec.reference import quantizers_rvq as ref_rvq

    a = _rvq_ema_state(1e-3)
    books = vqp.VQPQuantizers("float32").rvq_ema_update(*(a[n] for n in EMA_ORDER))[0]
    k, _, r = ref_rvq.stages(a["z_e"], a["codebooks"], 2)
    k = k.reshape(-1, 2)
    for s in range(2):
        stage = {"codebook": a["codebooks"][s], "ema_counts": a["ema_counts"][s], "ema_sums": a["ema_sums"][s],
                 "ema_step": int(a["ema_step"][s]), "z_e": r[s], "decay": 0.9, "epsilon": 1e-3, "training": True}
        np.testing.assert_allclose(books[s], ema_without_debiasing(stage, k[:, s])[0], rtol=1e-5, atol=1e-6)
    debiased = ReferenceBackend().rvq_ema_update(*(a[n] for n in EMA_ORDER))[0]
    assert np.abs(books - debiased).max() > 1e-4  # 4e-4 here: over 100 times the float32 agreement above


def test_residual_vq_ema_at_zero_epsilon_makes_an_unused_code_nan():
    """The minimal reproduction in docs/quantizers.md: with eps = 0 a code no vector chose, its cluster_size and
    embed_avg 0, becomes 0/0 (the contract keeps its row)."""
    module = ResidualVQ(dim=1, num_quantizers=1, codebook_size=2, rotation_trick=False, eps=0.0,
                        kmeans_init=False).train()
    book = module.layers[0]._codebook
    with torch.no_grad():
        book.embed.copy_(torch.tensor([[[0.0], [10.0]]]))
        book.cluster_size.zero_()
        book.embed_avg.zero_()
        module(torch.zeros(1, 1, 1))  # the one vector chooses code 0
    assert book.embed[0, 0].item() == 0.0 and torch.isnan(book.embed[0, 1]).item()
