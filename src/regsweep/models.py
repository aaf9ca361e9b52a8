"""The networks behind ``model=<name>``, built for a pack: every parameter carries a leading member axis.

A pack of n members of the same architecture is one network whose layers hold n stacked copies
of their parameters, so one batched matrix product trains all of them; a job trained alone is a
pack of one. Each member initializes its own slice from its own ``init`` stream, exactly as
``torch.nn`` initializes the layer (so a member's numbers do not depend on its pack-mates).

Activations between linear layers are ``[members, batch, features]``. Inside the conv blocks they
are channel-packed, ``[batch, members * channels, H, W]``: a grouped convolution (one group per
member) is then the packed convolution, and batch norm, group norm, pooling and activations of
torch apply to it unchanged. Input and output sizes always come from the data.

Adding an activation is one entry in ACTIVATIONS; a norm, one in NORMS (a 1d and a 2d layer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import Tensor, nn

from regsweep.schema import Checked, above, one_of, positive_sizes, ruled, within

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}
POOLS: dict[str, type[nn.Module] | None] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d, "none": None}
MODELS: dict[str, type["MLPConfig"]] = {}  # filled below: model name -> its schema


@dataclass(frozen=True)
class Norm:
    """A normalization option: its layers after a linear or conv layer, and whether it makes that layer's bias redundant."""

    layers: Callable[[int, int, bool], list[nn.Module]]  # (members, features, channel-packed maps?) -> layers
    absorbs_bias: bool = False


NORMS: dict[str, Norm] = {
    "none": Norm(lambda members, features, maps: []),
    "batch": Norm(lambda members, features, maps: [PackedNorm("batch", members, features, maps)], absorbs_bias=True),
    "layer": Norm(lambda members, features, maps: [PackedNorm("layer", members, features, maps)]),
}


@dataclass
class MLPConfig(Checked):
    """``model=mlp``: Linear -> norm -> activation -> dropout per hidden layer, then Linear."""

    GROUP = "model"
    name: str = ruled(MISSING, one_of(MODELS))
    hidden_sizes: list[int] = ruled(MISSING, positive_sizes("[512,256]"))
    activation: str = ruled(MISSING, one_of(ACTIVATIONS))
    dropout: float = ruled(MISSING, within(0, 1))  # may differ between the members of a pack
    norm: str = ruled(MISSING, one_of(NORMS))


@dataclass
class CNNConfig(MLPConfig):
    """``model=cnn``: conv -> norm -> activation -> 2x2 pool per entry of channels, then the MLP head."""

    channels: list[int] = ruled(MISSING, positive_sizes("[32,64]"))
    kernel_size: int = ruled(MISSING, above(0))
    pool: str = ruled(MISSING, one_of(POOLS))


MODELS.update(mlp=MLPConfig, cnn=CNNConfig)


class PackedLinear(nn.Module):
    """n linear layers at once: ``x @ W + b`` with W [n, in, out] (the layout whose backward is fastest).

    Without a bias when batch norm follows: batch norm subtracts the batch mean, so the bias would
    only collect rounding noise as gradient, which Adam turns into learning-rate-sized random steps.
    """

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, out_features)) if bias else None

    def reset_member(self, member: int, generator: torch.Generator) -> None:
        """nn.Linear's initialization: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias."""
        bound = 1 / math.sqrt(self.weight.shape[1])
        self.weight[member].uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            self.bias[member].uniform_(-bound, bound, generator=generator)

    def member_weight(self, member: int) -> Tensor:
        return self.weight[member].T  # torch's [out, in]

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


