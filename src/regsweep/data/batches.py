"""Minibatches gathered from tensors already on the training device: no DataLoader, no per-sample Python work.

Training batches carry a member axis: each member of a pack walks the training set in its own
order (from its own ``order`` stream), so one gather ``x[index]`` with an index of shape
[members, batch] builds every member's minibatch at once. Evaluation batches are shared: every
member sees the same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import islice
from typing import Iterator, NamedTuple

import torch
from torch import Tensor


def batch_rows(batch_size: int | None, n: int) -> int:
    """The samples in a training minibatch: ``data.batch_size``, where null is the whole set (one full batch per
    epoch), and never more than the set holds."""
    return min(batch_size or n, n)


class Minibatch(NamedTuple):
    """Training: x [members, B, *input], y [members, B(, 1)]; evaluation: x [B, *input], y [B(, 1)], shared."""

    x: Tensor
    y: Tensor


@dataclass
class PackProgress:
    """How far a pack's training is: kept by its module, read by its data module when an epoch's loader is made.

    ``active``: the members that still train, in pack order (a minibatch's member axis);
    ``steps_done``: optimizer steps (minibatches) over the whole run, for ``trainer.max_steps``.
    """

    active: list[int] = field(default_factory=list)
    steps_done: int = 0


class MemberBatches:
    """One epoch of training minibatches for the members whose order streams are given.

    ``orders`` holds one generator per member: each pass draws a fresh permutation from each, so
    a member's batch order depends on its seed alone. ``orders=None`` walks the data in its stored
    order (every member alike). ``batch_size=None`` is one full batch; ``limit`` caps the number of
    minibatches per pass.
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None, orders: list[torch.Generator] | None,
                 members: int, limit: int | None = None) -> None:
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} != {len(y)}")
        self.x, self.y, self.orders, self.members = x, y, orders, members
        self.batch_size = batch_rows(batch_size, len(x))
        self.limit = limit

    def __len__(self) -> int:
        batches = math.ceil(len(self.x) / self.batch_size)
        return batches if self.limit is None else min(batches, self.limit)

    def _order(self) -> Tensor:
        n = len(self.x)
        if self.orders is None:
            return torch.arange(n, device=self.x.device).expand(self.members, n)
        return torch.stack([torch.randperm(n, generator=g, device=g.device) for g in self.orders]).to(self.x.device)

    def __iter__(self) -> Iterator[Minibatch]:
        order = self._order()
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[:, start : start + self.batch_size]
            yield Minibatch(self.x[index], self.y[index])


class MinibatchGroups:
    """Consecutive minibatches in lists of up to ``size``: one list per Lightning step.

    The minibatches are exactly those of ``batches``, in the same order; only how many of them
    Lightning's loop sees at once changes (see ``PackModule.training_step``).
    """

    def __init__(self, batches: MemberBatches, size: int) -> None:
        if size < 1:
            raise ValueError(f"group size must be >= 1, got {size}")
        self.batches, self.size = batches, size

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.size)

    def __iter__(self) -> Iterator[list[Minibatch]]:
        minibatches = iter(self.batches)
        while group := list(islice(minibatches, self.size)):
            yield group


class SharedBatches:
    """Evaluation batches every member sees, in stored order (contiguous views)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, max(1, batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[Minibatch]:
        for start in range(0, len(self.x), self.batch_size):
            yield Minibatch(self.x[start : start + self.batch_size], self.y[start : start + self.batch_size])
