"""Hydra's Optuna sweeper, made persistent, resumable, failure-tolerant, seed-averaging and reported.

The logic lives in :mod:`regsweep.search.sweeper`; this class only builds the sampler and the
pruner from their config groups and wires the search into Hydra's sweeper hooks.
"""

from __future__ import annotations

from typing import Any, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig

from regsweep.search.study import make_pruner
from regsweep.search.sweeper import SearchSweeperImpl

SAMPLER_TARGETS = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")


class RegsweepOptunaSweeper(Sweeper):
    """`hydra/sweeper=regsweep_optuna`, chosen by the conf/hparams_search/ files."""

    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Optional[str], study_name: Optional[str],
                 n_trials: int, n_jobs: int, max_failure_rate: float, custom_search_space: Optional[str],
                 params: Optional[DictConfig], seeds_per_trial: int, top_k: int, aggregate: bool) -> None:
        self.sweeper = SearchSweeperImpl(
            instantiate(sampler, _execution_whitelist_=SAMPLER_TARGETS), make_pruner(pruner), direction, storage,
            study_name, n_trials, n_jobs, max_failure_rate, custom_search_space, params, seeds_per_trial, top_k,
            aggregate,
        )

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        self.sweeper.sweep(arguments)
