"""Checkpoints as safetensors plus JSON: never a pickle, checksummed, crash-safe, one writer at a time.

A checkpoint is a directory holding
- `tensors.safetensors`: the model's state (`model.<name>`), the likelihood's (`likelihood.<name>`)
  and the optimizer's per-parameter state (`optimizer.<index>.<name>`, e.g. Adam's moments and step);
- `state.json`: the training configuration, the architecture, the epoch and step reached, the loss
  history, the optimizer's hyper-parameters, the format version, the size and sha256 of
  `tensors.safetensors`, and (`"sha256"`) the sha256 of its own canonical JSON without that key.

`save` writes both files into a staging directory next to the checkpoint (fsynced), then swaps it in
with two renames: `checkpoint` → `checkpoint.old`, staging → `checkpoint`, then removes
`checkpoint.old`. A crash at any point leaves the last good checkpoint in `checkpoint/` or, between the
renames, in `checkpoint.old/`, where `locate` finds it; the next save removes a stale `.old` and
staging leftovers (only its own: directories named `.checkpoint-staging-*` holding only checkpoint
files). A failed write (a full disk) removes the staging directory and raises `CheckpointError`; the
previous checkpoint is untouched. Weights that are not finite are never saved, and never loaded.

`load` verifies `state.json`'s checksum and structure and the payload's size and sha256 before
parsing anything, so a bit flip or truncation is refused naming the file. `lock(out)` holds an
exclusive `flock` on `OUT/.vaespec-train.lock` for a run: a second run into the same `--out` is
refused; the kernel drops the lock when its holder dies (even by SIGKILL), so no lock goes stale.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator

import torch
from torch import nn

from vaespec.spec.errors import ConfigError
from vaespec.spec.files import json_depth, read_inside

FORMAT = "vaespec-train-checkpoint/2"
TENSORS, STATE = "tensors.safetensors", "state.json"
OLD = ".old"
LOCK = ".vaespec-train.lock"
MAX_STATE_BYTES = 64 << 20
MAX_TENSORS_BYTES = 16 << 30
MAX_DEPTH = 16  # state.json nests 5 deep


class CheckpointError(ConfigError):
    """A checkpoint is missing, unreadable, corrupt, or was written for another model; or cannot be written."""


def _safetensors():
    """safetensors.torch, imported on first use: `vaespec check` runs without the train extra."""
    try:
        import safetensors.torch
    except ImportError as error:
        raise ConfigError("checkpoints need safetensors: pip install -c constraints.txt 'vaespec[train]'") from error
    return safetensors.torch


def _flatten(model: nn.Module, likelihood: nn.Module | None, optimizer: torch.optim.Optimizer
             ) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if likelihood is not None:
        tensors.update({f"likelihood.{k}": v for k, v in likelihood.state_dict().items()})
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
    # safetensors wants contiguous, unshared CPU tensors
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def canonical_json(state: dict) -> bytes:
    """The bytes `state.json`'s "sha256" digests: the state without that key, as sorted, compact JSON."""
    return json.dumps({k: v for k, v in state.items() if k != "sha256"}, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be fsynced
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _ours(path: str) -> bool:
    """Whether `path` is a directory a save made: a real directory holding only checkpoint files."""
    return _is_real_dir(path) and all(name in (TENSORS, STATE) and not os.path.islink(os.path.join(path, name))
                                      and os.path.isfile(os.path.join(path, name)) for name in os.listdir(path))


def _staging_prefix(directory: str) -> str:
    return f".{os.path.basename(directory)}-staging-"


def clean_leftovers(directory: str) -> None:
    """Remove what a crashed save of `directory` left: staging directories (and a stale `.old` if the
    checkpoint itself is in place). Only directories `_ours` says a save made."""
    parent = os.path.dirname(directory)
    for name in os.listdir(parent):
        path = os.path.join(parent, name)
        if name.startswith(_staging_prefix(directory)) and _ours(path):
            shutil.rmtree(path)
    if _ours(directory) and os.path.isfile(os.path.join(directory, STATE)) and _ours(directory + OLD):
        shutil.rmtree(directory + OLD)


def check_target(directory: str) -> None:
    """Refuse to save over `directory` (or `directory.old`) unless it is a checkpoint directory a save made:
    a user's file, link or folder of other files there is never moved or removed."""
    for existing in (directory, directory + OLD):
        if os.path.lexists(existing) and not _ours(existing):
            raise CheckpointError(f"checkpoint: {existing!r} is not a checkpoint directory vaespec wrote "
                                  "(a file, a link, or other files inside); move it away")


def save(directory: str, model: nn.Module, likelihood: nn.Module | None, optimizer: torch.optim.Optimizer,
         state: dict) -> None:
    """Write the checkpoint to `directory` atomically (see the module docstring).

    **Arguments** `model`, `likelihood` (or None), `optimizer`: the live objects; `state`: JSON-able
    dict (config, epoch, step, history, …). **Raises** `CheckpointError` if a weight is not finite or the
    checkpoint cannot be written (the previous one is kept).
    """
    directory = os.path.abspath(directory)
    tensors = _flatten(model, likelihood, optimizer)
    bad = _non_finite({k: v for k, v in tensors.items() if not k.startswith("optimizer.")})
    if bad:
        raise CheckpointError(f"checkpoint: not saved: {bad[0]} holds NaN or Inf ({len(bad)} tensors); the last "
                              f"good checkpoint stays in {directory}")
    payload = _safetensors().save(tensors, metadata={"format": FORMAT})
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
              for g in optimizer.state_dict()["param_groups"]]
    body = {"format": FORMAT, **state, "optimizer_param_groups": groups,
            "tensors": {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}}
    body["sha256"] = hashlib.sha256(canonical_json(body)).hexdigest()
    parent = os.path.dirname(directory)
    staging = os.path.join(parent, f"{_staging_prefix(directory)}{uuid.uuid4().hex}")
    check_target(directory)
    try:
        os.makedirs(parent, exist_ok=True)
        clean_leftovers(directory)
        os.mkdir(staging)
        _write(os.path.join(staging, TENSORS), payload)
        _write(os.path.join(staging, STATE), json.dumps(body, indent=1).encode("utf-8"))
        _fsync_dir(staging)
        if os.path.exists(directory):
            if os.path.exists(directory + OLD):  # stale: `directory` is complete, it got there by a rename
                shutil.rmtree(directory + OLD)
            os.rename(directory, directory + OLD)
        os.rename(staging, directory)
        _fsync_dir(parent)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        kept = locate(directory)
        raise CheckpointError(f"checkpoint: cannot write {error.filename or staging!r} ({error.strerror or error}); "
                              + (f"the previous checkpoint is kept in {kept!r}" if os.path.exists(kept)
                                 else "no checkpoint has been written yet")) from None
    shutil.rmtree(directory + OLD, ignore_errors=True)


