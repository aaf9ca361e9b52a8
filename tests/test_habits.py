"""What users of Lightning and lightning-hydra-template type: each works, or fails with one clear line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CONF_DIR, ROOT, TINY, run_train
from regsweep import evaluate
from regsweep.checkpoints import CheckpointError
from regsweep.config import validate
from regsweep.console import count
from regsweep.errors import ConfigError
from regsweep.job import run
from regsweep.records import EPOCHS_FILE, read_epochs_csv, read_result

DIGITS_MINIBATCHES = 18  # 1,150 training images in batches of 64 (the digits default)
PLAIN = [*TINY, "data.batch_size=64", "callbacks=no_stop"]


def test_batch_limits_count_minibatches_whatever_the_group_size(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*PLAIN, "trainer.max_epochs=2", "trainer.limit_train_batches=5"))
    assert read_result(tmp_path).steps == 2 * 5  # 5 optimizer steps an epoch, not 5 groups of 16
    run(make_cfg(*PLAIN, "trainer.max_epochs=2", "trainer.limit_train_batches=0.1"))
    assert read_result(tmp_path).steps == 2 * 1  # a fraction keeps at least one minibatch


def test_max_steps_stops_the_run_with_early_stopping_on(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*TINY, "data.batch_size=64", "trainer.max_epochs=10", "trainer.max_steps=25"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.steps == 25 and record.epochs == 2  # 18 + 7 minibatches


def test_fast_dev_run(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*PLAIN, "trainer.fast_dev_run=true"))
    record = read_result(tmp_path)
    assert record.status == "ok" and (record.epochs, record.steps) == (1, 1) and record.metrics["test"]


@pytest.mark.parametrize("option", sorted(p.stem for p in (CONF_DIR / "debug").glob("*.yaml")))
def test_every_debug_option_runs(make_cfg, tmp_path: Path, option: str) -> None:
    run(make_cfg(*TINY, f"debug={option}"))
    assert read_result(tmp_path).status == "ok"


def test_debug_overfit_memorizes_its_batches(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*TINY, "model.hidden_sizes=[128]", "data.batch_size=16", "optimizer.lr=1e-2", "debug=overfit",
                 "trainer.max_epochs=40"))
    rows = read_epochs_csv(tmp_path / EPOCHS_FILE)
    assert read_result(tmp_path).steps == 40 * 3  # the same 3 minibatches every epoch
    assert rows[-1]["val/acc"] > 0.95 and rows[-1]["val/loss"] < rows[0]["val/loss"] / 10  # validated on them


@pytest.mark.parametrize("logger,files", [
    ("csv", ["metrics/metrics.csv"]),
    ("many_loggers", ["metrics/metrics.csv", "events.out.tfevents.*"]),
    ("none", []),
])
def test_loggers(make_cfg, tmp_path: Path, logger: str, files: list[str]) -> None:
    run(make_cfg(*PLAIN, f"logger={logger}"))
    assert read_result(tmp_path).status == "ok"
    for pattern in files:
        assert list(tmp_path.glob(pattern)), pattern
    if logger == "none":
        assert not list(tmp_path.glob("events.out.tfevents.*"))


def test_tags_are_recorded_and_shown_in_hparams(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*PLAIN, "tags=[baseline,report-002]"))
    assert read_result(tmp_path).tags == ["baseline", "report-002"]
    events = EventAccumulator(str(tmp_path)).Reload()
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_no_callbacks_keeps_and_tests_the_last_epoch(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*TINY, "~callbacks", "trainer.max_epochs=3"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["best"]["epoch"] == 2 and record.metrics["test"]


def test_bf16_mixed_precision_trains(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*PLAIN, "trainer.precision=bf16-mixed", "trainer.max_epochs=2"))
    record = read_result(tmp_path)
    assert record.status == "ok" and 0.2 < record.metrics["test"]["test/acc"] <= 1


def test_test_false_skips_the_test_set_and_train_false_needs_a_checkpoint(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*PLAIN, "test=false"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["test"] == {} and record.metrics["best"]
    with pytest.raises(ConfigError, match="train=False: false needs ckpt_path"):
        validate(make_cfg(*PLAIN, "train=false"))


def test_ckpt_path_continues_training_to_the_numbers_of_an_uninterrupted_run(
        make_cfg, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    straight, first, continued = (tmp_path / name for name in ("straight", "first", "continued"))
    run(make_cfg(*PLAIN, "trainer.max_epochs=5", f"paths.output_dir={straight}"))
    run(make_cfg(*PLAIN, "trainer.max_epochs=3", f"paths.output_dir={first}"))
    with caplog.at_level(logging.INFO, logger="regsweep.job"):
        run(make_cfg(*PLAIN, "trainer.max_epochs=5", f"ckpt_path={first}/checkpoints/last.ckpt",
                     f"paths.output_dir={continued}"))
    assert "last.ckpt at epoch 3 (3 epochs done)" in caplog.text  # epochs 0-2 done, numbered from 0
    assert read_result(continued).epochs == 5
    assert read_epochs_csv(continued / EPOCHS_FILE) == read_epochs_csv(straight / EPOCHS_FILE)
    assert read_result(continued).metrics == read_result(straight).metrics


def test_a_checkpoint_of_another_config_is_refused(make_cfg, tmp_path: Path) -> None:
    first = tmp_path / "first"
    run(make_cfg(*PLAIN, f"paths.output_dir={first}"))
    with pytest.raises(CheckpointError, match="written by a job with another config"):
        run(make_cfg(*PLAIN, "model.hidden_sizes=[16]", f"ckpt_path={first}/checkpoints/last.ckpt",
                     f"paths.output_dir={tmp_path / 'other'}"))


def test_evaluating_a_checkpoint_of_another_network_says_which_keys_differ(make_cfg, tmp_path: Path) -> None:
    job = tmp_path / "job"
    run(make_cfg(*PLAIN, "trainer.max_epochs=1", f"paths.output_dir={job}"))
    with pytest.raises(CheckpointError, match=r"another network than this config builds \(model.dropout: 'off' in it, "
                       r"'on' here; model.hidden_sizes: \[32\] in it, \[16, 8\] here\)"):
        run(make_cfg(*PLAIN, "train=false", f"ckpt_path={job}/checkpoints/best.ckpt", "model.hidden_sizes=[16,8]",
                     "model.dropout=0.1", f"paths.output_dir={tmp_path / 'eval'}"))
    assert not (tmp_path / "eval" / "result.json").exists() or read_result(tmp_path / "eval").status == "failed"


def test_enable_checkpointing_false_writes_no_checkpoint_and_still_tests_the_kept_epoch(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*TINY, "trainer.max_epochs=3", "trainer.enable_checkpointing=false"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["test"] and not (tmp_path / "checkpoints").exists()


def test_default_root_dir_elsewhere_than_the_jobs_own_dir_is_refused(make_cfg, tmp_path: Path) -> None:
    validate(make_cfg(*TINY, f"trainer.default_root_dir={tmp_path}"))  # the job's own dir (paths.output_dir)
    with pytest.raises(ConfigError, match="trainer.default_root_dir=.*set hydra.run.dir"):
        validate(make_cfg(*TINY, f"trainer.default_root_dir={tmp_path / 'elsewhere'}"))


@pytest.mark.parametrize("max_time", ["00:00:00:01", "{seconds: 1}"])
def test_max_time_stops_the_run_and_the_record_says_why(make_cfg, tmp_path: Path, max_time: str) -> None:
    run(make_cfg(*PLAIN, "trainer.max_epochs=100000", f"trainer.max_time={max_time}"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.epochs < 100000
    assert record.stop_reason == f"trainer.max_time reached after {count(record.epochs, 'epoch')}"


def test_evaluating_a_saved_checkpoint_gives_the_jobs_test_numbers(make_cfg, tmp_path: Path) -> None:
    job = tmp_path / "job"
    run(make_cfg(*PLAIN, "trainer.max_epochs=3", f"paths.output_dir={job}"))
    tested = read_result(job).metrics["test"]
    run(make_cfg(*PLAIN, "train=false", f"ckpt_path={job}/checkpoints/best.ckpt", f"paths.output_dir={tmp_path / 'a'}"))
    assert read_result(tmp_path / "a").metrics["test"] == pytest.approx(tested, rel=1e-6)
    assert evaluate.main([str(job), "--out", str(tmp_path / "b")]) == 0  # the entry point: config from the file
    assert read_result(tmp_path / "b").metrics["test"] == pytest.approx(tested, rel=1e-6)
    assert evaluate.main([str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("arguments,message", [
    (["trainer=gpu"], "no GPU is visible here"),
    (["experiment=regression"], "regression is a sweep: run it with -m"),
    (["trainer.max_epoch=3"], "Could not override 'trainer.max_epoch'"),
    (["logger=null"], "use logger=none (or ~logger) for none"),
])
def test_mistakes_fail_with_one_clear_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    if arguments == ["trainer=gpu"] and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    result = run_train(*TINY, *arguments, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_output_dir_that_cannot_be_written_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    result = run_train(*TINY, f"hydra.run.dir={tmp_path}/a_file/run", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"hydra.run.dir='{tmp_path}/a_file/run': is not a writable directory (Not a directory)" in result.stderr


@pytest.mark.slow
def test_a_run_logs_to_train_log_prints_unwrapped_tables_and_says_what_next(tmp_path: Path) -> None:
    result = run_train(*TINY, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "epoch 1 (2 of 2)" in log and "ok after 2 epochs" in log  # numbered from 0, as everywhere
    assert f"outputs: {tmp_path}/run" in result.stdout and f"tensorboard --logdir {tmp_path}/run" in result.stdout
    assert "Warning" not in result.stderr and "deprecated" not in result.stderr  # nothing printed on every run

    sweep = tmp_path / "sweep"
    swept = run_train("-m", "seed=0-10", *TINY, "trainer.max_epochs=1", "hydra.callbacks.sweep_summary.aggregate=false",
                      f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr[-3000:]
    rows = [line for line in swept.stdout.splitlines() if line.startswith("| ") and "seed=" in line]
    assert [row.split("|")[1].strip().split("_")[0] for row in rows] == [str(n) for n in range(11)]  # 0, 1, ..., 10
    assert all(str(sweep) in line for line in swept.stdout.splitlines() if line.startswith("Sweep "))  # not wrapped
    assert f"next: tensorboard --logdir {sweep}" in swept.stdout


PROBE = """
import runpy, sys
sys.argv = ["train.py", *sys.argv[1:]]
try:
    runpy.run_path({train!r}, run_name="__main__")
