"""The law checks: one `Check` per law of `vaespec.spec.laws.LAWS` (`registry.CHECKS`), with the
comparisons, bounds and tolerances they share."""
