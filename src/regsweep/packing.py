"""Which jobs can train as one batched model (a pack), and how many of them fit on a device at once.

Two jobs can share a pack when their configs differ only in member-wise keys: the values a
packed model holds per member. Everything else (dataset, architecture, batch size, optimizer
kind, epochs, callbacks, ...) splits packs. The sweeper groups a multirun's jobs by this rule;
a pack job then trains its members in chunks that fit the device's memory (on a CPU, small ones).
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence, TypeVar

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from regsweep.memberwise import memberwise_keys
from regsweep.networks import is_user_model
from torch import nn

PACK_OFF = "off"  # pack.size: every job trains alone

CPU_MEMORY_SHARE = 0.5  # of the available RAM a pack may plan for
GPU_MEMORY_SHARE = 0.8  # of the free GPU memory
# Past this many members a CPU chunk gets slower per member (make bench-packs, "chunk size": the bare loop of an
# MNIST MLP's member-epoch 0.89-0.96 s in chunks of 10-20, 1.09 s in one of 30; in the harness, where per-step
# costs are shared, 2-5 % slower in one chunk of 32 than in two of 16); smaller chunks also keep results coming
CPU_MAX_MEMBERS = 16
T = TypeVar("T")


def why_alone(cfg: DictConfig) -> str | None:
    """Why a job cannot share a pack, or None: a Lightning callback that is not member-aware acts on its trainer,
    which in a pack trains every member (it could stop them all, or see another job's metrics)."""
    from regsweep.training.callbacks import MemberCallback  # Lightning: imported only when a sweep is planned

    for name, node in (cfg.get("callbacks") or {}).items():
        if isinstance(node, DictConfig) and node.get("_target_") is not None:
            if not issubclass(get_class(str(node._target_)), MemberCallback):
                return (f"callbacks.{name} ({node._target_}) is a Lightning callback of the whole trainer, so its jobs "
                        "train one at a time (regsweep.training.callbacks.* act per member and pack)")
    return None


def pack_key(cfg: DictConfig) -> str | None:
    """The config a job shares with its pack-mates: everything but the member-wise keys, unresolved; None for a job
    that trains alone (``why_alone``)."""
    if why_alone(cfg) is not None:
        return None
    values = OmegaConf.to_container(cfg, resolve=False)
    values.pop("hydra", None)
    for key in memberwise_keys(is_user_model(cfg.get("model"))):
        group, _, name = key.partition(".")
        node = values.get(group)
        if not name:
            values.pop(group, None)
        elif isinstance(node, dict):
            node.pop(name, None)
    return json.dumps(values, sort_keys=True, default=str)


def split_evenly(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` in ``parts`` consecutive runs whose sizes differ by at most one."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        runs.append(list(items[start:end]))
        start = end
    return runs


def group_into_packs(keys: list[str | None], size: int | str, workers: int = 1) -> list[list[int]]:
    """Indices of jobs in packs: jobs with equal keys together (a None key alone), in order of their first job.

    ``size`` is "off" (each job alone), an integer (packs of at most that many) or "auto" (one pack
    per key, split among ``workers`` parallel workers; the pack job bounds it by memory).
    """
    by_key: dict[str | int, list[int]] = {}
    for index, key in enumerate(keys):
        by_key.setdefault(index if key is None else key, []).append(index)
    packs: list[list[int]] = []
    for members in by_key.values():
        if size == PACK_OFF:
            packs += [[m] for m in members]
        elif size == "auto":
            packs += split_evenly(members, workers)
        else:
            packs += split_evenly(members, math.ceil(len(members) / int(size)))
    return sorted(packs, key=lambda pack: pack[0])


def footprint(net: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Parameters and activation values per sample of a one-member network, measured by one forward pass."""
    activations: list[int] = []
    leaves = [module for module in net.modules() if not list(module.children())]
    hooks = [leaf.register_forward_hook(lambda _m, _i, out: activations.append(out.numel())) for leaf in leaves]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for p in net.parameters()), sum(activations)


def member_bytes(parameters: int, activations_per_sample: int, batch_size: int, optimizer_states: int,
                 eval_rows: int) -> int:
    """A member's memory: weights, gradients and optimizer state, plus the larger of the activations autograd keeps
    for a minibatch and those of an evaluation batch (``eval_rows`` samples, no autograd)."""
    activations = max(3 * batch_size, eval_rows) * activations_per_sample
    return 4 * (parameters * (2 + optimizer_states) + activations)


def memory_budget(device: torch.device) -> int:
    """Bytes a pack may plan for on ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_MEMORY_SHARE)
    pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 1 << 20
    return int(pages * os.sysconf("SC_PAGE_SIZE") * CPU_MEMORY_SHARE)


def chunk_size(per_member: int, budget: int, device: torch.device, members: int) -> tuple[int, str]:
    """How many members train at once, and what limits that: as many as fit in ``budget`` (at least one), on a
    CPU no more than ``CPU_MAX_MEMBERS``."""
    fit = max(1, budget // max(1, per_member))
    if device.type == "cpu" and CPU_MAX_MEMBERS < min(members, fit):
        return CPU_MAX_MEMBERS, f"at most {CPU_MAX_MEMBERS} at once on a CPU"
    return min(members, fit), f"{per_member / 2**20:.0f} MB a member, {budget / 2**20:.0f} MB for the pack on {device}"


def describe_pack(members: int, chunk: int) -> str:
    chunks = math.ceil(members / chunk)
    return f"{members} jobs as one batched model" if chunks == 1 else f"{members} jobs in {chunks} chunks of <= {chunk}"
