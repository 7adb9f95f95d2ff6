"""Hypothesis strategies for valid inputs of every chapter (exported for users' own suites), the
sizes they draw and the Hypothesis profiles."""
