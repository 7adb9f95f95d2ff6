"""Writing golden vectors (`vaespec vectors export`): inputs, reference outputs, tolerances, checksums.

Every function in `vaespec.spec.contract.FUNCTIONS` (all chapters) gets cases (`variants`):
each convention preset, each flag value, each option of a choice argument, and three
activations per network function (the functions take turns, so all nine appear), cycled
together rather than multiplied. Inputs are drawn from the seed with
`numpy.random.default_rng` and then rounded so that every input is exactly representable in
float64, float32, bfloat16 and float16 (`exact_everywhere`): a port casting them to its own
dtype computes on the very values the float64 reference saw, so the recorded tolerance — the
suite's own rule, the policy's bound (`vaespec.spec.tolerances`) times the reference's
magnitude — applies exactly as in the suite. Where a function makes a nearest-code choice,
inputs are redrawn until every margin clears the bfloat16 distance bound twice over
(`clear_margins`), so the reference's choice is the only acceptable one in every dtype.
Reading and checking vectors is `vaespec.proofs_tests.vectors.verify`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vaespec.spec.architecture import ACTIVATIONS, Architecture, VQArchitecture
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import PRESETS
from vaespec.spec.errors import ConfigError, show
from vaespec.spec.keys import Key
from vaespec.spec.shapes import EVENT, INPUT_EVENT, OUTPUT_EVENT, POSITIONS, shape_of
from vaespec.spec.tolerances import distance_bound

from ..laws.choices import clear as choices_clear
from ..laws.tolerance import exact, function_bound, magnitude, vjp_magnitude
from .cases import appended_variants, case_dtypes, exact_everywhere, is_special, special_inputs, special_variants
from .manifest import DIGEST, DTYPES, FORMAT, MANIFEST, Unsupported, VectorsError, check_files, read_manifest

BATCH = 4
SIZES = {"input": 5, "output": 5, "latent": 3, "embedding": 3, "codes": 6, "batch": BATCH, "particles": 3,
         "categories": 5, "dim": 3, "stages": 3}
LEVEL_SPAN = 7  # an index argument with a stated range [low, high] (FSQ's levels) draws from [low, low + 7]
HIDDEN = {"encoder_sizes": (6, 4), "decoder_sizes": (4, 6)}
# Scalars by argument name: values exact in every dtype (the defaults 0.99 and 1e-5 are not).
SCALARS = {"beta": (1.0, 0.0, 0.5, 4.0), "commitment_weight": (0.25,), "decay": (0.9375,), "epsilon": (2.0**-12,),
           "noise_log_var": (-0.5, 1.0, 0.25)}
ACTIVATION_CASES = 3
EVENT_CASE = (2, 2, 3)  # reconstruction_loss on images x [batch, channels, height, width]: [4, 2, 2, 3]
POSITIONS_CASE = (2, 3)  # the spatial case of the functions of z_e [batch, *positions, embedding]: [4, 2, 3, 3]
# The conv case of the VAE's network functions (issue 15): x [4, 1, 4, 4], one strided convolution of 2 channels
# (4 → 2, its transposed convolution's taps overlapping), 3 latents.
CONV_CASE = {"input_shape": (1, 4, 4), "channels": (2,), "kernel_size": 4, "stride": 2, "padding": 1}
# The conv VQ-VAE's case of the VQ network functions and decode: the same image and convolution, z_e [4, 2, 2, 3]
# channels-last (16 vectors quantized, E = 3 > 1 and 2·2 positions, so a reshape for the transposition shows).
CONV_VQ_CASE = {"input_shape": (1, 4, 4), "channels": (2,), "kernel_size": 4, "stride": 2, "padding": 1}


# ----------------------------------------------------------------------------- inputs
def _array(name: str, shape, rng, arg, variant: dict) -> np.ndarray:
    if name == "x" and "likelihood" in variant:  # data a Bernoulli likelihood accepts too
        values = rng.uniform(0.0, 1.0, shape)
    elif arg.low > -np.inf and arg.high < np.inf:
        values = rng.uniform(arg.low, arg.high, shape)
    elif name in ("x", "x_hat", "mu"):
        values = rng.uniform(-3.0, 3.0, shape)
    elif name == "log_var":
        values = rng.uniform(-6.0, 6.0, shape)  # float16's log-variance domain (LOG_VAR_DOMAIN)
    elif arg.low > -np.inf:  # counts and other non-negative arrays; a few exact zeros
        values = rng.uniform(arg.low, arg.low + 4.0, shape) * (rng.random(shape) > 0.25)
        values.flat[0] = max(values.flat[0], arg.low + 1.0)  # never all zero
    else:
        values = np.clip(rng.standard_normal(shape), -4.0, 4.0)
    return exact_everywhere(values)


def function_seed(function: str) -> int:
    """The seed of `function`'s own draws: the first 8 bytes of sha256(name), big-endian. A function's inputs
    depend only on its name, the export's seed and the case, so adding a function changes no other's files."""
    return int.from_bytes(hashlib.sha256(function.encode("utf-8")).digest()[:8], "big")


def variants(function: str) -> list[dict]:
    """The cases of `function`: each convention preset, each flag value and `ACTIVATION_CASES` activations,
    cycled together (not a product); each network function starts at its own place in the list of
    activations (`function_seed`), so that every activation appears in several functions while each
    function stays at a few cases."""
    spec = FUNCTIONS[function]
    axes = {a.name: [True, False] for a in spec.args if a.kind == "flag"}
    axes.update({a.name: list(_choices(a.kind)) for a in spec.args if a.kind in CHOICE_KINDS})
    if any(a.kind == "convention" for a in spec.args):
        axes["preset"] = sorted(PRESETS)
    count = max([ACTIVATION_CASES if _takes_arch(function) else 1] + [len(v) for v in axes.values()])
    cases = [{k: v[i % len(v)] for k, v in axes.items()} for i in range(count)]
    if _takes_arch(function):
        names = sorted(ACTIVATIONS)
        turn = function_seed(function) % len(names)  # by name: another function's cases never shift
        for i, case in enumerate(cases):
            case["activation"] = names[(turn + i) % len(names)]
    first = dict(cases[0])
    cases += special_variants(function)  # kinks, formula switches, ties, precision (vectors.cases)
    # z_e [B, *positions, D] of the network-free functions: the first case on an image's; last, so the others keep
    # their index. A network function's positions are its architecture's (the conv VQ-VAE's case below), never
    # drawn apart from it: decode's z [B, *positions, latent] is [B, latent] for every other network.
    if not _takes_arch(function) and any(d.startswith("*") for a in spec.args for d in a.dims):
        cases.append({**first, "positions": list(POSITIONS_CASE)})
    if any(EVENT in a.dims for a in spec.args):  # x [B, *event]: an image's event, with a
        cases.append({**first, "preset": "edifice", "event": list(EVENT_CASE)})  # feature mean (edifice's)
    if any(ConvArchitecture in a.types for a in spec.args if a.kind == "arch"):  # the conv VAE, x [B, C, H, W]
        cases.append({**first, "conv": True})
    if any(ConvVQArchitecture in a.types for a in spec.args if a.kind == "arch"):  # the conv VQ-VAE: z_e [B, H′, W′, E]
        cases.append({**first, "conv_vq": True})
    return cases + appended_variants(function, first)  # the quantizers' sequence and dropout cases, last


CHOICE_KINDS = ("likelihood",)  # argument kinds that name one of a few options: each option gets cases


def _choices(kind: str) -> tuple[str, ...]:
    from vaespec.spec.estimators import LIKELIHOODS
    return {"likelihood": LIKELIHOODS}[kind]


def _takes_arch(function: str) -> bool:
    return any(a.kind == "arch" for a in FUNCTIONS[function].args)


def _arch(function: str, activation: str, conv: bool = False, conv_vq: bool = False):
    if conv_vq:
        return ConvVQArchitecture(embedding_dim=SIZES["embedding"], num_embeddings=SIZES["codes"],
                                  activation=activation, **CONV_VQ_CASE)
    if conv:
        return ConvArchitecture(latent_size=SIZES["latent"], activation=activation, **CONV_CASE)
    if FUNCTIONS[function].chapter == "vq":
        return VQArchitecture(SIZES["input"], embedding_dim=SIZES["embedding"], num_embeddings=SIZES["codes"],
                              activation=activation, **HIDDEN)
    return Architecture(SIZES["input"], latent_size=SIZES["latent"], activation=activation, **HIDDEN)


def draw_inputs(function: str, variant: dict, index: int, rng) -> dict:
    """Case `index` of `function`: its arguments by contract name."""
    from vaespec.spec.init import init_params

    spec, args = FUNCTIONS[function], {}
    arch = (_arch(function, variant["activation"], variant.get("conv", False), variant.get("conv_vq", False))
            if "activation" in variant else None)
    sizes = dict(SIZES, **({"latent": arch.latent_size} if arch else {}))
    if isinstance(arch, (ConvArchitecture, ConvVQArchitecture)):
        sizes.update({"input": arch.input_size, "output": arch.output_size, INPUT_EVENT: arch.input_shape,
                      OUTPUT_EVENT: arch.input_shape})
    if isinstance(arch, ConvVQArchitecture):  # the network binds the positions (z, z_e [B, H′, W′, E])
        sizes[POSITIONS] = arch.positions
    if "positions" in variant:
        sizes["*positions"] = tuple(variant["positions"])
    if "event" in variant:
        sizes["+event"] = tuple(variant["event"])
    unknown = sorted({d for a in spec.args for d in a.dims if d not in sizes and not d.startswith(("*", "+"))})
    if unknown:
        raise Unsupported(f"{function}: dimensions {unknown} have no size in the vectors yet")
    for arg in spec.args:
        if arg.kind == "arch":
            args[arg.name] = arch
        elif arg.kind == "params":
            raw = init_params(arch, int(rng.integers(2**32)))
            args[arg.name] = {k: exact_everywhere(v) for k, v in raw.items()}
        elif arg.kind == "array":
            args[arg.name] = _array(arg.name, shape_of(arg.dims, sizes), rng, arg, variant)
        elif arg.kind == "index" and arg.low > -np.inf and arg.high < np.inf:  # a stated range (FSQ's levels)
            values = rng.integers(int(arg.low), int(min(arg.high, arg.low + LEVEL_SPAN)) + 1,
                                  shape_of(arg.dims, sizes))
            args[arg.name] = values.astype(np.int64)
        elif arg.kind == "index":
            high = sizes[arg.bound] if arg.bound else BATCH
            values = rng.integers(0, high, shape_of(arg.dims, sizes))
            if not arg.bound:  # usage counts: some codes dead
                values[rng.random(values.shape) < 0.4] = 0
            args[arg.name] = values.astype(np.int64)
        elif arg.kind == "convention":
            args[arg.name] = PRESETS[variant["preset"]]
        elif arg.kind == "scalar":
            choices = SCALARS.get(arg.name, (0.5,))
            args[arg.name] = choices[index % len(choices)]
        elif arg.kind == "flag" or arg.kind in CHOICE_KINDS:
            args[arg.name] = variant[arg.name]
        elif arg.kind == "size":
            args[arg.name] = sizes[arg.dims[0]]
        elif arg.kind == "count":
            args[arg.name] = variant.get(arg.name, 3)  # 3, or a case's own (residual VQ's dropout: num_stages)
        elif arg.kind == "key":
            args[arg.name] = Key(int(rng.integers(2**63)))
        else:
            raise Unsupported(f"{function}: argument {arg.name!r} has kind {arg.kind!r}, which the vectors cannot "
                              "draw yet")
    return args


def clear_margins(z: np.ndarray, codebook: np.ndarray, slack: float = 2.0, dtype: str = "bfloat16") -> bool:
    """Whether every row of `z` has a nearest code whose margin to the runner-up exceeds
    `slack` × (τ_best + τ_runner-up), τ the `dtype` distance bound (bfloat16's, the widest: no dtype may choose
    otherwise; a case held for fewer dtypes passes its least precise one)."""
    if len(codebook) < 2:
        return True
    z = z.reshape(-1, z.shape[-1])  # [batch, *positions, D]: every vector
    d = ((z[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)
    tau = distance_bound(dtype, z.shape[1], np.linalg.norm(z, axis=1)[:, None], np.linalg.norm(codebook, axis=1))
    order = np.argsort(d, axis=1, kind="stable")[:, :2]
    rows = np.arange(len(z))
    best, second = order[:, 0], order[:, 1]
    return bool(np.all(d[rows, second] - d[rows, best] > slack * (tau[rows, best] + tau[rows, second])))


def _encoded(function: str, args) -> np.ndarray | None:
    """The z_e `function` quantizes at `args`, if it has a nearest-code choice to make."""
    names = {a.name for a in FUNCTIONS[function].args}
    if "codebook" not in names:
        return None
    if "z_e" in names:
        return args["z_e"]
    if "x" in names and "params" in names:
        from vaespec.reference.backend import ReferenceBackend
        return ReferenceBackend().vq_encode(args["arch"], args["params"], args["x"])
    return None


def held_in(function: str, variant: dict) -> list[str]:
    """The dtypes case `variant` of `function` holds for: `cases.case_dtypes`, and float64 and float32 only for the
    conv VQ-VAE's nearest-code choices (vq_forward, vq_loss). Its z_e has 16 vectors, a network's, so the codebook
    holds 6 of them and 10 fall between: their margins clear float32's distance bound, never all of bfloat16's
    (about 0.1·(‖z‖ + ‖e‖)², wider than the spread of 16 vectors in 3 dimensions), so a bfloat16 port could choose
    other codes legitimately. The laws check the conv VQ-VAE in bfloat16 by the near-tie criterion instead."""
    if variant.get("conv_vq") and "codebook" in {a.name for a in FUNCTIONS[function].args}:
        return ["float64", "float32"]
    return case_dtypes(variant)


def case_inputs(function: str, variant: dict, seed: int, index: int) -> dict:
    """Draw a case (redrawing, deterministically, until any nearest-code choice is clear in its dtypes)."""
    for attempt in range(2000):
        rng = np.random.default_rng([seed, function_seed(function), index, attempt])
        args = draw_inputs(function, variant, index, rng)
        if is_special(variant):
            if special_inputs(args, variant, rng):
                return args
            continue
        z = _encoded(function, args)
        if z is None:
            if choices_clear(function, args):  # another chapter's choices (FSQ's levels): its own test
                return args
            continue
        if "z_e" in args:  # place z_e near codebook rows so that every code choice is clear
            picks = rng.integers(0, len(args["codebook"]), z.shape[:-1])
            args["z_e"] = z = exact_everywhere(args["codebook"][picks] + 0.05 * rng.standard_normal(z.shape))
        else:  # network z_e: centred by the embedding head's bias (rows spread apart), copied into the codebook
            (head,) = args["arch"].HEADS  # z_e [B, *positions, D]: every position's vector
            vectors = z.reshape(-1, z.shape[-1])
            args["params"][f"{head}.bias"] = exact_everywhere(args["params"][f"{head}.bias"] - vectors.mean(axis=0))
            vectors = _encoded(function, args).reshape(-1, z.shape[-1])
            shuffled = exact_everywhere(vectors[rng.permutation(len(vectors))])
            # distinct rows only: a relu network's positions repeat (a dead feature map gives the bias), and a
            # codebook row copied twice would be an exact tie
            distinct = shuffled[np.sort(np.unique(shuffled, axis=0, return_index=True)[1])][: len(args["codebook"])]
            args["codebook"][: len(distinct)] = distinct
            z = vectors
        if clear_margins(z, args["codebook"], dtype=held_in(function, variant)[-1]):
            return args
    raise VectorsError(f"{function}: no case with clear choices (nearest-code or rounding margins) in 2000 draws "
                       f"(seed {seed})")


# ----------------------------------------------------------------------------- tolerances
def _bound_rule(function: str, args, magnitude, vjp: bool = False) -> dict:
    """The suite's entrywise rule `2·rel·M + floor` (`laws.tolerance.tolerance`), per dtype."""
    bounds = {dtype: function_bound(dtype, function, args, vjp=vjp) for dtype in DTYPES}
    return {"rule": "bound", "magnitude": np.asarray(magnitude, dtype=np.float64),
            "rel": {d: 2 * b.rel for d, b in bounds.items()}, "floor": {d: b.floor for d, b in bounds.items()}}


