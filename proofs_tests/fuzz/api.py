"""A fuzz harness for the Python API: bad arguments to every public function of every layer.

    python -m vaespec.proofs_tests.fuzz.api --size N [--seed S] [--json FILE]

**What is called.** The public API is enumerated, not listed: every contract function of
`FUNCTIONS` (and its `vjp`, and `reparameterize_key`) on `ReferenceBackend` and `TorchBackend`;
every name in the layers' `__all__` (`vaespec.reference`, `vaespec.impl`, `vaespec.impl.vq`); every
public function defined in the other public modules (`MODULES`: the spec's keys, tolerances,
domains, contract, shapes, init, the chapters' validators, the reference's VQ and estimators
modules, the torch likelihoods, estimators and embedding). A new function is covered without an
edit as long as its parameters' names are in the pool of valid values (`fuzz.values.pools`); one whose are
not is reported as uncovered, and the test fails.

**What is tried.** For each function, a valid call first (it must succeed: the baseline), then
each parameter in turn replaced by every bad value its valid value's type admits (`fuzz.values.mutations`):
wrong types, ranks, sizes, dtypes (int, bool, complex, object, longdouble), NaN and Inf, masked
arrays hiding a NaN, `numpy.matrix`, huge Python integers (2¹¹⁰⁰, a 10⁴-digit one), empty
dimensions, unknown names, devices torch cannot use, endless iterators; `--size N` then adds N
random draws per parameter (random indices, magnitudes, shapes, seeds). Values a function may
accept — float16/float32 arrays (widened exactly), subnormals, non-contiguous views, huge but
finite values — are marked so: they must give a finite result or a vaespec error.

**Outcome classes.** Good: `refused` (a vaespec error whose message names the argument) and
`accepted` (a finite result, for a value marked acceptable). Bad: `unnamed` (a vaespec error not
naming it), `foreign` (any other exception: numpy's, torch's, TypeError …), `non-finite` (Inf or
NaN returned), `accepted-bad` (a value that must be refused was not) and `timeout` (a call over
`TIME_LIMIT` seconds: a hang). Values of the torch hot path (module forwards and the estimators
that take modules; docs/guarantees.md) are tried for types and shapes only.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from vaespec import impl, reference
from vaespec.impl import vq as impl_vq
from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import VaespecError
from vaespec.spec.shapes import bind_shape, shape_of

from .values import Bad, mutations, overrides, pools

TIME_LIMIT = 10.0
GOOD = ("refused", "accepted")
BAD = ("unnamed", "foreign", "non-finite", "accepted-bad", "timeout", "baseline-failed")

# Public modules without an `__all__`, by category; their public functions (defined there) are called.
MODULES = {
    "keys": ["vaespec.spec.keys"],
    "tolerances": ["vaespec.spec.tolerances", "vaespec.spec.numerics"],
    "domains": ["vaespec.spec.domains"],
    "spec": ["vaespec.spec.contract", "vaespec.spec.shapes", "vaespec.spec.init", "vaespec.spec.estimators",
             "vaespec.spec.vq", "vaespec.spec.conventions", "vaespec.spec.architecture", "vaespec.spec.errors"],
    "reference": ["vaespec.reference.vq", "vaespec.reference.estimators"],
    "impl": ["vaespec.impl.likelihoods", "vaespec.impl.estimators", "vaespec.impl.embedding"],
}
# Layers whose `__all__` is the public API (category, module).
ALL = [("reference", reference), ("impl", impl), ("impl", impl_vq)]
# Torch hot-path callables: values unchecked by design (IEEE arithmetic), so only types and shapes are tried.
HOT_PATH = {"log_importance_weights", "elbo", "iwae_bound", "reconstruct", "generate", "log_mean_exp",
            "contract_likelihood"}
# Internal or purely descriptive callables, not part of the value-checking API.
SKIP = {"describe", "show",
        # shape metadata (dimension names, shapes as tuples), not a user's data: their callers' values are fuzzed
        "split_shape", "bind_shape", "shape_of", "channels_first_note"}
# Value mutations the hot path does not look at (labels, or label prefixes ending in "*").
VALUES = {"NaN", "Inf", "-Inf", "huge 1e300", "1e154", "subnormal", "random scale*", "a NaN function",
          "random non-finite entry"}
# Concept names a parameter's messages may use instead of its own (`get_activation(name)` says "activation").
ALIASES = {"name": {"activation", "likelihood"}, "value": {"activation", "key"}}
# Parameters whose values a function never reads (only their type, shape, dtype and device).
SHAPE_ONLY = {"tensor"}
# The checking helpers' metadata (dimension names, bounds, labels) is the calling code's, not a user's data:
# only their data parameter is fuzzed. `check_result` passes any non-float value through by design.
METADATA = {"check_array": {"name", "dims", "bindings", "kind", "finite", "allow_empty"},
            "as_real_array": {"name", "dims", "bindings"}, "check_scalar": {"name", "low", "high"},
            "check_params": {"name", "shapes", "allowed", "finite"}, "check_result": {"function", "what", "result"}}
# Values accepted by design: (function, parameter) -> labels, with the reason. The function is a target's full
# name, or its last component for every target of that name.
BY_DESIGN = {("contract_likelihood", "decoder_log_var"): {"wrong rank"},  # any rank broadcastable to x̂
             ("vaespec.impl.embedding.embedding_lookup", "indices"): {"wrong rank"},  # [batch] or [batch, fields]
             ("codebook_health", "indices"): {"wrong rank"},  # [batch, *positions]: any rank ≥ 1
             # the quantizers' [batch, *positions, dim] and [batch, *positions]: an extra axis is a position axis
             # (nothing else binds LFQ's dim; FSQ's levels do, so FSQ's z is refused naming it)
             **{(f, p): {"wrong rank"} for f, p in (("lfq_quantize", "z"), ("lfq_entropy_loss", "z"),
                                                    ("lfq_commitment_loss", "z"), ("lfq_indices_to_codes", "indices"),
                                                    ("fsq_indices_to_codes", "indices"))},
             # the domain helpers read their operands only; the rest of a validated mapping passes through
             # a mapping of arguments may hold more than the function's (one pool of examples for many)
             **{(f, "args"): {"a non-str key", "an extra key"} for f in ("magnitudes", "check_domain", "call", "vjp",
                                                                          "magnitude", "vjp_magnitude", "chain_length",
                                                                          "validate_args", "validate_vjp", "validate",
                                                                          "function_bound")},
             # the reference's per-function VJPs and magnitudes take such a mapping too (`f_vjp(args, cotangent)`)
             **{(f + part, "args"): {"a non-str key", "an extra key"} for f in FUNCTIONS
                for part in ("_vjp", "_magnitude", "_vjp_magnitude")},
             ("init_codebook_magnitude", "args"): {"a non-str key", "an extra key", "a NaN entry"},  # no array to NaN
             ("as_real_array", "value"): {"a list", "a torch tensor", "int dtype"},  # any real array-like
             **{("vaespec.impl.estimators.log_mean_exp", p): labels  # any axis of any rank
                for p, labels in (("log_weights", {"wrong rank"}), ("dim", {"-1"}))}}

class Timeout(Exception):
    pass


@dataclass
class Target:
    category: str
    name: str
    fn: object
    pool: str
    flavour: str  # "numpy" or "torch"
    params: list = field(default_factory=list)


# ----------------------------------------------------------------------------- targets
def _pool_of(module_name: str, name: str, flavour: str) -> str:
    chapter = FUNCTIONS[name].chapter if name in FUNCTIONS else \
        "vq" if "vq" in module_name else "bayes" if ("bayes" in module_name or "evidence" in module_name) \
        else "estimators" if ("estimators" in module_name or "likelihood" in module_name
                                                          or "embedding" in module_name) else "vae"
    return f"torch-{chapter}" if flavour == "torch" else chapter


def targets() -> list[Target]:
    """Every public callable, by category (see the module docstring)."""
    import importlib

    from vaespec.impl import TorchBackend
    from vaespec.reference import ReferenceBackend

    found: list[Target] = []
    for label, backend in (("reference backend", ReferenceBackend()),
                           ("torch backend", TorchBackend("cpu", "float32"))):
        for function, spec in FUNCTIONS.items():
            found.append(Target(label, f"{type(backend).__name__}.{function}", getattr(backend, function),
                                spec.chapter, "numpy", [a.name for a in spec.args]))
            if spec.differentiable:
                found.append(Target(label, f"{type(backend).__name__}.vjp[{function}]",
                                    _vjp_caller(backend, function), spec.chapter, "numpy",
                                    [a.name for a in spec.args] + ["cotangent"]))
        found.append(Target(label, f"{type(backend).__name__}.reparameterize_key", backend.reparameterize_key, "vae",
                            "numpy", ["mu", "log_var", "key"]))
        for chapter in ("vae", "vq", "estimators"):  # vjp itself, its function name and args fuzzed too
            found.append(Target(label, f"{type(backend).__name__}.vjp({chapter})", backend.vjp, chapter, "numpy",
                                ["function", "args", "cotangent"]))
    seen = set()
    for category, module in ALL:
        flavour = "torch" if module.__name__.startswith("vaespec.impl") else "numpy"
        for name in module.__all__:
            obj = getattr(module, name)
            if skip(obj, name) or (module.__name__, name) in seen:
                continue
            seen.add((module.__name__, name))
            found.append(_target(category, f"{module.__name__}.{name}", obj, flavour, module.__name__))
    for category, names in MODULES.items():
        for module_name in names:
            module = importlib.import_module(module_name)
            flavour = "torch" if module_name.startswith("vaespec.impl") else "numpy"
            for name, obj in vars(module).items():
                if (name.startswith("_") or not inspect.isfunction(obj) or obj.__module__ != module_name
                        or skip(obj, name)):
                    continue
                found.append(_target(category, f"{module_name}.{name}", obj, flavour, module_name))
    return found


def skip(obj, name) -> bool:
    return (name in SKIP or not callable(obj) or (inspect.isclass(obj) and (issubclass(obj, tuple)
                                                                               or issubclass(obj, Exception))))


def _target(category, qualname, obj, flavour, module_name) -> Target:
    short = qualname.rsplit(".", 1)[-1]
    target = Target(category, qualname, obj, _pool_of(module_name, short, flavour), flavour)
    signature = inspect.signature(obj)
    target.params = [p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                     and p.name != "validate"]
    return target


def _vjp_caller(backend, function):
    spec = FUNCTIONS[function]

    def vjp(cotangent, **args):
        return backend.vjp(function, args, cotangent)
    vjp.__signature__ = inspect.Signature([inspect.Parameter(a.name, inspect.Parameter.KEYWORD_ONLY)
                                           for a in spec.args] + [inspect.Parameter("cotangent",
                                                                                    inspect.Parameter.KEYWORD_ONLY)])
    vjp.cotangent_of = function
    return vjp


def _cotangent(function: str, pool: dict):
    """Ones shaped like `function`'s float outputs, their dimensions bound by the pool's arguments."""
    spec, arch = FUNCTIONS[function], pool.get("arch")
    fields = {"input": "input_size", "output": "output_size", "latent": "latent_size", "embedding": "embedding_dim",
              "codes": "num_embeddings"}
    sizes = {d: getattr(arch, f) for d, f in fields.items() if hasattr(arch, f)}
    for a in spec.args:
        if a.kind in ("array", "index"):
            sizes.update(bind_shape(a.dims, np.shape(pool[a.name])))
    outs = [o for o in spec.outputs if o.kind == "float"]
    values = tuple(np.ones(shape_of(o.dims, sizes)) if o.dims else 1.0 for o in outs)
    return values if len(values) > 1 else values[0]


def _registered_part(name: str) -> str | None:
    """The contract function whose reference VJP or magnitude `name` is (`encode_vjp` → encode), else None."""
    for part in ("_vjp_magnitude", "_vjp", "_magnitude"):
        if name.endswith(part) and name[: -len(part)] in FUNCTIONS:
            return name[: -len(part)]
    return None


# ----------------------------------------------------------------------------- running
def _valid_kwargs(target: Target, valid: dict) -> dict | None:
    """The valid call: each parameter from the pool (a parameter with a default may be left out); None if a
    required one has no pool entry (the target is then reported as uncovered)."""
    pool, kwargs = valid[target.pool], {}
    special = overrides(pool)
    pool = {**pool, **special.get(target.name, special.get(target.name.rsplit(".", 1)[-1], {}))}
    function = _registered_part(target.name.rsplit(".", 1)[-1])
    if function is not None:  # the reference's `f_vjp(args, cotangent)`, `f_magnitude(args)`: f's own arguments
        pool = {**pool, "args": {a.name: pool[a.name] for a in FUNCTIONS[function].args if a.name in pool},
                "cotangent": _cotangent(function, pool)}
    for p in target.params:
        name = p if isinstance(p, str) else p.name
        if name == "cotangent" and hasattr(target.fn, "cotangent_of"):
            kwargs[name] = _cotangent(target.fn.cotangent_of, pool)
        elif name in pool:
            kwargs[name] = pool[name]
        elif isinstance(p, str) or p.default is p.empty:
            return None
    return kwargs


def _call(target: Target, kwargs: dict):
    if target.params and isinstance(target.params[0], str) and not hasattr(target.fn, "cotangent_of"):
        return target.fn(*(kwargs[n] for n in target.params))  # a backend method: the contract's order
    return target.fn(**kwargs)


def _finite(result, allow_inf: bool = False) -> bool:
    if isinstance(result, dict):
        return all(_finite(v, allow_inf) for v in result.values())
    if isinstance(result, (tuple, list)):
        return all(_finite(v, allow_inf) for v in result)
    if isinstance(result, torch.Tensor):
        if not result.is_floating_point() or result.device.type == "meta":
            return True
        result = result.detach().cpu().double().numpy()
    if isinstance(result, (np.ndarray, float, np.floating)):
        a = np.asarray(result)
        return a.dtype.kind != "f" or bool(np.all(~np.isnan(a) if allow_inf else np.isfinite(a)))
    return True


def _alarm(signum, frame):
    raise Timeout()


def _acceptable(target: Target, param: str, bad: Bad, kwargs: dict) -> bool:
    """Whether a correct API may take `bad` for `param` (then only a finite result or a vaespec error is fine)."""
    if bad.accept:
        return True
    if (param == "cotangent" or param.startswith("d_")) and bad.label in ("a list", "int dtype", "a torch tensor"):
        return True  # a cotangent is any real array-like (vaespec.spec.contract.validate_vjp)
    if param in SHAPE_ONLY and bad.label not in ("None", "a string", "an object", "a list of names", "a list",
                                                 "a numpy array", "complex", "int dtype", "meta tensor"):
        return True
    short = re.sub(r"[(\[].*$", "", target.name.rsplit(".", 1)[-1])
    inner = re.search(r"\[(\w+)\]$", target.name)  # vjp[<function>]: the function's own args by design
    if bad.label in BY_DESIGN.get((target.name, param), BY_DESIGN.get((short, param), ())) or \
            (inner and bad.label in BY_DESIGN.get((inner[1], param), ())):
        return True
    # A size that disagrees with another argument may be legal (nothing else binds that dimension); the
    # disagreements the contract does bind are checked by test_contract_boundary's "wrong size" cases.
    return bad.relational


def _named(target: Target, param: str, bad: Bad, kwargs: dict, message: str) -> bool:
    names = {param} | ALIASES.get(param, set())
    if isinstance(kwargs.get(param), dict):
        names |= {k for k in kwargs[param] if isinstance(k, str)}
    if param == "cotangent":
        names |= {"cotangent", "d_"}
    if bad.relational:
        names |= set(kwargs)
        if "cotangent" in kwargs:  # a size that disagrees with the cotangent is named as d_<output>
            names.add("d_")
    if isinstance(kwargs.get("name"), str) and param != "name":
        names.add(kwargs["name"])  # the check_* helpers name the value by their `name` argument
    return any(re.search(rf"(?<![\w]){re.escape(n)}", message) for n in names if n)


def classify(target: Target, param: str, bad: Bad | None, kwargs: dict) -> tuple[str, str]:
    """Run one call; return (outcome class, detail)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = _call(target, kwargs)
    except Timeout:
        return "timeout", ""
    except VaespecError as error:
        if bad is None:
            return "baseline-failed", f"{type(error).__name__}: {error}"
        if _named(target, param, bad, kwargs, str(error)):
            return "refused", ""
        return "unnamed", f"{type(error).__name__}: {str(error)[:200]}"
    except Exception as error:  # noqa: BLE001 - the point: anything else is a bad outcome
        return ("baseline-failed" if bad is None else "foreign"), f"{type(error).__name__}: {str(error)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if not _finite(result, allow_inf=target.category == "tolerances"):  # an infinite bound is a vacuous one
        return "non-finite", ""
    if bad is not None and not _acceptable(target, param, bad, kwargs):
        return "accepted-bad", ""
    return "accepted", ""


