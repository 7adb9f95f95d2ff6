"""Central finite differences along a random direction: the one checker of every hand-written VJP.

**Check.** For a function f, cotangent ȳ and a random direction v over every differentiable input
(each array, each array of a params mapping):

    ⟨vjp(f, x, ȳ), v⟩  ≈  ⟨ȳ, f(x + h v) − f(x − h v)⟩ / 2h

**Tolerance (derived, not tuned).** A central difference errs by truncation h²·|f'''|/6 and by
rounding u·M/h, with u = 2⁻⁵² and M the magnitude of the computed values (the reference's
computation on absolute values, which bounds the cancellation). With h = u^(1/3) ≈ 6·10⁻⁶ both are
≈ u^(2/3) ≈ 4·10⁻¹¹ relative to the size of the terms. `RTOL` = 10⁻⁶ is allowed relative to
S = |fd| + |⟨vjp, v⟩| + Σ|grad|·|v| + Σ|ȳ|·M±: a 10⁴× margin over u^(2/3), because the third
derivatives of these small problems are O(1)–O(100) and the rounding chains are up to ~30 operations
long. M± is taken at the perturbed points, where f is evaluated (at x̂ ≈ x a loss is ~0 at x but ~h²
at x ± hv). A wrong gradient (a dropped term, a wrong factor) errs by O(1) relative to S, so the
margin costs no power.

**Exact steps.** x ± hv would be rounded when formed, leaving x off the midpoint by u·|x| — a
second-order error f''·u|x|·|v| that dominates where the gradient is 0. So each input is first
rounded to a power-of-two grid q fine enough (|x|/q < 2⁵²) that x ± s, with the step s = hv also on
the grid, are exact floats: the difference is exactly centred and v = s/h is exactly the direction.

    step = direction(args, names, seed)            # base, plus, minus, taken (v per input)
    fd, dot, tol = directional_check(step, f, vjp(step.base), cotangent, magnitude)
    assert abs(fd - dot) <= tol
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vaespec.spec.architecture import ACTIVATIONS

U = np.finfo(np.float64).eps            # 2⁻⁵²
H = U ** (1.0 / 3.0)                    # ≈ 6.06e-6: balances truncation and rounding
RTOL = 1e-6                             # 1e4 × u^(2/3) ≈ 3.7e-11, see the module docstring
# A difference straddling a kink errs by O(1) (relu, leaky_relu) or O(h) (elu's jump in f''): network sweeps
# use the smooth activations, and each derivative is checked on its own (test_reference_gradients).
KINKED = ("relu", "leaky_relu", "elu")
SMOOTH = tuple(a for a in ACTIVATIONS if a not in KINKED)


def tree_map(fn, tree, *others):
    """`fn` on an array, or on each array of a mapping (a params mapping), with the matching entries of `others`."""
    if isinstance(tree, Mapping):
        return {k: fn(v, *(o[k] for o in others)) for k, v in tree.items()}
    return fn(tree, *others)


def tree_leaves(tree):
    """The float64 arrays of an array or of a mapping (in sorted key order, so two trees pair up)."""
    if isinstance(tree, Mapping):
        for key in sorted(tree):
            yield from tree_leaves(tree[key])
    else:
        yield np.asarray(tree, dtype=np.float64)


def inner(outputs, cotangent) -> float:
    """⟨ȳ, y⟩ summed over the output structure (a tuple of outputs pairs with a tuple of cotangents)."""
    if isinstance(outputs, tuple):
        return float(sum(np.sum(np.asarray(o) * np.asarray(c)) for o, c in zip(outputs, cotangent)))
    return float(np.sum(np.asarray(outputs) * np.asarray(cotangent)))


def on_grid(a, raw):
    """(a′, s): `a` rounded to a power-of-two grid q and the step s ≈ h·raw on that grid.

    Every y = a′ ± s has |y| < 2·big ≤ 2^e with q = 2^(e−52), so y/q is an integer below 2⁵³ and y is an
    exact float: a′ is exactly the midpoint of a′ + s and a′ − s.
    """
    big = float(np.max(np.abs(a)) + H * np.max(np.abs(raw)))
    q = 2.0 ** (np.frexp(2.0 * big)[1] - 52)
    return np.round(a / q) * q, np.round(H * raw / q) * q


@dataclass(frozen=True)
class Direction:
    """The points of one central difference: `base` (the inputs on their grids), `plus`/`minus` = base ± s, and
    `taken` = s/h per differentiated input (the direction v exactly)."""

    names: tuple[str, ...]
    base: dict
    plus: dict
    minus: dict
    taken: dict


def direction(args: Mapping[str, Any], names, seed: int) -> Direction:
    """A random standard-normal direction over the inputs `names` of `args`, on exact grids (`on_grid`)."""
    rng = np.random.default_rng(seed)
    raw = {n: tree_map(lambda p: rng.standard_normal(np.shape(p)), args[n]) for n in names}
    gridded = {n: tree_map(on_grid, args[n], raw[n]) for n in names}
    base = {**args, **{n: tree_map(lambda pair: pair[0], gridded[n]) for n in names}}
    step = {n: tree_map(lambda pair: pair[1], gridded[n]) for n in names}
    return Direction(tuple(names), base,
                     {**base, **{n: tree_map(np.add, base[n], step[n]) for n in names}},
                     {**base, **{n: tree_map(np.subtract, base[n], step[n]) for n in names}},
                     {n: tree_map(lambda s: s / H, step[n]) for n in names})


def directional_check(step: Direction, f: Callable, grads: Mapping[str, Any], cotangent,
                      magnitude: Callable) -> tuple[float, float, float]:
    """(fd, ⟨grads, v⟩, tolerance) for the direction `step`.

    **Arguments**
    - `f(point)`: the function's outputs at a point (the structure of `cotangent`).
    - `grads`: the VJP under test at `step.base`, one entry per differentiated input.
    - `magnitude(point)`: the outputs' magnitude at a point (like the outputs), for the rounding term.

    Raises AssertionError when `grads` lacks an input, a params entry, or has a wrong shape.
    """
    if sorted(grads) != sorted(step.names):
        raise AssertionError(f"vjp returned {sorted(grads)}, expected {sorted(step.names)}")
    for n in step.names:
        if isinstance(step.taken[n], Mapping) and sorted(grads[n]) != sorted(step.taken[n]):
            raise AssertionError(f"the gradient of {n} has entries {sorted(grads[n])}, expected "
                                 f"{sorted(step.taken[n])}")
        for g, v in zip(tree_leaves(grads[n]), tree_leaves(step.taken[n])):
            if g.shape != v.shape:
                raise AssertionError(f"the gradient of {n} has shape {g.shape}, expected {v.shape}")
    fd = (inner(f(step.plus), cotangent) - inner(f(step.minus), cotangent)) / (2 * H)
    g_leaves = [g for n in step.names for g in tree_leaves(grads[n])]
    v_leaves = [v for n in step.names for v in tree_leaves(step.taken[n])]
    dot = float(sum(np.sum(g * v) for g, v in zip(g_leaves, v_leaves)))
    abs_dot = float(sum(np.sum(np.abs(g) * np.abs(v)) for g, v in zip(g_leaves, v_leaves)))
    ct = cotangent if isinstance(cotangent, tuple) else (cotangent,)
    rounding_scale = 0.0
    for point in (step.plus, step.minus):
        m = magnitude(point)
        m = m if isinstance(m, tuple) else (m,)
        rounding_scale += 0.5 * float(sum(np.sum(np.abs(np.asarray(c)) * np.abs(np.asarray(mm)))
                                          for c, mm in zip(ct, m)))
    return fd, dot, RTOL * (abs(fd) + abs(dot) + abs_dot + rounding_scale)


def elementwise_derivative(f: Callable, y, step):
    """f′(y) entry by entry by central differences, for an elementwise f (an activation): (f(y + s) − f(y − s))
    divided by the distance actually taken between the two points (y ± s rounded), so the rounding of the
    points costs nothing; `step` s is a number or an array like y."""
    y = np.asarray(y, dtype=np.float64)
    plus, minus = y + step, y - step
    return (f(plus) - f(minus)) / (plus - minus)
