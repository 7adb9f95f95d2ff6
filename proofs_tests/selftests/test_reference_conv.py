"""The convolutional reference (`vaespec.reference.conv`): its hand-written VJPs against central differences,
its values against torch's Conv2d / ConvTranspose2d (float64 tightly, float32 and bfloat16 within the policy's
bound of the declared chain, `vaespec.spec.conv.conv_chain`), its bad inputs named, and two wrong
convolutions (a flipped kernel, a transposed convolution's padding off by one) rejected.
"""

from __future__ import annotations

import numpy as np
import pytest

from vaespec.reference import conv
from vaespec.spec.conv import ConvArchitecture, conv_chain
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.tolerances import bound

from .finite_differences import SMOOTH, direction, directional_check

# (batch, in, side, out, kernel, stride, padding): the MNIST layers' shape (k 4, s 2, p 1) and others
PRIMITIVES = [(2, 1, 8, 3, 4, 2, 1), (1, 3, 7, 2, 3, 1, 1), (2, 2, 6, 2, 2, 2, 0), (1, 2, 5, 3, 1, 1, 0),
              (2, 3, 9, 2, 3, 2, 2)]
SMALL = ConvArchitecture(input_shape=(1, 8, 8), channels=(2, 3), latent_size=3, activation="tanh")
WORST: dict[str, float] = {}


def _params(arch, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v) / np.sqrt(np.prod(v[:-1])) for k, v in arch.parameter_shapes().items()}


def _ratio(key, fd, dot, tol):
    WORST[key] = max(WORST.get(key, 0.0), abs(fd - dot) / tol)
    assert abs(fd - dot) <= tol, f"{key}: ⟨vjp, v⟩ = {dot!r}, central difference {fd!r}, tolerance {tol:.3e}"


