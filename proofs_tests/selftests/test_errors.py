"""Bad input to every public reference function raises a vaespec error naming the argument.

Table-driven: each case is (id, call, expected error class, regex). The regex is
matched with `re.search` against the message and checks that the message starts with
the argument's name and shows what was expected and what was given (shapes, values).
Array cases are generated for every array argument of every function; the rest are
listed by hand.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from vaespec import reference
from vaespec.spec.architecture import ACTIVATIONS, Architecture
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError, VaespecError
from vaespec.spec.keys import Key

ARCH = Architecture(input_size=3, latent_size=2, encoder_sizes=(4,), decoder_sizes=(5,), activation="tanh")
PARAMS = reference.init_params(ARCH, 0)
_rng = np.random.default_rng(0)
# Every argument by name; each function takes the ones its signature lists.
BASE = {"arch": ARCH, "params": PARAMS, "beta": 0.5, "convention": "elbo", "d_loss": 1.0, "d_kl": 1.0,
        **{name: _rng.standard_normal(shape) for name, shape in [
            ("x", (2, 3)), ("z", (2, 2)), ("eps", (2, 2)), ("mu", (2, 2)), ("log_var", (2, 2)), ("x_hat", (2, 3)),
            ("d_mu", (2, 2)), ("d_log_var", (2, 2)), ("d_z", (2, 2)), ("d_x_hat", (2, 3))]}}
DIMS = {"x": ("batch", "input"), "z": ("batch", "latent"), "eps": ("batch", "latent"), "mu": ("batch", "latent"),
        "log_var": ("batch", "latent"), "x_hat": ("batch", "output"), "d_mu": ("batch", "latent"),
        "d_log_var": ("batch", "latent"), "d_z": ("batch", "latent"), "d_x_hat": ("batch", "output")}
COTANGENTS = ("d_mu", "d_log_var", "d_z", "d_x_hat")
NETWORK = ("arch", "params")
SIGNATURES = {
    "encode": NETWORK + ("x",),
    "decode": NETWORK + ("z",),
    "reparameterize": ("mu", "log_var", "eps"),
    "sample_latent": NETWORK + ("x", "eps"),
    "forward": NETWORK + ("x", "eps"),
    "generate": NETWORK + ("eps",),
    "reconstruction_loss": ("x_hat", "x", "convention"),
    "kl_divergence": ("mu", "log_var", "convention"),
    "kl_per_coordinate": ("mu", "log_var"),
    "loss": NETWORK + ("x", "eps", "beta", "convention"),
    "encode_vjp": NETWORK + ("x", "d_mu", "d_log_var"),
    "decode_vjp": NETWORK + ("z", "d_x_hat"),
    "reparameterize_vjp": ("mu", "log_var", "eps", "d_z"),
    "sample_latent_vjp": NETWORK + ("x", "eps", "d_z"),
    "forward_vjp": NETWORK + ("x", "eps", "d_x_hat"),
    "generate_vjp": NETWORK + ("eps", "d_x_hat"),
    "reconstruction_loss_vjp": ("x_hat", "x", "convention", "d_loss"),
    "kl_divergence_vjp": ("mu", "log_var", "convention", "d_kl"),
    "loss_vjp": NETWORK + ("x", "eps", "beta", "convention", "d_loss"),
}


def caller(function, **changes):
    """A thunk calling reference.<function> on BASE with `changes` applied (a value, or `del`); a `<f>_vjp`
    takes `(args, cotangent)`, the cotangent entries (`d_…`) gathered in order (a tuple when several)."""
    def thunk():
        kwargs = {name: BASE[name] for name in SIGNATURES[function]}
        for name, value in changes.items():
            kwargs[name] = value(kwargs[name]) if callable(value) and name != "arch" else value
        if function.endswith("_vjp"):
            cotangent = tuple(v for k, v in kwargs.items() if k.startswith("d_"))
            args = {k: v for k, v in kwargs.items() if not k.startswith("d_")}
            return getattr(reference, function)(args, cotangent if len(cotangent) > 1 else cotangent[0])
        return getattr(reference, function)(**kwargs)
    return thunk


def named(arg):
    """How a message names `arg`: cotangents as `d_… (cotangent)` (`validate_vjp`)."""
    return re.escape(arg) + (r" \(cotangent\)" if arg.startswith("d_") else "")


def with_value(index, value):
    def change(a):
        a = a.copy()
        a[index] = value
        return a
    return change


def grow(axis):
    return lambda a: np.concatenate([a, np.take(a, [0], axis=axis)], axis=axis)


def params_change(name, value=None, remove=False):
    def change(p):
        p = dict(p)
        if remove:
            del p[name]
        else:
            p[name] = value if not callable(value) else value(p[name])
        return p
    return change


def array_cases(function):
    args = SIGNATURES[function]
    arrays = [a for a in args if a in DIMS]
    for position, arg in enumerate(arrays):
        shape, a = BASE[arg].shape, named(arg)
        size_dim = "output" if "x_hat" in args else DIMS[arg][1]  # x is the target beside x_hat
        # reconstruction_loss compares whole examples x̂, x [batch, *event] (declared "+event"): any rank ≥ 2
        event = "x_hat" in args
        if event:
            yield f"{arg} wrong rank", caller(function, **{arg: lambda v: v[0]}), ShapeError, \
                rf"^{a}: .*rank at least 2.*got shape \({shape[1]},\)"
        else:
            yield f"{arg} wrong rank", caller(function, **{arg: lambda v: v[None]}), ShapeError, \
                rf"^{a}: .*rank 2.*got shape \(1, {shape[0]}, {shape[1]}\)"
        yield f"{arg} NaN", caller(function, **{arg: with_value((1, 0), math.nan)}), DomainError, \
            rf"^{a}: expected finite values, got nan at index \(1, 0\)"
        yield f"{arg} Inf", caller(function, **{arg: with_value((0, 1), -math.inf)}), DomainError, \
            rf"^{a}: expected finite values, got -inf at index \(0, 1\)"
        yield f"{arg} empty batch", caller(function, **{arg: lambda v: v[:0]}), ShapeError, \
            rf"^{a}: dimension 'batch' \(axis 0\) is empty.*got shape \(0, {shape[1]}\)"
        if arg in COTANGENTS:  # array cotangents are converted with np.asarray; text cannot be
            yield f"{arg} text", caller(function, **{arg: "abc"}), DTypeError, rf"^{a}: .*got str 'abc'"
        else:
            yield f"{arg} int dtype", caller(function, **{arg: lambda v: v.astype(np.int64)}), DTypeError, \
                rf"^{a}: expected a floating-point array.*got dtype int64"
            yield f"{arg} list", caller(function, **{arg: lambda v: v.tolist()}), DTypeError, \
                rf"^{a}: expected a numpy array \[batch [+]?\w+\], got list"
        if (position > 0 or "arch" in args) and event:  # the event's sizes, bound by x̂
            yield f"{arg} {size_dim} mismatch", caller(function, **{arg: grow(1)}), ShapeError, \
                rf"^{a}: dimension '\+event' \(axis 1\) must be \({shape[1]},\) .*got \({shape[1] + 1},\)"
        elif position > 0 or "arch" in args:  # a size already bound by arch or an earlier argument
            yield f"{arg} {size_dim} mismatch", caller(function, **{arg: grow(1)}), ShapeError, \
                rf"^{a}: dimension '{size_dim}' \(axis 1\) must be {shape[1]} .*got {shape[1] + 1}"
        if position > 0:
            yield f"{arg} batch mismatch", caller(function, **{arg: grow(0)}), ShapeError, \
                rf"^{a}: dimension 'batch' \(axis 0\) must be {shape[0]} .*got {shape[0] + 1}"


def other_cases(function):
    args = SIGNATURES[function]
    if "arch" in args:
        name = "decoder_output.kernel" if "z" in args or "x" not in args else "mu.kernel"
        rows, cols = PARAMS[name].shape
        n = re.escape(name)
        yield "arch not an Architecture", caller(function, arch=ARCH.to_dict()), DTypeError, \
            (r"^arch: expected a vaespec\.spec\.architecture\.Architecture"
             r"( or vaespec\.spec\.(architecture\.VQArchitecture|conv\.ConvArchitecture|conv_vq\.ConvVQArchitecture))*"
             r"( \(for \w+\))?, got dict")
        yield "params missing a name", caller(function, params=params_change(name, remove=True)), ShapeError, \
            rf"^params: .*missing \['{n}'\], unexpected \[\]"
        yield "params unexpected name", caller(function, params=params_change("bogus.kernel", np.zeros(2))), \
            ShapeError, r"^params: .*missing \[\], unexpected \['bogus\.kernel'\]"
        yield "params wrong shape", caller(function, params=params_change(name, np.zeros((rows, cols + 1)))), \
            ShapeError, rf"^params\['{n}'\]: expected shape \({rows}, {cols}\), got \({rows}, {cols + 1}\)"
        yield "params int dtype", caller(function, params=params_change(name, lambda v: v.astype(np.int64))), \
            DTypeError, (rf"^params\['{n}'\]: expected a floating-point numpy array of shape \({rows}, {cols}\)"
                         r".*dtype int64")
        yield "params NaN", caller(function, params=params_change(name, with_value((0, 0), math.nan))), \
            DomainError, rf"^params\['{n}'\]: expected finite values, got a NaN"
        yield "params not a mapping", caller(function, params=list(PARAMS.values())), DTypeError, \
            r"^params: expected a mapping.*got list"
    if "beta" in args:
        yield "negative beta", caller(function, beta=-0.5), DomainError, r"^beta: .*\[0\.0, inf\], got -0\.5$"
        yield "NaN beta", caller(function, beta=math.nan), DomainError, r"^beta: .*\[0\.0, inf\], got nan$"
        yield "text beta", caller(function, beta="1"), DTypeError, r"^beta: expected a real number, got str '1'"
        yield "output_size != input_size", caller(function, arch=Architecture(3, 2, (4,), (5,), "tanh", output_size=4),
                                                  params=reference.init_params(Architecture(3, 2, (4,), (5,), "tanh",
                                                                                            output_size=4), 0)), \
            ConfigError, r"^arch: .*output_size=4, input_size=3"
    if "convention" in args:
        yield "unknown convention", caller(function, convention="bogus"), ConfigError, \
            r"^convention: expected a Convention or one of \[.*'elbo'.*\], got 'bogus'"
    for scalar in ("d_loss", "d_kl"):
        if scalar in args:
            yield f"NaN {scalar}", caller(function, **{scalar: math.nan}), DomainError, rf"^{named(scalar)}: .*got nan$"
            yield f"array {scalar}", caller(function, **{scalar: np.ones(2)}), DTypeError, \
                rf"^{named(scalar)}: expected a real number, got ndarray of shape \(2,\)"


def architecture(**kwargs):
    return lambda: Architecture(**{"input_size": 3, **kwargs})


SPEC_CASES = [
    ("Architecture input_size None", architecture(input_size=None), ConfigError,
     r"^input_size: .*positive integer, got None"),
    ("Architecture input_size 0", architecture(input_size=0), ConfigError, r"^input_size: .*positive integer, got 0$"),
    ("Architecture latent_size -2", architecture(latent_size=-2), ConfigError, r"^latent_size: .*got -2$"),
    ("Architecture input_size bool", architecture(input_size=True), ConfigError, r"^input_size: .*got True$"),
    ("Architecture latent_size float", architecture(latent_size=2.0), ConfigError, r"^latent_size: .*got 2\.0$"),
    ("Architecture output_size 0", architecture(output_size=0), ConfigError, r"^output_size: .*got 0$"),
    ("Architecture encoder_sizes zero", architecture(encoder_sizes=(4, 0)), ConfigError,
     r"^encoder_sizes\[1\]: .*got 0$"),
    ("Architecture decoder_sizes float", architecture(decoder_sizes=(4.5,)), ConfigError,
     r"^decoder_sizes\[0\]: .*got 4\.5$"),
    ("Architecture encoder_sizes int", architecture(encoder_sizes=4), ConfigError,
     r"^encoder_sizes: .*sequence.*got 4$"),
    ("Architecture encoder_sizes str", architecture(encoder_sizes="44"), ConfigError, r"^encoder_sizes: .*got '44'$"),
    ("Architecture unknown activation", architecture(activation="swish"), ConfigError,
     r"^activation: expected one of \[" + "".join(f"(?=.*'{a}')" for a in ACTIVATIONS) + r".*got 'swish'$"),
    ("Architecture part", lambda: ARCH.parameter_shapes("middle"), ConfigError, r"^part: .*'encoder'.*got 'middle'$"),
    ("Key -1", lambda: Key(-1), ConfigError, r"^key: expected a seed in \[0, 2\*\*64\), got -1$"),
    ("Key 2**64", lambda: Key(2**64), ConfigError,
     r"^key: expected a seed in \[0, 2\*\*64\), got 18446744073709551616$"),
    ("Key 1.5", lambda: Key(1.5), DTypeError, r"^key: expected an integer seed, got float 1\.5$"),
    ("Key bool", lambda: Key(True), DTypeError, r"^key: expected an integer seed, got bool True$"),
    ("vjp unknown function", lambda: reference.vjp("bogus", {}, 1.0), ConfigError,
     r"^function: expected one of \[.*'loss'.*\], got 'bogus'$"),
]

CASES = [(f"{function}: {label}", thunk, error, regex)
         for function in SIGNATURES for cases in (array_cases, other_cases)
         for label, thunk, error, regex in cases(function)] + SPEC_CASES


@pytest.mark.parametrize("call, error, regex", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_vaespec_error_naming_the_argument(call, error, regex):
    with pytest.raises(VaespecError) as info:
        call()
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"
    assert re.search(regex, str(info.value)), f"message {str(info.value)!r} does not match {regex!r}"


def test_base_inputs_are_valid():
    # Every case differs from a valid call in one argument only.
    for function in SIGNATURES:
        caller(function)()


def test_table_covers_every_public_function():
    # Not in the table: the backend class, helpers taking no arrays, and the tolerance helpers.
    public = {name for name in reference.__all__ if callable(getattr(reference, name))
              and name not in ("ReferenceBackend", "get_activation", "init_params", "vjp")
              and "magnitude" not in name}
    assert public <= set(SIGNATURES), sorted(public - set(SIGNATURES))
    assert len(CASES) > 200


def test_missing_architecture_size_is_a_python_type_error_naming_it():
    # A dataclass refuses a missing required field before __post_init__ runs.
    with pytest.raises(TypeError, match="input_size"):
        Architecture()


@pytest.mark.parametrize("error, bases", [
    (ShapeError, (VaespecError, ValueError)), (DomainError, (VaespecError, ValueError)),
    (DTypeError, (VaespecError, TypeError)), (ConfigError, (VaespecError, ValueError)),
])
def test_error_hierarchy(error, bases):
    assert all(issubclass(error, base) for base in bases)
    assert issubclass(VaespecError, Exception) and not issubclass(VaespecError, (ValueError, TypeError))


def test_a_params_argument_without_an_arch_argument_is_a_declaration_error():
    # The layout of `params` comes from the declaration's `arch` argument; one without it is refused by name
    # (it used to fail with AttributeError on None).
    from vaespec.spec.signature import Arg, FunctionSpec, Output
    from vaespec.spec.validation import check_args

    spec = FunctionSpec("no_arch", (Arg("params", "params"),), (Output("y", ()),), "y = 0")
    with pytest.raises(ConfigError, match=r"^params: no_arch declares a params argument but no arch argument"):
        check_args(spec, {"params": {}})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_params_names_the_array_holding_a_non_finite_value(bad):
    from vaespec.spec.shapes import check_params

    shapes = {"a.kernel": (2, 3), "a.bias": (3,), "b.kernel": (3, 1)}
    params = {name: np.ones(shape) for name, shape in shapes.items()}
    params["a.bias"] = np.array([0.0, bad, 1.0])
    with pytest.raises(DomainError, match=r"^p\['a.bias'\]: expected finite values, got a NaN or Inf$"):
        check_params("p", params, shapes)
    assert check_params("p", params, shapes, finite=False)["a.bias"] is params["a.bias"]
    params["a.bias"] = np.ones(3, dtype=np.float32)  # widened to float64, as check_array widens
    assert check_params("p", params, shapes)["a.bias"].dtype == np.float64
