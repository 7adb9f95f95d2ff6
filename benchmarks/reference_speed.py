"""Reference speed: the float64 NumPy reference's loss + gradients against the Torch implementation, at batch 1024
with Edifice's default shapes (784 → 256 → 128 → 32 and back), so differential tests can run at useful sizes.

Cases, each one loss evaluation and its gradient with respect to every parameter and x:

- `reference (float64)`: `reference.loss(...)` then `reference.vjp("loss", args, 1.0)`.
- `reference vjp only`: the vjp alone (it recomputes the forward it needs).
- `torch float64`, `torch float32` (modules): prebuilt `Encoder`/`Decoder`, the loss forward and
  `torch.autograd.grad` with respect to the parameters and x: the raw cost on the device.
- `TorchBackend float64 (contract)`: `TorchBackend.loss` then `.vjp("loss", …)` through the contract,
  float64 numpy in and out, modules rebuilt per call: what a differential test pays.

The activation is Edifice's relu; `--toy` shrinks everything. A gelu row shows the cost of the
reference's per-element `math.erf`.
"""

from __future__ import annotations

import numpy as np
import torch

from vaespec import reference as ref
from vaespec.impl import TorchBackend, build, loss, reparameterize
from vaespec.spec.architecture import Architecture

from .report import Report
from .timing import compare

NAME = "reference_speed"
FULL = {"input_size": 784, "latent_size": 32, "batch": 1024}
TOY = {"input_size": 12, "latent_size": 3, "encoder_sizes": (8, 6), "decoder_sizes": (6, 8), "batch": 4}


def _problem(size: dict, activation: str):
    size = dict(size)
    batch = size.pop("batch")
    arch = Architecture(**size, activation=activation)
    rng = np.random.default_rng(1)
    params = ref.init_params(arch, 0)
    x, eps = rng.random((batch, arch.input_size)), rng.standard_normal((batch, arch.latent_size))
    return arch, params, x, eps


def _reference(arch, params, x, eps, vjp_only=False):
    args = {"arch": arch, "params": params, "x": x, "eps": eps, "beta": 1.0, "convention": "edifice"}

    def step():
        if not vjp_only:
            ref.loss(arch, params, x, eps, 1.0, "edifice")
        return ref.vjp("loss", args, 1.0)
    return step


def _torch(arch, x, eps, dtype):
    encoder, decoder = build(arch.input_size, arch.latent_size, arch.encoder_sizes, arch.decoder_sizes,
                             arch.activation, dtype=dtype, key=0)
    leaves = [*encoder.parameters(), *decoder.parameters()]
    x_t = torch.as_tensor(x, dtype=dtype).requires_grad_()
    eps_t = torch.as_tensor(eps, dtype=dtype)

    def step():
        out = encoder(x_t)
        mu, log_var = out["mu"], out["log_var"]
        z = reparameterize(mu, log_var, eps_t, validate=False)
        value = loss(decoder(z), x_t, mu, log_var, 1.0, "edifice", validate=False)
        return torch.autograd.grad(value, [*leaves, x_t])
    return step


def _backend(arch, params, x, eps):
    backend = TorchBackend("cpu", torch.float64)
    args = {"arch": arch, "params": params, "x": x, "eps": eps, "beta": 1.0, "convention": "edifice"}

    def step():
        backend.loss(arch, params, x, eps, 1.0, "edifice")
        return backend.vjp("loss", args, 1.0)
    return step


def run(report: Report, device: str, *, toy: bool, repeats: int, **_) -> None:
    if device != "cpu":
        return  # the reference is NumPy: its comparison is with the Torch CPU implementation
    size = TOY if toy else FULL
    config = f"B={size['batch']} relu"
    arch, params, x, eps = _problem(size, "relu")
    cases = {"reference (float64)": _reference(arch, params, x, eps),
             "reference vjp only": _reference(arch, params, x, eps, vjp_only=True),
             "torch float64": _torch(arch, x, eps, torch.float64),
             "torch float32": _torch(arch, x, eps, torch.float32),
             "TorchBackend float64 (contract)": _backend(arch, params, x, eps)}
    report.add_timings(NAME, device, config, compare(cases, repeats=repeats, device=device))
    for other in ("torch float64", "torch float32", "TorchBackend float64 (contract)"):
        report.ratio(NAME, device, config, "reference (float64)", other)
    report.ratio(NAME, device, config, "reference vjp only", "torch float64")

    config = f"B={size['batch']} gelu"
    arch, params, x, eps = _problem(size, "gelu")
    cases = {"reference (float64)": _reference(arch, params, x, eps),
             "torch float64": _torch(arch, x, eps, torch.float64)}
    report.add_timings(NAME, device, config, compare(cases, repeats=max(1, repeats // 5), device=device))
    report.ratio(NAME, device, config, "reference (float64)", "torch float64", note="per-element math.erf")
