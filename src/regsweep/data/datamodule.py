"""LightningDataModule over in-memory Splits for a pack: tensors live on the training device for the whole run.

The contract with :class:`~regsweep.training.module.PackModule`:

- training: lists of ``minibatches_per_step`` :class:`~regsweep.data.batches.Minibatch` es per
  Lightning step, each holding every active member's own minibatch (x [members, B, ...]);
  augmentation has been applied per member, with that member's settings and stream;
- validation: two shared loaders, the validation set and a fixed subset of the training set that
  the module measures in eval mode (``train_eval/*``, so the generalization gap compares like with
  like); test: the test set.

Batch limits (``trainer.limit_*_batches``, ``overfit_batches``, ``max_steps``) count minibatches
and evaluation batches of ``data.batch_size`` samples, whatever the group size. Lightning asks for
the loaders again every epoch, after the module's epoch end, so each epoch's loader serves the
members still training (the module's :class:`~regsweep.data.batches.PackProgress`) and its
length is exact (the last one under ``max_steps`` ends where the step budget does, and still
validates).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import Tensor

from regsweep.data.augment import augment_batch
from regsweep.data.batches import (
    MemberBatches,
    Minibatch,
    MinibatchGroups,
    PackProgress,
    SharedBatches,
    batch_rows,
)
from regsweep.data.splits import Splits
from regsweep.trainer import BatchPlan

if TYPE_CHECKING:
    from regsweep.memberwise import MemberSpec

EVAL_MEMBER_ROWS = 4096  # samples a member evaluates per batch: the same in a pack of any size, so its evaluation
                         # sums split alike wherever it trains (packs then agree bit for bit)
TRAIN_EVAL_MIN = 256  # training samples re-measured in eval mode after every epoch: as many as the validation
                      # set has (comparable noise, a few % of an epoch's work), at least this many


def _count(limit: int | float | None, total: int) -> int:
    """A batch limit as a count: None = all, an int = that many, a fraction = that share (at least one)."""
    if limit is None:
        return total
    if isinstance(limit, float):
        return max(1, math.floor(limit * total))
    return min(limit, total)


class PackDataModule(L.LightningDataModule):
    def __init__(self, splits: Splits, batch_size: int | None, members: dict[int, MemberSpec], plan: BatchPlan,
                 minibatches_per_step: int, split_seed: int, progress: PackProgress) -> None:
        super().__init__()
        self.splits, self.batch_size, self.plan = splits, batch_size, plan
        self.members = members  # member id -> its values and streams
        self.progress = progress  # the module's: which members train, how many steps the run has made
        self.minibatches_per_step = minibatches_per_step
        self.split_seed = split_seed

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.splits.x_train.device != device:
            self.splits = self.splits.to(device)
        index = self.train_eval_index().to(device)  # drawn once: the same subset every epoch
        self.train_eval = (self.splits.x_train[index], self.splits.y_train[index])

    @property
    def active(self) -> list[int]:
        return self.progress.active

    def _rows(self, limit: int | float | None, n: int) -> int:
        """Samples an evaluation limit keeps: batches of data.batch_size samples, or a fraction of the set."""
        if limit is None or isinstance(limit, float):
            return _count(limit, n)
        return min(n, limit * (self.batch_size or n))

    def _overfit_rows(self) -> int:
        return self._rows(self.plan.overfit, self.splits.n_train)

    def train_dataloader(self) -> MinibatchGroups:
        s = self.splits
        if self.plan.overfit:  # the same first samples every epoch, in stored order
            rows = self._overfit_rows()
            x, y, orders = s.x_train[:rows], s.y_train[:rows], None
        else:
            x, y, orders = s.x_train, s.y_train, [self.members[m].streams["order"] for m in self.active]
        size = batch_rows(self.batch_size, len(x))
        limit = _count(self.plan.train, math.ceil(len(x) / size))
        if self.plan.max_steps is not None:  # this epoch ends where the run's step budget does
            limit = min(limit, max(0, self.plan.max_steps - self.progress.steps_done))
        batches = MemberBatches(x, y, size, orders, len(self.active), limit)
        return MinibatchGroups(batches, self.minibatches_per_step)

    def train_eval_index(self) -> Tensor:
        """A fixed subset of the training set (from the split seed, the same for every member and seed)."""
        n = self.splits.n_train
        size = min(n, max(len(self.splits.x_val), TRAIN_EVAL_MIN))
        generator = torch.Generator().manual_seed(self.split_seed)
        return torch.randperm(n, generator=generator)[:size].sort().values

    def val_dataloader(self) -> list[SharedBatches]:
        s = self.splits
        if self.plan.overfit:  # validate on the very samples it trains on
            rows = self._overfit_rows()
            x_val, y_val = s.x_train[:rows], s.y_train[:rows]
        else:
            rows = self._rows(self.plan.val, len(s.x_val))
            x_val, y_val = s.x_val[:rows], s.y_val[:rows]
        return [SharedBatches(x_val, y_val, EVAL_MEMBER_ROWS), SharedBatches(*self.train_eval, EVAL_MEMBER_ROWS)]

    def test_dataloader(self) -> SharedBatches:
        rows = self._rows(self.plan.test, len(self.splits.x_test))
        return SharedBatches(self.splits.x_test[:rows], self.splits.y_test[:rows], EVAL_MEMBER_ROWS)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is None or not self.trainer.training or not isinstance(batch, list):
            return batch
        return [self._augmented(minibatch) for minibatch in batch]

    def _augmented(self, minibatch: Minibatch) -> Minibatch:
        members = [self.members[m] for m in self.active]
        if not any(member.values.augment.enabled for member in members):
            return minibatch
        x = torch.stack([augment_batch(xm, m.values.augment, m.streams["augment"]) if m.values.augment.enabled else xm
                         for xm, m in zip(minibatch.x, members)])
        return Minibatch(x, minibatch.y)

