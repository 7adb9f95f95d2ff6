"""The field's variants (`VARIANTS`), and the float64 reference under the variants a backend declares.

    value(function, args, indices, {"ema_debias": False})        # like the reference's outputs
    gradient(function, args, cotangent, indices, {...})          # like its vjp
    adapt(function, args, {...})                                 # the arguments both are handed

Each variant is the reference with one stated change, declared in one place: its `Variant` names the functions
it concerns (data, never an `if` on a function name in shared code) and its `Effect` says what it does to them:
the arguments (`adapt`), the reference's value (`compute`, `value`) and gradient (`gradient`), the diagnosis
candidates it contributes (`candidates`, `extras`) and the laws it makes n/a. A function no variant concerns is
the reference itself. Tolerances never change: they stay the reference's (`laws.tolerance`).

- `ema_debias = False`: `ema_update` without 1/(1 − γᵗ): Ñ = laplace_smooth(counts′, ε), e′_k = sums′_k / Ñ_k
  (the VQ-VAE paper's EMA, vector-quantize-pytorch). The stored state and the step are unchanged.
- `ema_epsilon = ε`: `ema_update`'s epsilon argument fixed to ε, for the backend and the reference alike.
- `gaussian_constant = False`: every Gaussian log-density without −½·D·log 2π (D features): +½·D·log 2π on
  `gaussian_log_likelihood`, and on `log_importance_weights`, `elbo`, `iwae_bound` for the Gaussian likelihood.
  Gradients are unchanged.
- `vq_codebook_term = False`, `vq_codebook_weight = c`: vq_loss = R + c·codebook_loss + w·commitment_loss (c = 0
  without the term): the value moves by (c − 1)·codebook_loss, the codebook's gradient (which only the
  codebook term gives) is scaled by c.
- `vq_single_term = True`: vq_loss = R + w·‖z_e − e‖² without stop-gradients (vector-quantize-pytorch's
  learnable codebook): the value R + w·commitment_loss (no separate codebook term), the codebook's gradient × w.
- `unit_decoder_variance = True`: the log-variance argument is 0 and its gradient 0.
- `bernoulli_binary_targets = True`: x rounded to {0, 1} for the Bernoulli likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaespec.reference import vq as reference_vq
from vaespec.reference.backend import ReferenceBackend
from vaespec.spec import dtypes
from vaespec.spec.contract import FUNCTIONS, call

from .tolerance import with_choices

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
REFERENCE = ReferenceBackend()

Chosen = Mapping[str, Any]  # variant name → declared value (undeclared: the field's default, `setting`)
Candidate = tuple[str, dict[str, Any], dict[str, Any]]  # (description, argument changes, variants)


def plain_reference(function: str, args, indices=None):
    """The float64 reference of `function` at `args` (at the choices `indices`), as vaespec states it."""
    if indices is None:
        return call(REFERENCE, function, args)
    return getattr(REFERENCE, function)(*(args[a.name] for a in FUNCTIONS[function].args), indices=indices)


def setting(chosen: Chosen, name: str):
    """The value of the variant `name` under `chosen`: the declared one, else vaespec's choice."""
    return chosen.get(name, VARIANTS[name].default)


class Effect:
    """What one or more variants do to the functions they concern. Every hook is called for a function the
    variant concerns, whatever is chosen (it reads `setting(chosen, …)`), and defaults to no change."""

    def adapt(self, function: str, args: dict[str, Any], chosen: Chosen) -> dict[str, Any]:
        """`args` (a copy to change) as the backend and the reference are handed them."""
        return args

    def compute(self, function: str, args, indices, chosen: Chosen):
        """The reference's outputs computed another way, or None: the reference's own."""

    def value(self, function: str, args, indices, outputs, chosen: Chosen):
        """`outputs` changed by the variant."""
        return outputs

    def gradient(self, function: str, args, grads: dict[str, Any], chosen: Chosen) -> dict[str, Any]:
        """The vjp `grads` (a copy to change) changed by the variant."""
        return grads

    def candidates(self, function: str, args, chosen: Chosen, gradient: bool) -> Iterable[Candidate]:
        """Diagnosis candidates beyond turning the variant the other way: (description, changes, variants)."""
        return ()

    def extras(self, function: str, args, indices, chosen: Chosen, dtype: str
               ) -> Iterable[tuple[str, Callable[[], Any]]]:
        """Diagnosis candidates of a value that are no variant: (description, its outputs when called)."""
        return ()

    def not_applicable(self, law: str, chosen: Chosen) -> str | None:
        """Why `law` cannot be asked of a backend declaring `chosen`, or None."""
        return None


