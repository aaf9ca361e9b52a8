"""The one LightningModule of the harness: a pack of members trained as one batched model.

Each member is one job (its own seed, penalty strengths, dropout rate, learning rate, weight
decay, augmentation); a job trained alone is a pack of one. Members whose learning rate and
weight decay agree share a :class:`~regsweep.networks.PackedNetwork` and a parameter group of one torch
optimizer, so torch's own (fused) step updates them.

The training contract (see :mod:`regsweep.data.datamodule`): ``training_step`` receives a list of
minibatches, each holding every active member's own minibatch, and makes one optimizer step per
minibatch, in order. Lightning's loop therefore runs once per group of ``minibatches_per_step``
minibatches, which keeps its bookkeeping small next to a small model's step, while the updates are
exactly those of one minibatch per step.

After every epoch the module measures each member (train running means, validation, a training
subset in eval mode, weight statistics) in one host sync, exposes the rows to the member-aware
callbacks (:mod:`regsweep.training.callbacks`), which may stop a member; stopped members leave the pack
(their parameters and optimizer state are sliced away), so the others train on at full speed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regsweep import metrics
from regsweep.data.batches import Minibatch, PackProgress
from regsweep.errors import DivergenceError, describe
from regsweep.memberwise import MemberSpec
from regsweep.networks import ModelFamily
from regsweep.training.optim import (
    GROUPS_PER_NET,
    OptimizerConfig,
    Schedule,
    build_optimizer,
    build_schedule,
    clip_member_gradients,
    net_param_groups,
)
from regsweep.training.penalty import (
    PenaltyStrengths, add_gradient_noise, add_penalty_gradient, penalty_value, weight_statistics,
)
from regsweep.records import FAILED, OK

Row = dict[str, float]


def gradients(net: nn.Module) -> list[Tensor]:
    """The gradients a backward pass left on ``net``'s parameters ([members, ...] each)."""
    return [p.grad for p in net.parameters() if p.grad is not None]


def _member_slice(value: Any, index: int) -> Any:
    """A member's rows of an optimizer state tensor ([members, ...]); scalars (Adam's step) as they are."""
    if torch.is_tensor(value) and value.dim() > 0:
        return value[index : index + 1].detach().clone()
    return value.clone() if torch.is_tensor(value) else value


def _group_entries(state: dict[str, Any], groups: int, keep: list[int]) -> dict[str, Any]:
    """A schedule's state with its per-parameter-group lists cut to the groups in ``keep``."""
    return {k: [v[g] for g in keep] if isinstance(v, list) and len(v) == groups else v for k, v in state.items()}