def value_tolerances(function: str, args) -> tuple:
    """One rule per output of `function` at `args`, as the suite's `<function>_matches_reference` applies it:
    integers and keys exact; the float outputs of an exact function (draws, copied rows: `laws.tolerance.exact`)
    exact once rounded to the dtype; the others the policy's bound × the reference's magnitude."""
    outputs = FUNCTIONS[function].outputs
    if exact(function) or all(o.kind != "float" for o in outputs):
        return tuple({"rule": "exact_in_dtype" if o.kind == "float" else "exact"} for o in outputs)
    mags = magnitude(function, args)
    mags = mags if len(outputs) > 1 else (mags,)
    return tuple(_bound_rule(function, args, m) if o.kind == "float" else {"rule": "exact"}
                 for o, m in zip(outputs, mags))


def gradient_tolerances(function: str, args, cotangent) -> dict:
    """Rules shaped like the vjp's result, as `<function>_gradient_matches_reference` applies them."""
    def rules(m):
        if isinstance(m, dict):
            return {k: rules(v) for k, v in m.items()}
        return _bound_rule(function, args, m, vjp=True)
    return rules(vjp_magnitude(function, args, cotangent))


# ----------------------------------------------------------------------------- export
class _Writer:
    """Writes .npy files under `root` and remembers each one's sha256 and size."""

    def __init__(self, root: Path):
        self.root, self.files, self.bounds = root, {}, []

    def bound(self, rule: dict) -> int:
        """The index of `rule`'s per-dtype (rel, floor) in the shared `bounds` list (many entries share one)."""
        entry = {"rel": rule["rel"], "floor": rule["floor"]}
        if entry not in self.bounds:
            self.bounds.append(entry)
        return self.bounds.index(entry)

    def array(self, relative: str, value) -> dict:
        value = np.asarray(value)  # (np.ascontiguousarray would make a 0-d scalar 1-d)
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, value, allow_pickle=False)
        data = path.read_bytes()
        self.files[relative] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        return {"file": relative, "shape": list(value.shape), "dtype": str(value.dtype)}

    def value(self, prefix: str, kind: str, value, rule: dict | None = None) -> dict:
        if kind == "key":
            entry = {"kind": "key", "value": str(value.value)}
        else:
            entry = {"kind": kind, "array": self.array(f"{prefix}.npy", np.asarray(
                value, dtype=np.int64 if kind == "int" else np.float64))}
        if rule is not None:
            entry["tolerance"] = {"rule": rule["rule"]}
            if rule["rule"] == "bound":
                entry["tolerance"].update(bound=self.bound(rule),
                                          magnitude=self.array(f"{prefix}.magnitude.npy", rule["magnitude"]))
        return entry


