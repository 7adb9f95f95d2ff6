"""Every law in `vaespec.spec.laws.LAWS` mapped to its check (the two must match exactly), and every
negative control of every chapter."""

from __future__ import annotations

from vaespec.spec.laws import LAWS

from . import laws_bayes, laws_differential, laws_estimators, laws_identities, laws_statistical, laws_vq, laws_vq_codebook
from .checking import Check

CHECKS: dict[str, Check] = {**laws_identities.CHECKS, **laws_statistical.CHECKS, **laws_differential.CHECKS,
                            **laws_vq.CHECKS, **laws_vq_codebook.CHECKS, **laws_estimators.CHECKS, **laws_bayes.CHECKS}

_missing = sorted(set(LAWS) - set(CHECKS))
_unregistered = sorted(set(CHECKS) - set(LAWS))
if _missing or _unregistered:  # a law without a check, or a check without a statement, is a bug
    raise RuntimeError(f"laws without checks: {_missing}; checks without laws: {_unregistered}")


def _controls():
    from . import negative_controls, negative_controls_bayes, negative_controls_estimators, negative_controls_vq
    return {**negative_controls.CONTROLS, **negative_controls_vq.CONTROLS, **negative_controls_estimators.CONTROLS,
            **negative_controls_bayes.CONTROLS}


CONTROLS = _controls()
