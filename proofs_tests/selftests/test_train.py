"""`vaespec train` on tiny runs: outputs, determinism, resume, NaN handling, bad data, the CLI.

Each run is a few steps of a small network on a small synthetic .npz (or the bundled digits
where the data set itself is under test), so the file takes seconds. The full digits run is a
command in docs/training.md, not a test.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

from safetensors.torch import load_file

from vaespec.impl.train import (
    DataError,
    TrainConfig,
    TrainingDiverged,
    load_dataset,
    models,
    train,
)
from vaespec.proofs_tests.cli import main
from vaespec.spec.errors import ConfigError, DomainError, ShapeError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture
def data_file(tmp_path):
    """60 binary 4×3 'images' with labels, made from a fixed seed."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, 60)
    prototypes = rng.random((3, 12)) < 0.5
    flips = rng.random((60, 12)) < 0.1
    path = tmp_path / "tiny.npz"
    np.savez(path, x=(prototypes[labels] ^ flips).astype(np.float32).reshape(60, 4, 3), y=labels)
    return str(path)


def _tiny(data, out, **options) -> TrainConfig:
    base = {"data": data, "out": str(out), "latent_size": 2, "encoder_sizes": (8,), "decoder_sizes": (8,),
            "epochs": 2, "batch_size": 16, "eval_particles": 4, "iwae_particles": 16, "plots": False}
    return TrainConfig(**{**base, **options})


def _tensors(out) -> dict[str, torch.Tensor]:
    return load_file(os.path.join(out, "checkpoint", "tensors.safetensors"))


def _quiet(*_args, **_kwargs):
    pass


def test_digits_ship_with_scikit_learn_and_split_by_seed():
    data = load_dataset("digits", seed=0)
    assert data.train.shape == (1438, 64) and data.test.shape == (359, 64)
    assert data.image_shape == (8, 8) and data.train.dtype == np.float32
    assert 0.0 == data.train.min() and data.train.max() == 1.0
    again, other = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert np.array_equal(again.test, data.test) and not np.array_equal(other.test, data.test)
    assert sorted(np.unique(data.test_labels)) == list(range(10))


