"""Optuna searches (`-m hparams_search=...`): persistent, resumable, failure-tolerant, parallel, pruned, reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.trial import TrialState

from conftest import ROOT, TINY, run_train
from hydra_plugins.regsweep_optuna._impl import SearchError, check_resumable, objectives_of, search_space, trial_result
from regsweep.aggregate.load import load_sweep
from regsweep.errors import ConfigError, SweepRefused
from regsweep.records import JobInfo, ResultRecord, read_result
from regsweep.search.pruning import OptunaPruning
from regsweep.search.space import penalty_strengths
from regsweep.search.study import JOURNAL_FILE, SETTINGS_ATTR, attach_trial, open_storage
from regsweep.search.study_report import rerun_command
from regsweep.sweep.runner import JobOutcome

FAST = [*TINY, "trainer.max_epochs=1"]
PLOTS = ("optimization_history", "parallel_coordinate", "slice")


def load_study(sweep: Path, name: str = "optuna-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(sweep / JOURNAL_FILE)))


def queue_trials(sweep: Path, name: str, *params: dict[str, object]) -> None:
    """A maximizing study in the sweep's journal whose next trials take ``params`` (the rest of each is sampled)."""
    study = optuna.create_study(study_name=name, storage=open_storage(str(sweep / JOURNAL_FILE)), direction="maximize")
    for point in params:
        study.enqueue_trial(point)


class FakePack(SimpleNamespace):
    """What a member callback reads from the pack module after validation: the epoch's rows; and how it stops one."""

    def __init__(self, epoch: int, **metrics: float) -> None:
        row = {"epoch": float(epoch), **{name.replace("_", "/"): value for name, value in metrics.items()}}
        super().__init__(rows={0: row}, pending={}, active=[0], task="classification", stopped=[])

    def stop_member(self, member: int, status: str, reason: str) -> None:
        self.stopped.append((member, status, reason))


def pruning(trial: optuna.Trial, monitor: str, report: bool = True) -> OptunaPruning:
    callback = OptunaPruning("s", "unused", trial.number, monitor, report).bind(0)
    callback.trial = trial
    return callback


def median_study(*finished: float) -> optuna.Study:
    """A maximizing study whose finished trials reported ``finished`` at epoch 0."""
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=len(finished), n_warmup_steps=0))
    for value in finished:
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={0: value}))
    return study


# --- units: pruning callback, trial bookkeeping, up-front checks, search space, re-run command ---------

def test_the_pruning_callback_reports_each_epoch_and_prunes_an_unpromising_trial() -> None:
    study = median_study(0.8, 0.9)
    promising = study.ask()
    pack = FakePack(0, val_acc=0.95)
    pruning(promising, "val/acc").on_validation_end(None, pack)
    assert study.trials[promising.number].intermediate_values == {0: pytest.approx(0.95)}
    assert pack.stopped == []

    pack = FakePack(0, val_acc=0.1)
    pruning(study.ask(), "val/acc").on_validation_end(None, pack)
    [(member, status, reason)] = pack.stopped
    assert (member, status) == (0, "pruned") and reason.startswith("pruned after epoch 0: val/acc=0.1")


def test_the_other_seeds_of_a_pruned_trial_follow_the_seed_that_reports() -> None:
    study = median_study(0.8, 0.9)
    trial = study.ask()
    leader, follower = pruning(trial, "val/acc"), pruning(trial, "val/acc", report=False)
    pack = FakePack(0, val_acc=0.1)
    leader.on_validation_end(None, pack)
    follower.on_train_epoch_end(SimpleNamespace(callbacks=[leader, follower]), pack)
    assert [status for _, status, _ in pack.stopped] == ["pruned", "pruned"]


def test_a_diverged_value_is_not_reported_so_the_job_fails_instead_of_being_pruned() -> None:
    study = median_study(0.8, 0.9)
    trial = study.ask()
    pruning(trial, "val/loss").on_validation_end(None, FakePack(3, val_loss=float("nan")))
    assert study.trials[trial.number].intermediate_values == {}


def test_a_job_reattaches_to_its_trial_through_the_journal_file(tmp_path: Path) -> None:
    journal = str(tmp_path / JOURNAL_FILE)
    study = optuna.create_study(study_name="s", storage=open_storage(journal), direction="maximize")
    asked = study.ask()
    attach_trial("s", journal, asked.number, optuna.pruners.NopPruner()).report(0.5, step=0)
    reread = optuna.load_study(study_name="s", storage=open_storage(journal))  # as another process sees it
    assert reread.trials[asked.number].intermediate_values == {0: 0.5}


