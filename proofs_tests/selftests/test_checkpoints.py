"""Checkpoints under crashes, corruption, full disks and concurrent runs: the training repros of issue 14.

Every case is a tiny run (60 examples of 12 features, a network of width 8), so the file takes
seconds; the SIGKILL trials run `VAESPEC_CRASH_TRIALS` (default 20) trials in forkserver children
(`vaespec.proofs_tests.fuzz.crash_trials`; `python -m vaespec.proofs_tests.fuzz.crash_trials --trials N` for more).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("safetensors")
pytest.importorskip("sklearn")

from safetensors.torch import load_file, save_file

from vaespec.impl.train import TrainConfig, TrainingDiverged, checkpoint, train
from vaespec.proofs_tests.cli import main


@pytest.fixture
def data_file(tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=(rng.random((60, 12)) < 0.5).astype(np.float32))
    return str(path)


TINY = ["--latent-size", "2", "--encoder-sizes", "8", "--decoder-sizes", "8", "--batch-size", "16",
        "--eval-particles", "2", "--iwae-particles", "4", "--no-plots", "--progress", "never"]


def _cfg(data, out, epochs=2) -> TrainConfig:
    return TrainConfig(data=data, out=str(out), latent_size=2, encoder_sizes=(8,), decoder_sizes=(8,), epochs=epochs,
                       batch_size=16, eval_particles=2, iwae_particles=4, plots=False)


def _quiet(*_args, **_kwargs):
    pass


def _epoch(out) -> int:
    return json.loads((out / "checkpoint" / "state.json").read_text())["epoch"]


def _resume(capsys, data, out, epochs=3) -> tuple[int, str, str]:
    code = main(["train", "--resume", "--out", str(out), "--epochs", str(epochs), "--progress", "never"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _resign(ck_dir, state: dict) -> None:
    """Rewrite state.json with a valid checksum: only its structure checks can refuse it."""
    state = {**state, "sha256": hashlib.sha256(checkpoint.canonical_json(state)).hexdigest()}
    (ck_dir / "state.json").write_text(json.dumps(state))


def test_sigkill_at_random_points_and_inside_saves_always_resumes_from_the_last_good_checkpoint(tmp_path):
    from vaespec.proofs_tests.fuzz.crash_trials import run_trials

    trials = int(os.environ.get("VAESPEC_CRASH_TRIALS", "20"))
    summary = run_trials(trials, seed=0, workdir=str(tmp_path))
    assert summary["outcomes"]["resumed, byte-identical"] == trials >= 20
    assert summary["outcomes"]["killed inside a save"] >= trials // 2


def test_a_stale_checkpoint_old_does_not_break_later_saves(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    shutil.copytree(out / "checkpoint", out / "checkpoint.old")  # left by a crash after the second rename
    code, _, err = _resume(capsys, data_file, out)
    assert (code, err) == (0, "") and _epoch(out) == 3 and not (out / "checkpoint.old").exists()


def test_a_crash_between_the_renames_resumes_from_checkpoint_old(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    expected = load_file(out / "checkpoint" / "tensors.safetensors")
    os.rename(out / "checkpoint", out / "checkpoint.old")  # the first rename done, the second not
    os.mkdir(out / ".checkpoint-staging-0123")  # and the staging directory it was about to move
    (out / ".checkpoint-staging-0123" / "tensors.safetensors").write_bytes(b"half")
    state = checkpoint.read_state(str(out / "checkpoint"))
    assert state["epoch"] == 2
    code, printed, _ = _resume(capsys, data_file, out)
    assert code == 0 and "resuming from" in printed and "checkpoint.old" in printed and "at epoch 2" in printed
    assert sorted(os.listdir(out)) == [".vaespec-train.lock", "checkpoint", "metrics.json"]
    whole = tmp_path / "whole"
    train(_cfg(data_file, whole, epochs=3), log=_quiet)
    a = load_file(whole / "checkpoint" / "tensors.safetensors")
    b = load_file(out / "checkpoint" / "tensors.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a) and expected.keys() == a.keys()


@pytest.mark.parametrize("name", ["checkpoint", "checkpoint.old"])
def test_a_users_file_where_the_checkpoint_goes_is_refused_before_training(data_file, tmp_path, capsys, name):
    out = tmp_path / "run"
    out.mkdir()
    (out / name).write_text("mine")
    code = main(["train", "--data", data_file, "--out", str(out), "--epochs", "1", *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "is not a checkpoint directory vaespec wrote" in err and (out / name).read_text() == "mine"
    assert "metrics.json" not in os.listdir(out)


def test_only_our_own_staging_directories_are_removed(data_file, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    mine = out / ".checkpoint-staging-mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("a user's file")
    train(_cfg(data_file, out), log=_quiet)
    assert (mine / "notes.txt").read_text() == "a user's file"


@pytest.mark.parametrize("name", ["tensors.safetensors", "state.json"])
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_bit_flips_are_refused_naming_the_file(data_file, tmp_path, capsys, name, where):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    path = out / "checkpoint" / name
    data = bytearray(path.read_bytes())
    data[int(where * len(data))] ^= 0x04
    path.write_bytes(bytes(data))
    code, _, err = _resume(capsys, data_file, out)
    assert code == 2 and err.count("\n") == 1 and str(path) in err, err


def test_a_truncated_payload_is_refused(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    path = out / "checkpoint" / "tensors.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = _resume(capsys, data_file, out)
    assert code == 2 and "tensors.safetensors" in err and "corrupt" in err


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(data_file, tmp_path, capsys, monkeypatch):
    """Injected ENOSPC at the checkpoint's write (in process: no root, no real full disk needed)."""
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    before = (out / "checkpoint" / "tensors.safetensors").read_bytes()

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(checkpoint, "_write", full)
    code, _, err = _resume(capsys, data_file, out)
    assert code == 2 and err.count("\n") == 1
    assert "No space left on device" in err and "previous checkpoint is kept" in err
    assert (out / "checkpoint" / "tensors.safetensors").read_bytes() == before and _epoch(out) == 2
    assert sorted(os.listdir(out)) == [".vaespec-train.lock", "checkpoint", "metrics.json"]


