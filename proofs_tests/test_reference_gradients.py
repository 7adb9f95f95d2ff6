"""The reference's hand-written VJPs against central finite differences, in float64.

**Check.** For a contract function f, cotangent ȳ and a random direction v over every
differentiable input (the whole params mapping and each differentiable array):

    ⟨vjp(f, x, ȳ), v⟩  ≈  ⟨ȳ, f(x + h v) − f(x − h v)⟩ / 2h

**Tolerance (derived, not tuned).** A central difference errs by truncation
h²·|f'''|/6 and by rounding u·M/h, with u = 2⁻⁵² and M the magnitude of the computed
values (`vaespec.reference.magnitude`: the computation done on absolute values,
which bounds the cancellation). With h = u^(1/3) ≈ 6·10⁻⁶ both are ≈ u^(2/3) ≈ 4·10⁻¹¹
relative to the size of the terms. We allow RTOL = 10⁻⁶ relative to
S = |fd| + |⟨vjp, v⟩| + Σ|grad|·|v| + Σ|ȳ|·M±: a 10⁴× margin over u^(2/3), because the
third derivatives of these small nets are O(1)–O(100) and the rounding chain is up
to ~30 operations long. M± is taken at the perturbed points, where f is evaluated
(at x̂ ≈ x the loss is ~0 at x but ~h² at x ± hv). A wrong gradient (a dropped term,
a wrong factor) errs by O(1) relative to S, so the margin costs no power.

**Exact steps.** x ± hv would be rounded when formed, leaving x off the midpoint by
u·|x| — a second-order error f''·u|x|·|v| that dominates where the gradient is 0.
So each input is first rounded to a power-of-two grid q fine enough (|x|/q < 2⁵²)
that x ± s, with the step s = hv also on the grid, are exact floats: the difference
is exactly centred and v = s/h is exactly the direction taken.

**Kinks.** relu and leaky_relu have a kink at 0 and elu a jump in f'' there: a finite
difference straddling the kink errs by O(1) (relu, leaky_relu) or O(h) ≈ 1.5·10⁻⁶
(elu, more than RTOL). The network sweep therefore uses the smooth activations only.
That loses nothing: the backward pass (`mlp.hidden_backward`) is generic in the
activation — it multiplies by `act.derivative(pre)` — so the chain rule is covered by
any activation, and each activation's derivative (kinked ones included, away from
the kink, plus the torch conventions at 0) is checked separately below. This is
simpler and as honest as filtering examples whose pre-activations come near 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.strategies import architectures, cotangents, examples_for, network_examples
from vaespec.reference import ACTIVATION_FUNCTIONS, REFERENCE, ReferenceBackend, init_params, magnitude, vjp
from vaespec.spec.architecture import ACTIVATIONS, ELU_ALPHA, LEAKY_RELU_SLOPE, Architecture
from vaespec.spec.contract import FUNCTIONS, VAE_FUNCTIONS, call

U = np.finfo(np.float64).eps            # 2⁻⁵²
H = U ** (1.0 / 3.0)                    # ≈ 6.06e-6: balances truncation and rounding
RTOL = 1e-6                             # 1e4 × u^(2/3) ≈ 3.7e-11, see the module docstring
KINKED = ("relu", "leaky_relu", "elu")
SMOOTH = tuple(a for a in ACTIVATIONS if a not in KINKED)
BACKEND = ReferenceBackend()


def _strategy(function: str):
    """examples_for(function), with the network functions restricted to smooth activations."""
    if function in ("reparameterize", "kl_divergence", "reconstruction_loss"):
        return examples_for(function)
    return architectures(activations=SMOOTH).flatmap(lambda arch: network_examples(arch=arch))


def _pair(outputs, cotangent) -> float:
    """⟨ȳ, y⟩ summed over the output structure (a tuple for encode)."""
    if isinstance(outputs, tuple):
        return float(sum(np.sum(o * c) for o, c in zip(outputs, cotangent)))
    return float(np.sum(np.asarray(outputs) * np.asarray(cotangent)))


def _on_grid(a, raw):
    """(a′, s): `a` rounded to a power-of-two grid q and the step s ≈ h·raw on that grid.

    Every y = a′ ± s has |y| < 2·big ≤ 2^e with q = 2^(e−52), so y/q is an integer below
    2⁵³ and y is an exact float: a′ is exactly the midpoint of a′ + s and a′ − s.
    """
    big = float(np.max(np.abs(a)) + H * np.max(np.abs(raw)))
    q = 2.0 ** (np.frexp(2.0 * big)[1] - 52)
    return np.round(a / q) * q, np.round(H * raw / q) * q


def _map(fn, tree, *others):
    if isinstance(tree, dict):
        return {k: fn(v, *(o[k] for o in others)) for k, v in tree.items()}
    return fn(tree, *others)


def _leaves(tree):
    if isinstance(tree, dict):
        for key in sorted(tree):
            yield from _leaves(tree[key])
    else:
        yield np.asarray(tree, dtype=np.float64)


def directional_check(function: str, args, cotangent, seed: int):
    """(fd, ⟨vjp, v⟩, tolerance) for one random direction."""
    names = FUNCTIONS[function].differentiable
    rng = np.random.default_rng(seed)
    raw = {n: _map(lambda p: rng.standard_normal(p.shape), args[n]) for n in names}
    gridded = {n: _map(_on_grid, args[n], raw[n]) for n in names}
    args = {**args, **{n: _map(lambda pair: pair[0], gridded[n]) for n in names}}
    step = {n: _map(lambda pair: pair[1], gridded[n]) for n in names}
    taken = {n: _map(lambda s: s / H, step[n]) for n in names}
    plus = {**args, **{n: _map(np.add, args[n], step[n]) for n in names}}
    minus = {**args, **{n: _map(np.subtract, args[n], step[n]) for n in names}}
    fd = (_pair(call(BACKEND, function, plus), cotangent) - _pair(call(BACKEND, function, minus), cotangent)) / (2 * H)

    grads = vjp(function, args, cotangent)
    assert sorted(grads) == sorted(names), f"{function}: vjp returned {sorted(grads)}, expected {sorted(names)}"
    if "params" in names:
        assert sorted(grads["params"]) == sorted(args["params"]), f"{function}: params gradient names differ"
    for n in names:
        for g, v in zip(_leaves(grads[n]), _leaves(taken[n])):
            assert g.shape == v.shape, f"{function}: gradient of {n} has shape {g.shape}, expected {v.shape}"
    g_leaves = [g for n in names for g in _leaves(grads[n])]
    v_leaves = [v for n in names for v in _leaves(taken[n])]
    dot = float(sum(np.sum(g * v) for g, v in zip(g_leaves, v_leaves)))
    abs_dot = float(sum(np.sum(np.abs(g) * np.abs(v)) for g, v in zip(g_leaves, v_leaves)))
    ct = cotangent if isinstance(cotangent, tuple) else (cotangent,)
    rounding_scale = 0.0
    for point in (plus, minus):
        m = magnitude(function, point)
        m = m if isinstance(m, tuple) else (m,)
        rounding_scale += 0.5 * float(sum(np.sum(np.abs(c) * np.abs(mm)) for c, mm in zip(ct, m)))
    tolerance = RTOL * (abs(fd) + abs(dot) + abs_dot + rounding_scale)
    return fd, dot, tolerance


@pytest.mark.parametrize("function", sorted(VAE_FUNCTIONS))  # other chapters: test_reference_vq, …
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_vjp_matches_central_differences(function, data):
    example = data.draw(_strategy(function), label="example")
    args = example.args
    cotangent = data.draw(cotangents(function, call(BACKEND, function, args)), label="cotangent")
    seed = data.draw(st.integers(0, 2**32 - 1), label="direction seed")
    fd, dot, tolerance = directional_check(function, args, cotangent, seed)
    assert abs(fd - dot) <= tolerance, (
        f"{function}: ⟨vjp, v⟩ = {dot!r} but the central difference gives {fd!r}; "
        f"|difference| = {abs(fd - dot):.3e} > tolerance {tolerance:.3e}")


def test_directional_check_detects_a_wrong_gradient(monkeypatch):
    # Negative control: a 1% error in one parameter gradient must fail the same check.
    arch = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(5,), activation="tanh")
    rng = np.random.default_rng(0)
    args = {"arch": arch, "params": init_params(arch, 0), "x": rng.standard_normal((4, 3)),
            "eps": rng.standard_normal((4, 2)), "beta": 0.5, "convention": "elbo"}
    fd, dot, tolerance = directional_check("loss", args, 1.0, seed=7)
    assert abs(fd - dot) <= tolerance
    original = REFERENCE["loss"].vjp

    def wrong(*a, **k):
        out = original(*a, **k)
        out["params"]["decoder_output.bias"] = out["params"]["decoder_output.bias"] * 1.01
        return out

    monkeypatch.setitem(REFERENCE, "loss", dataclasses.replace(REFERENCE["loss"], vjp=wrong))
    fd, dot, tolerance = directional_check("loss", args, 1.0, seed=7)
    assert abs(fd - dot) > tolerance


# ----------------------------------------------------------------------------- activations
GRID = np.linspace(-6.0, 6.0, 241)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_derivative_matches_central_differences(name):
    act = ACTIVATION_FUNCTIONS[name]
    # Kinked activations: stay 1e-3 ≫ h away from 0 so no difference straddles the kink.
    y = GRID[np.abs(GRID) > 1e-3] if name in KINKED else GRID
    step = H * np.maximum(1.0, np.abs(y))
    plus, minus = y + step, y - step
    fd = (act.value(plus) - act.value(minus)) / (plus - minus)
    # Truncation h²|f'''|/6 with |f'''| ≤ 2 here, rounding u·|f|/h: ≈ 4e-11·(1 + |f|); 1e4 margin.
    tolerance = RTOL * (1.0 + np.abs(act.value(y)))
    error = np.abs(fd - act.derivative(y))
    worst = int(np.argmax(error / tolerance))
    assert np.all(error <= tolerance), f"{name}'({y[worst]!r}) = {act.derivative(y)[worst]!r}, FD gives {fd[worst]!r}"


def test_kink_conventions_follow_torch():
    zero = np.array([0.0, -0.0])
    assert ACTIVATION_FUNCTIONS["relu"].derivative(zero).tolist() == [0.0, 0.0]
    assert ACTIVATION_FUNCTIONS["leaky_relu"].derivative(zero).tolist() == [LEAKY_RELU_SLOPE] * 2 == [0.01] * 2
    assert ACTIVATION_FUNCTIONS["elu"].derivative(zero).tolist() == [ELU_ALPHA] * 2  # C¹: both sides give 1
    assert ACTIVATION_FUNCTIONS["relu"].value(zero).tolist() == [0.0, 0.0]


ULPS = 4 * 2.0**-53  # each formula below takes at most four roundings


@pytest.mark.parametrize("name, y, expected", [
    ("gelu", 1.0, 0.8413447460685429),          # Φ(1)
    ("gelu", -1.0, -0.15865525393145707),       # −(1 − Φ(1))
    ("softplus", 0.0, math.log(2.0)),
    ("softplus", -40.0, math.exp(-40.0)),       # log1p(e⁻⁴⁰) = e⁻⁴⁰ to first order
    ("silu", 1.0, 1.0 / (1.0 + math.exp(-1.0))),
    ("sigmoid", -800.0, 0.0),                   # no overflow warning, no NaN
    ("elu", -1.0, math.exp(-1.0) - 1.0),
    ("tanh", 0.5, math.tanh(0.5)),
    ("leaky_relu", -2.0, -0.02),
    ("relu", -2.0, 0.0),
    ("identity", -2.5, -2.5),
])
def test_activation_values_at_known_points(name, y, expected):
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # underflow to 0 is correct
        got = float(ACTIVATION_FUNCTIONS[name].value(np.array([y]))[0])
    assert got == pytest.approx(expected, rel=ULPS, abs=0.0), f"{name}({y}) = {got!r}, expected {expected!r}"


def test_activations_match_scipy():
    special = pytest.importorskip("scipy.special")
    y = np.linspace(-30.0, 30.0, 601)
    phi = np.exp(-0.5 * y * y) / math.sqrt(2 * math.pi)
    expected = {
        "gelu": (y * special.ndtr(y), special.ndtr(y) + y * phi),
        "silu": (y * special.expit(y), special.expit(y) * (1 + y * special.expit(-y))),
        "sigmoid": (special.expit(y), special.expit(y) * special.expit(-y)),
        "softplus": (-special.log_expit(-y), special.expit(y)),
        "tanh": (np.tanh(y), 1.0 / np.cosh(y) ** 2),
        "elu": (np.where(y > 0, y, np.expm1(y)), np.where(y > 0, 1.0, np.exp(y))),
    }
    # Each side is a few correctly-rounded-in-practice operations: relative error ≤ 16u.
    # Formulas of the form 1 ± s with s → ∓1 (1 + erf, 1 − tanh², 1 − σ) lose absolute
    # accuracy u, then multiplied by at most |y|: absolute floor 4u·(1 + |y|).
    rtol, atol = 16 * U, 4 * U * (1.0 + np.abs(y))
    for name, (value, derivative) in expected.items():
        act = ACTIVATION_FUNCTIONS[name]
        for label, got, want in ((name, act.value(y), value), (name + "'", act.derivative(y), derivative)):
            bad = np.abs(got - want) > rtol * np.abs(want) + atol
            assert not bad.any(), f"{label}({y[bad][0]!r}) = {got[bad][0]!r}, scipy gives {want[bad][0]!r}"