NO_EFFECT = Effect()


@dataclass(frozen=True)
class Variant:
    """A way the field computes something that vaespec states as one choice among several.

    `default` is vaespec's choice; `kind` the type of a declared value (bool or float); `functions` those it
    concerns; `likelihood` the likelihood it concerns where a function takes one ("gaussian": the Bernoulli
    case of elbo is left alone); `effect` what it does (`Effect`); `flips` whether a diagnosis tries it turned
    the other way (not for a variant that only fixes an argument); `supported` False for a variant vaespec names
    but cannot yet check (declaring it with a value other than the default is a ConfigError, never ignored)."""

    name: str
    default: Any
    kind: type
    functions: tuple[str, ...]
    description: str
    effect: Effect = NO_EFFECT
    likelihood: str | None = None
    flips: bool = True
    supported: bool = True

    def says(self, value) -> str:
        """How a diagnosis names this variant at `value`."""
        if self.kind is bool:
            return ("with " if value else "without ") + self.description
        return f"{self.description} = {value!r}"

    def concerns(self, function: str, args: Mapping[str, Any] | None = None) -> bool:
        """Whether the variant changes `function` (at `args`: for the likelihood they name, if any)."""
        if function not in self.functions:
            return False
        return self.likelihood is None or args is None or args.get("likelihood", self.likelihood) == self.likelihood


# ----------------------------------------------------------------------------- the EMA codebook
def _batch_statistics(args, indices):
    """(n, s): the batch's per-code counts and sums over every position, read from the reference's own step at
    γ = 0, whose stored averages are exactly n and s (0·old + 1·new), so the statistics are written once."""
    _, n, s, _ = plain_reference("ema_update", {**args, "decay": 0.0, "training": True}, indices)
    return n, s


def ema_without_debiasing(args, indices):
    """`ema_update` with the biased averages used as they are (no 1/(1 − γᵗ)): the reference's stored state
    counts′, sums′ (which debiasing leaves unchanged), then e′_k = sums′_k / laplace_smooth(counts′, ε)_k."""
    new, counts, sums, step = plain_reference("ema_update", args, indices)
    if not args["training"]:
        return new, counts, sums, step
    smoothed = reference_vq.laplace_smooth(counts, float(args["epsilon"]))
    new = np.asarray(args["codebook"], dtype=np.float64).copy()
    used = smoothed > 0
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = sums[used] / smoothed[used, None]
    return new, counts, sums, step


def ema_as_lerp(args, indices, chosen: Chosen, dtype: str):
    """`ema_update` (under the variants `chosen`) with its averages computed as torch's `lerp_` computes them in
    `dtype`: old + w·(new − old) for w = 1 − γ < ½, else new − (new − old)·(1 − w), each operation rounded (w
    itself rounded to `dtype`). A diagnosis candidate, not a variant: at small γ the form cancels, by up to
    ulp(1)/γ relative, beyond the policy's bound for the stated formula."""
    if not args["training"]:
        return plain_reference("ema_update", args, indices)

    def r(a):
        return dtypes.round_to(dtype, np.asarray(a, dtype=np.float64))

    n, s = _batch_statistics(args, indices)
    w = float(r(1.0 - float(args["decay"])))

    def lerp(old, new):
        d = r(new - old)
        return r(old + r(w * d)) if w < 0.5 else r(new - r(d * float(r(1.0 - w))))

    counts, sums = lerp(np.asarray(args["ema_counts"], dtype=np.float64), n), lerp(np.asarray(args["ema_sums"]), r(s))
    step = int(args["ema_step"]) + 1
    debias = 1.0 if setting(chosen, "ema_debias") is False else 1.0 - float(args["decay"]) ** step
    smoothed = reference_vq.laplace_smooth(counts / debias, float(args["epsilon"]))
    new = np.asarray(args["codebook"], dtype=np.float64).copy()
    used = smoothed > 0
    with np.errstate(over="ignore", invalid="ignore"):
        new[used] = sums[used] / debias / smoothed[used, None]
    return new, counts, sums, step