def test_a_file_size_limit_in_a_real_process_is_one_line_and_keeps_the_previous_checkpoint(data_file, tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG), as a full disk would with ENOSPC."""
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    before = (out / "checkpoint" / "tensors.safetensors").read_bytes()
    limit = len(before) // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    result = subprocess.run([sys.executable, "-m", "vaespec.proofs_tests.cli", "train", "--resume", "--out", str(out),
                             "--epochs", "3", "--progress", "never"], capture_output=True, text=True,
                            preexec_fn=limited, timeout=300, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "File too large" in result.stderr and "previous checkpoint is kept" in result.stderr
    assert (out / "checkpoint" / "tensors.safetensors").read_bytes() == before and _epoch(out) == 2
    assert not [n for n in os.listdir(out) if "staging" in n]


def test_two_trainings_into_one_out_are_refused_and_a_dead_holders_lock_is_not(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    with checkpoint.lock(str(out)):
        code = main(["train", "--data", data_file, "--out", str(out), "--epochs", "1", *TINY])
        err = capsys.readouterr().err
        assert code == 2 and f"is in use by another vaespec train (pid {os.getpid()})" in err
        assert not (out / "checkpoint").exists()
    (out / checkpoint.LOCK).write_text("999999\n")  # a lock file left by a killed run: flock died with it
    assert main(["train", "--data", data_file, "--out", str(out), "--epochs", "1", *TINY]) == 0


def test_nan_weights_are_never_the_last_good_checkpoint(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    ck = out / "checkpoint"
    tensors = load_file(ck / "tensors.safetensors")
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name][0] = float("nan")
    save_file(tensors, ck / "tensors.safetensors", metadata={"format": checkpoint.FORMAT})
    payload = (ck / "tensors.safetensors").read_bytes()
    state = json.loads((ck / "state.json").read_text())
    _resign(ck, {**state, "tensors": {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}})
    code, _, err = _resume(capsys, data_file, out)
    assert code == 2 and f"holds NaN or Inf in {name}" in err and "not a good checkpoint" in err


def test_nan_weights_are_never_saved(data_file, tmp_path, monkeypatch):
    real = checkpoint._flatten

    def poisoned(model, likelihood, optimizer):
        tensors = real(model, likelihood, optimizer)
        next(v for k, v in tensors.items() if k.startswith("model."))[0] = float("inf")
        return tensors
    out = tmp_path / "run"
    train(_cfg(data_file, out, epochs=1), log=_quiet)
    monkeypatch.setattr(checkpoint, "_flatten", poisoned)
    with pytest.raises(checkpoint.CheckpointError, match="not saved: model.* holds NaN or Inf"):
        train(_cfg(data_file, out, epochs=2), resume=True, log=_quiet)
    assert _epoch(out) == 1


def _corruptions(state: dict):
    """(label, state.json bytes) of structurally wrong states, each re-signed so the checksum passes."""
    def signed(value) -> bytes:
        if isinstance(value, dict):
            value = {**value, "sha256": hashlib.sha256(checkpoint.canonical_json(value)).hexdigest()}
        return json.dumps(value).encode()
    yield "invalid UTF-8", b'{"format": "\xff\xfe"}'
    yield "NaN", signed(state).replace(b'"epoch": 2', b'"epoch": NaN')
    for value in ([], "x", 3, None, [state]):
        yield f"a JSON {type(value).__name__}", json.dumps(value).encode()
    for key in ("config", "epoch", "step", "features", "history", "optimizer_param_groups", "tensors"):
        yield f"missing {key}", signed({k: v for k, v in state.items() if k != key})
    for key, value in (("epoch", "2"), ("epoch", -1), ("epoch", True), ("step", 2.5), ("features", 0),
                       ("config", []), ("history", None), ("history", {"step_losses": ["a"], "epochs": []}),
                       ("history", {"step_losses": [], "epochs": [1]}), ("optimizer_param_groups", []),
                       ("optimizer_param_groups", [{"params": "x"}]), ("tensors", {}),
                       ("tensors", {"sha256": 5, "bytes": -1})):
        yield f"{key} = {value!r}", signed({**state, key: value})
    for key, value in (("encoder_sizes", 5), ("encoder_sizes", [-8]), ("activation", 5), ("data", 5),
                       ("device", "meta"), ("batch_size", "16"), ("plots", "yes"), ("nonsense", 1)):
        yield f"config {key} = {value!r}", signed({**state, "config": {**state["config"], key: value}})
    yield "deep nesting", b'{"format": "vaespec-train-checkpoint/2", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    yield "nested config", signed({**state,
                                   "config": {**state["config"], "data": [[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]}})


def test_every_kind_of_corrupt_state_json_is_one_line_naming_it(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    train(_cfg(data_file, out), log=_quiet)
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    kinds = 0
    for label, data in _corruptions(state):
        path.write_bytes(data)
        code, _, err = _resume(capsys, data_file, out)
        assert code == 2 and err.count("\n") == 1 and str(path) in err, (label, err)
        kinds += 1
    assert kinds >= 27


def test_training_diverged_names_only_a_checkpoint_that_is_good(data_file, tmp_path, monkeypatch):
    from vaespec.impl.train import models

    out = tmp_path / "run"
    train(_cfg(data_file, out, epochs=1), log=_quiet)
    monkeypatch.setattr(models, "batch_loss", lambda *a: torch.tensor(float("nan")))
    with pytest.raises(TrainingDiverged, match=r"last good checkpoint \(epoch 1, step 3\)"):
        train(_cfg(data_file, out, epochs=2), resume=True, log=_quiet)