def _skipped(target: Target, bad: Bad) -> bool:
    """Value mutations of the torch hot path (documented unchecked: IEEE arithmetic)."""
    if target.flavour != "torch" or target.name.rsplit(".", 1)[-1] not in HOT_PATH:
        return False
    return any(bad.label == v or (v.endswith("*") and bad.label.startswith(v[:-1])) for v in VALUES)


def run(size: int = 1, seed: int = 0, verbose: bool = False) -> dict:
    """Fuzz every target; returns the counts (`calls` per category, `outcomes` per class) and the bad cases."""
    with torch.random.fork_rng(devices=[]):  # modules built without a key use torch's generator: not the caller's
        torch.manual_seed(seed)
        return _run(size, seed, verbose)


def _run(size: int, seed: int, verbose: bool) -> dict:
    rng = np.random.default_rng(seed)
    valid = pools()
    calls, outcomes, bad_cases, uncovered = collections.Counter(), collections.Counter(), [], []
    start = time.perf_counter()
    for target in targets():
        kwargs = _valid_kwargs(target, valid)
        if kwargs is None:
            uncovered.append(target.name)
            continue
        outcome, detail = classify(target, "", None, kwargs)
        calls[target.category] += 1
        if outcome != "accepted":
            outcomes[outcome] += 1
            bad_cases.append((target.name, "(valid call)", "", outcome, detail))
            continue
        for param, value in list(kwargs.items()):
            if param in METADATA.get(target.name.rsplit(".", 1)[-1], ()):
                continue
            default = next((p.default for p in target.params if not isinstance(p, str) and p.name == param),
                           inspect.Parameter.empty)
            with warnings.catch_warnings(), np.errstate(all="ignore"):  # building overflowing values warns
                warnings.simplefilter("ignore")
                bads = mutations(value, rng, size, default)
            for bad in bads:
                if _skipped(target, bad):
                    continue  # the hot path follows IEEE arithmetic on values by design
                outcome, detail = classify(target, param, bad, {**kwargs, param: bad.value})
                calls[target.category] += 1
                outcomes[outcome] += 1
                if outcome in BAD:
                    bad_cases.append((target.name, param, bad.label, outcome, detail))
                    if verbose:
                        print(f"BAD {outcome}: {target.name}({param} = {bad.label}) {detail}", file=sys.stderr)
    return {"size": size, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
            "calls": dict(sorted(calls.items())), "total": sum(calls.values()),
            "outcomes": {k: outcomes.get(k, 0) for k in GOOD + BAD}, "bad": bad_cases, "uncovered": uncovered}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaespec.proofs_tests.fuzz.api", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1, help="random draws per parameter beyond the fixed catalogue")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the report here as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each bad outcome as it happens")
    options = parser.parse_args(argv)
    if options.size < 0:
        parser.error("--size: expected an integer ≥ 0")
    report = run(options.size, options.seed, options.verbose)
    print(f"fuzz_api: {report['total']} calls in {report['seconds']} s (size {options.size}, seed {options.seed})")
    for category, count in report["calls"].items():
        print(f"  calls  {category:<18} {count:>7}")
    for outcome, count in report["outcomes"].items():
        print(f"  {'good' if outcome in GOOD else 'BAD '}   {outcome:<18} {count:>7}")
    for case in report["bad"][:50]:
        print("  bad:", " | ".join(map(str, case)))
    if report["uncovered"]:
        print("  uncovered (no valid value for a parameter):", ", ".join(report["uncovered"]))
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1, default=str)
    return 1 if report["bad"] or report["uncovered"] else 0


if __name__ == "__main__":
    sys.exit(main())
