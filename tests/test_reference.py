"""make results: each study's seed summary goes into docs/results.md under its command, its plots beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regsweep import reference
from regsweep.aggregate import aggregate_sweep
from regsweep.records import OK, JobInfo, ResultRecord
from regsweep.sweep.plan import SweepPlan
from test_aggregate_fixtures import make_regularizer_sweep


def test_a_study_section_keeps_the_summary_demotes_its_headings_and_copies_its_plots_and_jobs_csv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, sweep = tmp_path / "docs", tmp_path / "multirun" / "l1_vs_l2"
    monkeypatch.setattr(reference, "DOCS", docs)
    (sweep / "plots").mkdir(parents=True)
    (sweep / "plots" / "learning_curves.png").write_bytes(b"png")
    (sweep / "jobs.csv").write_text("job,seed\n0_seed=0,0\n")
    (sweep / "summary.md").write_text("# Sweep summary: l1_vs_l2\n\n## Answers\n\n- l1 vs none: -2 pp\n\n"
                                      "Each job's own values: [jobs.csv](jobs.csv).\n"
                                      "![learning_curves](plots/learning_curves.png)\n"
                                      "![prediction](3_seed=3/prediction.png)\n")
    run = reference.StudyRun("l1_vs_l2", reference.command_of("l1_vs_l2", ["trainer.max_epochs=2"]), sweep, 90.0)
    lines = reference.summary_section(run, docs / "results" / "l1_vs_l2")
    assert lines[:4] == ["", "### Answers", "", "- l1 vs none: -2 pp"]
    assert "![learning_curves](results/l1_vs_l2/learning_curves.png)" in lines
    assert not any("prediction" in line for line in lines)  # per-job plots stay in the sweep dir
    assert (docs / "results" / "l1_vs_l2" / "learning_curves.png").read_bytes() == b"png"
    assert "Each job's own values: [jobs.csv](results/l1_vs_l2/jobs.csv)." in lines  # the per-seed values too
    assert (docs / "results" / "l1_vs_l2" / "jobs.csv").read_text() == "job,seed\n0_seed=0,0\n"
    assert " ".join(run.command) == ("python train.py -m experiment=l1_vs_l2 trainer.enable_progress_bar=false "
                                     "trainer.max_epochs=2")


def test_every_ready_made_study_has_a_question() -> None:
    names = reference.study_names()
    assert {"l1_vs_l2", "lambda_grid", "regression", "cnn_kernels"} <= set(names)
    assert all(reference.study_question(name) != name for name in names)


def test_only_studies_not_run_by_this_call_are_aggregated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study run just now was aggregated by its own sweep; one run by an earlier call is brought up to date."""
    for name in ("l1_vs_l2", "lambda_grid"):
        make_regularizer_sweep(tmp_path / name)
        SweepPlan(arguments=[], command=["train.py", "-m", f"experiment={name}"]).save(tmp_path / name)
    ran, aggregated = [], []
    monkeypatch.setattr(reference, "DOCS", tmp_path / "docs")
    monkeypatch.setattr(reference, "run_study", lambda name, work, extra: ran.append(name))
    monkeypatch.setattr(reference, "aggregate_sweep",
                        lambda sweep_dir: aggregated.append(Path(sweep_dir).name) or aggregate_sweep(sweep_dir))
    out = tmp_path / "docs" / "results.md"
    assert reference.main(["--studies", "l1_vs_l2", "--work", str(tmp_path), "--out", str(out)]) == 0
    assert (ran, aggregated) == (["l1_vs_l2"], ["lambda_grid"])
    text = out.read_text()
    assert "## l1_vs_l2:" in text and "## lambda_grid:" in text
    assert text.count("12 of 12 jobs ok") == 2  # records of both, whether aggregated again or not


def test_a_study_names_the_device_and_threads_its_records_name_not_the_assembling_machine() -> None:
    def record(device: str | None, threads: int | None) -> ResultRecord:
        return ResultRecord(status=OK, job=JobInfo(name="0_seed=0", dir="/sweep/0_seed=0"), seed=0, epochs=3,
                            threads=threads, environment={"device": device} if device else {})

    run = reference.StudyRun("l1_vs_l2", [], Path("/sweep"), 120.0)
    h200, xeon = "cuda (NVIDIA H200)", "cpu (Intel(R) Xeon(R) Processor, x86_64)"
    assert reference.run_facts(run, [record(h200, 8), record(h200, 8)]) == (
        "2 of 2 jobs ok; seeds 0-0; 3 epochs; wall time 2.0 min on cuda (NVIDIA H200), 8 torch threads")
    assert reference.where_trained([record(xeon, 1), record(h200, 2)]) == f"on {xeon} and {h200}, 1/2 torch threads"
    assert reference.where_trained([record(None, 2)]) == "(device not recorded)"
