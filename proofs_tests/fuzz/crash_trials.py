"""SIGKILL a tiny training at random points, inside its checkpoint saves too, and resume every time.

    python -m vaespec.proofs_tests.fuzz.crash_trials --trials 200      # the larger run (CI runs 20)

Each trial starts a training (a forkserver child, torch imported once) and kills it with SIGKILL,
either after a random delay (anywhere in the run) or at a random file operation inside a save
(before or after one of its writes, fsyncs, mkdirs, renames or removals: `os.write`, `os.fsync`,
`os.mkdir`, `os.rename`, `shutil.rmtree`). The child logs each committed checkpoint (its epoch and
payload sha256) the moment its final rename returns. Then, in this process, a trial passes only if

- the checkpoint `resume` finds (`checkpoint.locate`) is the last one committed (or, for a timed kill,
  which may land between that rename and the log line, the next one), byte-identical to an
  uninterrupted run's checkpoint of that epoch; with none committed, resume says so and a fresh run starts;
- the resumed run (which takes the lock the killed one held) ends byte-identical to the uninterrupted run;
- nothing is left behind: no staging directory, no `checkpoint.old`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter

EPOCHS = 5
OPS = ("write", "fsync", "mkdir", "rename", "rmtree")


def _config(out: str, data: str, epochs: int = EPOCHS) -> dict:
    return {"data": data, "out": out, "latent_size": 2, "encoder_sizes": (8,), "decoder_sizes": (8,), "epochs": epochs,
            "batch_size": 16, "eval_particles": 2, "iwae_particles": 4, "plots": False, "threads": 1}


def _payload_sha(ck_dir: str) -> str:
    with open(os.path.join(ck_dir, "tensors.safetensors"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _victim(cfg: dict, kill_op: int, after: bool, log_path: str) -> None:
    """Train `cfg` from scratch; log commits; SIGKILL itself at save operation `kill_op` (0: never)."""
    from vaespec.impl.train import TrainConfig, checkpoint, train

    ck_dir = os.path.abspath(os.path.join(cfg["out"], "checkpoint"))
    # Open for the whole run, which ends in our own SIGKILL or the close() below; line-buffered and fsync'd,
    # so each commit is on disk before the next save op.
    log = open(log_path, "a", buffering=1)  # noqa: SIM115
    count, in_save = [0], [False]

    def wrap(module, name):
        original = getattr(module, name)

        def op(*args, **kwargs):
            if not in_save[0]:
                return original(*args, **kwargs)
            count[0] += 1
            if count[0] == kill_op and not after:
                os.kill(os.getpid(), signal.SIGKILL)
            result = original(*args, **kwargs)
            if name == "rename" and os.path.abspath(args[1]) == ck_dir:
                with open(os.path.join(ck_dir, "state.json")) as handle:
                    epoch = json.load(handle)["epoch"]
                log.write(f"commit {epoch} {_payload_sha(ck_dir)}\n")
                os.fsync(log.fileno())
            if count[0] == kill_op and after:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(module, name, op)

    for name in ("write", "fsync", "mkdir", "rename"):
        wrap(os, name)
    wrap(shutil, "rmtree")
    save = checkpoint.save

    def counted_save(*args, **kwargs):
        in_save[0] = True
        try:
            return save(*args, **kwargs)
        finally:
            in_save[0] = False
    checkpoint.save = counted_save
    train(TrainConfig(**cfg), progress=False, log=lambda *a, **k: None)
    log.write(f"ops {count[0]}\n")
    log.close()


def _log(path: str) -> tuple[list[tuple[int, str]], int | None]:
    commits, ops = [], None
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines()
        for line in lines:
            kind, *rest = line.split()
            if kind == "commit":
                commits.append((int(rest[0]), rest[1]))
            elif kind == "ops":
                ops = int(rest[0])
    return commits, ops


def _data(directory: str) -> str:
    import numpy as np

    rng = np.random.default_rng(7)
    path = os.path.join(directory, "tiny.npz")
    np.savez(path, x=(rng.random((60, 12)) < 0.5).astype(np.float32))
    return path


def run_trials(trials: int, seed: int = 0, workdir: str | None = None) -> dict:
    """Run `trials` kill-and-resume trials; return the counts (see the module docstring). Raises
    AssertionError naming the first trial that did not resume from the last good checkpoint."""
    from vaespec.impl.train import TrainConfig, checkpoint, train

    ctx = multiprocessing.get_context("forkserver")
    # torch._inductor: torch.use_deterministic_algorithms imports it on first call (seconds), once here for all
    ctx.set_forkserver_preload(["vaespec.impl.train", "torch._inductor", __name__])
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data = _data(tmp)
        # the uninterrupted run, twice, in children like the victims: every epoch's payload, the op count, and
        # (the second time, the forkserver started) the time a run takes
        runs = []
        for index in range(2):
            started, reference_log = time.perf_counter(), os.path.join(tmp, f"reference{index}.log")
            child = ctx.Process(target=_victim, args=(_config(os.path.join(tmp, f"reference{index}"), data), 0, False,
                                                      reference_log))
            child.start()
            child.join()
            assert child.exitcode == 0, f"the uninterrupted run failed (exit {child.exitcode})"
            runs.append((_log(reference_log), time.perf_counter() - started))
        ((commits, total_ops), _), (again, duration) = runs
        assert again[0] == commits, "two uninterrupted runs wrote different checkpoints"
        reference = dict(commits)
        assert sorted(reference) == list(range(1, EPOCHS + 1)) and total_ops, commits
        outcomes, resumed_from = Counter(), Counter()
        for trial in range(trials):
            out, log_path = os.path.join(tmp, f"trial{trial}"), os.path.join(tmp, f"trial{trial}.log")
            cfg = _config(out, data)
            timed = trial % 2 == 0
            kill_op, after = (0, False) if timed else (rng.randint(1, total_ops), rng.random() < 0.5)
            child = ctx.Process(target=_victim, args=(cfg, kill_op, after, log_path))
            child.start()
            if timed:
                time.sleep(rng.uniform(0.0, duration))
                try:
                    os.kill(child.pid, signal.SIGKILL)
                except ProcessLookupError:  # it had finished (the forkserver reaps it)
                    pass
            child.join()
            outcomes["killed at a random time" if timed else "killed inside a save"] += 1
            where = "after" if after else "before"
            what = f"trial {trial} (" + ("timed kill" if timed else f"kill {where} save op {kill_op}") + ")"
            if child.exitcode == 0:
                outcomes["finished before the kill"] += 1
            else:
                assert child.exitcode == -signal.SIGKILL, f"{what}: exit {child.exitcode}"
            logged = max((e for e, _ in _log(log_path)[0]), default=0)
            ck_dir = os.path.join(out, "checkpoint")
            try:
                found = checkpoint.read_state(ck_dir)["epoch"]
            except checkpoint.CheckpointError as error:
                assert "no checkpoint" in str(error), f"{what}: {error}"
                found = 0
            allowed = {logged, logged + 1} if timed or child.exitcode == 0 else {logged}
            assert found in allowed, f"{what}: resume finds epoch {found}, the last committed is {logged}"
            if found:
                assert _payload_sha(checkpoint.locate(ck_dir)) == reference[found], \
                    f"{what}: the checkpoint of epoch {found} differs from the uninterrupted run's"
            if checkpoint.locate(ck_dir) != ck_dir:
                outcomes["resumed from checkpoint.old"] += 1
            train(TrainConfig(**cfg), resume=bool(found), progress=False, log=lambda *a, **k: None)
            assert _payload_sha(ck_dir) == reference[EPOCHS], f"{what}: the resumed run ends elsewhere"
            left = sorted(set(os.listdir(out)) - {"checkpoint", "metrics.json", checkpoint.LOCK})
            assert not left, f"{what}: left behind {left}"
            outcomes["resumed, byte-identical"] += 1
            resumed_from[found] += 1
            shutil.rmtree(out)
    return {"trials": trials, "save_ops_per_run": total_ops, "run_seconds": round(duration, 3),
            "outcomes": dict(outcomes), "resumed_from_epoch": dict(sorted(resumed_from.items()))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaespec.proofs_tests.fuzz.crash_trials",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    summary = run_trials(args.trials, args.seed)
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - started, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
