"""Pruning inside a job: report the optimized metric to the job's Optuna trial every epoch, stop when told.

Hydra's sweepers hand a job no trial object, so the search passes the study name, storage and
trial number as ``search.*`` overrides and this callback (``callbacks.optuna_pruning`` in
conf/hparams_search/optuna.yaml) re-attaches to the trial through the shared storage. Only a
search's jobs ever import it (and Optuna). In a pack, each member has its own trial: the member
of a trial's first seed reports; its other seeds follow its decision.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import optuna

from regsweep import metrics
from regsweep.training.callbacks import MemberCallback
from regsweep.records import PRUNED
from regsweep.search import PRUNING_KEY
from regsweep.search.study import attach_trial


class OptunaPruning(MemberCallback):
    """Report ``monitor`` to trial ``trial`` after each epoch; prune when told.

    ``monitor`` is the search's ``optimized_metric`` (conf/hparams_search/optuna.yaml), so the pruner
    judges a trial on the value the study is told; ``auto`` as there: val/acc, or val/loss for regression.
    """

    key = PRUNING_KEY

    def __init__(self, study_name: str | None, storage: str | None, trial: int | None, monitor: str = "auto",
                 report: bool = True, pruner: optuna.pruners.BasePruner | None = None) -> None:
        self.study_name, self.storage, self.trial_number = study_name, storage, trial
        self.monitor, self.report, self.pruner = monitor, report, pruner or optuna.pruners.NopPruner()
        self.trial: optuna.Trial | None = None
        self.pruned_reason: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        self.monitor = metrics.objective(self.monitor, pl_module.task, key=f"{self.key}.monitor")
        self.report = self.report and self.study_name is not None  # outside a search: nothing to report to
        if self.report and self.trial is None:
            self.trial = attach_trial(self.study_name, self.storage, self.trial_number, self.pruner)

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        row = self.row(pl_module)
        if not self.report or row is None:
            return
        value, epoch = row[self.monitor], int(row["epoch"])
        if not math.isfinite(value):
            return  # a diverged job must fail (the module's divergence check), not be pruned
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned_reason = (f"pruned after epoch {epoch}: {self.monitor}={value:.4g} is unpromising next to "
                                  "earlier trials")
            pl_module.stop_member(self.member, PRUNED, self.pruned_reason)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """A trial's other seeds stop with the seed that reports for it."""
        if self.report or self.member not in pl_module.active:
            return
        leader = next((cb for cb in trainer.callbacks if isinstance(cb, OptunaPruning) and cb.report
                       and cb.trial_number == self.trial_number and cb.pruned_reason), None)
        if leader is not None:
            pl_module.stop_member(self.member, PRUNED, leader.pruned_reason)
