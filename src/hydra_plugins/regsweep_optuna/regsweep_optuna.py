"""``hydra/sweeper=regsweep_optuna``, chosen by the conf/hparams_search/ files; the logic lives in ``_impl``."""

from __future__ import annotations

from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class RegsweepOptunaSweeper(Sweeper):
    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, custom_search_space: Optional[str],
                 params: Optional[DictConfig], seeds_per_trial: int, top_k: int, heartbeat_interval: float,
                 grace_period: float) -> None:
        from hydra_plugins.regsweep_optuna._impl import SearchImpl  # Optuna: only for a search, not in every job

        self.sweeper = SearchImpl(sampler, pruner, direction, storage, study_name, n_trials, n_jobs, max_failure_rate,
                                  custom_search_space, params, seeds_per_trial, top_k, heartbeat_interval, grace_period)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
