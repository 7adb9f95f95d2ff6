"""Bad input at the contract boundary: vaespec's own backends raise a vaespec error naming
the argument, for every contract function (the reference and the Torch backend alike)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaespec.impl import TorchBackend
from vaespec.reference import ReferenceBackend
from vaespec.spec.architecture import Architecture
from vaespec.spec.contract import FUNCTIONS, call, validate_args
from vaespec.spec.errors import ConfigError, DomainError, DTypeError, ShapeError, VaespecError
from vaespec.spec.init import init_params

ARCH = Architecture(4, 2, (3,), (3,))
BACKENDS = [ReferenceBackend(), TorchBackend("cpu", torch.float32)]


def _valid(function):
    rng = np.random.default_rng(0)
    pool = {"arch": ARCH, "params": init_params(ARCH, 0), "x": rng.standard_normal((3, 4)),
            "z": rng.standard_normal((3, 2)), "eps": rng.standard_normal((3, 2)), "mu": rng.standard_normal((3, 2)),
            "log_var": rng.standard_normal((3, 2)), "x_hat": rng.standard_normal((3, 4)), "beta": 1.0,
            "convention": "edifice"}
    return {a.name: pool[a.name] for a in FUNCTIONS[function].args}


def _target(function, case):
    """The argument a case breaks. A size mismatch is reported on the array that disagrees with
    the sizes bound before it (by `arch` or by earlier arrays), so it breaks the last array."""
    arrays = [a.name for a in FUNCTIONS[function].args if a.kind == "array"]
    return arrays[-1] if case == "wrong size" else arrays[0]


# (case, mutate(args, array_name) -> args, error, message pattern with {name})
CASES = [
    ("wrong rank", lambda a, n: {**a, n: a[n][0]}, ShapeError, r"{name}: expected rank 2"),
    ("wrong size", lambda a, n: {**a, n: np.zeros((3, 7))}, ShapeError, r"{name}: dimension '\w+' \(axis 1\)"),
    ("empty batch", lambda a, n: {**a, n: a[n][:0]}, ShapeError, r"{name}: dimension 'batch' \(axis 0\) is empty"),
    ("NaN", lambda a, n: {**a, n: np.full_like(a[n], np.nan)}, DomainError, r"{name}: expected finite values"),
    ("integer dtype", lambda a, n: {**a, n: a[n].astype(np.int64)}, DTypeError, r"{name}: expected a floating-point"),
    ("list", lambda a, n: {**a, n: a[n].tolist()}, DTypeError, r"{name}: expected a numpy array"),
]


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
@pytest.mark.parametrize("case, mutate, error, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_array_named(own, function, case, mutate, error, pattern):
    name = _target(function, case)
    with pytest.raises(error, match=pattern.format(name=name)):
        call(own, function, mutate(_valid(function), name))


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
@pytest.mark.parametrize("beta, error", [(-0.5, DomainError), (float("nan"), DomainError), ("1", DTypeError)])
def test_bad_beta_named(own, beta, error):
    with pytest.raises(error, match="beta"):
        call(own, "loss", {**_valid("loss"), "beta": beta})


@pytest.mark.parametrize("own", BACKENDS, ids=lambda b: f"{b.name}-{b.dtype}")
def test_unknown_convention_and_missing_params(own):
    with pytest.raises(ConfigError, match="convention"):
        call(own, "kl_divergence", {**_valid("kl_divergence"), "convention": "pythea"})
    with pytest.raises(ShapeError, match=r"params.*missing \['decoder"):
        call(own, "decode", {**_valid("decode"), "params": {}})


def test_validate_args_accepts_valid_input_for_every_function():
    for function in FUNCTIONS:
        checked = validate_args(function, _valid(function))
        assert set(checked) == {a.name for a in FUNCTIONS[function].args}


def test_every_error_is_a_vaespec_error_and_a_builtin():
    for error in (ShapeError, DomainError, ConfigError):
        assert issubclass(error, VaespecError) and issubclass(error, ValueError)
    assert issubclass(DTypeError, VaespecError) and issubclass(DTypeError, TypeError)
