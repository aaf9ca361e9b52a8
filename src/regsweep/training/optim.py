"""The optimizer group in code: which torch optimizers and learning-rate schedules ``optimizer=<name>`` can pick.

Adding an optimizer or a schedule is one entry in OPTIMIZERS or SCHEDULES (plus a YAML file in
conf/optimizer/ for a new optimizer); the config check reads the allowed names from them.
Learning rate and weight decay may differ between the members of a pack: the module gives each
set of members with equal values its own net and parameter groups, so torch's own optimizer does the step.

A net's parameters are stacked, [members, ...]. torch's fused CPU steps update the elements past a
tensor's last whole SIMD vector in a scalar loop that rounds differently from the vector lanes (Adam's
second moment and SGD's momentum, in the last bit), so a member whose share of a tensor is not whole vectors would round
by its position in the pack, and train to other last digits in another pack or alone. Such tensors
(output biases, odd widths: small) take torch's single-tensor step, which rounds alike everywhere;
each net has two groups, its whole-vector parameters (fused) and the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from omegaconf import MISSING

from regsweep.schema import Checked, Rule, above, at_least, one_of, require, ruled, within


@dataclass(frozen=True)
class OptimizerKind:
    """A torch optimizer class and the keyword arguments its config fields turn into."""

    cls: type[torch.optim.Optimizer]
    options: Callable[["OptimizerConfig"], dict[str, Any]]
    states: Callable[["OptimizerConfig"], int]  # state tensors per parameter, for sizing packs to memory


OPTIMIZERS: dict[str, OptimizerKind] = {
    "adam": OptimizerKind(torch.optim.Adam, lambda c: {"betas": tuple(c.betas)}, lambda c: 2),
    "adamw": OptimizerKind(torch.optim.AdamW, lambda c: {"betas": tuple(c.betas)}, lambda c: 2),
    "sgd": OptimizerKind(torch.optim.SGD, lambda c: {"momentum": c.momentum, "nesterov": c.nesterov},
                         lambda c: 1 if c.momentum else 0),
}
Schedule = torch.optim.lr_scheduler.LRScheduler
SCHEDULES: dict[str, Callable[["OptimizerConfig", torch.optim.Optimizer, int], Schedule | None]] = {
    "none": lambda cfg, optimizer, max_epochs: None,
    "cosine": lambda cfg, optimizer, max_epochs: torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, max_epochs)),  # anneal to 0 over max_epochs
    "step": lambda cfg, optimizer, max_epochs: torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=cfg.step_size, gamma=cfg.gamma),
}
FUSED_DEVICES = ("cpu", "cuda")  # where torch has single-kernel optimizer steps (several times faster)
FUSED_TAIL_DEVICES = ("cpu",)  # where a fused step rounds a tensor's last partial vector unlike its lanes (see above)
VECTOR_ELEMENTS = 16  # an AVX-512 vector of float32, two of AVX2's: a member's share in whole vectors of either
GROUPS_PER_NET = 2  # a net's parameters in whole vectors, then the rest
_BETAS = Rule(lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "must be two numbers in [0, 1)")


@dataclass
class OptimizerConfig(Checked):
    """``optimizer=<name>``; see conf/optimizer/*.yaml for what each key does."""

    GROUP = "optimizer"
    name: str = ruled(MISSING, one_of(OPTIMIZERS))
    lr: float = ruled(MISSING, above(0))
    weight_decay: float = ruled(MISSING, at_least(0))
    schedule: str = ruled(MISSING, one_of(SCHEDULES))
    step_size: int = ruled(MISSING, above(0))  # epochs between decays (schedule=step)
    gamma: float = ruled(MISSING, Rule(lambda v: 0 < v <= 1, "must be in (0, 1]"))  # decay factor (schedule=step)
    clip_grad_norm: float = ruled(MISSING, at_least(0))  # per member, global L2 norm; 0 = off
    betas: list[float] = ruled(None, _BETAS, factory=lambda: [0.9, 0.999])  # adam, adamw (torch's default)
    momentum: float = ruled(0.0, within(0, 1))  # sgd
    nesterov: bool = False  # sgd

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name == "sgd" and self.nesterov:
            require("optimizer.momentum", self.momentum, self.momentum > 0, "must be > 0 with optimizer.nesterov=true")


def fills_whole_vectors(param: torch.Tensor) -> bool:
    """Whether each member's share of a stacked [members, ...] parameter is whole SIMD vectors."""
    return param[0].numel() % VECTOR_ELEMENTS == 0


def net_param_groups(params: list[torch.Tensor], lr: float, weight_decay: float,
                     device: torch.device) -> list[dict[str, Any]]:
    """One net's GROUPS_PER_NET optimizer groups: its whole-vector parameters, fused where torch can, then the rest,
    fused only where that rounds alike at every position (either group may be empty)."""
    fused = device.type in FUSED_DEVICES
    whole = [p for p in params if fills_whole_vectors(p)]
    rest = [p for p in params if not fills_whole_vectors(p)]
    return [{"params": whole, "lr": lr, "weight_decay": weight_decay, "fused": fused},
            {"params": rest, "lr": lr, "weight_decay": weight_decay,
             "fused": fused and device.type not in FUSED_TAIL_DEVICES}]


def build_optimizer(cfg: OptimizerConfig, param_groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The configured optimizer over ``param_groups`` (each with its own lr, weight_decay and fused flag).

    Fused for the whole optimizer only when every group is (then a gradient scaler hands it the
    unscaling); otherwise each group's flag decides its own step.
    """
    kind = OPTIMIZERS[cfg.name]
    fused = all(group.get("fused", False) for group in param_groups) or None
    return kind.cls(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused, **kind.options(cfg))


def build_schedule(cfg: OptimizerConfig, optimizer: torch.optim.Optimizer, max_epochs: int) -> Schedule | None:
    """Per-epoch learning-rate schedule (stepped by the module after each epoch), or None."""
    return SCHEDULES[cfg.schedule](cfg, optimizer, max_epochs)


@torch.no_grad()
def clip_member_gradients(gradients: list[torch.Tensor], max_norm: float) -> None:
    """Rescale each member's gradients ([members, ...] each) to a global L2 norm of at most ``max_norm``, in place.

    Each member's squared norms are added parameter by parameter, in the same order for every member: one sum
    over a stack of them would add a pack's columns in another order than one member's, and round otherwise.
    """
    squares = [g.flatten(1).pow(2).sum(1) for g in gradients]
    norms = sum(squares[1:], squares[0]).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in gradients:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
