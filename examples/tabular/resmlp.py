"""A network of the kind users bring: a residual MLP with batch norm, written without regsweep in mind.

regsweep passes the data's shapes to the constructor parameters named ``in_features`` and
``num_outputs``; everything else comes from ``model/resmlp.yaml``. Trained as a pack, each member is
this very class (stacked by torch.func), and each job's ``model.pt`` loads back into it:

    net = ResidualMLP(in_features=13, num_outputs=3, width=64, blocks=2)
    net.load_state_dict(torch.load("multirun/.../3_regularizer=l2,seed=3/model.pt"))
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(BatchNorm(Linear(x)))): the block keeps the width, so blocks stack."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ResidualMLP(nn.Module):
    def __init__(self, in_features: int, num_outputs: int, width: int = 64, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(torch.relu(self.stem(x.flatten(1)))))
