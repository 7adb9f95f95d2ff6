"""Shared pieces of the law checks: rounding an example to a backend, bounds, tolerances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from vaespec.reference.backend import ReferenceBackend
from vaespec.reference import magnitude
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.tolerances import LOG_VAR_DOMAIN, Bound, bound, chain_length, reduction_length

from .compare import LazyText, as_input, repro, tolerance_from

REFERENCE = ReferenceBackend()


@dataclass(frozen=True)
class Check:
    """How one law is checked: its example strategy and a function
    `run(backend, example, draw) -> worst ratio` that raises LawViolation on failure."""

    law: str
    strategy: Any
    run: Callable


def function_args(function: str, example, dtype: str) -> dict[str, Any]:
    """The arguments of `function` taken from `example`, rounded to `dtype`; a log-variance
    is clipped to the dtype's stated domain (`LOG_VAR_DOMAIN`: only float16's is narrower
    than the strategies' |lv| ≤ 20)."""
    args = {a.name: as_input(dtype, example.args[a.name]) for a in FUNCTIONS[function].args}
    if "log_var" in args:
        args["log_var"] = np.clip(args["log_var"], -LOG_VAR_DOMAIN[dtype], LOG_VAR_DOMAIN[dtype])
    return args


def function_bound(dtype: str, function: str, args) -> Bound:
    """The policy's bound for one evaluation of `function` (or `<function>_vjp`) at `args`."""
    base = function[: -len("_vjp")] if function.endswith("_vjp") else function
    if base == "reconstruction_loss":
        n, ops = reduction_length(*args["x_hat"].shape)
    elif base == "kl_divergence":
        n, ops = reduction_length(*args["mu"].shape)
    else:
        batch = next(args[k].shape[0] for k in ("x", "mu", "eps", "z") if k in args)
        n, ops = chain_length(function, args.get("arch"), batch)
    if function.endswith("_vjp") and base in ("reconstruction_loss", "kl_divergence"):
        n, ops = n + 2, ops + 2
    return bound(dtype, n, ops)


def function_tolerance(backend, function: str, args, sides: int = 2):
    """Entrywise tolerance for `function`'s outputs at `args` on `backend`'s dtype."""
    return tolerance_from(function_bound(backend.dtype, function, args), magnitude(function, args), sides)


def context(function: str, args, backend) -> LazyText:
    """The repro snippet of a failure message, formatted only if a message is (most examples pass)."""
    return LazyText(lambda: "Reproduce with:\n" + repro(function, args, backend))
