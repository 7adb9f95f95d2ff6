"""The Bayesian chapter's Torch bodies (`vaespec.spec.bayes.FUNCTIONS`), one registration per function.

Both run `vaespec.impl.evidence` (D×D and L×L Cholesky factorisations), after the chapter's rule
on the validated arguments (`vaespec.spec.bayes.validate`: L ≤ D, and the magnitude and
conditioning domain in the backend's dtype). With σ² = e^ℓ and M = WᵀW + σ² I:

    linear_gaussian_log_evidence(x) = log N(x; b, W Wᵀ + σ² I)
    linear_gaussian_posterior(x)    = (M⁻¹ Wᵀ (x − b), σ² M⁻¹)
"""

from __future__ import annotations

from vaespec.spec.bayes import validate

from .bodies import Bodies, Inputs, Outputs
from .evidence import linear_gaussian_log_evidence, linear_gaussian_posterior

BODIES = Bodies("bayes")


@BODIES.register("linear_gaussian_log_evidence", check=validate)
def _linear_gaussian_log_evidence(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return (linear_gaussian_log_evidence(t["x"], t["weight"], t["bias"], float(inputs.args["noise_log_var"])),)


@BODIES.register("linear_gaussian_posterior", check=validate)
def _linear_gaussian_posterior(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return linear_gaussian_posterior(t["x"], t["weight"], t["bias"], float(inputs.args["noise_log_var"]))
