"""The one LightningModule of the harness: a pack of members trained as one batched model.

Each member is one job (its own seed, penalty strengths, dropout rate, learning rate, weight
decay, augmentation); a job trained alone is a pack of one. Members whose learning rate and
weight decay agree share a :class:`~regsweep.models.PackNet` and a parameter group of one torch
optimizer, so torch's own (fused) step updates them.

The training contract (see :mod:`regsweep.data.datamodule`): ``training_step`` receives a list of
minibatches, each holding every active member's own minibatch, and makes one optimizer step per
minibatch, in order. Lightning's loop therefore runs once per group of ``minibatches_per_step``
minibatches, which keeps its bookkeeping small next to a small model's step, while the updates are
exactly those of one minibatch per step.

After every epoch the module measures each member (train running means, validation, a training
subset in eval mode, weight statistics) in one host sync, exposes the rows to the member-aware
callbacks (:mod:`regsweep.callbacks`), which may stop a member; stopped members leave the pack
(their parameters and optimizer state are sliced away), so the others train on at full speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regsweep import metrics
from regsweep.data.batches import Minibatch
from regsweep.errors import DivergenceError, describe
from regsweep.models import MemberModel, MLPConfig, PackNet, member_weights, penalized_weights
from regsweep.optim import OptimizerConfig, Schedule, build_optimizer, build_schedule
from regsweep.penalty import add_gradient_noise, add_penalty_gradient, weight_statistics
from regsweep.records import FAILED, OK

Row = dict[str, float]


@dataclass
class MemberSpec:
    """What one member brings to the module: its member-wise values and random streams."""

    id: int
    l1: float  # as applied (already divided by n_train when the regularizer says so)
    l2: float
    grad_noise_std: float
    lr: float
    weight_decay: float
    model: MemberModel
    grad_noise: torch.Generator

    @property
    def optimizer_group(self) -> tuple[float, float]:
        return self.lr, self.weight_decay


@dataclass
class Stop:
    """Why a member left the pack (status from records: ok, failed or pruned)."""

    status: str
    reason: str
    epoch: int
    error: BaseException | None = None  # what made a failed member fail


@dataclass
class _Totals:
    """Per-member sums over an epoch of one stage, on the device."""

    loss: Tensor
    correct: Tensor
    count: Tensor
    penalty: Tensor | None = None


class PackModule(L.LightningModule):
    """Cross-entropy (classification) or MSE (regression) plus each member's weight penalty, for a pack."""

    def __init__(self, model: MLPConfig, optimizer: OptimizerConfig, members: list[MemberSpec], task: str,
                 input_shape: tuple[int, ...], output_size: int, max_epochs: int, min_epochs: int = 0,
                 max_steps: int | None = None, epoch_offset: int = 0, steps_done: int = 0) -> None:
        super().__init__()
        self.automatic_optimization = False  # one optimizer step per minibatch of a group; see training_step
        self.model_cfg, self.optimizer_cfg, self.task = model, optimizer, task
        self.input_shape, self.output_size = input_shape, output_size
        self.max_epochs, self.min_epochs = max_epochs, min_epochs
        self.epoch_offset = epoch_offset  # epochs trained before a resume
        self.max_steps, self.steps_done = max_steps, steps_done  # optimizer steps (minibatches), whole run
        self.specs = {spec.id: spec for spec in members}
        self.nets = nn.ModuleList()
        self.active: list[int] = []
        self._build([spec.id for spec in members])
        self.schedule: Schedule | None = None
        self.rows: dict[int, Row] = {}  # this epoch's measurements of the active members
        self.history: dict[int, list[Row]] = {spec.id: [] for spec in members}
        self.stops: dict[int, Stop] = {}  # members that left the pack, and why
        self.pending: dict[int, Stop] = {}  # stop requests waiting for trainer.min_epochs
        self.on_member_stop: Callable[[int, Stop], None] = lambda member, stop: None
        self.histogram: Callable[[int, str, Tensor, int], None] | None = None
        self.metric_sink: Callable[[int, Row, int], None] = lambda member, row, epoch: None
        self.test_results: dict[int, Row] = {}
        self._totals: dict[str, _Totals] = {}
        self._step_penalty: Tensor | None = None  # this step's penalty per member, for train/penalty

    # --- the pack's members ------------------------------------------------------------------------

    def _groups_of(self, ids: list[int]) -> list[list[int]]:
        """Consecutive members with equal (lr, weight_decay) share a net and an optimizer parameter group."""
        groups: list[list[int]] = []
        for member in ids:
            if groups and self.specs[groups[-1][0]].optimizer_group == self.specs[member].optimizer_group:
                groups[-1].append(member)
            else:
                groups.append([member])
        return groups

    def _build(self, ids: list[int], state: dict[str, Tensor] | None = None) -> None:
        """(Re)build the nets for these members, optionally loading their stacked state."""
        self.groups = self._groups_of(ids)
        self.active = [m for group in self.groups for m in group]
        self.nets = nn.ModuleList(
            PackNet(self.model_cfg, [self.specs[m].model for m in group], self.input_shape, self.output_size)
            for group in self.groups).to(self.device)
        if state is not None:
            self.nets.load_state_dict(state)
        self._strengths()

    def _strengths(self) -> None:
        specs = [self.specs[m] for m in self.active]

        def per_member(values: list[float]) -> Tensor | None:
            return torch.tensor(values, device=self.device) if any(values) else None

        self.l1, self.l2 = per_member([s.l1 for s in specs]), per_member([s.l2 for s in specs])

    def _position(self, member: int) -> tuple[int, int]:
        g = next(i for i, group in enumerate(self.groups) if member in group)
        return g, self.groups[g].index(member)

    def member_state(self, member: int) -> dict[str, Tensor]:
        """An active member's slice of every parameter and buffer (cloned), keyed like a one-member pack."""
        g, i = self._position(member)
        return {f"0.{k}": v[i : i + 1].detach().clone() for k, v in self.nets[g].state_dict().items()}

    def _stacked(self, states: dict[int, dict[str, Tensor]], groups: list[list[int]]) -> dict[str, Tensor]:
        """The state dict of nets for ``groups``, from one-member states."""
        stacked = {}
        for g, group in enumerate(groups):
            for key in states[group[0]]:
                stacked[f"{g}.{key.split('.', 1)[1]}"] = torch.cat([states[m][key] for m in group])
        return stacked

    def load_member_states(self, states: dict[int, dict[str, Tensor]]) -> None:
        """Make the pack exactly these members, with these one-member states (resume, or testing kept epochs)."""
        ids = [m for m in self.specs if m in states]
        self._build(ids, self._stacked(states, self._groups_of(ids)))

    def stop_member(self, member: int, status: str, reason: str) -> None:
        """Take a member out of the pack at the end of this epoch (not before trainer.min_epochs)."""
        if member in self.active and member not in self.pending:
            self.pending[member] = Stop(status, reason, self.epoch)

    @property
    def epoch(self) -> int:
        return self.epoch_offset + self.current_epoch

    def member_weights(self, member: int) -> dict[str, Tensor]:
        """An active member's penalized weights in torch's layout, for weights.npz."""
        g, i = self._position(member)
        return member_weights(self.nets[g], i)

    # --- forward, loss ------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """[members, B, ...] (or a shared [B, ...]) -> [members, B, outputs]."""
        if len(self.nets) == 1:
            return self.nets[0](x)
        if x.dim() > len(self.input_shape) + 1:  # per-member inputs: each net takes its members' slice
            sizes = [len(group) for group in self.groups]
            return torch.cat([net(part) for net, part in zip(self.nets, torch.split(x, sizes))])
        return torch.cat([net(x) for net in self.nets])

    def targets(self, output: Tensor, target: Tensor) -> Tensor:
        """Targets per member, [members, B(, 1)]: a shared evaluation batch is the same for every member."""
        shared = target.dim() == (1 if self.task == metrics.CLASSIFICATION else 2)
        return target.expand(output.shape[0], *target.shape) if shared else target

    def data_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """Mean loss over the batch, per member: [members, B, out] and [members, B(, 1)] -> [members]."""
        if self.task == metrics.CLASSIFICATION:
            losses = F.cross_entropy(output.flatten(0, 1), target.flatten(), reduction="none")
            return losses.view(output.shape[:2]).mean(1)
        return (output - target).pow(2).flatten(1).mean(1)

    def weights(self) -> list[Tensor]:
        """The penalized weights, [members, ...] each, in member order."""
        per_net = [list(penalized_weights(net).values()) for net in self.nets]
        if len(per_net) == 1:
            return per_net[0]
        return [torch.cat(layer) for layer in zip(*per_net)]

    # --- epoch accumulators -------------------------------------------------------------------------

    def _totals_for(self, stage: str) -> _Totals:
        if stage not in self._totals:
            n = len(self.active)
            self._totals[stage] = _Totals(torch.zeros(n, device=self.device), torch.zeros(n, device=self.device),
                                          torch.zeros((), device=self.device))
        return self._totals[stage]

    def _accumulate(self, stage: str, output: Tensor, target: Tensor, losses: Tensor, penalties: Tensor | None) -> None:
        totals = self._totals_for(stage)
        rows = target.shape[1]
        totals.loss += losses * rows
        totals.count += rows
        if self.task == metrics.CLASSIFICATION:
            totals.correct += (output.argmax(-1) == target).sum(1)
        if penalties is not None:
            totals.penalty = penalties * rows if totals.penalty is None else totals.penalty + penalties * rows

    def _means(self, stage: str) -> dict[str, Tensor]:
        totals = self._totals.pop(stage)
        values = {f"{stage}/loss": totals.loss / totals.count}
        if self.task == metrics.CLASSIFICATION:
            values[f"{stage}/acc"] = totals.correct / totals.count
        if stage == "train":
            values["train/penalty"] = (totals.penalty / totals.count if totals.penalty is not None
                                       else torch.zeros_like(values["train/loss"]))
            values["train/total_loss"] = values["train/loss"] + values["train/penalty"]
        return values

    # --- training -----------------------------------------------------------------------------------

    def training_step(self, group: list[Minibatch], batch_idx: int) -> None:
        """One optimizer step per minibatch of the group, in order: the same updates whatever the group size."""
        optimizer = self.optimizers()
        for minibatch in group:
            output = self(minibatch.x)
            losses = self.data_loss(output, minibatch.y)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(losses.sum())  # members share no parameter: each gets its own gradient
            optimizer.step()  # runs on_before_optimizer_step (penalty, clipping, gradient noise) first
            self.steps_done += 1
            with torch.no_grad():
                self._accumulate("train", output.detach(), minibatch.y, losses.detach(), self._step_penalty)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The rest of each member's gradient, on the unscaled data-loss gradient: penalty, then clipping, then noise."""
        self._step_penalty = None
        if self.l1 is not None or self.l2 is not None:
            self._step_penalty = add_penalty_gradient(self.weights(), self.l1, self.l2)
        if self.optimizer_cfg.clip_grad_norm:
            self._clip(self.optimizer_cfg.clip_grad_norm)
        for net, group in zip(self.nets, self.groups):
            stds = [self.specs[m].grad_noise_std for m in group]
            if any(stds):
                add_gradient_noise([p.grad for p in net.parameters() if p.grad is not None], stds,
                                   [self.specs[m].grad_noise for m in group])

    @torch.no_grad()
    def _clip(self, max_norm: float) -> None:
        """Rescale each member's gradients to at most ``max_norm`` (global L2 norm over that member's parameters)."""
        for net in self.nets:
            grads = [p.grad for p in net.parameters() if p.grad is not None]
            norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
            scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))

    # --- evaluation ---------------------------------------------------------------------------------

    def _evaluate(self, minibatch: Minibatch, stage: str) -> None:
        output = self(minibatch.x)
        target = self.targets(output, minibatch.y)
        self._accumulate(stage, output, target, self.data_loss(output, target), None)

    def validation_step(self, minibatch: Minibatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(minibatch, "val" if dataloader_idx == 0 else "train_eval")

    def test_step(self, minibatch: Minibatch, batch_idx: int) -> None:
        self._evaluate(minibatch, "test")

    # --- the end of an epoch ------------------------------------------------------------------------

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._totals.clear()
            return
        values = {**self._means("train"), **self._means("val"), **self._means("train_eval")}
        values["gen_gap/loss"] = values["val/loss"] - values["train_eval/loss"]
        if self.task == metrics.CLASSIFICATION:
            values["gen_gap/acc"] = values["train_eval/acc"] - values["val/acc"]
        values.update(weight_statistics(self.weights()))
        values["lr"] = torch.tensor([self.optimizers().param_groups[g]["lr"] for g, group in enumerate(self.groups)
                                     for _ in group], device=self.device)
        names = list(values)
        table = torch.stack([values[name].float().to(self.device) for name in names]).T.tolist()  # one host sync
        self.rows = {member: {"epoch": float(self.epoch), **dict(zip(names, row))}
                     for member, row in zip(self.active, table)}
        for member, row in self.rows.items():
            self._check_finite(member, row)

    def _check_finite(self, member: int, row: Row) -> None:
        for name in ("train/loss", "train/total_loss", "val/loss"):
            if name in row and not math.isfinite(row[name]):
                error = DivergenceError(f"training diverged: {name} is {row[name]} at epoch {self.epoch}")
                self.pending[member] = Stop(FAILED, describe(error), self.epoch, error)
                return

    def on_train_epoch_end(self) -> None:
        for member, row in self.rows.items():
            self.history[member].append(row)
            self.metric_sink(member, row, self.epoch)
        if self.histogram is not None:
            self._log_histograms()
        due = {m: s for m, s in self.pending.items() if s.status != OK or self.epoch + 1 >= self.min_epochs}
        if due:
            self._retire(due)
        if self.schedule is not None:  # after logging "lr": a row shows the rate its epoch trained with
            self.schedule.step()
        if not self.active or (self.max_steps is not None and self.steps_done >= self.max_steps):
            self.trainer.should_stop = True
        self.rows = {}

    def _log_histograms(self) -> None:
        weights = {name: w.detach().cpu() for name, w in zip(penalized_weights(self.nets[0]), self.weights())}
        for index, member in enumerate(self.active):
            for name, w in weights.items():
                self.histogram(member, f"weights/{name}", w[index], self.epoch)

    def _retire(self, stops: dict[int, Stop]) -> None:
        """Remove stopped members: slice their parameters, buffers and optimizer state out of the pack."""
        for member, stop in stops.items():
            self.pending.pop(member, None)
            self.stops[member] = stop
            self.on_member_stop(member, stop)
        keep = [m for m in self.active if m not in stops]
        if not keep:
            self.active = []
            return
        old_groups, old_sizes = self.groups, [len(list(net.parameters())) for net in self.nets]
        old_state = self.optimizers().optimizer.state_dict()
        self.load_member_states({m: self.member_state(m) for m in keep})
        self.trainer.optimizers = [self._carry_over(old_groups, old_sizes, old_state)]

    def _carry_over(self, old_groups: list[list[int]], old_sizes: list[int], old: dict[str, Any]) -> torch.optim.Optimizer:
        """A new optimizer (and schedule) over the rebuilt nets, with each kept member's slice of the old state.

        A state dict numbers parameters in the order of its groups; each new group is what is left
        of one old group.
        """
        optimizer = self._make_optimizer()
        new = optimizer.state_dict()
        sources = [next(g for g, members in enumerate(old_groups) if group[0] in members) for group in self.groups]
        state, index = {}, 0
        for g_new, g_old in enumerate(sources):
            rows = torch.tensor([old_groups[g_old].index(m) for m in self.groups[g_new]])
            first = sum(old_sizes[:g_old])
            for position in range(old_sizes[g_old]):
                if first + position in old["state"]:
                    state[index] = {k: v[rows.to(v.device)] if torch.is_tensor(v) and v.dim() > 0 else v
                                    for k, v in old["state"][first + position].items()}
                index += 1
            new["param_groups"][g_new] = {**old["param_groups"][g_old], "params": new["param_groups"][g_new]["params"]}
        optimizer.load_state_dict({"state": state, "param_groups": new["param_groups"]})
        if self.schedule is not None:
            schedule_state = {k: [v[g] for g in sources] if isinstance(v, list) and len(v) == len(old_groups) else v
                              for k, v in self.schedule.state_dict().items()}
            self.schedule = build_schedule(self.optimizer_cfg, optimizer, self.max_epochs)
            self.schedule.load_state_dict(schedule_state)
        return optimizer

    def _make_optimizer(self) -> torch.optim.Optimizer:
        groups = [{"params": list(net.parameters()), "lr": self.specs[group[0]].lr,
                   "weight_decay": self.specs[group[0]].weight_decay} for net, group in zip(self.nets, self.groups)]
        return build_optimizer(self.optimizer_cfg, groups, self.device)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self._make_optimizer()
        self.schedule = build_schedule(self.optimizer_cfg, optimizer, self.max_epochs)
        return optimizer

    def on_test_epoch_end(self) -> None:
        values = self._means("test")
        names = list(values)
        table = torch.stack([values[name].float() for name in names]).T.tolist()
        self.test_results = {member: dict(zip(names, row)) for member, row in zip(self.active, table)}
