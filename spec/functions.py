"""Every contract function of every chapter, by name: the one registry the other layers read.

    FUNCTIONS = {**vae.FUNCTIONS, **vq.FUNCTIONS, **estimators.FUNCTIONS, **bayes.FUNCTIONS, **quantizers.FUNCTIONS}

Each chapter module declares its own (`vaespec.spec.signature.FunctionSpec`); adding a function is
adding its declaration there. `vaespec.spec.contract.FUNCTIONS` is this dict, re-exported for users.
"""

from __future__ import annotations

from . import bayes, estimators, quantizers, vae, vq
from .signature import FunctionSpec

FUNCTIONS: dict[str, FunctionSpec] = {**vae.FUNCTIONS, **vq.FUNCTIONS, **estimators.FUNCTIONS, **bayes.FUNCTIONS,
                                      **quantizers.FUNCTIONS}
