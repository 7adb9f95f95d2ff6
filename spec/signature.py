"""The vocabulary the spec is written in: a function's signature and a law's statement.

Each chapter of the spec (`contract` for the VAE, `vq` for the VQ-VAE, `estimators`
for likelihoods and bounds) lists its functions as `FunctionSpec`s and its laws as
`Law`s; `vaespec.spec.contract.FUNCTIONS` and `vaespec.spec.laws.LAWS` gather them.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAPTERS = ("vae", "vq", "estimators", "bayes")


@dataclass(frozen=True)
class Arg:
    """One argument of a contract function.

    `kind` is "array" (float, with named `dims`), "index" (integer array with named
    `dims`, values in [0, `bound`)), "params", "arch", "convention", "scalar" (a float
    in [`low`, `high`]), "flag" (a bool) or "key" (a `vaespec.spec.keys.Key` or seed).
    `differentiable` arguments receive a gradient from `vjp`.
    """

    name: str
    kind: str
    dims: tuple[str, ...] = ()
    differentiable: bool = False
    domain: str = "finite reals"
    low: float = float("-inf")
    high: float = float("inf")
    bound: str = ""  # for "index": the named dimension its values index into


@dataclass(frozen=True)
class Output:
    name: str
    dims: tuple[str, ...]
    kind: str = "float"  # "float" or "int"


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    args: tuple[Arg, ...]
    outputs: tuple[Output, ...]
    formula: str
    chapter: str = "vae"

    @property
    def differentiable(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args if a.differentiable)

    @property
    def scalar_output(self) -> bool:
        return len(self.outputs) == 1 and self.outputs[0].dims == ()


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
