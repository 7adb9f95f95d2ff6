"""A dependency-free progress bar for `vaespec train`.

On a terminal (or with `enabled=True`) it redraws one line on stderr,
`epoch 3/40 [########------------] 12/23 loss 24.81`; otherwise it stays silent and the
trainer's one line per epoch on stdout is the record.
"""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """A bar over the steps of one epoch. **Arguments** `epochs`, `steps_per_epoch`; `enabled`
    (None: only when stderr is a terminal); `stream` (default stderr); `width` of the bar."""

    def __init__(self, epochs: int, steps_per_epoch: int, enabled: bool | None = None, stream: TextIO | None = None,
                 width: int = 24):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.epochs, self.steps, self.width = epochs, steps_per_epoch, width

    def update(self, epoch: int, step_in_epoch: int, loss: float) -> None:
        """Redraw for `step_in_epoch` (1-based) of `epoch` (1-based) with the latest `loss`."""
        if not self.enabled:
            return
        filled = self.width * step_in_epoch // max(self.steps, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\repoch {epoch}/{self.epochs} [{bar}] {step_in_epoch}/{self.steps} loss {loss:.4g}")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar (before a line is printed under it)."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