@pytest.mark.parametrize("transposed", [False, True], ids=["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("case", PRIMITIVES, ids=lambda c: "x".join(map(str, c)))
def test_primitive_vjp_matches_central_differences(transposed, case):
    batch, cin, side, cout, k, s, p = case
    rng = np.random.default_rng(sum(case))
    f = conv.conv_transpose2d if transposed else conv.conv2d
    vjp = conv.conv_transpose2d_vjp if transposed else conv.conv2d_vjp
    args = {"x": rng.standard_normal((batch, cin, side, side)), "kernel": rng.standard_normal((k, k, cin, cout)),
            "bias": rng.standard_normal(cout)}
    for seed in range(3):
        step = direction(args, ("x", "kernel", "bias"), seed)
        y = f(step.base["x"], step.base["kernel"], step.base["bias"], s, p)
        cotangent = rng.standard_normal(y.shape)
        grads = vjp(step.base["x"], step.base["kernel"], step.base["bias"], s, p, cotangent)
        fd, dot, tol = directional_check(
            step, lambda a: f(a["x"], a["kernel"], a["bias"], s, p), grads, cotangent,
            lambda a: f(np.abs(a["x"]), np.abs(a["kernel"]), np.abs(a["bias"]), s, p))
        _ratio(f.__name__, fd, dot, tol)


@pytest.mark.parametrize("activation", [a for a in SMOOTH if a in ("tanh", "gelu", "silu", "identity")])
def test_network_vjp_matches_central_differences(activation):
    arch = ConvArchitecture(input_shape=(1, 8, 8), channels=(2, 3), latent_size=3, activation=activation)
    rng = np.random.default_rng(7)
    args = {"params": _params(arch, 1), "x": rng.standard_normal((2, 1, 8, 8))}
    z = rng.standard_normal((2, 3))
    for seed in range(3):
        step = direction(args, ("params", "x"), seed)
        ct = (rng.standard_normal((2, 3)), rng.standard_normal((2, 3)))
        grads = conv.encode_vjp(arch, step.base["params"], step.base["x"], *ct)
        grads = {"params": {k: v for k, v in grads["params"].items()}, "x": grads["x"]}
        enc = arch.parameter_shapes("encoder")
        sub = direction({"params": {k: args["params"][k] for k in enc}, "x": args["x"]}, ("params", "x"), seed)
        grads = conv.encode_vjp(arch, sub.base["params"], sub.base["x"], *ct)
        fd, dot, tol = directional_check(sub, lambda a: conv.encode(arch, a["params"], a["x"]), grads, ct,
                                         lambda a: conv.encode_magnitude(arch, a["params"], a["x"]))
        _ratio("encode", fd, dot, tol)
        dec = {k: args["params"][k] for k in arch.parameter_shapes("decoder")}
        sub = direction({"params": dec, "z": z}, ("params", "z"), seed)
        ct = rng.standard_normal((2, 1, 8, 8))
        grads = conv.decode_vjp(arch, sub.base["params"], sub.base["z"], ct)
        fd, dot, tol = directional_check(sub, lambda a: conv.decode(arch, a["params"], a["z"]), grads, ct,
                                         lambda a: conv.decode_magnitude(arch, a["params"], a["z"]))
        _ratio("decode", fd, dot, tol)


def test_report_worst_ratios():
    """Prints the worst |fd − ⟨vjp, v⟩| / tolerance seen (run after the checks above, same session)."""
    print("\nconv FD worst ratios:", {k: f"{v:.3g}" for k, v in WORST.items()})


# ----------------------------------------------------------------------------- against torch
def _torch(arch, params, x, z, dtype):
    import torch

    from vaespec.impl import conv as torch_conv

    encoder, decoder = torch_conv.from_params(arch, params, dtype)
    with torch.no_grad():
        out = encoder(torch.as_tensor(x, dtype=dtype))  # {"mu", "log_var"}, as the dense Encoder's
        mu, log_var = out["mu"], out["log_var"]
        x_hat = decoder(torch.as_tensor(z, dtype=dtype))
    return [t.double().numpy() for t in (mu, log_var, x_hat)]


def _rounded(dtype_name, a):
    from vaespec.proofs_tests.laws.compare import round_to

    return round_to(dtype_name, np.asarray(a, np.float64))


@pytest.mark.parametrize("dtype_name", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize("arch", [ConvArchitecture(), SMALL], ids=["mnist-1x28x28", "small-1x8x8"])
def test_torch_matches_the_reference_within_the_policy_bound(arch, dtype_name):
    import torch

    dtype = getattr(torch, dtype_name)
    rng = np.random.default_rng(3)
    params = {k: _rounded(dtype_name, v) for k, v in _params(arch, 2).items()}
    x = _rounded(dtype_name, rng.uniform(0, 1, (2, *arch.input_shape)))
    z = _rounded(dtype_name, rng.standard_normal((2, arch.latent_size)))
    got = _torch(arch, params, x, z, dtype)
    want = [*conv.encode(arch, params, x), conv.decode(arch, params, z)]
    m = [*conv.encode_magnitude(arch, params, x), conv.decode_magnitude(arch, params, z)]
    chains = [conv_chain(arch, "encoder")] * 2 + [conv_chain(arch, "decoder")]
    for name, g, w, mm, chain in zip(("mu", "log_var", "x_hat"), got, want, m, chains):
        tol = bound(dtype_name, *chain).tolerance(mm)
        ratio = float(np.max(np.abs(g - w) / tol))
        print(f"{arch.input_shape} {name} {dtype_name}: worst |torch − reference| / bound = {ratio:.3g}")
        assert ratio <= 1.0, f"{name} ({dtype_name}): worst |torch − reference| / bound = {ratio:.3g}"


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_named_with_the_expected_shape():
    arch = ConvArchitecture()
    params = _params(arch, 0)
    x = np.zeros((2, 1, 28, 28))
    with pytest.raises(ShapeError, match=r"x: expected \[batch, 1, 28, 28\].*channels-last"):
        conv.encode(arch, params, np.moveaxis(x, 1, -1))
    with pytest.raises(ShapeError, match=r"x: expected \[batch, 1, 28, 28\]"):
        conv.encode(arch, params, np.zeros((2, 1, 32, 32)))  # an event the architecture does not take
    torch_layout = {**params, "encoder_conv_1.kernel": params["encoder_conv_1.kernel"].transpose(3, 2, 0, 1)}
    with pytest.raises(ShapeError, match=r"encoder_conv_1.kernel.*\(4, 4, 32, 64\).*permute\(2, 3, 1, 0\)"):
        conv.encode(arch, torch_layout, x)
    transposed_layout = {**params, "decoder_deconv_0.kernel": params["decoder_deconv_0.kernel"].transpose(2, 3, 0, 1)}
    with pytest.raises(ShapeError, match=r"decoder_deconv_0.kernel.*\(4, 4, 64, 32\).*permute\(2, 3, 0, 1\)"):
        conv.decode(arch, transposed_layout, np.zeros((2, 16)))
    with pytest.raises(ConfigError, match="divisible by the stride"):
        ConvArchitecture(input_shape=(1, 27, 27))


# ----------------------------------------------------------------------------- wrong convolutions
def _adjoint_gap(forward, transpose, seed=0):
    """|⟨conv(x), y⟩ − ⟨x, conv_transpose(y)⟩| / scale (bias 0): the transposed convolution is the adjoint."""
    rng = np.random.default_rng(seed)
    x, kernel = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 4, 3, 5))
    y = forward(x, kernel, np.zeros(5), 2, 1)
    u = rng.standard_normal(y.shape)
    back = transpose(u, kernel.transpose(0, 1, 3, 2), np.zeros(3), 2, 1)  # [k, k, 5, 3]: reads y's channels
    if back.shape != x.shape:
        return np.inf
    return abs(np.sum(y * u) - np.sum(x * back)) / (np.sum(np.abs(y * u)) + np.sum(np.abs(x * back)))


def _flipped(x, kernel, bias, stride, padding):
    """A true convolution (kernel flipped), not torch's cross-correlation."""
    return conv.conv2d(x, kernel[::-1, ::-1], bias, stride, padding)


def _padding_off_by_one(x, kernel, bias, stride, padding):
    return conv.conv_transpose2d(x, kernel, bias, stride, padding + 1)


def test_reference_convolutions_are_adjoint():
    assert _adjoint_gap(conv.conv2d, conv.conv_transpose2d) < 1e-14


@pytest.mark.parametrize("forward, transpose", [(_flipped, conv.conv_transpose2d),
                                                (conv.conv2d, _padding_off_by_one)],
                         ids=["kernel-flipped", "transposed-padding-off-by-one"])
def test_wrong_convolutions_are_rejected(forward, transpose):
    assert _adjoint_gap(forward, transpose) > 1e-3  # the adjoint identity fails
    import torch

    rng = np.random.default_rng(1)
    x, kernel = rng.standard_normal((1, 3, 8, 8)), rng.standard_normal((4, 4, 3, 5))
    if forward is _flipped:
        t = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(kernel).permute(3, 2, 0, 1), stride=2, padding=1)
        assert np.abs(_flipped(x, kernel, np.zeros(5), 2, 1) - t.numpy()).max() > 1e-3
    else:
        u, back = rng.standard_normal((1, 5, 4, 4)), kernel.transpose(0, 1, 3, 2)  # [k, k, 5, 3]
        t = torch.nn.functional.conv_transpose2d(torch.tensor(u), torch.tensor(back).permute(2, 3, 0, 1), stride=2,
                                                 padding=1)
        np.testing.assert_allclose(conv.conv_transpose2d(u, back, np.zeros(3), 2, 1), t.numpy(), rtol=0, atol=1e-13)
        assert _padding_off_by_one(u, back, np.zeros(3), 2, 1).shape != tuple(t.shape)  # 6×6, not the 8×8 back


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize(("x_shape", "dlv_shape", "named", "expected"), [
    ((3, 32), (1, 4, 4), "x", "reshape it to [batch, 2, 4, 4]"),
    ((3, 4, 4, 2), (2, 4, 4), "x", "channels-last [batch, height, width, channels]"),
    ((3, 2, 4, 4), (32,), "decoder_log_var", "expected shape [2, 4, 4] (channels, height, width"),
    ((3, 2, 4, 4), (4, 4, 2), "decoder_log_var", "move the channel axis to axis 0"),
], ids=["x-flat", "x-channels-last", "log-var-flat", "log-var-channels-last"])
def test_estimators_name_a_conv_image_of_the_wrong_shape(backend, x_shape, dlv_shape, named, expected):
    """The network estimators on the conv VAE: x [batch, C, H, W] and decoder_log_var [C, H, W], a flattened or
    channels-last one refused naming the argument, the expected shape and the fix."""
    from vaespec.impl import TorchBackend
    from vaespec.reference import ReferenceBackend
    from vaespec.reference.init import init_params

    arch = ConvArchitecture(input_shape=(2, 4, 4), channels=(2,), latent_size=3, kernel_size=3, stride=1, padding=1)
    chosen = ReferenceBackend() if backend == "reference" else TorchBackend("cpu", "float32")
    params = init_params(arch, 0)
    given = dlv_shape if named == "decoder_log_var" else x_shape
    dlv = np.zeros(dlv_shape if named == "decoder_log_var" else arch.input_shape)
    with pytest.raises(ShapeError) as raised:
        chosen.elbo(arch, params, np.zeros(x_shape), np.zeros((2, 3, 3)), dlv, "gaussian")
    message = str(raised.value)
    assert message.startswith(f"{named}: ") and expected in message and f"got shape {given}" in message, message


