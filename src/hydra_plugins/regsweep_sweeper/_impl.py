"""The grid sweeper behind ``hydra/sweeper=regsweep``: Hydra's basic sweep, with integer ranges and packs.

- ``key=a-b`` integer ranges (``seed=0-9``), on the command line and in ``hydra.sweeper.params``;
- every job's config is composed and checked before the first job starts;
- jobs are planned (``sweep_plan.json``), grouped into packs and launched by the configured
  launcher (:class:`regsweep.sweep.runner.JobRunner`); a failed job never stops the others, and
  the sweep exits non-zero naming the jobs that did not complete.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from regsweep.errors import RegsweepError
from regsweep.sweep.overrides import expand_integer_ranges

log = logging.getLogger(__name__)


class SweepFailedError(RegsweepError):
    """Some jobs of a multirun did not complete; the others ran and kept their results."""


def sweep_jobs(arguments: Sequence[str]) -> list[list[str]]:
    """The cartesian product of the sweep's overrides (``a=1,2 b=x,y``: 4 jobs), in command-line order."""
    choices = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise HydraException(f"{key}: a {override.value_type.name} sweep needs an Optuna search "
                                     "(-m hparams_search=optuna); a grid takes lists, ranges and range()")
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]


class RegsweepSweeperImpl:
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def arguments(self, command_line: Sequence[str]) -> list[str]:
        """``hydra.sweeper.params`` first, then the command line (which wins for a key given in both)."""
        given = {argument.partition("=")[0].lstrip("+~") for argument in command_line}
        from_config = [f"{key}={value}" for key, value in self.params.items() if key.lstrip("+~") not in given]
        return expand_integer_ranges([*from_config, *command_line])

    def sweep(self, arguments: list[str]) -> Any:
        from regsweep.sweep.runner import JobRunner, failure_message  # the training stack: only when sweeping

        jobs = sweep_jobs(self.arguments(arguments))
        runner = JobRunner(self.config, self.hydra_context, self.launcher)
        size = self.max_batch_size or len(jobs)
        outcomes = []
        for start in range(0, len(jobs), size):
            outcomes += runner.run(jobs[start : start + size], first_num=start)
        failures = failure_message(outcomes)
        if failures:
            raise SweepFailedError(failures)
        return outcomes