@pytest.mark.parametrize("device", DEVICES)
def test_tiny_run_writes_checkpoint_metrics_and_plots(data_file, tmp_path, device):
    result = train(_tiny(data_file, tmp_path / "run", plots=True, device=device), log=_quiet)
    out = tmp_path / "run"
    assert sorted(os.listdir(out / "checkpoint")) == ["state.json", "tensors.safetensors"]  # no pickle anywhere
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 2 * 3 and len(state["history"]["step_losses"]) == 6
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert np.isfinite(metrics["heldout_negative_elbo"]) and np.isfinite(metrics["heldout_iwae_log_likelihood"])
    assert metrics["heldout_examples"] == 12
    for name in ("loss_curves", "reconstructions", "samples", "latent_map"):
        with open(result["plots"][name], "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_loss_falls_on_structured_data(data_file, tmp_path):
    history = train(_tiny(data_file, tmp_path / "run", epochs=15, lr=1e-2), log=_quiet)["history"]["epochs"]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 1.0, history


def test_same_seed_same_run_other_seed_other_run(data_file, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(_tiny(data_file, tmp_path / name, seed=seed), log=_quiet)
    a, b, c = (_tensors(tmp_path / name) for name in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("model."))


@pytest.mark.parametrize("options", [{}, {"objective": "iwae", "particles": 3, "likelihood": "gaussian"},
                                     {"model": "vq", "num_embeddings": 6, "embedding_dim": 2, "ema": True}])
def test_resume_equals_uninterrupted_run(data_file, tmp_path, options):
    whole = train(_tiny(data_file, tmp_path / "whole", epochs=3, **options), log=_quiet)
    train(_tiny(data_file, tmp_path / "split", epochs=1, **options), log=_quiet)
    resumed = train(_tiny(data_file, tmp_path / "split", epochs=3, **options), resume=True, log=_quiet)
    a, b = _tensors(tmp_path / "whole"), _tensors(tmp_path / "split")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert whole["history"]["step_losses"] == resumed["history"]["step_losses"]
    assert whole["metrics"] == resumed["metrics"]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(data_file, tmp_path, monkeypatch):
    train(_tiny(data_file, tmp_path / "good", epochs=1), log=_quiet)
    real, calls = models.batch_loss, []

    def nan_at_fourth_step(cfg, model, likelihood, x, gen):  # step 4 = the first of epoch 2 (3 steps per epoch)
        calls.extend([None] if model.training else [])  # held-out evaluations run in eval mode
        loss = real(cfg, model, likelihood, x, gen)
        return loss * float("nan") if model.training and len(calls) == 4 else loss

    monkeypatch.setattr(models, "batch_loss", nan_at_fourth_step)
    with pytest.raises(TrainingDiverged) as caught:
        train(_tiny(data_file, tmp_path / "bad", epochs=3), log=_quiet)
    message = str(caught.value)
    assert "nan at epoch 2, step 4" in message and "epoch 1, step 3" in message
    assert os.path.join(str(tmp_path / "bad"), "checkpoint") in message and "--lr" in message
    good, kept = _tensors(tmp_path / "good"), _tensors(tmp_path / "bad")
    assert all(torch.equal(good[k], kept[k]) for k in good)
    assert json.loads((tmp_path / "bad" / "checkpoint" / "state.json").read_text())["epoch"] == 1


def _write(tmp_path, name, array=None, **arrays):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        np.save(path, array, allow_pickle=array is not None and array.dtype == object)
    return str(path)


@pytest.mark.parametrize("make, error, words", [
    (lambda t: str(t / "missing.npy"), DataError, ["missing.npy", "does not exist"]),
    (lambda t: (t / "text.npy").write_text("not an array") and str(t / "text.npy"), DataError, ["cannot read"]),
    (lambda t: _write(t, "objects.npy", np.array([{"a": 1}, {"b": 2}], dtype=object)), DataError, ["unpickling"]),
    (lambda t: _write(t, "nan.npy", np.array([[0.0, 0.5], [np.nan, 1.0], [0.2, 0.3]])), DomainError,
     ["nan", "(1, 0)", "finite"]),
    (lambda t: _write(t, "vector.npy", np.zeros(5)), ShapeError, ["shape (5,)", "[examples, features]"]),
    (lambda t: _write(t, "rank4.npy", np.zeros((3, 2, 2, 2))), ShapeError, ["(3, 2, 2, 2)"]),
    (lambda t: _write(t, "one.npy", np.zeros((1, 4))), ShapeError, ["at least 2 examples"]),
    (lambda t: _write(t, "big.npy", np.full((4, 3), 2.0)), DomainError, ["[0, 1]", "--likelihood gaussian"]),
    (lambda t: _write(t, "keys.npz", a=np.zeros((3, 2)), b=np.zeros(3)), DataError, ["['a', 'b']", "'x'"]),
    (lambda t: _write(t, "labels.npz", x=np.zeros((3, 2)), y=np.zeros(4, dtype=int)), ShapeError, ["labels"]),
])
def test_bad_data_gets_a_clear_error(tmp_path, make, error, words):
    with pytest.raises(error) as caught:
        load_dataset(make(tmp_path))
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="likelihood"):
        TrainConfig(likelihood="poisson")
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(model="vq", objective="iwae")
    with pytest.raises(ConfigError, match="learn_scale: only the gaussian"):  # --fixed-scale is never ignored
        TrainConfig(likelihood="bernoulli", learn_scale=False)
    assert not TrainConfig(likelihood="gaussian", learn_scale=False).learn_scale


def test_cli_trains_reports_and_resumes(data_file, tmp_path, capsys):
    out = str(tmp_path / "cli")
    common = ["train", "--data", data_file, "--out", out, "--latent-size", "2", "--encoder-sizes", "8",
              "--decoder-sizes", "8", "--batch-size", "16", "--eval-particles", "4", "--iwae-particles", "8",
              "--no-plots", "--progress", "never"]
    assert main([*common, "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "epoch    1/1" in printed and "held-out −ELBO" in printed and "IWAE log-likelihood" in printed
    assert main(["train", "--resume", "--out", out, "--epochs", "2", "--progress", "never"]) == 0
    assert "resuming at epoch 1" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", out, "--latent-size", "3"]) == 2
    assert "fixed by the checkpoint" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "nope.npz"), "--out", out]) == 2


def test_cli_exits_1_when_training_diverges(data_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(models, "batch_loss", lambda cfg, model, likelihood, x, gen: model["encoder"].mu.bias.sum()
                        * float("inf"))
    assert main(["train", "--data", data_file, "--out", str(tmp_path / "div"), "--progress", "never"]) == 1
    assert "training diverged" in capsys.readouterr().err


def test_vaespec_cli_works_without_the_train_extra():
    """`vaespec check` builds the parser of every subcommand: train's must not need scikit-learn,
    safetensors or matplotlib until a run starts."""
    import subprocess
    import sys

    code = ("import sys\nfor name in ('safetensors', 'sklearn', 'matplotlib'): sys.modules[name] = None\n"
            "from vaespec.proofs_tests.cli import _parser\n"
            "print(_parser().parse_args(['train', '--epochs', '3']).epochs)\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr


def test_progress_bar_draws_the_epoch_and_step():
    import io

    from vaespec.impl.train.progress import Progress

    stream = io.StringIO()
    bar = Progress(40, 23, enabled=True, stream=stream, width=10)
    bar.update(3, 12, 24.81)
    assert stream.getvalue() == "\repoch 3/40 [#####-----] 12/23 loss 24.81"
    silent = io.StringIO()
    Progress(40, 23, enabled=False, stream=silent).update(3, 12, 24.81)
    assert silent.getvalue() == ""


def test_a_run_leaves_torch_global_settings_as_it_found_them(data_file, tmp_path):
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    train(_tiny(data_file, tmp_path / "run", epochs=1, threads=1), log=_quiet)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
