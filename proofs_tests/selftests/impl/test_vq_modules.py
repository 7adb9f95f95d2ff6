"""vaespec.impl.vq's modules: spec-named layers, the quantizers' gradients and EMA updates, the model's loss,
copies and state dicts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vaespec.impl.vq import (
    VQVAE,
    Decoder,
    VectorQuantizer,
    VectorQuantizerEMA,
    VQEncoder,
    build,
    codebook_loss,
    commitment_loss,
    init_codebook,
    nearest_code,
    vq_loss,
)
from vaespec.spec.architecture import VQArchitecture
from vaespec.spec.errors import ConfigError
from vaespec.spec.keys import Key, randint

F64 = torch.float64
ARCH = VQArchitecture(input_size=5, embedding_dim=3, num_embeddings=7, encoder_sizes=(6, 4), decoder_sizes=(4,),
                      activation="tanh")


def _x(device, batch=8, seed=0, dtype=F64):
    return torch.randn(batch, ARCH.input_size, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def test_layers_carry_the_spec_names():
    encoder, decoder = VQEncoder(ARCH), Decoder(ARCH)
    assert [name for name, _ in encoder.dense_layers()] == ["encoder_dense_0", "encoder_dense_1",
                                                            "encoder_to_embedding"]
    assert [name for name, _ in decoder.dense_layers()] == ["decoder_dense_0", "decoder_output"]
    assert encoder.encoder_to_embedding.weight.shape == (3, 4)  # [out, in]: the spec's [4, 3] kernel transposed
    assert decoder.decoder_dense_0.weight.shape == (4, 3)  # the decoder reads embedding_dim inputs


def test_vector_quantizer_returns_straight_through_codes_and_both_losses(device):
    quantizer = VectorQuantizer(7, 3, key=5, dtype=F64, device=device)
    assert torch.equal(quantizer.codebook.detach(), init_codebook(7, 3, 5, dtype=F64, device=device))
    z_e = torch.randn(10, 3, generator=torch.Generator().manual_seed(1), dtype=F64).to(device).requires_grad_()
    z_q, indices, cb, commit = quantizer(z_e)
    assert torch.equal(indices, nearest_code(z_e, quantizer.codebook))
    torch.testing.assert_close(z_q, quantizer.codebook[indices], rtol=0, atol=1e-15)
    assert torch.equal(cb, codebook_loss(z_e, quantizer.codebook, indices))
    assert torch.equal(commit, commitment_loss(z_e, quantizer.codebook, indices))
    (z_q.sum() + cb).backward()
    assert torch.equal(z_e.grad, torch.ones_like(z_e))  # z_q's upstream gradient, nothing from cb
    used = torch.zeros(7, dtype=torch.bool, device=device)
    used[indices] = True
    assert torch.all(quantizer.codebook.grad[~used] == 0) and torch.all(quantizer.codebook.grad[used].abs().sum(1) > 0)


def _ema_example(device, decay=0.5, epsilon=0.1):
    """A hand-sized EMA state: codes at (0,0), (10,0), (0,10); four vectors, two near each of the first two."""
    q = VectorQuantizerEMA(3, 2, decay=decay, epsilon=epsilon, dtype=F64, device=device)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
        q.ema_counts.copy_(torch.tensor([2.0, 1.0, 0.5]))
        q.ema_sums.copy_(torch.tensor([[1.0, 1.0], [8.0, 0.0], [0.0, 4.0]]))
        q.ema_step.fill_(4)
    z_e = torch.tensor([[1.0, 1.0], [9.0, 1.0], [11.0, -1.0], [0.5, 0.5]], dtype=F64, device=device)
    return q, z_e


def test_ema_step_matches_a_hand_computation(device):
    q, z_e = _ema_example(device)
    _, indices, cb, _ = q(z_e)
    assert indices.tolist() == [0, 1, 1, 0] and float(cb) == 0.0
    # γ = ½, ε = 0.1, t = 5: n = (2, 2, 0), s = ((1.5, 1.5), (20, 0), (0, 0)).
    counts = 0.5 * np.array([2.0, 1.0, 0.5]) + 0.5 * np.array([2.0, 2.0, 0.0])  # (2, 1.5, 0.25)
    sums = 0.5 * np.array([[1.0, 1.0], [8.0, 0.0], [0.0, 4.0]]) + 0.5 * np.array([[1.5, 1.5], [20.0, 0.0], [0, 0]])
    debias = 1 - 0.5**5
    n_hat, s_hat = counts / debias, sums / debias
    smoothed = (n_hat + 0.1) / (n_hat.sum() + 3 * 0.1) * n_hat.sum()
    np.testing.assert_allclose(q.ema_counts.cpu().numpy(), counts, rtol=1e-15)
    np.testing.assert_allclose(q.ema_sums.cpu().numpy(), sums, rtol=1e-15)
    np.testing.assert_allclose(q.codebook.cpu().numpy(), s_hat / smoothed[:, None], rtol=1e-14)
    assert q.ema_step.item() == 5 and q.ema_step.dtype == torch.int64


def test_ema_eval_mode_changes_nothing(device):
    q, z_e = _ema_example(device)
    before = {name: buffer.clone() for name, buffer in q.named_buffers()}
    q.eval()
    out = q(z_e)
    for name, buffer in q.named_buffers():
        assert torch.equal(buffer, before[name]), name
    q.train()
    q(z_e)
    assert not torch.equal(q.codebook, before["codebook"])
    torch.testing.assert_close(out.z_q, before["codebook"][out.indices], rtol=0, atol=0)


def test_ema_without_smoothing_from_a_fresh_state_is_a_kmeans_step(device):
    q = VectorQuantizerEMA(4, 2, decay=0.99, epsilon=0.0, key=3, dtype=F64, device=device)
    z_e = torch.randn(40, 2, generator=torch.Generator().manual_seed(2), dtype=F64).to(device)
    start = q.codebook.clone()
    indices = nearest_code(z_e, start)
    q(z_e)
    for k in range(4):
        members = z_e[indices == k]
        expected = members.mean(0) if len(members) else start[k]
        torch.testing.assert_close(q.codebook[k], expected, rtol=1e-13, atol=1e-15)


def test_ema_codebook_gets_no_gradient_and_commitment_reaches_the_input(device):
    q, z_e = _ema_example(device)
    z_e.requires_grad_()
    commit = q(z_e).commitment_loss
    assert not q.codebook.requires_grad and not list(q.parameters())
    commit.backward()
    rows = torch.tensor([[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [0.0, 0.0]], dtype=F64, device=device)
    torch.testing.assert_close(z_e.grad, 2 * (z_e.detach() - rows) / z_e.numel(), rtol=1e-15, atol=0)


def _model(device, ema=False, key=1):
    return build(ARCH.input_size, ARCH.embedding_dim, ARCH.num_embeddings, ARCH.encoder_sizes, ARCH.decoder_sizes,
                 ARCH.activation, ema=ema, key=key, dtype=F64, device=device)


@pytest.mark.parametrize("convention", ["elbo", "edifice"])
def test_model_loss_is_vq_loss_of_its_parts(device, convention):
    model, x = _model(device), _x(device)
    z_e = model.encoder(x)
    indices = nearest_code(z_e, model.quantizer.codebook)
    x_hat = model.decoder(model.quantizer.codebook[indices])
    expected = vq_loss(x_hat, x, z_e, model.quantizer.codebook, indices, 0.4, convention)
    torch.testing.assert_close(model.loss(x, 0.4, convention), expected, rtol=1e-14, atol=0)
    out = model(x)
    assert torch.equal(out.indices, indices) and out.x_hat.shape == (8, 5)


def test_model_loss_trains_encoder_decoder_and_the_used_codes(device):
    model, x = _model(device), _x(device)
    model.loss(x).backward()
    indices = model(x).indices
    grad = model.quantizer.codebook.grad
    used = torch.zeros(ARCH.num_embeddings, dtype=torch.bool, device=device)
    used[indices] = True
    assert torch.all(grad[used].abs().sum(1) > 0) and torch.all(grad[~used] == 0)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name


def test_ema_model_loss_has_no_codebook_term_and_updates_in_training(device):
    model, x = _model(device, ema=True), _x(device)
    z_e = model.encoder(x)
    codebook = model.quantizer.codebook.clone()
    indices = nearest_code(z_e, codebook)
    expected = vq_loss(model.decoder(codebook[indices]), x, z_e, codebook, indices, 0.25) \
        - codebook_loss(z_e, codebook, indices)
    torch.testing.assert_close(model.loss(x), expected, rtol=1e-13, atol=0)
    assert model.quantizer.ema_step.item() == 1 and not torch.equal(model.quantizer.codebook, codebook)
    model.eval()
    after = model.quantizer.codebook.clone()
    model.loss(x)
    assert torch.equal(model.quantizer.codebook, after) and model.quantizer.ema_step.item() == 1


@pytest.mark.parametrize("ema", [False, True])
def test_deepcopy_and_state_dict_give_independent_equal_models(device, ema):
    model, x = _model(device, ema), _x(device)
    twin = copy.deepcopy(model)
    assert torch.equal(twin(x).x_hat, model(x).x_hat)
    with torch.no_grad():
        twin.quantizer.codebook.add_(1.0)
        twin.encoder.encoder_dense_0.weight.zero_()
    assert not torch.equal(twin.quantizer.codebook, model.quantizer.codebook)
    assert torch.any(model.encoder.encoder_dense_0.weight != 0)
    fresh = _model(device, ema, key=2)
    fresh.load_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    assert torch.equal(fresh(x).x_hat, model(x).x_hat)
    if ema:
        assert set(dict(model.named_buffers())) == {"quantizer.codebook", "quantizer.ema_counts",
                                                    "quantizer.ema_sums", "quantizer.ema_step"}
        assert model.float().quantizer.ema_step.dtype == torch.int64


def test_quantizer_health_and_dead_code_reset(device):
    model, x = _model(device), _x(device, batch=20)
    z_e = model.encoder(x).detach()
    indices = model(x).indices
    usage, perplexity, dead = model.quantizer.health(indices)
    assert int(usage.sum()) == 20 and int(dead) == int((usage == 0).sum()) and 1 <= float(perplexity) <= 7
    before = model.quantizer.codebook.detach().clone()
    key = model.quantizer.reset_dead_codes(usage, z_e, 4)
    picks, expected_key = randint(Key(4), 20, (int(dead),))
    assert key == expected_key
    dead_rows = torch.nonzero(usage == 0).squeeze(1).tolist()
    for row, pick in zip(dead_rows, picks):
        assert torch.equal(model.quantizer.codebook[row].detach(), z_e[pick])
    live = usage > 0
    assert torch.equal(model.quantizer.codebook.detach()[live], before[live])


def test_ema_dead_code_reset_keeps_the_moving_average_consistent(device):
    q, z_e = _ema_example(device)
    usage = torch.tensor([2, 2, 0], device=device)
    q.reset_dead_codes(usage, z_e, 0)
    pick = int(randint(Key(0), 4, (1,))[0][0])
    assert torch.equal(q.codebook[2], z_e[pick])
    # Ŝ/N̂ = ema_sums/ema_counts is the new row, so the state agrees with the codebook.
    torch.testing.assert_close(q.ema_sums[2] / q.ema_counts[2], z_e[pick], rtol=1e-15, atol=0)
    assert torch.equal(q.ema_sums[:2], torch.tensor([[1.0, 1.0], [8.0, 0.0]], dtype=F64, device=device))


def test_model_rejects_mismatched_parts():
    other = VQArchitecture(5, 3, 9, (6, 4), (4,), "tanh")
    with pytest.raises(ValueError, match="codebook"):
        VQVAE(VQEncoder(ARCH), VectorQuantizer(9, 3), Decoder(ARCH))
    with pytest.raises(ValueError, match="decoder"):
        VQVAE(VQEncoder(ARCH), VectorQuantizer(7, 3), Decoder(other))


@pytest.mark.parametrize(("options", "named"), [({"decay": 1.0}, "decay"), ({"epsilon": -0.1}, "epsilon")])
def test_ema_quantizer_refuses_options_that_break_the_update(options, named):
    with pytest.raises(ConfigError, match=named):
        VectorQuantizerEMA(3, 2, **options)
