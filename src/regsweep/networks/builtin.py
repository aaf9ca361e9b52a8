"""The built-in networks, ``model=mlp`` and ``model=cnn``: their schemas, and both ways to build them.

One architecture function lays out the layers; it is given either packed layers (a pack's fast path,
:mod:`regsweep.networks.layers`) or torch's own layers (one member's ordinary ``nn.Sequential``, what
its checkpoints and ``model.pt`` load into), so both have the same layers in the same order, and a
member of a pack is initialized exactly as its ordinary network is. Input and output sizes always come
from the data.

Adding an activation is one entry in ACTIVATIONS; a norm, one in NORMS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from omegaconf import MISSING
from torch import Tensor, nn

from regsweep.errors import ConfigError
from regsweep.networks.interface import MemberModel, ModelFamily, PackedNetwork, StateCutter, penalizable
from regsweep.networks.layers import (INITIALIZERS, Flatten, PackedConv2d, PackedDropout, PackedLayer, PackedLinear,
                                      PackedNorm)
from regsweep.networks.vectorized import VmapNet, vmap_refusal
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
ENGINES = ("layers", "vmap")  # how a pack is computed: the packed layers, or torch.func over the ordinary network
BUILTIN: dict[str, type["MLPConfig"]] = {}  # filled below: model name -> its schema


@dataclass(frozen=True)
class Norm:
    """A normalization option: the torch layer a member has after a linear or conv layer (given its width and whether
    it normalizes conv maps), and whether it makes that layer's bias redundant."""

    torch_layer: Callable[[int, bool], nn.Module] | None
    absorbs_bias: bool = False


NORMS: dict[str, Norm] = {
    "none": Norm(None),
    "batch": Norm(lambda features, maps: nn.BatchNorm2d(features) if maps else nn.BatchNorm1d(features),
                  absorbs_bias=True),
    "layer": Norm(lambda features, maps: nn.GroupNorm(1, features) if maps else nn.LayerNorm(features)),
}


@dataclass
class MLPConfig(Checked):
    """``model=mlp``: Linear -> norm -> activation -> dropout per hidden layer, then Linear."""

    GROUP = "model"
    name: str = ruled(MISSING, one_of(BUILTIN))
    hidden_sizes: list[int] = ruled(MISSING, positive_sizes("[512,256]"))
    activation: str = ruled(MISSING, one_of(ACTIVATIONS))
    dropout: float = ruled(MISSING, within(0, 1))  # may differ between the members of a pack
    norm: str = ruled(MISSING, one_of(NORMS))
    penalized: list[str] = ruled(None, factory=lambda: ["*"])  # name patterns of the weights the penalty covers
    engine: str = ruled("layers", one_of(ENGINES))
    init: str = ruled("torch", one_of(INITIALIZERS))  # torch's layers' own, or Keras' glorot_uniform (biases 0)


@dataclass
class CNNConfig(MLPConfig):
    """``model=cnn``: conv -> norm -> activation -> 2x2 pool per entry of channels, then the MLP head."""

    channels: list[int] = ruled(MISSING, positive_sizes("[32,64]"))
    kernel_size: int = ruled(MISSING, above(0))
    pool: str = ruled(MISSING, one_of(POOLS))


BUILTIN.update(mlp=MLPConfig, cnn=CNNConfig)


