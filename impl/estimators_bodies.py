"""The estimators chapter's Torch bodies (`vaespec.spec.estimators.FUNCTIONS`), one registration per function.

The network functions run the `Encoder`/`Decoder` modules from the backend's module cache
(`Inputs.modules`) through `vaespec.impl.estimators`, with the contract's likelihood by name
(`contract_likelihood`: "gaussian" with `decoder_log_var`, or "bernoulli"); the rest are the
functional ops of `vaespec.impl.likelihoods`, `.estimators` and `.embedding` (`validate=False`
where they take it: the backend has checked the arguments at the boundary):

    log w_k    = log p(x | z_k) + ½ Σ_j (lv_j + ε_kj² − z_kj²)      z_k = μ + e^{½lv} ⊙ ε_k
    elbo       = mean_k log w_k         iwae_bound = logsumexp_k log w_k − log K
    reconstruct(x) = decoder(μ(x))      embedding_lookup(T, i) = T[i]
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .bodies import Bodies, Inputs, Outputs
from .embedding import embedding_lookup
from .estimators import contract_likelihood, elbo, iwae_bound, log_importance_weights, log_mean_exp, reconstruct
from .likelihoods import bernoulli_log_likelihood, gaussian_log_likelihood

BODIES = Bodies("estimators")


def _estimate(estimator: Callable[..., Tensor], inputs: Inputs) -> Outputs:
    """`estimator(encoder, decoder, x, eps, likelihood)` with the modules and the contract's likelihood."""
    encoder, decoder = inputs.modules("all")
    t = inputs.tensors
    # decoder_log_var [*event] flattened as log_importance_weights flattens x̂ and x ([output] dense: unchanged)
    likelihood = contract_likelihood(inputs.args["likelihood"], t["decoder_log_var"].reshape(-1))
    return (estimator(encoder, decoder, t["x"], t["eps"], likelihood),)


@BODIES.register("gaussian_log_likelihood")
def _gaussian_log_likelihood(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return (gaussian_log_likelihood(t["x_hat"], t["x"], t["log_var"], validate=False),)


@BODIES.register("bernoulli_log_likelihood")
def _bernoulli_log_likelihood(inputs: Inputs) -> Outputs:
    return (bernoulli_log_likelihood(inputs.tensors["logits"], inputs.tensors["x"], validate=False),)


@BODIES.register("log_mean_exp")
def _log_mean_exp(inputs: Inputs) -> Outputs:
    return (log_mean_exp(inputs.tensors["log_weights"]),)


@BODIES.register("log_importance_weights")
def _log_importance_weights(inputs: Inputs) -> Outputs:
    return _estimate(log_importance_weights, inputs)


@BODIES.register("elbo")
def _elbo(inputs: Inputs) -> Outputs:
    return _estimate(elbo, inputs)


@BODIES.register("iwae_bound")
def _iwae_bound(inputs: Inputs) -> Outputs:
    return _estimate(iwae_bound, inputs)


@BODIES.register("reconstruct")
def _reconstruct(inputs: Inputs) -> Outputs:
    encoder, decoder = inputs.modules("all")
    return (reconstruct(encoder, decoder, inputs.tensors["x"]),)


@BODIES.register("embedding_lookup")
def _embedding_lookup(inputs: Inputs) -> Outputs:
    return (embedding_lookup(inputs.tensors["table"], inputs.tensors["indices"], validate=False),)
