"""aggregate_sweep on fabricated sweeps: grouping, statistics, comparisons, reports, plots, TensorBoard."""

from __future__ import annotations

import csv
import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_aggregate_fixtures import TEST_ACC, make_job, make_regularizer_sweep, write_hydra_overrides

from regsweep.aggregate import AggregateError, SweepAggregate, aggregate_sweep
from regsweep.aggregate.compare import compare_pair, comparison_sentence
from regsweep.aggregate.load import load_sweep
from regsweep.records import write_epochs_csv

FAILED_JOB = "12_regularizer=l1,seed=4"
MISSING_JOB = "13_regularizer=l2,seed=4"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_sweep_with_problems(sweep_dir: Path) -> Path:
    """The regularizer sweep plus one failed job (in l1) and one that never wrote its record (in l2)."""
    make_regularizer_sweep(sweep_dir)
    make_job(sweep_dir, 12, ["regularizer=l1", "seed=4"], 0.5, status="failed", error="DivergenceError: loss is nan")
    write_hydra_overrides(sweep_dir / MISSING_JOB, ["regularizer=l2", "seed=4"])
    return sweep_dir


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory: pytest.TempPathFactory) -> SweepAggregate:
    return aggregate_sweep(make_sweep_with_problems(tmp_path_factory.mktemp("sweep")))


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def summary_row(sweep_dir: Path, group: str, metric: str) -> dict[str, str]:
    return next(r for r in read_csv_rows(sweep_dir / "summary.csv") if r["group"] == group and r["metric"] == metric)


def file_digests(root: Path, pattern: str) -> dict[str, str]:
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_grouping_separates_every_override_but_the_seed(tmp_path: Path) -> None:
    for num, overrides in enumerate(
        [
            ["regularizer=l1", "optimizer.lr=0.1", "seed=0"],
            ["optimizer.lr=0.1", "regularizer=l1", "+seed=1", "hydra.verbose=true"],
            ["regularizer=l1", "optimizer.lr=0.01", "seed=0"],
            ["regularizer=l2", "optimizer.lr=0.1", "seed=0"],
        ]
    ):
        make_job(tmp_path, num, overrides, 0.9)
    groups = {g.label: [job.name for job in g.jobs] for g in load_sweep(tmp_path).groups}
    assert groups == {
        "optimizer.lr=0.1,regularizer=l1": [
            "0_regularizer=l1,optimizer.lr=0.1,seed=0",
            "1_optimizer.lr=0.1,regularizer=l1,+seed=1,hydra.verbose=true",
        ],
        "optimizer.lr=0.01,regularizer=l1": ["2_regularizer=l1,optimizer.lr=0.01,seed=0"],
        "optimizer.lr=0.1,regularizer=l2": ["3_regularizer=l2,optimizer.lr=0.1,seed=0"],
    }


def test_a_search_trials_seeds_are_one_group_whichever_seed_reports_to_the_pruner(tmp_path: Path) -> None:
    for num, (trial, seed) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        make_job(tmp_path, num, [f"optimizer.lr={0.1 ** (trial + 1)}", f"seed={seed}", f"++search.trial={trial}",
                                 f"++search.report={seed == 0}"], 0.9)
    groups = {g.label: len(g.jobs) for g in load_sweep(tmp_path).groups}
    assert groups == {"optimizer.lr=0.1,search.trial=0": 2, "optimizer.lr=0.010000000000000002,search.trial=1": 2}


def test_a_seed_run_in_two_sweeps_counts_once_the_ok_run_kept(tmp_path: Path) -> None:
    first, rerun = tmp_path / "first", tmp_path / "rerun"
    for seed, status in enumerate(["ok", "ok", "failed"]):
        make_job(first, seed, ["regularizer=l1", f"seed={seed}"], 0.90 + seed / 100, status=status, error="boom")
    make_job(rerun, 0, ["regularizer=l1", "seed=1"], 0.5, status="failed", error="boom")  # the first run was ok
    make_job(rerun, 1, ["regularizer=l1", "seed=2"], 0.95)  # the first run failed
    make_job(rerun, 2, ["regularizer=l1", "seed=3"], 0.96)  # a new seed
    result = aggregate_sweep(tmp_path, plots=False)
    (group,) = result.sweep.groups
    assert sorted((job.record.seed, job.dir.parent.name, job.status) for job in group.jobs) == [
        (0, "first", "ok"), (1, "first", "ok"), (2, "rerun", "ok"), (3, "rerun", "ok")]
    assert [(job.dir.parent.name, kept.dir.parent.name) for job, kept in group.repeats] == [
        ("rerun", "first"), ("first", "rerun")]
    assert float(summary_row(tmp_path, "(all)", "test/acc")["n"]) == 4
    text = (tmp_path / "summary.md").read_text()
    assert "4 jobs in 1 group: 4 ok, 0 failed, 0 missing; 2 more left out (their seed ran twice)" in text
    assert "- `rerun/0_regularizer=l1,seed=1` ((all)): left out: seed 1 again, counted once, from " \
        "`first/1_regularizer=l1,seed=1`" in text


