"""Pruning inside a job: report the optimized metric to the job's Optuna trial every epoch, stop when told.

Hydra's Optuna sweeper hands a job no trial object, so the sweeper passes the study name,
storage and trial number as ``search.*`` overrides and the job re-attaches through the shared
storage (:func:`regsweep.search.study.attach_trial`). The callback raises ``optuna.TrialPruned``;
the job records ``status: pruned`` and the sweeper tells Optuna the trial was PRUNED.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import optuna
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from regsweep.search.study import attach_trial, make_pruner


class OptunaPruning(Callback):
    """Report ``monitor`` to ``trial`` after each validation (step = epoch); raise TrialPruned when told to stop."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        self.trial = trial
        self.monitor = monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        # on_validation_end, not on_validation_epoch_end: Lightning calls callbacks' epoch-end hooks
        # before the module's, and the module logs its val metrics in its own epoch-end hook.
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return  # a diverged job must fail (the module's divergence check), not be pruned
        epoch = trainer.current_epoch
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch}: {self.monitor}={value:.4g} is unpromising next to earlier trials"
            )


def pruning_callbacks(cfg: DictConfig, monitor: str) -> list[Callback]:
    """The pruning callback for the job of a search trial that reports its learning curve; none otherwise.

    ``search.report_seed`` names the one seed of a trial whose curve the pruner sees (null for
    multi-objective searches, which Optuna cannot prune).
    """
    search = cfg.get("search")
    if search is None or search.get("report_seed") is None or search.report_seed != cfg.seed:
        return []
    pruner = HydraConfig.get().sweeper.get("pruner") if HydraConfig.initialized() else None
    trial = attach_trial(search.study_name, search.storage, search.trial, make_pruner(pruner))
    return [OptunaPruning(trial, monitor)]
