"""The trainer group: Lightning ``Trainer`` arguments, checked up front; batch counts mean minibatches.

The group's schema is made from the Trainer's own signature, so every Trainer argument can be
set without ``+`` (``trainer.limit_train_batches=5``) and a misspelled one fails when Hydra
composes the config. The module steps its optimizer itself and Lightning sees a group of
minibatches per step (see :mod:`regsweep.training.module`), so the arguments that count batches or steps
are applied by the harness, in minibatches, and Lightning gets neutral values for them; the few
that cannot work here are refused with the alternative.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins.environments import LightningEnvironment

from regsweep.errors import ConfigError
from regsweep.schema import is_integer, require

TARGET = "lightning.pytorch.Trainer"
PASSED_BY_HARNESS = ("logger", "callbacks")  # built from the logger and callbacks groups
# Applied by the harness in minibatches (BatchPlan); Lightning gets these values instead.
HANDLED = {"limit_train_batches": None, "limit_val_batches": None, "limit_test_batches": None,
           "overfit_batches": 0.0, "fast_dev_run": False, "max_steps": -1}
REFUSED = {  # argument -> (acceptable, why and what to do instead)
    "gradient_clip_val": (lambda v: not v, "is not supported here (the module steps its optimizer itself); "
                          "use optimizer.clip_grad_norm"),
    "gradient_clip_algorithm": (lambda v: v is None, "is not supported here; use optimizer.clip_grad_norm"),
    "accumulate_grad_batches": (lambda v: v == 1, "must be 1 (every minibatch gets its own optimizer step); "
                                "raise data.batch_size instead"),
    "check_val_every_n_epoch": (lambda v: v == 1, "must be 1: metrics, stopping and checkpoints are per epoch"),
    "val_check_interval": (lambda v: v in (None, 1.0), "must be null or 1.0: validation runs once per epoch"),
    "devices": (lambda v: v in (1, "1", "auto"), "must be 1: a job or pack trains on one device; "
                "run several with a launcher (hydra/launcher=joblib or submitit_slurm)"),
    "num_nodes": (lambda v: v == 1, "must be 1: a job or pack trains on one device"),
    "min_steps": (lambda v: v is None, "is not supported; use trainer.min_epochs"),
    "max_epochs": (lambda v: is_integer(v, 1), "must be an integer >= 1"),
    "min_epochs": (lambda v: v is None or (is_integer(v, 0)), "must be null or an integer >= 0"),
    "max_steps": (lambda v: v == -1 or (is_integer(v, 1)), "must be -1 (no limit) or an integer >= 1"),
    "limit_train_batches": (lambda v: _is_limit(v), "must be null, an integer >= 1 or a fraction in (0, 1]"),
    "limit_val_batches": (lambda v: _is_limit(v), "must be null, an integer >= 1 or a fraction in (0, 1] "
                          "(validation runs every epoch)"),
    "limit_test_batches": (lambda v: _is_limit(v), "must be null, an integer >= 1 or a fraction in (0, 1]; "
                           "to skip testing use test=false"),
    "overfit_batches": (lambda v: v == 0 or _is_limit(v), "must be 0 (off), an integer >= 1 or a fraction in (0, 1]"),
    "fast_dev_run": (lambda v: isinstance(v, bool) or (is_integer(v, 1)), "must be true, false or an integer >= 1"),
}
GPU_ACCELERATORS = ("gpu", "cuda")


def _is_limit(value: Any) -> bool:
    if value is None:
        return True
    if is_integer(value):
        return value >= 1
    return isinstance(value, float) and 0 < value <= 1


@functools.cache
def trainer_schema() -> type:
    """A dataclass with every ``Trainer.__init__`` argument and its default, plus ``_target_``."""
    parameters = inspect.signature(pl.Trainer).parameters
    fields_ = [(name, Optional[Any], field(default=p.default)) for name, p in parameters.items()
               if name not in PASSED_BY_HARNESS and p.kind == p.KEYWORD_ONLY]
    return make_dataclass("TrainerConfig", [("_target_", str, field(default=TARGET)), *fields_])


@dataclass(frozen=True)
class BatchPlan:
    """How many minibatches an epoch trains and evaluates, in the harness's terms (not Lightning's groups).

    A limit is None (everything), an int (minibatches; evaluation batches of data.batch_size
    samples) or a fraction of the set. ``overfit`` trains on the same first minibatches every epoch
    and validates on them.
    """

    max_epochs: int
    min_epochs: int
    max_steps: int | None  # optimizer steps (minibatches) over the whole run
    train: int | float | None
    val: int | float | None
    test: int | float | None
    overfit: int | float = 0


def training_device(trainer: Any) -> torch.device:
    """The device ``trainer.accelerator`` trains on (a GPU for auto when one is visible), to plan memory for."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in GPU_ACCELERATORS or (accelerator == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def check_trainer(trainer: Any) -> BatchPlan:
    """Refuse what cannot work (one line each) and return the batch limits the harness applies."""
    values = {name: trainer.get(name) for name in {*REFUSED, "accelerator", "min_epochs"} if name in trainer}
    values.setdefault("max_epochs", None)  # required
    for name, (acceptable, why) in REFUSED.items():
        if name in values and not acceptable(values[name]):
            raise ConfigError(f"trainer.{name}", values[name], why)
    accelerator = str(values.get("accelerator", "auto"))
    require("trainer.accelerator", accelerator, accelerator not in GPU_ACCELERATORS or torch.cuda.is_available(),
            "no GPU is visible here (torch.cuda.is_available() is False); use trainer=default (GPU when "
            "there is one, else CPU) or trainer=cpu")
    require("trainer.accelerator", accelerator, accelerator != "mps" or torch.backends.mps.is_available(),
            "no Apple GPU (MPS) is available here; use trainer=default or trainer=cpu")
    max_epochs, min_epochs = values["max_epochs"], values.get("min_epochs") or 0
    require("trainer.min_epochs", min_epochs, min_epochs <= max_epochs, f"must be <= trainer.max_epochs={max_epochs}")
    fast = values.get("fast_dev_run", False)
    if fast:  # Lightning's meaning: that many batches of each stage, one epoch
        steps = 1 if fast is True else int(fast)
        return BatchPlan(1, 0, steps, steps, steps, steps)
    max_steps = values.get("max_steps", -1)
    return BatchPlan(max_epochs, min_epochs, None if max_steps == -1 else max_steps,
                     values.get("limit_train_batches"), values.get("limit_val_batches"),
                     values.get("limit_test_batches"), values.get("overfit_batches", 0) or 0)


def lightning_arguments(trainer: Any, remaining_epochs: int, min_epochs: int) -> dict[str, Any]:
    """Keyword arguments that override the trainer config: the harness's neutral values and its epoch count.

    A job is one process on one device, whoever launched it: unless the config names plugins, the
    trainer gets Lightning's plain environment, so it neither looks for nor reacts to a SLURM job
    (SLURM time limits and cancellations arrive as signals the harness handles; see job.py).
    """
    plugins = trainer.get("plugins") or [LightningEnvironment()]
    return {**HANDLED, "max_epochs": remaining_epochs, "min_epochs": min_epochs,
            "devices": 1, "plugins": plugins, "reload_dataloaders_every_n_epochs": 1}
