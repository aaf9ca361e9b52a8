"""What training asks of a pack's networks, whichever way they are built: packed layers or torch.func over any module.

A pack of n members is one :class:`PackedNetwork`: every parameter and buffer holds the n members'
values stacked on a leading axis, so one optimizer step updates them all and each member's rows
get only its own gradient. A member's state goes in and out in the layout of its *own* network
(``model.single(member).state_dict()``: an ``nn.Linear`` weight is [out, in]), which is what its
checkpoints and ``model.pt`` hold, so ``net.load_state_dict(torch.load(job_dir / "model.pt"))``
works on the user's own class. A :class:`ModelFamily` (``model=mlp``, ``model=cnn``, a ``_target_``
of the user's) builds both: one member's ordinary network, and a pack's.
"""

from __future__ import annotations

import abc
import fnmatch
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from regsweep.errors import ConfigError


@dataclass(frozen=True)
class MemberModel:
    """What one member contributes to its network: its dropout rate (built-in models) and its random streams."""

    dropout: float
    init: torch.Generator  # the member's initial weights are drawn from it alone
    dropout_masks: torch.Generator


def penalizable(name: str, per_member: Tensor, patterns: list[str]) -> bool:
    """The penalty's rule, for any network: weight tensors of 2 or more dimensions (matrices, conv kernels; never
    biases or normalization parameters) whose name matches one of ``patterns`` (``model.penalized``)."""
    return per_member.dim() >= 2 and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


StateCutter = Callable[[dict[str, Tensor], int], dict[str, Tensor]]  # (a pack's stacked state, member) -> its own


class PackedNetwork(nn.Module, abc.ABC):
    """The networks of a pack's members as one module: [members, batch, ...] in, [members, batch, outputs] out."""

    members: int

    @abc.abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Per-member inputs [members, B, *input] or one shared batch [B, *input] -> [members, B, outputs]."""

    @abc.abstractmethod
    def penalized(self) -> dict[str, Tensor]:
        """The stacked [members, ...] parameters the penalty covers, by name (the same for every member)."""

    @abc.abstractmethod
    def cutter(self) -> StateCutter:
        """What cuts a member's own state (its own network's state dict, cloned) out of this module's stacked state
        or a copy of it; it holds no reference to the module, so it still cuts a snapshot after the pack changed."""

    @abc.abstractmethod
    def load_members(self, states: list[dict[str, Tensor]]) -> None:
        """Every member's state, in member order, each in its own network's layout."""

    @abc.abstractmethod
    def member_weights(self, member: int) -> dict[str, Tensor]:
        """A member's penalized weights in its own network's layout, by their name there (weights.npz)."""

    def member_state(self, member: int) -> dict[str, Tensor]:
        return self.cutter()(self.state_dict(), member)

    def snapshot(self) -> tuple[dict[str, Tensor], StateCutter]:
        """A copy of the stacked state, and its cutter: the pack after an epoch, cut per member only when written."""
        return {key: value.detach().clone() for key, value in self.state_dict().items()}, self.cutter()


class ModelFamily(abc.ABC):
    """A kind of network (``model=<name>`` or a ``_target_``), for data of one shape: its members, ordinary and packed."""

    name: str  # how records and logs name it
    input_shape: tuple[int, ...]  # a sample's shape, from the data
    fast_layout: bool = True  # a vmapped pack may store its matrices transposed (networks.vectorized)

    @abc.abstractmethod
    def single(self, member: MemberModel) -> nn.Module:
        """One member's ordinary network (the user's own class, or torch's layers), initialized from its own stream."""

    @abc.abstractmethod
    def pack(self, members: list[MemberModel]) -> PackedNetwork:
        """The members' networks as one module, each initialized as ``single`` initializes it."""

    @property
    def description(self) -> str:
        """How logs name the network: ``mlp [512, 256]``, ``mynets.Net``."""
        return self.name

    def unvectorizable(self) -> str | None:
        """Why a pack of this network cannot be computed as one (None: it can). Packed layers always can."""
        return None

    def check_output(self, output_size: int) -> None:
        """One member's output for a batch of two samples must be [2, output_size]: refused before any training."""
        try:
            net = self.single(MemberModel(0.0, torch.Generator(), torch.Generator())).eval()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*padding='same' with even kernel.*")  # torch's, once a process
                output = net(torch.zeros(2, *self.input_shape))
        except ConfigError:
            raise
        except Exception as error:  # the user's code: its own words, in one line
            first = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
            raise ConfigError("model", self.description, f"fails on a batch of 2 samples of shape "
                              f"{list(self.input_shape)}: {type(error).__name__}: {first}") from None
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        if shape != (2, output_size):
            raise ConfigError("model", self.description, f"returns {shape} for a batch of 2 samples of shape "
                              f"{list(self.input_shape)}; the data needs [2, {output_size}] ({output_size} "
                              f"{'classes' if output_size > 1 else 'output'})")

    def size(self) -> dict[str, int]:
        """One member's size: its trainable parameters and the weight entries the penalty covers."""
        net = self.pack([MemberModel(0.0, torch.Generator(), torch.Generator())])
        return {"parameters": sum(p[0].numel() for p in net.parameters() if p.requires_grad),
                "penalized_weights": sum(w[0].numel() for w in net.penalized().values())}
