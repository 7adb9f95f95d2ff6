"""The convolutional VQ-VAE's reference (`vaespec.spec.conv_vq.ConvVQArchitecture`, `vaespec.reference.conv`):
its encoder's and decoder's hand-written VJPs (convolutions, the 1×1 convolutions, the channels-last
transpositions) against central differences, its values against torch's modules (`vaespec.impl.conv`) within the
policy's bound, the layout and the channels-last convention stated exactly, and its bad inputs named.
"""

from __future__ import annotations

import numpy as np
import pytest

from vaespec.reference import ReferenceBackend
from vaespec.reference.registry import magnitude
from vaespec.spec.conv_vq import ConvVQArchitecture
from vaespec.spec.errors import ConfigError, ShapeError
from vaespec.spec.init import init_codebook, init_params
from vaespec.spec.tolerances import function_bound

from .finite_differences import SMOOTH, direction, directional_check

REF = ReferenceBackend()
# (input_shape, channels, embedding, kernel, stride, padding): strided (k 4, s 2, p 1: MNIST's, overlapping
# transposed taps), a "same" stride-1 convolution, a non-overlapping k 2 s 2 p 0, and one layer
CASES = [((1, 8, 8), (2, 3), 3, 4, 2, 1), ((2, 5, 5), (3,), 2, 3, 1, 1), ((1, 8, 8), (2, 2), 4, 2, 2, 0),
         ((2, 6, 6), (3,), 3, 4, 2, 1)]
WORST: dict[str, float] = {}


def _params(arch, seed):
    """Parameters of unit-scale pre-activations: N(0, 1) / √fan-in, biases too (not 0, so every bias is tested)."""
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v) / np.sqrt(np.prod(v[:-1]) if len(v) > 1 else 1.0)
            for k, v in arch.parameter_shapes().items()}


def _ratio(key, fd, dot, tol):
    WORST[key] = max(WORST.get(key, 0.0), abs(fd - dot) / tol)
    assert abs(fd - dot) <= tol, f"{key}: ⟨vjp, v⟩ = {dot!r}, central difference {fd!r}, tolerance {tol:.3e}"


@pytest.mark.parametrize("activation", [a for a in SMOOTH if a in ("tanh", "gelu", "silu", "softplus")])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{'x'.join(map(str, c[0]))}-k{c[3]}s{c[4]}p{c[5]}")
def test_encoder_and_decoder_vjps_match_central_differences(case, activation):
    shape, channels, e, k, s, p = case
    arch = ConvVQArchitecture(shape, channels, e, 5, k, s, p, activation)
    rng = np.random.default_rng(hash((shape, channels, e, k)) % 2**32)
    params = _params(arch, 1)
    x = rng.standard_normal((2, *shape))
    z = rng.standard_normal((2, *arch.latent_shape))
    enc = {n: params[n] for n in arch.parameter_shapes("encoder")}
    dec = {n: params[n] for n in arch.parameter_shapes("decoder")}
    for seed in range(3):
        step = direction({"arch": arch, "params": enc, "x": x}, ("params", "x"), seed)
        ct = rng.standard_normal((2, *arch.latent_shape))
        grads = REF.vjp("vq_encode", step.base, ct)
        fd, dot, tol = directional_check(step, lambda a: REF.vq_encode(arch, a["params"], a["x"]), grads, ct,
                                         lambda a: magnitude("vq_encode", a))
        _ratio("vq_encode", fd, dot, tol)
        step = direction({"arch": arch, "params": dec, "z": z}, ("params", "z"), seed)
        ct = rng.standard_normal((2, *shape))
        grads = REF.vjp("decode", step.base, ct)
        fd, dot, tol = directional_check(step, lambda a: REF.decode(arch, a["params"], a["z"]), grads, ct,
                                         lambda a: magnitude("decode", a))
        _ratio("decode", fd, dot, tol)


def test_report_worst_ratios():
    """Prints the worst |fd − ⟨vjp, v⟩| / tolerance seen (run after the checks above, same session)."""
    print("\nconv VQ FD worst ratios:", {k: f"{v:.3g}" for k, v in WORST.items()})


