"""vaespec.impl.vq's functional ops: distances within the policy's bound, straight-through and stop-gradient
gradients exactly as the spec states, O(B·K) memory, the codebook ops against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from vaespec.impl.functional import reconstruction_loss
from vaespec.impl.vq import (
    codebook_health,
    codebook_loss,
    commitment_loss,
    init_codebook,
    laplace_smooth,
    nearest_code,
    quantize,
    reset_dead_codes,
    squared_distances,
    vq_loss,
)
from vaespec.spec import init as spec_init
from vaespec.spec.errors import DomainError, DTypeError, ShapeError
from vaespec.spec.keys import Key, randint
from vaespec.spec.tolerances import distance_bound

F64 = torch.float64


def _direct(z: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact-enough distances: float64 direct differences of the given values."""
    return ((z[:, None, :] - c[None, :, :]) ** 2).sum(-1)


def _clustered(seed: int, batch: int, codes: int, dim: int, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """z and codebook far from the origin (norm ≈ offset) and close to each other: the expanded
    form ‖z‖² − 2z·e + ‖e‖² cancels there, the hard case for float32."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(dim)
    centre *= offset / np.linalg.norm(centre)
    return centre + rng.standard_normal((batch, dim)), centre + rng.standard_normal((codes, dim))


def _float32_case(device, seed=0, batch=256, codes=128, dim=64, offset=1000.0):
    z, c = _clustered(seed, batch, codes, dim, offset)
    z32, c32 = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (z, c))
    z64, c64 = z32.double().cpu().numpy(), c32.double().cpu().numpy()  # what the backend received
    tau = distance_bound("float32", dim, np.linalg.norm(z64, axis=1)[:, None], np.linalg.norm(c64, axis=1)[None, :])
    return z32, c32, _direct(z64, c64), tau


def test_float32_distances_are_within_the_distance_bound(device):
    z32, c32, exact, tau = _float32_case(device)
    error = np.abs(squared_distances(z32, c32).double().cpu().numpy() - exact)
    assert error.max() > 0  # the data does make the expanded form round
    assert np.all(error <= tau), f"worst error / bound = {np.max(error / tau):.3g}"


def test_the_distance_check_rejects_a_coarser_computation(device):
    """Negative control: the expanded form evaluated in bfloat16 arithmetic breaks the float32 bound."""
    z32, c32, exact, tau = _float32_case(device)
    z, c = z32.bfloat16(), c32.bfloat16()
    coarse = ((z * z).sum(1, keepdim=True) - 2 * z @ c.T + (c * c).sum(1)).double().cpu().numpy()
    assert np.any(np.abs(coarse - exact) > tau)


# Near the origin most choices are clear-cut (exact agreement required); at norm 1000 the bound
# exceeds every margin, so only the criterion itself constrains the choice.
@pytest.mark.parametrize(("offset", "some_clear"), [(10.0, True), (1000.0, False)])
def test_float32_choices_meet_the_near_tie_criterion(device, offset, some_clear):
    z32, c32, exact, tau = _float32_case(device, offset=offset)
    chosen = nearest_code(z32, c32).cpu().numpy()
    rows = np.arange(len(chosen))
    assert np.all(exact[rows, chosen] - tau[rows, chosen] <= np.min(exact + tau, axis=1))
    # Where the exact runner-up is further than both bounds, the choice must be the exact argmin.
    order = np.argsort(exact, axis=1, kind="stable")
    best, second = order[:, 0], order[:, 1]
    clear = exact[rows, second] - exact[rows, best] > tau[rows, best] + tau[rows, second]
    assert clear.any() == some_clear
    np.testing.assert_array_equal(chosen[clear], best[clear])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_narrow_inputs_get_float32_distances(dtype):
    z, c = (torch.as_tensor(a, dtype=dtype) for a in _clustered(1, 8, 5, 4, 3.0))
    d = squared_distances(z, c)
    assert d.dtype == torch.float32
    exact = _direct(z.double().numpy(), c.double().numpy())
    tau = distance_bound("float32", 4, np.linalg.norm(z.double().numpy(), axis=1)[:, None],
                         np.linalg.norm(c.double().numpy(), axis=1)[None, :])
    assert np.all(np.abs(d.double().numpy() - exact) <= tau)


def test_ties_go_to_the_lowest_index(device):
    """Small integers: every form computes the distances exactly, so ties are real ties."""
    codebook = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=F64, device=device)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 0.0]], dtype=F64, device=device)
    assert nearest_code(z, codebook).tolist() == [0, 1, 0, 0, 4]


def _peak_bytes(fn, device) -> int:
    """The largest single allocation (CPU, from the profiler's memory events) or the peak allocated
    memory above the starting point (CUDA) while `fn` runs."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(abs(e.cpu_memory_usage) for e in prof.events())


@pytest.mark.parametrize("fn", [squared_distances, nearest_code, quantize])
def test_distances_never_materialise_batch_by_codes_by_embedding(fn, device):
    batch, codes, dim = 512, 256, 64
    z, c = (torch.randn(n, dim, generator=torch.Generator().manual_seed(n)).to(device) for n in (batch, codes))
    peak = _peak_bytes(lambda: fn(z, c, validate=False), device)
    # A [B, K, D] float32 temporary would be 32 MiB; [B, K] is 0.5 MiB. Allow a few [B, K] buffers.
    assert peak <= 4 * batch * codes * 4 < batch * codes * dim * 4 // 8, peak
    # Negative control: the direct form's temporary is seen by the same measurement.
    naive = _peak_bytes(lambda: ((z[:, None, :] - c[None]) ** 2).sum(-1).argmin(1), device)
    assert naive >= batch * codes * dim * 4


def _leaves(device, dtype=F64, seed=0, batch=6, codes=4, dim=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, dim, generator=g, dtype=dtype).to(device).requires_grad_()
    c = torch.randn(codes, dim, generator=g, dtype=dtype).to(device).requires_grad_()
    return z, c


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_straight_through_gradient_is_exactly_the_upstream_gradient(device, dtype):
    z, c = _leaves(device, dtype)
    z_q, indices = quantize(z, c)
    upstream = torch.randn(z.shape, generator=torch.Generator().manual_seed(9), dtype=dtype).to(device)
    (z_q * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)
    assert c.grad is None  # no path from z_q to the codebook
    rows = c.detach()[indices]
    # The value is the chosen row up to the two roundings of z + (e − z).
    tol = 2 * torch.finfo(dtype).eps * (z.detach().abs() + rows.abs())
    assert torch.all((z_q.detach() - rows).abs() <= tol)


def test_codebook_loss_trains_the_codebook_and_commitment_the_encoder(device):
    z, c = _leaves(device)
    indices = nearest_code(z, c)
    batch, dim = z.shape
    rows = c.detach()[indices]
    codebook_loss(z, c, indices).backward()
    assert z.grad is None
    expected = torch.zeros_like(c).index_add_(0, indices, -2.0 * (z.detach() - rows) / (batch * dim))
    torch.testing.assert_close(c.grad, expected, rtol=1e-13, atol=0)
    assert torch.any(c.grad != 0)

    z2, c2 = _leaves(device)
    commitment_loss(z2, c2, indices).backward()
    assert c2.grad is None
    torch.testing.assert_close(z2.grad, 2.0 * (z2.detach() - rows) / (batch * dim), rtol=1e-13, atol=0)


def test_edifice_codebook_loss_on_the_straight_through_output_never_trains_the_codebook(device):
    """Negative control for the API: Edifice's documented mean((sg(z_e) − z_q)²) with z_q from
    quantize gives the codebook no gradient (and the encoder one); ours gives the codebook one."""
    z, c = _leaves(device)
    z_q, indices = quantize(z, c)
    ((z.detach() - z_q) ** 2).mean().backward()
    assert c.grad is None and z.grad is not None
    z.grad = None
    codebook_loss(z, c, indices).backward()
    assert c.grad is not None and torch.any(c.grad != 0) and z.grad is None


def test_aux_losses_are_means_of_squared_differences(device):
    z, c = _leaves(device)
    indices = torch.tensor([3, 0, 0, 1, 2, 3], device=device)
    expected = float(((z.detach() - c.detach()[indices]) ** 2).sum()) / z.numel()
    assert codebook_loss(z, c, indices).item() == pytest.approx(expected, rel=1e-14)
    assert commitment_loss(z, c, indices).item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("convention", ["elbo", "edifice"])
def test_vq_loss_is_reconstruction_plus_codebook_plus_weighted_commitment(device, convention):
    z, c = _leaves(device)
    indices = nearest_code(z, c)
    g = torch.Generator().manual_seed(3)
    x_hat, x = (torch.randn(6, 5, generator=g, dtype=F64).to(device) for _ in range(2))
    total = vq_loss(x_hat, x, z, c, indices, 0.7, convention)
    parts = (reconstruction_loss(x_hat, x, convention) + codebook_loss(z, c, indices)
             + 0.7 * commitment_loss(z, c, indices))
    torch.testing.assert_close(total, parts, rtol=1e-15, atol=0)
    assert vq_loss(x_hat, x, z, c, indices).item() == pytest.approx(
        (reconstruction_loss(x_hat, x) + 1.25 * codebook_loss(z, c, indices)).item(), rel=1e-14)


def test_bad_arguments_name_themselves(device):
    z, c = _leaves(device)
    good = nearest_code(z, c)
    with pytest.raises(ShapeError, match="codebook"):
        quantize(z, c[:, :2])
    with pytest.raises(DomainError, match=r"indices: expected integers in \[0, 4\)"):
        codebook_loss(z, c, good + 4)
    with pytest.raises(DTypeError, match="indices"):
        commitment_loss(z, c, good.int())
    with pytest.raises(ShapeError, match="indices"):
        codebook_loss(z, c, good[:3])
    with pytest.raises(DomainError, match="commitment_weight"):
        vq_loss(z, z, z, c, good, -0.5)
    with pytest.raises(DomainError, match="z_e"):
        nearest_code(torch.full_like(z, math.nan), c)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_init_codebook_is_the_spec_draw_cast(device, dtype):
    before = torch.random.get_rng_state()
    codebook = init_codebook(9, 4, 7, device=device, dtype=dtype)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global generator is untouched
    expected = torch.as_tensor(spec_init.init_codebook(9, 4, 7), dtype=dtype)
    assert codebook.dtype == dtype and torch.equal(codebook.cpu(), expected)
    assert torch.equal(init_codebook(9, 4, Key(7), device=device, dtype=dtype), codebook)
    assert not torch.equal(init_codebook(9, 4, 8, dtype=dtype), codebook.cpu())
    assert torch.equal(init_codebook(3, 2).double(),
                       torch.as_tensor(spec_init.init_codebook(3, 2, 42)).float().double())


def test_laplace_smooth_matches_its_formula(device):
    counts = torch.tensor([0.0, 3.0, 1.0, 0.5], dtype=F64, device=device)
    smoothed = laplace_smooth(counts, 0.01)
    expected = [(n + 0.01) / (4.5 + 4 * 0.01) * 4.5 for n in (0.0, 3.0, 1.0, 0.5)]
    assert smoothed.tolist() == pytest.approx(expected, rel=1e-15)
    assert float(smoothed.sum()) == pytest.approx(4.5, rel=1e-15) and bool((smoothed > 0).all())
    assert torch.equal(laplace_smooth(counts, 0.0), counts)
    with pytest.raises(DomainError, match="counts"):
        laplace_smooth(torch.zeros(3, dtype=F64), 0.1)
    with pytest.raises(DomainError, match="epsilon"):
        laplace_smooth(counts, -1.0)


def test_codebook_health_counts_and_perplexity(device):
    indices = torch.tensor([0, 2, 2, 5], device=device)
    usage, perplexity, dead = codebook_health(indices, 7, dtype=F64)
    assert usage.tolist() == [1, 0, 2, 0, 0, 1, 0] and usage.dtype == torch.int64
    # p = (¼, ½, ¼): H = 2·¼·ln 4 + ½·ln 2 = 1.5 ln 2, so the perplexity is 2^1.5.
    assert float(perplexity) == pytest.approx(2**1.5, rel=1e-15)
    assert int(dead) == 4
    assert float(codebook_health(torch.full((5,), 3, device=device), 4).perplexity) == 1.0
    assert float(codebook_health(torch.arange(6, device=device).repeat(2), 6, dtype=F64).perplexity) == \
        pytest.approx(6.0, rel=1e-15)
    with pytest.raises(DomainError, match=r"indices: expected integers in \[0, 5\)"):
        codebook_health(indices, 5)


def test_reset_dead_codes_draws_replacements_from_the_key(device):
    z, c = _leaves(device, batch=10, codes=6)
    z, c = z.detach(), c.detach()
    usage = torch.tensor([2, 0, 5, 0, 0, 3], device=device)
    new, key = reset_dead_codes(c, usage, z, 11)
    picks, expected_key = randint(Key(11), 10, (3,))
    assert key == expected_key
    for row, pick in zip((1, 3, 4), picks):
        assert torch.equal(new[row], z[pick])
    for row in (0, 2, 5):
        assert torch.equal(new[row], c[row])
    again, _ = reset_dead_codes(c, usage, z, 11)
    assert torch.equal(again, new)
    unchanged, key0 = reset_dead_codes(c, torch.ones(6, dtype=torch.int64, device=device), z, 11)
    assert torch.equal(unchanged, c) and key0 == randint(Key(11), 10, (0,))[1]
    with pytest.raises(DTypeError, match="usage"):
        reset_dead_codes(c, usage.double(), z, 11)
