"""`laws.tolerance.tolerance` is the rule the law checks used before issue 11 gave the suite one entry point.

The four places that assembled a bound (`checking.function_bound`, `laws.checking_vq.vq_bound`,
`laws.estimators.tolerance`, `laws.bayes.tolerance`) are copied below as they were, chapter switch and
all, and every function of every chapter is compared with the entry point on drawn examples, in every
dtype, for values and gradients: the same numbers, entry by entry.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vaespec.proofs_tests.laws.compare import leaves, tolerance_from
from vaespec.proofs_tests.laws.tolerance import exact, function_bound, tolerance
from vaespec.proofs_tests.strategies import vae as strategies
from vaespec.proofs_tests.strategies.chapters import examples_for
from vaespec.reference import ReferenceBackend
from vaespec.reference import magnitude as reference_magnitude
from vaespec.reference import vjp_magnitude as reference_vjp_magnitude
from vaespec.spec import bayes, estimators
from vaespec.spec.contract import FUNCTIONS, call
from vaespec.spec.tolerances import UNIT_ROUNDOFF, bound, chain_length, reduction_length, vq_chain_length

REFERENCE = ReferenceBackend()
NETWORK = ("vq_encode", "vq_forward", "vq_loss")


def _before(dtype, function, args):
    """The bound as each chapter's checks assembled it before the entry point (`function` may end in _vjp)."""
    base = function.removesuffix("_vjp")
    chapter = FUNCTIONS[base].chapter
    if chapter == "estimators":
        return bound(dtype, *estimators.chain_length(function, args))
    if chapter == "bayes":
        return bound(dtype, *bayes.chain_length(function, args))
    if chapter == "vq":
        if base == "codebook_health":  # laws.vq_codebook's perplexity rule
            return bound(dtype, args["num_embeddings"] + 6, 6)
        if base in NETWORK:
            return bound(dtype, *chain_length(function, args["arch"], args["x"].shape[0]))
        # z_e [batch, *positions, D]: the chains count its N = batch·∏positions vectors
        batch = args["z_e"].size // args["z_e"].shape[-1] if "z_e" in args else 1
        codes = next(args[k].shape[0] for k in ("codebook", "counts") if k in args)
        dim = args["codebook"].shape[1] if "codebook" in args else 1
        return bound(dtype, *vq_chain_length(function, batch, dim, codes))
    if base == "reconstruction_loss":
        x_hat = args["x_hat"]  # [batch, *event]: the features are its ∏event entries per example
        n, ops = reduction_length(x_hat.shape[0], x_hat.size // x_hat.shape[0])
    elif base == "kl_divergence":
        n, ops = reduction_length(*args["mu"].shape)
    else:
        batch = next(args[k].shape[0] for k in ("x", "mu", "eps", "z") if k in args)
        n, ops = chain_length(function, args.get("arch"), batch)
    if function.endswith("_vjp") and base in ("reconstruction_loss", "kl_divergence"):
        n, ops = n + 2, ops + 2
    return bound(dtype, n, ops)


def _magnitude_before(function, args, cotangent=None):
    # Each chapter's magnitude module of before is now the registry's entry (bitwise the same, as the
    # reference's merge compared on 1,890 drawn cases); only codebook_health's stated M = K was the laws' own.
    if function == "codebook_health":
        return np.zeros(args["num_embeddings"]), float(args["num_embeddings"]), 0.0
    return (reference_magnitude(function, args) if cotangent is None
            else reference_vjp_magnitude(function, args, cotangent))


def _same(actual, expected, what):
    actual, expected = dict(leaves(actual)), dict(leaves(expected))
    assert actual.keys() == expected.keys(), what
    for path in expected:
        assert np.array_equal(actual[path], expected[path]), (what, path)


def _float_outputs(function, value):
    outputs = FUNCTIONS[function].outputs
    values = value if len(outputs) > 1 else (value,)
    floats = tuple(v for o, v in zip(outputs, values) if o.kind == "float")
    return floats if len(floats) > 1 else floats[0]


# The chapters whose bounds were assembled before the entry point; a chapter declared since has no "before".
BEFORE = ("vae", "vq", "estimators", "bayes")


@pytest.mark.parametrize("function", sorted(f for f, spec in FUNCTIONS.items() if spec.chapter in BEFORE))
@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_entry_point_gives_the_numbers_of_before(function, data):
    spec = FUNCTIONS[function]
    example = data.draw(examples_for(function), label="example")
    args = {a.name: example.args[a.name] for a in spec.args}
    # The losses' before-rule is reduction_length(batch, features): it predates the event shapes (issue 15's
    # [batch, *positions, features] inputs), which only the entry point bounds.
    assume(function not in ("reconstruction_loss", "kl_divergence")
           or np.ndim(args["x_hat" if function == "reconstruction_loss" else "mu"]) == 2)
    cotangent = None
    if spec.differentiable:
        outputs = _float_outputs(function, call(REFERENCE, function, args))
        cotangent = data.draw(strategies.cotangents(function, outputs), label="cotangent")
        cotangent = cotangent if isinstance(cotangent, tuple) or np.ndim(cotangent) else float(cotangent)
    for dtype in UNIT_ROUNDOFF:
        if not exact(function):
            assert function_bound(dtype, function, args) == _before(dtype, function, args), (function, dtype)
            _same(tolerance(dtype, function, args),
                  tolerance_from(_before(dtype, function, args), _magnitude_before(function, args)), (function, dtype))
        if cotangent is not None:
            name = f"{function}_vjp"
            assert function_bound(dtype, function, args, vjp=True) == _before(dtype, name, args), (name, dtype)
            _same(tolerance(dtype, function, args, cotangent=cotangent),
                  tolerance_from(_before(dtype, name, args), _magnitude_before(function, args, cotangent)),
                  (name, dtype))


def test_entry_point_refuses_an_unknown_function():
    from vaespec.spec.errors import ConfigError

    with pytest.raises(ConfigError, match="function: expected one of"):
        tolerance("float32", "no_such_function", {})
