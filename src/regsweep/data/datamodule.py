"""LightningDataModule over in-memory Splits: tensors live on the training device for the whole run."""

from __future__ import annotations

from typing import Any, Callable

import lightning as L
import torch
from torch import Tensor

from regsweep.data.batches import TensorBatches
from regsweep.data.splits import Splits

EVAL_BATCH_SIZE = 4096  # evaluation has no gradients; large batches only make it faster

BatchTransform = Callable[[Tensor, torch.Generator], Tensor]


class TensorDataModule(L.LightningDataModule):
    """Serves whole-tensor splits; the run seed fixes the training batch order of every epoch.

    ``train_transform`` (augmentation) runs on training batches only, after they reach the device.
    """

    def __init__(self, splits: Splits, batch_size: int | None, seed: int,
                 train_transform: BatchTransform | None = None) -> None:
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
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

    def train_dataloader(self) -> TensorBatches:
        s = self.splits
        return TensorBatches(s.x_train, s.y_train, self.batch_size, self._order_generator)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(self.splits.x_val, self.splits.y_val, EVAL_BATCH_SIZE)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(self.splits.x_test, self.splits.y_test, EVAL_BATCH_SIZE)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.train_transform is None or self.trainer is None or not self.trainer.training:
            return batch
        x, y = batch
        return self.train_transform(x, self._transform_generator), y
