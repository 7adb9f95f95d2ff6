"""The backend contract: what any VAE implementation must provide.

Every function works on **explicit parameters** (a flat mapping, see
`vaespec.spec.architecture`) and **explicit noise** `eps`; nothing is hidden in
module state or a global random generator. Arrays cross the contract as float64
numpy arrays; a backend computes in its own `dtype` on its own `device` and returns
float64 numpy arrays. Gradients cross it as vector-Jacobian products:

    backend.vjp("loss", {"arch": a, "params": p, "x": x, "eps": e, "beta": 1.0,
                         "convention": c}, cotangent=1.0)
      -> {"params": {name: dloss/dparam}, "x": dloss/dx}

`FUNCTIONS` states each function once — arguments, named dimensions, outputs,
formula — and the tests, the CLI, the golden vectors and the docs all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .architecture import Architecture
from .conventions import Convention
from .shapes import Float
from .signature import Arg, FunctionSpec, Output

Params = Mapping[str, Float[np.ndarray, "in out"]]


ARCH = Arg("arch", "arch")
PARAMS = Arg("params", "params", differentiable=True)
CONVENTION = Arg("convention", "convention")
X = Arg("x", "array", ("batch", "input"), True)
Z = Arg("z", "array", ("batch", "latent"), True)
MU = Arg("mu", "array", ("batch", "latent"), True)
LOG_VAR = Arg("log_var", "array", ("batch", "latent"), True,
              "finite reals in the dtype's domain (vaespec.spec.domains): e^log_var summed over the n terms stays "
              "representable, e.g. log_var ≤ 80.4 for 4096 float32 terms; below, only the size of −log_var/2 limits it")
EPS = Arg("eps", "array", ("batch", "latent"), False, "finite reals (standard normal noise)")
X_HAT = Arg("x_hat", "array", ("batch", "output"), True)
TARGET = Arg("x", "array", ("batch", "output"), True)
BETA = Arg("beta", "scalar", domain="β ≥ 0", low=0.0)

VAE_FUNCTIONS: dict[str, FunctionSpec] = {
    f.name: f
    for f in (
        FunctionSpec("encode", (ARCH, PARAMS, X),
                     (Output("mu", ("batch", "latent")), Output("log_var", ("batch", "latent"))),
                     "h = act(…act(x·W₀+b₀)…); μ = h·W_μ + b_μ; log σ² = h·W_lv + b_lv"),
        FunctionSpec("decode", (ARCH, PARAMS, Z), (Output("x_hat", ("batch", "output")),),
                     "x̂ = act(…act(z·V₀+c₀)…)·V_out + c_out"),
        FunctionSpec("reparameterize", (MU, LOG_VAR, EPS), (Output("z", ("batch", "latent")),),
                     "z = μ + exp(½ log σ²) ⊙ ε"),
        FunctionSpec("sample_latent", (ARCH, PARAMS, X, EPS), (Output("z", ("batch", "latent")),),
                     "sample_latent(x, ε) = reparameterize(encode(x), ε)"),
        FunctionSpec("forward", (ARCH, PARAMS, X, EPS), (Output("x_hat", ("batch", "output")),),
                     "forward(x, ε) = decode(reparameterize(encode(x), ε))"),
        FunctionSpec("generate", (ARCH, PARAMS, EPS), (Output("x_hat", ("batch", "output")),),
                     "generate(ε) = decode(reparameterize(0, 0, ε)) = decode(ε)  (prior path, p(z) = N(0, I))"),
        FunctionSpec("reconstruction_loss", (X_HAT, TARGET, CONVENTION), (Output("loss", ()),),
                     "R = reduce_batch(scale · reduce_features((x̂ − x)²))"),
        FunctionSpec("kl_divergence", (MU, LOG_VAR, CONVENTION), (Output("kl", ()),),
                     "KL = reduce_batch(reduce_latent(½(exp(lv) + μ² − 1 − lv)))"),
        FunctionSpec("loss", (ARCH, PARAMS, X, EPS, BETA, CONVENTION), (Output("loss", ()),),
                     "loss = R(forward(x, ε), x) + β · KL(encode(x))"),
    )
}

# Every chapter's functions; a chapter's module states its own (`vaespec.spec.vq`, …).
from . import bayes as _bayes
from . import estimators as _estimators
from . import vq as _vq

FUNCTIONS: dict[str, FunctionSpec] = {**VAE_FUNCTIONS, **_vq.FUNCTIONS, **_estimators.FUNCTIONS, **_bayes.FUNCTIONS}


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


def call(backend: VAEBackend, function: str, args: Mapping[str, Any]):
    """Call `function` on `backend` with the arguments named in `FUNCTIONS` (in order)."""
    from .errors import ConfigError, DTypeError, describe, show

    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to value for {function}, got {describe(args)}")
    spec = FUNCTIONS[function]
    missing = [a.name for a in spec.args if a.name not in args]
    if missing:
        raise ConfigError(f"args: {function} needs {[a.name for a in spec.args]}; missing {missing}")
    method = getattr(backend, function, None)
    if not callable(method):
        raise DTypeError(f"backend: expected a backend providing {function} (a VAEBackend), got {describe(backend)}")
    return method(*(args[a.name] for a in spec.args))


def validate_args(function: str, args: Mapping[str, Any], dtype: str = "float64") -> dict[str, Any]:
    """Check `args` against `FUNCTIONS[function]` at a backend's boundary; raise a vaespec error naming the argument.

    `function` must be a name in `FUNCTIONS` and `args` a mapping holding each of its arguments (it may hold
    more: the suite passes one pool of example values to many functions, and the VQ reference reads an
    extra `indices`; only the function's own arguments are checked, converted and returned with the rest).
    Arrays must be finite float arrays whose named dimensions agree with each other and with
    `arch` (`input`, `latent`, `output`; a `VQArchitecture` also binds `embedding` and `codes`);
    float16/float32 arrays are widened exactly to float64, masked arrays and `numpy.matrix` are
    refused (`vaespec.spec.shapes.check_array`); index arrays must be integer arrays within their
    bound; `params` must hold the layout of the part of the network the function uses; scalars must
    be finite and within `[Arg.low, Arg.high]`; `convention` a preset name or a `Convention`; a key
    a `Key` or an integer seed. The estimators chapter adds its own rules
    (`vaespec.spec.estimators._chapter_rules`). Returns the arguments converted: float64 arrays and
    parameters, the convention and keys resolved. Last, the numeric domain of the function in
    `dtype` (the backend's compute dtype; float64 for the reference) is checked:
    `vaespec.spec.domains.check_domain`.
    """
    return _validate(function, args, dtype)[0]


def validate_vjp(function: str, args: Mapping[str, Any], cotangent: Any, dtype: str = "float64"
                 ) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """`validate_args` for a vector-Jacobian product, plus its cotangent; returns `(args, cotangents)`.

    `function` must have a differentiable argument. The cotangent has one entry per float output
    of `function` (a tuple or list of them when there are several, e.g. encode's `(d_mu, d_log_var)`),
    each a finite real number (0-d outputs) or array of the output's named shape; integer arrays
    and nested lists are converted to float64, None, bools, complex numbers, objects, NaN and Inf
    are refused (`DTypeError`/`DomainError` naming the entry `d_<output>`, e.g. `d_mu`, `d_loss`).
    Returns float64 arrays (floats for 0-d outputs).
    """
    from .errors import ConfigError, DTypeError, ShapeError, describe
    from .shapes import as_real_array, check_scalar

    checked, bindings = _validate(function, args, dtype)
    spec = FUNCTIONS[function]
    if not spec.differentiable:
        raise ConfigError(f"function: {function} has no differentiable argument, so no vjp; the differentiable "
                          f"functions are {sorted(f for f, s in FUNCTIONS.items() if s.differentiable)}")
    outputs = [o for o in spec.outputs if o.kind == "float"]
    if len(outputs) > 1:
        if not isinstance(cotangent, (tuple, list)):
            raise DTypeError(f"cotangent: expected a tuple of {len(outputs)} arrays for {function}'s outputs "
                             f"{[o.name for o in outputs]}, got {describe(cotangent)}")
        given = tuple(cotangent)
    else:
        given = (cotangent,)
    if len(given) != len(outputs):
        raise ShapeError(f"cotangent: expected {len(outputs)} arrays for {function}'s outputs "
                         f"{[o.name for o in outputs]}, got {len(given)}")
    result = []
    for out, value in zip(outputs, given):
        name = f"d_{out.name} (cotangent)"  # the cotangent of output `y` is named d_y in every message
        if out.dims == ():
            result.append(check_scalar(name, value))
        else:
            result.append(as_real_array(name, value, out.dims, dict(bindings)))
    return checked, tuple(result)


def _validate(function: str, args: Mapping[str, Any], dtype: str) -> tuple[dict[str, Any], dict[str, int]]:
    """`validate_args`'s work: the converted arguments and the dimension sizes they bind."""
    from .architecture import Architecture, VQArchitecture
    from .conventions import get_convention
    from .errors import ConfigError, DomainError, DTypeError, describe, show
    from .keys import MAX_DRAW, as_key
    from .shapes import check_array, check_params, check_scalar

    if not isinstance(function, str) or function not in FUNCTIONS:
        raise ConfigError(f"function: expected one of {sorted(FUNCTIONS)}, got {show(function)}")
    if not isinstance(args, Mapping):
        raise DTypeError(f"args: expected a mapping from argument name to value for {function}, got {describe(args)}")
    from .domains import check_dtype
    check_dtype(dtype)
    spec = FUNCTIONS[function]
    missing = [a.name for a in spec.args if a.name not in args]
    if missing:
        raise ConfigError(f"args: {function} needs {[a.name for a in spec.args]}; missing {missing}")
    checked, bindings = dict(args), {}
    arch = args.get("arch")
    if "arch" in args:
        expected = _ARCH_TYPES.get(function, VQArchitecture if spec.chapter == "vq" else Architecture)
        if not isinstance(arch, expected):
            names = " or ".join(f"vaespec.spec.architecture.{t.__name__}" for t in
                                (expected if isinstance(expected, tuple) else (expected,)))
            raise DTypeError(f"arch: expected a {names} (for {function}), got {describe(arch)}")
        bindings = {"input": arch.input_size, "latent": arch.latent_size, "output": arch.output_size}
        if isinstance(arch, VQArchitecture):
            bindings.update(embedding=arch.embedding_dim, codes=arch.num_embeddings)
    for arg in spec.args:  # sizes first: they bind the dimensions the arrays are checked against
        if arg.kind == "size":
            value = args[arg.name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_DRAW:
                raise ConfigError(f"{arg.name}: expected a positive integer ≤ {MAX_DRAW} ({arg.domain}), got {show(value)}")
            checked[arg.name] = bindings[arg.dims[0]] = int(value)
    for arg in spec.args:
        value = args[arg.name]
        if arg.kind == "array":
            value = checked[arg.name] = check_array(arg.name, value, arg.dims, bindings)
            if arg.high < np.inf and (np.any(value < arg.low) or np.any(value > arg.high)):
                raise DomainError(f"{arg.name}: expected values in [{arg.low:g}, {arg.high:g}] ({arg.domain}), got values "
                                  f"in [{value.min()}, {value.max()}]")
            if arg.low > -np.inf and np.any(value < arg.low):
                raise DomainError(f"{arg.name}: expected values ≥ {arg.low} ({arg.domain}), got min {value.min()}")
        elif arg.kind == "index":
            value = checked[arg.name] = check_array(arg.name, value, arg.dims, bindings, kind="int")
            high = bindings.get(arg.bound)
            if value.size and (value.min() < 0 or (high is not None and value.max() >= high)):
                raise DomainError(f"{arg.name}: expected integers in [0, {high}) ({arg.domain}), got values in "
                                  f"[{value.min()}, {value.max()}]")
        elif arg.kind == "params":
            checked[arg.name] = check_params("params", value, arch.parameter_shapes(_PARTS.get(function, "all")),
                                             allowed=arch.parameter_shapes("all"))
        elif arg.kind == "scalar":
            checked[arg.name] = check_scalar(arg.name, value, low=arg.low, high=arg.high)
            if arg.name == "decay" and checked[arg.name] >= 1.0:  # 1 − decayᵗ = 0: the debiasing divides by it
                raise DomainError(f"decay: expected 0 ≤ decay < 1, got {checked[arg.name]}")
        elif arg.kind == "convention":
            checked[arg.name] = get_convention(value)
        elif arg.kind == "flag":
            if not isinstance(value, (bool, np.bool_)):
                raise DTypeError(f"{arg.name}: expected True or False, got {describe(value)}")
            checked[arg.name] = bool(value)
        elif arg.kind == "count":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
                raise DomainError(f"{arg.name}: expected an integer in [0, 2**63) ({arg.domain}), got {show(value)}")
            checked[arg.name] = int(value)
        elif arg.kind == "key":
            checked[arg.name] = as_key(value)
        elif arg.kind == "likelihood":
            from .estimators import LIKELIHOODS
            if not isinstance(value, str) or value not in LIKELIHOODS:
                raise ConfigError(f"likelihood: expected one of {LIKELIHOODS}, got {show(value)}")
    if function == "laplace_smooth" and not np.sum(checked["counts"]) > 0:
        raise DomainError("counts: expected a positive total (Laplace smoothing rescales to Σ N), got Σ N = 0")
    if function in ("loss", "vq_loss") and arch.output_size != arch.input_size:
        raise ConfigError(f"arch: {function} compares x̂ with x, so output_size must equal input_size; got "
                          f"output_size={arch.output_size}, input_size={arch.input_size}")
    if spec.chapter == "estimators":
        from .estimators import _chapter_rules
        _chapter_rules(function, checked)
    from .domains import check_domain
    check_domain(function, checked, dtype)
    return checked, bindings


# The part of the parameter layout each network function reads.
_PARTS = {"encode": "encoder", "sample_latent": "encoder", "decode": "decoder", "generate": "decoder",
          "forward": "all", "loss": "all", "vq_encode": "encoder", "vq_forward": "all", "vq_loss": "all"}

# Functions that accept either architecture: the VQ-VAE's decoder is the VAE's `decode`.
def _arch_types():
    from .architecture import Architecture, VQArchitecture
    return {"decode": (Architecture, VQArchitecture)}


_ARCH_TYPES = _arch_types()