def test_jobs_csv_holds_every_jobs_values_and_which_count_in_the_statistics(tmp_path: Path) -> None:
    first, rerun = tmp_path / "first", tmp_path / "rerun"
    for seed, regularizer in enumerate(["l1", "l1", "l2", "l2"]):
        make_job(first, seed, [f"regularizer={regularizer}", f"seed={seed % 2}"], 0.90 + seed / 100)
    make_job(first, 4, ["regularizer=l2", "seed=2"], 0.5, status="failed", error="DivergenceError: loss is nan")
    make_job(rerun, 5, ["regularizer=l1", "seed=1"], 0.7)  # seed 1 of l1 again, later: counted once, the first
    aggregate_sweep(tmp_path, plots=False)
    rows = {row["job"]: row for row in read_csv_rows(tmp_path / "jobs.csv")}
    counted = {job: (row["regularizer"], row["seed"], row["status"], row["counted"]) for job, row in rows.items()}
    assert counted == {
        "first/0_regularizer=l1,seed=0": ("l1", "0", "ok", "True"),
        "first/1_regularizer=l1,seed=1": ("l1", "1", "ok", "True"),
        "first/2_regularizer=l2,seed=0": ("l2", "0", "ok", "True"),
        "first/3_regularizer=l2,seed=1": ("l2", "1", "ok", "True"),
        "first/4_regularizer=l2,seed=2": ("l2", "2", "failed", "False"),
        "rerun/5_regularizer=l1,seed=1": ("l1", "1", "ok", "False"),
    }
    assert rows["first/4_regularizer=l2,seed=2"]["error"] == "DivergenceError: loss is nan"
    assert rows["first/4_regularizer=l2,seed=2"]["test/acc"] == ""
    assert float(rows["rerun/5_regularizer=l1,seed=1"]["test/acc"]) == 0.7
    for group in ("regularizer=l1", "regularizer=l2"):  # the counted rows are what the group statistics are of
        values = [float(r["test/acc"]) for r in rows.values() if r["group"] == group and r["counted"] == "True"]
        assert float(summary_row(tmp_path, group, "test/acc")["mean"]) == pytest.approx(np.mean(values), abs=1e-15)
        assert len(values) == 2


def test_labels_leave_out_overrides_every_job_shares(tmp_path: Path) -> None:
    for num, regularizer in enumerate(["none", "l1", "none", "l1"]):
        make_job(tmp_path, num, [f"regularizer={regularizer}", "trainer.max_epochs=2", f"seed={num // 2}"], 0.9)
    groups = load_sweep(tmp_path).groups
    assert [g.label for g in groups] == ["regularizer=none", "regularizer=l1"]
    assert groups[0].overrides == {"regularizer": "none", "trainer.max_epochs": "2"}


def test_seed_only_sweep_is_one_group(tmp_path: Path) -> None:
    for seed in range(3):
        make_job(tmp_path, seed, [f"seed={seed}"], 0.9 + seed / 100)
    result = aggregate_sweep(tmp_path, plots=False)
    assert list(result.groups) == ["(all)"] and len(result.groups["(all)"]) == 3
    assert result.comparisons == []


def test_groups_counts_and_problem_jobs(aggregated: SweepAggregate) -> None:
    assert list(aggregated.groups) == ["regularizer=none", "regularizer=l1", "regularizer=l2"]
    assert [len(records) for records in aggregated.groups.values()] == [4, 5, 4]  # l1 includes the failed record
    assert aggregated.n_ok == 12
    assert aggregated.failed == [(FAILED_JOB, "DivergenceError: loss is nan")]
    assert aggregated.missing == [MISSING_JOB]
    assert aggregated.baseline == "regularizer=none"


