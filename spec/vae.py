"""The VAE chapter: encoder, decoder, reparameterization, the losses (`vaespec.spec.contract` states the contract).

Each function is declared once below with its rounding chain (`vaespec.spec.chains`) and, for the
functions on direct inputs, its numeric domain (the rule: `vaespec.spec.domains`):

- reparameterize: M = |μ| + e^{ℓ/2}|ε| elementwise;
- kl_divergence: M = Σ_bj (e^ℓ + |ℓ| + μ² + 1);
- reconstruction_loss: M = max(s, 1)·Σ_bd (|x̂| + |x|)², s the convention's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .architecture import Architecture, VQArchitecture
from .chains import REPARAMETERIZE, NetworkChain, decoder, encoder, total
from .conv import ConvArchitecture
from .conv_vq import ConvVQArchitecture
from .errors import ConfigError, DomainError
from .numerics import log_var_limits, reduction_length
from .shapes import EVENT, INPUT_EVENT, OUTPUT_EVENT, POSITIONS
from .signature import Arg, Domain, FunctionSpec, Output

# The dense network (x [batch, input]) or the convolutional one (x [batch, channels, height, width], issue 15).
ARCH = Arg("arch", "arch", types=(Architecture, ConvArchitecture))
# the VQ-VAEs' decoders too: the dense one's z [batch, embedding], the convolutional one's z_q [batch, H′, W′, E]
DECODER_ARCH = Arg("arch", "arch", types=(Architecture, ConvArchitecture, VQArchitecture, ConvVQArchitecture))
PARAMS = Arg("params", "params", differentiable=True)
ENCODER_PARAMS = Arg("params", "params", differentiable=True, layout="encoder")
DECODER_PARAMS = Arg("params", "params", differentiable=True, layout="decoder")
CONVENTION = Arg("convention", "convention")
X = Arg("x", "array", ("batch", INPUT_EVENT), True)  # [batch, input] dense, [batch, C, H, W] conv
Z = Arg("z", "array", ("batch", "latent"), True)
# decode's input: [batch, latent] for the VAEs and the dense VQ-VAE (no positions), [batch, H′, W′, E] channels-last
# for a ConvVQArchitecture (its arch binds *positions, `vaespec.spec.validation.arch_bindings`)
DECODER_Z = Arg("z", "array", ("batch", POSITIONS, "latent"), True)
MU = Arg("mu", "array", ("batch", "latent"), True)
LOG_VAR = Arg("log_var", "array", ("batch", "latent"), True,
              "finite reals in the dtype's domain (vaespec.spec.domains): e^log_var summed over the n terms stays "
              "representable, e.g. log_var ≤ 80.4 for 4096 float32 terms; below, only the size of −log_var/2 limits it")
EPS = Arg("eps", "array", ("batch", "latent"), False, "finite reals (standard normal noise)")
# reconstruction_loss compares whole examples: x̂ and x [batch, *event] ([batch, output] for the dense network's)
X_HAT = Arg("x_hat", "array", ("batch", EVENT), True)
TARGET = Arg("x", "array", ("batch", EVENT), True)
BETA = Arg("beta", "scalar", domain="β ≥ 0", low=0.0)


def output_matches_input(verb: str) -> Callable[[str, Mapping[str, Any]], None]:
    """The rule of a function that compares x̂ with x (`loss`, `vq_loss`, the network estimators):
    `arch.output_size` = `arch.input_size`, else `ConfigError` "arch: <function> <verb> …"."""
    def rule(function: str, checked: Mapping[str, Any]) -> None:
        arch = checked["arch"]
        if arch.output_size != arch.input_size:
            raise ConfigError(f"arch: {function} {verb}, so output_size must equal input_size; got "
                              f"output_size={arch.output_size}, input_size={arch.input_size}")
    return rule


# ----------------------------------------------------------------------------- domains
def _reparameterize_refuse(a, m, limit, dtype, n):
    b = tuple(int(i) for i in np.argwhere(~(m <= limit))[0])
    mu, lv, eps = (np.broadcast_to(a[k], m.shape) for k in ("mu", "log_var", "eps"))
    raise DomainError(
        f"{n('log_var')}: |mu| + e^(log_var/2)·|eps| must stay ≤ {limit:.4g} ({dtype}'s largest value) so z is "
        f"finite; got {n('log_var')} = {float(lv[b]):.6g}, {n('mu')} = {float(mu[b]):.6g}, "
        f"{n('eps')} = {float(eps[b]):.6g} at index {b}")


def _kl_magnitude(a):
    mu, lv = a["mu"], a["log_var"]
    return float(np.sum(np.exp(lv) + np.abs(lv) + mu * mu + 1.0))


def _kl_refuse(a, m, limit, dtype, n):
    mu, lv = a["mu"], a["log_var"]
    low, high = log_var_limits(dtype, max(mu.size, 1))
    name, got = (n("log_var"), f"log_var in [{float(lv.min()):.6g}, {float(lv.max()):.6g}]") \
        if (lv.max() > high or lv.min() < low) else (n("mu"), f"max |μ| = {float(np.abs(mu).max()):.6g}")
    raise DomainError(
        f"{name}: the KL's magnitude Σ(e^log_var + |log_var| + μ² + 1) must stay ≤ {limit:.4g} ({dtype}'s "
        f"largest value); for {mu.size} terms that means {low:.4g} ≤ log_var ≤ {high:.4g} and smaller μ; "
        f"got {got} (magnitude {m:.4g})")


def _reconstruction_magnitude(a):
    scale = max(1.0, getattr(a.get("convention"), "reconstruction_scale", 1.0))
    return float(scale * np.sum((np.abs(a["x_hat"]) + np.abs(a["x"])) ** 2))


def _reconstruction_refuse(a, m, limit, dtype, n):
    raise DomainError(
        f"{n('x_hat')}: the reconstruction's magnitude max(scale, 1)·Σ(|x̂| + |x|)² must stay ≤ {limit:.4g} ({dtype}'s "
        f"largest value); got max |{n('x_hat')}| = {float(np.abs(a['x_hat']).max()):.6g}, max |{n('x')}| = "
        f"{float(np.abs(a['x']).max()):.6g} "
        f"(magnitude {m:.4g} over {a['x'].size} terms)")


REPARAMETERIZE_DOMAIN = Domain.bounded(("mu", "log_var", "eps"),
                                       lambda a: np.abs(a["mu"]) + np.exp(0.5 * a["log_var"]) * np.abs(a["eps"]),
                                       _reparameterize_refuse)
KL_DOMAIN = Domain.bounded(("mu", "log_var"), _kl_magnitude, _kl_refuse)
RECONSTRUCTION_DOMAIN = Domain.bounded(("x_hat", "x"), _reconstruction_magnitude, _reconstruction_refuse)


# ----------------------------------------------------------------------------- chains
def _direct_loss_vjp(chain):
    """A loss on direct inputs: its gradient adds 2 elementwise ops to the forward chain."""
    return lambda s: total(chain(s), (2, 2))


def _reconstruction_chain(s):
    """The features of an example are all its ∏event entries (a [batch, output] x̂ has event (output,))."""
    features = int(np.prod(s[EVENT], dtype=np.int64)) if EVENT in s else s["output"]
    return reduction_length(s["batch"], features)


def _kl_chain(s):
    return reduction_length(s["batch"], s["latent"])


ENCODE = NetworkChain(lambda arch, batch: encoder(arch))
DECODE = NetworkChain(lambda arch, batch: decoder(arch))
FORWARD = NetworkChain(lambda arch, batch: total(encoder(arch), REPARAMETERIZE, decoder(arch)))


def _loss_chain(arch, batch):
    """forward, then the feature, latent and batch reductions and 8 elementwise ops."""
    return total(FORWARD.rule(arch, batch), (arch.output_size + arch.latent_size + batch + 8, 8))


# The symbolic proofs (`vaespec.proofs_tests.proofs`) the generated laws rest on.
_NETWORK = ("dense_layer_vjp", "activation_derivatives")
_FORMS = ("logistic_forms", "gelu_erfc_form", "first_order_corrections", "reference_constants")
_KL = ("kl_closed_form", "kl_log_variance_form", "kl_reference_series")

FUNCTIONS: dict[str, FunctionSpec] = {
    f.name: f
    for f in (
        FunctionSpec("encode", (ARCH, ENCODER_PARAMS, X),
                     (Output("mu", ("batch", "latent")), Output("log_var", ("batch", "latent"))),
                     "h = act(…act(x·W₀+b₀)…); μ = h·W_μ + b_μ; log σ² = h·W_lv + b_lv",
                     chain=ENCODE, proofs=_FORMS, gradient_proofs=_NETWORK),
        FunctionSpec("decode", (DECODER_ARCH, DECODER_PARAMS, DECODER_Z), (Output("x_hat", ("batch", OUTPUT_EVENT)),),
                     "x̂ = act(…act(z·V₀+c₀)…)·V_out + c_out", chain=DECODE, proofs=_FORMS, gradient_proofs=_NETWORK),
        FunctionSpec("reparameterize", (MU, LOG_VAR, EPS), (Output("z", ("batch", "latent")),),
                     "z = μ + exp(½ log σ²) ⊙ ε", domain=REPARAMETERIZE_DOMAIN,
                     chain=NetworkChain(lambda arch, batch: REPARAMETERIZE, needs_arch=False),
                     gradient_proofs=("reparameterize_gradients",)),
        FunctionSpec("sample_latent", (ARCH, ENCODER_PARAMS, X, EPS), (Output("z", ("batch", "latent")),),
                     "sample_latent(x, ε) = reparameterize(encode(x), ε)",
                     chain=NetworkChain(lambda arch, batch: total(encoder(arch), REPARAMETERIZE)),
                     proofs=_FORMS, gradient_proofs=(*_NETWORK, "reparameterize_gradients")),
        FunctionSpec("forward", (ARCH, PARAMS, X, EPS), (Output("x_hat", ("batch", OUTPUT_EVENT)),),
                     "forward(x, ε) = decode(reparameterize(encode(x), ε))",
                     chain=FORWARD, proofs=_FORMS, gradient_proofs=(*_NETWORK, "reparameterize_gradients")),
        FunctionSpec("generate", (ARCH, DECODER_PARAMS, EPS), (Output("x_hat", ("batch", OUTPUT_EVENT)),),
                     "generate(ε) = decode(reparameterize(0, 0, ε)) = decode(ε)  (prior path, p(z) = N(0, I))",
                     chain=DECODE, proofs=_FORMS, gradient_proofs=_NETWORK),
        FunctionSpec("reconstruction_loss", (X_HAT, TARGET, CONVENTION), (Output("loss", ()),),
                     "R = reduce_batch(scale · reduce_features((x̂ − x)²)), the features of x [batch, *event] all "
                     "its ∏event entries per example", domain=RECONSTRUCTION_DOMAIN,
                     chain=_reconstruction_chain, vjp_chain=_direct_loss_vjp(_reconstruction_chain),
                     gradient_proofs=("reconstruction_gradients",)),
        FunctionSpec("kl_divergence", (MU, LOG_VAR, CONVENTION), (Output("kl", ()),),
                     "KL = reduce_batch(reduce_latent(½(exp(lv) + μ² − 1 − lv)))", domain=KL_DOMAIN,
                     chain=_kl_chain, vjp_chain=_direct_loss_vjp(_kl_chain), proofs=_KL,
                     gradient_proofs=("kl_gradients",)),
        FunctionSpec("loss", (ARCH, PARAMS, X, EPS, BETA, CONVENTION), (Output("loss", ()),),
                     "loss = R(forward(x, ε), x) + β · KL(encode(x))",
                     rules=(output_matches_input("compares x̂ with x"),), chain=NetworkChain(_loss_chain),
                     proofs=("kl_log_variance_form", "kl_reference_series", *_FORMS),
                     gradient_proofs=("network_loss_vjp", "kl_gradients", "reconstruction_gradients",
                                      "reparameterize_gradients", *_NETWORK)),
    )
}
VAE_FUNCTIONS = FUNCTIONS