def _input_entry(writer: _Writer, prefix: str, arg, value) -> dict:
    if arg.kind in ("array", "index"):
        return {"kind": arg.kind, "array": writer.array(f"{prefix}.{arg.name}.npy", value)}
    if arg.kind == "params":
        return {"kind": "params", "arrays": {k: writer.array(f"{prefix}.params.{k}.npy", v) for k, v in value.items()}}
    if arg.kind == "arch":
        return {"kind": "arch", "type": type(value).__name__, "value": value.to_dict()}
    if arg.kind == "convention":
        return {"kind": "convention", "value": value.to_dict()}
    if arg.kind == "key":
        return {"kind": "key", "value": str(value.value)}
    return {"kind": arg.kind, "value": value}


def _outputs(function: str, value) -> tuple:
    return tuple(value) if len(FUNCTIONS[function].outputs) > 1 else (value,)


def _cotangent(function: str, outputs: tuple, rng):
    """A cotangent for the float outputs (entries in [−1, 1], exact everywhere); one value or a tuple."""
    floats = [o for o, spec in zip(outputs, FUNCTIONS[function].outputs) if spec.kind == "float"]
    values = [exact_everywhere(rng.uniform(-1.0, 1.0, np.shape(o))) for o in floats]
    values = [float(v) if v.ndim == 0 else v for v in values]
    return tuple(values) if len(values) > 1 else values[0]