def locate(directory: str) -> str:
    """Where the last good checkpoint of `directory` is: `directory`, or `directory.old` when a save
    crashed between its renames (no `directory/state.json`, but `directory.old/state.json`)."""
    if not os.path.lexists(os.path.join(directory, STATE)) and os.path.isfile(os.path.join(directory + OLD, STATE)):
        return directory + OLD
    return directory


def _is_int(value: object, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _structure_errors(state: dict) -> list[str]:
    """What is wrong with a parsed state.json's keys and types (the checksum only proves who wrote it)."""
    problems = []
    for key, test, what in (("config", lambda v: isinstance(v, dict), "an object"),
                            ("epoch", _is_int, "an integer ≥ 0"), ("step", _is_int, "an integer ≥ 0"),
                            ("features", lambda v: _is_int(v, 1), "an integer ≥ 1"),
                            ("history", lambda v: isinstance(v, dict), "an object"),
                            ("optimizer_param_groups", lambda v: isinstance(v, list) and bool(v)
                             and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                     and all(_is_int(p) for p in g["params"]) for g in v),
                             "a list of parameter groups with integer 'params'"),
                            ("tensors", lambda v: isinstance(v, dict) and isinstance(v.get("sha256"), str)
                             and _is_int(v.get("bytes")), "an object with 'sha256' and 'bytes'")):
        if key not in state:
            problems.append(f"missing {key!r}")
        elif not test(state[key]):
            problems.append(f"{key!r} is {type(state[key]).__name__} {str(state[key])[:60]}; expected {what}")
    history = state.get("history")
    if isinstance(history, dict):
        losses, epochs = history.get("step_losses"), history.get("epochs")
        if not isinstance(losses, list) or not all(_is_number(v) for v in losses):
            problems.append("'history.step_losses' is not a list of numbers")
        if not isinstance(epochs, list) or not all(isinstance(e, dict) for e in epochs):
            problems.append("'history.epochs' is not a list of objects")
    return problems


def _read(directory: str, name: str, limit: int) -> bytes:
    """`directory`/`name`, read inside `directory`'s parent (the run's --out): no link is followed, at the
    checkpoint directory or the file, no FIFO or device opened, no more than `limit` bytes read."""
    parent, base = os.path.split(os.path.abspath(directory))
    try:
        return read_inside(parent, f"{base}/{name}", limit, CheckpointError)
    except CheckpointError as error:
        raise CheckpointError(f"resume: {error}") from None


