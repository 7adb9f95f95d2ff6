"""`network_gradients_eq_own_finite_differences`: a backend's VJPs against central differences of its own functions.

The reference cannot differentiate a network it does not implement (a backend's own, `vaespec.spec.own`), but
the backend can be differentiated numerically through itself. For a drawn network function f (encode, decode,
sample_latent, forward, generate, loss: `FD_FUNCTIONS`), cotangent ȳ and direction v over every differentiable
argument (each parameter array, x or z; each entry uniform in ±1 times its array's largest |entry|):

    ⟨vjp(f)(ȳ), v⟩  =  ⟨ȳ, ∂_v f(θ)⟩  ≈  D(t) = ⟨ȳ, f(θ + tv) − f(θ − tv)⟩ / 2t

judged at t = h/2 with h = `finite_difference_step` (∛(3·rel), rel the policy's bound of one evaluation of f:
its declared chain, or an own network's stated `rounding_chain`). The same law runs on vaespec's dense and conv
networks, so every backend's VJPs are checked against its own forward pass, not only against the reference.

**Exact steps.** θ ± tv are formed exactly in the backend's dtype: each array is put on a power-of-two grid
q (|θ| + h|v| < 2^(p−1)·q, p the dtype's precision) and the step hv on the grid 2q, so θ ± hv and θ ± hv/2 are
representable and θ is exactly their midpoint; v = step / h.

**Tolerance (derived, not tuned).** Let T(t) = Σ|ȳ|·τ(θ + tv), τ the policy's per-side bound of one evaluation
(`tolerance(…, sides=1)`; an own network's `own_network_tolerance`), plus the float64 contraction's rounding.
The rounding of D(t) is ρ(t) = (T(t) + T(−t))/2t; of the fourth difference Δ⁴ = ⟨ȳ, f(−h) − 4f(−h/2) + 6f(0)
− 4f(h/2) + f(h)⟩ it is ρ₄ = T(−h) + 4T(−h/2) + 6T(0) + 4T(h/2) + T(h).

**Validity (a kink or a large curvature makes a difference quotient wrong, not the backend).** An example is
judged only where (i) the estimates at h and h/2 agree within their rounding, |D(h) − D(h/2)| ≤ ρ(h) + ρ(h/2)
(the truncation t²f‴/6 shrinks fourfold from h to h/2: the difference is ¾ of D(h)'s truncation), and (ii) f's
even part along the line scales as t², |Δ⁴| ≤ ρ₄ (a kink at θ makes it ∝ t: relu at a pre-activation of exactly
0, which the `kinks` regime draws). Elsewhere the example is rejected (Hypothesis draws another).

Where both hold, |D(h/2) − ∂_v f| ≤ ρ(h/2) + 2(ρ(h) + ρ(h/2)) + ρ₄/h: smooth, the truncation of D(h/2) is a
third of the exact D(h) − D(h/2), itself within 2(ρ(h) + ρ(h/2)); through one kink at δ ≠ 0 on the line,
D(h/2) − ∂_v f = (D(h) − D(h/2)) ∓ Δ⁴/2h exactly (piecewise linear along the line), each term bounded by
twice its gate. Adding the VJP's own bound contracted with |v| (`tolerance(…, cotangent=ȳ, sides=1)`, or
`own_network_vjp_tolerance`) gives the tolerance, ≈ 24·T/h + Σ τ̄|v|.

**Dtypes.** Where the policy's rel is large the resolution ≈ 17·rel^(2/3)·M exceeds the gradient: the law runs
in `FINITE_DIFFERENCE_DTYPES` (float64, float32) and is n/a elsewhere (`finite_difference_unsound`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from vaespec.spec import tolerances as policy
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.own import OwnArchitecture

from ..strategies import vae as strategies
from . import declared
from .checking import Check, context, function_args, one_or_tuple, split_outputs
from .compare import LawViolation, LazyText, as_input
from .tolerance import function_chain, own_network_chain, own_network_tolerance, own_network_vjp_tolerance, tolerance

LAW = "network_gradients_eq_own_finite_differences"
# The network functions with a VJP: every VAE-chapter function that takes an arch and has a differentiable argument.
FD_FUNCTIONS = tuple(sorted((f for f, s in FUNCTIONS.items()
                            if s.chapter == "vae" and s.differentiable and any(a.kind == "arch" for a in s.args)),
                           key=lambda f: f != "loss"))  # loss first: the engine draws the first option most
PRECISION = {"float64": 53, "float32": 24, "bfloat16": 8, "float16": 11}  # significand bits p
U64 = 2.0**-53  # the float64 contraction ⟨ȳ, f⟩ and ⟨ḡ, v⟩ round too


def _leaves(tree, prefix=""):
    if isinstance(tree, Mapping):
        for key in sorted(tree):
            yield from _leaves(tree[key], f"{prefix}{key}.")
    else:
        yield prefix[:-1], np.asarray(tree, dtype=np.float64)


def _tree_map(fn, tree, *others):
    if isinstance(tree, Mapping):
        return {k: _tree_map(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    return fn(np.asarray(tree, dtype=np.float64), *(np.asarray(o, dtype=np.float64) for o in others))


def on_grid(value: np.ndarray, raw: np.ndarray, h: float, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(θ′, s): `value` rounded to a power-of-two grid q and the step s ≈ h·raw on the grid 2q, such that θ′ ± s
    and θ′ ± s/2 are exact in a p-bit significand: all are multiples of q below 2^(p−1)·q in size."""
    big = float(np.max(np.abs(value), initial=0.0) + h * np.max(np.abs(raw), initial=0.0))
    q = 2.0 ** (np.frexp(max(2.0 * big, 2.0**-60))[1] - p + 1)
    return np.round(value / q) * q, np.round(h * raw / (2 * q)) * (2 * q)


