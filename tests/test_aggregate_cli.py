"""``python -m regsweep.aggregate`` and ``main()``: same files either way, one-line errors with exit code 2."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_aggregate_fixtures import TEST_ACC, make_regression_sweep, make_regularizer_sweep

from regsweep.aggregate import stats
from regsweep.aggregate.cli import main
from regsweep.errors import ConfigError
from regsweep.sweep.summary import SweepSummary

REPORTS = ("summary.csv", "summary.md", "comparisons.csv")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regsweep.aggregate", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_module_and_main_write_the_same_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_regularizer_sweep(tmp_path)
    completed = run_module(str(tmp_path), "--no-plots")
    assert completed.returncode == 0, completed.stderr
    assert "| regularizer=l1 | 93.50 ± 0.65 |" in completed.stdout
    from_subprocess = {name: (tmp_path / name).read_bytes() for name in REPORTS}
    for name in REPORTS:
        (tmp_path / name).unlink()
    assert main([str(tmp_path), "--no-plots"]) == 0
    assert {name: (tmp_path / name).read_bytes() for name in REPORTS} == from_subprocess
    assert "baseline: regularizer=none" in capsys.readouterr().out
    assert not (tmp_path / "plots").exists()


def test_options_reach_the_aggregation(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    assert main([str(tmp_path), "--baseline", "regularizer=l2", "--all-pairs"]) == 0
    comparisons = (tmp_path / "comparisons.csv").read_text()
    assert "test/acc,regularizer=none,regularizer=l2," in comparisons
    assert "test/acc,regularizer=l1,regularizer=none," in comparisons
    assert (tmp_path / "plots" / "learning_curves.png").exists()


def test_missing_dir_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Sweep dir not found" in error


def test_dir_without_jobs_exits_2_from_the_module(tmp_path: Path) -> None:
    completed = run_module(str(tmp_path))
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("regsweep-aggregate: error: No jobs in")
    assert completed.stderr.count("\n") == 1


def test_unknown_baseline_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_regularizer_sweep(tmp_path)
    assert main([str(tmp_path), "--baseline", "regularizer=l3"]) == 2
    assert "Unknown baseline group 'regularizer=l3'" in capsys.readouterr().err


def test_matplotlib_is_imported_only_for_plots(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    script = (
        "import sys; from regsweep.aggregate import aggregate_sweep; "
        f"aggregate_sweep({str(tmp_path)!r}, plots=False); print('matplotlib' in sys.modules)"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert completed.stdout.strip() == "False"


def test_pairs_default_to_all_and_against_baseline_limits_them(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)

    def test_acc_pairs() -> list[str]:
        rows = (tmp_path / "comparisons.csv").read_text().splitlines()
        return [",".join(row.split(",")[1:3]) for row in rows if row.startswith("test/acc,")]

    assert main([str(tmp_path), "--no-plots"]) == 0
    assert test_acc_pairs() == ["regularizer=l1,regularizer=none", "regularizer=l2,regularizer=none",
                                "regularizer=l2,regularizer=l1"]  # fmt: skip
    assert main([str(tmp_path), "--no-plots", "--against-baseline"]) == 0
    assert test_acc_pairs() == ["regularizer=l1,regularizer=none", "regularizer=l2,regularizer=none"]
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--all-pairs", "--against-baseline"])
    assert exit_info.value.code == 2


def test_vector_figures_from_the_command_line_and_from_the_sweep_callback(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    assert main([str(tmp_path), "--vector-figures", "svg"]) == 0
    assert (tmp_path / "plots" / "test_metrics.svg").exists() and not (tmp_path / "plots" / "test_metrics.pdf").exists()
    SweepSummary(vector_figures=["pdf"]).on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert (tmp_path / "plots" / "test_metrics.pdf").exists() and not (tmp_path / "plots" / "test_metrics.svg").exists()


@pytest.mark.parametrize("arguments", [["--vector-figures", "eps"], ["--vector-figures", "pdf", "--no-plots"]])
def test_vector_figures_that_cannot_be_drawn_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    make_regularizer_sweep(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path), *arguments])
    assert stopped.value.code == 2
    assert "--vector-figures" in capsys.readouterr().err
    assert not (tmp_path / "summary.md").exists()


def test_an_unknown_vector_format_for_the_sweep_callback_is_refused_when_it_is_built() -> None:
    with pytest.raises(ConfigError, match=r"hydra.callbacks.sweep_summary.vector_figures=\['eps'\]: each must be one"):
        SweepSummary(vector_figures=["eps"])


def test_detect_asks_the_power_lines_about_a_difference_of_the_headline_metric(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--detect", "0.5pp"]) == 0
    with open(tmp_path / "comparisons.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["metric"] == "test/acc"]
    assert {float(row["power_target"]) for row in rows} == {0.005}  # 0.5 percentage points of accuracy
    sd = stats.std(TEST_ACC["none"])  # every group's SD is the same in the fixture
    assert {int(row["power_seeds_target"]) for row in rows} == {stats.seeds_for_power(0.005, sd, sd)}
    assert "to detect a difference of 0.50 pp, about " in (tmp_path / "summary.md").read_text()
    assert main([str(tmp_path), "--no-plots", "--detect", "0.005"]) == 0  # the same in the metric's units
    assert "to detect a difference of 0.50 pp, about " in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("value", ["0", "-1pp", "much", "0.2%"])
def test_a_detect_that_is_no_difference_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path), f"--detect={value}"])
    assert stopped.value.code == 2
    assert "expected a positive difference, e.g. 0.2pp" in capsys.readouterr().err


def test_points_of_a_loss_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_regression_sweep(tmp_path)
    assert main([str(tmp_path), "--no-plots", "--detect", "0.2pp"]) == 2
    assert "the comparisons' headline metric test/loss takes a plain number" in capsys.readouterr().err
    assert main([str(tmp_path), "--no-plots", "--detect", "0.001"]) == 0