def _gradient_entries(writer: _Writer, prefix: str, grads, rules) -> dict:
    if isinstance(grads, dict):
        return {"kind": "params", "entries": {k: writer.value(f"{prefix}.{k}", "float", v, rules[k])
                                              for k, v in grads.items()}}
    return writer.value(prefix, "float", grads, rules)


def _clear(root: Path) -> None:
    """Make `root` an empty directory, removing only what a previous export provably wrote: the files
    its manifest lists (the manifest matching its recorded digest and the schema), each a regular file
    inside `root` whose sha256 is still the recorded one. Anything else there — a user's file, a link,
    an edited file, a manifest that is not a vaespec export's — and `root` is refused, untouched."""
    from vaespec.spec.files import check_output_dir

    check_output_dir("vectors export", root, VectorsError)
    if not root.exists():
        try:
            root.mkdir(parents=True)
        except OSError as error:
            raise VectorsError(f"{root}: cannot create the directory ({error.strerror})") from None
        return
    if not any(root.iterdir()):
        return
    if not (root / DIGEST).is_file():
        raise VectorsError(f"{root}: not empty and not a vaespec export (no {DIGEST}); export into a new or empty "
                           "directory")
    try:
        old = read_manifest(root)  # safe reads, the recorded digest, the schema: or a VectorsError
    except VectorsError as error:
        raise VectorsError(f"{root}: not empty and holds no intact previous export to replace "
                           f"({str(error).splitlines()[0]})") from None
    listed = set(old["files"]) | {MANIFEST, DIGEST}
    present, odd = set(), []
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            odd.append(relative)
        elif path.is_file():
            present.add(relative)
    if odd or present - listed:
        raise VectorsError(f"{root}: holds entries that are not part of the previous export: "
                           f"{sorted(set(odd) | (present - listed))[:5]}; nothing was removed")
    try:
        check_files(root, {**old, "files": {k: v for k, v in old["files"].items() if k in present}})
    except VectorsError as error:
        raise VectorsError(f"{root}: a file of the previous export was changed since, so it is not removed: "
                           f"{str(error).splitlines()[0]}") from None
    for relative in sorted(present):
        (root / relative).unlink()
    folders = (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())
    for folder in sorted(folders, key=lambda p: -len(p.parts)):
        folder.rmdir()


