"""The set-up both sweepers share (``hydra/sweeper=regsweep`` and ``regsweep_optuna``)."""

from __future__ import annotations

from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write


def pin_sweep_dir(config: DictConfig) -> Path:
    """Resolve ``hydra.sweep.dir`` once, for the sweeper and its launcher alike.

    Its ``${now:...}`` would otherwise be resolved again by whatever reads it later (the submitit
    launcher's log folder landed in a second dir, microseconds apart).
    """
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    with read_write(config.hydra.sweep), open_dict(config.hydra.sweep):
        config.hydra.sweep.dir = str(sweep_dir)
    return sweep_dir


class LaunchingSweeper:
    """A sweeper's state from Hydra's ``setup``: the config and context, the pinned sweep dir, the launcher."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.sweep_dir = pin_sweep_dir(config)
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
