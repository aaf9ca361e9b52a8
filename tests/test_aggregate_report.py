"""What summary.md tells a reader: baseline and why, which pairs, answers first, penalties, sparsity, problems;
summary.tex: the same numbers for a paper."""

from __future__ import annotations

import csv
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from servers import unavailable
from test_aggregate_fixtures import REGRESSION_LOSS, make_job, make_regression_sweep, make_regularizer_sweep

from regsweep.aggregate import aggregate_sweep
from regsweep.aggregate.compare import MAX_ALL_PAIRS_GROUPS
from regsweep.aggregate.latex import escape
from regsweep.aggregate.tables import mean_se_text
from regsweep.metrics import METRICS
from regsweep.records import read_result, write_result

GRID = [(0.0, 0.0), (0.0, 1e-4), (1e-5, 0.0), (1e-5, 1e-4)]  # (l1, l2): regularizer=l1l2 regularizer.l1=0,1e-5 ...


def make_grid_sweep(sweep_dir: Path, seeds: int = 3) -> Path:
    """The l1 x l2 grid of regularizer=l1l2, as Hydra writes it (trainer.max_epochs shared by every job)."""
    num = 0
    for l1, l2 in GRID:
        for seed in range(seeds):
            overrides = ["regularizer=l1l2", f"regularizer.l1={l1:g}", f"regularizer.l2={l2:g}", f"seed={seed}",
                         "trainer.max_epochs=5"]  # fmt: skip
            params = {"regularizer.l1": l1, "regularizer.l2": l2, "model.dropout": 0.0}
            make_job(sweep_dir, num, overrides, 0.90 + 0.01 * seed + 100 * l1, params=params)
            num += 1
    return sweep_dir


def section(text: str, title: str) -> str:
    """The lines of one ``## title`` section of summary.md."""
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def pair_set(result) -> set[tuple[str, str]]:  # noqa: ANN001 - SweepAggregate
    return {(c.group, c.reference) for c in result.comparisons}


def test_grid_sweep_compares_with_the_all_zero_group_and_all_pairs(tmp_path: Path) -> None:
    result = aggregate_sweep(make_grid_sweep(tmp_path), plots=False)
    labels = [g.label for g in result.sweep.groups]
    assert result.baseline == "regularizer.l1=0,regularizer.l2=0"
    assert "every swept strength (regularizer.l1, regularizer.l2) at 0" in result.baseline_reason
    assert len(pair_set(result)) == 6 and all(a in labels and b in labels for a, b in pair_set(result))
    test_acc = [c for c in result.comparisons if c.metric == "test/acc"]
    assert all(c.reference == result.baseline for c in test_acc[:3])  # the baseline's pairs come first
    assert all(math.isfinite(c.welch.ci95_low) and math.isfinite(c.welch_p_holm) for c in test_acc)
    text = (tmp_path / "summary.md").read_text()
    answers = section(text, "Answers: test accuracy")
    assert "Baseline: regularizer.l1=0,regularizer.l2=0 (the group with every swept strength" in answers
    assert "Compared: every pair of groups; p Holm-corrected over the 6 comparisons, each 95% CI uncorrected, so a " \
        "CI can exclude 0 while p > 0.05; a group is called better when p < 0.05." in answers
    # a pair is named by the override that differs, what the two share said once
    line = next(line for line in answers.splitlines() if line.startswith("- regularizer.l1=1e-05 vs regularizer.l1=0"))
    assert line.startswith("- regularizer.l1=1e-05 vs regularizer.l1=0 (both regularizer.l2=0): test accuracy ")
    assert re.search(r"95% CI \[-?\d", line) and "Holm" in line
    assert len([line for line in answers.splitlines() if line.startswith("- ")]) == 6
    assert "trainer.max_epochs" not in answers  # shared by every job: never part of a label
    assert text.index("## Answers") < text.index("## Results")


def test_without_an_unregularized_group_the_first_group_is_the_baseline_and_the_reason_says_so(tmp_path: Path) -> None:
    for num, l2 in enumerate([5e-5, 5e-4, 5e-3] * 2):
        make_job(tmp_path, num, ["regularizer=l2", f"regularizer.l2={l2:g}", f"seed={num // 3}"], 0.9 + num / 100,
                 params={"regularizer.l2": l2})  # fmt: skip
    result = aggregate_sweep(tmp_path, plots=False)
    assert result.baseline == "regularizer.l2=5e-05"
    assert result.baseline_reason == "no group has every swept strength (regularizer.l2) at 0: the first group"
    assert len(pair_set(result)) == 3
    assert f"Baseline: regularizer.l2=5e-05 ({result.baseline_reason})" in (tmp_path / "summary.md").read_text()


