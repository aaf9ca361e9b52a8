"""The networks a job trains, behind one interface (:mod:`regsweep.networks.interface`).

- :mod:`~regsweep.networks.builtin`: ``model=mlp`` / ``model=cnn``, fast as packed layers
  (:mod:`~regsweep.networks.layers`); a member's own network is torch's ``nn.Sequential``;
- :mod:`~regsweep.networks.user`: any ``torch.nn.Module`` of the user's (``model._target_``), packed by
  :mod:`~regsweep.networks.vectorized` (``torch.func``).

A new built-in family is a schema in ``builtin.BUILTIN`` plus its :class:`ModelFamily`; a user's needs no code here.
"""

from __future__ import annotations

from typing import Any, Union

from regsweep.errors import ConfigError
from regsweep.instantiate import TARGET
from regsweep.networks.builtin import BUILTIN, BuiltinFamily, CNNConfig, MLPConfig
from regsweep.networks.interface import MemberModel, ModelFamily, PackedNetwork
from regsweep.networks.user import UserFamily, UserModelConfig, user_model

ModelConfig = Union[MLPConfig, UserModelConfig]

__all__ = ["BUILTIN", "CNNConfig", "MLPConfig", "MemberModel", "ModelConfig", "ModelFamily", "PackedNetwork",
           "UserModelConfig", "check_network", "family", "is_user_model", "user_model"]


def is_user_model(node: Any) -> bool:
    """A ``model`` node that names a class of the user's (``_target_``) rather than a built-in (``name``)."""
    return hasattr(node, "get") and node.get(TARGET) is not None


def family(cfg: ModelConfig, input_shape: tuple[int, ...], output_size: int) -> ModelFamily:
    """The model family of a validated model config, for data of ``input_shape`` and ``output_size`` outputs."""
    if isinstance(cfg, UserModelConfig):
        return UserFamily(cfg, input_shape, output_size)
    return BuiltinFamily(cfg, input_shape, output_size)


def check_network(family: ModelFamily, members: list[Any], output_size: int) -> None:
    """Before any training, for the members' validated settings: the network's output fits the data, and a penalty
    that is on has weights to cover (else it would silently be 0)."""
    family.check_output(output_size)
    penalized = any(m.regularizer.l1 or m.regularizer.l2 for m in members)
    if penalized and not family.size()["penalized_weights"]:
        raise ConfigError("model.penalized", family.cfg.penalized, f"matches no weight tensor of 2 or more dimensions "
                          f"of {family.description}: the penalty would cover nothing")