finally:
    print("IMPORTED", sorted({{m.split(".")[0] for m in sys.modules}} & {{"optuna", "sqlalchemy", "submitit"}}))
"""


@pytest.mark.slow
def test_a_plain_job_imports_no_search_or_cluster_code(tmp_path: Path) -> None:
    """Optuna and submitit (seconds of imports in every job) load only for a search or on a cluster."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.format(train=str(ROOT / "train.py")))
    result = subprocess.run([sys.executable, str(probe), *TINY, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_result(tmp_path / "run").status == "ok"
    assert "IMPORTED []" in result.stdout, result.stdout[-500:]


@pytest.mark.parametrize("module", ["regsweep.resume", "regsweep.evaluate", "regsweep.reference"])
def test_a_command_help_shows_its_docstring_line_without_rest_markup(module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "``" not in result.stdout


USER_CALLBACKS = '''
import lightning as L

class EpochPrinter(L.Callback):
    """Prints what any Lightning callback reads at the end of a training epoch."""

    def __init__(self, prefix: str = "epoch"):
        self.prefix = prefix

    def on_train_epoch_end(self, trainer, pl_module):
        print(self.prefix, trainer.current_epoch, float(trainer.callback_metrics["val/loss"]), flush=True)

class NotACallback:
    pass
'''


@pytest.mark.slow
def test_a_users_own_callback_and_lightnings_stock_ones_work_in_a_multirun(tmp_path: Path) -> None:
    (tmp_path / "mycb.py").write_text(USER_CALLBACKS)
    sweep = tmp_path / "sweep"
    result = run_train("-m", "seed=0,1", *TINY, "trainer.max_epochs=3", "callbacks=no_stop",
                       "+callbacks.printer._target_=mycb.EpochPrinter",
                       "+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor",
                       "+callbacks.lr.logging_interval=epoch", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "callbacks.printer (mycb.EpochPrinter) is a Lightning callback of the whole " \
           "trainer, so its jobs train one at a time" in result.stdout + result.stderr
    jobs = sorted(sweep.glob("[0-9]*"))
    for job in jobs:
        tags = EventAccumulator(str(job)).Reload().Tags()["scalars"]
        assert any(tag.startswith("lr-Adam") for tag in tags) and "val/loss" in tags  # into the job's own run
    printed = [float(line.split()[2]) for line in result.stdout.splitlines() if line.startswith("epoch ")]
    logged = [row["val/loss"] for job in jobs for row in read_epochs_csv(job / EPOCHS_FILE)]
    assert printed == pytest.approx(logged, rel=1e-6)  # every epoch's own metrics, read from callback_metrics


@pytest.mark.slow
@pytest.mark.parametrize("arguments,message", [
    (["+callbacks.x._target_=mycb.NotACallback"],
     "callbacks.x._target_='mycb.NotACallback': is not a lightning.Callback"),
    (["+callbacks.x._target_=nomod.Cb"], "callbacks.x._target_='nomod.Cb': does not import (ModuleNotFoundError: "
                                          "No module named 'nomod'; searched "),
    (["+callbacks.x._target_=mycb.EpochPrinter", "+callbacks.x.colour=red"],
     "EpochPrinter refuses these arguments (got an unexpected keyword argument 'colour')"),
    (["+logger.x._target_=mycb.EpochPrinter"], "logger.x._target_='mycb.EpochPrinter': is not a "
                                               "lightning.pytorch.loggers.Logger"),
])
def test_a_callback_or_logger_that_cannot_work_is_refused_before_any_job(
        tmp_path: Path, arguments: list[str], message: str) -> None:
    (tmp_path / "mycb.py").write_text(USER_CALLBACKS)
    result = run_train("-m", "seed=0,1", *TINY, *arguments, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert "none was started" in result.stderr and not (tmp_path / "sweep").exists()