def test_regularizer_none_is_found_from_the_records_params(tmp_path: Path) -> None:
    result = aggregate_sweep(make_regularizer_sweep(tmp_path), plots=False)
    assert result.baseline == "regularizer=none"
    assert "every swept strength (regularizer.l1, regularizer.l2) at 0" in result.baseline_reason


def test_more_groups_than_the_all_pairs_limit_are_compared_with_the_baseline_only(tmp_path: Path) -> None:
    strengths = [0.0, *(10.0 ** -k for k in range(2, 2 + MAX_ALL_PAIRS_GROUPS))]  # 7 groups
    for num, l1 in enumerate(strengths * 2):
        make_job(tmp_path, num, [f"regularizer.l1={l1:g}", f"seed={num // len(strengths)}"], 0.9 + num / 1000,
                 params={"regularizer.l1": l1})  # fmt: skip
    result = aggregate_sweep(tmp_path, plots=False)
    assert result.baseline == "regularizer.l1=0"
    assert pair_set(result) == {(f"regularizer.l1={l1:g}", "regularizer.l1=0") for l1 in strengths[1:]}
    assert "Compared: each group with the baseline; p Holm-corrected over the 6 comparisons" in (
        tmp_path / "summary.md").read_text()
    assert len(pair_set(aggregate_sweep(tmp_path, all_pairs=True, plots=False))) == 21


def test_the_answer_names_the_better_group_when_the_corrected_test_says_so(tmp_path: Path) -> None:
    accuracies = {"none": [0.90, 0.91, 0.90, 0.91], "l1": [0.95, 0.96, 0.96, 0.97], "l2": [0.90, 0.92, 0.91, 0.90]}
    num = 0
    for name, values in accuracies.items():
        for seed, acc in enumerate(values):
            params = {"regularizer.l1": 1e-4 * (name == "l1"), "regularizer.l2": 1e-3 * (name == "l2")}
            make_job(tmp_path, num, [f"regularizer={name}", f"seed={seed}"], acc, params=params)
            num += 1
    aggregate_sweep(tmp_path, plots=False)
    answers = section((tmp_path / "summary.md").read_text(), "Answers: test accuracy")
    lines = [line for line in answers.splitlines() if line.startswith("- ")]
    expected = "- regularizer=l1 vs regularizer=none: test accuracy 96.00% vs 90.50% (+5.50 pp, 95% CI ["
    assert lines[0].startswith(expected)
    assert lines[0].endswith("Holm): regularizer=l1 is better")
    assert lines[1].endswith(": no clear difference")  # l2 vs none
    assert lines[2].endswith("Holm): regularizer=l1 is better")  # l2 vs l1: the reference wins


def test_regression_answers_are_about_test_loss_in_significant_digits(tmp_path: Path) -> None:
    result = aggregate_sweep(make_regression_sweep(tmp_path), plots=False)
    assert result.baseline == "data.n_train=100"
    assert result.baseline_reason == "no regularization strength differs between the groups: the first group"
    text = (tmp_path / "summary.md").read_text()
    answers = section(text, "Answers: test loss")
    assert "- data.n_train=1000 vs data.n_train=100: test loss 1.2e-05 vs 0.00663 (-0.00662, 95% CI [" in answers
    results = section(text, "Results")
    assert "| group | test loss | val loss | gen gap loss | epochs | ok/failed/missing |" in results
    # digits down to the SE's second: never 0.0000
    assert "| data.n_train=1000 | 1.200e-05 ± 5.8e-07 | 0.100012 ± 5.8e-07 | 1.200e-05 ± 5.8e-07 |" in results
    assert not re.search(r"\b0\.0000\b", text)
    loss = REGRESSION_LOSS[1000]
    assert float(results.split("| data.n_train=1000 | ")[1].split(" ± ")[0]) == pytest.approx(sum(loss) / 3, rel=0.01)


@pytest.mark.parametrize(
    ("mean", "se", "expected"),
    [(1.2e-5, math.nan, "1.20e-05"), (1.2e-5, 1.1e-6, "1.20e-05 ± 1.1e-06"), (0.000599, 0.00014, "0.00060 ± 0.00014"),
     (0.2031, 0.0037, "0.2031 ± 0.0037"), (-0.00045, 0.00027, "-0.00045 ± 0.00027"), (100.0, 3.0, "100.0 ± 3.0")],
)  # fmt: skip
def test_mean_and_se_keep_significant_digits(mean: float, se: float, expected: str) -> None:
    assert mean_se_text(mean, se) == expected


