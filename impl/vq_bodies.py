"""The VQ chapter's Torch bodies (`vaespec.spec.vq.FUNCTIONS`), one registration per function.

Every function runs the code users train with: the network functions a `VQVAE` made by
`from_params` (`vq_encode` its encoder alone), `ema_update` a `VectorQuantizerEMA` holding the
given state (train or eval mode as asked), the rest the functional ops of `vaespec.impl.vq` with
`validate=False` (the backend has checked the arguments at the boundary). `vjp` differentiates
these same computations by autograd: the straight-through estimator and the stop-gradients are what
is checked. Indices and usage come back as int64, counts as ints, keys as `Key`s
(`TorchBackend` converts by the outputs' kinds).

A code is chosen by the same `nearest_code` in every function, so one input gets one choice:

    quantize(z_e, C)        = (z_e + sg(e_k − z_e), k),  k(b) = argmin_k ‖z_e[b] − e_k‖²
    codebook_loss(z_e, C)   = mean_{b,d} (sg(z_e) − e_{k(b)})²      commitment_loss: (z_e − sg(e_{k(b)}))²
"""

from __future__ import annotations

import torch

from .bodies import Bodies, Inputs, Outputs
from .vq_builder import assemble
from .vq_functional import (
    codebook_health,
    codebook_loss,
    commitment_loss,
    init_codebook,
    laplace_smooth,
    nearest_code,
    quantize,
    reset_dead_codes,
)
from .vq_modules import VQVAE, VectorQuantizerEMA

BODIES = Bodies("vq")


def _model(inputs: Inputs) -> VQVAE:
    """A `VQVAE` holding `params` and `codebook`; its codebook parameter stands for the `codebook` argument."""
    encoder, decoder = inputs.modules("all")  # the backend's cached layers, holding params (and recorded)
    model = assemble(inputs.args["arch"], encoder, decoder, inputs.args["codebook"], inputs.dtype, inputs.device)
    inputs.record("codebook", model.quantizer.codebook)
    return model


@BODIES.register("vq_encode")
def _vq_encode(inputs: Inputs) -> Outputs:
    encoder, _ = inputs.modules("encoder")
    return (encoder(inputs.tensors["x"]),)


@BODIES.register("quantize")
def _quantize(inputs: Inputs) -> Outputs:
    return quantize(inputs.tensors["z_e"], inputs.tensors["codebook"], validate=False)


@BODIES.register("codebook_loss")
def _codebook_loss(inputs: Inputs) -> Outputs:
    z_e, codebook = inputs.tensors["z_e"], inputs.tensors["codebook"]
    return (codebook_loss(z_e, codebook, nearest_code(z_e, codebook, validate=False), validate=False),)


@BODIES.register("commitment_loss")
def _commitment_loss(inputs: Inputs) -> Outputs:
    z_e, codebook = inputs.tensors["z_e"], inputs.tensors["codebook"]
    return (commitment_loss(z_e, codebook, nearest_code(z_e, codebook, validate=False), validate=False),)


@BODIES.register("vq_forward")
def _vq_forward(inputs: Inputs) -> Outputs:
    out = _model(inputs)(inputs.tensors["x"])
    return out.x_hat, out.indices


@BODIES.register("vq_loss")
def _vq_loss(inputs: Inputs) -> Outputs:
    args = inputs.args
    return (_model(inputs).loss(inputs.tensors["x"], args["commitment_weight"], args["convention"]),)


@BODIES.register("init_codebook")
def _init_codebook(inputs: Inputs) -> Outputs:
    args = inputs.args
    return (init_codebook(args["num_embeddings"], args["embedding_dim"], args["key"], device=inputs.device,
                          dtype=inputs.dtype),)


@BODIES.register("laplace_smooth")
def _laplace_smooth(inputs: Inputs) -> Outputs:
    return (laplace_smooth(inputs.tensors["counts"], inputs.args["epsilon"], validate=False),)


@BODIES.register("ema_update")
def _ema_update(inputs: Inputs) -> Outputs:
    args, t = inputs.args, inputs.tensors
    codes, dim = t["codebook"].shape
    module = VectorQuantizerEMA(codes, dim, args["decay"], args["epsilon"], dtype=inputs.dtype, device="meta")
    module = module.to_empty(device=inputs.device)
    with torch.no_grad():
        for name in ("codebook", "ema_counts", "ema_sums"):
            getattr(module, name).copy_(t[name])
        module.ema_step.fill_(args["ema_step"])
    module.train(args["training"])
    module(t["z_e"])
    return module.codebook, module.ema_counts, module.ema_sums, module.ema_step


@BODIES.register("codebook_health")
def _codebook_health(inputs: Inputs) -> Outputs:
    return tuple(codebook_health(inputs.tensors["indices"], inputs.args["num_embeddings"],
                                 dtype=torch.promote_types(inputs.dtype, torch.float32), validate=False))


@BODIES.register("reset_dead_codes")
def _reset_dead_codes(inputs: Inputs) -> Outputs:
    t = inputs.tensors
    return reset_dead_codes(t["codebook"], t["usage"], t["z_e"], inputs.args["key"], validate=False)
