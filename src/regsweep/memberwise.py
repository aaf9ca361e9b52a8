"""What may differ between the members of one pack, declared once: the config keys, and each member's values.

Jobs whose configs differ only in these keys train together as one batched model (:mod:`regsweep.packing`);
inside it every member brings its own :class:`MemberSpec`: the values below and its own random streams.
Members whose learning rate and weight decay agree share a network and an optimizer parameter group
(:mod:`regsweep.training.module`), so a pack job lists them together (:func:`optimizer_group_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from regsweep.data.augment import AugmentSettings
from regsweep.networks import MemberModel

# Keys (or whole groups) whose values may differ inside a pack.
MEMBERWISE = (
    "seed",
    "regularizer.name", "regularizer.strength", "regularizer.l1", "regularizer.l2", "regularizer.scale_by_n_train",
    "regularizer.l2_half", "regularizer.combined_scale", "regularizer.grad_noise_std",
    "model.dropout",  # a built-in model's (its packed dropout layer); a user's class takes its rate as an argument
    "optimizer.lr", "optimizer.weight_decay",
    "augment",  # each member's minibatch is augmented with its own settings
    "search",  # a job's Optuna trial
    "tags", "pack",
)
BUILTIN_ONLY = ("model.dropout",)  # member-wise for the built-in models only: any argument of a user's class splits


def memberwise_keys(user_model: bool) -> tuple[str, ...]:
    """The member-wise keys of a job whose network is a user's class (``user_model``) or a built-in."""
    return tuple(key for key in MEMBERWISE if not (user_model and key in BUILTIN_ONLY))


@dataclass(frozen=True)
class MemberValues:
    """One job's values that may differ from its pack-mates', as its pack applies them."""

    l1: float  # as applied (already divided by n_train when the regularizer says so)
    l2: float
    grad_noise_std: float
    lr: float
    weight_decay: float
    dropout: float  # the built-in models' per-member dropout rate (0 for a user's class)
    augment: AugmentSettings

    @classmethod
    def of(cls, settings: Any, n_train: int) -> "MemberValues":
        """From a job's validated settings (``config.Settings``) and its training-set size."""
        l1, l2 = settings.regularizer.applied(n_train)
        return cls(l1, l2, settings.regularizer.grad_noise_std, settings.optimizer.lr, settings.optimizer.weight_decay,
                   settings.model.dropout, settings.augment)

    @property
    def optimizer_group(self) -> tuple[float, float]:
        return self.lr, self.weight_decay


def optimizer_group_of(config: dict[str, Any]) -> tuple[float, float]:
    """A resolved job config's (lr, weight_decay): the same grouping as ``MemberValues.optimizer_group``."""
    return float(config["optimizer"]["lr"]), float(config["optimizer"]["weight_decay"])


@dataclass
class MemberSpec:
    """What one member brings to its pack's module and data: its id there, its values, its random streams."""

    id: int  # its place in this process's pack job (never saved: a job resumes in any pack)
    values: MemberValues
    streams: dict[str, torch.Generator]  # seeding.STREAMS: init, order, dropout, augment, grad_noise

    @property
    def model(self) -> MemberModel:
        return MemberModel(self.values.dropout, self.streams["init"], self.streams["dropout"])
