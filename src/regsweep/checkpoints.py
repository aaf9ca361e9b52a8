"""A job's checkpoint files: the kept epoch's weights, and the state to continue an interrupted job.

- ``checkpoints/best.ckpt``: the weights of the kept epoch (one member, keyed as in its own
  network), the epoch, the monitor and its score, and the job's config. ``train=false
  ckpt_path=<it>`` evaluates it.
- ``checkpoints/last.ckpt``: everything needed to continue training exactly where the job was after
  its last saved epoch: weights, optimizer and schedule state, random-stream states, the
  callbacks' state (early stopping counters, the best epoch so far), the epoch rows so far. A
  resumed sweep (or ``ckpt_path=<it>``) continues from it and ends with the numbers the job would
  have reached uninterrupted.

Both are written atomically; a file that is not one of these (or belongs to another config) is
refused with a message that says so.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from regsweep.atomic import atomic_write_bytes
from regsweep.errors import RegsweepError

CHECKPOINT_DIR = "checkpoints"
BEST_FILE, LAST_FILE = "best.ckpt", "last.ckpt"
# best /2 and last /3: a member's weights as its own network's state dict (an nn.Linear's [out, in]), callbacks'
# state by config name, and how a finished job ended (last /2: a net's optimizer state in two groups)
BEST_FORMAT, LAST_FORMAT = "regsweep-best/2", "regsweep-last/3"
# What a job's numbers depend on; a checkpoint continues only a job that agrees on all of it
# (trainer.max_epochs may grow: continuing a finished job for more epochs is the point of ckpt_path).
TRAINING_KEYS = ("seed", "data", "model", "regularizer", "optimizer", "augment", "minibatches_per_step")


class CheckpointError(RegsweepError):
    """A checkpoint file is unreadable, of another kind, or from a job with another config."""


def training_digest(cfg: DictConfig) -> str:
    """A fingerprint of the keys a job's training depends on."""
    values = {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
              for key in TRAINING_KEYS if key in cfg}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def write_checkpoint(path: Path, kind: str, payload: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save({"format": kind, **payload}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def read_checkpoint(path: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    """The payload of a checkpoint of one of ``kinds``; CheckpointError for anything else."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:  # truncated or not a torch file at all
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") not in kinds:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        if str(found).rpartition("/")[0] in {kind.rpartition("/")[0] for kind in kinds}:
            raise CheckpointError(f"{path}: a {found} file, written by another version of regsweep (this one reads "
                                  f"{', '.join(kinds)})")
        raise CheckpointError(f"{path}: a {found} file, expected one of {', '.join(kinds)} (a regsweep "
                              "checkpoints/best.ckpt or checkpoints/last.ckpt)")
    return payload


def check_same_training(payload: dict[str, Any], cfg: DictConfig, path: Path) -> None:
    if payload.get("digest") != training_digest(cfg):
        raise CheckpointError(f"{path} was written by a job with another config (seed, data, model, regularizer, "
                              "optimizer or augment differ): it cannot continue this one")


def network_of(config: dict[str, Any]) -> dict[str, Any]:
    """What shapes a job's network and its layers' names: the model keys (a dropout rate only by whether it drops
    out: a member without dropout has no dropout layers) and the dataset (the input and output sizes)."""
    model = dict(config.get("model") or {})
    model["dropout"] = "on" if model.get("dropout") else "off"
    return {"data.name": (config.get("data") or {}).get("name"), **{f"model.{k}": v for k, v in model.items()}}


def check_same_network(payload: dict[str, Any], cfg: DictConfig, path: Path) -> None:
    """A checkpoint loads only into the network it was saved from: say which keys differ, before any work."""
    saved, wanted = network_of(payload.get("config") or {}), network_of(OmegaConf.to_container(cfg, resolve=True))
    differ = [key for key in sorted({*saved, *wanted}) if saved.get(key) != wanted.get(key)]
    if differ:
        shown = "; ".join(f"{key}: {saved.get(key)!r} in it, {wanted.get(key)!r} here" for key in differ)
        raise CheckpointError(f"{path} holds another network than this config builds ({shown}): evaluate it with "
                              "the config it was trained with (regsweep-eval <it> reads that from the checkpoint)")


def same_job(payload: dict[str, Any], cfg: DictConfig) -> bool:
    """Whether a checkpoint was written by exactly this job's config (which pack trained it aside, and where its dir
    was: a sweep dir that moved keeps its jobs)."""
    def comparable(values: dict[str, Any]) -> str:
        own_dir = str((values.get("paths") or {}).get("output_dir"))
        text = json.dumps({k: v for k, v in values.items() if k != "pack"}, sort_keys=True, default=str)
        return text.replace(json.dumps(own_dir)[1:-1], "<job dir>")

    return comparable(payload.get("config") or {}) == comparable(OmegaConf.to_container(cfg, resolve=True))


def generator_states(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    return {name: generator.get_state() for name, generator in generators.items()}


def restore_generators(generators: dict[str, torch.Generator], states: dict[str, torch.Tensor]) -> None:
    for name, generator in generators.items():
        generator.set_state(states[name])
