"""What users found aggregating real sweep dirs: an evaluation inside a job dir, groups that changed, metrics without
a direction or without spread, a full or read-only disk."""

from __future__ import annotations

import csv
import errno
import logging
import math
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from test_aggregate_fixtures import make_job, make_regularizer_sweep, write_hydra_overrides
from test_faults import mount_tmpfs

from regsweep.aggregate import aggregate_sweep
from regsweep.aggregate.cli import main
from regsweep.aggregate.compare import EXACT, IDENTICAL, PairNames, answer_sentence, compare_metric
from regsweep.aggregate.tensorboard_runs import AGGREGATE_TB_DIR, EVENT_FILE_NAME
from regsweep.records import JobInfo, ResultRecord, find_job_dirs, write_result
from regsweep.sweep.summary import SweepSummary

NUMERIC_COLUMNS = ("n_group", "n_reference", "mean_group", "mean_reference", "difference", "ci95_low", "ci95_high",
                   "welch_t", "welch_df", "welch_p", "welch_p_holm", "mannwhitney_u", "mannwhitney_p",
                   "mannwhitney_p_holm", "hedges_g", "p_improvement")  # fmt: skip


def comparison_rows(sweep_dir: Path, metric: str) -> dict[tuple[str, str], dict[str, str]]:
    with open(sweep_dir / "comparisons.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # every numeric column stays a number a reader can parse, whatever the note says
    assert all(isinstance(float(row[column]), float) for row in rows for column in NUMERIC_COLUMNS)
    return {(r["group"], r["reference"]): r for r in rows if r["metric"] == metric}


def write_evaluation(job_dir: Path) -> Path:
    """What ``regsweep-eval <job dir>`` leaves in ``<job dir>/eval``: a record of a run outside any sweep."""
    out = job_dir / "eval"
    record = ResultRecord(status="ok", job=JobInfo(name=out.name, dir=str(out)), seed=0,
                          metrics={"test": {"test/acc": 0.5, "test/loss": 2.0}})
    return write_result(out, record)


def test_an_evaluation_or_anything_else_inside_a_job_dir_is_not_a_job_of_the_sweep(tmp_path: Path) -> None:
    sweep = make_regularizer_sweep(tmp_path / "sweep")
    jobs = sorted(find_job_dirs(sweep))
    write_evaluation(jobs[0])
    copied = jobs[1] / "old" / "copy"  # a run copied into a job's dir: Hydra's marker and a record
    write_hydra_overrides(copied, ["regularizer=l3", "seed=0"])
    write_evaluation(copied)
    (sweep / ".packs" / "0").mkdir(parents=True)  # the harness's own dirs stay out too
    write_evaluation(sweep / ".packs" / "0")
    assert list(find_job_dirs(sweep)) == jobs
    assert list(find_job_dirs(jobs[0])) == [jobs[0]]  # a job dir given on its own is the one job
    aggregated = aggregate_sweep(sweep, plots=False)
    first_line = f"Sweep {sweep}: 12 jobs in 3 groups: 12 ok, 0 failed, 0 missing (mean ± SE over seeds)"
    assert aggregated.console_summary().splitlines()[0] == first_line
    assert [g.label for g in aggregated.sweep.groups] == ["regularizer=none", "regularizer=l1", "regularizer=l2"]


def tensorboard_files(sweep_dir: Path) -> set[str]:
    return {p.relative_to(sweep_dir / AGGREGATE_TB_DIR).as_posix()
            for p in (sweep_dir / AGGREGATE_TB_DIR).rglob("*")}  # dirs too: an empty one is a stale run's


def test_reaggregating_leaves_exactly_the_current_groups_tensorboard_runs(tmp_path: Path) -> None:
    for seed in range(2):
        make_job(tmp_path, seed, ["regularizer=l1", f"seed={seed}"], 0.9 + seed / 100)
    aggregate_sweep(tmp_path, plots=False)
    assert (tmp_path / AGGREGATE_TB_DIR / "all" / "mean" / EVENT_FILE_NAME).exists()  # one group: (all)
    mine = tmp_path / AGGREGATE_TB_DIR / "all" / "mine"  # someone else's run beside it, and a note
    mine.mkdir()
    (mine / "events.out.tfevents.1.host").write_bytes(b"theirs")
    (tmp_path / AGGREGATE_TB_DIR / "notes.txt").write_text("theirs")
    for seed in range(2):
        make_job(tmp_path, 2 + seed, ["regularizer=l2", f"seed={seed}"], 0.9 + seed / 100)
    aggregate_sweep(tmp_path, plots=False)  # now two groups: (all) is gone
    runs = {f"{group}/{run}/{EVENT_FILE_NAME}" for group in ("regularizer=l1", "regularizer=l2")
            for run in ("mean", "mean-se", "mean+se")}
    dirs = {name.rpartition("/")[0] for name in runs} | {name.partition("/")[0] for name in runs}
    assert tensorboard_files(tmp_path) == runs | dirs | {"all", "all/mine", "all/mine/events.out.tfevents.1.host",
                                                          "notes.txt"}
    (mine / "events.out.tfevents.1.host").unlink()
    aggregate_sweep(tmp_path, plots=False)
    assert "all" in tensorboard_files(tmp_path)  # an empty dir it did not make stays too (it removes only its own)


def test_only_metrics_with_a_direction_are_called_better(tmp_path: Path) -> None:
    sweep = make_regularizer_sweep(tmp_path)
    aggregate_sweep(sweep, plots=False)
    pair = ("regularizer=l1", "regularizer=none")
    assert comparison_rows(sweep, "test/acc")[pair]["better"] == "higher"
    assert comparison_rows(sweep, "test/loss")[pair]["better"] == "lower"
    for metric in ("final/weights/l1", "best/weights/sparsity", "wall_time_s"):  # they differ, neither way better
        row = comparison_rows(sweep, metric)[pair]
        assert row["better"] == "" and math.isnan(float(row["p_improvement"])), metric
    values = {"heavy": {"final/weights/l1": np.array([9.0, 9.1, 9.2, 9.3])},
              "light": {"final/weights/l1": np.array([1.0, 1.1, 1.2, 1.3])}}
    [comparison] = compare_metric("final/weights/l1", [("heavy", "light")], values)
    assert comparison.welch_p_holm < 0.001  # a real difference, and still neither is better
    sentence = answer_sentence(comparison, PairNames("heavy", "light", ""))
    assert sentence.endswith(": they differ (this metric has no better direction)") and "is better" not in sentence


def make_constant_sweep(sweep_dir: Path) -> Path:
    """Three groups, three seeds, test accuracy the same in every seed: a = b, c higher."""
    for num, (group, accuracy) in enumerate((group, accuracy) for group, accuracy in
                                            (("a", 0.9), ("b", 0.9), ("c", 0.95)) for _ in range(3)):
        make_job(sweep_dir, num, [f"data={group}", f"seed={num % 3}"], accuracy)
    return sweep_dir


def test_metrics_without_spread_say_identical_or_exact_instead_of_nan(tmp_path: Path) -> None:
    sweep = make_constant_sweep(tmp_path)
    aggregate_sweep(sweep, plots=False)
    rows = comparison_rows(sweep, "test/acc")
    identical, exact = rows[("data=b", "data=a")], rows[("data=c", "data=a")]
    assert identical["note"] == IDENTICAL and float(identical["difference"]) == 0.0
    assert exact["note"] == EXACT and float(exact["ci95_low"]) == float(exact["ci95_high"]) == pytest.approx(0.05)
    assert all(math.isnan(float(row[p])) for row in (identical, exact) for p in ("welch_p", "mannwhitney_p_holm"))
    epochs = make_regularizer_sweep(tmp_path / "regularizers")  # 5 epochs in every job, different accuracies
    aggregate_sweep(epochs, plots=False)
    assert {row["note"] for row in comparison_rows(epochs, "epochs").values()} == {IDENTICAL}
    assert {row["note"] for row in comparison_rows(epochs, "test/acc").values()} == {""}
    summary = (sweep / "summary.md").read_text()
    answers = summary.partition("## Answers")[2].partition("\n## ")[0]
    assert f"data=b vs data=a: test accuracy 90.00% vs 90.00% (+0.00 pp, {IDENTICAL}): no difference" in answers
    assert f"data=c vs data=a: test accuracy 95.00% vs 90.00% (+5.00 pp, {EXACT}): data=c is better" \
        in answers
    assert f"- data=b vs data=a: +0.00 pp test accuracy, {IDENTICAL}, n = 3/3" in summary
    assert "p = n/a" not in summary


def fill(disk: Path) -> None:
    """Write until the disk is full."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        with pytest.raises(OSError) as full:
            while True:
                handle.write(bytes(1 << 16))
    assert full.value.errno == errno.ENOSPC


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "2m")  # skips where mounting is not possible
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_the_old_files_whole(
        small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = make_regularizer_sweep(small_disk / "sweep")
    assert main([str(sweep), "--no-plots"]) == 0
    before = {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file()}
    make_job(sweep, 12, ["regularizer=l1", "seed=4"], 0.96)  # every report would change
    fill(small_disk)
    capsys.readouterr()
    assert main([str(sweep), "--no-plots"]) == 1
    error = capsys.readouterr().err
    full = "[Errno 28] No space left on device"
    assert error == f"regsweep-aggregate: error: cannot write {sweep / 'summary.csv'}: {full}\n"
    assert {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file()} == before
    assert not [p for p in sweep.rglob("*.tmp")]


@pytest.fixture
def read_only_sweep(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """A sweep dir that refuses writes, and why: a tmpfs remounted read-only as root (whom chmod does not stop),
    else a dir without write permission."""
    if os.geteuid() != 0:
        sweep = make_regularizer_sweep(tmp_path / "sweep")
        sweep.chmod(0o555)
        try:
            yield sweep, "[Errno 13] Permission denied"
        finally:
            sweep.chmod(0o755)
        return
    disk = request.getfixturevalue("small_disk")
    sweep = make_regularizer_sweep(disk / "sweep")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    yield sweep, "[Errno 30] Read-only file system"


def test_a_read_only_sweep_dir_is_one_line_from_the_command_and_at_the_end_of_a_multirun(
        read_only_sweep: tuple[Path, str], capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    sweep, why = read_only_sweep
    assert main([str(sweep), "--no-plots"]) == 1
    assert capsys.readouterr().err == f"regsweep-aggregate: error: cannot write {sweep / 'summary.csv'}: {why}\n"
    with caplog.at_level(logging.WARNING, logger="regsweep.sweep.summary"):
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.getMessage() == f"no summary of {sweep}: cannot write {sweep / 'plots' / 'test_metrics.png'}: {why}"
