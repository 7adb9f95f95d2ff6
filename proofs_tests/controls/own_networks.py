"""Deliberately wrong backends on a network of their own (issue 15): each must be rejected by `caught_by`.

Each control is `vaespec.impl.adapters.NetworkBackend` on `TinyVAE` (docs/porting.md §6.3's model: a Conv1d and
LayerNorms over x [batch, 2, 6], μ and log σ² from one head, a network vaespec does not implement) with one bug
of the kind a hand-written VAE has; only the structural laws can see them (the reference laws are n/a there):
the identities its forward functions break, or, for a wrong gradient under a right forward,
`network_gradients_eq_own_finite_differences` (its VJPs against central differences of its own functions).

    vaespec check --backend vaespec.proofs_tests.controls.own_networks:LossForgetsBeta \
        --law loss_eq_reconstruction_add_kl
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vaespec.impl.adapters import NetworkBackend
from vaespec.impl.functional import kl_divergence, reconstruction_loss


class TinyVAE(nn.Module):
    """docs/porting.md §6.3's model: x [batch, 2, 6] → Conv1d(2, 4, 3) → LayerNorm → tanh → one head (μ, log σ²);
    z [batch, 2] → Linear → LayerNorm → tanh → Linear → [batch, 2, 6]."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv1d(2, 4, 3, padding=1), nn.LayerNorm(24)
        self.head = nn.Linear(24, 4)
        self.dec = nn.Sequential(nn.Linear(2, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 12))

    def encode(self, x):
        return self.head(torch.tanh(self.norm(self.conv(x).flatten(1)))).chunk(2, dim=1)

    def decode(self, z):
        return self.dec(z).view(-1, 2, 6)


class _OwnNetworkControl(NetworkBackend):
    bug = ""
    caught_by = ""

    def __init__(self, device: Any = "cpu", dtype: Any = "float64"):
        super().__init__(TinyVAE(), (2, 6), 2, name=f"control:{type(self).__name__}", device=device, dtype=dtype)


class LossForgetsBeta(_OwnNetworkControl):
    bug = "loss = R + KL: β dropped"
    caught_by = "loss_eq_reconstruction_add_kl"

    def torch_loss(self, arch, params, x, eps, beta, convention):
        mu, log_var, z = self._sample(arch, params, x, eps)
        x_hat = self.run(arch, params, self.decode_path, z)
        return reconstruction_loss(x_hat, x, convention, validate=False) + kl_divergence(
            mu, log_var, convention, validate=False)


class ForwardWithoutNoise(_OwnNetworkControl):
    bug = "forward decodes μ: the noise never reaches it"
    caught_by = "forward_eq_decode_reparameterize"

    def torch_forward(self, arch, params, x, eps):
        return self.run(arch, params, self.decode_path, self._encode(arch, params, x)[0])


class NoiseRowsFlipped(_OwnNetworkControl):
    bug = "z_b = μ_b + σ_b · ε_{B−1−b}: each example paired with another's noise"
    caught_by = "batch_permutation_equivariance"

    def _reparameterize(self, mu: Tensor, log_var: Tensor, eps: Tensor, arch: Any) -> Tensor:
        return mu + torch.exp(0.5 * log_var) * eps.flip(0)


class EncoderCentresTheBatch(_OwnNetworkControl):
    bug = "the encoder reads x − mean over the batch (a BatchNorm in training mode): examples depend on each other"
    caught_by = "reductions_consistent_under_batch_splitting"

    def _encode(self, arch, params, x):
        return super()._encode(arch, params, x - x.mean(0, keepdim=True))


class DecoderGradientHalved(_OwnNetworkControl):
    bug = "the backward pass scales the decoder's parameter gradients by ½ (a stray 0.5 in a hand-written VJP); the "\
          "forward is right"
    caught_by = "network_gradients_eq_own_finite_differences"

    def vjp(self, function, args, cotangent):
        grads = super().vjp(function, args, cotangent)
        grads["params"] = {k: 0.5 * g if k.startswith("dec.") else g for k, g in grads["params"].items()}
        return grads


class SampleDetachedInLoss(_OwnNetworkControl):
    bug = "the loss decodes z.detach(): its value is right, but the reconstruction's gradient never reaches the " \
          "encoder (it learns from the KL alone)"
    caught_by = "network_gradients_eq_own_finite_differences"

    def torch_loss(self, arch, params, x, eps, beta, convention):
        mu, log_var, z = self._sample(arch, params, x, eps)
        x_hat = self.run(arch, params, self.decode_path, z.detach())
        return reconstruction_loss(x_hat, x, convention, validate=False) + beta * kl_divergence(
            mu, log_var, convention, validate=False)


CONTROLS = {c.__name__: c for c in (LossForgetsBeta, ForwardWithoutNoise, NoiseRowsFlipped, EncoderCentresTheBatch,
                                    DecoderGradientHalved, SampleDetachedInLoss)}