class Layers(Protocol):
    """Where the architecture gets its layers from: a pack's packed layers, or one member's torch layers."""

    def linear(self, in_features: int, out_features: int, bias: bool) -> nn.Module: ...
    def conv(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Module: ...
    def norm(self, kind: str, features: int, maps: bool) -> list[nn.Module]: ...
    def dropout(self) -> list[nn.Module]: ...
    def flatten(self, input_dims: int, maps: bool) -> nn.Module: ...


@dataclass(frozen=True)
class PackedLayers:
    members: list[MemberModel]

    def linear(self, in_features: int, out_features: int, bias: bool) -> nn.Module:
        return PackedLinear(len(self.members), in_features, out_features, bias)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Module:
        return PackedConv2d(len(self.members), in_channels, out_channels, kernel_size, bias)

    def norm(self, kind: str, features: int, maps: bool) -> list[nn.Module]:
        return [] if NORMS[kind].torch_layer is None else [PackedNorm(kind, len(self.members), features, maps)]

    def dropout(self) -> list[nn.Module]:
        rates = [m.dropout for m in self.members]
        return [PackedDropout(rates, [m.dropout_masks for m in self.members])] if any(rates) else []

    def flatten(self, input_dims: int, maps: bool) -> nn.Module:
        return Flatten(len(self.members), input_dims, maps)


@dataclass(frozen=True)
class TorchLayers:
    dropout_rate: float

    def linear(self, in_features: int, out_features: int, bias: bool) -> nn.Module:
        return nn.Linear(in_features, out_features, bias=bias)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> nn.Module:
        return nn.Conv2d(in_channels, out_channels, kernel_size, padding="same", bias=bias)

    def norm(self, kind: str, features: int, maps: bool) -> list[nn.Module]:
        layer = NORMS[kind].torch_layer
        return [] if layer is None else [layer(features, maps)]

    def dropout(self) -> list[nn.Module]:
        return [nn.Dropout(self.dropout_rate)] if self.dropout_rate else []

    def flatten(self, input_dims: int, maps: bool) -> nn.Module:
        return nn.Flatten()


def _mlp_layers(cfg: MLPConfig, make: Layers, in_features: int, out_features: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for hidden in cfg.hidden_sizes:
        norm = NORMS[cfg.norm]
        layers += [make.linear(in_features, hidden, not norm.absorbs_bias), *make.norm(cfg.norm, hidden, False),
                   ACTIVATIONS[cfg.activation](), *make.dropout()]
        in_features = hidden
    return [*layers, make.linear(in_features, out_features, True)]


def _conv_layers(cfg: CNNConfig, make: Layers, input_shape: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    channels, height, width = input_shape
    pool = POOLS[cfg.pool]
    layers: list[nn.Module] = []
    for out_channels in cfg.channels:
        norm = NORMS[cfg.norm]
        layers += [make.conv(channels, out_channels, cfg.kernel_size, not norm.absorbs_bias),
                   *make.norm(cfg.norm, out_channels, True), ACTIVATIONS[cfg.activation]()]
        if pool is not None and min(height, width) >= 2:
            layers.append(pool(2))
            height, width = height // 2, width // 2
        channels = out_channels
    return layers, channels * height * width


def architecture(cfg: MLPConfig, make: Layers, input_shape: tuple[int, ...], output_size: int) -> list[nn.Module]:
    """The layers of ``model=mlp``/``cnn`` for data of ``input_shape``, in order, from ``make``."""
    if isinstance(cfg, CNNConfig):
        if len(input_shape) != 3:
            raise ConfigError("model", cfg.name, f"needs image inputs [C, H, W]; the data's samples are {list(input_shape)}")
        convs, features = _conv_layers(cfg, make, input_shape)
        return [*convs, make.flatten(3, True), *_mlp_layers(cfg, make, features, output_size)]
    return [make.flatten(len(input_shape), False), *_mlp_layers(cfg, make, math.prod(input_shape), output_size)]


def own_layer_names(net: nn.Sequential, dropout: float) -> dict[str, str]:
    """Layer name in a pack -> its name in a member's own ``nn.Sequential``.

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


def _prefixed(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state`` under ``prefix.``, without it."""
    return {key[len(prefix) + 1:]: value for key, value in state.items() if key.startswith(prefix + ".")}


class PackNet(nn.Sequential, PackedNetwork):
    """The packed layers of a built-in model: layer names and order are those of a member's own ``nn.Sequential``."""

    def __init__(self, cfg: MLPConfig, members: list[MemberModel], input_shape: tuple[int, ...], output_size: int):
        super().__init__(*architecture(cfg, PackedLayers(members), input_shape, output_size))
        self.members, self.conv, self.patterns = len(members), isinstance(cfg, CNNConfig), list(cfg.penalized)
        self.own_names = [own_layer_names(self, m.dropout) for m in members]
        with torch.no_grad():
            for index, member in enumerate(members):
                for layer in self.weight_layers().values():
                    layer.reset_member(index, member.init, cfg.init)

    def weight_layers(self) -> dict[str, PackedLinear | PackedConv2d]:
        """The linear and conv layers, by their name in the pack, in order."""
        return {name: m for name, m in self.named_children() if isinstance(m, (PackedLinear, PackedConv2d))}

    def penalized(self) -> dict[str, Tensor]:
        return {f"{name}.weight": layer.weight for name, layer in self.weight_layers().items()
                if penalizable(f"{name}.weight", layer.weight[0], self.patterns)}

    def cutter(self) -> StateCutter:
        layout = [(name, type(layer).own, [names[name] for names in self.own_names])
                  for name, layer in self.named_children() if isinstance(layer, PackedLayer) and layer.state_dict()]

        def cut(stacked: dict[str, Tensor], member: int) -> dict[str, Tensor]:
            return {f"{owners[member]}.{key}": value for name, own, owners in layout
                    for key, value in own(_prefixed(stacked, name), member).items()}

        return cut

    def load_members(self, states: list[dict[str, Tensor]]) -> None:
        stacked = {}
        for name, layer in self.named_children():
            if isinstance(layer, PackedLayer) and layer.state_dict():
                parts = [_prefixed(state, names[name]) for state, names in zip(states, self.own_names)]
                stacked.update({f"{name}.{key}": value for key, value in type(layer).stack(parts).items()})
        self.load_state_dict(stacked)

    def member_weights(self, member: int) -> dict[str, Tensor]:
        names, layers = self.own_names[member], self.weight_layers()
        return {f"{names[name]}.weight": type(layers[name]).own({"weight": weight}, member)["weight"]
                for name, weight in ((key.split(".")[0], w) for key, w in self.penalized().items())}

    def forward(self, x: Tensor) -> Tensor:
        if self.conv:  # to channel-packed maps [B, n*C, H, W]; a shared [B, C, H, W] is repeated per member
            x = x.repeat(1, self.members, 1, 1) if x.dim() == 4 else x.transpose(0, 1).flatten(1, 2)
        return super().forward(x)


class BuiltinFamily(ModelFamily):
    """``model=mlp`` or ``model=cnn`` for data of one shape."""

    def __init__(self, cfg: MLPConfig, input_shape: tuple[int, ...], output_size: int) -> None:
        self.cfg, self.input_shape, self.output_size, self.name = cfg, input_shape, output_size, cfg.name

    @property
    def description(self) -> str:
        return f"{self.name} {self.cfg.hidden_sizes}" + (" (vmap)" if self.cfg.engine == "vmap" else "")

    def unvectorizable(self) -> str | None:
        return vmap_refusal(self) if self.cfg.engine == "vmap" else None

    def single(self, member: MemberModel) -> nn.Module:
        """A member's own ``nn.Sequential`` of torch layers, with the weights its packed slice starts from."""
        net = nn.Sequential(*architecture(self.cfg, TorchLayers(member.dropout), self.input_shape, self.output_size))
        net.load_state_dict(PackNet(self.cfg, [member], self.input_shape, self.output_size).member_state(0))
        return net

    def pack(self, members: list[MemberModel]) -> PackedNetwork:
        if self.cfg.engine == "vmap":
            return VmapNet([self.single(m) for m in members], len(self.input_shape), self.cfg.penalized,
                           self.fast_layout)
        return PackNet(self.cfg, members, self.input_shape, self.output_size)