# ----------------------------------------------------------------------------- the layout, stated exactly
def test_defaults_are_an_mnist_vq_vae():
    arch = ConvVQArchitecture()
    assert [s for s in arch.feature_shapes()] == [(1, 28, 28), (32, 14, 14), (64, 7, 7)]
    assert arch.positions == (7, 7) and arch.latent_shape == (7, 7, 64) and arch.num_embeddings == 512
    assert arch.parameter_shapes()["encoder_to_embedding.kernel"] == (1, 1, 64, 64)
    assert arch.parameter_shapes()["decoder_from_embedding.kernel"] == (1, 1, 64, 64)
    assert arch.parameter_shapes()["decoder_output.kernel"] == (4, 4, 32, 1)


def test_z_e_is_the_feature_map_transposed_channels_last():
    """z_e[b, i, j, :] = Σ_c K[0, 0, c, :] h[b, c, i, j] + bias: the 1×1 convolution of the last feature map,
    written out by hand (a transposition, not a reshape, of torch's [B, E, H′, W′])."""
    from vaespec.reference import conv

    arch = ConvVQArchitecture((1, 8, 8), (2, 3), 4, 5, 4, 2, 1, "tanh")
    params = _params(arch, 0)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    h = x
    for name, _, _ in arch.encoder_convs():
        h = np.tanh(conv.conv2d(h, params[f"{name}.kernel"], params[f"{name}.bias"], 2, 1))
    by_hand = np.einsum("bchw,ce->bhwe", h, params["encoder_to_embedding.kernel"][0, 0]) \
        + params["encoder_to_embedding.bias"]
    np.testing.assert_allclose(REF.vq_encode(arch, params, x), by_hand, rtol=1e-14, atol=1e-14)
    z_q = init_codebook(5, 4, 3)[np.random.default_rng(1).integers(0, 5, (2, 2, 2))]
    first = np.tanh(np.einsum("bhwe,ec->bchw", z_q, params["decoder_from_embedding.kernel"][0, 0])
                    + params["decoder_from_embedding.bias"][None, :, None, None])
    x_hat = conv.conv_transpose2d(np.tanh(conv.conv_transpose2d(first, params["decoder_deconv_0.kernel"],
                                                                params["decoder_deconv_0.bias"], 2, 1)),
                                  params["decoder_output.kernel"], params["decoder_output.bias"], 2, 1)
    np.testing.assert_allclose(REF.decode(arch, params, z_q), x_hat, rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------- against torch
@pytest.mark.parametrize("dtype_name", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize("arch", [ConvVQArchitecture(), ConvVQArchitecture((1, 8, 8), (2, 3), 3, 5, 4, 2, 1, "tanh")],
                         ids=["mnist-1x28x28", "small-1x8x8"])
def test_torch_matches_the_reference_within_the_policy_bound(arch, dtype_name):
    """vaespec.impl.conv's ConvVQEncoder / ConvVQDecoder against the reference, within the bound of the
    declared chains (`function_bound`) times the reference's magnitude."""
    import torch

    from vaespec.impl import conv as torch_conv
    from vaespec.proofs_tests.laws.compare import round_to

    dtype = getattr(torch, dtype_name)
    rng = np.random.default_rng(3)
    params = {k: round_to(dtype_name, v) for k, v in init_params(arch, 2).items()}
    x = round_to(dtype_name, rng.uniform(0, 1, (2, *arch.input_shape)))
    z = round_to(dtype_name, rng.standard_normal((2, *arch.latent_shape)))
    encoder, decoder = torch_conv.from_params(arch, params, dtype)
    with torch.no_grad():
        got = {"vq_encode": encoder(torch.as_tensor(x, dtype=dtype)).double().numpy(),
               "decode": decoder(torch.as_tensor(z, dtype=dtype)).double().numpy()}
    for function, args in (("vq_encode", {"arch": arch, "params": params, "x": x}),
                           ("decode", {"arch": arch, "params": params, "z": z})):
        want = getattr(REF, function)(**args)
        tol = function_bound(dtype_name, function, args).tolerance(magnitude(function, args))
        ratio = float(np.max(np.abs(got[function] - want) / tol))
        print(f"{arch.input_shape} {function} {dtype_name}: worst |torch − reference| / bound = {ratio:.3g}")
        assert got[function].shape == want.shape and ratio <= 1.0, f"{function} ({dtype_name}): {ratio:.3g}"


# ----------------------------------------------------------------------------- bad input
def test_bad_input_is_named_with_the_expected_shape():
    arch = ConvVQArchitecture()
    params = init_params(arch, 0)
    codebook = init_codebook(512, 64, 0)
    x = np.zeros((2, 1, 28, 28))
    with pytest.raises(ShapeError, match=r"z: expected shape \[batch, 7, 7, 64\] .*channels-last.*got shape "
                                         r"\(2, 64, 7, 7\).*channels-first.*np\.moveaxis\(z, 1, -1\)"):
        REF.decode(arch, params, np.zeros((2, 64, 7, 7)))  # torch's [B, E, H′, W′] where [B, H′, W′, E] belongs
    with pytest.raises(ShapeError, match=r"x: expected shape \[batch, 1, 28, 28\].*got shape \(2, 28, 28, 1\).*"
                                         r"np\.moveaxis\(x, -1, 1\)"):
        REF.vq_encode(arch, params, np.moveaxis(x, 1, -1))
    with pytest.raises(ShapeError, match=r"x: expected shape \[batch, 1, 28, 28\].*got shape \(2, 1, 32, 32\)"):
        REF.vq_forward(arch, params, codebook, np.zeros((2, 1, 32, 32)))  # an event the architecture does not take
    with pytest.raises(ShapeError, match=r"x: expected shape \[batch, 1, 28, 28\].*got shape \(2, 784\).*flattened"):
        REF.vq_loss(arch, params, codebook, np.zeros((2, 784)), 0.25, "elbo")
    with pytest.raises(ShapeError, match=r"d_z_e: expected shape \[batch, 7, 7, 64\].*got shape "
                                         r"\(2, 64, 7, 7\).*np\.moveaxis"):
        REF.vjp("vq_encode", {"arch": arch, "params": params, "x": x}, np.zeros((2, 64, 7, 7)))
    kernel = params["encoder_to_embedding.kernel"]
    torch_layout = {**params, "encoder_to_embedding.kernel": kernel.transpose(3, 2, 0, 1)}
    with pytest.raises(ShapeError, match=r"encoder_to_embedding.kernel.*\(1, 1, 64, 64\).*\(64, 64, 1, 1\).*"
                                         r"permute\(2, 3, 1, 0\)"):
        REF.vq_encode(arch, torch_layout, x)
    with pytest.raises(ConfigError, match="divisible by the stride"):
        ConvVQArchitecture(input_shape=(1, 27, 27))
    with pytest.raises(ConfigError, match="embedding_dim: expected a positive integer"):
        ConvVQArchitecture(embedding_dim=0)


def test_torch_modules_refuse_a_channels_first_z_q_and_a_wrong_image():
    import torch

    from vaespec.impl import vq

    model = vq.build_conv(input_shape=(1, 8, 8), channels=(2, 3), embedding_dim=4, num_embeddings=5, key=0)
    x = torch.rand(2, 1, 8, 8)
    out = model(x)
    assert out.x_hat.shape == (2, 1, 8, 8) and out.indices.shape == (2, 2, 2)
    with pytest.raises(ShapeError, match=r"z: expected shape \[batch, 2, 2, 4\].*got shape \(2, 4, 2, 2\).*"
                                         r"z\.permute\(0, 2, 3, 1\)"):
        model.decoder(torch.zeros(2, 4, 2, 2))  # the encoder's feature map before its transposition
    with pytest.raises(ShapeError, match=r"x: expected shape \[batch, 1, 8, 8\].*got shape \(2, 8, 8, 1\).*"
                                         r"x\.permute\(0, 3, 1, 2\)"):
        model(x.permute(0, 2, 3, 1))
    params, codebook = vq.to_params(model), vq.to_codebook(model)
    assert params["encoder_to_embedding.kernel"].shape == (1, 1, 3, 4)
    again = vq.from_params(model.arch, params, codebook, dtype=torch.float32)
    torch.testing.assert_close(again(x).x_hat, out.x_hat, rtol=0, atol=0)
    np.testing.assert_allclose(vq.to_params(again)["decoder_output.kernel"], params["decoder_output.kernel"])


# ----------------------------------------------------------------------------- the laws meet it
def _network_laws() -> list[str]:
    """The VQ chapter's laws that read a network function (an `arch` argument): they draw the conv VQ-VAE."""
    from vaespec.spec.contract import FUNCTIONS
    from vaespec.spec.laws import LAWS

    return [name for name, law in LAWS.items() if law.chapter == "vq"
            and any(a.kind == "arch" for f in law.functions for a in FUNCTIONS[f].args)]


class _Counting(ReferenceBackend):
    """The reference, counting the calls that get a ConvVQArchitecture (its laws are then not n/a: a subclass)."""

    name = "counting-reference"

    def __init__(self) -> None:
        self.calls = {"conv_vq": 0, "dense": 0}

    def _seen(self, arch) -> None:
        self.calls["conv_vq" if isinstance(arch, ConvVQArchitecture) else "dense"] += 1

    def vq_encode(self, arch, params, x):
        self._seen(arch)
        return REF.vq_encode(arch, params, x)

    def vq_forward(self, arch, params, codebook, x):
        self._seen(arch)
        return REF.vq_forward(arch, params, codebook, x)

    def vq_loss(self, arch, params, codebook, x, commitment_weight, convention):
        self._seen(arch)
        return REF.vq_loss(arch, params, codebook, x, commitment_weight, convention)

    def vjp(self, function, args, cotangent):
        if "arch" in args:
            self._seen(args["arch"])
        return REF.vjp(function, args, cotangent)


def test_every_vq_network_law_runs_on_the_conv_vq_vae():
    """In the ci profile (the examples `vaespec check` and the suite draw) every VQ law that takes a network is
    handed ConvVQArchitecture examples, and the reference holds it on them."""
    from vaespec.proofs_tests.check.runner import run_law
    from vaespec.proofs_tests.strategies.profiles import profile_settings

    laws = _network_laws()
    assert len(laws) == 8, laws  # vq_encode/vq_forward/vq_loss × value and gradient, and the two identities
    shares = {}
    for law in laws:
        backend = _Counting()
        result = run_law(law, backend, profile_settings("ci"))
        assert result.verdict == "pass", (law, result.message)
        shares[law] = backend.calls["conv_vq"] / max(1, sum(backend.calls.values()))
        assert backend.calls["conv_vq"] > 0, f"{law}: no conv VQ-VAE example in the ci profile"
    print("\nconv VQ share of the network calls:", {k: f"{v:.2f}" for k, v in shares.items()})


@pytest.mark.parametrize("name", ["TorchConvVQEncoderReshaped", "TorchConvVQDecoderReshaped",
                                  "ConvVQLossAuxOverBatchOnly"])
def test_conv_vq_controls_are_right_on_the_dense_vq_vae(name):
    """Each conv VQ control (rejected by its law in test_negative_controls.py) holds that law on the dense VQ-VAE:
    declaring no conv_vq network, it is handed dense examples only, so only the conv examples show the bug."""
    from vaespec.proofs_tests.check.runner import run_law
    from vaespec.proofs_tests.controls import conv_vq as controls
    from vaespec.proofs_tests.strategies.profiles import profile_settings

    cls = controls.CONTROLS[name]
    dense_only = type(name, (cls,), {"architectures": ("dense", "conv")})()
    result = run_law(cls.caught_by, dense_only, profile_settings("ci"))
    assert result.verdict == "pass", result.message
