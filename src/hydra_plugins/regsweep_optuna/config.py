"""Schema of ``hydra/sweeper=regsweep_optuna`` and its pruners, registered in Hydra's ConfigStore.

It extends Hydra's Optuna sweeper schema, so every ``hydra/sweeper/sampler`` option (tpe, random,
grid, cmaes, gp, nsgaii, ...) works unchanged; pruners are a sibling group, ``hydra/sweeper/pruner``.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import MISSING


@dataclass
class PrunerConfig:
    _target_: str = MISSING


@dataclass
class MedianPrunerConfig(PrunerConfig):
    """Stop a trial whose best value so far is worse than the median of earlier trials at the same epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # never prune before this many trials have finished
    n_warmup_steps: int = 1  # never prune before this many epochs of a trial (epoch 0 is noisy)
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig(PrunerConfig):
    """Successive halving over several brackets; resources are epochs."""

    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # auto: the epochs of the first finished trial
    reduction_factor: int = 3


@dataclass
class NopPrunerConfig(PrunerConfig):
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class RegsweepOptunaConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.regsweep_optuna.regsweep_optuna.RegsweepOptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    pruner: PrunerConfig = MISSING
    # null: a journal file, <sweep dir>/journal.log (safe for several processes on one machine);
    # a file path: a journal there; a URL (sqlite:///x.db or postgresql://...): that database.
    storage: Optional[str] = None
    n_jobs: int = 1  # trials per launcher call: > 1 only with a parallel launcher (hydra/launcher=joblib)
    max_failure_rate: float = 1.0  # failed share of a batch that aborts the search; 1.0 = never abort
    seeds_per_trial: int = 1  # train each trial with seeds seed..seed+K-1 and tell Optuna their mean
    top_k: int = 10  # rows of the report's table of best trials
    # A worker stamps its running trials every heartbeat_interval s; a RUNNING trial silent for
    # longer than grace_period s (its worker was killed) is failed by the next worker and retried once.
    heartbeat_interval: float = 30.0
    grace_period: float = 120.0


PRUNERS = {"median": MedianPrunerConfig, "hyperband": HyperbandPrunerConfig, "none": NopPrunerConfig}

ConfigStore.instance().store(group="hydra/sweeper", name="regsweep_optuna", node=RegsweepOptunaConf,
                             provider="regsweep")
for name, node in PRUNERS.items():
    ConfigStore.instance().store(group="hydra/sweeper/pruner", name=name, node=node, provider="regsweep")
