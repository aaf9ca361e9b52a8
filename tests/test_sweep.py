"""Multiruns: integer ranges, up-front validation, and failures that never lose other jobs' results."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from hydra import initialize_config_dir
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra

from conftest import CONF_DIR, TINY, run_train
from hydra_plugins.regsweep_sweeper._impl import RegsweepSweeperImpl, sweep_jobs
from regsweep.aggregate.load import load_sweep
from regsweep.errors import ConfigError
from regsweep.sweep.overrides import expand_integer_ranges

REGULARIZERS = ["l1", "l1l2", "l2", "none"]  # the options of conf/regularizer/, as glob(*) lists them


@pytest.fixture
def config_loader() -> Iterator[ConfigLoader]:
    """Hydra's loader over conf/, as a sweeper gets it (``hydra_context.config_loader``); compose() works meanwhile."""
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        yield GlobalHydra.instance().config_loader()


@pytest.mark.parametrize("argument,expected", [
    ("seed=0-9", "seed=range(0,10)"),
    ("+seed=3-3", "+seed=range(3,4)"),
    ("seed=0-2,7", "seed=0,1,2,7"),
    ("seed=range(0,10)", "seed=range(0,10)"),
    ("seed=0,1,2", "seed=0,1,2"),
    ("seed='0-9'", "seed='0-9'"),
    ("regularizer=l1,l2", "regularizer=l1,l2"),
    ("hydra.sweep.dir=multirun/2026-01-02", "hydra.sweep.dir=multirun/2026-01-02"),
])
def test_integer_ranges_expand_the_hydra_way(argument: str, expected: str) -> None:
    assert expand_integer_ranges([argument]) == [expected]


def test_a_reversed_range_is_an_error() -> None:
    with pytest.raises(ConfigError, match="a <= b"):
        expand_integer_ranges(["seed=9-0"])


def jobs(sweep_dir: Path) -> list:
    loaded = load_sweep(sweep_dir).jobs
    assert all(job.record is not None for job in loaded)
    return [job.record for job in loaded]


