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
        "weights/sparsity_1e-5": (test_acc - 0.5) / 10,
        "weights/sparsity_rel": (test_acc - 0.5) / 2,
    }
    test = {"test/loss": 1.0 - test_acc}
    if classification:
        final |= {"train/acc": 0.99, "val/acc": test_acc - 0.01, "gen_gap/acc": 1.0 - test_acc}
        test["test/acc"] = test_acc
    # the kept epoch's weights are sparser than the last epoch's: tables must say which they show
    kept_sparsity = {key: 2 * value for key, value in final.items() if key.startswith("weights/sparsity")}
    best = final | kept_sparsity | {"epoch": float(epochs - 1)}
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
    data: dict | None = None,
    penalty: dict | None = None,
    model: dict | None = None,
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
        data=data or {},
        penalty=penalty or {},
        model=model or {},
    )
    write_result(job_dir, record)
    write_epochs_csv(job_dir / "metrics.csv", epoch_rows(test_acc, epochs, classification))
    write_weights(job_dir / "weights.npz", weights_for(regularizer, num))
    return job_dir


def grid_points(size: int = 12, extent: float = 2.0) -> np.ndarray:
    """The regression test grid: size x size points over [-extent, extent]^2, x1 varying slowest."""
    axis = np.linspace(-extent, extent, size)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)


def write_predictions(job_dir: Path, error_scale: float, seed: int = 0, size: int = 12) -> Path:
    """predictions.npz as a regression job writes it: f(x) = x1 exp(-x1^2 - x2^2) and a noisy prediction."""
    x = grid_points(size)
    y_true = x[:, 0] * np.exp(-(x**2).sum(axis=1))
    y_pred = y_true + error_scale * np.random.default_rng(seed).normal(size=y_true.shape)
    path = job_dir / "predictions.npz"
    arrays = {"x": x, "y_true": y_true, "y_pred": y_pred}
    np.savez_compressed(path, **{name: values.astype(np.float32) for name, values in arrays.items()})
    return path


REGRESSION_LOSS = {100: [0.0061, 0.0072, 0.0066], 1000: [1.1e-5, 1.3e-5, 1.2e-5]}  # test MSE per n_train


def make_regression_sweep(sweep_dir: Path, epochs: int = 5) -> Path:
    """experiment=regression in small: n_train 100 vs 1000, 3 seeds, no penalty; every job with predictions."""
    num = 0
    for n_train, losses in REGRESSION_LOSS.items():
        for seed, loss in enumerate(losses):
            overrides = [f"data.n_train={n_train}", "regularizer.l2=0", f"seed={seed}", "trainer.max_epochs=30"]
            data = {"task": "regression", "n_train": n_train, "n_val": n_train // 4, "n_test": 144}
            params = {"regularizer.l1": 0.0, "regularizer.l2": 0.0, "data.n_train": n_train, "optimizer.lr": 0.001}
            job = make_job(sweep_dir, num, overrides, 1.0 - loss, epochs=epochs, classification=False, params=params,
                           data=data)
            write_predictions(job, error_scale=loss**0.5, seed=num)
            num += 1
    return sweep_dir


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