def test_summary_csv_statistics_match_scipy(aggregated: SweepAggregate) -> None:
    accuracies = np.array(TEST_ACC["l1"])
    row = summary_row(aggregated.sweep.sweep_dir, "regularizer=l1", "test/acc")
    assert (row["n_ok"], row["n_failed"], row["n_missing"], row["n"]) == ("4", "1", "0", "4")
    assert float(row["mean"]) == pytest.approx(accuracies.mean())
    assert float(row["std"]) == pytest.approx(accuracies.std(ddof=1))
    assert float(row["se"]) == pytest.approx(sps.sem(accuracies))
    t_low, t_high = sps.t.interval(0.95, df=3, loc=accuracies.mean(), scale=sps.sem(accuracies))
    assert (float(row["ci95_low"]), float(row["ci95_high"])) == pytest.approx((t_low, t_high))
    assert float(row["boot95_low"]) <= accuracies.mean() <= float(row["boot95_high"])
    assert (float(row["min"]), float(row["max"]), float(row["median"])) == pytest.approx((0.92, 0.95, 0.935))
    assert summary_row(aggregated.sweep.sweep_dir, "regularizer=l2", "test/acc")["n_missing"] == "1"


def test_every_numeric_metric_is_summarized(aggregated: SweepAggregate) -> None:
    metrics = {r["metric"] for r in read_csv_rows(aggregated.sweep.sweep_dir / "summary.csv")}
    expected = {"test/acc", "test/loss", "best/val/acc", "best/val/error", "best/epoch", "final/gen_gap/acc",
                "final/gen_gap/loss", "final/weights/sparsity", "final/weights/l2", "epochs",
                "wall_time_s"}  # fmt: skip
    assert expected <= metrics


def test_comparisons_match_scipy_and_holm(aggregated: SweepAggregate) -> None:
    rows = [r for r in read_csv_rows(aggregated.sweep.sweep_dir / "comparisons.csv") if r["metric"] == "test/acc"]
    pairs = [(r["group"], r["reference"]) for r in rows]
    # 3 groups: every pair by default, the baseline's pairs first
    expected_pairs = [("l1", "none"), ("l2", "none"), ("l2", "l1")]
    assert pairs == [(f"regularizer={a}", f"regularizer={b}") for a, b in expected_pairs]
    raw = [sps.ttest_ind(TEST_ACC[a], TEST_ACC[b], equal_var=False).pvalue for a, b in expected_pairs]
    assert [float(r["welch_p"]) for r in rows] == pytest.approx(raw)
    order = np.argsort(raw)  # Holm by hand: (3, 2, 1) x the sorted p-values, running maximum, capped at 1
    step_down = np.minimum(1.0, np.maximum.accumulate([(3 - i) * raw[k] for i, k in enumerate(order)]))
    expected_holm = np.empty(3)
    expected_holm[order] = step_down
    assert [float(r["welch_p_holm"]) for r in rows] == pytest.approx(list(expected_holm))
    assert float(rows[0]["mean_group"]) == pytest.approx(np.mean(TEST_ACC["l1"]))
    assert float(rows[0]["mean_reference"]) == pytest.approx(np.mean(TEST_ACC["none"]))
    assert float(rows[0]["difference"]) == pytest.approx(np.mean(TEST_ACC["l1"]) - np.mean(TEST_ACC["none"]))
    assert float(rows[0]["p_improvement"]) == pytest.approx(15.5 / 16)  # one tie (0.92 vs 0.92) in 16 pairs
    loss_rows = [r for r in read_csv_rows(aggregated.sweep.sweep_dir / "comparisons.csv") if r["metric"] == "test/loss"]
    assert loss_rows[0]["better"] == "lower" and float(loss_rows[0]["p_improvement"]) == pytest.approx(15.5 / 16)


