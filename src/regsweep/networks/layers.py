"""Packed layers: n torch layers at once, each parameter holding the n members' stacked on a leading axis.

The fast path for the built-in models (:mod:`regsweep.networks.builtin`): one batched matrix product
(or one grouped convolution) trains a whole pack. Each layer maps a member's slice to and from the
state of the torch layer it stands for (``nn.Linear``, ``nn.Conv2d``, ``nn.BatchNorm1d``, ...), so a
member's checkpoint loads into that ordinary layer.

Activations between linear layers are ``[members, batch, features]``. Inside the conv blocks they
are channel-packed, ``[batch, members * channels, H, W]``: a grouped convolution (one group per
member) is then the packed convolution, and batch norm, group norm, pooling and activations of
torch apply to it unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def torch_bounds(fan_in: int, fan_out: int) -> tuple[float, float]:
    """torch's nn.Linear / nn.Conv2d initialization: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in)
    return bound, bound


def glorot_bounds(fan_in: int, fan_out: int) -> tuple[float, float]:
    """Keras' default (Glorot/Xavier uniform): weight U(-sqrt(6/(fan_in+fan_out)), +...), bias 0."""
    return math.sqrt(6 / (fan_in + fan_out)), 0.0


# model.init -> (fan_in, fan_out) -> (weight bound, bias bound) of a uniform initialization
INITIALIZERS: dict[str, Callable[[int, int], tuple[float, float]]] = {"torch": torch_bounds,
                                                                       "glorot_uniform": glorot_bounds}