def _case(writer: _Writer, function: str, index: int, variant: dict, seed: int) -> dict:
    """Draw case `index` of `function`, evaluate the reference (and its vjp), write the files; return its entry."""
    from vaespec.reference.backend import ReferenceBackend

    reference, spec = ReferenceBackend(), FUNCTIONS[function]
    if spec.chapter not in reference.chapters:
        raise Unsupported(f"{function}: the reference does not serve the {spec.chapter!r} chapter yet")
    case_id = f"{spec.chapter}/{function}/{index:02d}"
    args = case_inputs(function, variant, seed, index)
    outputs = _outputs(function, call(reference, function, args))
    rules = value_tolerances(function, args)
    floats = [o.name for o in spec.outputs if o.kind == "float"]
    if spec.differentiable:  # everything is computed before anything is written
        cotangent = _cotangent(function, outputs, np.random.default_rng([seed, function_seed(function), index, 10**6]))
        grads, g_rules = reference.vjp(function, args, cotangent), gradient_tolerances(function, args, cotangent)
    case = {"id": case_id, "chapter": spec.chapter, "function": function, "variant": variant,
            **({"dtypes": held_in(function, variant)} if held_in(function, variant) != list(DTYPES)
               else {}),  # held only there
            "inputs": {a.name: _input_entry(writer, f"{case_id}/input", a, args[a.name]) for a in spec.args},
            "outputs": {o.name: writer.value(f"{case_id}/output.{o.name}", o.kind, v, r)
                        for o, v, r in zip(spec.outputs, outputs, rules)}}
    if spec.differentiable:
        ct = cotangent if len(floats) > 1 else (cotangent,)
        case["vjp"] = {
            "cotangent": {n: writer.value(f"{case_id}/cotangent.{n}", "float", c) for n, c in zip(floats, ct)},
            "gradients": {n: _gradient_entries(writer, f"{case_id}/gradient.{n}", grads[n], g_rules[n])
                          for n in spec.differentiable}}
    return case


