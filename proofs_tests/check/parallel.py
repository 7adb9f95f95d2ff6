"""`vaespec check -j N`: laws spread over N processes, each checking every backend on its laws: this one
and N − 1 workers (a worker's start-up, importing torch and building the backends, costs seconds that
this process has already spent). The workers are started (`Workers`) before this process imports torch,
so the two imports overlap; a worker then waits for this process's options.

Each worker is a fresh interpreter (the "spawn" start method: torch's thread pools are not
fork-safe) that rebuilds the same backends from the same command-line options, so nothing but
law names and result rows crosses a process boundary. A law's verdicts do not depend on which
process ran it: every law runs its own Hypothesis test, seeded by the profile alone, and the profiles' draws
do not depend on the modules a process has loaded (`strategies.profiles.draws_ignore_loaded_modules`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor

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


class Workers:
    """`count` worker processes started before this process has imported torch or built its backends, so the
    two start-ups overlap; each worker's set-up (`_init`) waits until `configure` hands it this process's
    options. `close` ends them whether or not they were ever configured."""

    def __init__(self, count: int):
        context = multiprocessing.get_context("spawn")
        self.count, self._setup, self._configured = count, context.Queue(), False
        self.pool = ProcessPoolExecutor(count, mp_context=context, initializer=_init_when_told,
                                        initargs=(self._setup,))
        for _ in range(count):  # the pool spawns its processes on demand: ask for them now
            self.pool.submit(int)

    def configure(self, options: dict, threads: int) -> None:
        for _ in range(self.count):
            self._setup.put((options, threads))
        self._configured = True

    def close(self) -> None:
        if not self._configured:  # a worker still waiting for its set-up is told to stop
            for _ in range(self.count):
                self._setup.put(None)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _init_when_told(setup) -> None:
    import torch  # noqa: F401  (the slow import, made while the parent makes its own)

    told = setup.get()
    if told is not None:  # None: the parent stopped before any law (an error); the pool is being shut down
        _init(*told)


def _init(options: dict, threads: int) -> None:
    import torch

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


def run_parallel(laws: list[str], options: dict, jobs: int, expected: int, skips: dict | None = None,
                 local: tuple | None = None, workers: Workers | None = None):
    """Yield (law, [LawResult]) as the processes finish them; `expected` backends per law (a check that
    every worker built the same backends as this process); `skips`: law -> {backend index: reason};
    `local`: (backends, settings) of this process, which then checks laws too, beside `jobs − 1` workers;
    `workers`: those workers, started early (`Workers`; configured and used here, closed by the caller)."""
    skips = skips or {}
    from .runner import LawResult, run_laws

    threads = 1  # as `vaespec check` itself: tiny examples, and spinning OpenMP workers cost more than they give
    started = workers
    workers = max(1, jobs - 1) if local is not None else jobs
    if started is not None and started.count != workers:
        raise RuntimeError(f"{started.count} workers were started, {workers} are needed")
    # One queue of laws, taken from by this process between its own laws and, for the workers, by a feeder
    # thread that keeps each worker two laws ahead whatever this process is doing (so neither waits on the
    # other until the queue is empty).
    pending, finished = deque(laws), queue.Queue()
    slots, stop = threading.Semaphore(2 * workers), threading.Event()

    def take() -> str | None:
        try:
            return pending.popleft()
        except IndexError:
            return None

    def done(future) -> None:
        finished.put(future)
        slots.release()

    def feed(pool) -> None:
        while slots.acquire() and not stop.is_set():
            law = take()
            if law is None:
                return
            pool.submit(_run, law, skips.get(law)).add_done_callback(done)

    def result(future):
        law, rows = future.result()
        if len(rows) != expected:
            raise RuntimeError(f"a worker built {len(rows)} backends for {law}, this process {expected}")
        return law, [LawResult(**row) for row in rows]

    if started is not None:
        started.configure(options, threads)
        pool = started.pool
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                                   initargs=(options, threads))
    with contextlib.nullcontext(pool) if started is not None else pool:
        feeder = threading.Thread(target=feed, args=(pool,), name="vaespec-check-feeder", daemon=True)
        feeder.start()
        try:
            for _ in range(len(laws)):
                law = take() if local is not None and finished.empty() else None
                if law is None:
                    yield result(finished.get())
                else:
                    yield law, run_laws(law, local[0], local[1], skips.get(law))
        finally:
            stop.set()
            slots.release()  # the feeder, if it waits for a slot, wakes, sees stop and returns
            feeder.join()
            pool.shutdown(cancel_futures=True)
