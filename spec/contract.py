"""The backend contract: what any VAE implementation must provide.

Every function works on **explicit parameters** (a flat mapping, see
`vaespec.spec.architecture`) and **explicit noise** `eps`; nothing is hidden in
module state or a global random generator. Arrays cross the contract as float64
numpy arrays; a backend computes in its own `dtype` on its own `device` and returns
float64 numpy arrays. Gradients cross it as vector-Jacobian products:

    backend.vjp("loss", {"arch": a, "params": p, "x": x, "eps": e, "beta": 1.0,
                         "convention": c}, cotangent=1.0)
      -> {"params": {name: dloss/dparam}, "x": dloss/dx}

`FUNCTIONS` states each function once — arguments, named dimensions, outputs, formula, rules,
domain, rounding chain — and the tests, the CLI, the golden vectors and the docs all read it.
It gathers every chapter (`vaespec.spec.functions`); the VAE chapter's declarations are
`vaespec.spec.vae`. This module adds the protocol, `call` and the boundary checks by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .architecture import Architecture
from .conventions import Convention
from .errors import ConfigError, DTypeError, describe
from .functions import FUNCTIONS
from .shapes import Float
from .vae import VAE_FUNCTIONS
from .validation import check_args, check_cotangent, named

__all__ = ["FUNCTIONS", "VAE_FUNCTIONS", "Params", "VAEBackend", "call", "validate_args", "validate_vjp"]

Params = Mapping[str, Float[np.ndarray, "in out"]]


@runtime_checkable
class VAEBackend(Protocol):
    """What a VAE implementation provides to be checked by vaespec.

    Attributes `name`, `device` and `dtype` (a numpy-style name: "float64",
    "float32", "bfloat16" or "float16") label results. Every method takes and
    returns float64 numpy arrays; see `FUNCTIONS` for argument order and shapes.
    A backend may also provide `reparameterize_key(mu, log_var, key) -> (z, new_key)`;
    the key law is then checked too.
    """

    name: str
    device: str
    dtype: str

    def encode(self, arch: Architecture, params: Params, x: Float[np.ndarray, "batch input"]
               ) -> tuple[Float[np.ndarray, "batch latent"], Float[np.ndarray, "batch latent"]]: ...

    def decode(self, arch: Architecture, params: Params, z: Float[np.ndarray, "batch latent"]
               ) -> Float[np.ndarray, "batch output"]: ...

    def reparameterize(self, mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                       eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]: ...

    def sample_latent(self, arch: Architecture, params: Params, x: Float[np.ndarray, "batch input"],
                      eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch latent"]: ...

    def forward(self, arch: Architecture, params: Params, x: Float[np.ndarray, "batch input"],
                eps: Float[np.ndarray, "batch latent"]) -> Float[np.ndarray, "batch output"]: ...

    def generate(self, arch: Architecture, params: Params, eps: Float[np.ndarray, "batch latent"]
                 ) -> Float[np.ndarray, "batch output"]: ...

    def reconstruction_loss(self, x_hat: Float[np.ndarray, "batch output"], x: Float[np.ndarray, "batch output"],
                            convention: Convention) -> Float[np.ndarray, ""]: ...

    def kl_divergence(self, mu: Float[np.ndarray, "batch latent"], log_var: Float[np.ndarray, "batch latent"],
                      convention: Convention) -> Float[np.ndarray, ""]: ...

    def loss(self, arch: Architecture, params: Params, x: Float[np.ndarray, "batch input"],
             eps: Float[np.ndarray, "batch latent"], beta: float, convention: Convention) -> Float[np.ndarray, ""]: ...

    def vjp(self, function: str, args: Mapping[str, Any], cotangent: Any) -> dict[str, Any]:
        """Vector-Jacobian product of `function` at `args`.

        `cotangent` has the structure of the function's output (a tuple for
        `encode`, a float for the scalar losses). Returns a dict from each
        differentiable argument name to its gradient (a dict of arrays for "params").
        """
        ...


def call(backend: VAEBackend, function: str, args: Mapping[str, Any]) -> Any:
    """Call `function` on `backend` with the arguments named in `FUNCTIONS` (in order)."""
    spec = named(FUNCTIONS, function)
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to value for {function}, got {describe(args)}")
    missing = [a.name for a in spec.args if a.name not in args]
    if missing:
        raise ConfigError(f"args: {function} needs {[a.name for a in spec.args]}; missing {missing}")
    method = getattr(backend, function, None)
    if not callable(method):
        raise DTypeError(f"backend: expected a backend providing {function} (a VAEBackend), got {describe(backend)}")
    return method(*(args[a.name] for a in spec.args))


def validate_args(function: str, args: Mapping[str, Any], dtype: str = "float64", *,
                  own_networks: bool = False) -> dict[str, Any]:
    """Check `args` against `FUNCTIONS[function]` at a backend's boundary; raise a vaespec error naming the argument.

    `function` must be a name in `FUNCTIONS` and `args` a mapping holding each of its arguments (it may hold
    more: the suite passes one pool of example values to many functions, and the VQ reference reads an
    extra `indices`; only the function's own arguments are checked, converted and returned with the rest).
    Arrays must be finite float arrays whose named dimensions agree with each other and with
    `arch` (`input`, `latent`, `output`, the example axes `+input`/`+output`: (D,) dense, (C, H, W) for a
    `ConvArchitecture` or `ConvVQArchitecture`; a `VQArchitecture` also binds `embedding` and `codes`, a
    `ConvVQArchitecture` those and `*positions`, its z_e's (H′, W′));
    float16/float32 arrays are widened exactly to float64, masked arrays and `numpy.matrix` are
    refused (`vaespec.spec.shapes.check_array`); index arrays must be integer arrays within their
    bound; `arch` one of the declared architecture types; `params` must hold the layout of the part
    of the network the function uses (`Arg.layout`); scalars must be finite and within `[Arg.low,
    Arg.high]`; `convention` a preset name or a `Convention`; a key a `Key` or an integer seed.
    Then the declaration's `rules` (e.g. output_size = input_size where x̂ is compared with x, a
    Bernoulli target in [0, 1]) and last its numeric domain in `dtype` (the backend's compute dtype;
    float64 for the reference): `FunctionSpec.domain`, the rule of `vaespec.spec.domains`. Returns the
    arguments converted: float64 arrays and parameters, the convention and keys resolved
    (`vaespec.spec.validation.check_args`). `own_networks=True` (an adapter computing its own networks,
    `vaespec.impl.adapters.NetworkBackend`) also accepts a `vaespec.spec.own.OwnArchitecture` as `arch`.
    """
    return check_args(named(FUNCTIONS, function), args, dtype, own_networks=own_networks)[0]


def validate_vjp(function: str, args: Mapping[str, Any], cotangent: Any, dtype: str = "float64", *,
                 own_networks: bool = False) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """`validate_args` for a vector-Jacobian product, plus its cotangent; returns `(args, cotangents)`.

    `function` must have a differentiable argument. The cotangent has one entry per float output
    of `function` (a tuple or list of them when there are several, e.g. encode's `(d_mu, d_log_var)`),
    each a finite real number (0-d outputs) or array of the output's named shape; integer arrays
    and nested lists are converted to float64, None, bools, complex numbers, objects, NaN and Inf
    are refused (`DTypeError`/`DomainError` naming the entry `d_<output>`, e.g. `d_mu`, `d_loss`).
    Returns float64 arrays (floats for 0-d outputs).
    """
    spec = named(FUNCTIONS, function)
    checked, bindings = check_args(spec, args, dtype, own_networks=own_networks)
    if not spec.differentiable:
        raise ConfigError(f"function: {function} has no differentiable argument, so no vjp; the differentiable "
                          f"functions are {sorted(f for f, s in FUNCTIONS.items() if s.differentiable)}")
    arch = next((checked[a.name] for a in spec.args if a.kind == "arch"), None)
    return checked, check_cotangent(spec, cotangent, bindings, arch)
