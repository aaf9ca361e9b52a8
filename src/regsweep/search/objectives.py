"""What a search optimizes, checked against its directions before any trial runs.

A search maximizing ``val/loss`` (e.g. ``hparams_search=optuna data=regression`` without
``hydra.sweeper.direction=minimize``) would run for hours towards the worst model; a misspelled
extra objective would fail every trial at its very end. Both are refused up front.
"""

from __future__ import annotations

from omegaconf import DictConfig

from regsweep.config import RegressionDataConfig, validate
from regsweep.data.splits import CLASSIFICATION, REGRESSION
from regsweep.errors import ConfigError
from regsweep.train import objective_names

# Per-epoch metrics of the best epoch (the metrics.csv columns): what a job can return.
EPOCH_METRICS = (
    "val/loss", "val/acc", "train/loss", "train/acc", "train/penalty", "train/total_loss",
    "gen_gap/loss", "gen_gap/acc", "weights/l1", "weights/l2", "weights/sparsity",
)
# Metrics with only one sensible direction.
SENSE = {
    "val/loss": "minimize", "train/loss": "minimize", "train/total_loss": "minimize", "gen_gap/loss": "minimize",
    "val/acc": "maximize", "train/acc": "maximize",
}


def search_objectives(cfg: DictConfig) -> list[str]:
    """The metric names a job of this config returns, ``optimized_metric=auto`` resolved from the dataset."""
    settings = validate(cfg)
    task = REGRESSION if isinstance(settings.data, RegressionDataConfig) else CLASSIFICATION
    return objective_names(cfg, settings, task)


def check_objectives(names: list[str], directions: list[str]) -> None:
    """One direction per objective, each objective a per-epoch metric, losses minimized and accuracies maximized."""
    if len(names) != len(directions):
        raise ConfigError("hydra.sweeper.direction", directions,
                          f"needs one direction per objective; the search optimizes {names} "
                          "(optimized_metric, then search.extra_objectives)")
    for index, (name, direction) in enumerate(zip(names, directions)):
        if name not in EPOCH_METRICS:
            key = "optimized_metric" if index == 0 else "search.extra_objectives"
            raise ConfigError(key, name, f"a search needs a per-epoch metric, one of {', '.join(EPOCH_METRICS)}")
        if SENSE.get(name, direction) != direction:
            hint = " (optimized_metric=auto is val/loss for data=regression)" if name == "val/loss" else ""
            raise ConfigError("hydra.sweeper.direction", direction,
                              f"{name} can only be {SENSE[name]}d: set its direction to {SENSE[name]}{hint}")
