"""vector-quantize-pytorch's `VectorQuantize`, checked through the adapters against every VQ law: each law of the
functions a configuration provides holds, except the declared differences, each of which must really differ
(verdict as declared), so `vqp_vector_quantize.differences` cannot go stale. Laws of functions it does not
provide are reported as such (n/a, or an ERROR saying "not provided")."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, settings

pytest.importorskip("vector_quantize_pytorch", reason="the thirdparty extra is not installed")

from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.laws.declared import not_applicable
from vaespec.proofs_tests.plugin import Entry, read_entries
from vaespec.proofs_tests.thirdparty import vqp_vector_quantize as vqp
from vaespec.spec.laws import LAWS

DIFFERENCES = Path(vqp.__file__).with_name(vqp.DIFFERENCES)
BACKENDS = {b.name: b for b in vqp.backends()}
VQ_LAWS = sorted(name for name, law in LAWS.items() if law.chapter == "vq")
_VERDICT = re.compile(r"#\s*(FAIL or ERROR|FAIL|ERROR):\s*(\S.*)$")


def _label(backend) -> str:
    return f"{backend.name}-{backend.device}-{backend.dtype}"



def _settings(verdict: str):
    """The profile's settings; for a declared failure without the shrink phase: the verdict is what the file
    declares, and shrinking its counterexample (the slowest part of these runs) changes no verdict."""
    if verdict in ("pass", "n/a", "not provided"):
        return settings()
    return settings(settings(), phases=[p for p in settings().phases if p is not Phase.shrink])

@functools.cache
def declared() -> tuple[tuple[Entry, str, str], ...]:
    """(entry, verdict, reason) for every line of the differences file (which must parse as an xfail file)."""
    entries = read_entries(str(DIFFERENCES), "xfail")
    lines = DIFFERENCES.read_text(encoding="utf-8").splitlines()
    found = []
    for entry in entries:
        number = int(entry.where.rsplit(":", 1)[1])
        match = _VERDICT.search(lines[number - 1])
        assert match, f"{entry.where}: expected '# FAIL: reason' or '# ERROR: reason' after the entry"
        found.append((entry, match[1], match[2]))
    return tuple(found)


def _expected(law: str, backend) -> tuple[str, str]:
    """(verdict, why) the suite must give `law` on `backend`."""
    missing = [f for f in LAWS[law].functions if f not in backend.provides]
    if missing:
        return "not provided", f"{backend.name} does not provide {missing}"
    reason = not_applicable(law, backend)  # what it declares: e.g. no vaespec key stream for the stream-exact laws
    if reason:
        return "n/a", reason
    hits = [(verdict, reason) for entry, verdict, reason in declared() if entry.matches(law, _label(backend))]
    assert len(hits) <= 1, f"{law} on {backend.name} is declared {len(hits)} times"
    return hits[0] if hits else ("pass", "the contract's law")


def test_every_declared_difference_names_a_vq_law_and_a_backend():
    for entry, _, _ in declared():
        laws = [law for law in VQ_LAWS if law.startswith(entry.law)]
        labels = [label for label in map(_label, BACKENDS.values()) if entry.backend is None
                  or label.startswith(entry.backend)]
        assert laws and labels, f"{entry.where}: {entry.law}[{entry.backend}] matches no VQ law or vqp backend"
        for law in laws:
            for name in (n for n, b in BACKENDS.items() if _label(b) in labels):
                assert all(f in BACKENDS[name].provides for f in LAWS[law].functions), (
                    f"{entry.where}: {name} does not provide {law}'s functions: not a difference, not provided")


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("law", VQ_LAWS)
def test_vqp_law_verdict_is_as_declared(law, name):
    b = BACKENDS[name]
    verdict, why = _expected(law, b)
    result = run_law(law, b, _settings(verdict))
    if verdict == "not provided":
        assert result.verdict == "n/a" or (result.verdict == "ERROR" and "not provided" in result.message), (
            f"{law} on {name}: {why}, so not provided; got {result.verdict}: {result.message}")
    elif verdict == "n/a":
        assert (result.verdict, result.message) == ("n/a", why), (law, name, result.verdict, result.message)
    else:
        assert result.verdict in verdict.split(" or "), (
            f"{law} on {name}: expected {verdict} ({why}), got {result.verdict} after "
            f"{result.examples} examples: {result.message}")
        if verdict == "pass":
            assert result.examples > 0


def test_the_configurations_provide_what_the_docs_say():
    ema, learnable = BACKENDS["vqp-ema"], BACKENDS["vqp-learnable"]
    common = {"quantize", "commitment_loss", "laplace_smooth", "init_codebook", "reset_dead_codes"}
    assert ema.provides == frozenset(common | {"ema_update"})
    assert learnable.provides == frozenset(common | {"codebook_loss"})
    assert ema.dtype == learnable.dtype == "float32"


def _ema_args(codebook, counts, z_e, decay):
    from vaespec.proofs_tests.laws.compare import as_input

    codebook = np.asarray(codebook, dtype=np.float64)
    return as_input("float32", {"codebook": codebook, "ema_counts": np.asarray(counts, dtype=np.float64),
                                "ema_sums": np.zeros_like(codebook), "ema_step": 0,
                                "z_e": np.asarray(z_e, dtype=np.float64), "decay": decay, "epsilon": 1e-5,
                                "training": True})


def test_the_ema_configuration_declares_no_debiasing_and_its_failure_is_diagnosed():
    from vaespec.proofs_tests.laws.compare import LawViolation
    from vaespec.proofs_tests.laws.differential import check_values

    ema = BACKENDS["vqp-ema"]
    assert ema.variants == {"ema_debias": False} and getattr(ema, "key_stream", None) is None
    # A counterexample the ci profile shrinks to: decay 0.001, where torch's lerp_ (1 + 0.999·(0 − 1)) cancels.
    small_decay = _ema_args([[0.40637192], [-0.23054397], [-0.13752234], [-0.98988581]], [0, 0, 0, 1], [[0.0]], 0.001)
    with pytest.raises(LawViolation) as raised:
        check_values(ema, "ema_update", small_decay)
    assert raised.value.diagnose().startswith("diagnosis: matches the reference with its averages as torch's lerp")
    usual = _ema_args([[0.40637191], [-0.23054396]], [0, 0], [[0.40637191]], 0.99)
    check_values(ema, "ema_update", usual)  # declared: the undebiased reference, within float32's bound
    undeclared = type("Undeclared", (vqp.VQPEma,), {"variants": None})()
    with pytest.raises(LawViolation) as raised:
        check_values(undeclared, "ema_update", usual)
    assert raised.value.diagnose().startswith("diagnosis: matches the reference without EMA debiasing"), raised.value