class PackedLayer(nn.Module):
    """A packed layer whose member slices are the torch layer's own tensors (conv kernels, norm parameters)."""

    @staticmethod
    def own(stacked: dict[str, Tensor], member: int) -> dict[str, Tensor]:
        """Member ``member``'s state of the torch layer, from such a layer's stacked state (keys without prefix).

        Static: a snapshot of a pack is cut with it after the pack itself has changed."""
        return {key: value[member].clone() for key, value in stacked.items()}

    @staticmethod
    def stack(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Such a layer's stacked state from the members' own states, in member order."""
        return {key: torch.stack([state[key] for state in states]) for key in states[0]}


class PackedLinear(PackedLayer):
    """n linear layers at once: ``x @ W + b`` with W [n, in, out] (the layout whose backward is fastest).

    Without a bias when batch norm follows: batch norm subtracts the batch mean, so the bias would
    only collect rounding noise as gradient, which Adam turns into learning-rate-sized random steps.
    """

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, out_features)) if bias else None

    def reset_member(self, member: int, generator: torch.Generator, init: str = "torch") -> None:
        """A member's weight and bias from its own stream, as ``model.init`` says (torch's: nn.Linear's)."""
        _reset(self.weight[member], self.bias, member, INITIALIZERS[init](*self.weight.shape[1:]), generator)

    @staticmethod
    def own(stacked: dict[str, Tensor], member: int) -> dict[str, Tensor]:
        state = PackedLayer.own(stacked, member)
        state["weight"] = state["weight"].T.contiguous()  # torch's [out, in]
        return state

    @staticmethod
    def stack(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        return PackedLayer.stack([{**state, "weight": state["weight"].T} for state in states])

    def forward(self, x: Tensor) -> Tensor:
        if self.weight.shape[2] == 1:
            return self.single_output(x)
        if self.bias is None:
            return torch.bmm(x if x.stride(-1) == 1 else x.contiguous(), self.weight)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def single_output(self, x: Tensor) -> Tensor:
        """One output (a regression head) as products and a sum, which round alike for a member in a pack of any
        size: torch multiplies a lone member's matrix by a vector with another routine than a pack's, rounding
        otherwise, forward and backward."""
        output = (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True)
        return output if self.bias is None else output + self.bias.unsqueeze(1)


def _reset(weight: Tensor, bias: Tensor | None, member: int, bounds: tuple[float, float],
           generator: torch.Generator) -> None:
    """Draw a member's weight, then its bias, uniformly within ``bounds`` (a bias bound of 0: zeros, no draw)."""
    weight_bound, bias_bound = bounds
    weight.uniform_(-weight_bound, weight_bound, generator=generator)
    if bias is not None:
        bias[member].uniform_(-bias_bound, bias_bound, generator=generator) if bias_bound else bias[member].zero_()


class PackedConv2d(PackedLayer):
    """n conv layers at once on channel-packed maps: one grouped convolution, a group per member
    (no bias when batch norm follows, as for PackedLinear). "Same" padding, as ``nn.Conv2d(padding="same")``."""

    def __init__(self, members: int, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(members, out_channels)) if bias else None

    def reset_member(self, member: int, generator: torch.Generator, init: str = "torch") -> None:
        """As PackedLinear's; fan_in = in_channels * k * k, fan_out = out_channels * k * k."""
        _reset(self.weight[member], self.bias, member,
               INITIALIZERS[init](self.weight[0, 0].numel(), self.weight[0, :, 0].numel()), generator)

    def forward(self, x: Tensor) -> Tensor:
        members, kernel = self.weight.shape[0], self.weight.shape[-1]
        bias = None if self.bias is None else self.bias.flatten()
        before = (kernel - 1) // 2  # "same" padding; an even kernel pads one more after, as torch's "same" does
        if kernel % 2 == 0:  # padded here: torch's own "same" warns in every run for even kernels
            x, before = F.pad(x, (before, before + 1, before, before + 1)), 0
        return F.conv2d(x, self.weight.flatten(0, 1), bias, padding=before, groups=members)


class PackedNorm(PackedLayer):
    """Batch norm or layer norm with one set of affine parameters (and running statistics) per member: each member's
    is ``nn.BatchNorm1d``/``2d``, ``nn.LayerNorm`` or, over conv maps, ``nn.GroupNorm(1, C)``."""

    def __init__(self, kind: str, members: int, features: int, maps: bool) -> None:
        super().__init__()
        self.kind, self.maps = kind, maps  # maps: channel-packed [B, n*C, H, W], else [n, B, C]
        self.weight = nn.Parameter(torch.ones(members, features))
        self.bias = nn.Parameter(torch.zeros(members, features))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(members, features))
            self.register_buffer("running_var", torch.ones(members, features))
            self.register_buffer("num_batches_tracked", torch.zeros(members, dtype=torch.long))  # as torch's keeps it

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "layer":
            return self._layer_norm(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        members, features = self.weight.shape
        flat = x if self.maps else x.transpose(0, 1).reshape(x.shape[1], members * features)
        out = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                           self.bias.view(-1), self.training, 0.1, 1e-5)  # nn.BatchNorm's momentum and eps
        return out if self.maps else out.view(x.shape[1], members, features).transpose(0, 1).contiguous()

    def _layer_norm(self, x: Tensor) -> Tensor:
        if self.maps:  # over (C, H, W) of each sample and member: a group norm with a group per member
            return F.group_norm(x, self.weight.shape[0], self.weight.flatten(), self.bias.flatten(), 1e-5)
        return F.layer_norm(x, x.shape[-1:], eps=1e-5) * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)


class PackedDropout(PackedLayer):
    """Dropout with each member's own rate and mask stream; a member with rate 0 passes through unchanged (and has
    no dropout layer in its own network)."""

    def __init__(self, rates: list[float], generators: list[torch.Generator]) -> None:
        super().__init__()
        self.rates, self.generators = rates, generators

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        keep = torch.empty_like(x)
        for member, (rate, generator) in enumerate(zip(self.rates, self.generators)):
            if rate:
                keep[member].bernoulli_(1 - rate, generator=generator).div_(1 - rate)
            else:
                keep[member].fill_(1.0)
        return x * keep


class Flatten(PackedLayer):
    """To [n, B, features]: from channel-packed maps, from per-member inputs, or from a shared input."""

    def __init__(self, members: int, input_dims: int, maps: bool) -> None:
        super().__init__()
        self.members, self.input_dims, self.maps = members, input_dims, maps

    def forward(self, x: Tensor) -> Tensor:
        if self.maps:
            return x.reshape(x.shape[0], self.members, -1).transpose(0, 1)
        if x.dim() == self.input_dims + 1:  # shared by all members: evaluation data
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        return x.flatten(2)
