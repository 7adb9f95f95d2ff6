"""Deterministic initialisation of parameters and codebooks: the spec's scheme (`vaespec.spec.init`), re-exported."""

from vaespec.spec.init import init_codebook, init_params

__all__ = ["init_codebook", "init_params"]