def test_the_members_of_a_pack_reach_their_trials_through_one_storage(tmp_path: Path) -> None:
    journal = str(tmp_path / JOURNAL_FILE)
    study = optuna.create_study(study_name="s", storage=open_storage(journal), direction="maximize")
    first, second = (attach_trial("s", journal, study.ask().number, optuna.pruners.NopPruner()) for _ in range(2))
    assert first.storage is second.storage
    first.report(0.25, step=0)
    second.report(0.75, step=0)
    reread = optuna.load_study(study_name="s", storage=open_storage(journal))
    assert [t.intermediate_values for t in reread.trials] == [{0: 0.25}, {0: 0.75}]


def outcome(status: str, name: str, values: dict[str, float] | None = None, error: str | None = None) -> JobOutcome:
    record = ResultRecord(status=status, job=JobInfo(name=name, dir=f"/sweep/{name}"), seed=0, error=error,
                          metrics={"best": values or {}})
    return JobOutcome(0, Path(f"/sweep/{name}"), status, error, record)


def test_a_trial_is_the_mean_of_its_seeds_or_the_state_of_its_stopped_job() -> None:
    objectives = ["val/acc", "weights/sparsity"]
    seeds = [outcome("ok", "t0_s0", {"val/acc": 0.8, "weights/sparsity": 0.1}),
             outcome("ok", "t0_s1", {"val/acc": 0.9, "weights/sparsity": 0.3})]
    state, values, attrs = trial_result(seeds, objectives)
    assert state == TrialState.COMPLETE and values == pytest.approx([0.85, 0.2])
    assert attrs == {"job_dirs": ["t0_s0", "t0_s1"], "values_per_seed": [[0.8, 0.1], [0.9, 0.3]]}
    state, values, attrs = trial_result([outcome("pruned", "t1_s0", error="pruned after epoch 2")], objectives)
    assert (state, values) == (TrialState.PRUNED, None)
    assert attrs == {"job_dirs": ["t1_s0"], "reason": "pruned after epoch 2"}
    state, values, attrs = trial_result([outcome("ok", "a", {"val/acc": 0.8}), outcome("failed", "b", error="boom")],
                                        ["val/acc"])
    assert (state, values, attrs["reason"]) == (TrialState.FAIL, None, "boom")


def search_config(metric: str = "auto", extra: list[str] | None = None, data: str = "digits") -> OmegaConf:
    return OmegaConf.create({"data": {"name": data}, "optimized_metric": metric,
                             "search": {"extra_objectives": extra or []}})


@pytest.mark.parametrize("config,directions,message", [
    (search_config(data="regression"), ["maximize"], "val/loss can only be minimized"),
    (search_config(), ["minimize"], "val/acc can only be maximized"),
    (search_config(extra=["weights/sparsity"]), ["maximize"], "one direction per objective"),
    (search_config(extra=["weights/sparsty"]), ["maximize", "maximize"], "search.extra_objectives='weights/sparsty'"),
    (search_config("test/acc"), ["maximize"], "optimized_metric='test/acc'"),
])
def test_objectives_that_cannot_work_are_refused_before_any_trial(config, directions, message) -> None:
    with pytest.raises(ConfigError, match=message):
        objectives_of(config, directions)


def test_sensible_objectives_pass() -> None:
    assert objectives_of(search_config(data="regression"), ["minimize"]) == ["val/loss"]
    assert objectives_of(search_config(extra=["weights/sparsity"]), ["maximize", "maximize"]) == [
        "val/acc", "weights/sparsity"]


def test_the_search_space_comes_from_the_optuna_sweeper_grammar() -> None:
    space, fixed, deletions = search_space(["optimizer.lr=tag(log, interval(1e-4, 3e-2))", "seedless=range(1,4)",
                                            "model.dropout=interval(0.0, 0.5)", "regularizer=choice(none, l1)",
                                            "model.hidden_sizes=choice([64], [256,128])", "data.batch_size=64",
                                            "~trainer.max_time"])
    assert space["optimizer.lr"] == optuna.distributions.FloatDistribution(1e-4, 3e-2, log=True)
    assert space["seedless"] == optuna.distributions.IntDistribution(1, 3)
    assert space["model.dropout"] == optuna.distributions.FloatDistribution(0.0, 0.5)
    assert space["regularizer"].choices == ("none", "l1")
    assert space["model.hidden_sizes"].choices == ("[64]", "[256,128]")
    assert (fixed, deletions) == ({"data.batch_size": "64"}, ["~trainer.max_time"])
    with pytest.raises(ConfigError, match="a seed is not a hyperparameter"):
        search_space(["seed=choice(0,1)"])


