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
- the VQ chapter (`independent_vq.py`) quantizes with `torch.cdist` and has its own EMA code.

It imports the statement (`vaespec.spec`) and never `vaespec.reference` or
`vaespec.impl`. It declares the chapters it implements in `CHAPTERS`.

    vaespec check --backend vaespec.proofs_tests.ports.independent:backends
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence
from torch.distributions.transforms import AffineTransform
from vaespec.spec.contract import FUNCTIONS, validate_args
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.keys import Key

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

ACTIVATIONS: dict[str, Callable] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact erf form (approximate="none")
    "silu": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "elu": F.elu,
    "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    # F.softplus returns x itself above its threshold 20, off by log1p(e⁻ˣ) ≈ 2e-9: beyond float64's bound.
    "softplus": lambda t: torch.logaddexp(t, torch.zeros_like(t)),
    "identity": lambda t: t,
}


# ----------------------------------------------------------------------------- the VAE chapter
def dense(params, name: str, h):
    """`h · W + b` for the layer `name` of the flat layout."""
    return torch.addmm(params[f"{name}.bias"], h, params[f"{name}.kernel"])


def hidden(arch, params, layers, h):
    """The activated hidden stack `act(… act(h · W₀ + b₀) …)` over `layers` ((name, in, out) triples)."""
    act = ACTIVATIONS[arch.activation]
    for name, _, _ in layers:
        h = act(dense(params, name, h))
    return h


def encode(arch, params, x):
    h = hidden(arch, params, arch.encoder_layers(), x)
    return dense(params, "mu", h), dense(params, "log_var", h)


def decode(arch, params, z):
    return dense(params, "decoder_output", hidden(arch, params, arch.decoder_layers(), z))


def reparameterize(mu, log_var, eps):
    """`Normal(μ, σ).rsample()` with the noise given: the affine map ε ↦ μ + σ·ε, σ = exp(½ log σ²)."""
    return AffineTransform(loc=mu, scale=torch.exp(0.5 * log_var))(eps)


def _reduce(values, how: str, dim: int):
    return values.sum(dim) if how == "sum" else values.mean(dim)


def reconstruction_loss(x_hat, x, convention):
    c = convention
    per_example = c.reconstruction_scale * _reduce(F.mse_loss(x_hat, x, reduction="none"), c.reconstruction_feature_reduction, 1)
    return _reduce(per_example, c.reconstruction_batch_reduction, 0)


def kl_divergence_(mu, log_var, convention):
    """KL(N(μ, σ²) ‖ N(0, 1)) per coordinate by torch.distributions, then the convention's reductions."""
    posterior = Normal(mu, torch.exp(0.5 * log_var), validate_args=False)
    prior = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
    per = kl_divergence(posterior, prior)
    return _reduce(_reduce(per, convention.kl_latent_reduction, 1), convention.kl_batch_reduction, 0)


def _sample(a):
    mu, log_var = encode(a["arch"], a["params"], a["x"])
    return mu, log_var, reparameterize(mu, log_var, a["eps"])


def _loss(a):
    mu, log_var, z = _sample(a)
    x_hat = decode(a["arch"], a["params"], z)
    return (reconstruction_loss(x_hat, a["x"], a["convention"])
            + a["beta"] * kl_divergence_(mu, log_var, a["convention"]),)


# name -> (arguments by contract name) -> tuple of outputs in FUNCTIONS order
VAE: dict[str, Callable[[dict], tuple]] = {
    "encode": lambda a: encode(a["arch"], a["params"], a["x"]),
    "decode": lambda a: (decode(a["arch"], a["params"], a["z"]),),
    "reparameterize": lambda a: (reparameterize(a["mu"], a["log_var"], a["eps"]),),
    "sample_latent": lambda a: (_sample(a)[2],),
    "forward": lambda a: (decode(a["arch"], a["params"], _sample(a)[2]),),
    "generate": lambda a: (decode(a["arch"], a["params"], a["eps"]),),  # reparameterize(0, 0, ε) = ε exactly
    "reconstruction_loss": lambda a: (reconstruction_loss(a["x_hat"], a["x"], a["convention"]),),
    "kl_divergence": lambda a: (kl_divergence_(a["mu"], a["log_var"], a["convention"]),),
    "loss": _loss,
}

CHAPTERS: tuple[str, ...] = ("vae",)
BODIES: dict[str, Callable[[dict], tuple]] = dict(VAE)


# ----------------------------------------------------------------------------- the backend
class IndependentPort:
    """The contract on the functions above, for one torch device and dtype.

    **Arguments**
    - `device`: a torch device name ("cpu", "cuda").
    - `dtype`: "float64", "float32", "bfloat16" or "float16".
    """

    name = "independent"
    chapters = CHAPTERS

    def __init__(self, device: str = "cpu", dtype: str = "float64"):
        if dtype not in DTYPES:
            raise ConfigError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
        self.device, self.dtype = str(torch.device(device)), dtype
        self._device, self._dtype = torch.device(device), DTYPES[dtype]

    def __repr__(self) -> str:
        return f"IndependentPort(device={self.device!r}, dtype={self.dtype!r})"

    def _tensor(self, value, integer: bool = False):
        return torch.as_tensor(np.asarray(value), dtype=torch.int64 if integer else self._dtype, device=self._device)

    def _inputs(self, function: str, args: Mapping[str, Any]) -> dict:
        """Checked arguments (`validate_args`), arrays as tensors of this backend's dtype and device."""
        checked = validate_args(function, args)
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
            raise ShapeError(f"cotangent: expected {len(outputs)} arrays for {function}'s float outputs, got {len(given)}")
        tangents = tuple(self._tensor(np.asarray(c, dtype=np.float64)) for c in given)
        for out, tangent in zip(outputs, tangents):
            if tangent.shape != out.shape:
                raise ShapeError(f"cotangent: expected shape {tuple(out.shape)} for {function}, got {tuple(tangent.shape)}")
        grads = pullback(tangents)

        def host(g):
            return {k: host(v) for k, v in g.items()} if isinstance(g, dict) else g.detach().to("cpu", torch.float64).numpy()
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


__all__ = ["CHAPTERS", "IndependentPort", "Key", "backends"]