def test_comparison_sentence_format(aggregated: SweepAggregate) -> None:
    comparison = next(c for c in aggregated.comparisons if c.metric == "test/acc" and c.group == "regularizer=l1")
    sentence = comparison_sentence(comparison)
    pattern = (
        r"regularizer=l1 vs regularizer=none: \+3\.00 pp test accuracy, "
        r"95% CI \[(\S+), (\S+)\], p = (\S+) \(Holm\), n = 4/4"
    )
    match = re.fullmatch(pattern, sentence)
    assert match, sentence
    interval = sps.ttest_ind(TEST_ACC["l1"], TEST_ACC["none"], equal_var=False).confidence_interval()
    assert (float(match[1]), float(match[2])) == pytest.approx((100 * interval.low, 100 * interval.high), abs=0.005)
    assert float(match[3]) == pytest.approx(comparison.welch_p_holm, rel=0.05)
    loss = next(c for c in aggregated.comparisons if c.metric == "test/loss" and c.group == "regularizer=l1")
    assert comparison_sentence(loss).startswith("regularizer=l1 vs regularizer=none: -0.03 test loss, 95% CI [")


def test_summary_markdown_has_tables_sentences_and_problem_jobs(aggregated: SweepAggregate) -> None:
    text = (aggregated.sweep.sweep_dir / "summary.md").read_text()
    headers = ["test acc (%)", "val acc (%)", "test loss", "val loss", "val error (%)", "gen gap acc (pp)",
               "sparsity < 0.001 (%)"]
    assert all(f"| {header} |" in text for header in [*headers, "epochs", "ok/failed/missing"])
    assert "| regularizer=l1 | 93.50 ± 0.65 |" in text
    assert "- regularizer=l1 vs regularizer=none: +3.00 pp test accuracy" in text
    assert f"`{FAILED_JOB}` (regularizer=l1): failed: DivergenceError: loss is nan" in text
    assert f"`{MISSING_JOB}` (regularizer=l2): missing" in text
    assert "![learning_curves](plots/learning_curves.png)" in text


def test_console_summary_has_one_row_per_group(aggregated: SweepAggregate) -> None:
    summary = aggregated.console_summary()
    rows = [line for line in summary.splitlines() if line.startswith("| regularizer=")]
    assert len(rows) == 3
    assert rows[1].startswith("| regularizer=l1 | 93.50 ± 0.65 |") and rows[1].endswith("| 4/1/0 |")
    assert "12 ok, 1 failed, 1 missing" in summary



def test_an_interrupted_job_is_counted_and_named(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.9)
    why = "interrupted by SIGTERM during epoch 3; resuming continues from epoch 3"
    make_job(tmp_path, 1, ["seed=1"], 0.9, status="interrupted", error=why, epochs=3)
    write_hydra_overrides(tmp_path / "2_seed=2", ["seed=2"])  # planned, never started
    aggregated = aggregate_sweep(tmp_path, plots=False)
    console = aggregated.console_summary()
    assert "3 jobs in 1 group: 1 ok, 0 failed, 1 interrupted, 1 missing" in console
    assert console.splitlines()[1].endswith("| ok/failed/interrupted/missing |")  # every job counted in the table
    assert console.splitlines()[3].endswith("| 1/0/1/1 |")
    summary = (tmp_path / "summary.md").read_text()
    assert f"`1_seed=1` ((all)): interrupted: {why}" in summary and "`2_seed=2` ((all)): missing" in summary
    row = summary_row(tmp_path, "(all)", "test/acc")
    assert (row["n_ok"], row["n_interrupted"], row["n_pruned"], row["n_missing"]) == ("1", "1", "0", "1")


