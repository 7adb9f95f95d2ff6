"""An independent port of the vaespec contract, written apart from `vaespec.impl`.

A suite that only ever passed `vaespec.impl` might pass it because both were written by
the same hands. This port is written in another style, so its passing is evidence that
the suite accepts correct implementations it was not written against:

- functional torch, no `nn.Module`: a dense layer is `torch.addmm(b, h, W)` on the flat
  parameter mapping itself (kernels `[in, out]`, no transposes);
- the reparameterization is `torch.distributions`' affine transform applied to the
  explicit noise (what `Normal(μ, σ).rsample()` does with noise it draws itself);
- the KL is `torch.distributions.kl_divergence(Normal(μ, σ), Normal(0, 1))`, the
  scale-based formula ½(σ² + μ² − 1 − log σ²), not the log-variance form of the spec;
- softplus is `logaddexp(x, 0)`; gradients come from `torch.func.vjp`;
- the VQ chapter quantizes with `torch.cdist` (direct differences) and has its own EMA code;
- the estimators chapter is `torch.distributions` log densities and `torch.logsumexp`
  (`independent_estimators.py`);
- the Bayesian chapter's evidence is `LowRankMultivariateNormal` (`independent_bayes.py`);
- the quantizers chapter computes its constants per level in Python floats (`independent_quantizers.py`).

The chapters' functions are in `independent_vae.py`, `independent_vq.py`, `independent_estimators.py` and
`independent_bayes.py`; this module is the backend around them.

It imports the statement (`vaespec.spec`) and never `vaespec.reference` or
`vaespec.impl`. It declares the chapters it implements in `CHAPTERS`.

    vaespec check --backend vaespec.proofs_tests.ports.independent:backends
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from vaespec.spec.contract import FUNCTIONS, validate_args
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.keys import normal

from .independent_bayes import BAYES
from .independent_estimators import ESTIMATORS
from .independent_quantizers import QUANTIZERS
from .independent_vae import VAE
from .independent_vq import VQ

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# name -> (arguments by contract name, tensors on the port's device) -> outputs in FUNCTIONS order
BODIES: dict[str, Callable[[dict], tuple]] = {**VAE, **VQ, **ESTIMATORS, **BAYES, **QUANTIZERS}
# "bayes" in float64/float32 only (no narrow solve)
CHAPTERS: tuple[str, ...] = ("vae", "vq", "estimators", "bayes", "quantizers")


# ----------------------------------------------------------------------------- the backend
class IndependentPort:
    """The contract on the functions above, for one torch device and dtype.

    **Arguments**
    - `device`: a torch device name ("cpu", "cuda").
    - `dtype`: "float64", "float32", "bfloat16" or "float16".
    """

    name = "independent"
    chapters = CHAPTERS
    key_stream = "vaespec"  # init_codebook and reset_dead_codes draw from vaespec.spec.keys (docs/porting.md §3.6)
    # independent_vae implements the conv VAE with F.conv2d, and the conv VQ-VAE's 1×1 convolutions as einsums
    architectures = ("dense", "conv", "conv_vq")

    def __init__(self, device: str = "cpu", dtype: str = "float64"):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
        self.device, self.dtype = str(torch.device(device)), dtype
        self._device, self._dtype = torch.device(device), DTYPES[dtype]
        if dtype not in ("float64", "float32"):
            self.chapters = tuple(c for c in CHAPTERS if c != "bayes")

    def __repr__(self) -> str:
        return f"IndependentPort(device={self.device!r}, dtype={self.dtype!r})"

    def _tensor(self, value, integer: bool = False):
        return torch.as_tensor(np.asarray(value), dtype=torch.int64 if integer else self._dtype, device=self._device)

    def _inputs(self, function: str, args: Mapping[str, Any]) -> dict:
        """Checked arguments (`validate_args`), arrays as tensors of this backend's dtype and device."""
        checked = validate_args(function, args)
        checked["like"] = torch.zeros((), dtype=self._dtype, device=self._device)  # for bodies that make tensors
        for arg in FUNCTIONS[function].args:
            if arg.kind in ("array", "index"):
                checked[arg.name] = self._tensor(checked[arg.name], integer=arg.kind == "index")
            elif arg.kind == "params":
                checked[arg.name] = {k: self._tensor(v) for k, v in checked[arg.name].items()}
        return checked

    def _outputs(self, function: str, values: tuple):
        converted = []
        for spec, value in zip(FUNCTIONS[function].outputs, values):
            if spec.kind == "key":
                converted.append(value)
            elif spec.kind == "int":
                converted.append(np.asarray(value.cpu() if torch.is_tensor(value) else value, dtype=np.int64))
            else:
                converted.append(value.detach().to("cpu", torch.float64).numpy())
        return tuple(converted) if len(converted) > 1 else converted[0]

    def call(self, function: str, *args):
        """`function` on positional arguments in `FUNCTIONS[function].args` order."""
        names = [a.name for a in FUNCTIONS[function].args]
        inputs = self._inputs(function, dict(zip(names, args)))
        with torch.no_grad():
            return self._outputs(function, BODIES[function](inputs))

    def reparameterize_key(self, mu, log_var, key):
        """`(reparameterize(μ, lv, ε), key′)` with `(ε, key′) = normal(key, μ.shape)`, the statement's key stream."""
        eps, new_key = normal(key, np.shape(mu))
        return self.call("reparameterize", mu, log_var, eps), new_key

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        """Vector-Jacobian product of `function` at `args` by `torch.func.vjp`.

        **Arguments** `function` (a name in `FUNCTIONS`), `args` (by contract name), `cotangent`
        (the float outputs' structure: a tuple for several, else one array or float).
        **Returns** `{argument: gradient}` for each differentiable argument, float64 numpy.
        """
        spec = FUNCTIONS[function]
        if function not in BODIES:
            raise ConfigError(f"function: expected one of {sorted(BODIES)}, got {function!r}")
        inputs = self._inputs(function, args)
        names = spec.differentiable
        floats = [i for i, o in enumerate(spec.outputs) if o.kind == "float"]

        def body(*primals):
            outs = BODIES[function]({**inputs, **dict(zip(names, primals))})
            return tuple(outs[i] for i in floats)

        outputs, pullback = torch.func.vjp(body, *(inputs[n] for n in names))
        given = tuple(cotangent) if len(floats) > 1 else (cotangent,)
        if len(given) != len(outputs):
            raise ShapeError(f"cotangent: expected {len(outputs)} arrays for {function}'s float outputs, "
                             f"got {len(given)}")
        tangents = tuple(self._tensor(np.asarray(c, dtype=np.float64)) for c in given)
        for out, tangent in zip(outputs, tangents):
            if tangent.shape != out.shape:
                raise ShapeError(f"cotangent: expected shape {tuple(out.shape)} for {function}, got "
                                 f"{tuple(tangent.shape)}")
        grads = pullback(tangents)

        def host(g):
            if isinstance(g, dict):
                return {k: host(v) for k, v in g.items()}
            return g.detach().to("cpu", torch.float64).numpy()
        return {name: host(grad) for name, grad in zip(names, grads)}


def _method(function: str):
    def method(self, *args):
        return self.call(function, *args)
    method.__name__ = function
    method.__doc__ = f"`{function}`: {FUNCTIONS[function].formula}"
    return method


for _function in BODIES:
    setattr(IndependentPort, _function, _method(_function))


def supported(device: torch.device, dtype: str) -> bool:
    """float64/32 everywhere; bfloat16 on the CPU and bf16-capable CUDA; float16 on CUDA."""
    if dtype in ("float64", "float32"):
        return True
    if dtype == "bfloat16":
        return device.type == "cpu" or torch.cuda.is_bf16_supported()
    return device.type == "cuda"


def backends(devices=None) -> list[IndependentPort]:
    """The port on every available device (CPU, and CUDA when present) in every dtype it supports there."""
    names = devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [IndependentPort(d, dtype) for d in names for dtype in DTYPES if supported(torch.device(d), dtype)]


__all__ = ["BODIES", "CHAPTERS", "IndependentPort", "backends"]