class EMADebias(Effect):
    """ema_debias = False: the step without 1/(1 − γᵗ); its diagnosis also tries torch's lerp rounding."""

    def compute(self, function, args, indices, chosen):
        return ema_without_debiasing(args, indices) if setting(chosen, "ema_debias") is False else None

    def extras(self, function, args, indices, chosen, dtype):
        yield ((f"the reference with its averages as torch's lerp, old + (1 − γ)·(new − old), in {dtype} (a "
                "rounding that cancels at small γ, beyond the policy's bound)"),
               lambda: ema_as_lerp(args, indices, chosen, dtype))


class EMAEpsilon(Effect):
    """ema_epsilon = ε: the epsilon argument fixed; its diagnosis tries the common ε values."""

    EPSILONS = (0.0, 1e-5, 1e-6, 1e-3)
    NEEDS_ZERO = ("ema_kmeans_step",)  # laws stated at ε = 0, which a fixed nonzero ε cannot be handed

    def adapt(self, function, args, chosen):
        if setting(chosen, "ema_epsilon") is not None and "epsilon" in args:
            args["epsilon"] = float(setting(chosen, "ema_epsilon"))
        return args

    def candidates(self, function, args, chosen, gradient):
        if gradient:
            return
        for eps in self.EPSILONS:
            if eps != float(args["epsilon"]):
                yield f"the reference with the Laplace ε = {eps:g} (not {float(args['epsilon']):g})", \
                    {"epsilon": eps}, dict(chosen)

    def not_applicable(self, law, chosen):
        if law in self.NEEDS_ZERO and setting(chosen, "ema_epsilon"):
            return "needs ε = 0; the backend fixes ε (variants['ema_epsilon'])"
        return None


# ----------------------------------------------------------------------------- vq_loss's codebook term
def codebook_term_weight(chosen: Chosen) -> float:
    """The weight c of the codebook term in vq_loss's value under the variants `chosen` (0 without the term)."""
    if setting(chosen, "vq_codebook_term") is False or setting(chosen, "vq_single_term"):
        return 0.0
    return float(setting(chosen, "vq_codebook_weight"))


class CodebookTerm(Effect):
    """vq_codebook_term, vq_codebook_weight, vq_single_term: one effect, the codebook term weighted by c (the
    gradient of the codebook by w for the single term); its diagnosis tries c = w."""

    def value(self, function, args, indices, outputs, chosen):
        c = codebook_term_weight(chosen)
        if c == 1.0:
            return outputs
        z_e = REFERENCE.vq_encode(args["arch"], args["params"], args["x"])
        if indices is None:
            indices = reference_vq.nearest_code(z_e, args["codebook"])
        codebook_term = REFERENCE.codebook_loss(z_e, args["codebook"], indices=indices)
        return np.float64(outputs) + (c - 1.0) * np.float64(codebook_term)

    def gradient(self, function, args, grads, chosen):
        c = float(args["commitment_weight"]) if setting(chosen, "vq_single_term") else codebook_term_weight(chosen)
        if c != 1.0:
            grads["codebook"] = c * np.asarray(grads["codebook"])
        return grads

    def candidates(self, function, args, chosen, gradient):
        if float(args["commitment_weight"]) != 1.0:
            yield "the reference with the codebook term weighted by w, as the commitment term", {}, \
                {**chosen, "vq_codebook_weight": float(args["commitment_weight"])}


# ----------------------------------------------------------------------------- likelihoods
class GaussianConstant(Effect):
    """gaussian_constant = False: + ½·D·log 2π on the value (D = ∏event of x [batch, *event]: an example's entries);
    the gradient is unchanged."""

    def value(self, function, args, indices, outputs, chosen):
        if setting(chosen, "gaussian_constant") is not False:
            return outputs
        return np.asarray(outputs, dtype=np.float64) + math.prod(np.shape(args["x"])[1:]) * HALF_LOG_2PI


class UnitDecoderVariance(Effect):
    """unit_decoder_variance = True: the decoder's log-variance argument (whichever of `ARGUMENTS` the function
    takes) is 0, and its gradient 0."""

    ARGUMENTS = ("log_var", "decoder_log_var")

    def adapt(self, function, args, chosen):
        if setting(chosen, "unit_decoder_variance"):
            for name in self.ARGUMENTS:
                if name in args:
                    args[name] = np.zeros_like(args[name])
        return args

    def gradient(self, function, args, grads, chosen):
        if setting(chosen, "unit_decoder_variance"):
            for name in self.ARGUMENTS:
                if name in grads:
                    grads[name] = np.zeros_like(grads[name])
        return grads


