"""Training step (forward + backward + Adam, float32): vaespec.impl against a hand-written VAE and
the matmul floor, at Edifice's default shapes 784 → 256 → 128 → 32 → 128 → 256 → 784.

Cases, all at the same shapes, data and convention ("edifice": MSE averaged over all
elements, KL summed over the latent and averaged over the batch):

- `hand-written`: `HandVAE` below, the plain nn.Module VAE one writes from a tutorial,
  `torch.randn_like` noise, `torch.optim.Adam` with its defaults.
- `ours`: `vaespec.impl.build(784, key=0)`, `reparameterize(μ, lv, ε, validate=False)` with
  `ε = torch.randn_like(μ)` drawn in the step, `loss(..., validate=False)`, the same Adam.
  The ratio ours / hand-written is the cost of our layering.
- `ours (keys)`: the same with `reparameterize_with_key`, vaespec's reproducible noise
  (drawn in float64 on the host from an explicit key, then cast and copied).
- `ours, F.mse_loss recon`: diagnostic: the same step with the reconstruction term computed by
  `F.mse_loss` (for "edifice", the same value) and our `kl_divergence`: the difference to `ours`
  is what `impl.functional.reconstruction_loss` costs beyond one fused kernel.
- `ours (fused Adam)`: `Adam(fused=True)`; `ours (compiled)`: the forward and loss under
  `torch.compile` (compile time reported separately; skipped with `--no-compile`).
- `matmul floor`: the step's matrix products alone into preallocated outputs (7 forward
  `x·Wᵀ`, 7 weight gradients `dyᵀ·x`, 6 input gradients `dy·W`; the input x needs none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaespec.impl import build, kl_divergence, loss, reparameterize, reparameterize_with_key

from .report import Report, Row
from .timing import compare, time_once

NAME = "train_step"
FULL = {"input_size": 784, "encoder": (256, 128), "latent": 32, "decoder": (128, 256), "batches": (128, 1024)}
TOY = {"input_size": 12, "encoder": (8, 6), "latent": 3, "decoder": (6, 8), "batches": (4,)}
# (numerator, denominator, target, note) of every ratio reported per device and batch.
RATIOS = (("ours", "hand-written", 1.0, "the cost of our layering"),
          ("ours (keys)", "hand-written", None, "host-drawn key noise"),
          ("ours, F.mse_loss recon", "hand-written", None, "diagnostic: recon term fused"),
          ("ours (fused Adam)", "hand-written", 1.0, ""),
          ("ours (compiled)", "hand-written", 1.0, ""),
          ("hand-written", "matmul floor", None, ""),
          ("ours", "matmul floor", None, ""))


class HandVAE(nn.Module):
    """A minimal VAE written plainly: two ReLU layers each way, μ and log σ² heads."""

    def __init__(self, input_size, encoder, latent, decoder):
        super().__init__()
        self.e1, self.e2 = nn.Linear(input_size, encoder[0]), nn.Linear(encoder[0], encoder[1])
        self.mu, self.log_var = nn.Linear(encoder[1], latent), nn.Linear(encoder[1], latent)
        self.d1, self.d2 = nn.Linear(latent, decoder[0]), nn.Linear(decoder[0], decoder[1])
        self.out = nn.Linear(decoder[1], input_size)

    def forward(self, x):
        h = F.relu(self.e2(F.relu(self.e1(x))))
        mu, log_var = self.mu(h), self.log_var(h)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        x_hat = self.out(F.relu(self.d2(F.relu(self.d1(z)))))
        kl = 0.5 * (torch.exp(log_var) - log_var + mu * mu - 1).sum(1).mean()
        return F.mse_loss(x_hat, x) + kl


def _hand_step(shape, x, device):
    model = HandVAE(shape["input_size"], shape["encoder"], shape["latent"], shape["decoder"]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).backward()
        opt.step()
    return step


def _ours(shape, device, fused=False):
    encoder, decoder = build(shape["input_size"], shape["latent"], shape["encoder"], shape["decoder"],
                             dtype=torch.float32, device=device, key=0)
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-4, fused=fused or None)
    return encoder, decoder, opt


def _ours_step(shape, x, device, fused=False):
    encoder, decoder, opt = _ours(shape, device, fused)

    def step():
        opt.zero_grad(set_to_none=True)
        out = encoder(x)
        mu, log_var = out["mu"], out["log_var"]
        z = reparameterize(mu, log_var, torch.randn_like(mu), validate=False)
        loss(decoder(z), x, mu, log_var, 1.0, "edifice", validate=False).backward()
        opt.step()
    return step


def _ours_mse_step(shape, x, device):
    encoder, decoder, opt = _ours(shape, device)

    def step():
        opt.zero_grad(set_to_none=True)
        out = encoder(x)
        mu, log_var = out["mu"], out["log_var"]
        z = reparameterize(mu, log_var, torch.randn_like(mu), validate=False)
        (F.mse_loss(decoder(z), x) + kl_divergence(mu, log_var, "edifice", validate=False)).backward()
        opt.step()
    return step


def _ours_keys_step(shape, x, device):
    encoder, decoder, opt = _ours(shape, device)
    state = {"key": 0}

    def step():
        opt.zero_grad(set_to_none=True)
        out = encoder(x)
        mu, log_var = out["mu"], out["log_var"]
        z, state["key"] = reparameterize_with_key(mu, log_var, state["key"], validate=False)
        loss(decoder(z), x, mu, log_var, 1.0, "edifice", validate=False).backward()
        opt.step()
    return step


def _compiled_step(shape, x, device):
    encoder, decoder, opt = _ours(shape, device)

    @torch.compile
    def objective(x, eps):
        out = encoder(x)
        mu, log_var = out["mu"], out["log_var"]
        z = reparameterize(mu, log_var, eps, validate=False)
        return loss(decoder(z), x, mu, log_var, 1.0, "edifice", validate=False)

    eps = torch.empty(x.shape[0], shape["latent"], device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        objective(x, eps.normal_()).backward()
        opt.step()
    return step


def _floor(shape, x, device):
    """The step's matrix products alone: forward, weight gradients, input gradients (none for x)."""
    s = shape
    head = s["encoder"][-1]
    layers = [(s["input_size"], s["encoder"][0]), (s["encoder"][0], s["encoder"][1]), (head, s["latent"]),
              (head, s["latent"]), (s["latent"], s["decoder"][0]), (s["decoder"][0], s["decoder"][1]),
              (s["decoder"][1], s["input_size"])]
    batch = x.shape[0]
    g = torch.Generator(device).manual_seed(0)

    def rand(*size: int) -> torch.Tensor:
        return torch.randn(*size, device=device, generator=g)

    weights = [rand(fan_out, fan_in) for fan_in, fan_out in layers]
    inputs = [rand(batch, fan_in) for fan_in, _ in layers]
    grads_out = [rand(batch, fan_out) for _, fan_out in layers]
    y = [torch.empty(batch, fan_out, device=device) for _, fan_out in layers]
    dw = [torch.empty_like(w) for w in weights]
    dx = [torch.empty_like(i) for i in inputs]

    def step():
        for i, w in enumerate(weights):
            torch.mm(inputs[i], w.t(), out=y[i])
        for i, w in enumerate(weights):
            torch.mm(grads_out[i].t(), inputs[i], out=dw[i])
            if i:  # the data x needs no gradient
                torch.mm(grads_out[i], w, out=dx[i])
    return step