@pytest.mark.parametrize("override,message", [
    ("optimizer.lr=interval(1,0.1)", r"optimizer.lr='interval\(1,0.1\)': interval\(low, high\) needs low < high"),
    ("optimizer.lr=tag(log,interval(0,1))", r"optimizer.lr='tag\(log,interval\(0,1\)\)': a log-scale interval needs low > 0"),
])
def test_an_impossible_range_is_refused_naming_it_as_typed(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        search_space([override])


def test_a_resumed_study_must_keep_the_settings_that_make_trials_comparable() -> None:
    study = optuna.create_study(direction="maximize")
    first = {"fixed_overrides": ["trainer.max_epochs=1"], "seeds_per_trial": 1, "objectives": ["val/acc"]}
    check_resumable(study, ["maximize"], first)
    check_resumable(study, ["maximize"], dict(first))  # the same command resumes
    with pytest.raises(SearchError, match=r"fixed_overrides: study \['trainer.max_epochs=1'\], this run \[\]"):
        check_resumable(study, ["maximize"], {**first, "fixed_overrides": []})
    with pytest.raises(SearchError, match="optimizes") as refused:
        check_resumable(study, ["minimize"], first)
    assert isinstance(refused.value, SweepRefused)  # before any trial: the sweep summary stays silent


@pytest.mark.parametrize("regularizer,strengths", [
    ("none", set()), ("l1", {"regularizer.l1"}), ("l2", {"regularizer.l2"}),
    ("l1l2", {"regularizer.l1", "regularizer.l2"}),
])
def test_penalty_strengths_are_sampled_only_for_the_active_terms(regularizer: str, strengths: set[str]) -> None:
    cfg = OmegaConf.create({"regularizer": {"name": "none"}, "search": {"penalty_range": [1e-6, 1e-2]}})
    study = optuna.create_study()
    study.enqueue_trial({"regularizer": regularizer})
    trial = study.ask()
    trial.suggest_categorical("regularizer", ["none", "l1", "l2", "l1l2"])
    penalty_strengths(cfg, trial)
    assert set(trial.params) - {"regularizer"} == strengths
    assert all(1e-6 <= trial.params[key] <= 1e-2 for key in strengths)


def test_the_rerun_command_is_plain_training_of_the_trial_over_ten_seeds() -> None:
    study = optuna.create_study()
    study.set_user_attr(SETTINGS_ATTR, {"fixed_overrides": ["data=regression", "hparams_search=optuna",
                                                            "model.hidden_sizes=[32]"]})
    study.add_trial(optuna.trial.create_trial(
        value=0.1, params={"optimizer.lr": 0.001},
        distributions={"optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}))
    assert rerun_command(study, study.trials[0]) == (
        "python train.py data=regression 'model.hidden_sizes=[32]' optimizer.lr=0.001 -m seed=0-9")


# --- end to end, through train.py ---------------------------------------------------------------

@pytest.mark.slow
def test_a_tpe_search_writes_its_report_and_running_it_again_resumes_the_study(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    command = ["-m", "hparams_search=optuna", *FAST, f"hydra.sweep.dir={sweep}"]
    first = run_train(*command, "hydra.sweeper.n_trials=5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]

    study = load_study(sweep)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    for trial in study.trials:
        record = read_result(sweep / f"trial{trial.number}_seed0")
        assert record.ok and trial.value == record.metrics["best"]["val/acc"]
        assert record.params["optimizer.lr"] == trial.params["optimizer.lr"]
        for term in ("l1", "l2"):  # a penalty term is off (exactly 0) unless the trial switched it on
            active = term in trial.params["regularizer"]
            assert (f"regularizer.{term}" in trial.params) == active
            assert (record.params[f"regularizer.{term}"] > 0) == active

    report = (sweep / "report.md").read_text()
    assert f"## Best trial: {study.best_trial.number}" in report and "## Top 5 trials by val/acc" in report
    assert "| parameter | importance |" in report and f"optuna-dashboard {sweep / JOURNAL_FILE}" in report
    assert "- seeds per trial: 1\n" in report  # one seed: no mean to speak of
    assert rerun_command(study, study.best_trial) in report
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == study.best_value
    assert all((sweep / "plots" / f"{name}.png").stat().st_size > 1000 for name in PLOTS)

    written = {p.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/result.json")}
    second = run_train(*command, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [t.number for t in load_study(sweep).trials] == list(range(7))
    assert {p.parent.name for p in sweep.glob("*/result.json")} == {f"trial{n}_seed0" for n in range(7)}
    assert all((sweep / name / "result.json").stat().st_mtime_ns == mtime for name, mtime in written.items())


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    result = run_train("-m", "hparams_search=grid", "data=regression", "optimizer=sgd", "optimizer.lr=choice(1e6,1e-2)",
                       "regularizer=none", "model.dropout=0", "hydra.sweeper.direction=minimize", *TINY,
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = {t.params["optimizer.lr"]: t for t in load_study(sweep, "grid-regression").trials}
    assert trials[1e-2].state == TrialState.COMPLETE
    diverged = trials[1e6]
    assert diverged.state == TrialState.FAIL and "diverged" in diverged.user_attrs["reason"]
    record = read_result(sweep / f"trial{diverged.number}_seed0")
    assert record.status == "failed" and "DivergenceError: training diverged" in record.error
    assert f"| {diverged.number} | fail | DivergenceError" in (sweep / "report.md").read_text()


@pytest.mark.slow
def test_two_workers_on_one_journal_share_the_study(tmp_path: Path) -> None:
    sweep = tmp_path / "study"
    args = [sys.executable, str(ROOT / "train.py"), "-m", "hparams_search=random", "hydra.sweeper.n_trials=2", *FAST,
            f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "REGSWEEP_ROOT": str(ROOT)}
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
               for log in logs]
    for worker, log in zip(workers, logs):
        assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]

    trials = load_study(sweep, "random-digits").trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    job_dirs = [d for t in trials for d in t.user_attrs["job_dirs"]]
    assert sorted(job_dirs) == [f"trial{n}_seed0" for n in range(4)]
    assert all(read_result(sweep / d).ok for d in job_dirs)


@pytest.mark.slow
@pytest.mark.parametrize("pack", ["off", "auto"])
def test_an_unpromising_trial_is_pruned_and_trials_average_their_seeds(tmp_path: Path, pack: str) -> None:
    sweep = tmp_path / "study"
    # two good trials first, then one that cannot learn in two epochs
    queue_trials(sweep, "pruning", *({"optimizer.lr": lr} for lr in (1e-2, 3e-2, 1e-6)))
    result = run_train("-m", "hparams_search=optuna", "hydra.sweeper.study_name=pruning", "hydra.sweeper.n_trials=3",
                       "hydra.sweeper.seeds_per_trial=2", "hydra.sweeper.pruner.n_startup_trials=2",
                       "hydra.sweeper.pruner.n_warmup_steps=0", "regularizer=none", "model.dropout=0", *TINY,
                       f"pack.size={pack}", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    good, other, bad = load_study(sweep, "pruning").trials
    for trial in (good, other):
        seeds = [read_result(sweep / f"trial{trial.number}_seed{s}") for s in (0, 1)]
        assert [r.seed for r in seeds] == [0, 1] and "seed" not in trial.params
        assert trial.state == TrialState.COMPLETE
        assert trial.value == pytest.approx(sum(r.metrics["best"]["val/acc"] for r in seeds) / 2)
        assert (seeds[1].job.pack == seeds[0].job.pack) == (pack == "auto")  # packed: a trial's seeds in one pack
    assert bad.state == TrialState.PRUNED
    record = read_result(sweep / f"trial{bad.number}_seed0")
    assert record.status == "pruned" and record.error.startswith("pruned after epoch 0")
    if pack == "off":  # one seed after another: a pruned trial trains no further seeds
        assert bad.user_attrs["job_dirs"] == [f"trial{bad.number}_seed0"]
        assert not (sweep / f"trial{bad.number}_seed1").exists()
    else:  # its seeds trained side by side: the second stops with the first, at the same epoch
        assert bad.user_attrs["job_dirs"] == [f"trial{bad.number}_seed0", f"trial{bad.number}_seed1"]
        follower = read_result(sweep / f"trial{bad.number}_seed1")
        assert follower.status == "pruned" and follower.epochs == record.epochs == 1
    assert "- seeds per trial: 2 (the value of a trial is their mean)" in (sweep / "report.md").read_text()
    groups = load_sweep(sweep).groups  # aggregated: one group per trial, whichever seed reported to the pruner
    assert len(groups) == 3 and all(len({job.name.split("_")[0] for job in g.jobs}) == 1 for g in groups)
