"""make results: each study's seed summary goes into docs/results.md under its command, its plots beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regsweep import reference
from regsweep.course_reports import ReportsFileError, load_reports, side_by_side
from regsweep.metrics import metric
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
    # a question over several comment lines is read whole, up to the line that ends in ':'
    assert reference.study_question("gap_rule").endswith("vs only consecutive ones, 10 seeds each (20 jobs)")


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


def write_jobs_csv(path: Path, rows: list[tuple[str, str, float]]) -> None:
    """A study's jobs.csv as make results copies it: (regularizer, counted, final/val/loss) per job."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["job,group,seed,status,counted,regularizer,final/val/loss"]
    lines += [f"{i}_x,regularizer={reg},{i},ok,{counted},{reg},{value}" for i, (reg, counted, value) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_each_reported_number_is_set_beside_the_counted_seeds_of_its_group(tmp_path: Path) -> None:
    write_jobs_csv(tmp_path / "results" / "l1_vs_l2" / "jobs.csv", [
        ("none", "True", 0.12), ("none", "True", 0.13), ("none", "True", 0.14), ("none", "False", 9.0),
        ("l1", "True", 0.080), ("l1", "True", 0.081), ("l1", "True", 0.082)])
    (tmp_path / "reports.yaml").write_text("""
- file: 002_x
  title: MNIST
  reading: Our reading.
  numbers:
    - {quantity: val CE none, value: 0.122, study: l1_vs_l2, where: {regularizer: none}, metric: final/val/loss}
    - {quantity: val CE L1, value: 0.0826, study: l1_vs_l2, where: {regularizer: l1}, metric: final/val/loss,
       why: a single run}
    - {quantity: trial span, value: [0.2, 0.8], statistic: range, study: l1_vs_l2, where: {regularizer: none},
       metric: final/val/loss}
    - {quantity: depth, value: 0.43, study: null, why: not run}
    - {quantity: L2, value: 0.07, study: lambda_grid, metric: final/val/loss}
""")
    text = "\n".join(side_by_side(tmp_path / "reports.yaml", tmp_path / "results", ["l1_vs_l2", "lambda_grid"]))
    # none: mean 0.13 (the uncounted 9.0 left out), SE 0.00577, 95% t interval [0.1052, 0.1548] holds 0.122
    assert "| val CE none: 0.122 | 0.1300 ± 0.0058 (n = 3) | yes [0.1052, 0.1548] | – |" in text
    # L1: mean 0.081, SE 0.000577, interval [0.07852, 0.08348] leaves 0.0826 inside; 0.0826 is inside
    assert "| val CE L1: 0.0826 | 0.08100 ± 0.00058 (n = 3) | yes [0.07852, 0.08348] | a single run |" in text
    assert "| trial span: 0.2 to 0.8 | 0.12 to 0.14 (n = 3) | no overlap | – |" in text
    assert "| depth: 0.43 | no study | – | not run |" in text
    assert "| L2: 0.07 | not run here (`make results ARGS='--studies lambda_grid'`) | – | – |" in text
    assert "### 002_x: MNIST" in text and "Our reading." in text


def test_a_reported_number_outside_our_interval_says_no(tmp_path: Path) -> None:
    write_jobs_csv(tmp_path / "results" / "l1_vs_l2" / "jobs.csv",
                   [("l2", "True", 0.100), ("l2", "True", 0.101), ("l2", "True", 0.102)])
    (tmp_path / "reports.yaml").write_text(
        "- {file: r, title: t, numbers: [{quantity: q, value: 0.0759, study: l1_vs_l2, where: {regularizer: l2}, "
        "metric: final/val/loss}]}\n")
    text = "\n".join(side_by_side(tmp_path / "reports.yaml", tmp_path / "results", ["l1_vs_l2"]))
    assert "| q: 0.0759 | 0.10100 ± 0.00058 (n = 3) | no [0.09852, 0.1035] | – |" in text


def test_a_number_naming_a_study_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reports.yaml").write_text(
        "- {file: r, title: t, numbers: [{quantity: q, value: 1, study: l1_vs_l3, metric: test/acc}]}\n")
    with pytest.raises(ReportsFileError, match="names study 'l1_vs_l3'"):
        side_by_side(tmp_path / "reports.yaml", tmp_path, ["l1_vs_l2"])


def test_the_project_reports_file_names_real_studies_and_metrics() -> None:
    reports = load_reports(reference.DOCS / reference.REPORTS_FILE, reference.study_names())
    assert [r.file[:3] for r in reports] == ["000", "001", "002", "003", "004"]
    for number in (n for r in reports for n in r.numbers if n.study is not None):
        assert number.metric == "epochs" or metric(number.metric) is not None, number.quantity
        assert number.why or number.study, number.quantity


def test_a_study_not_run_here_keeps_its_section_of_the_page_before(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    make_regularizer_sweep(tmp_path / "l1_vs_l2")
    SweepPlan(arguments=[], command=["train.py", "-m", "experiment=l1_vs_l2"]).save(tmp_path / "l1_vs_l2")
    monkeypatch.setattr(reference, "DOCS", tmp_path / "docs")
    out = tmp_path / "docs" / "results.md"
    out.parent.mkdir()
    out.write_text("# old\n\n## cnn_kernels: A small CNN\n\nits old numbers\n\n## l1_vs_l2: old\n\nstale\n")
    assert reference.main(["--assemble-only", "--work", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "## cnn_kernels: A small CNN\n\nits old numbers" in text  # kept: no sweep dir of it here
    assert "stale" not in text and "12 of 12 jobs ok" in text  # rebuilt from its sweep dir
    assert text.index("## cnn_kernels") < text.index("## l1_vs_l2")  # in the studies' order