def _step_size(dtype: str, function: str, args) -> float:
    """h = ∛(3·rel) of f's bound at `args` (`vaespec.spec.tolerances.finite_difference_step`): its declared chain,
    or an own network's stated one."""
    if isinstance(args.get("arch"), OwnArchitecture):
        return policy.finite_difference_step(dtype, *own_network_chain(function, args))
    return policy.finite_difference_step(dtype, *function_chain(function, args))


def _flat(value) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in (value if isinstance(value, tuple) else (value,))]


def _contract(cotangent, outputs) -> float:
    return float(sum(np.sum(c * o) for c, o in zip(_flat(cotangent), _flat(outputs))))


class _Line:
    """f along θ + k·s (s = h·v the step on the grid) for k ∈ {−1, −½, 0, ½, 1}: the outputs and, once ȳ is
    drawn, ⟨ȳ, f⟩ and the per-evaluation bound T at each point."""

    def __init__(self, backend, function: str, base, steps: dict, h: float):
        self.backend, self.function, self.base, self.steps, self.h = backend, function, base, steps, h
        self.own = isinstance(base.get("arch"), OwnArchitecture)
        self.outputs: dict[float, object] = {}

    def at(self, k: float) -> dict:
        moved = dict(self.base)
        for name, step in self.steps.items():
            moved[name] = _tree_map(lambda a, s: a + k * s, self.base[name], step)
        return moved

    def evaluate(self, k: float):
        floats, _ = split_outputs(self.function, call(self.backend, self.function, self.at(k)))
        self.outputs[k] = one_or_tuple(tuple(np.asarray(o, dtype=np.float64) for o in floats))
        return self.outputs[k]

    def contracted(self, k: float, cotangent) -> tuple[float, float]:
        """(⟨ȳ, f(θ + k·s)⟩, T): T = Σ|ȳ|·τ, τ the policy's per-side bound there plus the float64 contraction's."""
        outputs, dtype = self.outputs[k], self.backend.dtype
        tol = own_network_tolerance(dtype, self.function, self.at(k), outputs, outputs, sides=1) if self.own else \
            tolerance(dtype, self.function, self.at(k), sides=1)
        bound = sum(float(np.sum(np.abs(c) * (tau + (o.size + 2) * U64 * np.abs(o))))
                    for c, o, tau in zip(_flat(cotangent), _flat(outputs), _flat(tol)))
        return _contract(cotangent, outputs), bound


