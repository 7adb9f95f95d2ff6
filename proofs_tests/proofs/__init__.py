"""Symbolic proofs (SymPy) of the identities the VAE laws and the reference's formulas rest on.

Each proof is a function that derives its identity with SymPy, asserts it, and returns it (an
`Eq`, or a tuple of them). `PROOFS` registers them by name; a law cites the proofs it rests on
(`vaespec.spec.laws.LAWS[name].proofs`), docs/laws.md prints the citations and docs/numerics.md
lists every proof with what it supports. `proofs_tests/selftests/test_proofs.py` runs every one.

    from vaespec.proofs_tests.proofs import PROOFS
    PROOFS["kl_closed_form"].run()     # derives ½(σ² + μ² − 1 − log σ²) from the KL integral

SymPy is in the `test` extra; importing this package without it raises ImportError.
"""

from __future__ import annotations

from .base import Proof


def _collect() -> dict[str, Proof]:
    from . import forms, gaussian, gradients, kl
    proofs: dict[str, Proof] = {}
    for module in (kl, gaussian, gradients, forms):
        for proof in module.PROOFS:
            if proof.name in proofs:
                raise RuntimeError(f"proof {proof.name!r} is registered twice")
            proofs[proof.name] = proof
    return proofs


PROOFS: dict[str, Proof] = _collect()
__all__ = ["PROOFS", "Proof"]