def _merge_group_entries(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One schedule state from one-net states, in net order (the inverse of ``_group_entries``)."""
    first = states[0]
    return {k: [entry for s in states for entry in s[k]] if isinstance(v, list) and len(v) == GROUPS_PER_NET else v
            for k, v in first.items()}


def _net_groups(g: int) -> range:
    """The optimizer parameter groups of a pack's net ``g`` (``optim.net_param_groups``)."""
    return range(GROUPS_PER_NET * g, GROUPS_PER_NET * (g + 1))


def _position_in(groups: list[list[int]], member: int) -> tuple[int, int]:
    """(group, row) of a member in a pack's groups."""
    g = next(index for index, group in enumerate(groups) if member in group)
    return g, groups[g].index(member)


def _member_optimizer_state(member: int, groups: list[list[int]], order: list[list[int]], optimizer: dict[str, Any],
                            schedule: dict[str, Any] | None) -> dict[str, Any]:
    """A member's rows of a pack's optimizer state dict and its net's schedule entries, as if it trained alone.

    ``order[g]``: the optimizer's state index of each of net g's parameters, in the net's order; the
    member's state is keyed by that order, whatever pack it is loaded into.
    """
    g, i = _position_in(groups, member)
    slices = {k: {name: _member_slice(value, i) for name, value in optimizer["state"][index].items()}
              for k, index in enumerate(order[g]) if index in optimizer["state"]}
    own = _net_groups(g)
    settings = [{k: v for k, v in optimizer["param_groups"][j].items() if k != "params"} for j in own]
    return {"optimizer": {"state": slices, "groups": settings},
            "schedule": None if schedule is None else _group_entries(schedule, GROUPS_PER_NET * len(groups), list(own))}


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

    def __init__(self, family: ModelFamily, optimizer: OptimizerConfig, members: list[MemberSpec], task: str,
                 max_epochs: int, min_epochs: int = 0, max_steps: int | None = None, epoch_offset: int = 0,
                 steps_done: int = 0) -> None:
        super().__init__()
        self.automatic_optimization = False  # one optimizer step per minibatch of a group; see training_step
        self.family, self.optimizer_cfg, self.task = family, optimizer, task
        self.max_epochs, self.min_epochs = max_epochs, min_epochs
        self.epoch_offset = epoch_offset  # epochs trained before a resume
        self.max_steps = max_steps
        self.progress = PackProgress(steps_done=steps_done)  # which members train; steps over the whole run
        self.specs = {spec.id: spec for spec in members}
        self.nets = nn.ModuleList()
        self._build([spec.id for spec in members])
        self.schedule: Schedule | None = None
        self.rows: dict[int, Row] = {}  # this epoch's measurements of the active members
        self.history: dict[int, list[Row]] = {spec.id: [] for spec in members}
        self.pending: dict[int, Stop] = {}  # stop requests (waiting for trainer.min_epochs)
        self.epoch_times: list[float] = []  # wall seconds of each epoch (training, validation, logging)
        self.interrupt: BaseException | None = None  # set by a signal handler; raised at the next safe point
        self.test_results: dict[int, Row] = {}
        self.test_predictions: dict[int, Tensor] = {}  # regression: each member's predictions of the test set
        self._totals: dict[str, _Totals] = {}
        self._step_penalty: Tensor | None = None  # this step's penalty per member, for train/penalty

    # --- the pack's members ------------------------------------------------------------------------

    def _groups_of(self, ids: list[int]) -> list[list[int]]:
        """Consecutive members with equal (lr, weight_decay) share a net and an optimizer parameter group."""
        groups: list[list[int]] = []
        for member in ids:
            if groups and self.specs[groups[-1][0]].values.optimizer_group == self.specs[member].values.optimizer_group:
                groups[-1].append(member)
            else:
                groups.append([member])
        return groups

    def _build(self, ids: list[int]) -> None:
        """(Re)build the nets for these members (freshly initialized; ``load_member_states`` loads states)."""
        self.groups = self._groups_of(ids)
        self.progress.active = [m for group in self.groups for m in group]
        self.nets = nn.ModuleList(self.family.pack([self.specs[m].model for m in group])
                                  for group in self.groups).to(self.device)
        self.strengths = nn.ModuleList(
            PenaltyStrengths([self.specs[m].values.l1 for m in group], [self.specs[m].values.l2 for m in group])
            for group in self.groups).to(self.device)
        self.penalized = any(s.l1 is not None or s.l2 is not None for s in self.strengths)

    def _position(self, member: int) -> tuple[int, int]:
        return _position_in(self.groups, member)

    def member_state(self, member: int) -> dict[str, Tensor]:
        """An active member's slice of every parameter and buffer (cloned), keyed as in its own network."""
        g, i = self._position(member)
        return self.nets[g].member_state(i)

    def load_member_states(self, states: dict[int, dict[str, Tensor]]) -> None:
        """Make the pack exactly these members, with these states of their own (resume, or testing kept epochs)."""
        self._build([m for m in self.specs if m in states])
        for net, group in zip(self.nets, self.groups):
            net.load_members([states[m] for m in group])

    def sibling(self, members: list[int]) -> "PackModule":
        """A module of just these members (freshly built: load their states), on this one's device."""
        return PackModule(self.family, self.optimizer_cfg, [self.specs[m] for m in members], self.task,
                          self.max_epochs).to(self.device)

    def stop_member(self, member: int, status: str, reason: str) -> None:
        """Take a member out of the pack at the end of this epoch (not before trainer.min_epochs)."""
        if member in self.active and member not in self.pending:
            self.pending[member] = Stop(status, reason, self.epoch)

    @property
    def active(self) -> list[int]:
        """The members that still train, in pack order."""
        return self.progress.active

    @property
    def steps_done(self) -> int:
        return self.progress.steps_done

    @property
    def epoch(self) -> int:
        return self.epoch_offset + self.current_epoch

    def member_weights(self, member: int) -> dict[str, Tensor]:
        """An active member's penalized weights in torch's layout and its own layer names, for weights.npz."""
        g, i = self._position(member)
        return self.nets[g].member_weights(i)

    # --- forward, loss ------------------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        """[members, B, ...] (or a shared [B, ...]) -> [members, B, outputs]."""
        if len(self.nets) == 1:
            return self.nets[0](x)
        if x.dim() > len(self.family.input_shape) + 1:  # per-member inputs: each net takes its members' slice
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
        per_net = [list(net.penalized().values()) for net in self.nets]
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
        self.check_interrupt()
        optimizer = self.optimizers()
        for minibatch in group:
            output = self(minibatch.x)
            losses = self.data_loss(output, minibatch.y)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(losses.sum())  # members share no parameter: each gets its own gradient
            optimizer.step()  # runs on_before_optimizer_step (penalty, clipping, gradient noise) first
            self.progress.steps_done += 1
            with torch.no_grad():
                self._accumulate("train", output.detach(), minibatch.y, losses.detach(), self._step_penalty)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The rest of each member's gradient, on the unscaled data-loss gradient: penalty, then clipping, then noise."""
        self._step_penalty = self._penalties(add_penalty_gradient) if self.penalized else None
        if self.optimizer_cfg.clip_grad_norm:
            for net in self.nets:
                clip_member_gradients(gradients(net), self.optimizer_cfg.clip_grad_norm)
        for net, group in zip(self.nets, self.groups):
            stds = [self.specs[m].values.grad_noise_std for m in group]
            if any(stds):
                add_gradient_noise(gradients(net), stds, [self.specs[m].streams["grad_noise"] for m in group])

    def _penalties(self, compute: Callable[[list[Tensor], Tensor | None, Tensor | None], Tensor]) -> Tensor:
        """Each active member's penalty, in the members' order, by ``compute`` (with or without its gradient)."""
        return torch.cat([compute(list(net.penalized().values()), strengths.l1, strengths.l2)
                          for net, strengths in zip(self.nets, self.strengths)])

    # --- evaluation ---------------------------------------------------------------------------------

    def _evaluate(self, minibatch: Minibatch, stage: str) -> Tensor:
        output = self(minibatch.x)
        target = self.targets(output, minibatch.y)
        self._accumulate(stage, output, target, self.data_loss(output, target), None)
        return output

    def validation_step(self, minibatch: Minibatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(minibatch, "val" if dataloader_idx == 0 else "train_eval")

    def test_step(self, minibatch: Minibatch, batch_idx: int) -> None:
        output = self._evaluate(minibatch, "test")
        if self.task != metrics.CLASSIFICATION:  # a regression job keeps its predictions of the test grid
            self._predictions.append(output.detach()[..., 0].cpu())

    def on_test_epoch_start(self) -> None:
        self._predictions: list[Tensor] = []

    # --- the end of an epoch ------------------------------------------------------------------------

    def on_train_epoch_start(self) -> None:
        self._epoch_started = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._totals.clear()
            return
        values = {**self._means("train"), **self._means("val"), **self._means("train_eval")}
        values["gen_gap/loss"] = values["val/loss"] - values["train_eval/loss"]
        if self.task == metrics.CLASSIFICATION:
            values["gen_gap/acc"] = values["train_eval/acc"] - values["val/acc"]
        values.update(weight_statistics(self.weights()))
        values["lr"] = torch.tensor([self.optimizers().param_groups[_net_groups(g)[0]]["lr"]
                                     for g, group in enumerate(self.groups)
                                     for _ in group], device=self.device)
        names = list(values)
        table = torch.stack([values[name].float().to(self.device) for name in names]).T.tolist()  # one host sync
        self.rows = {member: {"epoch": float(self.epoch), **dict(zip(names, row))}
                     for member, row in zip(self.active, table)}
        if len(self.rows) == 1:  # a job alone: its metrics reach Lightning's callbacks (callback_metrics), as any module's
            self.log_dict({k: v for k, v in next(iter(self.rows.values())).items() if k != "epoch"}, logger=False)
        for member, row in self.rows.items():
            self._check_finite(member, row)

    def _check_finite(self, member: int, row: Row) -> None:
        for name in ("train/loss", "train/total_loss", "val/loss"):
            if name in row and not math.isfinite(row[name]):
                error = DivergenceError(f"training diverged: {name} is {row[name]} at epoch {self.epoch}")
                self.pending[member] = Stop(FAILED, describe(error), self.epoch, error)
                return

    def on_validation_end(self) -> None:
        """The epoch's account, once the member-aware callbacks have read its rows: the rows join the members'
        histories, and the schedule steps (after its rate was recorded: a row shows the rate its epoch trained
        with). The job reads it at the epoch's end, in a Lightning callback called after every other callback's
        ``on_train_epoch_end`` (which may still ask for stops) and before this module's, which retires the members
        whose stops are due (``stopping``)."""
        if self.trainer.sanity_checking:
            return
        for member, row in self.rows.items():
            self.history[member].append(row)
        if self.schedule is not None:
            self.schedule.step()

    @property
    def stopping(self) -> dict[int, Stop]:
        """The members that leave the pack at the end of this epoch: failed ones at once, others from min_epochs on."""
        return {m: s for m, s in self.pending.items() if s.status != OK or self.epoch + 1 >= self.min_epochs}

    def on_train_epoch_end(self) -> None:
        leaving = list(self.stopping)
        for member in leaving:
            del self.pending[member]
        if leaving:
            self._retire(leaving)
        if not self.active or (self.max_steps is not None and self.steps_done >= self.max_steps):
            self.trainer.should_stop = True
        self.rows = {}
        self.epoch_times.append(time.perf_counter() - self._epoch_started)

    # --- resumable training state -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole pack's training state after this epoch, in a few tensor copies (cheap enough every epoch).

        Taken between epochs (after the schedule stepped), so a member continued from it starts the
        next epoch; :meth:`training_state` cuts one member's part out of it.
        """
        optimizer = self.optimizers().optimizer.state_dict()
        return {
            "nets": [net.snapshot() for net in self.nets],  # (stacked state, what cuts a member's out of it)
            "optimizer": {"state": {k: {name: v.clone() if torch.is_tensor(v) else v for name, v in state.items()}
                                    for k, state in optimizer["state"].items()},
                          "param_groups": copy.deepcopy(optimizer["param_groups"])},
            "schedule": None if self.schedule is None else self.schedule.state_dict(),
            "groups": [list(group) for group in self.groups], "order": self._state_order(self.optimizers().optimizer),
            "epochs": self.epoch + 1, "steps": self.steps_done,
        }

    def training_state(self, member: int, snapshot: dict[str, Any]) -> dict[str, Any]:
        """What a member needs to continue exactly where a snapshot has it: weights, optimizer, schedule, counters."""
        groups = snapshot["groups"]
        g, i = _position_in(groups, member)
        stacked, cut = snapshot["nets"][g]
        model = cut(stacked, i)
        return {"model": model, **_member_optimizer_state(member, groups, snapshot["order"], snapshot["optimizer"],
                                                          snapshot["schedule"]),
                "epochs": snapshot["epochs"], "steps": snapshot["steps"]}

    def resume(self, states: dict[int, dict[str, Any]]) -> None:
        """Continue these members from their training states (all taken after the same epoch)."""
        self.load_member_states({m: state["model"] for m, state in states.items()})
        self._resumed = states

    def on_fit_start(self) -> None:
        """Resumed members' optimizer and schedule state into the optimizer Lightning has just built."""
        states = getattr(self, "_resumed", None)
        if not states:
            return
        self._load_member_optimizer_states(self.optimizers().optimizer, states)
        self._resumed = None

    def _load_member_optimizer_states(self, optimizer: torch.optim.Optimizer, states: dict[int, dict[str, Any]]) -> None:
        """Stack the members' own optimizer and schedule states (``_member_optimizer_state``) into the pack's."""
        layout, state = optimizer.state_dict(), {}
        for g, (group, order) in enumerate(zip(self.groups, self._state_order(optimizer))):
            for k, index in enumerate(order):
                saved = [states[m]["optimizer"]["state"].get(k) for m in group]
                if all(s is not None for s in saved):
                    state[index] = {name: torch.cat([s[name] for s in saved]) if saved[0][name].dim() > 0
                                    else saved[0][name] for name in saved[0]}
            for j, settings in zip(_net_groups(g), states[group[0]]["optimizer"]["groups"]):
                current = layout["param_groups"][j]  # its parameters and whether its step is fused stay this pack's
                layout["param_groups"][j] = {**settings, "params": current["params"], "fused": current["fused"]}
        optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})
        if self.schedule is not None:
            merged = _merge_group_entries([states[group[0]]["schedule"] for group in self.groups])
            self.schedule.load_state_dict(merged)

    def check_interrupt(self) -> None:
        """Raise ``interrupt`` at a safe point (between optimizer steps) once a signal asked for it."""
        if self.interrupt is not None:
            raise self.interrupt

    def penalized_weights(self) -> dict[str, Tensor]:
        """The penalized weights by name, [members, ...] each, in member order (statistics, histograms)."""
        return dict(zip(self.nets[0].penalized(), self.weights()))

    def _retire(self, leaving: list[int]) -> None:
        """Remove stopped members: slice their parameters, buffers and optimizer state out of the pack."""
        keep = [m for m in self.active if m not in leaving]
        if not keep:
            self.progress.active = []
            return
        # Each kept member's own optimizer and schedule state, then the rebuilt pack (its groups may merge
        # neighbours that a retired member separated) gets them stacked, as a resume does
        optimizer_state = self.optimizers().optimizer.state_dict()
        schedule_state = None if self.schedule is None else self.schedule.state_dict()
        order = self._state_order(self.optimizers().optimizer)
        kept = {m: _member_optimizer_state(m, self.groups, order, optimizer_state, schedule_state) for m in keep}
        self.load_member_states({m: self.member_state(m) for m in keep})
        optimizer = self._make_optimizer()
        if self.schedule is not None:
            self.schedule = build_schedule(self.optimizer_cfg, optimizer, self.max_epochs)
        self._load_member_optimizer_states(optimizer, kept)
        self.trainer.optimizers = [optimizer]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        groups = [param_group for net, group in zip(self.nets, self.groups)
                  for param_group in net_param_groups(list(net.parameters()), *self.specs[group[0]].values.optimizer_group,
                                                      self.device)]
        return build_optimizer(self.optimizer_cfg, groups)

    def _state_order(self, optimizer: torch.optim.Optimizer) -> list[list[int]]:
        """For each net, ``optimizer``'s state index of each of its parameters, in the net's own order."""
        index = {id(p): i for i, p in enumerate(p for group in optimizer.param_groups for p in group["params"])}
        return [[index[id(p)] for p in net.parameters()] for net in self.nets]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = self._make_optimizer()
        self.schedule = build_schedule(self.optimizer_cfg, optimizer, self.max_epochs)
        return optimizer

    def test_outside_fit(self, batches: Iterable[Minibatch], context: ContextManager[Any]) -> None:
        """The test loop of ``trainer.test`` for a module no trainer runs (members that leave a pack mid-fit, while
        the trainer is busy): the same steps and sums, in eval mode, without autograd, in the precision's context."""
        self.eval()
        with torch.inference_mode(), context:
            self.on_test_epoch_start()
            for index, minibatch in enumerate(batches):
                self.test_step(minibatch, index)
            self.on_test_epoch_end()

    def on_test_epoch_end(self) -> None:
        values = self._means("test")
        values["test/total_loss"] = values["test/loss"] + self._penalties(penalty_value).to(values["test/loss"])
        names = list(values)
        table = torch.stack([values[name].float() for name in names]).T.tolist()
        self.test_results = {member: dict(zip(names, row)) for member, row in zip(self.active, table)}
        if self._predictions:
            predictions = torch.cat(self._predictions, dim=1)
            self.test_predictions = {member: predictions[i] for i, member in enumerate(self.active)}
