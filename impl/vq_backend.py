"""The VQ chapter's contract methods (`vaespec.spec.vq.VQBackend`), mixed into `TorchBackend`.

Same boundary as the VAE chapter: float64 numpy in, validated by the contract's `validate_args`,
computed in the backend's dtype on its device, float64 numpy out (int64 arrays for indices and
usage, Python ints for counts, a `Key` for keys). Every function runs the code users train with:
the network functions run a `VQVAE` made by `from_params`, `ema_update` runs a
`VectorQuantizerEMA` holding the given state (train or eval mode as asked), the rest the
functional ops of `vaespec.impl.vq`. `vjp` (in `TorchBackend`) differentiates these same
computations by autograd: the straight-through estimator and the stop-gradients are what is checked.

A code is chosen by the same `nearest_code` in every function, so one input gets one choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.domains import check_result
from vaespec.spec.keys import Key

from ._dtypes import to_numpy
from .vq_builder import from_params, make_layers
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
from .vq_modules import VectorQuantizerEMA


def _export(value, kind: str):
    """One output across the boundary: float64 numpy, int64 numpy (an int when 0-d), or a Key as is."""
    if isinstance(value, Key):
        return value
    if kind == "int":
        array = value.detach().to("cpu", torch.int64).numpy().copy()
        return int(array) if array.ndim == 0 else array
    return to_numpy(value)


class VQMethods:
    """`VQBackend` on torch; needs the host class's `_evaluate`, `_tensor`, `_device` and `_dtype`."""

    _device: torch.device
    _dtype: torch.dtype

    def _evaluate_vq(self, function: str, args: Mapping[str, Any], leaves: dict | None) -> tuple:
        """The torch computation of VQ `function` on validated `args`, outputs in `FUNCTIONS` order.

        If `leaves` is a dict, each differentiable argument's leaf tensor is recorded in it
        (`"params"` as a dict of spec name -> `nn.Parameter`, `"codebook"` the model's parameter).
        """
        t: dict[str, Tensor] = {}
        for arg in FUNCTIONS[function].args:
            if arg.kind == "array":
                t[arg.name] = self._tensor(args[arg.name])
                if leaves is not None and arg.differentiable:
                    leaves[arg.name] = t[arg.name].requires_grad_()
            elif arg.kind == "index":
                t[arg.name] = torch.as_tensor(np.asarray(args[arg.name], dtype=np.int64), device=self._device)
        if function in ("vq_encode", "vq_forward", "vq_loss"):
            return self._network(function, args, t, leaves)
        if function == "quantize":
            return quantize(t["z_e"], t["codebook"], validate=False)
        if function in ("codebook_loss", "commitment_loss"):
            indices = nearest_code(t["z_e"], t["codebook"], validate=False)
            loss = codebook_loss if function == "codebook_loss" else commitment_loss
            return (loss(t["z_e"], t["codebook"], indices, validate=False),)
        if function == "init_codebook":
            return (init_codebook(args["num_embeddings"], args["embedding_dim"], args["key"],
                                  device=self._device, dtype=self._dtype),)
        if function == "laplace_smooth":
            return (laplace_smooth(t["counts"], args["epsilon"], validate=False),)
        if function == "ema_update":
            return self._ema_update(args, t)
        if function == "codebook_health":
            return tuple(codebook_health(t["indices"], args["num_embeddings"],
                                         dtype=torch.promote_types(self._dtype, torch.float32), validate=False))
        if function == "reset_dead_codes":
            return reset_dead_codes(t["codebook"], t["usage"], t["z_e"], args["key"], validate=False)
        raise AssertionError(f"no torch body for VQ function {function!r}")  # the chapter grew

    def _network(self, function: str, args: Mapping[str, Any], t: dict[str, Tensor], leaves: dict | None) -> tuple:
        if function == "vq_encode":
            modules = make_layers(args["arch"], args["params"], self._dtype, self._device, ("encoder",))
            outputs = (modules[0](t["x"]),)
        else:
            model = from_params(args["arch"], args["params"], args["codebook"], self._dtype, self._device)
            modules = [model.encoder, model.decoder]
            if leaves is not None:
                leaves["codebook"] = model.quantizer.codebook
            if function == "vq_forward":
                out = model(t["x"])
                outputs = (out.x_hat, out.indices)
            else:
                outputs = (model.loss(t["x"], args["commitment_weight"], args["convention"]),)
        if leaves is not None:
            leaves["params"] = {f"{name}.{kind}": getattr(linear, attr) for module in modules
                                for name, linear in module.dense_layers()
                                for kind, attr in (("kernel", "weight"), ("bias", "bias"))}
        return outputs

    def _ema_update(self, args: Mapping[str, Any], t: dict[str, Tensor]) -> tuple:
        codes, dim = t["codebook"].shape
        module = VectorQuantizerEMA(codes, dim, args["decay"], args["epsilon"], dtype=self._dtype, device="meta")
        module = module.to_empty(device=self._device)
        with torch.no_grad():
            for name in ("codebook", "ema_counts", "ema_sums"):
                getattr(module, name).copy_(t[name])
            module.ema_step.fill_(args["ema_step"])
        module.train(args["training"])
        module(t["z_e"])
        return module.codebook, module.ema_counts, module.ema_sums, module.ema_step

    def _vq_call(self, function: str, **args):
        with torch.no_grad():
            outputs = self._evaluate(function, args)
        result = tuple(_export(value, spec.kind) for value, spec in zip(outputs, FUNCTIONS[function].outputs))
        check_result(function, result, self.dtype)  # never Inf or NaN across the boundary (spec/domains.py)
        return result if len(result) > 1 else result[0]

    def vq_encode(self, arch, params, x):
        return self._vq_call("vq_encode", arch=arch, params=params, x=x)

    def quantize(self, z_e, codebook):
        return self._vq_call("quantize", z_e=z_e, codebook=codebook)

    def codebook_loss(self, z_e, codebook):
        return self._vq_call("codebook_loss", z_e=z_e, codebook=codebook)

    def commitment_loss(self, z_e, codebook):
        return self._vq_call("commitment_loss", z_e=z_e, codebook=codebook)

    def vq_forward(self, arch, params, codebook, x):
        return self._vq_call("vq_forward", arch=arch, params=params, codebook=codebook, x=x)

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        return self._vq_call("vq_loss", arch=arch, params=params, codebook=codebook, x=x,
                             commitment_weight=commitment_weight, convention=convention)

    def init_codebook(self, num_embeddings, embedding_dim, key):
        return self._vq_call("init_codebook", num_embeddings=num_embeddings, embedding_dim=embedding_dim, key=key)

    def laplace_smooth(self, counts, epsilon):
        return self._vq_call("laplace_smooth", counts=counts, epsilon=epsilon)

    def ema_update(self, codebook, ema_counts, ema_sums, ema_step, z_e, decay, epsilon, training):
        return self._vq_call("ema_update", codebook=codebook, ema_counts=ema_counts, ema_sums=ema_sums,
                             ema_step=ema_step, z_e=z_e, decay=decay, epsilon=epsilon, training=training)

    def codebook_health(self, indices, num_embeddings):
        return self._vq_call("codebook_health", indices=indices, num_embeddings=num_embeddings)

    def reset_dead_codes(self, codebook, usage, z_e, key):
        return self._vq_call("reset_dead_codes", codebook=codebook, usage=usage, z_e=z_e, key=key)
