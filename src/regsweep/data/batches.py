"""Mini-batches sliced from tensors already on the training device: no per-sample Python work."""

from __future__ import annotations

import math
from itertools import islice
from typing import Iterator

import torch
from torch import Tensor


class TensorBatches:
    """Iterate over (x, y) batches of whole-dataset tensors.

    With a generator, each pass draws a fresh permutation from it (the run seed fixes the batch
    order of every epoch); without one, batches are contiguous views in dataset order.
    ``batch_size=None`` gives one full batch.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None, generator: torch.Generator | None = None):
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} != {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size or len(x)
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n, size = len(self.x), self.batch_size
        if self.generator is None:
            for start in range(0, n, size):
                yield self.x[start : start + size], self.y[start : start + size]
            return
        order = torch.randperm(n, generator=self.generator, device=self.generator.device)
        for start in range(0, n, size):
            index = order[start : start + size]
            yield self.x[index], self.y[index]


class BatchGroups:
    """Consecutive minibatches of ``batches`` in lists of up to ``size``: one list per Lightning step.

    The minibatches are exactly those of ``batches``, in the same order; only how many of them
    Lightning's loop sees at once changes (see ``RegularizedModule.training_step``).
    """

    def __init__(self, batches: TensorBatches, size: int) -> None:
        if size < 1:
            raise ValueError(f"group size must be >= 1, got {size}")
        self.batches = batches
        self.size = size

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.size)

    def __iter__(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        minibatches = iter(self.batches)
        while group := list(islice(minibatches, self.size)):
            yield group
