"""What a backend declares about itself beyond its chapters, and what the laws make of it.

A library is checked fairly only for what it claims. Every attribute is optional; a backend that
declares none of them (vaespec's own) is checked as before.

- `provides` (iterable of function names): the contract functions it implements; the other functions of
  its chapters are lacking (`vaespec.impl.adapters.AutogradBackend` makes it from its bodies, and gives
  reasons in `not_provided`, which the n/a message quotes).
- `lacks` (iterable of function names): the functions of its chapters it does not implement (instead of
  `provides`).
- `conventions` (iterable of preset names or `Convention`s): the loss conventions it computes; the laws
  hand it only these.
- `variants` (mapping name → value): the field's variants it implements (`VARIANTS`, declared with the
  functions each concerns and its effect in `laws.variants`) where they differ from vaespec's choice.
- `key_stream` (`"vaespec"`, or absent): whether its keyed draws follow vaespec's Philox stream
  (`vaespec.spec.keys`).
- `architectures` (iterable of `ARCHITECTURES`, default `("dense",)`): the networks its VAE functions
  implement; with `"conv"` the laws also hand it the convolutional VAE (`vaespec.spec.conv.ConvArchitecture`,
  x [batch, C, H, W]), with `"conv_vq"` the convolutional VQ-VAE (`vaespec.spec.conv_vq.ConvVQArchitecture`,
  x [batch, C, H, W], z_e [batch, H′, W′, E]). A drawn example of a network the port does not declare is not
  applicable: Hypothesis discards it (`reject`) and draws another, so such a port is checked on the dense
  network as before.
- `own_architectures` (iterable of `vaespec.spec.own.OwnArchitecture`): examples of the backend's own network
  (an encoder and decoder vaespec does not implement; `vaespec.impl.adapters.NetworkBackend` declares its
  model's). The structural laws (`OWN_NETWORK_LAWS`) draw their network examples from these instead
  (x [batch, *input_shape], ε [batch, latent_size], parameters `init_params(seed)` at a drawn seed); a
  `*_matches_reference` law of a network function is n/a ("the reference does not implement <name>"), and
  so is every other law that needs a network function until it is checked on own networks. With
  `own_architectures` the built-in networks are only those `architectures` names (none if it names none).

A law that needs a function the backend lacks is `n/a` ("backend does not provide f"). Drawn
conventions are mapped onto the declared ones (a preset it supports stays; any other becomes one of
its own, chosen from the drawn one, so the examples Hypothesis draws are the same for every backend).
A variant changes what the reference computes as expected (`laws.variants`), or fixes an argument for
the backend and the reference alike; it never changes a tolerance. The stream-exact laws
(`STREAM_LAWS`) hold only for a backend that declares `key_stream = "vaespec"`; the property laws of
keyed functions (determinism given the key, live codes kept, reset rows drawn from the batch) hold for
any generator. docs/porting.md §3.6 explains each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hypothesis import reject

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.conv import ConvArchitecture
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.conventions import PRESETS, Convention, get_convention
from vaespec.spec.errors import ConfigError
from vaespec.spec.laws import LAWS
from vaespec.spec.own import OwnArchitecture
from vaespec.spec.tolerances import finite_difference_unsound

from . import variants as _variants
from .variants import VARIANTS  # what a backend may declare (each variant's functions and effect live there)

VAESPEC_STREAM = "vaespec"
# what `architectures` may name: Architecture/VQArchitecture, ConvArchitecture, ConvVQArchitecture
ARCHITECTURES = ("dense", "conv", "conv_vq")


def own_architectures(backend) -> tuple[OwnArchitecture, ...]:
    """The examples of its own network `backend` declares (`own_architectures`), or () (vaespec's networks only)."""
    raw = getattr(backend, "own_architectures", None)
    if raw is None:
        return ()
    own = tuple(raw) if hasattr(raw, "__iter__") else (raw,)
    wrong = [a for a in own if not isinstance(a, OwnArchitecture)]
    if wrong or not own:
        raise ConfigError(f"own_architectures: {type(backend).__name__} declares {str(raw)[:80]}; expected a "
                          "non-empty tuple of vaespec.spec.own.OwnArchitecture")
    return own


def architectures(backend) -> frozenset[str]:
    """The built-in networks `backend` declares (`architectures`; the dense network alone when it declares none
    and no `own_architectures`, none when it declares only its own)."""
    default = () if own_architectures(backend) else ("dense",)
    declared = tuple(getattr(backend, "architectures", None) or default)
    unknown = sorted(set(declared) - set(ARCHITECTURES))
    if unknown:
        raise ConfigError(f"architectures: {type(backend).__name__} declares {unknown}; expected some of "
                          f"{list(ARCHITECTURES)}")
    return frozenset(declared)


def network(arch) -> str:
    """The `ARCHITECTURES` name of `arch` ("dense" for a dense network, or for no arch at all)."""
    if isinstance(arch, OwnArchitecture):
        return "own"
    if isinstance(arch, ConvVQArchitecture):
        return "conv_vq"
    return "conv" if isinstance(arch, ConvArchitecture) else "dense"


class NotApplicable(Exception):
    """Raised by a check that cannot be asked of this backend, given what it declares: an `n/a` verdict."""


# Laws that compare with vaespec's own key stream: n/a unless the backend declares it.
STREAM_LAWS = frozenset(
    [f"{f}_matches_reference" for f, spec in FUNCTIONS.items() if any(a.kind == "key" for a in spec.args)]
    + [name for name, law in LAWS.items() if law.requires == "reparameterize_key"])


def _names(backend, attribute: str) -> tuple[str, ...] | None:
    raw = getattr(backend, attribute, None)
    if raw is None:
        return None
    if isinstance(raw, str) or not hasattr(raw, "__iter__"):
        raise ConfigError(f"{attribute}: {type(backend).__name__} declares {attribute} = {str(raw)[:80]}; expected "
                          "a tuple of contract function names")
    names = tuple(raw)
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        raise ConfigError(f"{attribute}: {type(backend).__name__} declares unknown functions {unknown}; expected "
                          f"some of {sorted(FUNCTIONS)}")
    return names


def lacking(backend) -> frozenset[str]:
    """The contract functions `backend` declares it does not provide (`provides` or `lacks`; not both)."""
    provides, lacks = _names(backend, "provides"), _names(backend, "lacks")
    if provides is not None and lacks is not None:
        raise ConfigError(f"provides, lacks: {type(backend).__name__} declares both; declare one")
    if provides is not None:
        return frozenset(f for f in FUNCTIONS if f not in provides)
    return frozenset(lacks or ())


def law_needs(law: str) -> tuple[str, ...]:
    """The contract functions `law` calls on a backend (its statement's list; a `<f>_…_reference` law: f)."""
    return tuple(f for f in LAWS[law].functions if f in FUNCTIONS)


def conventions(backend) -> tuple[Convention, ...] | None:
    """The conventions `backend` declares (`conventions`), or None: every preset."""
    raw = getattr(backend, "conventions", None)
    if raw is None:
        return None
    if isinstance(raw, (str, Convention)) or not hasattr(raw, "__iter__"):
        raw = (raw,)
    try:
        declared = tuple(get_convention(c) for c in raw)
    except ConfigError as error:
        raise ConfigError(f"conventions: {type(backend).__name__} declares {list(raw)!r}: {error}") from None
    if not declared:
        raise ConfigError(f"conventions: {type(backend).__name__} declares no convention; declare at least one")
    return declared


def convention_for(backend, drawn: Convention, fields: tuple[str, ...] = ()) -> Convention:
    """The convention the laws hand `backend` where `drawn` was drawn: `drawn` itself if it supports it, else
    one of its own (the same one for the same draw). With `fields`, one that agrees with `drawn` on those
    fields (a law that needs, say, the KL summed over the latent), or NotApplicable."""
    own = conventions(backend)
    if own is None or drawn in own:
        return drawn
    fitting = [c for c in own if all(getattr(c, f) == getattr(drawn, f) for f in fields)]
    if not fitting:
        needs = ", ".join(f"{f} = {getattr(drawn, f)!r}" for f in fields)
        raise NotApplicable(f"the law needs a convention with {needs}; the backend declares {[c.name for c in own]}")
    order = sorted(PRESETS)
    position = order.index(drawn.name) if drawn.name in order else 0
    return fitting[position % len(fitting)]


def variants(backend) -> dict[str, Any]:
    """The variants `backend` declares that differ from vaespec's choice, validated (a ConfigError names an
    unknown variant, a value of the wrong type, or one vaespec cannot check yet)."""
    raw = getattr(backend, "variants", None)
    if not raw:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"variants: {type(backend).__name__} declares variants = {str(raw)[:80]}; expected a "
                          f"mapping of some of {sorted(VARIANTS)} to values")
    chosen = {}
    for name, value in raw.items():
        if name not in VARIANTS:
            raise ConfigError(f"variants: {type(backend).__name__} declares the unknown variant {name!r}; known: "
                              f"{sorted(VARIANTS)}")
        v = VARIANTS[name]
        ok = isinstance(value, bool) if v.kind is bool else (
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                              and math.isfinite(value)))
        if not ok:
            raise ConfigError(f"variants[{name!r}]: expected a {v.kind.__name__}, got {value!r}")
        if value == v.default:
            continue
        if not v.supported:
            raise ConfigError(f"variants[{name!r}] = {value!r}: {v.says(value)} is a variant vaespec names but does "
                              "not yet check; remove the declaration and list the laws it fails in a --xfail file")
        chosen[name] = value
    if "ema_epsilon" in chosen and chosen["ema_epsilon"] < 0:
        raise ConfigError(f"variants['ema_epsilon']: expected ε ≥ 0, got {chosen['ema_epsilon']!r}")
    return chosen