class BinaryTargets(Effect):
    """bernoulli_binary_targets = True: x rounded to {0, 1} (x ≥ ½ → 1)."""

    def adapt(self, function, args, chosen):
        if setting(chosen, "bernoulli_binary_targets") and "x" in args:
            args["x"] = (np.asarray(args["x"]) >= 0.5).astype(np.float64)
        return args


_LIKELIHOOD_NETWORK = ("log_importance_weights", "elbo", "iwae_bound")
_CODEBOOK_TERM = CodebookTerm()

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("ema_debias", True, bool, ("ema_update",), "EMA debiasing 1/(1 − γᵗ)", EMADebias()),
    Variant("ema_epsilon", None, float, ("ema_update",), "a fixed Laplace ε (the epsilon argument ignored)",
            EMAEpsilon(), flips=False),
    Variant("ema_stores_smoothed_counts", False, bool, ("ema_update",),
            "the Laplace-smoothed counts stored back as the EMA state", supported=False),
    Variant("vq_codebook_term", True, bool, ("vq_loss",), "the codebook term ‖sg(z_e) − e‖² in vq_loss",
            _CODEBOOK_TERM),
    Variant("vq_codebook_weight", 1.0, float, ("vq_loss",), "the codebook term's weight in vq_loss",
            _CODEBOOK_TERM),
    Variant("vq_single_term", False, bool, ("vq_loss",),
            "vq_loss = R + w·‖z_e − e‖² as one term without stop-gradients (both sides pulled by w)",
            _CODEBOOK_TERM),
    Variant("gaussian_constant", True, bool, ("gaussian_log_likelihood", *_LIKELIHOOD_NETWORK),
            "the Gaussian log-likelihood's constant −½·D·log 2π", GaussianConstant(), likelihood="gaussian"),
    Variant("unit_decoder_variance", False, bool, ("gaussian_log_likelihood", *_LIKELIHOOD_NETWORK),
            "a fixed unit decoder variance (the log-variance argument ignored, its gradient 0)",
            UnitDecoderVariance(), flips=False),
    Variant("bernoulli_binary_targets", False, bool, ("bernoulli_log_likelihood", *_LIKELIHOOD_NETWORK),
            "Bernoulli targets that must be binary (x drawn in {0, 1})", BinaryTargets(), likelihood="bernoulli",
            flips=False),
)}


def effects(function: str, args: Mapping[str, Any] | None = None) -> tuple[Effect, ...]:
    """The distinct effects of the variants that concern `function` (at `args`), in `VARIANTS`' order."""
    return tuple(dict.fromkeys(v.effect for v in VARIANTS.values() if v.concerns(function, args)))


def adapt(function: str, args: dict[str, Any], chosen: Chosen) -> dict[str, Any]:
    """`args` as the backend and the reference are handed them under the variants `chosen`."""
    for effect in effects(function, args):
        args = effect.adapt(function, dict(args), chosen)
    return args


def value(function: str, args, indices, chosen: Chosen):
    """The reference's outputs of `function` at `args` (choices `indices`) under the variants `chosen`."""
    concerned = effects(function, args)
    outputs = next((o for o in (e.compute(function, args, indices, chosen) for e in concerned) if o is not None),
                   None)
    if outputs is None:
        outputs = plain_reference(function, args, indices)
    for effect in concerned:
        outputs = effect.value(function, args, indices, outputs, chosen)
    return outputs


def gradient(function: str, args, cotangent, indices, chosen: Chosen):
    """The reference's vjp of `function` at `args` under the variants `chosen` (see the module docstring)."""
    grads = dict(REFERENCE.vjp(function, with_choices(args, indices), cotangent))
    for effect in effects(function, args):
        grads = effect.gradient(function, args, dict(grads), chosen)
    return grads


def not_applicable(law: str, functions: Iterable[str], chosen: Chosen) -> str | None:
    """Why `law` (calling `functions`) cannot be asked of a backend declaring `chosen`, or None."""
    for effect in dict.fromkeys(e for f in functions for e in effects(f)):
        reason = effect.not_applicable(law, chosen)
        if reason:
            return reason
    return None


def concerns(function: str) -> bool:
    """Whether some variant changes `function`'s expected value or gradient."""
    return function in FUNCTIONS and any(v.concerns(function) for v in VARIANTS.values())
