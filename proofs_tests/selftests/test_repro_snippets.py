"""A failure's repro snippet runs as printed and reproduces the failure: one failure per chapter, each
from a negative control (`proofs_tests/controls/`), executed in a fresh namespace."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from hypothesis import Phase, settings

from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.controls import bayes, conv, conv_vq, estimators, quantizers, vae, vq

QUICK = settings(settings(), phases=[Phase.explicit, Phase.generate, Phase.shrink], max_examples=100,
                 derandomize=True, database=None, deadline=None)

CASES = {
    "vae": (vae.KLGradientMissingHalf, "kl_divergence_gradient_matches_reference"),
    "vq": (vq.EMANotDebiased, "ema_update_matches_reference"),
    "estimators": (estimators.EmbeddingGradientOverwrites, "embedding_lookup_gradient_matches_reference"),
    "bayes": (bayes.EvidenceGramSwapped, "linear_gaussian_log_evidence_matches_reference"),
    "quantizers": (quantizers.FSQFloorForRound, "fsq_quantize_matches_reference"),
    "vae-conv": (conv.TorchConvKernelFlipped, "encode_matches_reference"),  # the snippet builds a ConvArchitecture
    "vq-conv": (conv_vq.TorchConvVQEncoderReshaped, "vq_encode_matches_reference"),  # and a ConvVQArchitecture
}


def snippet(message: str) -> str:
    """The Python lines after 'Reproduce with:' (up to a trailing note of the runner's)."""
    lines = message.split("Reproduce with:\n", 1)[1].splitlines()
    return "\n".join(line for line in lines if not line.startswith("(Hypothesis found"))


@pytest.mark.parametrize("chapter", sorted(CASES))
def test_snippet_reproduces_the_failure(chapter):
    control, law = CASES[chapter]
    result = run_law(law, control(), QUICK)
    assert result.verdict == "FAIL", (chapter, result.verdict, result.message[:500])
    first = result.message.splitlines()[0]
    # a value law's actual entry, or the level a rounding choice (the quantizers' judge) took
    got = float((re.search(r"got (\S+?),", first) or re.search(r"chose level (\S+) ", first)).group(1))
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(AssertionError) as raised:
        exec(compile(snippet(result.message), f"<repro of {law}>", "exec"), {})  # noqa: S102  (our own snippet)
    again = str(raised.value).splitlines()[0]
    assert first.startswith(again), (first, again)  # the same worst entry, value and ratio (the runner may add a note)
    printed = {float(n) for n in re.findall(r"-?\d+\.\d*(?:e[-+]?\d+)?", out.getvalue())}
    assert got in printed, (got, out.getvalue()[:2000])  # and the snippet printed the failing value


def test_vq_snippet_builds_a_vq_architecture():
    from vaespec.proofs_tests.laws.compare import repro
    from vaespec.spec.architecture import VQArchitecture

    arch = VQArchitecture(input_size=3, embedding_dim=2, num_embeddings=4, encoder_sizes=(7,), decoder_sizes=(5, 6))
    text = repro("vq_loss", {"arch": arch}, vq.EMANotDebiased())
    namespace: dict = {}
    setup = text.split("\nprint(", 1)[0]  # the imports, the backend and the arguments
    exec(compile(setup, "<vq_loss repro>", "exec"), namespace)  # noqa: S102
    assert namespace["args"]["arch"] == arch