def read_state(directory: str) -> dict:
    """The JSON state of the last good checkpoint of `directory` (see `locate`), its checksum and structure
    verified. **Raises** `CheckpointError` naming the file."""
    path = os.path.join(locate(directory), STATE)
    if not os.path.lexists(path):
        raise CheckpointError(f"resume: no checkpoint at {directory!r} (missing {STATE})")
    data = _read(locate(directory), STATE, MAX_STATE_BYTES)
    try:
        state = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise CheckpointError(f"resume: {path!r} is not readable JSON ({str(error)[:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"resume: {path!r} holds a JSON {type(state).__name__}, expected an object")
    if state.get("format") != FORMAT:
        raise CheckpointError(f"resume: {path!r} has format {str(state.get('format'))[:60]!r}, expected {FORMAT!r}")
    if json_depth(state, MAX_DEPTH) > MAX_DEPTH:
        raise CheckpointError(f"resume: {path!r} is nested deeper than {MAX_DEPTH} levels")
    try:
        actual = hashlib.sha256(canonical_json(state)).hexdigest()
    except ValueError:  # NaN or Inf in the JSON
        actual = "(not canonical JSON)"
    if state.get("sha256") != actual:
        raise CheckpointError(f"resume: {path!r} fails its checksum (sha256 {actual} ≠ recorded "
                              f"{str(state.get('sha256'))[:64]}): corrupt or edited")
    problems = _structure_errors(state)
    if problems:
        raise CheckpointError(f"resume: {path!r}: " + "; ".join(problems[:3]))
    return state


def load(directory: str, model: nn.Module, likelihood: nn.Module | None, optimizer: torch.optim.Optimizer,
         device: torch.device | str) -> dict:
    """Load the last good checkpoint of `directory` into the live objects (made with the saved config);
    return its state. **Raises** `CheckpointError` naming the file: corrupt, not finite, another model."""
    state = read_state(directory)
    path = os.path.join(locate(directory), TENSORS)
    record = state["tensors"]
    if record["bytes"] > MAX_TENSORS_BYTES:
        raise CheckpointError(f"resume: {path!r}: {STATE} records {record['bytes']} bytes, over {MAX_TENSORS_BYTES}")
    payload = _read(locate(directory), TENSORS, record["bytes"])
    if len(payload) != record["bytes"] or hashlib.sha256(payload).hexdigest() != record["sha256"]:
        raise CheckpointError(f"resume: {path!r}: {len(payload)} bytes with sha256 "
                              f"{hashlib.sha256(payload).hexdigest()}"
                              f"; {STATE} records {record['bytes']} bytes, {record['sha256'][:64]} (corrupt)")
    try:
        tensors = {k: v.to(device) for k, v in _safetensors().load(payload).items()}
    except Exception as error:  # noqa: BLE001  (safetensors raises its own SafetensorError, among others)
        raise CheckpointError(f"resume: cannot read {path!r} ({type(error).__name__}: {str(error)[:200]})") from None
    bad = _non_finite({k: v for k, v in tensors.items() if not k.startswith("optimizer.")})
    if bad:
        raise CheckpointError(f"resume: {path!r} holds NaN or Inf in {bad[0]} ({len(bad)} tensors): not a good "
                              "checkpoint")
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        if likelihood is not None:
            likelihood.load_state_dict({k[len("likelihood."):]: v for k, v in tensors.items()
                                        if k.startswith("likelihood.")})
        per_param: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, name = key.split(".", 2)
                per_param.setdefault(int(index), {})[name] = value.to("cpu") if name == "step" else value
        groups = [{**g, "betas": tuple(g["betas"])} if isinstance(g.get("betas"), list) else g
                  for g in state["optimizer_param_groups"]]
        _check_groups(groups, optimizer.state_dict()["param_groups"])
        optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise CheckpointError(f"resume: the checkpoint in {locate(directory)!r} does not fit this model "
                              f"({type(error).__name__}: {str(error)[:200]})") from None
    return state


def _check_groups(saved: list[dict], live: list[dict]) -> None:
    """`vaespec train` always builds Adam with its defaults: a saved group must match the live one in every
    hyper-parameter but the learning rate (a forged `capturable` or `betas` would fail only at the first step)."""
    if len(saved) != len(live):
        raise ValueError(f"{len(saved)} parameter groups saved, {len(live)} in the optimizer")
    for mine, theirs in zip(saved, live):
        differ = sorted(k for k in set(mine) | set(theirs) if k not in ("lr", "params")
                        and (k not in mine or k not in theirs or mine[k] != theirs[k]
                             or type(mine[k]) is not type(theirs[k])))
        if differ:
            raise ValueError(f"optimizer hyper-parameters {differ[:5]} differ from vaespec's Adam")
        if mine["params"] != theirs["params"] or not _is_number(mine.get("lr")):
            raise ValueError("optimizer parameter indices or learning rate are not this model's")


@contextlib.contextmanager
def lock(out: str) -> Iterator[None]:
    """Hold an exclusive lock on `out` for a run (see the module docstring); `CheckpointError` if another
    process holds it."""
    import fcntl

    path = os.path.join(out, LOCK)
    try:
        os.makedirs(out, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as error:
        raise CheckpointError(f"--out: cannot create {error.filename or path!r} ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"--out: {path!r} is not a regular file")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"--out: cannot lock {path!r} ({error.strerror})") from None
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            raise CheckpointError(f"--out: {out!r} is in use by another vaespec train (pid {holder}); wait for it "
                                  "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