def run(report: Report, device: str, *, toy: bool, repeats: int, compile: bool = True, **_) -> None:
    shape = TOY if toy else FULL
    for batch in shape["batches"]:
        config = f"B={batch}"
        x = torch.rand(batch, shape["input_size"], device=device, generator=torch.Generator(device).manual_seed(1))
        cases = {"hand-written": _hand_step(shape, x, device), "ours": _ours_step(shape, x, device),
                 "ours (keys)": _ours_keys_step(shape, x, device),
                 "ours, F.mse_loss recon": _ours_mse_step(shape, x, device),
                 "ours (fused Adam)": _ours_step(shape, x, device, fused=True)}
        if compile:
            try:
                compiled = _compiled_step(shape, x, device)
                seconds = time_once(compiled, device)  # the first call compiles
                report.rows.append(Row(NAME, device, config, "compile time (first call)", seconds, repeats=1))
                cases["ours (compiled)"] = compiled
            except Exception as error:  # noqa: BLE001  (no C++ compiler, an unsupported op…: report it, go on)
                report.rows.append(Row(NAME, device, config, "ours (compiled)", None,
                                       note=f"torch.compile failed: {type(error).__name__}: {str(error)[:120]}"))
        cases["matmul floor"] = _floor(shape, x, device)
        report.add_timings(NAME, device, config, compare(cases, repeats=repeats, device=device))
        for top, bottom, target, note in RATIOS:
            report.ratio(NAME, device, config, top, bottom, target, note)