def test_plots_are_png_files(aggregated: SweepAggregate) -> None:
    plots = sorted(p.name for p in (aggregated.sweep.sweep_dir / "plots").iterdir())
    assert plots == ["generalization_gap.png", "learning_curves.png", "test_metrics.png", "weight_histograms.png"]
    for name in plots:
        data = (aggregated.sweep.sweep_dir / "plots" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000


def test_plot_against_a_swept_number_uses_the_override_key(tmp_path: Path) -> None:
    for num, l1 in enumerate(["0.0", "1e-5", "1e-4", "0.0", "1e-5", "1e-4"]):
        make_job(tmp_path, num, ["regularizer=l1", f"regularizer.l1={l1}", f"seed={num // 3}"], 0.9 + num / 100)
    result = aggregate_sweep(tmp_path)
    plot = tmp_path / "plots" / "vs_regularizer.l1.png"
    assert plot in result.outputs and plot.read_bytes().startswith(PNG_SIGNATURE)


def test_tensorboard_runs_have_the_csv_tags_and_seed_means(aggregated: SweepAggregate) -> None:
    group_dir = aggregated.sweep.sweep_dir / "aggregate_tb" / "regularizer=l1"
    runs = {}
    for run in ("mean", "mean-se", "mean+se"):
        runs[run] = EventAccumulator(str(group_dir / run))
        runs[run].Reload()
    csv_tags = {"train/loss", "val/loss", "train/acc", "val/acc", "lr"}
    assert csv_tags | {"aggregate/n_jobs"} == set(runs["mean"].Tags()["scalars"])
    assert set(runs["mean+se"].Tags()["scalars"]) == {"train/loss", "val/loss", "train/acc", "val/acc", "lr"}
    val_acc = runs["mean"].Scalars("val/acc")
    assert [event.step for event in val_acc] == [0, 1, 2, 3, 4]
    assert val_acc[0].value == pytest.approx(np.mean(TEST_ACC["l1"]) - 0.05)
    upper, lower = runs["mean+se"].Scalars("val/acc")[0].value, runs["mean-se"].Scalars("val/acc")[0].value
    assert upper - val_acc[0].value == pytest.approx(sps.sem(TEST_ACC["l1"]), rel=1e-5)
    assert val_acc[0].value - lower == pytest.approx(sps.sem(TEST_ACC["l1"]), rel=1e-5)
    assert [event.value for event in runs["mean"].Scalars("aggregate/n_jobs")] == [4] * 5


def test_curves_average_only_jobs_that_reached_the_epoch(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.90, epochs=3)
    make_job(tmp_path, 1, ["seed=1"], 0.94, epochs=5)
    aggregate_sweep(tmp_path, plots=False)
    mean_run = EventAccumulator(str(tmp_path / "aggregate_tb" / "all" / "mean"))
    mean_run.Reload()
    assert [e.value for e in mean_run.Scalars("aggregate/n_jobs")] == [2, 2, 2, 1, 1]
    val_loss = {e.step: e.value for e in mean_run.Scalars("val/loss")}
    assert val_loss[0] == pytest.approx(np.mean([1.1 - 0.90 + 0.1, 1.1 - 0.94 + 0.1]))
    assert val_loss[4] == pytest.approx(1.1 - 0.94 + 0.1 / 5)


def test_rerun_rewrites_identical_outputs(tmp_path: Path) -> None:
    make_sweep_with_problems(tmp_path)
    first = aggregate_sweep(tmp_path)
    digests = {pattern: file_digests(tmp_path, pattern) for pattern in ("*.csv", "*.md", "aggregate_tb/**/*")}
    second = aggregate_sweep(tmp_path)
    assert {pattern: file_digests(tmp_path, pattern) for pattern in digests} == digests
    assert first.outputs == second.outputs and all(path.exists() for path in second.outputs)
    assert len(list((tmp_path / "aggregate_tb").rglob("events.out.tfevents.*"))) == 9
    assert not list(tmp_path.rglob("*.tmp"))


def test_nan_metric_of_an_ok_job_is_left_out_and_counted(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.90)
    make_job(tmp_path, 1, ["seed=1"], 0.92)
    make_job(tmp_path, 2, ["seed=2"], math.nan)
    aggregate_sweep(tmp_path, plots=False)
    row = summary_row(tmp_path, "(all)", "test/acc")
    assert (row["n_ok"], row["n"], row["n_nonfinite"]) == ("3", "2", "1")
    assert float(row["mean"]) == pytest.approx(0.91)


def test_optuna_like_sweep_with_single_trials_and_regression_metrics(tmp_path: Path) -> None:
    for trial in range(4):
        overrides = [f"optimizer.lr={10.0 ** -(trial + 1)}", f"model.dropout={trial / 10}"]
        make_job(tmp_path, trial, overrides, 0.8 + trial / 100, classification=False)
    result = aggregate_sweep(tmp_path, all_pairs=True)
    assert len(result.groups) == 4 and result.baseline == "model.dropout=0.0,optimizer.lr=0.1"  # no dropout
    assert len([c for c in result.comparisons if c.metric == "test/loss"]) == 6
    assert summary_row(tmp_path, "model.dropout=0.0,optimizer.lr=0.1", "test/loss")["se"] == "nan"
    text = (tmp_path / "summary.md").read_text()
    assert "test acc" not in text and "| test loss |" in text
    assert "12 comparisons with fewer than 2 ok runs on a side" in text
    assert {"vs_optimizer.lr.png", "vs_model.dropout.png"} <= {p.name for p in (tmp_path / "plots").iterdir()}


def test_unreadable_record_counts_as_a_failed_job(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.9)
    broken = make_job(tmp_path, 1, ["seed=1"], 0.9)
    (broken / "result.json").write_text("{not json")
    result = aggregate_sweep(tmp_path, plots=False)
    assert result.n_ok == 1
    assert [name for name, _ in result.failed] == [broken.name]
    assert result.failed[0][1].startswith("unreadable result.json")


def test_group_with_only_failed_jobs_is_reported(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    make_job(tmp_path, 20, ["regularizer=dropout", "seed=0"], 0.5, status="failed", error="RuntimeError: out of memory")
    result = aggregate_sweep(tmp_path, plots=False)
    assert len(result.groups["regularizer=dropout"]) == 1
    assert "| regularizer=dropout | – |" in (tmp_path / "summary.md").read_text()
    assert summary_row(tmp_path, "regularizer=dropout", "test/acc")["n_failed"] == "1"


def test_all_pairs_and_explicit_baseline(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    result = aggregate_sweep(tmp_path, baseline="regularizer=l2", all_pairs=True, plots=False)
    pairs = {(c.group, c.reference) for c in result.comparisons}
    none, l1, l2 = "regularizer=none", "regularizer=l1", "regularizer=l2"
    assert pairs == {(none, l2), (l1, l2), (l1, none)}
    with pytest.raises(AggregateError, match="Unknown baseline group 'l3'"):
        aggregate_sweep(tmp_path, baseline="l3")


def test_missing_or_empty_sweep_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AggregateError, match="not found"):
        aggregate_sweep(tmp_path / "nope")
    with pytest.raises(AggregateError, match="No jobs"):
        aggregate_sweep(tmp_path)


def test_curves_merge_split_rows_and_skip_blank_cells(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.90, epochs=2)
    job = make_job(tmp_path, 1, ["seed=1"], 0.94, epochs=2)
    # a logger that writes train and val on separate rows, with no val/acc at epoch 0
    rows = [{"epoch": 0, "train/loss": 3.0}, {"epoch": 0, "val/loss": 5.0}, {"epoch": 1, "val/acc": 0.5}]
    write_epochs_csv(job / "metrics.csv", rows)
    aggregate_sweep(tmp_path, plots=False)
    mean_run = EventAccumulator(str(tmp_path / "aggregate_tb" / "all" / "mean"))
    mean_run.Reload()
    assert [e.value for e in mean_run.Scalars("aggregate/n_jobs")] == [2, 2]
    assert mean_run.Scalars("val/loss")[0].value == pytest.approx(np.mean([1.1 - 0.90 + 0.1, 5.0]))
    assert mean_run.Scalars("train/loss")[0].value == pytest.approx(np.mean([1.0, 3.0]))
    assert mean_run.Scalars("val/acc")[0].value == pytest.approx(0.90 - 0.02)  # job 0 only


@pytest.mark.parametrize(
    ("metric", "better"),
    [("test/acc", "higher"), ("best/val/acc", "higher"), ("test/loss", "lower"), ("best/val/error", "lower"),
     ("final/gen_gap/acc", "lower"), ("final/gen_gap/loss", "lower"), ("final/train/penalty", "lower"),
     ("final/weights/l1", None), ("best/weights/sparsity", None), ("wall_time_s", None), ("epochs", None)],
)  # fmt: skip
def test_direction_of_improvement_is_the_declared_one_and_none_for_the_others(metric: str, better: str | None) -> None:
    values = {"a": {metric: np.array([3.0, 4.0, 5.0])}, "b": {metric: np.array([1.0, 2.0, 2.5])}}
    comparison = compare_pair(metric, "a", "b", values)
    assert comparison.better == better
    assert math.isnan(comparison.p_improvement) if better is None else comparison.p_improvement in (0.0, 1.0)
