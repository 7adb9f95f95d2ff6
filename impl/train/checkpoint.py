"""Checkpoints as safetensors plus JSON: never a pickle.

A checkpoint is a directory holding
- `tensors.safetensors`: the model's state (`model.<name>`), the likelihood's (`likelihood.<name>`)
  and the optimizer's per-parameter state (`optimizer.<index>.<name>`, e.g. Adam's moments and step);
- `state.json`: the training configuration, the architecture, the epoch and step reached, the loss
  history, the optimizer's hyper-parameters and the format version.

It is written to a temporary directory and then renamed over the old one, so a crash or a NaN
never leaves a half-written checkpoint: the last good one stays in place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import torch
from vaespec.spec.errors import ConfigError

FORMAT = "vaespec-train-checkpoint/1"
TENSORS, STATE = "tensors.safetensors", "state.json"


class CheckpointError(ConfigError):
    """A checkpoint is missing, unreadable, or was written for another model."""


def _safetensors():
    """safetensors.torch, imported on first use: `vaespec check` runs without the train extra."""
    try:
        import safetensors.torch
    except ImportError as error:
        raise ConfigError("checkpoints need safetensors: pip install -c constraints.txt 'vaespec[train]'") from error
    return safetensors.torch


def _flatten(model, likelihood, optimizer) -> dict[str, torch.Tensor]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if likelihood is not None:
        tensors.update({f"likelihood.{k}": v for k, v in likelihood.state_dict().items()})
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"optimizer.{index}.{name}"] = torch.as_tensor(value)
    # safetensors wants contiguous, unshared CPU tensors
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save(directory: str, model, likelihood, optimizer, state: dict) -> None:
    """Write the checkpoint to `directory` atomically (see the module docstring).

    **Arguments** `model`, `likelihood` (or None), `optimizer`: the live objects; `state`: JSON-able
    dict (config, epoch, step, history, …).
    """
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".checkpoint-", dir=parent)
    try:
        _safetensors().save_file(_flatten(model, likelihood, optimizer), os.path.join(staging, TENSORS), metadata={"format": FORMAT})
        groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]}
                  for g in optimizer.state_dict()["param_groups"]]
        with open(os.path.join(staging, STATE), "w") as handle:
            json.dump({"format": FORMAT, **state, "optimizer_param_groups": groups}, handle, indent=1)
        old = directory + ".old"
        if os.path.exists(directory):
            os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_state(directory: str) -> dict:
    """The JSON state of the checkpoint in `directory`. **Raises** `CheckpointError`."""
    path = os.path.join(directory, STATE)
    try:
        with open(path) as handle:
            state = json.load(handle)
    except FileNotFoundError as error:
        raise CheckpointError(f"resume: no checkpoint at {directory!r} (missing {STATE})") from error
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"resume: cannot read {path!r} ({error})") from error
    if state.get("format") != FORMAT:
        raise CheckpointError(f"resume: {path!r} has format {state.get('format')!r}, expected {FORMAT!r}")
    return state


def load(directory: str, model, likelihood, optimizer, device) -> dict:
    """Load the checkpoint in `directory` into the live objects (made with the saved config); return its state."""
    state = read_state(directory)
    try:
        tensors = _safetensors().load_file(os.path.join(directory, TENSORS), device=str(device))
    except (OSError, RuntimeError, ValueError) as error:  # safetensors raises its own errors as these
        raise CheckpointError(f"resume: cannot read {os.path.join(directory, TENSORS)!r} ({error})") from error
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        if likelihood is not None:
            likelihood.load_state_dict({k[len("likelihood."):]: v for k, v in tensors.items()
                                        if k.startswith("likelihood.")})
    except RuntimeError as error:
        raise CheckpointError(f"resume: the checkpoint in {directory!r} does not fit this model ({error})") from error
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value.to("cpu") if name == "step" else value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in state["optimizer_param_groups"]]
    optimizer.load_state_dict({"state": per_param, "param_groups": groups})
    return state
