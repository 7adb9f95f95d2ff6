"""A port's bodies, registered under the contract function's name (`vaespec.spec.contract.FUNCTIONS`)."""

from __future__ import annotations

from collections.abc import Callable

from vaespec.spec.contract import FUNCTIONS
from vaespec.spec.errors import ConfigError


class Bodies(dict):
    """{function name: body}; `add(name, body)` registers one, refusing a name the contract does not declare
    (a typo would otherwise leave the function unimplemented and the body unused)."""

    def add(self, function: str, body: Callable) -> Callable:
        if function not in FUNCTIONS:
            raise ConfigError(f"function: expected a contract function (one of {sorted(FUNCTIONS)}), got {function!r}")
        if function in self:
            raise ConfigError(f"function: {function!r} already has a body")
        self[function] = body
        return body
