"""The contract's activations as `nn.Module`s, for models written `nn.Sequential` style.

torch's own modules differ from the spec at places the laws check: `nn.Softplus` returns x itself beyond
its threshold 20 (the spec's formula differs there in the last bits) and its derivative at 0 is 1, not ½;
`nn.GELU()` is exact, `nn.LeakyReLU()` has the slope 0.01 and `nn.ELU()` α = 1, as the spec. `Activation`
runs `vaespec.impl.activations`' function of the name, so a module built with it computes the spec's
activation exactly where the laws look (kinks, formula switches).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..activations import get_activation


class Activation(nn.Module):
    """The contract's activation `name` (one of `vaespec.spec.architecture.ACTIVATIONS`) as a module.

    **Arguments** `name`: "relu", "gelu", "silu", "tanh", "sigmoid", "elu", "leaky_relu", "softplus" or
    "identity"; an unknown name is a `ConfigError`.

    `forward(x)` is the elementwise activation (`vaespec.impl.activations.get_activation(name)`).
    """

    def __init__(self, name: str):
        super().__init__()
        self.function = get_activation(name)
        self.name = name

    def forward(self, x: Tensor) -> Tensor:
        return self.function(x)

    def extra_repr(self) -> str:
        return repr(self.name)