@pytest.mark.slow
def test_seed_range_multirun_runs_ten_jobs_with_seeds_0_to_9(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train("-m", "seed=0-9", "regularizer=l1l2", *TINY, "trainer.max_epochs=1",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = jobs(sweep)
    assert sorted(r.seed for r in records) == list(range(10))
    assert all(r.ok and r.job.sweep_dir == str(sweep.resolve()) for r in records)
    assert all("regularizer=l1l2" in r.job.overrides for r in records)
    assert len({r.metrics["final"]["train/loss"] for r in records}) == 10  # seeds really differ
    names = {Path(r.job.dir).name for r in records}  # readable job (and TensorBoard run) names
    assert any(n.startswith("9_") and "regularizer=l1l2" in n and "seed=9" in n for n in names)
    assert "| (all) |" in (sweep / "summary.md").read_text()  # one group of 10 seeds
    assert (sweep / "plots" / "learning_curves.png").exists()


@pytest.mark.slow
def test_ranges_combine_with_other_sweeps(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train("-m", "seed=5-7", "regularizer=l1,l2", *TINY, "trainer.max_epochs=1",
                       "callbacks.model_checkpoint.monitor=val/acc", "callbacks.model_checkpoint.mode=max",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = jobs(sweep)
    pairs = sorted((r.params["regularizer.name"], r.seed) for r in records)
    assert pairs == [(reg, seed) for reg in ("l1", "l2") for seed in (5, 6, 7)]
    assert all(Path(r.job.dir).parent == sweep.resolve() for r in records)  # "val/acc" does not nest dirs


@pytest.mark.slow
def test_a_diverging_job_fails_alone_and_the_multirun_reports_it(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train("-m", "data=regression", "optimizer=sgd", "optimizer.lr=1e6,1e-2,1e-3", *TINY,
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode != 0
    records = {r.params["optimizer.lr"]: r for r in jobs(sweep)}
    assert set(records) == {1e6, 1e-2, 1e-3}
    assert records[1e6].status == "failed" and "diverged" in records[1e6].error
    assert records[1e-2].ok and records[1e-3].ok  # the job after the failure ran too
    assert "1 of 3 jobs failed" in result.stderr
    failure_lines = [line for line in result.stderr.splitlines() if line.startswith("  0_")]
    assert len(failure_lines) == 1 and "DivergenceError: training diverged" in failure_lines[0]
    summary = (sweep / "summary.md").read_text()  # the seed aggregation still ran, naming the failure
    assert records[1e6].job.name in summary and "DivergenceError" in summary
    assert "resume:" not in result.stdout  # a failed job fails again: only a signal's stop is resumed


@pytest.mark.slow
def test_an_invalid_job_config_stops_the_multirun_before_any_job(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_train("-m", "model.dropout=0.1,1.5", "seed=abc,1", *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode != 0
    assert "jobs have an invalid config; none was started" in result.stderr
    assert "model.dropout=1.5" in result.stderr and "seed='abc'" in result.stderr
    assert not sweep.exists()  # nothing left behind, not even an empty dir
    assert "summary" not in result.stderr + result.stdout  # nothing ran: nothing to summarize


def test_a_glob_sweeps_the_options_of_a_config_group(config_loader: ConfigLoader) -> None:
    assert sweep_jobs(["regularizer=glob(*)", "seed=0"], config_loader) == [
        [f"regularizer={name}", "seed=0"] for name in REGULARIZERS]
    assert sweep_jobs(["regularizer=glob(l*,exclude=l1l2)"], config_loader) == [["regularizer=l1"], ["regularizer=l2"]]


@pytest.mark.parametrize("override,message", [
    ("regularizer=glob(x*)", r"regularizer='glob\(x\*\)': matches none of the options of config group regularizer: "
                             + ", ".join(REGULARIZERS)),
    ("model.dropout=glob(*)", r"model.dropout is not a config group: glob\(\) picks options of a config group"),
    ("seed=range(5,1)", r"seed='range\(5,1\)': the sweep takes no value"),
])
def test_a_sweep_that_takes_no_value_is_refused_naming_it(config_loader: ConfigLoader, override: str,
                                                          message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sweep_jobs([override], config_loader)


@pytest.mark.slow
@pytest.mark.parametrize("pack", ["off", "auto"])
def test_a_glob_multirun_trains_every_option_of_the_group(tmp_path: Path, pack: str) -> None:
    sweep = tmp_path / "sweep"
    result = run_train("-m", "regularizer=glob(*)", "seed=0", *TINY, "trainer.max_epochs=1", f"pack.size={pack}",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = jobs(sweep)
    assert sorted(r.params["regularizer.name"] for r in records) == REGULARIZERS and all(r.ok for r in records)
    assert len({r.job.pack for r in records}) == (4 if pack == "off" else 1)  # the penalties train as one pack


def test_sweep_params_from_the_config_expand_ranges_too() -> None:
    sweeper = RegsweepSweeperImpl(max_batch_size=None, params={"seed": "0-9", "regularizer": "l1,l2"})
    assert sorted(sweeper.arguments([])) == ["regularizer=l1,l2", "seed=range(0,10)"]
    assert sweeper.arguments(["seed=3"]) == ["regularizer=l1,l2", "seed=3"]  # the command line wins


@pytest.mark.slow
def test_force_added_values_reach_every_job(tmp_path: Path) -> None:
    """``++key=value`` is applied to each job's (cached) composition as Hydra applies it."""
    sweep = tmp_path / "sweep"
    result = run_train("-m", "seed=0,1", *TINY, "++trainer.max_epochs=3", "++data.batch_size=32",
                       "callbacks=no_stop", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    records = jobs(sweep)
    assert sorted(r.seed for r in records) == [0, 1]
    assert all(r.epochs == 3 and r.params["data.batch_size"] == 32 for r in records)
