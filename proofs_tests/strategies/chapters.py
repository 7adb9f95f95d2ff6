"""The strategy of any contract function, whatever its chapter: the chapters' `BUILDERS` together.

    from vaespec.proofs_tests.strategies.chapters import examples_for
    @given(examples_for("quantize"))
    def test_my_quantizer(ex): ...

A function is served by the first builder of its chapter whose fields hold all of its arguments
(`strategies.vae.Builder`, `strategies.vae.pick`): a new function whose arguments an existing builder draws
needs no edit here; one with new arguments needs a builder (`has_strategy` says which lack one).
"""

from __future__ import annotations

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError

from . import bayes as strategies_bayes
from . import estimators as strategies_estimators
from . import quantizers as strategies_quantizers
from . import vae as strategies
from . import vq as strategies_vq
from .vae import pick

BUILDERS = (*strategies.BUILDERS, *strategies_vq.BUILDERS, *strategies_estimators.BUILDERS, *strategies_bayes.BUILDERS,
            *strategies_quantizers.BUILDERS)


def examples_for(function: str, **kwargs):
    """The examples of contract function `function` (any chapter): only its own arguments where the builder can."""
    return pick(BUILDERS, function, **kwargs)


def has_strategy(function: str) -> bool:
    """Whether some builder draws every argument of `function`."""
    try:
        pick(BUILDERS, function)
    except ConfigError:
        return False
    return function in FUNCTIONS
