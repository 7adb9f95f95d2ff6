"""Adapters that run third-party implementations through the contract, so vaespec's laws check them in CI.

Each module is a backend (`vaespec check --backend vaespec.proofs_tests.thirdparty.<module>:backends`) around
one library, with a table of the conventions it is known to differ on (tested, so the table cannot go stale).
Only this package may import the `thirdparty` extra (an import-linter contract in pyproject.toml).
"""