def test_penalty_table_shows_nominal_applied_and_n_train_when_scaled(tmp_path: Path) -> None:
    n_train = 1149
    for num, l1 in enumerate([0.1, 1.0, 0.1, 1.0]):
        penalty = {"l1": l1, "l2": 0.0, "l1_applied": l1 / n_train, "l2_applied": 0.0, "scale_by_n_train": True}
        make_job(tmp_path, num, ["regularizer=l1", "regularizer.scale_by_n_train=true", f"regularizer.l1={l1:g}",
                                 f"seed={num // 2}"], 0.9, params={"regularizer.l1": l1},
                 data={"task": "classification", "n_train": n_train}, penalty=penalty)  # fmt: skip
    aggregate_sweep(tmp_path, plots=False)
    table = section((tmp_path / "summary.md").read_text(), "Penalty strengths")
    assert "the nominal ones divided by n_train (regularizer.scale_by_n_train)" in table
    assert "| group | l1 nominal | l1 applied | n_train |" in table  # l2 is 0 everywhere: left out
    assert "| regularizer.l1=0.1 | 0.1 | 8.7e-05 | 1149 |" in table
    assert "| regularizer.l1=1 | 1 | 0.00087 | 1149 |" in table


def test_no_penalty_table_when_no_penalty_is_swept_or_scaled(tmp_path: Path) -> None:
    for seed in range(2):
        penalty = {"l1": 5e-4, "l2": 0.0, "l1_applied": 5e-4, "l2_applied": 0.0, "scale_by_n_train": False}
        make_job(tmp_path, seed, ["regularizer=l1", f"seed={seed}"], 0.9, penalty=penalty)
    aggregate_sweep(tmp_path, plots=False)
    assert "## Penalty strengths" not in (tmp_path / "summary.md").read_text()


def test_sparsity_table_has_three_thresholds_of_the_kept_epoch(tmp_path: Path) -> None:
    aggregate_sweep(make_regularizer_sweep(tmp_path), plots=False)
    sparsity = section((tmp_path / "summary.md").read_text(), "Sparsity")
    header = "| group | sparsity < 0.001 (%) | sparsity < 1e-05 (%) | sparsity < 1% of layer RMS (%) |"
    assert header in sparsity
    # kept epoch (best/): twice the last epoch's values in the fixture; l1's accuracies 0.92-0.95
    assert "| regularizer=l1 | 87.00 ± 1.29 | 8.70 ± 0.13 | 43.50 ± 0.65 |" in sparsity
    assert "kept epoch" in sparsity and "weights.npz" in sparsity
    assert "below 0.001 (a fixed cut, about one Adam step" in sparsity and "below 1e-05" in sparsity
    assert "1% of their layer's RMS" in sparsity and "always-zero input pixels" in sparsity


def markdown_cells(table: str) -> dict[str, list[str]]:
    """A markdown table's rows, the header's too, by their first cell."""
    lines = table.splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in [lines[0], *lines[2:]]]
    return {row[0]: row[1:] for row in rows}


def latex_cells(tabular: str) -> dict[str, list[str]]:
    """A booktabs tabular's rows, the header's too, by their first cell, read back to the characters printed."""
    body = tabular.split("\\toprule\n")[1].split("\n\\bottomrule")[0].replace("\\midrule\n", "")
    printed = {r"$\pm$": "±", "$-$": "-", r"\%": "%", r"\textless{}": "<", "--": "–"}
    rows = []
    for line in body.splitlines():
        assert line.endswith(r" \\")
        for latex, char in printed.items():
            line = line.replace(latex, char)
        rows.append(line.removesuffix(r" \\").split(" & "))
    return {row[0]: row[1:] for row in rows}


