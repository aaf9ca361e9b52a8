"""The grid sweeper behind ``hydra/sweeper=regsweep``: Hydra's basic sweep, with integer ranges and packs.

- ``key=a-b`` integer ranges (``seed=0-9``), on the command line and in ``hydra.sweeper.params``;
- ``group=glob(*)`` sweeps a config group's options, as in Hydra's basic sweeper; a sweep that takes
  no value (a glob that matches nothing, an empty range) is refused;
- every job's config is composed and checked before the first job starts;
- every job is planned before the first one runs (``sweep_plan.json``, each job dir prepared),
  grouped into packs and launched by the configured launcher
  (:class:`regsweep.sweep.runner.JobRunner`); a failed job never stops the others, and the sweep
  exits non-zero naming the jobs that did not complete;
- the same command on the same ``hydra.sweep.dir`` resumes the sweep: completed jobs are kept,
  the others run again (an interrupted one from its last checkpoint); another command there is
  refused, and so is a second process while the first still runs (a lock).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.config_loader import ConfigLoader
from hydra.errors import HydraException

from regsweep.errors import RegsweepError
from regsweep.sweep.lock import sweep_dir_lock
from regsweep.sweep.overrides import expand_integer_ranges, parse_overrides, sweep_values
from regsweep.sweep.plan import COMMAND_FILE, DamagedPlanError, SweepPlan
from regsweep.sweep.sweeper import LaunchingSweeper

log = logging.getLogger(__name__)


class SweepFailedError(RegsweepError):
    """Some jobs of a multirun did not complete; the others ran and kept their results."""


def sweep_arguments(params: Mapping[str, str], command_line: Sequence[str]) -> list[str]:
    """A sweep's arguments: ``hydra.sweeper.params`` first, then the command line (which wins for a key given in
    both), integer ranges expanded."""
    given = {argument.partition("=")[0].lstrip("+~") for argument in command_line}
    from_config = [f"{key}={value}" for key, value in params.items() if key.lstrip("+~") not in given]
    return expand_integer_ranges([*from_config, *command_line])


def sweep_jobs(arguments: Sequence[str], config_loader: ConfigLoader | None = None) -> list[list[str]]:
    """The cartesian product of the sweep's overrides (``a=1,2 b=x,y``: 4 jobs), in command-line order.

    ``config_loader`` lists a config group's options for ``group=glob(...)``.
    """
    choices = []
    for override in parse_overrides(arguments, config_loader):
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise HydraException(f"{key}: a {override.value_type.name} sweep needs an Optuna search "
                                     "(-m hparams_search=optuna); a grid takes lists, ranges and range()")
            choices.append([f"{key}={value}" for value in sweep_values(override)])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]


class RegsweepSweeperImpl(LaunchingSweeper):
    def __init__(self, max_batch_size: int | None, params: dict[str, str] | None) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})

    def arguments(self, command_line: Sequence[str]) -> list[str]:
        return sweep_arguments(self.params, command_line)

    def sweep(self, arguments: list[str]) -> Any:
        from regsweep.sweep.runner import JobRunner, failure_message  # the training stack: only when sweeping

        arguments = self.arguments(arguments)
        sweep_dir = self.sweep_dir
        with sweep_dir_lock(sweep_dir):
            runner = JobRunner(self.config, self.hydra_context, self.launcher)
            try:
                plan = SweepPlan.load(sweep_dir)
            except DamagedPlanError as damaged:
                plan = self._rebuilt_plan(runner, arguments, sweep_dir, damaged)
            if plan is None:
                outcomes = self._run(runner, arguments, sweep_dir)
            else:
                outcomes = self._resume(runner, plan, arguments, sweep_dir)
        failures = failure_message(outcomes)
        if failures:
            raise SweepFailedError(failures)
        return outcomes

    def _run(self, runner: Any, arguments: list[str], sweep_dir: Path) -> list[Any]:
        """Plan every job (the plan is on disk before the first one starts), then launch them in batches."""
        jobs = runner.prepare(sweep_jobs(arguments, self.hydra_context.config_loader), first_num=0)
        SweepPlan(arguments, sys.argv, os.getcwd(), runner.sweep_id, jobs).save(sweep_dir)
        return self._launch(runner, jobs)

    def _rebuilt_plan(self, runner: Any, arguments: list[str], sweep_dir: Path, damaged: DamagedPlanError) -> SweepPlan:
        """A damaged plan made again from this command, when it is the sweep's own (the command recorded beside the
        plan says so): the same jobs, dirs, packs and sweep id, so the jobs' records are still the sweep's."""
        from regsweep.sweep.runner import SweepPlanError

        recorded = damaged.recorded
        if recorded is None:
            raise SweepPlanError(f"{damaged}, and so is {sweep_dir / COMMAND_FILE}, which says which sweep it was: "
                                 "choose another hydra.sweep.dir") from None
        if recorded.arguments != arguments:
            raise SweepPlanError(f"{damaged}; {sweep_dir} holds another sweep, started with: "
                                 f"{' '.join(recorded.arguments)}, not: {' '.join(arguments)}") from None
        runner.sweep_id = recorded.id
        jobs = runner.prepare(sweep_jobs(arguments, self.hydra_context.config_loader), first_num=0)
        plan = SweepPlan(arguments, recorded.command, recorded.cwd, recorded.id, jobs)
        plan.save(sweep_dir)
        log.warning("%s: rebuilt from the command recorded beside it, this sweep's own", damaged)
        return plan

    def _launch(self, runner: Any, jobs: list[Any]) -> list[Any]:
        """Launch planned jobs in batches of ``max_batch_size`` (all at once when unset); outcomes in order."""
        size = self.max_batch_size or len(jobs)
        return [outcome for start in range(0, len(jobs), size) for outcome in runner.launch(jobs[start : start + size])]

    def _resume(self, runner: Any, plan: SweepPlan, arguments: list[str], sweep_dir: Path) -> list[Any]:
        """The same sweep again: keep the jobs that completed, run the others (from their checkpoints)."""
        from regsweep.sweep.runner import SweepPlanError

        if plan.arguments != arguments:
            raise SweepPlanError(f"{sweep_dir} holds another sweep, planned with: {' '.join(plan.arguments)}\n"
                                 f"this command sweeps: {' '.join(arguments)}\n"
                                 "Repeat that sweep's command to resume it, or choose another hydra.sweep.dir.")
        runner.sweep_id = plan.id  # its jobs' records name it (a plan written before plans had ids: None)
        outcomes = runner.outcomes_so_far(plan.jobs)
        todo = [job for job in plan.jobs if not (outcomes[job.num].record and outcomes[job.num].record.complete)]
        log.info("Resuming %s: %d of %d jobs completed, running the other %d", sweep_dir, len(plan.jobs) - len(todo),
                 len(plan.jobs), len(todo))
        if todo:
            runner.prepare_again(todo)
            outcomes.update({o.num: o for o in self._launch(runner, todo)})
        return [outcomes[job.num] for job in plan.jobs]
