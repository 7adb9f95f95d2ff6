"""vaespec's own unit tests. Not in the wheel, so `pytest --pyargs vaespec.proofs_tests...` never
collects them in a user's project; the README's test command runs them from the checkout."""
