"""A network of the user's own: any ``torch.nn.Module`` class named by ``_target_`` in a ``model`` config.

    # conf/model/mynet.yaml in the user's config dir (-cd / --config-dir, or hydra.searchpath)
    _target_: mynets.Net
    hidden: 64
    dropout: 0.1

Every other key is a constructor argument (so a dropout rate the class takes splits packs, as any
argument does), except ``penalized``: name patterns of the weights the penalty covers (default every
weight of 2 or more dimensions). The data's shapes go to the constructor parameters that ask for them
by name: ``in_features`` (a sample's size, flattened), ``input_shape`` (a sample's shape, e.g. [1, 28,
28]) and ``num_outputs`` (classes, or 1 for regression). Each member is constructed with torch's global
generator seeded from its own ``init`` stream, so its initial weights depend on its seed alone.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn.parameter import is_lazy

from regsweep.instantiate import TARGET, check_arguments, instantiate_trusted, target_class
from regsweep.networks.interface import MemberModel, ModelFamily, PackedNetwork
from regsweep.networks.vectorized import VmapNet, vmap_refusal

RESERVED = ("penalized",)  # keys of a user's model node that are the harness's, not constructor arguments
SHAPE_ARGUMENTS = ("in_features", "input_shape", "num_outputs")  # filled from the data when the constructor asks


@dataclass(frozen=True)
class UserModelConfig:
    """The validated view of a ``model`` node with a ``_target_``: what to instantiate, and what the penalty covers."""

    node: dict[str, Any]  # the _target_ and its arguments (nested _target_ configs are instantiated too)
    penalized: list[str] = field(default_factory=lambda: ["*"])
    dropout: float = 0.0  # the harness's own per-member dropout: none (a rate the class takes is its argument)

    @property
    def target(self) -> str:
        return str(self.node[TARGET])

    @property
    def name(self) -> str:
        return self.target.rpartition(".")[2]


def user_model(node: Any) -> UserModelConfig:
    """Check a user's model node before any job: its class imports, is a ``torch.nn.Module`` and takes its arguments
    (with the shape arguments it asks for)."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    cls = target_class("model", str(values[TARGET]), nn.Module)
    plain = {k: v for k, v in values.items() if k not in RESERVED}
    check_arguments("model", cls, plain, tuple(shape_arguments(cls, plain)))
    return UserModelConfig(plain, list(values.get("penalized") or ["*"]))


def shape_arguments(cls: type, given: dict[str, Any]) -> list[str]:
    """The data-shape parameters a constructor asks for and the config does not give."""
    return [name for name in SHAPE_ARGUMENTS if name in inspect.signature(cls).parameters and name not in given]


class UserFamily(ModelFamily):
    """A user's module class for data of one shape."""

    def __init__(self, cfg: UserModelConfig, input_shape: tuple[int, ...], output_size: int) -> None:
        self.cfg, self.input_shape, self.name = cfg, input_shape, cfg.name
        cls = target_class("model", cfg.target, nn.Module)
        shapes = {"in_features": math.prod(input_shape), "input_shape": list(input_shape), "num_outputs": output_size}
        self.shapes = {name: shapes[name] for name in shape_arguments(cls, cfg.node)}

    @property
    def description(self) -> str:
        return self.cfg.target

    def unvectorizable(self) -> str | None:
        return vmap_refusal(self)

    def single(self, member: MemberModel) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(member.init.initial_seed())
            net = instantiate_trusted(self.cfg.node, **self.shapes)
            if any(is_lazy(p) for p in net.parameters()):  # nn.LazyLinear & co. take their shapes from a first call
                with torch.no_grad():
                    net.eval()(torch.zeros(2, *self.input_shape))  # eval: no batch statistics learn from zeros
                net.train()
            return net

    def pack(self, members: list[MemberModel]) -> PackedNetwork:
        return VmapNet([self.single(m) for m in members], len(self.input_shape), self.cfg.penalized, self.fast_layout)