class PackedConv2d(nn.Module):
    """n conv layers at once on channel-packed maps: one grouped convolution, a group per member
    (no bias when batch norm follows, as for PackedLinear)."""

    def __init__(self, members: int, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(members, out_channels)) if bias else None

    def reset_member(self, member: int, generator: torch.Generator) -> None:
        """nn.Conv2d's initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels * k * k."""
        bound = 1 / math.sqrt(self.weight[0, 0].numel())
        self.weight[member].uniform_(-bound, bound, generator=generator)
        if self.bias is not None:
            self.bias[member].uniform_(-bound, bound, generator=generator)

    def member_weight(self, member: int) -> Tensor:
        return self.weight[member]

    def forward(self, x: Tensor) -> Tensor:
        members, kernel = self.weight.shape[0], self.weight.shape[-1]
        bias = None if self.bias is None else self.bias.flatten()
        before = (kernel - 1) // 2  # "same" padding; an even kernel pads one more after, as torch's "same" does
        if kernel % 2 == 0:  # padded here: torch's own "same" warns in every run for even kernels
            x, before = F.pad(x, (before, before + 1, before, before + 1)), 0
        return F.conv2d(x, self.weight.flatten(0, 1), bias, padding=before, groups=members)


class PackedNorm(nn.Module):
    """Batch norm or layer norm with one set of affine parameters (and running statistics) per member."""

    def __init__(self, kind: str, members: int, features: int, maps: bool) -> None:
        super().__init__()
        self.kind, self.maps = kind, maps  # maps: channel-packed [B, n*C, H, W], else [n, B, C]
        self.weight = nn.Parameter(torch.ones(members, features))
        self.bias = nn.Parameter(torch.zeros(members, features))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(members, features))
            self.register_buffer("running_var", torch.ones(members, features))

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "layer":
            return self._layer_norm(x)
        members, features = self.weight.shape
        flat = x if self.maps else x.transpose(0, 1).reshape(x.shape[1], members * features)
        out = F.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1),
                           self.bias.view(-1), self.training, 0.1, 1e-5)  # nn.BatchNorm's momentum and eps
        return out if self.maps else out.view(x.shape[1], members, features).transpose(0, 1).contiguous()

    def _layer_norm(self, x: Tensor) -> Tensor:
        if self.maps:  # over (C, H, W) of each sample and member: a group norm with a group per member
            return F.group_norm(x, self.weight.shape[0], self.weight.flatten(), self.bias.flatten(), 1e-5)
        return F.layer_norm(x, x.shape[-1:], eps=1e-5) * self.weight.unsqueeze(1) + self.bias.unsqueeze(1)


class PackedDropout(nn.Module):
    """Dropout with each member's own rate and mask stream; a member with rate 0 passes through unchanged."""

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


class Flatten(nn.Module):
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


@dataclass(frozen=True)
class MemberModel:
    """What one member contributes to the network: its dropout rate and its random streams."""

    dropout: float
    init: torch.Generator
    dropout_masks: torch.Generator