def directions(backend, function: str, args, seed: int, shrink: int = 0) -> tuple[dict, dict, float]:
    """(θ, s, h): the differentiable arguments of `args` on their grids, the step s = h·v on the grid 2q (v from
    `seed`: each entry uniform in ±1 times its array's largest |entry|, or 1 for an all-zero array) and h, the
    balanced step divided by 4^`shrink`."""
    dtype = backend.dtype
    h, p = _step_size(dtype, function, args) / 4.0**shrink, PRECISION[dtype]
    rng = np.random.default_rng(seed)
    base, steps = dict(args), {}
    for name in FUNCTIONS[function].differentiable:
        def grid(a):
            scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
            return on_grid(a, scale * rng.uniform(-1.0, 1.0, a.shape), h, p)
        pairs = _tree_map(grid, args[name])
        if isinstance(pairs, Mapping):
            base[name] = {k: v[0] for k, v in pairs.items()}
            steps[name] = {k: v[1] for k, v in pairs.items()}
        else:
            base[name], steps[name] = pairs
    return base, steps, h


SHRINKS = 3  # the step h, then h/4 and h/16 where a kink or a large curvature lies within the step


def check_own_differences(backend, function: str, args, cotangent, seed: int, line: _Line | None = None) -> float:
    """The law at `args` (as handed to `backend`), cotangent ȳ and the direction drawn from `seed`: the worst
    error ÷ tolerance, or a LawViolation. Where the difference quotient is not valid at the balanced step h
    (module doc) it is retried at h/4 and h/16 (a kink at δ ≠ 0 on the line is then outside the step), each with
    its own tolerance; the example is rejected only where none is valid (a kink at θ itself).
    `line`: the evaluations already made at h (the law's f(θ), evaluated to draw ȳ)."""
    for shrink in range(SHRINKS):
        ratio = _judge(backend, function, args, cotangent, seed, shrink, line if shrink == 0 else None)
        if ratio is not None:
            return ratio
    reject()  # not differentiable within h/16 of θ along v: the quotient is not the derivative
    return 0.0


