"""LightningDataModule over in-memory Splits: tensors live on the training device for the whole run."""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch import Tensor

from regsweep.data.batches import BatchGroups, TensorBatches
from regsweep.data.splits import Splits

EVAL_BATCH_SIZE = 4096  # evaluation has no gradients; large batches only make it faster

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]


class TensorDataModule(L.LightningDataModule):
    """Serves whole-tensor splits; the run seed fixes the training batch order of every epoch.

    Training batches come in groups of ``batches_per_step`` minibatches (lists of (x, y)), one group
    per Lightning step. ``train_transform`` (augmentation) runs on training minibatches only, one
    at a time after they reach the device, so its random draws do not depend on the group size.
    """

    def __init__(self, splits: Splits, batch_size: int | None, seed: int,
                 train_transform: BatchTransform | None = None, batches_per_step: int = 1) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.batches_per_step = batches_per_step
        self.seed = seed
        self.train_transform = train_transform
        self._order_generator: torch.Generator | None = None
        self._transform_generator: torch.Generator | None = None

    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.splits.x_train.device != device:
            self.splits = self.splits.to(device)
        if self._order_generator is None:
            self._order_generator = torch.Generator(device=device).manual_seed(self.seed)
            self._transform_generator = torch.Generator(device=device).manual_seed(self.seed + 1)

    def train_dataloader(self) -> BatchGroups:
        s = self.splits
        batches = TensorBatches(s.x_train, s.y_train, self.batch_size, self._order_generator)
        return BatchGroups(batches, self.batches_per_step)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(self.splits.x_val, self.splits.y_val, EVAL_BATCH_SIZE)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(self.splits.x_test, self.splits.y_test, EVAL_BATCH_SIZE)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.train_transform is None or self.trainer is None or not self.trainer.training:
            return batch
        return [(self.train_transform(x, self._transform_generator), y) for x, y in batch]
