"""A jitted port to time `vaespec check --fixed-shapes` with: our `TorchBackend` whose encoder and decoder run
through `torch.compile(dynamic=False)`, so, like JAX's `jit` or XLA, it compiles once per architecture and
input shape (the recompile limit is lifted, so it never falls back to eager after a few shapes).

    vaespec check -j 1 --backend benchmarks.compiled_backend:backend --chapter vae --law _matches_reference \
        [--fixed-shapes]

Run from the source tree with `PYTHONPATH=.` (the `benchmarks` folder is not installed). On exit it prints
how many graphs this process compiled (`torch._dynamo`'s counters) to stderr, hence `-j 1`;
`benchmarks.compiled_backend:traced` counts them without generating code.
"""

from __future__ import annotations

import atexit
import sys

import torch

from vaespec.impl.backend import TorchBackend


class CompiledTorchBackend(TorchBackend):
    """`TorchBackend` (VAE chapter) with compiled encoder and decoder modules."""

    name = "torch-compiled"
    chapters = ("vae",)
    compiler = "inductor"

    def _modules(self, arch, params, part="all"):
        encoder, decoder = super()._modules(arch, params, part)
        compiled = self.__dict__.setdefault("_compiled", {})  # id(module) -> (module, its compiled wrapper)
        for m in (encoder, decoder):
            if m is not None and id(m) not in compiled:
                compiled[id(m)] = (m, torch.compile(m, dynamic=False, backend=self.compiler))
        return tuple(None if m is None else compiled[id(m)][1] for m in (encoder, decoder))


def _report() -> None:
    from torch._dynamo.utils import counters

    print(f"torch.compile: {counters['stats'].get('unique_graphs', 0)} graphs compiled, "
          f"{counters['stats'].get('calls_captured', 0)} calls captured", file=sys.stderr)


def backend(compiler: str = "inductor"):
    """The compiled backend in float32 on the CPU (`compiler`: torch.compile's backend)."""
    torch._dynamo.config.recompile_limit = 10**6
    torch._dynamo.config.accumulated_recompile_limit = 10**6
    atexit.register(_report)
    made = CompiledTorchBackend("cpu", torch.float32)
    made.compiler = compiler
    return made


def traced():
    """The same with torch.compile's "eager" backend: Dynamo traces and guards per shape exactly as for
    inductor, but generates no code, so the number of graphs (one per compile) is counted cheaply."""
    return backend("eager")
