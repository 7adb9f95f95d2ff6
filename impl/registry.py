"""Every contract function's Torch body, by the function's name: `TORCH`.

The bodies live with their chapter (`vae_bodies`, `vq_bodies`, `estimators_bodies`,
`bayes_bodies`, `quantizers_bodies`; see `vaespec.impl.bodies` for what a body is) and register there under the
contract function's name; this module gathers the chapters' tables. `TorchBackend` is a lookup in
`TORCH`: its contract methods call the body, and its `vjp` differentiates the same body.

Adding a contract function's Torch body is one registration in its chapter's module:

    @BODIES.register("beta_tc_kl")
    def _beta_tc_kl(inputs: Inputs) -> Outputs:
        ...

A new chapter is a new `<chapter>_bodies` module and one entry in `CHAPTERS` below.
"""

from __future__ import annotations

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError

from . import bayes_bodies, estimators_bodies, quantizers_bodies, vae_bodies, vq_bodies
from .bodies import Bodies, TorchFunction

CHAPTERS: tuple[Bodies, ...] = (vae_bodies.BODIES, vq_bodies.BODIES, estimators_bodies.BODIES, bayes_bodies.BODIES,
                                quantizers_bodies.BODIES)


def gather(chapters: tuple[Bodies, ...]) -> dict[str, TorchFunction]:
    """The chapters' tables as one, in `FUNCTIONS` order; a body for a name the contract does not have, or
    filed in another chapter's table, is a `ConfigError` at import (a typo would otherwise never run)."""
    found: dict[str, TorchFunction] = {}
    for table in chapters:
        for name, entry in table.items():
            if name not in FUNCTIONS:
                raise ConfigError(f"{name}: a torch body is registered in vaespec.impl.{table.chapter}_bodies for a "
                                  f"name that is not a contract function (vaespec.spec.contract.FUNCTIONS)")
            if FUNCTIONS[name].chapter != table.chapter:
                raise ConfigError(f"{name}: its torch body is registered in the {table.chapter!r} chapter's table, "
                                  f"but the function belongs to the {FUNCTIONS[name].chapter!r} chapter")
            found[name] = entry
    return {name: found[name] for name in FUNCTIONS if name in found}


TORCH: dict[str, TorchFunction] = gather(CHAPTERS)


def missing() -> list[str]:
    """The contract functions without a Torch body (none, when impl is complete)."""
    return [name for name in FUNCTIONS if name not in TORCH]


def torch_function(name: str) -> TorchFunction:
    """The registered Torch body of contract function `name`; a `ConfigError` naming where it belongs if none."""
    if name not in TORCH:
        chapter = FUNCTIONS[name].chapter if name in FUNCTIONS else None
        where = f"register one in vaespec.impl.{chapter}_bodies" if chapter else "it is not a contract function"
        raise ConfigError(f"function: no torch body for {name!r} ({where})")
    return TORCH[name]