def test_summary_tex_holds_the_results_and_sparsity_tables_as_latex(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    make_job(tmp_path, 12, ["regularizer=l1", "seed=4"], 0.0, status="failed", error="diverged", regularizer="l1")
    aggregate_sweep(tmp_path, plots=False)
    markdown = (tmp_path / "summary.md").read_text()
    tex = (tmp_path / "summary.tex").read_text()
    tabulars = re.findall(r"\\caption\{.*?\}\n\\begin\{tabular\}\{lr+\}\n\\toprule\n.*?\\end\{tabular\}", tex, re.S)
    assert len(tabulars) == 2 and "\\usepackage{booktabs}" in tex
    results, sparsity = map(latex_cells, tabulars)
    expected = markdown_cells(section(markdown, "Results").split("\n\n")[2])
    expected_header = expected.pop("group")
    tex_header = results.pop("group")
    assert set(results) == set(expected) == {"regularizer=none", "regularizer=l1", "regularizer=l2"}
    columns = [expected_header.index(name) for name in tex_header[:-1]]  # the short table: some of the columns
    assert tex_header[:-1] == ["test acc (%)", "val acc (%)", "test loss", "val loss", "gen gap loss"]
    for label, cells in results.items():
        assert cells[:-1] == [expected[label][i] for i in columns]  # the same mean ± SE cells
        assert cells[-1] == "4"  # n: the seeds a mean is over, not the jobs (l1's failed fifth seed is not one)
    assert expected["regularizer=l1"][-1] == "4/1/0"
    assert sparsity == markdown_cells(section(markdown, "Sparsity").split("\n\n")[2])
    header = tabulars[0].splitlines()[3]
    assert header.startswith(r"group & test acc (\%) & val acc (\%) & test loss") and header.endswith(r" & n \\")
    assert r"\caption{Mean $\pm$ standard error over the n seeds of each group" in tabulars[0]


def test_latex_escape_prints_every_special_character_literally() -> None:
    text = "model.hidden_sizes=[512,256] & 5% <1e-3> {x} ~ ^ $ # \\ | ± – -0.5 [-2.1, 3]"
    assert escape(text) == (
        r"model.hidden\_sizes=[512,256] \& 5\% \textless{}1e-3\textgreater{} \{x\} \textasciitilde{} "
        r"\textasciicircum{} \$ \# \textbackslash{} \textbar{} $\pm$ -- $-$0.5 [$-$2.1, 3]"
    )


def test_summary_tex_compiles(tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        unavailable("pdflatex", "not installed (run .ci/install-debian-packages.sh)")
    for num, (sizes, seed) in enumerate([("[128]", 0), ("[128]", 1), ("[512,256]", 0), ("[512,256]", 1)]):
        make_job(tmp_path / "sweep", num, [f"model.hidden_sizes={sizes}", f"seed={seed}"], 0.9 + num / 100,
                 regularizer="l1")  # labels with an underscore and brackets; a sparsity table
    aggregate_sweep(tmp_path / "sweep", plots=False)
    document = tmp_path / "paper.tex"
    document.write_text("\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
                        f"\\input{{{(tmp_path / 'sweep' / 'summary.tex').as_posix()}}}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "paper.pdf").exists(), done.stdout[-2000:]


ENVIRONMENT = {"regsweep": "0.1.0", "git_commit": "ea65c77ce3af438c68080fffe38dbd6df79fcc0d", "git_dirty": False,
               "python": "3.11.7", "torch": "2.13.0+cpu", "lightning": "2.6.6", "numpy": "2.4.6",
               "device": "cpu (Intel(R) Xeon(R) Processor, x86_64)"}


def record_environment(job_dir: Path, environment: dict) -> None:
    record = read_result(job_dir)
    record.environment = environment
    write_result(job_dir, record)


def test_the_summary_names_the_environment_and_cautions_when_jobs_ran_in_several(tmp_path: Path) -> None:
    job_dirs = sorted(p for p in make_regularizer_sweep(tmp_path).iterdir() if p.is_dir())
    for job_dir in job_dirs:
        record_environment(job_dir, ENVIRONMENT)
    aggregate_sweep(tmp_path, plots=False)
    same = section((tmp_path / "summary.md").read_text(), "Environment")
    assert "Every job: regsweep 0.1.0 (git ea65c77), Python 3.11.7, torch 2.13.0+cpu, lightning 2.6.6, numpy " \
        "2.4.6; cpu (Intel(R) Xeon(R) Processor, x86_64)." in same

    gpu = {**ENVIRONMENT, "git_dirty": True, "torch": "2.13.0+cu128", "device": "cuda (NVIDIA H200)"}
    for job_dir in job_dirs[:2]:
        record_environment(job_dir, gpu)
    record_environment(job_dirs[2], {})  # written before records had an environment
    aggregate_sweep(tmp_path, plots=False)
    several = section((tmp_path / "summary.md").read_text(), "Environments")
    assert "The jobs ran in 2 environments" in several and "may be partly the environment's" in several
    assert "- regsweep 0.1.0 (git ea65c77, uncommitted changes), Python 3.11.7, torch 2.13.0+cu128, lightning " \
        f"2.6.6, numpy 2.4.6; cuda (NVIDIA H200): 2 jobs ({job_dirs[0].name}, {job_dirs[1].name})" in several
    assert "torch 2.13.0+cpu, lightning 2.6.6, numpy 2.4.6; cpu (Intel(R) Xeon(R) Processor, x86_64): 9 jobs (" \
        in several
    assert "1 job recorded none (an older regsweep's records)." in several


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_corrupt_job_files_are_reported_and_the_summary_goes_on(tmp_path: Path) -> None:
    make_regression_sweep(tmp_path)
    jobs = sorted((p for p in tmp_path.iterdir() if (p / "result.json").exists()), 
                  key=lambda p: int(p.name.split("_")[0]))
    truncate(jobs[0] / "weights.npz")
    truncate(jobs[1] / "predictions.npz")
    (jobs[2] / "metrics.csv").write_text("")
    (jobs[3] / "predictions.npz").write_bytes(b"not a zip archive")
    result = aggregate_sweep(tmp_path)
    assert result.n_ok == 6  # the records are fine: every job's metrics still count
    problems = {(job, name) for job, name, _ in result.file_problems}
    expected = {(jobs[0].name, "weights.npz"), (jobs[1].name, "predictions.npz"), (jobs[2].name, "metrics.csv"),
                (jobs[3].name, "predictions.npz")}  # fmt: skip
    assert problems == expected
    text = section((tmp_path / "summary.md").read_text(), "Problems")
    assert f"- `{jobs[0].name}` (data.n_train=100): unreadable weights.npz: " in text
    assert "(left out of the weight histograms)" in text
    assert f"- `{jobs[2].name}` (data.n_train=100): unreadable metrics.csv: empty file" in text
    assert text.count("unreadable predictions.npz") == 2 and "no prediction plot" in text
    assert not (jobs[1] / "prediction.png").exists() and not (jobs[3] / "prediction.png").exists()
    assert all((job / "prediction.png").exists() for job in (jobs[0], jobs[2], jobs[4], jobs[5]))
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {"weight_histograms.png", "predictions.png"}
    assert "| data.n_train=100 |" in section((tmp_path / "summary.md").read_text(), "Results")


@pytest.mark.parametrize(
    ("content", "reason"),
    [("epoch,val/loss\n", "a header but no epoch rows"), ("epoch,val/loss\n0,abc\n", "ValueError: could not convert"),
     ("epoch,val/loss\n0,\x00\n", "ValueError: could not convert")],
)  # fmt: skip
def test_unusable_metrics_csv_is_reported_with_its_reason(tmp_path: Path, content: str, reason: str) -> None:
    make_job(tmp_path, 0, ["seed=0"], 0.9)
    broken = make_job(tmp_path, 1, ["seed=1"], 0.9)
    (broken / "metrics.csv").write_text(content)
    result = aggregate_sweep(tmp_path, plots=False)
    assert [(job, name) for job, name, _ in result.file_problems] == [(broken.name, "metrics.csv")]
    assert reason in result.file_problems[0][2]
    assert f"`{broken.name}` ((all)): unreadable metrics.csv: " in (tmp_path / "summary.md").read_text()


def test_predictions_with_nan_are_reported_not_drawn(tmp_path: Path) -> None:
    make_regression_sweep(tmp_path)
    job = next(p for p in sorted(tmp_path.iterdir()) if p.name.startswith("0_"))
    with np.load(job / "predictions.npz") as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["y_pred"][3] = np.nan
    np.savez(job / "predictions.npz", **arrays)
    result = aggregate_sweep(tmp_path)
    assert [(name, why) for _, name, why in result.file_problems] == [
        ("predictions.npz", "non-finite values (a surface cannot be drawn through NaN or inf)")]
    assert not (job / "prediction.png").exists() and (tmp_path / "plots" / "predictions.png").exists()


def test_the_summary_says_what_each_column_measures_as_the_metric_declarations_do(tmp_path: Path) -> None:
    aggregate_sweep(make_regularizer_sweep(tmp_path), plots=False)
    glossary = section((tmp_path / "summary.md").read_text(), "What the columns measure")
    assert f"- test acc (%): `test/acc`, {METRICS['test/acc'].doc}" in glossary
    assert f"- gen gap loss: `final/gen_gap/loss`, {METRICS['gen_gap/loss'].doc}" in glossary
    assert f"`best/weights/sparsity`, {METRICS['weights/sparsity'].doc}" in glossary  # the sparsity table's too
    assert "epochs" not in glossary  # bookkeeping, not a metric


def test_each_answer_has_a_power_line_from_the_power_analysis(tmp_path: Path) -> None:
    result = aggregate_sweep(make_regularizer_sweep(tmp_path), plots=False)
    answers = section((tmp_path / "summary.md").read_text(), "Answers: test accuracy")
    power_lines = [line for line in answers.splitlines() if line.startswith("  - power: ")]
    assert len(power_lines) == 3  # one under each answer
    l1 = next(c for c in result.comparisons if c.metric == "test/acc" and c.group == "regularizer=l1")
    assert l1.power.seeds_observed == 5 and l1.power.detectable == pytest.approx(0.0307, abs=5e-5)  # 4 seeds
    assert power_lines[0] == ("  - power: n = 4/4 detects ≥ 3.07 pp at 80% power; to detect the observed difference "
                              "3.00 pp, about 5 seeds per group")
    assert "Power: of the two-sided Welch test at the 0.05 level (exact, noncentral t)" in answers


def test_the_iqm_stands_beside_the_mean_in_summary_md_and_every_metric_in_summary_csv(tmp_path: Path) -> None:
    make_job(tmp_path, 0, ["regularizer=none", "seed=0"], 0.10)  # a diverged seed among 8
    for seed in range(1, 8):
        make_job(tmp_path, seed, ["regularizer=none", f"seed={seed}"], 0.90 + seed / 1000)
    result = aggregate_sweep(tmp_path, plots=False)
    description = result.descriptions["(all)"]["test/acc"]
    accuracies = sorted([0.10, *(0.90 + seed / 1000 for seed in range(1, 8))])
    middle = accuracies[2:6]  # 8 seeds: 2 dropped at each end, the diverged one among them
    assert description.iqm == pytest.approx(np.mean(middle)) and description.mean < 0.81
    table = section((tmp_path / "summary.md").read_text(), "Interquartile mean beside the mean")
    se = np.std(accuracies, ddof=1) / math.sqrt(8)
    assert f"| (all) | {100 * np.mean(accuracies):.2f} ± {100 * se:.2f} | {100 * np.mean(middle):.2f} [" in table
    with open(tmp_path / "summary.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {"iqm", "iqm95_low", "iqm95_high"} <= set(rows[0]) and all(row["iqm"] for row in rows)


def test_a_study_answers_on_the_metrics_its_answer_on_names(tmp_path: Path) -> None:
    """answer_on (recorded with each job) puts the study's own question first: here the last epoch's val loss and
    gap, each compared with its power line; test accuracy is then only in the tables."""
    for num, (group, acc) in enumerate([("none", 0.90), ("none", 0.91), ("l2", 0.95), ("l2", 0.96)]):
        make_job(tmp_path, num, [f"regularizer={group}", f"seed={num % 2}"], acc,
                 params={"answer_on": ["final/val/loss", "final/gen_gap/loss"]})
    aggregate_sweep(tmp_path, plots=False)
    summary = (tmp_path / "summary.md").read_text()
    titles = re.findall(r"^## Answers: (.*)$", summary, re.MULTILINE)
    assert titles == ["val loss (last epoch)", "generalization gap, val - train loss (last epoch)"]
    answers = section(summary, "Answers: val loss (last epoch)")
    # val loss = 1.1 - acc: 0.145 for l2 vs 0.195 for none
    assert "regularizer=l2 vs regularizer=none: val loss (last epoch) 0.145 vs 0.195 (-0.05" in answers
    assert "power: n = 2/2 detects" in answers
    page = (tmp_path / "report.html").read_text()
    assert "Answers: val loss (last epoch)" in page and "Answers: test accuracy" not in page


def test_without_answer_on_a_study_answers_on_test_accuracy(tmp_path: Path) -> None:
    for num, acc in enumerate([0.90, 0.91, 0.95, 0.96]):
        make_job(tmp_path, num, [f"regularizer={'none' if num < 2 else 'l2'}", f"seed={num % 2}"], acc,
                 params={"answer_on": "auto"})
    aggregate_sweep(tmp_path, plots=False)
    assert re.findall(r"^## Answers: (.*)$", (tmp_path / "summary.md").read_text(), re.MULTILINE) == ["test accuracy"]
