"""Negative controls: deliberately wrong backends, each rejected by the law named in its `caught_by`
(all of them: `vaespec.proofs_tests.laws.registry.CONTROLS`)."""
