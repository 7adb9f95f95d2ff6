"""Every law in `vaespec.spec.laws.LAWS` mapped to its check (the two must match exactly), and every
negative control of every chapter."""

from __future__ import annotations

from vaespec.spec.laws import LAWS

from . import bayes as laws_bayes
from . import differential as laws_differential
from . import estimators as laws_estimators
from . import identities as laws_identities
from . import own_differences as laws_own_differences
from . import quantizers as laws_quantizers
from . import statistical as laws_statistical
from . import vq as laws_vq
from . import vq_codebook as laws_vq_codebook
from . import vq_positions as laws_vq_positions
from .checking import Check

CHECKS: dict[str, Check] = {**laws_identities.CHECKS, **laws_statistical.CHECKS, **laws_differential.CHECKS,
                            **laws_vq.CHECKS, **laws_vq_codebook.CHECKS, **laws_vq_positions.CHECKS,
                            **laws_estimators.CHECKS, **laws_bayes.CHECKS, **laws_quantizers.CHECKS,
                            **laws_own_differences.CHECKS}

_missing = sorted(set(LAWS) - set(CHECKS))
_unregistered = sorted(set(CHECKS) - set(LAWS))
if _missing or _unregistered:  # a law without a check, or a check without a statement, is a bug
    raise RuntimeError(f"laws without checks: {_missing}; checks without laws: {_unregistered}")


def _controls():
    from ..controls import bayes as negative_controls_bayes
    from ..controls import conv as negative_controls_conv
    from ..controls import conv_vq as negative_controls_conv_vq
    from ..controls import estimators as negative_controls_estimators
    from ..controls import own_networks as negative_controls_own_networks
    from ..controls import quantizers as negative_controls_quantizers
    from ..controls import vae as negative_controls
    from ..controls import vq as negative_controls_vq
    return {**negative_controls.CONTROLS, **negative_controls_vq.CONTROLS, **negative_controls_estimators.CONTROLS,
            **negative_controls_bayes.CONTROLS, **negative_controls_quantizers.CONTROLS,
            **negative_controls_conv.CONTROLS, **negative_controls_conv_vq.CONTROLS,
            **negative_controls_own_networks.CONTROLS}


CONTROLS = _controls()