def key_stream(backend) -> bool:
    """Whether `backend` declares that its keyed draws follow vaespec's Philox stream."""
    return getattr(backend, "key_stream", None) == VAESPEC_STREAM


def validate(backend) -> None:
    """Every declaration read once, so a malformed one is a ConfigError when the backend is loaded."""
    own_architectures(backend)
    architectures(backend)
    lacking(backend)
    conventions(backend)
    variants(backend)


def codebook_weight(backend) -> float:
    """The codebook term's weight in `backend`'s vq_loss (1 unless it declares `vq_codebook_term`/`_weight`)."""
    return _variants.codebook_term_weight(variants(backend))


def named(backend) -> str:
    """The variants `backend` declares, short, for a failure's first line: "variants: ema_debias=False" (name=value,
    as declared), or "variants: none" (vaespec's choices)."""
    chosen = variants(backend)
    return "variants: " + (", ".join(f"{n}={v!r}" for n, v in chosen.items()) if chosen else "none")


def adapt_args(backend, function: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` as the laws hand them to `backend`, given its declarations (see the module docstring)."""
    arch = args.get("arch")
    if arch is None and own_architectures(backend):
        pass  # a network-free function of a backend with its own network
    elif network(arch) == "own":
        if arch not in own_architectures(backend):
            reject()  # another backend's own network
    elif network(arch) not in architectures(backend):
        reject()  # a conv example is n/a for a dense-only port: Hypothesis draws another in its place
    own, chosen = conventions(backend), variants(backend)
    if own is None and not chosen:
        return args
    args = dict(args)
    if own is not None and isinstance(args.get("convention"), Convention):
        args["convention"] = convention_for(backend, args["convention"])
    return _variants.adapt(function, args, chosen)


def not_provided(backend, functions) -> str | None:
    """"backend does not provide f (its reason)" for those of `functions` that `backend` lacks, or None."""
    missing = [f for f in functions if f in lacking(backend)]
    if not missing:
        return None
    reasons = getattr(backend, "not_provided", None) or {}  # an adapter's reasons (vaespec.impl.adapters)
    said = [f"{f} ({reasons[f]})" if isinstance(reasons, Mapping) and reasons.get(f) else f for f in missing]
    return f"backend does not provide {', '.join(said)}"


def unsupported_convention(backend, convention) -> str | None:
    """Why a fixed `convention` (a golden vector's, which cannot be redrawn) cannot be handed to `backend`, or
    None: it declares conventions and this is none of them."""
    own = conventions(backend)
    if own is None or not isinstance(convention, Convention) or convention in own:
        return None
    return f"convention {convention.name!r}: the backend declares {[c.name for c in own]}"


# The laws checked on a backend's own network (their checks draw its examples, `laws.identities`); any other law
# that calls a network function (one with an `arch` argument) is n/a for a backend with only its own network.
OWN_NETWORK_LAWS = frozenset([
    "forward_eq_decode_reparameterize", "sample_latent_eq_reparameterize_encode", "generate_eq_decode_prior_sample",
    "loss_eq_reconstruction_add_kl", "loss_beta_zero_eq_reconstruction", "loss_monotone_in_beta",
    "batch_permutation_equivariance", "reductions_consistent_under_batch_splitting",
    "network_gradients_eq_own_finite_differences"])
# Laws that hold only in the dtypes where their check is sound: the law → the dtypes' reason (None where it runs).
DTYPE_LIMITED = {"network_gradients_eq_own_finite_differences": finite_difference_unsound}


def _network_function(function: str) -> bool:
    return any(a.kind == "arch" for a in FUNCTIONS[function].args)


def own_networks_not_applicable(law: str, backend) -> str | None:
    """Why `law` is n/a for a backend declaring only its own networks, or None: a `*_matches_reference` law of a
    network function ("the reference does not implement <name>"), or another law through the network that is not
    yet checked on own networks (not in `OWN_NETWORK_LAWS`)."""
    own = own_architectures(backend)
    if not own or architectures(backend) or law in OWN_NETWORK_LAWS:
        return None
    if not any(_network_function(f) for f in law_needs(law)):
        return None
    names = ", ".join(sorted({a.name for a in own}))
    if law.endswith("_matches_reference"):
        return f"the reference does not implement {names} (the backend's own network)"
    return f"not yet checked on a backend's own network ({names}); the structural laws are"


def not_applicable(law: str, backend) -> str | None:
    """Why `law` cannot be asked of `backend` given what it declares, or None."""
    missing = not_provided(backend, law_needs(law))
    if missing:
        return missing
    own = own_networks_not_applicable(law, backend)
    if own:
        return own
    if law in DTYPE_LIMITED:
        unsound = DTYPE_LIMITED[law](str(getattr(backend, "dtype", "float64")))
        if unsound:
            return unsound
    if law in STREAM_LAWS and not key_stream(backend):
        return ("compares with vaespec's key stream, which the backend does not declare (key_stream = 'vaespec'); "
                "its draws are checked by the property laws")
    return _variants.not_applicable(law, law_needs(law), variants(backend))
