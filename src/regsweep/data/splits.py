"""The train/val/test tensors of one dataset, and input normalization fitted on the training split."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from regsweep.metrics import CLASSIFICATION


@dataclass(frozen=True)
class Splits:
    """Whole splits held as tensors: images are [N, C, H, W], vectors [N, D]; targets [N] or [N, 1]."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    task: str  # metrics.CLASSIFICATION | metrics.REGRESSION
    num_classes: int | None = None
    classes: tuple[str, ...] = ()  # the class names, by code (a user's data; empty where codes are the names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def output_size(self) -> int:
        return self.num_classes if self.task == CLASSIFICATION else int(self.y_train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    def to(self, device: torch.device | str) -> "Splits":
        moved = {name: getattr(self, name).to(device) for name in _TENSOR_FIELDS}
        return replace(self, **moved)


_TENSOR_FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def from_arrays(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    task: str,
    num_classes: int | None = None,
    classes: tuple[str, ...] = (),
) -> Splits:
    """Build float32 inputs and int64 (classification) or float32 [N, 1] (regression) targets."""

    def targets(y: np.ndarray) -> Tensor:
        if task == CLASSIFICATION:
            return torch.as_tensor(np.asarray(y), dtype=torch.int64)
        return torch.as_tensor(np.asarray(y), dtype=torch.float32).reshape(len(y), -1)

    def inputs(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)

    return Splits(
        inputs(train[0]), targets(train[1]), inputs(val[0]), targets(val[1]),
        inputs(test[0]), targets(test[1]), task=task, num_classes=num_classes, classes=classes,
    )


def _minmax(x: Tensor) -> tuple[Tensor, Tensor]:
    """The training range [min, max], over all features (images keep their pixel geometry), to [0, 1]."""
    low, high = x.min(), x.max()
    return low, (high - low).clamp_min(torch.finfo(x.dtype).eps)


def _standardize(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per feature: the training mean and std (features constant in training, e.g. border pixels, only centred)."""
    shift, std = x.mean(dim=0), x.std(dim=0)
    return shift, torch.where(std > 1e-8, std, torch.ones_like(std))


# data.normalize -> (shift, scale) fitted on the training inputs; None leaves values as they are
NORMALIZATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]] | None] = {
    "none": None,
    "minmax": _minmax,
    "standardize": _standardize,
}


def normalize(splits: Splits, method: str) -> Splits:
    """Scale inputs with statistics of the training split only, so val/test never leak into training."""
    fit = NORMALIZATIONS[method]
    if fit is None:
        return splits
    shift, scale = fit(splits.x_train)
    return replace(
        splits,
        x_train=(splits.x_train - shift) / scale,
        x_val=(splits.x_val - shift) / scale,
        x_test=(splits.x_test - shift) / scale,
    )