def chosen_functions(functions: Iterable[str] | None, argument: str = "functions") -> list[str]:
    """The contract functions to export, in `FUNCTIONS` order: all, or those named (each known, at least one);
    a bad name is a ConfigError naming `argument` (the command line passes "--function")."""
    if functions is None:
        return list(FUNCTIONS)
    names = [functions] if isinstance(functions, str) else list(functions)
    unknown = [n for n in names if n not in FUNCTIONS]
    if not names or unknown:
        raise ConfigError(f"{argument}: expected contract function names (at least one, of {len(FUNCTIONS)}), "
                          f"got {show(unknown or names)}")
    return [f for f in FUNCTIONS if f in names]


def export(directory, seed: int = 0, functions: Iterable[str] | None = None) -> dict:
    """Write the golden vectors of every contract function (or of `functions`) to `directory`; return the manifest.

    **Arguments** `directory` (created; a previous, unmodified export there is replaced; any other
    non-empty directory is refused, untouched), `seed` (an integer ≥ 0: the same seed gives
    byte-identical files), `functions` (contract function names: only their cases and entries, each file
    byte-identical to the full export's; default every function). **Returns** the manifest dict;
    `manifest.json.sha256` records its digest.
    """
    chosen = chosen_functions(functions)
    root = Path(directory)
    _clear(root)
    writer, cases, skipped = _Writer(root), [], []
    try:
        for function in chosen:
            try:
                cases += [_case(writer, function, index, variant, seed)
                          for index, variant in enumerate(variants(function))]
            except Unsupported as reason:
                skipped.append({"function": function, "reason": str(reason)})
    except OSError as error:  # a full disk, a read-only mount: one line, not a traceback
        raise VectorsError(f"{error.filename or root}: cannot write ({error.strerror})") from None
    manifest = {
        "format": FORMAT, "spec_version": importlib.metadata.version("vaespec"), "seed": seed,
        "generator": "vaespec vectors export (the float64 reference, vaespec.reference)",
        "dtypes": list(DTYPES),
        "tolerance": {
            "bound": "|actual − expected| ≤ bounds[b].rel[dtype] · magnitude + bounds[b].floor[dtype], entrywise",
            "exact": "actual = expected exactly (integers, keys, copied values)",
            "exact_in_dtype": ("actual = expected rounded to the port's dtype, exactly: once, to nearest even "
                               "from float64, or through float32 first (torch's cast); vaespec.spec.dtypes")},
        "functions": {name: {"chapter": s.chapter, "formula": s.formula,
                             "args": [{"name": a.name, "kind": a.kind, "dims": list(a.dims)} for a in s.args],
                             "outputs": [{"name": o.name, "kind": o.kind, "dims": list(o.dims)} for o in s.outputs],
                             "differentiable": list(s.differentiable)} for name, s in FUNCTIONS.items()
                      if name in chosen},
        "bounds": writer.bounds, "cases": cases, "skipped": skipped, "files": dict(sorted(writer.files.items())),
    }
    data = (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    try:  # the digest last: a directory with it is a complete export
        (root / MANIFEST).write_bytes(data)
        (root / DIGEST).write_text(f"{hashlib.sha256(data).hexdigest()}  {MANIFEST}\n")
    except OSError as error:
        raise VectorsError(f"{error.filename or root}: cannot write ({error.strerror})") from None
    return manifest
