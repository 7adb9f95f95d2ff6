"""vector-quantize-pytorch 1.32.0's `FSQ`, `LFQ` and `ResidualVQ` as a backend of the quantizers chapter.

Float64 numpy in, the library's modules called in torch (float64 or float32 tensors), numpy out; gradients by
autograd through the same calls. Each call builds the module for its arguments:

- FSQ(levels) with `dim = len(levels)` (no projections); `fsq_bound` is `FSQ.bound` with its `round_ste`
  replaced by the identity for the call, times `levels // 2` (the library has no unrounded bound);
  `fsq_quantize`/`fsq_indices` are its `forward` on [batch, 1, dim]; `fsq_indices_to_codes` its
  `indices_to_codes`; `fsq_implicit_codebook` its `implicit_codebook`. vqp refuses L = 2 unless
  `preserve_symmetry` (a different bound): an example with L = 2 is rejected (`hypothesis.reject`), not run.
- LFQ(dim = d, codebook_size = 2^d) in training mode (its straight-through and losses exist only there), with
  `entropy_loss_weight = 1`, `commitment_loss_weight = 1`, the given `diversity_gamma`, and `inv_temperature`
  passed to `forward`; the losses are its `LossBreakdown` (per_sample_entropy, batch_entropy, commitment) and
  the entropy aux loss is `aux_loss − commitment`.
- ResidualVQ(dim, num_quantizers = n, codebook_size = K) holding the first n codebooks (quantizer dropout as
  the n-stage quantizer; vqp draws n at random), `rotation_trick = False` (the plain straight-through per stage;
  the default rotation trick is another estimator), `ema_update = False`, training mode (its commitment losses
  exist only there); indices padded with −1 after n.

    vaespec check --backend vaespec.proofs_tests.thirdparty.vqp_quantizers:backends --chapter quantizers

The laws it breaks, each with its verdict and reason, are `vqp_quantizers.differences` next to this file (a
`--vaespec-xfail` file); `proofs_tests/selftests/test_vqp_quantizers.py` checks every line of it both ways.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from unittest import mock

import numpy as np
import torch
from hypothesis import reject
from vector_quantize_pytorch import FSQ, LFQ, ResidualVQ
from vector_quantize_pytorch import finite_scalar_quantization as fsq_module

from vaespec.spec.contract import FUNCTIONS, validate_args
from vaespec.spec.errors import ConfigError, ShapeError

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class VQPQuantizers:
    """The quantizers chapter on vector-quantize-pytorch, CPU, in `dtype` ("float64" or "float32")."""

    name = "vqp-quantizers"
    device = "cpu"
    chapters = ("quantizers",)

    def __init__(self, dtype: str = "float64"):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
        self.dtype, self._dtype = dtype, DTYPES[dtype]

    def __repr__(self) -> str:
        return f"VQPQuantizers(dtype={self.dtype!r})"

    def _t(self, value) -> torch.Tensor:
        return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=self._dtype)

    # ------------------------------------------------------------------------- the library calls
    def _fsq(self, levels) -> FSQ:
        levels = [int(v) for v in np.asarray(levels)]
        if 2 in levels:
            reject()  # vqp asserts preserve_symmetry for L = 2 (a different bound): outside what vqp computes
        return FSQ(levels=levels).to(self._dtype)

    def _run(self, function: str, a: Mapping[str, Any], z: torch.Tensor | None) -> tuple:
        """The function's outputs as tensors (the float ones differentiable in `z` when it requires grad)."""
        if function == "fsq_bound":
            module = self._fsq(a["levels"])
            with mock.patch.object(fsq_module, "round_ste", lambda t: t):
                bounded = module.bound(z) * (module._levels // 2)
            return (bounded,)
        if function in ("fsq_quantize", "fsq_indices"):
            out, indices = self._fsq(a["levels"])(z[:, None, :])
            return (out[:, 0],) if function == "fsq_quantize" else (indices[:, 0].long(),)
        if function == "fsq_indices_to_codes":
            return (self._fsq(a["levels"]).indices_to_codes(torch.as_tensor(a["indices"])),)
        if function == "fsq_implicit_codebook":
            return (self._fsq(a["levels"]).implicit_codebook,)
        if function in ("lfq_quantize", "lfq_entropy_loss", "lfq_commitment_loss"):
            return self._lfq(function, a, z)
        if function == "lfq_indices_to_codes":
            d = int(a["codebook_dim"])
            return (LFQ(dim=d, codebook_size=2**d).indices_to_codes(torch.as_tensor(a["indices"])),)
        if function in ("rvq_quantize", "rvq_commitment_loss"):
            return self._rvq(function, a, z)
        raise ConfigError(f"function: expected a quantizers-chapter function, got {function!r}")

    def _lfq(self, function: str, a: Mapping[str, Any], z: torch.Tensor) -> tuple:
        d = z.shape[-1]
        module = LFQ(dim=d, codebook_size=2**d, entropy_loss_weight=1.0, commitment_loss_weight=1.0,
                     diversity_gamma=float(a.get("diversity_gamma", 1.0))).to(self._dtype).train()
        (out, indices, aux), breakdown = module(z[:, None, :], inv_temperature=float(a.get("inv_temperature", 100.0)),
                                                return_loss_breakdown=True)
        if function == "lfq_quantize":
            return out[:, 0], indices[:, 0].long()
        if function == "lfq_commitment_loss":
            return (breakdown.commitment,)
        return breakdown.per_sample_entropy, breakdown.batch_entropy, aux - breakdown.commitment

    def _rvq(self, function: str, a: Mapping[str, Any], z: torch.Tensor) -> tuple:
        books, n = np.asarray(a["codebooks"]), int(a["num_stages"])
        stages, codes, dim = books.shape
        module = ResidualVQ(dim=dim, num_quantizers=n, codebook_size=codes, rotation_trick=False, ema_update=False,
                            kmeans_init=False).to(self._dtype).train()
        with torch.no_grad():
            for s, layer in enumerate(module.layers):
                layer._codebook.embed.copy_(self._t(books[s])[None])
        out, indices, losses = module(z[:, None, :])
        padded = torch.full((z.shape[0], stages), -1, dtype=torch.int64)
        padded[:, :n] = indices[:, 0].long()
        if function == "rvq_quantize":
            return out[:, 0], padded
        return (torch.cat([losses.reshape(-1).to(z.dtype), torch.zeros(stages - n, dtype=z.dtype)]),)

    # ------------------------------------------------------------------------- the contract
    def call(self, function: str, *args):
        names = [arg.name for arg in FUNCTIONS[function].args]
        a = validate_args(function, dict(zip(names, args)))
        z = self._t(a[_float_input(function)]) if _float_input(function) else None
        with torch.enable_grad() if function.startswith(("lfq", "rvq")) else torch.no_grad():
            outputs = self._run(function, a, z)
        result = tuple(_numpy(value, spec.kind) for value, spec in zip(outputs, FUNCTIONS[function].outputs))
        return result if len(result) > 1 else result[0]

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        spec = FUNCTIONS.get(function) if isinstance(function, str) else None
        if spec is None or not spec.differentiable:
            raise ConfigError(f"function: expected a differentiable quantizers function, got {function!r}")
        a = validate_args(function, args)
        name = spec.differentiable[0]
        z = self._t(a[name]).requires_grad_()
        with torch.enable_grad():
            outputs = [o for o, s in zip(self._run(function, a, z), spec.outputs) if s.kind == "float"]
        given = tuple(cotangent) if len(outputs) > 1 else (cotangent,)
        if len(given) != len(outputs):
            raise ShapeError(f"cotangent: expected {len(outputs)} entries for {function}, got {len(given)}")
        tangents = [torch.as_tensor(np.asarray(c, dtype=np.float64), dtype=o.dtype).reshape(o.shape)
                    for o, c in zip(outputs, given)]
        (grad,) = torch.autograd.grad(outputs, [z], tangents, allow_unused=True)
        return {name: np.zeros(z.shape) if grad is None else grad.detach().to(torch.float64).numpy()}


def _float_input(function: str) -> str | None:
    """The float array argument the library's module is called on (None: it takes only integers)."""
    names = [arg.name for arg in FUNCTIONS[function].args if arg.kind == "array"]
    return names[0] if names else None


def _numpy(value, kind: str):
    if kind == "int":
        return value.detach().to(torch.int64).numpy().copy()
    array = value.detach().to(torch.float64).numpy().copy()
    return float(array) if array.ndim == 0 else array


def _method(function: str):
    def method(self, *args):
        return self.call(function, *args)
    method.__name__ = function
    method.__doc__ = f"`{function}` on vector-quantize-pytorch: {FUNCTIONS[function].formula}"
    return method


for _function, _spec in FUNCTIONS.items():
    if _spec.chapter == "quantizers":
        setattr(VQPQuantizers, _function, _method(_function))


DIFFERENCES = "vqp_quantizers.differences"  # the laws vqp breaks, verdict and reason per line (an xfail file)


def backends() -> list[VQPQuantizers]:
    """vqp's quantizers on the CPU in float64 and float32."""
    return [VQPQuantizers(dtype) for dtype in DTYPES]
