"""`explicit_noise(eps)`: the contract's explicit noise served to code that samples internally.

Library code often draws its noise itself (`eps = torch.randn_like(std)`). The contract passes the noise
as an argument instead, so a check must hand that very ε to the library's draw and make sure nothing else
is drawn behind its back. `explicit_noise` is a `torch.overrides.TorchFunctionMode`: inside it,

- the first `torch.randn_like(t)`, `torch.randn(*size)` or `t.normal_(mean, std)` receives ε (shape and
  dtype must match what the call asks for: `t.shape`/`t.dtype`, `size`/`dtype`; `normal_` fills
  `mean + std · ε` into `t`), a copy on the requested device;
- any other draw (`torch.rand`, `randint`, `randperm`, `bernoulli`, `multinomial`, `normal`, `poisson`,
  `Tensor.uniform_`, `Tensor.exponential_`, dropout in training mode, …) and any second draw raise
  `HiddenDrawError` naming the call. A Python-level torch function (`torch.nn.init.kaiming_uniform_`,
  `F.gumbel_softmax`) is seen by the mode as one call: it is refused when it advances torch's global
  generator.

`served` counts the draws that received ε (0 or 1).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from vaespec.spec.errors import DomainError, DTypeError, ShapeError, VaespecError, describe

# Draws that can receive the contract's standard normal ε.
SERVED = ("randn", "randn_like", "normal_")
# Every other draw torch offers (functions, Tensor methods, and the functional layers that sample when training).
REFUSED = ("rand", "rand_like", "randint", "randint_like", "randperm", "bernoulli", "multinomial", "normal",
           "poisson", "binomial", "rrelu", "rrelu_", "_standard_gamma", "_sample_dirichlet", "uniform_",
           "random_", "bernoulli_", "exponential_", "geometric_", "log_normal_", "cauchy_")
DROPOUTS = ("dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d")


class HiddenDrawError(VaespecError, RuntimeError):
    """Code run under `explicit_noise` drew randomness the contract does not pass (or drew ε twice)."""


def _call_name(func: Any) -> str:
    """`Tensor.normal_`, `torch.nn.functional.dropout`, `torch.nn.init.kaiming_uniform_` or `torch.randn`:
    how the error names a call."""
    name = getattr(func, "__name__", repr(func))
    if getattr(Tensor, name, None) is func:
        return f"Tensor.{name}"
    if inspect.isfunction(func):
        return f"{func.__module__}.{func.__qualname__}"
    return f"torch.{name}"


def _generator_states() -> list[Tensor]:
    """The global generators' states: the CPU's, and each CUDA device's once CUDA is initialised."""
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _dropout_draws(func: Any, args: tuple, kwargs: dict) -> bool:
    """Whether a functional dropout call samples: training mode and p > 0 (in eval mode it is the identity)."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return True
    bound.apply_defaults()
    return bool(bound.arguments.get("training", True)) and float(bound.arguments.get("p", 0.5)) > 0


def _requested(name: str, args: tuple, kwargs: dict) -> tuple[tuple[int, ...], torch.dtype | None, Any]:
    """(shape, dtype, device) a served draw asks for."""
    if name == "randn_like":
        like = args[0]
        return tuple(like.shape), kwargs.get("dtype") or like.dtype, kwargs.get("device") or like.device
    if name == "normal_":
        return tuple(args[0].shape), args[0].dtype, args[0].device
    size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
    size = kwargs.get("size", size)
    return tuple(int(s) for s in size), kwargs.get("dtype") or torch.get_default_dtype(), kwargs.get("device")


class explicit_noise(TorchFunctionMode):
    """Serve `eps` to the one standard normal draw of the code run inside; refuse every other draw.

    **Arguments**
    - `eps`: the contract's noise, a tensor (its dtype and device are those the code computes in); None
      when the contract passes no noise: then every draw is refused.
    - `label`: what the noise is (or, with `eps=None`, the call that takes none), for messages.

    **Raises** (inside the block) `HiddenDrawError` naming the call, for a draw other than `torch.randn_like`,
    `torch.randn` or `Tensor.normal_`, or for a second draw; `ShapeError` / `DTypeError` when the draw asks for
    another shape or dtype than ε's.

    **Attributes** `served`: how many draws received ε (0 or 1).
    """

    def __init__(self, eps: Tensor | None, label: str = "eps"):
        super().__init__()
        if eps is not None and (not isinstance(eps, Tensor) or not eps.is_floating_point()):
            raise DTypeError(f"{label}: expected a floating-point tensor to serve as the noise, got {describe(eps)}")
        self.eps, self.label, self.served = None if eps is None else eps.detach(), label, 0
        self._first = ""

    def _only(self) -> str:
        return f"the contract passes no noise to {self.label}" if self.eps is None else \
            f"the contract's only randomness is {self.label}"

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in DROPOUTS and getattr(F, name, None) is func and _dropout_draws(func, args, kwargs):
            raise HiddenDrawError(f"{_call_name(func)}: a hidden draw (dropout in training mode) under "
                                  f"explicit_noise; {self._only()}")
        if name in REFUSED and (getattr(torch, name, None) is func or getattr(Tensor, name, None) is func
                                or getattr(F, name, None) is func):
            raise HiddenDrawError(f"{_call_name(func)}: a hidden draw under explicit_noise; {self._only()}"
                                  + ("" if self.eps is None else ", served to one torch.randn_like / torch.randn / "
                                     "Tensor.normal_"))
        if name in SERVED and (getattr(torch, name, None) is func or getattr(Tensor, name, None) is func):
            return self._serve(func, name, args, kwargs)
        if not inspect.isfunction(func):  # a builtin: any draw among them is named above
            return func(*args, **kwargs)
        # A Python-level torch function (nn.init.*, F.gumbel_softmax, …) runs its inner calls past this mode:
        # a draw inside it shows as an advanced global generator.
        before = _generator_states()
        result = func(*args, **kwargs)
        if any(not torch.equal(a, b) for a, b in zip(before, _generator_states())):
            raise HiddenDrawError(f"{_call_name(func)}: a hidden draw under explicit_noise (it advanced torch's "
                                  f"global generator); {self._only()}")
        return result

    def _serve(self, func: Any, name: str, args: tuple, kwargs: dict) -> Tensor:
        call = _call_name(func)
        if self.eps is None:
            raise HiddenDrawError(f"{call}: a hidden draw under explicit_noise; {self._only()}")
        if self.served:
            raise HiddenDrawError(f"{call}: a second draw under explicit_noise; {self.label} was already served to "
                                  f"{self._first}, and the contract passes no other noise")
        shape, dtype, device = _requested(name, args, kwargs)
        if shape != tuple(self.eps.shape):
            raise ShapeError(f"{self.label}: {call} asks for shape {shape}, the contract's {self.label} has shape "
                             f"{tuple(self.eps.shape)}")
        if dtype != self.eps.dtype:
            raise DTypeError(f"{self.label}: {call} asks for {dtype}, the contract's {self.label} is {self.eps.dtype}")
        self.served, self._first = 1, call
        noise = self.eps.to(device=device if device is not None else self.eps.device, copy=True)
        if name != "normal_":
            return noise
        target = args[0]
        mean = kwargs.get("mean", args[1] if len(args) > 1 else 0.0)
        std = kwargs.get("std", args[2] if len(args) > 2 else 1.0)
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise DomainError(f"{call}: mean and std must be finite numbers, got {mean!r} and {std!r}")
        with torch.no_grad():
            return target.copy_(noise * std + mean)