# ----------------------------------------------------------------------------- the laws meet it
def _network_laws(chapter: str = "vae") -> list[str]:
    """`chapter`'s laws that read a network function (an `arch` argument): they draw the conv VAE."""
    from vaespec.spec.contract import FUNCTIONS
    from vaespec.spec.laws import LAWS

    return [name for name, law in LAWS.items() if law.chapter == chapter
            and any(a.kind == "arch" for f in law.functions for a in FUNCTIONS[f].args)]


def _conv_counts(laws: list[str]) -> dict[str, dict[str, int]]:
    """Per law, the conv and dense examples the reference checked in the ci profile (the examples `vaespec check`
    and the suite draw), asserting it holds each: a reference subclass (so the `*_matches_reference` laws run
    too) whose law checks are wrapped to count."""
    from vaespec.proofs_tests.check.runner import run_law
    from vaespec.proofs_tests.laws import registry
    from vaespec.proofs_tests.laws.checking import Check
    from vaespec.proofs_tests.strategies.profiles import profile_settings
    from vaespec.reference import ReferenceBackend

    class Counting(ReferenceBackend):
        name = "counting-reference"

    counts: dict[str, dict[str, int]] = {}
    for law in laws:
        seen = counts.setdefault(law, {"conv": 0, "dense": 0})
        check = registry.CHECKS[law]

        def run(backend, example, draw, check=check, seen=seen):
            ratio = check.run(backend, example, draw)
            seen["conv" if isinstance(example.args["arch"], ConvArchitecture) else "dense"] += 1
            return ratio

        registry.CHECKS[law] = Check(check.law, check.strategy, run)
        try:
            result = run_law(law, Counting(), profile_settings("ci"))
        finally:
            registry.CHECKS[law] = check
        assert result.verdict == "pass", (law, result.message)
    print("\nconv VAE examples of the ci profile:", {k: f"{v['conv']}/{v['conv'] + v['dense']}"
                                                     for k, v in counts.items()})
    return counts


def test_every_vae_network_law_runs_on_the_conv_vae():
    """In the ci profile every VAE law that takes a network is handed ConvArchitecture examples
    (`strategies.vae.CONV_SHARE`), and the reference holds it on them."""
    laws = _network_laws()
    # encode … loss × value and gradient, the eight structural laws and the own-finite-difference gradient law
    assert len(laws) == 21, laws
    counts = _conv_counts(laws)
    assert all(v["conv"] > 0 for v in counts.values()), {k: v for k, v in counts.items() if not v["conv"]}


def test_every_estimators_network_law_runs_on_the_conv_vae():
    """The estimators' network functions (log_importance_weights, elbo, iwae_bound, reconstruct) take the conv
    VAE too, x [batch, C, H, W] and decoder_log_var [C, H, W] (`strategies.estimators.network_examples`): every
    estimators law that reads one meets conv examples in the ci profile, and the reference holds it on them."""
    laws = _network_laws("estimators")
    assert len(laws) >= 16 and "iwae_bound_monotone_in_particles" in laws, laws
    counts = _conv_counts(laws)
    assert all(v["conv"] > 0 for v in counts.values()), {k: v for k, v in counts.items() if not v["conv"]}
