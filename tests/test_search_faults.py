"""Searches that meet a bad point, a bad space or a pruner on the wrong metric: one clear line, or a FAIL trial."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import optuna
import pytest
from hydra import compose
from hydra.core.config_loader import ConfigLoader
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict
from optuna.trial import TrialState

from conftest import TINY, run_train
from hydra_plugins.regsweep_optuna._impl import (SearchImpl, SearchSpaceError, check_pruning_monitor, check_space,
                                                 objectives_of, search_space)
from regsweep import metrics
from regsweep.data.sources import DATASETS
from regsweep.errors import ConfigError
from regsweep.records import read_result
from regsweep.sweep.runner import JobRunner
from test_search import FAST, load_study, outcome, queue_trials
from test_sweep import config_loader  # noqa: F401 (a fixture)

BATCH_SIZE_0 = "Invalid config: data.batch_size=0: must be > 0"


@pytest.fixture
def runner(config_loader: ConfigLoader, tmp_path: Path) -> JobRunner:  # noqa: F811
    """The JobRunner of an Optuna search over conf/, as the sweeper makes it; it never launches here."""
    config = compose("train", overrides=["hparams_search=optuna", *FAST, f"hydra.sweep.dir={tmp_path}"],
                     return_hydra_config=True)
    return JobRunner(config, HydraContext(config_loader=config_loader, callbacks=None), launcher=None)


def space_of(*arguments: str) -> tuple[dict, dict, list]:
    return search_space(["hparams_search=optuna", *FAST, *arguments])


# --- 1. an invalid sampled point is a FAIL trial; a space without a valid point is refused ------------

def test_a_space_without_a_valid_point_is_refused_before_any_trial(runner: JobRunner) -> None:
    with pytest.raises(SearchSpaceError, match="no value of data.batch_size makes a valid config: "
                       + BATCH_SIZE_0 + "; Invalid config: data.batch_size=-1"):
        check_space(runner, *space_of("data.batch_size=choice(0,-1)"))
    with pytest.raises(SearchSpaceError, match="fixed overrides make an invalid config: " + BATCH_SIZE_0):
        check_space(runner, *space_of("optimizer.lr=choice(1e-3,1e-2)", "data.batch_size=0"))


def test_a_space_with_some_invalid_choices_is_searched_with_a_warning(runner: JobRunner,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_space(runner, *space_of("data.batch_size=choice(0,64)", "optimizer.lr=tag(log,interval(1e-9,1))"))
    assert [r.getMessage() for r in caplog.records] == [
        f"data.batch_size=0 is an invalid config ({BATCH_SIZE_0}): trials that sample it fail"]


def search(config: DictConfig) -> SearchImpl:
    """The sweeper of a search of 2 seeds per trial, set up with ``config``."""
    sweeper = SearchImpl({"_target_": "optuna.samplers.RandomSampler"}, None, "maximize", None, "s", n_trials=2,
                         n_jobs=2, max_failure_rate=1.0, custom_search_space=None, params=None, seeds_per_trial=2,
                         top_k=10, heartbeat_interval=1.0, grace_period=2.0)
    sweeper.config = config
    return sweeper


@pytest.mark.parametrize("pack", ["off", "auto"])
def test_an_invalid_trial_of_a_batch_fails_with_its_config_error_and_the_others_run(
        runner: JobRunner, monkeypatch: pytest.MonkeyPatch, pack: str) -> None:
    launched: list[str] = []

    def run(batch: Sequence[Sequence[str]]) -> list[Any]:  # the real check, then as if each job trained
        runner.check(batch)
        launched.extend(" ".join(job) for job in batch)
        return [outcome("ok", f"job{len(launched)}", {"val/acc": 0.5}) for _ in batch]

    monkeypatch.setattr(runner, "run", run)
    with open_dict(runner.config):
        runner.config.pack.size = pack
    sweeper = search(runner.config)
    study = optuna.create_study(direction="maximize")
    trials = [study.ask() for _ in range(2)]
    jobs = [sweeper._trial_jobs(trial, ["hparams_search=optuna", *FAST, f"data.batch_size={size}"], [0, 1], [])
            for trial, size in zip(trials, (0, 64))]
    bad, good = sweeper._run_batch(runner, jobs, ["val/acc"])

    assert bad == (TrialState.FAIL, None, {"reason": BATCH_SIZE_0})
    assert good[:2] == (TrialState.COMPLETE, [0.5])
    assert len(launched) == 2 and all("data.batch_size=64" in job for job in launched)  # trial 0 never started


# --- 2. glob(...) over a config group's options -----------------------------------------------------

def test_a_glob_in_a_search_chooses_among_the_options_of_its_group(config_loader: ConfigLoader) -> None:  # noqa: F811
    space, _, _ = search_space(["regularizer=glob(l*)"], config_loader)
    assert space["regularizer"].choices == ("l1", "l1l2", "l2")
    with pytest.raises(ConfigError, match="matches none of the options of config group regularizer"):
        search_space(["regularizer=glob(x*)"], config_loader)


# --- 3. the pruner watches what the study optimizes -------------------------------------------------

@pytest.mark.parametrize("overrides,direction", [
    ([], "maximize"), (["optimized_metric=val/loss"], "minimize"), (["data=regression"], "minimize"),
    (["optimized_metric=gen_gap/loss"], "minimize"),
])
def test_the_pruner_watches_the_metric_the_study_optimizes(make_cfg, overrides: list[str], direction: str) -> None:
    cfg = make_cfg("hparams_search=optuna", *overrides)
    objective = objectives_of(cfg, [direction])[0]
    assert metrics.objective(cfg.callbacks.optuna_pruning.monitor, DATASETS[cfg.data.name].task) == objective
    check_pruning_monitor(cfg, objective)


@pytest.mark.parametrize("monitor,message", [
    ("val/acc", "monitor='val/acc': the pruner must watch the metric the study optimizes, val/loss"),
    ("auto", "monitor='auto': auto is val/acc here, but the pruner must watch the metric the study optimizes, "
             "val/loss"),
])
def test_a_pruner_on_another_metric_than_the_objective_is_refused(make_cfg, monitor: str, message: str) -> None:
    cfg = make_cfg("hparams_search=optuna", "optimized_metric=val/loss", f"callbacks.optuna_pruning.monitor={monitor}")
    with pytest.raises(ConfigError, match=message):
        check_pruning_monitor(cfg, objectives_of(cfg, ["minimize"])[0])
    check_pruning_monitor(make_cfg("hparams_search=multiobjective"), "val/acc")  # no pruner: nothing to check


# --- end to end, through train.py ---------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("pack", ["off", "auto"])
def test_a_search_goes_on_past_a_trial_whose_point_is_an_invalid_config(tmp_path: Path, pack: str) -> None:
    sweep = tmp_path / "study"
    queue_trials(sweep, "optuna-digits", {"data.batch_size": 0}, {"data.batch_size": 64})  # one batch of both
    result = run_train("-m", "hparams_search=optuna", *FAST, "data.batch_size=choice(0,64)", "hydra.sweeper.n_trials=2",
                       "hydra.sweeper.n_jobs=2", "hydra.sweeper.seeds_per_trial=2", f"pack.size={pack}",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    bad, good = load_study(sweep).trials
    assert bad.state == TrialState.FAIL and bad.user_attrs["reason"] == BATCH_SIZE_0
    assert not list(sweep.glob(f"trial{bad.number}_*"))
    assert good.state == TrialState.COMPLETE
    assert all(read_result(sweep / f"trial{good.number}_seed{s}").ok for s in (0, 1))
    assert f"| {bad.number} | fail | {BATCH_SIZE_0} |" in (sweep / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("arguments,line", [
    (["data.batch_size=choice(0,-1)"], "No trial can run: no value of data.batch_size makes a valid config: "),
    (["data.batch_size=0"], "No trial can run: the search's fixed overrides make an invalid config: " + BATCH_SIZE_0),
    (["optimized_metric=val/loss", "hydra.sweeper.direction=minimize", "callbacks.optuna_pruning.monitor=val/acc"],
     "Invalid config: callbacks.optuna_pruning.monitor='val/acc': the pruner must watch"),
])
def test_a_search_that_cannot_work_is_refused_in_one_line(tmp_path: Path, arguments: list[str], line: str) -> None:
    sweep = tmp_path / "study"
    result = run_train("-m", "hparams_search=optuna", *TINY, *arguments, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert not sweep.exists()  # no study, no report


@pytest.mark.slow
def test_a_search_prunes_on_its_optimized_metric(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    result = run_train("-m", "hparams_search=optuna", *FAST, "optimized_metric=val/loss",
                       "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=2", "regularizer=glob(l*)",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for trial in load_study(sweep).trials:
        record = read_result(sweep / f"trial{trial.number}_seed0")
        assert trial.intermediate_values == {0: pytest.approx(record.metrics["best"]["val/loss"])}
        assert trial.params["regularizer"] in {"l1", "l1l2", "l2"}
