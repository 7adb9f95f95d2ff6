"""`vaespec check -j N`: laws spread over N worker processes, each checking every backend on its laws.

Each worker is a fresh interpreter (the "spawn" start method: torch's thread pools are not
fork-safe) that rebuilds the same backends from the same command-line options, so nothing but
law names and result rows crosses a process boundary. A law's verdicts do not depend on which
process ran it: every law runs its own Hypothesis test, seeded by the profile alone.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

_WORKER: dict = {}


def select_backends(specs: list[str], no_reference: bool, dtypes: list[str], devices: list[str],
                    limit: float | None = None) -> list[tuple]:
    """(backend, origin) pairs: the backends the options name (origin: the --backend spec, or None). A user's
    backends are wrapped in `check.guard.Guarded` (each call under `limit` seconds, None: none; no sys.exit)."""
    from .backends import default_backends, load_backends
    from .guard import guard_all

    pairs = ([(b, spec) for spec in specs for b in guard_all(load_backends(spec), limit)] if specs
             else [(b, None) for b in default_backends(include_reference=not no_reference)])
    return [(b, origin) for b, origin in pairs if (not dtypes or b.dtype in dtypes)
            and (not devices or str(b.device) in devices)]


def _init(options: dict, threads: int, modules: list[str]) -> None:
    import importlib

    import torch

    for name in modules:  # see run_parallel
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S110 (a module that imports only in its parent's context changes no verdict)
            pass

    from ..strategies.profiles import profile_settings

    torch.set_num_threads(threads)
    if options.get("fixed_shapes"):
        from ..strategies import sizes

        sizes.use_fixed_shapes(True)
    _WORKER["backends"] = [b for b, _ in select_backends(options["specs"], options["no_reference"],
                                                          options["dtypes"], options["devices"],
                                                          options.get("limit"))]
    _WORKER["settings"] = profile_settings(options["profile"])


def _run(law: str, skip: dict[int, str] | None = None) -> tuple[str, list[dict]]:
    from .runner import run_laws

    return law, [r.to_dict() for r in run_laws(law, _WORKER["backends"], _WORKER["settings"], skip)]


def run_parallel(laws: list[str], options: dict, jobs: int, expected: int, skips: dict | None = None):
    """Yield (law, [LawResult]) as the workers finish them; `expected` backends per law (a check that
    every worker built the same backends as this process); `skips`: law -> {backend index: reason}."""
    skips = skips or {}
    from .runner import LawResult

    threads = 1  # as `vaespec check` itself: tiny examples, and spinning OpenMP workers cost more than they give
    # Hypothesis mixes constants found in the source of loaded local modules (an editable install counts)
    # into what it draws, so a worker imports what this process has, to draw the same examples.
    modules = sorted(name for name, module in list(sys.modules.items())
                     if getattr(module, "__file__", None) and name != "__main__" and not name.startswith("_"))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init,
                             initargs=(options, threads, modules)) as pool:
        futures = [pool.submit(_run, law, skips.get(law)) for law in laws]
        for future in as_completed(futures):
            law, rows = future.result()
            if len(rows) != expected:
                raise RuntimeError(f"a worker built {len(rows)} backends for {law}, this process {expected}")
            yield law, [LawResult(**row) for row in rows]
