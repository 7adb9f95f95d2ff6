"""The vocabulary the spec is written in: a function's declaration and a law's statement.

Each chapter of the spec (`vae` for the VAE, `vq` for the VQ-VAE, `estimators` for likelihoods
and bounds, `bayes` for the Bayesian chapter) declares its functions as `FunctionSpec`s and its
laws as `Law`s; `vaespec.spec.functions.FUNCTIONS` and `vaespec.spec.laws.LAWS` gather them.
A declaration is all the other layers read about a function: its arguments (kinds, named
dimensions, bounds), outputs, formula, the rules its arguments obey together (`rules`), its
numeric domain (`domain`), its rounding chain (`chain`, `vjp_chain`) and how its laws are
generated (`exact`, `discrete`, `proofs`, `gradient_proofs`, `kink`). Adding a function is adding
one declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .architecture import Architecture, VQArchitecture
from .chains import Chain, Sizes, backward, gradient_rows
from .conv import ConvArchitecture
from .conv_vq import ConvVQArchitecture
from .errors import ConfigError, DTypeError, ShapeError, describe
from .numerics import MAX_FINITE
from .shapes import bind_shape, check_array, check_scalar

CHAPTERS = ("vae", "vq", "estimators", "bayes", "quantizers")

# The suite and the legacy chain helpers name a function's vector-Jacobian product "<function>_vjp".
VJP_SUFFIX = "_vjp"


def split_vjp(name: str) -> tuple[str, bool]:
    """`(function, True)` for a name `<function>_vjp`, `(name, False)` for any other."""
    if name.endswith(VJP_SUFFIX):
        return name[: -len(VJP_SUFFIX)], True
    return name, False


@dataclass(frozen=True)
class Arg:
    """One argument of a contract function.

    `kind` is "array" (float, with named `dims`), "index" (integer array with named
    `dims`, values in [0, `bound`), and in [`low`, `high`] when stated), "params", "arch",
    "convention", "scalar" (a float in [`low`, `high`], or [`low`, `high`) with `exclusive_high`),
    "flag" (a bool), "count" (an integer ≥ 0), "size" (a positive integer binding `dims[0]`),
    "likelihood" (one of `choices`) or "key" (a `vaespec.spec.keys.Key` or seed). `differentiable` arguments receive
    a gradient from `vjp`. For "arch": `types`, the architectures accepted; for "params":
    `layout`, the part of `arch.parameter_shapes` the function reads ("encoder", "decoder", "all").
    """

    name: str
    kind: str
    dims: tuple[str, ...] = ()
    differentiable: bool = False
    domain: str = "finite reals"
    low: float = float("-inf")
    high: float = float("inf")
    bound: str = ""  # for "index": the named dimension its values index into
    exclusive_high: bool = False  # for "scalar": `high` itself is outside (decay < 1)
    types: tuple[type[Architecture | VQArchitecture | ConvArchitecture | ConvVQArchitecture], ...] = ()  # for "arch"
    layout: str = "all"  # for "params"
    choices: tuple[str, ...] = ()  # for "likelihood"


@dataclass(frozen=True)
class Output:
    name: str
    dims: tuple[str, ...]
    kind: str = "float"  # "float" or "int"


def _largest(dtype: str) -> float:
    return MAX_FINITE[dtype]


@dataclass(frozen=True)
class Domain:
    """A function's numeric domain on its inputs in a dtype (the rule: `vaespec.spec.domains`).

    `operands` are the arguments the rule reads: real numbers or float arrays, broadcast together
    when `broadcast` (elementwise operands). `rule(args, dtype, name)` raises `DomainError` when
    `args` lie outside, naming each argument `name(arg)` (the caller's name for it). A domain
    stated by a magnitude M — M(args) ≤ the dtype's limit — is built by `Domain.bounded`, which
    also keeps `magnitude` (`vaespec.spec.domains.magnitudes` reads it).
    """

    operands: tuple[str, ...]
    rule: Callable[[Mapping[str, Any], str, Callable[[str], str]], None]
    magnitude: Callable[[Mapping[str, Any]], Any] | None = None
    broadcast: bool = True

    @classmethod
    def bounded(cls, operands: tuple[str, ...], magnitude: Callable[[Mapping[str, Any]], Any],
                refuse: Callable[[Mapping[str, Any], Any, float, str, Callable[[str], str]], None], *,
                broadcast: bool = True,
                limit: Callable[[str], float] = _largest) -> Domain:
        """The domain M(args) ≤ limit(dtype) (default `MAX_FINITE[dtype]`), M = `magnitude(args)` computed in
        float64 (an overflow there is +inf); outside it `refuse(args, M, limit, dtype, name)` raises."""
        def rule(args: Mapping[str, Any], dtype: str, name: Callable[[str], str]) -> None:
            m, top = cls.measure(magnitude, args), limit(dtype)
            if not np.all(m <= top):
                refuse(args, m, top, dtype, name)
        return cls(operands, rule, magnitude, broadcast)

    @staticmethod
    def measure(magnitude: Callable[[Mapping[str, Any]], Any], args: Mapping[str, Any]) -> Any:
        with np.errstate(over="ignore", invalid="ignore"):
            return magnitude(args)

    def read(self, function: str, args: object, *, checked: bool = False) -> dict[str, Any]:
        """`args` with the operands as float64 arrays (a number becomes a 0-d array), checked to be finite
        reals and, when `broadcast`, to broadcast together; `ConfigError` for a missing one. `checked`: the
        arguments come from `validation.check_args`, so a finite float64 array or float operand is only
        converted (the full check, with its message, is for anything else)."""
        if not isinstance(args, Mapping):
            raise DTypeError(f"args: expected a mapping from argument name to array, got {describe(args)}")
        out = {}
        for name in self.operands:
            if name not in args:
                raise ConfigError(f"args: {function}'s domain reads {list(self.operands)}; missing {name!r}")
            value = args[name]
            if checked and (type(value) is float or (type(value) is np.ndarray and value.dtype == np.float64)) \
                    and np.isfinite(value).all():  # else the full check below, for its error message
                out[name] = np.asarray(value)
                continue
            if not isinstance(value, np.ndarray):
                value = check_scalar(name, value)
            out[name] = check_array(name, value, tuple(f"axis{i}" for i in range(np.ndim(value))))
        if self.broadcast:
            try:
                np.broadcast_shapes(*(v.shape for v in out.values()))
            except ValueError:
                raise ShapeError(f"args: {function}'s arguments {list(out)} do not broadcast: shapes "
                                 f"{[v.shape for v in out.values()]}") from None
        return {**args, **out}

    def check(self, function: str, args: object, dtype: str = "float64",
              names: Mapping[str, str] | None = None, *, checked: bool = False) -> None:
        """Raise `DomainError` when `args` lie outside the domain in `dtype` (`names`: the caller's names;
        `checked`: `args` were validated by `validation.check_args`, as for `read`)."""
        checked_args = self.read(function, args, checked=checked)
        self.rule(checked_args, dtype, (lambda key: names.get(key, key)) if names else (lambda key: key))


@dataclass(frozen=True)
class FunctionSpec:
    """One contract function, declared once; every layer reads it.

    - `args`, `outputs`, `formula`, `chapter`: the signature and its statement.
    - `rules`: rules the checked arguments obey together, `rule(function, checked)` raising a vaespec
      error (e.g. `loss` needs output_size = input_size); applied by `validate_args` after each argument.
    - `domain`: the numeric domain checked on the inputs (`Domain`), or None: then it is where the
      result is finite, checked on the result (`vaespec.spec.domains.check_result`).
    - `chain(sizes) -> (n, n_ops)`: the longest rounding chain at the sizes of the named dimensions
      (`sizes`, with "arch"), or None for a function whose laws are exact; `vjp_chain` likewise for
      its VJP, by default the forward chain, the backward chain and the batch sum (`chains.backward`; over batch ×
      positions for a `ConvVQArchitecture`'s kernels, `chains.gradient_rows`).
    - `exact`: its `<function>_matches_reference` law is exact (integer results, key-driven draws);
      `discrete`: it makes a discrete choice (quantize's index), so it is compared with the reference
      at the backend's own choices; `proofs`, `gradient_proofs`: the symbolic proofs its generated laws
      rest on; `kink`: the derivative it takes at its non-differentiable points (`dtypes.KINKS`).
    """

    name: str
    args: tuple[Arg, ...]
    outputs: tuple[Output, ...]
    formula: str
    chapter: str = "vae"
    rules: tuple[Callable[[str, Mapping[str, Any]], None], ...] = ()
    domain: Domain | None = None
    chain: Callable[[Sizes], Chain] | None = None
    vjp_chain: Callable[[Sizes], Chain] | None = None
    exact: bool = False
    discrete: bool = False
    proofs: tuple[str, ...] = ()
    gradient_proofs: tuple[str, ...] = ()
    kink: str = ""

    @property
    def differentiable(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args if a.differentiable)

    @property
    def scalar_output(self) -> bool:
        return len(self.outputs) == 1 and self.outputs[0].dims == ()

    def sizes(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The sizes of the named dimensions at `args` (each array and index argument's shape, each size
        argument's value) and `arch`, for the arguments present in `args`."""
        sizes: dict[str, Any] = {}
        for arg in self.args:
            if arg.name not in args:
                continue
            if arg.kind in ("array", "index"):
                sizes.update(bind_shape(arg.dims, np.shape(args[arg.name])))
            elif arg.kind == "size":
                sizes[arg.dims[0]] = int(args[arg.name])
            elif arg.kind == "arch":
                sizes["arch"] = args[arg.name]
        return sizes

    def chain_at(self, sizes: Sizes, *, vjp: bool = False) -> Chain:
        """(n, n_ops) of the function (of its VJP with `vjp`) at `sizes`; `ConfigError` when it has none."""
        if self.chain is None:
            raise ConfigError(f"function: {self.name} has no rounding chain: its laws are exact (no roundoff bound)")
        if not vjp:
            return self.chain(sizes)
        if not self.differentiable:
            raise ConfigError(f"vjp: {self.name} has no differentiable argument, so no vjp")
        if self.vjp_chain is not None:
            return self.vjp_chain(sizes)
        return backward(self.chain(sizes), gradient_rows(sizes))

    def rounding_chain(self, args: Mapping[str, Any], *, vjp: bool = False) -> Chain:
        """(n, n_ops) of the function (of its VJP with `vjp`) at `args`: `chain_at(sizes(args))`."""
        return self.chain_at(self.sizes(args), vjp=vjp)


@dataclass(frozen=True)
class Law:
    """A named statement every implementation of its chapter must satisfy.

    `tolerance` is its class: "exact", "roundoff", "order", "statistical" or
    "criterion" (a stated acceptance rule, e.g. quantize's near-tie criterion).
    `proofs` names the symbolic proofs (in `vaespec.proofs_tests.proofs`) it rests on.
    """

    name: str
    statement: str
    functions: tuple[str, ...]
    domain: str
    tolerance: str
    chapter: str = "vae"
    requires: str = ""  # an optional backend capability the law needs ("" = none)
    proofs: tuple[str, ...] = ()
