"""make results: each study's seed summary goes into docs/results.md under its command, its plots beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from regsweep import reference


def test_a_study_section_keeps_the_summary_demotes_its_headings_and_copies_its_group_plots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs, sweep = tmp_path / "docs", tmp_path / "multirun" / "l1_vs_l2"
    monkeypatch.setattr(reference, "DOCS", docs)
    (sweep / "plots").mkdir(parents=True)
    (sweep / "plots" / "learning_curves.png").write_bytes(b"png")
    (sweep / "summary.md").write_text("# Sweep summary: l1_vs_l2\n\n## Answers\n\n- l1 vs none: -2 pp\n\n"
                                      "![learning_curves](plots/learning_curves.png)\n"
                                      "![prediction](3_seed=3/prediction.png)\n")
    run = reference.StudyRun("l1_vs_l2", reference.command_of("l1_vs_l2", ["trainer.max_epochs=2"]), sweep, 90.0)
    lines = reference.summary_section(run, docs / "results" / "l1_vs_l2")
    assert lines[:4] == ["", "### Answers", "", "- l1 vs none: -2 pp"]
    assert "![learning_curves](results/l1_vs_l2/learning_curves.png)" in lines
    assert not any("prediction" in line for line in lines)  # per-job plots stay in the sweep dir
    assert (docs / "results" / "l1_vs_l2" / "learning_curves.png").read_bytes() == b"png"
    assert " ".join(run.command) == ("python train.py -m experiment=l1_vs_l2 trainer.enable_progress_bar=false "
                                     "trainer.max_epochs=2")


def test_every_ready_made_study_has_a_question() -> None:
    names = reference.study_names()
    assert {"l1_vs_l2", "lambda_grid", "regression", "cnn_kernels"} <= set(names)
    assert all(reference.study_question(name) != name for name in names)
