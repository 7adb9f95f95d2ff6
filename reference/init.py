"""Deterministic parameter initialisation: the spec's scheme (`vaespec.spec.init`), re-exported."""

from vaespec.spec.init import init_params

__all__ = ["init_params"]
