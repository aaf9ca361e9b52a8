"""The search behind ``hydra/sweeper=regsweep_optuna``: an Optuna ask / run / tell loop, safe to leave running.

- The search space comes from ``hydra.sweeper.params`` and the command line, in the grammar of
  Hydra's Optuna sweeper (``choice``, ``range``, ``interval``, ``tag(log, ...)``), plus an optional
  ``custom_search_space`` hook (the conditional penalty strengths of :mod:`regsweep.search.space`).
- The study is persistent (a journal file in the sweep dir by default) and re-running the same
  command resumes it; a resumed study must keep the settings that make its trials comparable.
- Before the first trial, the fixed overrides and each value of every ``choice`` are checked as job
  configs: a search none of whose trials could run is refused in one line.
- Each batch of ``n_jobs`` trials x ``seeds_per_trial`` seeds is run by the sweep's
  :class:`~regsweep.sweep.runner.JobRunner`, so the jobs of a batch train as packs; a trial's value
  is the mean over its seeds, read from the jobs' records. A trial whose sampled point is an invalid
  config, or whose job failed, is a FAIL trial carrying its reason and the search goes on; a job
  stopped by the pruner makes a PRUNED trial.
- Every run ends with the study report (:mod:`regsweep.search.study_report`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections import Counter
from typing import Any, Sequence

import optuna
from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.types import Override, Transformer
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import UpdateFinishedTrialError
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial, TrialState

from regsweep import metrics
from regsweep.config import config_task
from regsweep.errors import ConfigError, RegsweepError, SweepRefused
from regsweep.instantiate import instantiate_trusted
from regsweep.packing import PACK_OFF
from regsweep.records import OK, PRUNED
from regsweep.search import PRUNING_KEY, REPORT_KEY
from regsweep.search.heartbeat import heartbeat, reap_stale_trials
from regsweep.search.study import SETTINGS_ATTR, open_storage, storage_url
from regsweep.search.study_report import REPORT_FILE, rerun_command, write_study_report
from regsweep.sweep.lock import sweep_dir_lock
from regsweep.sweep.overrides import expand_integer_ranges, parse_overrides, quoted, sweep_values
from regsweep.sweep.sweeper import LaunchingSweeper

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the search stopped before this trial finished"


class SearchError(RegsweepError):
    """The search cannot go on: an incompatible resumed study, too many failures, or nothing completed."""


class StudyMismatchError(SearchError, SweepRefused):
    """A resumed study's trials would not be comparable with this search's: refused before any trial."""


class SearchSpaceError(SearchError, SweepRefused):
    """No point of the search space is a valid job config: refused before any trial."""


def distribution(override: Override) -> BaseDistribution:
    """An Optuna distribution for a sweep override: choice (or a group's ``glob``) -> categorical, range -> int
    (or the listed values), interval -> float (int for integer ends), ``tag(log, ...)`` -> log scale."""
    if override.is_choice_sweep():
        return CategoricalDistribution(sweep_values(override, Transformer.encode))
    if override.is_range_sweep():
        values = sweep_values(override, Transformer.encode)
        if values and all(isinstance(v, int) for v in values) and len(values) > 1:
            return IntDistribution(min(values), max(values), step=abs(values[1] - values[0]))
        return CategoricalDistribution(values)
    interval, key = override.value(), override.get_key_element()
    written = override.input_line.partition("=")[2]  # as typed: a sweep has no single value to print
    log_scale = "log" in interval.tags
    if not interval.start < interval.end:
        raise ConfigError(key, written, "interval(low, high) needs low < high")
    if log_scale and interval.start <= 0:
        raise ConfigError(key, written, "a log-scale interval needs low > 0 "
                          "(a log range cannot hold 0: to switch a term off, choose it in `regularizer`)")
    if isinstance(interval.start, int) and isinstance(interval.end, int):
        return IntDistribution(interval.start, interval.end, log=log_scale)
    return FloatDistribution(interval.start, interval.end, log=log_scale)


def search_space(arguments: Sequence[str], config_loader: ConfigLoader | None = None
                 ) -> tuple[dict[str, BaseDistribution], dict[str, str], list[str]]:
    """Distributions, fixed values and deletions (``~key``) from the params and the command line.

    ``config_loader`` lists a config group's options for ``group=glob(...)``.
    """
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    deletions: list[str] = []
    for override in parse_overrides(expand_integer_ranges(list(arguments)), config_loader):
        key = override.get_key_element()
        if override.is_delete():
            deletions.append(override.input_line)
        elif override.is_sweep_override():
            space[key] = distribution(override)
            fixed.pop(key, None)
        else:
            fixed[key] = override.get_value_element_as_str()
            space.pop(key, None)
    if "seed" in space:
        raise ConfigError("seed", "a search dimension",
                          "a seed is not a hyperparameter: average seeds with hydra.sweeper.seeds_per_trial=K")
    return space, fixed, deletions


def suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                               log=distribution.log)


def grid_choices(name: str, distribution: BaseDistribution) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    raise ConfigError(f"hydra.sweeper.params.{name}", "an interval",
                      "a grid needs a finite set of values: use choice(...) or an integer range(...)")


def objectives_of(config: DictConfig, directions: list[str]) -> list[str]:
    """What the jobs return (``optimized_metric``, then ``search.extra_objectives``), each with a sensible direction."""
    task = config_task(config)
    names = [metrics.objective(config.get("optimized_metric", "auto"), task)]
    names += [metrics.epoch_metric(name, task, "search.extra_objectives")
              for name in OmegaConf.select(config, "search.extra_objectives", default=None) or []]
    if len(names) != len(directions):
        raise ConfigError("hydra.sweeper.direction", directions,
                          f"needs one direction per objective; the search optimizes {names} "
                          "(optimized_metric, then search.extra_objectives)")
    for name, direction in zip(names, directions):
        sense = metrics.direction(name)
        if sense is not None and sense != direction:
            hint = " (optimized_metric=auto is val/loss for data=regression)" if name == "val/loss" else ""
            raise ConfigError("hydra.sweeper.direction", direction,
                              f"{name} can only be {sense}d: set its direction to {sense}{hint}")
    return names


def check_pruning_monitor(config: DictConfig, objective: str) -> None:
    """The pruner must judge trials on what the study optimizes (its first objective), never on another metric:
    it would stop trials that do well on the objective."""
    monitor = OmegaConf.select(config, f"{PRUNING_KEY}.monitor", default=None)
    if monitor is None:  # no pruning callback (multi-objective searches)
        return
    key = f"{PRUNING_KEY}.monitor"
    watched = metrics.objective(monitor, config_task(config), key)
    if watched != objective:
        resolved = "" if watched == monitor else f"{monitor} is {watched} here, but "
        raise ConfigError(key, monitor, f"{resolved}the pruner must watch the metric the study optimizes, {objective}: "
                          "leave it unset (it follows optimized_metric) or set optimized_metric instead")


def job_overrides(values: dict[str, Any], deletions: list[str]) -> list[str]:
    """A job's configuration overrides: ``key=value`` for the sampled and fixed values, then the deletions."""
    return [*(f"{name}={value}" for name, value in values.items()), *deletions]


def config_problem(runner: Any, jobs: Sequence[Sequence[str]]) -> str | None:
    """Why ``jobs`` cannot run: the first invalid job's config error, one line; None when every job is valid."""
    from regsweep.sweep.runner import InvalidJobsError

    for job in jobs:
        try:
            runner.check([job])
        except InvalidJobsError as error:  # its one problem, after the batch's headline and the job's overrides
            return str(error).splitlines()[-1].removeprefix(f"  job [{' '.join(job)}]: ")
    return None


def check_space(runner: Any, space: dict[str, BaseDistribution], fixed: dict[str, str], deletions: list[str]) -> None:
    """Refuse, before the first trial, a search whose every trial would be an invalid config.

    Checked as job configs: the fixed overrides (searched keys at their config values), then each
    value of every categorical dimension (``choice``, ``glob``) with them, the other searched keys
    at their config values. A dimension none of whose values is valid refuses the search; an invalid
    value is only warned of, and a trial that samples it (or an invalid value of an interval or a
    range, which are not enumerated) fails with its reason.
    """
    problem = config_problem(runner, [job_overrides(fixed, deletions)])
    if problem is not None:
        raise SearchSpaceError(f"No trial can run: the search's fixed overrides make an invalid config: {problem}")
    for name, dist in space.items():
        if not isinstance(dist, CategoricalDistribution):
            continue
        problems = {value: config_problem(runner, [job_overrides({name: value, **fixed}, deletions)])
                    for value in dist.choices}
        invalid = {value: problem for value, problem in problems.items() if problem is not None}
        if len(invalid) == len(problems):
            raise SearchSpaceError(f"No trial can run: no value of {name} makes a valid config: "
                                   + "; ".join(invalid.values()))
        for value, problem in invalid.items():
            log.warning("%s=%s is an invalid config (%s): trials that sample it fail", name, value, problem)


def refused_trial(problem: str) -> tuple[TrialState, None, dict[str, Any]]:
    """A trial whose sampled point is an invalid config: FAIL with the config error, and no job started."""
    return TrialState.FAIL, None, {"reason": problem}


def trial_result(outcomes: list[Any], objectives: list[str]) -> tuple[TrialState, list[float] | None, dict[str, Any]]:
    """State, values (the mean over seeds) and user attributes of a trial from its jobs' outcomes."""
    attrs: dict[str, Any] = {"job_dirs": [o.name for o in outcomes]}
    stopped = next((o for o in outcomes if o.status != OK), None)
    if stopped is not None:
        attrs["reason"] = stopped.error
        return (TrialState.PRUNED if stopped.status == PRUNED else TrialState.FAIL), None, attrs
    values = [o.values(objectives) for o in outcomes]
    if not all(math.isfinite(v) for row in values for v in row):
        attrs["reason"] = f"a job returned a non-finite objective {values}"
        return TrialState.FAIL, None, attrs
    if len(outcomes) > 1:
        attrs["values_per_seed"] = values
    return TrialState.COMPLETE, [sum(column) / len(values) for column in zip(*values)], attrs


def check_resumable(study: optuna.Study, directions: list[str], signature: dict[str, Any]) -> None:
    """Stamp a new study with what makes its trials comparable; refuse to add different trials to an old one."""
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != directions:
        raise StudyMismatchError(f"Study '{study.study_name}' optimizes {stored_directions}, this search "
                                 f"{directions}: choose a new hydra.sweeper.study_name")
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:  # one write, so a concurrent worker never sees half of it
        study.set_user_attr(SETTINGS_ATTR, signature)
        return
    differing = [key for key in signature if stored.get(key) != signature[key]]
    if differing:
        found = "; ".join(f"{key}: study {stored.get(key)}, this run {signature[key]}" for key in differing)
        raise StudyMismatchError(f"Study '{study.study_name}' was run with other settings ({found}); its trials "
                                 "would not be comparable with this run's: repeat its settings or choose a new "
                                 "hydra.sweeper.study_name")


class SearchImpl(LaunchingSweeper):
    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: str | None, study_name: str | None,
                 n_trials: int, n_jobs: int, max_failure_rate: float, custom_search_space: str | None,
                 params: dict[str, str] | None, seeds_per_trial: int, top_k: int, heartbeat_interval: float,
                 grace_period: float) -> None:
        if not 0 < heartbeat_interval < grace_period:
            raise ConfigError("hydra.sweeper.grace_period", grace_period,
                              f"must be greater than hydra.sweeper.heartbeat_interval ({heartbeat_interval}), which must be > 0")
        if seeds_per_trial < 1:
            raise ConfigError("hydra.sweeper.seeds_per_trial", seeds_per_trial, "must be >= 1")
        if n_trials < 1:
            raise ConfigError("hydra.sweeper.n_trials", n_trials, "must be >= 1")
        self.sampler = instantiate_trusted(sampler)
        self.pruner = instantiate_trusted(pruner) if pruner is not None else optuna.pruners.NopPruner()
        self.directions = [str(d.name if hasattr(d, "name") else d) for d in
                           (direction if isinstance(direction, (list, tuple)) or OmegaConf.is_list(direction)
                            else [direction])]
        self.storage, self.study_name = storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.custom_search_space = (instantiate_trusted({"_target_": custom_search_space, "_partial_": True})
                                    if custom_search_space else None)
        self.params = dict(params or {})
        self.seeds_per_trial, self.top_k = seeds_per_trial, top_k
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period

    def sweep(self, arguments: list[str]) -> None:
        from regsweep.sweep.runner import JobRunner  # the training stack: only when sweeping

        space, fixed, deletions = search_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments),
                                               self.hydra_context.config_loader)
        if isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler:
            self.sampler = self.sampler({name: grid_choices(name, d) for name, d in space.items()})
        objectives = objectives_of(self.config, self.directions)
        check_pruning_monitor(self.config, objectives[0])
        runner = JobRunner(self.config, self.hydra_context, self.launcher)
        check_space(runner, space, fixed, deletions)
        url = storage_url(self.storage, self.sweep_dir)
        study = self._open_study(url, {"fixed_overrides": sorted(job_overrides(fixed, deletions)),
                                       "seeds_per_trial": self.seeds_per_trial, "objectives": objectives})
        with sweep_dir_lock(self.sweep_dir, shared=True):  # workers of a search share it; a grid sweep may not
            try:
                self._optimize(study, runner, space, fixed, deletions, objectives, url)
            finally:
                log.info("Study report: %s", write_study_report(study, self.sweep_dir, url, self.top_k))
        self._log_best(study, objectives)

    def _open_study(self, url: str, signature: dict[str, Any]) -> optuna.Study:
        self.storage_backend = open_storage(url)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage_backend, sampler=self.sampler,
                                    pruner=self.pruner, directions=self.directions, load_if_exists=True)
        check_resumable(study, self.directions, signature)
        if study.trials:  # a resumed study or a second worker must not replay the first run's random draws
            self.sampler.reseed_rng()
        log.info("Study '%s' (%d earlier trials) in %s; sampler %s, pruner %s", study.study_name, len(study.trials),
                 url, type(self.sampler).__name__, type(self.pruner).__name__)
        return study

    def _configure(self, trial: Trial, space: dict[str, BaseDistribution], fixed: dict[str, str],
                   deletions: list[str]) -> list[str]:
        for name, dist in space.items():
            suggest(trial, name, dist)
        for name, value in fixed.items():
            trial.set_user_attr(name, value)  # the custom space leaves a value fixed on the command line alone
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        return job_overrides({**trial.params, **fixed}, deletions)

    def _optimize(self, study: optuna.Study, runner: Any, space: dict[str, BaseDistribution], fixed: dict[str, str],
                  deletions: list[str], objectives: list[str], url: str) -> None:
        """Ask, run and tell batches of n_jobs trials until n_trials ran (or a grid is exhausted)."""
        states: Counter[str] = Counter()
        seeds = [self.config.seed + i for i in range(self.seeds_per_trial)]
        shared = [f"++search.study_name={quoted(study.study_name)}", f"++search.storage={quoted(url)}"]
        n_left = self.n_trials
        while n_left > 0 and not (isinstance(self.sampler, optuna.samplers.GridSampler)
                                  and self.sampler.is_exhausted(study)):
            reap_stale_trials(self.storage_backend, study, self.grace_period)  # a worker killed earlier or now
            trials = [study.ask() for _ in range(min(self.n_jobs, n_left))]
            try:
                with heartbeat(self.storage_backend, study, trials, self.heartbeat_interval):
                    jobs = [self._trial_jobs(trial, self._configure(trial, space, fixed, deletions), seeds, shared)
                            for trial in trials]
                    results = self._run_batch(runner, jobs, objectives)
            except BaseException:  # Ctrl-C or a broken search space: leave no trial RUNNING forever
                for trial in trials:
                    self._tell(study, trial, TrialState.FAIL, None, {"reason": INTERRUPTED})
                raise
            batch = [self._tell(study, trial, *result) for trial, result in zip(trials, results)]
            states.update(state.name.lower() for state in batch)
            n_left -= len(trials)
            if batch.count(TrialState.FAIL) / len(batch) > self.max_failure_rate:
                raise SearchError(f"{batch.count(TrialState.FAIL)} of {len(batch)} trials of a batch failed "
                                  f"(hydra.sweeper.max_failure_rate={self.max_failure_rate}): search stopped")
        log.info("This run added %d trials: %s", sum(states.values()), dict(states))

    def _trial_jobs(self, trial: Trial, configured: list[str], seeds: list[int], shared: list[str]) -> list[list[str]]:
        """A trial's jobs, one per seed. The first seed reports to the pruner (single-objective searches)."""
        report = len(self.directions) == 1
        return [[*configured, *([f"seed={seed}"] if len(seeds) > 1 else []), f"++search.trial={trial.number}",
                 f"++{REPORT_KEY}={report and seed == seeds[0]}", *shared] for seed in seeds]

    def _run_batch(self, runner: Any, jobs: list[list[list[str]]], objectives: list[str]
                   ) -> list[tuple[TrialState, list[float] | None, dict[str, Any]]]:
        """State, values and attributes of each trial of a batch (``jobs``: each trial's jobs).

        A trial whose sampled point is an invalid config fails with its config error before any job
        starts; the other trials of the batch run.
        """
        problems = [config_problem(runner, trial_jobs) for trial_jobs in jobs]
        ran = iter(self._run_trials(runner, [trial_jobs for trial_jobs, problem in zip(jobs, problems)
                                             if problem is None]))
        return [trial_result(next(ran), objectives) if problem is None else refused_trial(problem)
                for problem in problems]

    def _run_trials(self, runner: Any, jobs: list[list[list[str]]]) -> list[list[Any]]:
        """Each trial's job outcomes (``jobs``: each trial's jobs, its first seed first).

        Packed (the default) the seeds of every trial of the batch train together, and a pruned
        trial stops all its seeds at once; with ``pack.size=off`` the other seeds of a trial run
        only after its first seed survived.
        """
        if not jobs:  # every trial of the batch was an invalid config
            return []
        if OmegaConf.select(self.config, "pack.size", default="auto") != PACK_OFF:
            outcomes = iter(runner.run([job for trial_jobs in jobs for job in trial_jobs]))
            return [[next(outcomes) for _ in trial_jobs] for trial_jobs in jobs]
        firsts = runner.run([trial_jobs[0] for trial_jobs in jobs])
        results = [[first] for first in firsts]
        survivors = [i for i, first in enumerate(firsts) if first.status == OK]
        later = [job for i in survivors for job in jobs[i][1:]]
        if later:
            rest = iter(runner.run(later))
            for i in survivors:
                results[i] += [next(rest) for _ in jobs[i][1:]]
        return results

    def _tell(self, study: optuna.Study, trial: Trial, state: TrialState, values: list[float] | None,
              attrs: dict[str, Any]) -> TrialState:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        try:
            study.tell(trial, state=state, values=values)
        except UpdateFinishedTrialError:  # reaped meanwhile by a worker that took this one for dead
            log.warning("Trial %d was failed by another worker meanwhile (no heartbeat within "
                        "hydra.sweeper.grace_period=%g s); this result is not stored", trial.number, self.grace_period)
            return TrialState.FAIL
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
                              f"in {self.sweep_dir / REPORT_FILE}")
        best = study.best_trials if len(objectives) > 1 else [study.best_trial]
        for trial in best:
            log.info("Best trial %d: %s; params %s", trial.number,
                     ", ".join(f"{name}={value:.4g}" for name, value in zip(objectives, trial.values)), trial.params)
        log.info("Re-run over 10 seeds: %s", rerun_command(study, best[0]))
