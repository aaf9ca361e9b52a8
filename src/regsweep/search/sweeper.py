"""The search loop behind ``hydra/sweeper=regsweep_optuna``: Hydra's Optuna sweeper, made safe to leave running.

On top of hydra_optuna_sweeper's ask / launch / tell loop:

- the study is persistent (a journal file in the sweep dir by default) and re-running the same
  command resumes it; job dirs are named by trial number, unique in the study, so no run or
  concurrent worker overwrites another's;
- a resumed study must have the same fixed overrides, seeds and objectives, else its trials
  would not be comparable;
- a failed job makes a FAIL trial that carries the job's reason, and the search goes on; a job
  stopped by the pruner (:mod:`regsweep.search.pruning`) makes a PRUNED trial;
- ``seeds_per_trial=K``: a trial trains seeds seed..seed+K-1 and Optuna is told their mean; the
  pruner watches the first seed, and only trials that survive it train the other K-1;
- every run ends with the job table and the study report (:mod:`regsweep.search.report`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from optuna.distributions import BaseDistribution
from optuna.trial import Trial, TrialState

from regsweep.errors import ConfigError, RegsweepError
from regsweep.records import FAILED, OK, PRUNED, RESULT_FILE, find_job_dirs, read_result
from regsweep.search.objectives import check_objectives, search_objectives
from regsweep.search.report import REPORT_FILE, rerun_command, write_study_report
from regsweep.search.study import SETTINGS_ATTR, open_storage, storage_url
from regsweep.sweeps import summarize_sweep

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the search stopped before this trial finished"


class SearchError(RegsweepError):
    """The search cannot go on: an incompatible resumed study, too many failures, or nothing completed."""


@dataclass
class JobOutcome:
    """How one job of a trial ended, as its result record tells it."""

    status: str  # ok | failed | pruned
    job_dir: str  # the job dir's name inside the sweep dir
    values: list[float] = field(default_factory=list)
    reason: str | None = None


def job_outcome(ret: JobReturn) -> JobOutcome:
    """Read a finished job: its return value when it completed, else the status and reason of its result.json."""
    job_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir)
    if ret.status != JobStatus.COMPLETED:
        return _stopped_job(ret, job_dir)
    value = ret.return_value
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if not all(math.isfinite(v) for v in values):
        return JobOutcome(FAILED, job_dir.name, reason=f"the job returned a non-finite objective {values}")
    return JobOutcome(OK, job_dir.name, values)


def _stopped_job(ret: JobReturn, job_dir: Path) -> JobOutcome:
    """A pruned or failed job, as its result record says; a job that left none is asked for its exception."""
    if (job_dir / RESULT_FILE).exists():
        record = read_result(job_dir)
        if record.status != OK:
            return JobOutcome(record.status, job_dir.name, reason=record.error)
    try:
        ret.return_value  # raises the job's exception (Hydra also prints which job failed)
    except Exception as error:
        return JobOutcome(FAILED, job_dir.name, reason=f"{type(error).__name__}: {error}")
    return JobOutcome(FAILED, job_dir.name, reason=f"job status {ret.status.name}")


def trial_result(jobs: list[JobOutcome]) -> tuple[TrialState, list[float] | None, dict[str, Any]]:
    """State, values (the mean over seeds) and user attributes of a trial from its jobs."""
    attrs: dict[str, Any] = {"job_dirs": [job.job_dir for job in jobs]}
    stopped = next((job for job in jobs if job.status != OK), None)
    if stopped is not None:
        attrs["reason"] = stopped.reason
        return (TrialState.PRUNED if stopped.status == PRUNED else TrialState.FAIL), None, attrs
    if len(jobs) > 1:
        attrs["values_per_seed"] = [job.values for job in jobs]
    return TrialState.COMPLETE, [sum(v) / len(jobs) for v in zip(*(job.values for job in jobs))], attrs


def check_resumable(study: optuna.Study, directions: list[str], signature: dict[str, Any]) -> None:
    """Stamp a new study with what makes its trials comparable; refuse to add different trials to an old one."""
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != directions:
        raise SearchError(f"Study '{study.study_name}' optimizes {stored_directions}, this search {directions}: "
                          "choose a new hydra.sweeper.study_name")
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:  # one write, so a concurrent worker never sees half of it
        study.set_user_attr(SETTINGS_ATTR, signature)
        return
    differing = [key for key in signature if stored.get(key) != signature[key]]
    if differing:
        found = "; ".join(f"{key}: study {stored.get(key)}, this run {signature[key]}" for key in differing)
        raise SearchError(f"Study '{study.study_name}' was run with other settings ({found}); its trials would not "
                          "be comparable with this run's: repeat its settings or choose a new hydra.sweeper.study_name")


class SearchSweeperImpl(OptunaSweeperImpl):
    """Hydra's Optuna sweeper with a persistent, resumable, failure-tolerant, seed-averaging, reported search."""

    def __init__(self, sampler: Any, pruner: optuna.pruners.BasePruner, direction: Any, storage: str | None,
                 study_name: str | None, n_trials: int, n_jobs: int, max_failure_rate: float,
                 custom_search_space: str | None, params: Any, seeds_per_trial: int, top_k: int,
                 aggregate: bool) -> None:
        super().__init__(sampler, direction, storage, study_name, n_trials, n_jobs, max_failure_rate, None, params)
        if custom_search_space:  # built here to name the code a config may run (Hydra's execution whitelist)
            self.custom_search_space_extender = instantiate(
                {"_target_": custom_search_space, "_partial_": True}, _execution_whitelist_=("regsweep.*",))
        if seeds_per_trial < 1:
            raise ConfigError("hydra.sweeper.seeds_per_trial", seeds_per_trial, "must be >= 1")
        self.pruner = pruner
        self.seeds_per_trial = seeds_per_trial
        self.top_k = top_k
        self.aggregate = aggregate

    def sweep(self, arguments: list[str]) -> None:
        sweep_dir = Path(self.sweep_dir)
        space, fixed_params, deletions = self._search_space(arguments)
        directions = self._get_directions()
        objectives = search_objectives(self.config)
        check_objectives(objectives, directions)
        url = storage_url(self.storage, sweep_dir)
        fixed = sorted([*(f"{name}={value}" for name, value in fixed_params.items()), *deletions])
        study = self._open_study(url, directions, {
            "fixed_overrides": fixed, "seeds_per_trial": self.seeds_per_trial, "objectives": objectives})
        seeds = [self.config.seed + i for i in range(self.seeds_per_trial)]
        shared = [f"++search.study_name='{study.study_name}'", f"++search.storage='{url}'",
                  f"++search.report_seed={seeds[0] if len(directions) == 1 else 'null'}"]
        self.job_idx = sum(1 for _ in find_job_dirs(sweep_dir))  # Hydra's job numbers go on from earlier runs
        try:
            self._optimize(study, space, fixed_params, deletions, seeds, shared)
        finally:
            summarize_sweep(sweep_dir, self.aggregate)
            log.info("Study report: %s", write_study_report(study, sweep_dir, url, self.top_k))
        self._log_best(study, objectives)

    def _search_space(self, arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, Any], list[str]]:
        """Distributions, fixed values and deletions from hydra.sweeper.params and the command line."""
        space, fixed, deletions = create_params_from_overrides(self._parse_sweeper_params_config() + list(arguments))
        for name in fixed:
            space.pop(name, None)
        if "seed" in space:
            raise ConfigError("seed", "a search dimension",
                              "a seed is not a hyperparameter: average seeds with hydra.sweeper.seeds_per_trial=K")
        if self._is_grid():
            self.sampler = self.sampler({name: self._to_grid_sampler_choices(d) for name, d in space.items()})
        return space, fixed, deletions

    def _is_grid(self) -> bool:
        return isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler

    def _open_study(self, url: str, directions: list[str], signature: dict[str, Any]) -> optuna.Study:
        study = optuna.create_study(study_name=self.study_name, storage=open_storage(url), sampler=self.sampler,
                                    pruner=self.pruner, directions=directions, load_if_exists=True)
        check_resumable(study, directions, signature)
        if study.trials:  # a resumed study or a second worker must not replay the first run's random draws
            self.sampler.reseed_rng()
        log.info("Study '%s' (%d earlier trials) in %s; sampler %s, pruner %s", study.study_name, len(study.trials),
                 url, type(self.sampler).__name__, type(self.pruner).__name__)
        return study

    def _optimize(self, study: optuna.Study, space: dict[str, BaseDistribution], fixed_params: dict[str, Any],
                  deletions: list[str], seeds: list[int], shared: list[str]) -> None:
        """Ask, run and tell batches of n_jobs trials until n_trials ran (or a grid is exhausted)."""
        states: Counter[str] = Counter()
        n_left = self.n_trials
        while n_left > 0 and not (isinstance(self.sampler, optuna.samplers.GridSampler)
                                  and self.sampler.is_exhausted(study)):
            trials = [study.ask() for _ in range(min(self.n_jobs, n_left))]
            try:
                params = self._configure_trials(trials, space, fixed_params, deletions)
                outcomes = self._run_trials(trials, params, seeds, shared)
            except BaseException:  # Ctrl-C or a broken search space: leave no trial RUNNING forever
                for trial in trials:
                    self._tell(study, trial, TrialState.FAIL, None, {"reason": INTERRUPTED})
                raise
            batch = [self._tell(study, trial, *trial_result(jobs)) for trial, jobs in zip(trials, outcomes)]
            states.update(state.name.lower() for state in batch)
            n_left -= len(trials)
            if batch.count(TrialState.FAIL) / len(batch) > self.max_failure_rate:
                raise SearchError(f"{batch.count(TrialState.FAIL)} of {len(batch)} trials of a batch failed "
                                  f"(hydra.sweeper.max_failure_rate={self.max_failure_rate}): search stopped")
        log.info("This run added %d trials: %s", sum(states.values()), dict(states))

    def _run_trials(self, trials: list[Trial], params: Sequence[Sequence[str]], seeds: list[int],
                    shared: list[str]) -> list[list[JobOutcome]]:
        """Each trial's first seed, then the other seeds of the trials that were neither pruned nor failed."""
        def job(i: int, seed: int) -> list[str]:
            seed_override = [f"seed={seed}"] if len(seeds) > 1 else []
            return [*params[i], *seed_override, f"++search.trial={trials[i].number}", *shared]

        outcomes = [[first] for first in self._launch([job(i, seeds[0]) for i in range(len(trials))])]
        survivors = [i for i, jobs in enumerate(outcomes) if jobs[0].status == OK]
        rest = iter(self._launch([job(i, seed) for i in survivors for seed in seeds[1:]]))
        for i in survivors:
            outcomes[i] += [next(rest) for _ in seeds[1:]]
        return outcomes

    def _launch(self, batch: list[list[str]]) -> list[JobOutcome]:
        if not batch:
            return []
        returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        return [job_outcome(ret) for ret in returns]

    def _tell(self, study: optuna.Study, trial: Trial, state: TrialState, values: list[float] | None,
              attrs: dict[str, Any]) -> TrialState:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        try:
            study.tell(trial, state=state, values=values)
        except RuntimeError as error:
            # GridSampler calls study.stop() after the last grid point, which only works inside
            # study.optimize; the trial is stored before that, and the loop stops on is_exhausted().
            if "Study.stop" not in str(error):
                raise
        detail = attrs.get("reason") or ", ".join(f"{v:.4g}" for v in values or [])
        (log.info if state != TrialState.FAIL else log.warning)("Trial %d %s: %s", trial.number, state.name, detail)
        return state

    def _log_best(self, study: optuna.Study, objectives: list[str]) -> None:
        """Name the best trial(s) and the command that re-runs one over 10 seeds; fail when none completed."""
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            raise SearchError(f"No trial of study '{study.study_name}' has completed: see the failed trials "
                              f"in {Path(self.sweep_dir) / REPORT_FILE}")
        best = study.best_trials if len(objectives) > 1 else [study.best_trial]
        for trial in best:
            log.info("Best trial %d: %s; params %s", trial.number,
                     ", ".join(f"{name}={value:.4g}" for name, value in zip(objectives, trial.values)), trial.params)
        log.info("Re-run over 10 seeds: %s", rerun_command(study, best[0]))