def _judge(backend, function: str, args, cotangent, seed: int, shrink: int, line: _Line | None) -> float | None:
    """The ratio at step h/4^`shrink`, a LawViolation, or None where the quotient is not valid there."""
    dtype = backend.dtype
    if line is None:
        base, steps, h = directions(backend, function, args, seed, shrink)
        line = _Line(backend, function, base, steps, h)
    else:
        base, steps, h = line.base, line.steps, line.h
    ctx = context(function, args, backend) + LazyText(
        lambda: f"\nfrom vaespec.proofs_tests.laws.own_differences import check_own_differences\n"
                f"check_own_differences(backend, {function!r}, args, {_shown(cotangent)}, seed={seed})"
                "  # the law's comparison: raises")
    points = (-1.0, -0.5, 0.0, 0.5, 1.0)
    c, T = {}, {}
    for k in points:
        if k not in line.outputs:
            line.evaluate(k)
        c[k], T[k] = line.contracted(k, cotangent)
    d_h, d_half = (c[1.0] - c[-1.0]) / (2 * h), (c[0.5] - c[-0.5]) / h
    rho_h, rho_half = (T[1.0] + T[-1.0]) / (2 * h), (T[0.5] + T[-0.5]) / h
    fourth = c[-1.0] - 4 * c[-0.5] + 6 * c[0.0] - 4 * c[0.5] + c[1.0]
    rho_4 = T[-1.0] + 4 * T[-0.5] + 6 * T[0.0] + 4 * T[0.5] + T[1.0]
    if abs(d_h - d_half) > rho_h + rho_half or abs(fourth) > rho_4:
        return None  # a kink or a large third derivative within the step: the quotient is not the derivative
    gradient = backend.vjp(function, base, cotangent)
    grads = {name: gradient[name] for name in steps}
    dot = sum(float(np.sum(g * s)) for name in steps
              for (_, g), (_, s) in zip(_leaves(grads[name]), _leaves(steps[name]))) / h
    if line.own:
        vjp_tol = own_network_vjp_tolerance(dtype, function, base, gradient)
    else:
        vjp_tol = tolerance(dtype, function, base, cotangent=cotangent, sides=1)
    rho_vjp = sum(float(np.sum((tau + (s.size + 2) * U64 * np.abs(g)) * np.abs(s)))
                  for name in steps
                  for (_, tau), (_, g), (_, s) in zip(_leaves(_broadcast(vjp_tol[name], grads[name])),
                                                      _leaves(grads[name]), _leaves(steps[name]))) / h
    tol = rho_half + 2 * (rho_h + rho_half) + rho_4 / h + rho_vjp
    error = abs(d_half - dot)
    ratio = error / tol if tol > 0 else (0.0 if error == 0 else np.inf)
    if not ratio <= 1:
        raise LawViolation(
            f"vjp({function}): ⟨vjp(ȳ), v⟩ = {dot!r} but the backend's own central difference "
            f"⟨ȳ, f(θ + tv) − f(θ − tv)⟩/2t = {d_half!r} at t = {h / 2:.3g} (at t = {h:.3g}: {d_h!r}); "
            f"|difference| {error:.3e} > tolerance {tol:.3e} (rounding {rho_half:.2e}, truncation "
            f"{2 * (rho_h + rho_half):.2e}, kink {rho_4 / h:.2e}, vjp {rho_vjp:.2e}); direction v from seed {seed} "
            f"over {sorted(steps)}\n{ctx}", ratio=ratio)
    return ratio


def _broadcast(tol, like):
    """A tolerance (a float per array, or entrywise) shaped like the gradient `like`."""
    if isinstance(like, Mapping):
        return {k: _broadcast(tol[k], v) for k, v in like.items()}
    return np.broadcast_to(np.asarray(tol, dtype=np.float64), np.shape(like))


def _shown(cotangent) -> str:
    if isinstance(cotangent, tuple):
        return "(" + ", ".join(_shown(c) for c in cotangent) + ",)"
    if np.ndim(cotangent) == 0:
        return repr(float(cotangent))
    return f"np.array({np.asarray(cotangent).tolist()!r})"


def network_gradients_eq_own_finite_differences(backend, example, draw):
    function = draw(strategies.uniform_choice(FD_FUNCTIONS))
    own = declared.own_architectures(backend)
    if own:
        example = draw(strategies.own_network_examples(own))
    args = function_args(function, example, backend)
    seed = draw(st.integers(0, 2**32 - 1))
    line = _Line(backend, function, *directions(backend, function, args, seed))
    cotangent = _as_cotangent(backend.dtype, draw(strategies.cotangents(function, line.evaluate(0.0))))
    return check_own_differences(backend, function, args, cotangent, seed, line)


def _as_cotangent(dtype: str, value):
    if isinstance(value, tuple):
        return tuple(_as_cotangent(dtype, v) for v in value)
    value = as_input(dtype, np.asarray(value, dtype=np.float64))
    return value if value.ndim else float(value)


# The `kinks` regime puts pre-activations at exactly 0, where no difference quotient is the derivative (the stated
# derivatives there are `*_gradient_matches_reference`'s): the law draws vaespec's networks of the other regimes.
CHECKS = {LAW: Check(LAW, strategies.network_examples().filter(lambda e: e.extra.get("regime") != "kinks"),
                     network_gradients_eq_own_finite_differences)}