def _mlp_layers(cfg: MLPConfig, members: list[MemberModel], in_features: int, out_features: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    n, width = len(members), in_features
    rates = [m.dropout for m in members]
    for hidden in cfg.hidden_sizes:
        norm = NORMS[cfg.norm]
        layers += [PackedLinear(n, width, hidden, bias=not norm.absorbs_bias), *norm.layers(n, hidden, False),
                   ACTIVATIONS[cfg.activation]()]
        if any(rates):
            layers.append(PackedDropout(rates, [m.dropout_masks for m in members]))
        width = hidden
    return [*layers, PackedLinear(n, width, out_features)]


def _conv_layers(cfg: CNNConfig, n: int, input_shape: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    channels, height, width = input_shape
    pool = POOLS[cfg.pool]
    layers: list[nn.Module] = []
    for out_channels in cfg.channels:
        norm = NORMS[cfg.norm]
        layers += [PackedConv2d(n, channels, out_channels, cfg.kernel_size, bias=not norm.absorbs_bias),
                   *norm.layers(n, out_channels, True), ACTIVATIONS[cfg.activation]()]
        if pool is not None and min(height, width) >= 2:
            layers.append(pool(2))
            height, width = height // 2, width // 2
        channels = out_channels
    return layers, channels * height * width


class PackNet(nn.Sequential):
    """The network of a pack; layer names and order are those of the ``nn.Sequential`` of one member."""

    def __init__(self, cfg: MLPConfig, members: list[MemberModel], input_shape: tuple[int, ...], output_size: int):
        n, conv = len(members), isinstance(cfg, CNNConfig)
        if conv:
            if len(input_shape) != 3:
                raise ValueError(f"model=cnn needs image inputs [C, H, W], got shape {input_shape}")
            convs, features = _conv_layers(cfg, n, input_shape)
            layers = [*convs, Flatten(n, 3, maps=True), *_mlp_layers(cfg, members, features, output_size)]
        else:
            layers = [Flatten(n, len(input_shape), maps=False),
                      *_mlp_layers(cfg, members, math.prod(input_shape), output_size)]
        super().__init__(*layers)
        self.conv, self.members = conv, n
        with torch.no_grad():
            for index, member in enumerate(members):
                for layer in self.weight_layers().values():
                    layer.reset_member(index, member.init)

    def weight_layers(self) -> dict[str, PackedLinear | PackedConv2d]:
        """The penalized layers, by the name their weight has in a member's state dict prefix (``1``, ``3``)."""
        return {name: m for name, m in self.named_children() if isinstance(m, (PackedLinear, PackedConv2d))}

    def forward(self, x: Tensor) -> Tensor:
        if self.conv:  # to channel-packed maps [B, n*C, H, W]; a shared [B, C, H, W] is repeated per member
            x = x.repeat(1, self.members, 1, 1) if x.dim() == 4 else x.transpose(0, 1).flatten(1, 2)
        return super().forward(x)


def penalized_weights(net: PackNet) -> dict[str, Tensor]:
    """The stacked weights the penalty covers (linear and conv weights, never biases or norms), by name."""
    return {f"{name}.weight": layer.weight for name, layer in net.weight_layers().items()}


def member_size(net: PackNet) -> dict[str, int]:
    """One member's size: its trainable parameters and the weight entries the penalty covers (every
    parameter of a pack holds one row per member)."""
    return {"parameters": sum(p[0].numel() for p in net.parameters()),
            "penalized_weights": sum(w[0].numel() for w in penalized_weights(net).values())}


def own_layer_names(net: PackNet, dropout: float) -> dict[str, str]:
    """Layer name in the pack -> its name in the member's own network.

    A pack has dropout layers when any member drops out; a member whose rate is 0 has none alone,
    so its layers are numbered as they would be without them (``1.weight``, ``3.weight``).
    """
    names, index = {}, 0
    for name, layer in net.named_children():
        if isinstance(layer, PackedDropout) and not dropout:
            continue
        names[name] = str(index)
        index += 1
    return names


def member_weights(net: PackNet, member: int, dropout: float) -> dict[str, Tensor]:
    """One member's penalized weights in torch's layout (Linear [out, in], Conv2d [out, in, k, k]), by own name."""
    names = own_layer_names(net, dropout)
    return {f"{names[name]}.weight": layer.member_weight(member) for name, layer in net.weight_layers().items()}


def member_state(net: PackNet, member: int, dropout: float) -> dict[str, Tensor]:
    """One member's slice of every parameter and buffer, keyed as in its own one-member network (cloned)."""
    return member_slice(net.state_dict(), own_layer_names(net, dropout), member)


def member_slice(state: dict[str, Tensor], names: dict[str, str], member: int) -> dict[str, Tensor]:
    """Row ``member`` of a pack net's state dict, keyed by the member's own layer ``names``.

    Cloned: a view would keep the whole pack's storage, which torch.save writes in full.
    """
    return {f"{names[layer]}.{key}": value[member : member + 1].detach().clone()
            for layer, key, value in ((k.split(".", 1)[0], k.split(".", 1)[1], v) for k, v in state.items())}


def pack_state(net: PackNet, members: list[tuple[dict[str, Tensor], float]]) -> dict[str, Tensor]:
    """The state dict of ``net`` from its members' own states (and dropout rates), stacked in member order."""
    own = [own_layer_names(net, dropout) for _, dropout in members]
    stacked = {}
    for key in net.state_dict():
        layer, rest = key.split(".", 1)
        stacked[key] = torch.cat([state[f"{names[layer]}.{rest}"] for (state, _), names in zip(members, own)])
    return stacked
