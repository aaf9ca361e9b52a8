"""Fabricated sweep dirs with known metric values, shaped like the ones Hydra multiruns leave behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from regsweep.records import (
    JobInfo,
    ResultRecord,
    find_job_dirs,
    read_result,
    write_epochs_csv,
    write_result,
    write_weights,
)

# test accuracy of each seed, per regularizer: the numbers the tests check statistics against
TEST_ACC = {
    "none": [0.90, 0.91, 0.92, 0.89],
    "l1": [0.93, 0.94, 0.92, 0.95],
    "l2": [0.91, 0.93, 0.92, 0.90],
}
L1_STRENGTH = {"none": 0.0, "l1": 1e-4, "l2": 0.0}
L2_STRENGTH = {"none": 0.0, "l1": 0.0, "l2": 1e-3}


def job_metrics(test_acc: float, epochs: int, classification: bool = True) -> dict[str, dict[str, float]]:
    """Metrics that follow from one number, so tests can predict every statistic."""
    final = {
        "train/loss": 0.1,
        "val/loss": 1.1 - test_acc,
        "train/penalty": 0.01,
        "gen_gap/loss": 1.0 - test_acc,
        "weights/l1": 10.0 * test_acc,
        "weights/l2": test_acc,
        "weights/sparsity": test_acc - 0.5,
    }
    test = {"test/loss": 1.0 - test_acc}
    if classification:
        final |= {"train/acc": 0.99, "val/acc": test_acc - 0.01, "gen_gap/acc": 1.0 - test_acc}
        test["test/acc"] = test_acc
    best = {key: value for key, value in final.items()} | {"epoch": float(epochs - 1)}
    return {"final": final, "best": best, "test": test}


def epoch_rows(test_acc: float, epochs: int, classification: bool = True) -> list[dict[str, float]]:
    rows = []
    for epoch in range(epochs):
        row = {"epoch": float(epoch), "train/loss": 1.0 / (epoch + 1), "lr": 0.001}
        row["val/loss"] = 1.1 - test_acc + 0.1 / (epoch + 1)
        if classification:
            row |= {"train/acc": 0.9 + 0.01 * epoch, "val/acc": test_acc - 0.01 * (epochs - epoch)}
        rows.append(row)
    return rows


def weights_for(regularizer: str, seed: int) -> dict[str, np.ndarray]:
    """L1 makes most weights exactly zero, L2 shrinks all of them: what the histograms should show."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.1, size=(64, 32))
    if regularizer == "l1":
        matrix[rng.random(matrix.shape) < 0.7] = 0.0
    if regularizer == "l2":
        matrix *= 0.3
    return {"net.0.weight": matrix, "net.0.bias": np.zeros(64)}


def write_hydra_overrides(job_dir: Path, overrides: list[str]) -> None:
    (job_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")


def make_job(
    sweep_dir: Path,
    num: int,
    overrides: list[str],
    test_acc: float,
    *,
    epochs: int = 5,
    status: str = "ok",
    error: str | None = None,
    params: dict | None = None,
    classification: bool = True,
    regularizer: str = "none",
) -> Path:
    """One finished job dir: .hydra/overrides.yaml, result.json, metrics.csv, weights.npz."""
    job_dir = sweep_dir / f"{num}_{','.join(overrides)}"
    write_hydra_overrides(job_dir, overrides)
    seed = next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), None)
    record = ResultRecord(
        status=status,
        job=JobInfo(name=job_dir.name, dir=str(job_dir), num=num, overrides=overrides, sweep_dir=str(sweep_dir)),
        seed=seed,
        error=error,
        epochs=epochs,
        wall_time_s=1.0 + num,
        metrics=job_metrics(test_acc, epochs, classification) if status == "ok" else {},
        params=params or {},
    )
    write_result(job_dir, record)
    write_epochs_csv(job_dir / "metrics.csv", epoch_rows(test_acc, epochs, classification))
    write_weights(job_dir / "weights.npz", weights_for(regularizer, num))
    return job_dir


def make_regularizer_sweep(sweep_dir: Path) -> Path:
    """3 regularizers x 4 seeds, every job ok, test accuracies from TEST_ACC."""
    num = 0
    for regularizer, accuracies in TEST_ACC.items():
        for seed, acc in enumerate(accuracies):
            params = {"regularizer.l1": L1_STRENGTH[regularizer], "regularizer.l2": L2_STRENGTH[regularizer]}
            overrides = [f"regularizer={regularizer}", f"seed={seed}"]
            make_job(sweep_dir, num, overrides, acc, params=params, regularizer=regularizer)
            num += 1
    return sweep_dir


def test_fabricated_sweep_reads_back(tmp_path: Path) -> None:
    make_regularizer_sweep(tmp_path)
    dirs = list(find_job_dirs(tmp_path))
    assert len(dirs) == 12
    assert read_result(dirs[0]).metrics["test"]["test/acc"] in TEST_ACC["none"]
