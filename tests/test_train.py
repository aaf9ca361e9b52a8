"""A short real run leaves a complete record, CSV and TensorBoard logs; runs are reproducible."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import CONF_DIR, ROOT, SHARED_DATA, TINY
from regsweep import checkpoints, metrics, provenance
from regsweep.training.callbacks import GeneralizationGapStopping
from regsweep.config import validate
from regsweep.errors import ConfigError, DivergenceError
from regsweep.job import run
from regsweep.outputs import HISTOGRAM_BINS, member_histograms
from regsweep.records import EPOCHS_FILE, WEIGHTS_FILE, read_epochs_csv, read_result

EPOCH_TAGS = set(metrics.epoch_metrics(metrics.CLASSIFICATION))  # every per-epoch metric a job writes


def test_short_digits_run_leaves_record_csv_weights_and_tensorboard(make_cfg, tmp_path: Path) -> None:
    objective = run(make_cfg("regularizer=l1l2", "trainer.max_epochs=3", "callbacks=no_stop"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.error is None
    assert record.seed == 0 and record.epochs == 3 and record.wall_time_s > 0
    assert record.params["regularizer.l1"] == 5e-4 and record.params["model.hidden_sizes"] == [32]
    final, best, test = record.metrics["final"], record.metrics["best"], record.metrics["test"]
    assert EPOCH_TAGS <= set(final)
    assert final["train/penalty"] > 0
    assert final["train/total_loss"] == pytest.approx(final["train/loss"] + final["train/penalty"], rel=1e-5)
    assert final["gen_gap/loss"] == pytest.approx(final["val/loss"] - final["train_eval/loss"], rel=1e-5)
    assert objective == best["val/acc"]
    assert 0.2 < test["test/acc"] <= 1.0  # tiny settings, but well above chance (0.1)
    rows = read_epochs_csv(tmp_path / EPOCHS_FILE)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert [line.split(",")[0] for line in (tmp_path / EPOCHS_FILE).read_text().splitlines()] == ["epoch", "0", "1", "2"]
    assert best["val/loss"] == min(r["val/loss"] for r in rows)
    weights = np.load(tmp_path / WEIGHTS_FILE)
    assert sorted(weights.files) == ["1.weight", "3.weight"] and weights["1.weight"].shape == (32, 64)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert record.environment["git_commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert record.environment["torch"] == torch.__version__ and record.environment["lightning"] == lightning.__version__
    trained_on = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu ("  # accelerator auto
    assert record.environment["device"].startswith(trained_on)

    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0, "scalars": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    assert EPOCH_TAGS <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val/loss")] == [0, 1, 2]
    assert {"weights/1.weight", "weights/3.weight"} <= set(tags["histograms"])
    last = events.Histograms("weights/1.weight")[-1]  # the end of the last epoch: the weights in weights.npz
    final_weights = weights["1.weight"]
    assert last.step == 2 and last.histogram_value.num == final_weights.size
    assert last.histogram_value.min == pytest.approx(final_weights.min()) and sum(last.histogram_value.bucket) == final_weights.size
    assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(test["test/acc"])
    assert events.Scalars("hp/best_val_acc")[-1].value == pytest.approx(best["val/acc"])
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_a_record_names_the_commit_of_the_packages_own_checkout_only(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "-c", "user.name=regsweep", "-c", "user.email=regsweep@localhost", "commit", "-q", "--allow-empty",
        "-m", "a project")
    installed = tmp_path / ".venv" / "lib"  # the package installed in a venv inside another project's repository
    installed.mkdir(parents=True)
    assert provenance.software(installed)["git_commit"] is None
    assert provenance.software(tmp_path)["git_commit"] == git(tmp_path, "rev-parse", "HEAD")
    assert provenance.software(tmp_path)["git_dirty"] is False
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("assembled results")
    assert provenance.software.__wrapped__(tmp_path)["git_dirty"] is False  # docs cannot move the numbers
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "changed.py").write_text("")
    assert provenance.software.__wrapped__(tmp_path)["git_dirty"] is True  # uncached: the code changed


def test_a_record_names_the_torch_build_not_only_the_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PyPI's CUDA wheel says 2.11.0 in its package metadata and 2.11.0+cu130 in torch.__version__ (found on a GPU)."""
    monkeypatch.setattr(torch, "__version__", "2.11.0+cu130")
    assert provenance.software.__wrapped__(tmp_path)["torch"] == "2.11.0+cu130"


def test_each_members_histogram_is_its_own_histc() -> None:
    weights = torch.randn(4, 40, 7, generator=torch.Generator().manual_seed(0))
    weights[1] *= 100  # members on very different scales each get their own range
    weights[2] = 0.25  # a constant member: every value in the middle bin
    weights[3] = (weights[3] * 8).round() / 8  # many values on bin edges: each must land where histc puts it
    for member, histogram in zip(weights, member_histograms(weights)):
        low, high = float(member.min()), float(member.max())
        start, end = (low, high) if high > low else (low - 0.5, low + 0.5)
        assert histogram.bucket_counts == torch.histc(member, bins=HISTOGRAM_BINS, min=start, max=end).tolist()
        assert histogram.num == member.numel() == sum(histogram.bucket_counts) and (histogram.min, histogram.max) == (low, high)
        assert histogram.sum == pytest.approx(float(member.sum())) and histogram.sum_squares == pytest.approx(float(member.pow(2).sum()))
        assert len(histogram.bucket_limits) == HISTOGRAM_BINS and histogram.bucket_limits[-1] == pytest.approx(end)


@pytest.mark.parametrize("every, expected", [(60, [3]), (0, [1, 2, 3, 3])])
def test_last_checkpoint_waits_its_interval_from_the_start(make_cfg, tmp_path: Path, monkeypatch, every: int,
                                                          expected: list[int]) -> None:
    """A short job writes last.ckpt only at its end; ``last_checkpoint_every_s=0`` after every epoch as well."""
    written = []
    real = checkpoints.write_checkpoint

    def recording(path, kind, payload):
        if kind == checkpoints.LAST_FORMAT:
            written.append(payload["epochs"])
        return real(path, kind, payload)

    monkeypatch.setattr(checkpoints, "write_checkpoint", recording)
    run(make_cfg("trainer.max_epochs=3", f"last_checkpoint_every_s={every}"))
    assert written == expected


def test_same_seed_same_metrics_other_seed_other_metrics(make_cfg, tmp_path: Path) -> None:
    def metrics(seed: int) -> dict:
        run(make_cfg(f"seed={seed}", "model.dropout=0.2"))
        return read_result(tmp_path).metrics

    first = metrics(0)
    assert metrics(0) == first
    assert metrics(1)["final"]["train/loss"] != first["final"]["train/loss"]


def test_seed_zero_is_a_real_seed(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("seed=0"))
    zero = read_result(tmp_path).metrics
    run(make_cfg("seed=1"))
    assert read_result(tmp_path).metrics != zero


def test_regression_run_records_mse_without_accuracy(make_cfg, tmp_path: Path) -> None:
    objective = run(make_cfg("data=regression", "data.batch_size=null"))
    record = read_result(tmp_path)
    assert record.status == "ok" and "val/acc" not in record.metrics["final"]
    assert objective == record.metrics["best"]["val/loss"]
    assert math.isfinite(record.metrics["test"]["test/loss"])
    assert record.data["batch_size"] == record.data["n_train"]  # null: one full batch, recorded as its size


@pytest.mark.parametrize("norm, reference", [
    ("none", torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))),
    ("batch", torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                  torch.nn.Linear(32, 10))),
])
def test_a_job_records_its_models_size(make_cfg, tmp_path: Path, norm: str, reference: torch.nn.Sequential) -> None:
    run(make_cfg(f"model.norm={norm}", "trainer.max_epochs=1"))  # digits: 64 inputs, 10 classes; hidden [32]
    weights = [m.weight.numel() for m in reference if isinstance(m, torch.nn.Linear)]
    assert read_result(tmp_path).model == {"parameters": sum(p.numel() for p in reference.parameters()),
                                           "penalized_weights": sum(weights)}


def test_diverging_run_fails_with_a_reason_and_a_failed_record(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("data=regression", "optimizer=sgd", "optimizer.lr=1e6", "trainer.max_epochs=5")
    with pytest.raises(DivergenceError, match="diverged"):
        run(cfg)
    record = read_result(tmp_path)
    assert record.status == "failed" and "DivergenceError" in record.error
    assert record.metrics == {}


def test_early_stopping_stops_before_max_epochs(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("trainer.max_epochs=40", "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5"))
    assert read_result(tmp_path).epochs == 2  # no epoch improves val/loss by 0.5 after the first


def test_gap_stopping_needs_k_consecutive_epochs_over_epsilon() -> None:
    callback = GeneralizationGapStopping(epsilon=0.1, patience=2)
    assert [callback.over(g) for g in (0.2, 0.05, 0.2, 0.3)] == [False, False, False, True]
    counting = GeneralizationGapStopping(epsilon=0.1, patience=2, consecutive=False)  # every epoch over it counts
    assert [counting.over(g) for g in (0.2, 0.05, 0.2, 0.3)] == [False, False, True, True]


def test_gap_stopping_run(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("callbacks=gap_stop", "callbacks.gap_stopping.epsilon=-10", "callbacks.gap_stopping.patience=2",
                 "trainer.max_epochs=10"))
    assert read_result(tmp_path).epochs == 2  # the gap always exceeds -10: stop after 2 epochs


def test_gradient_noise_changes_training(make_cfg, tmp_path: Path) -> None:
    run(make_cfg())
    clean = read_result(tmp_path).metrics["final"]["train/loss"]
    run(make_cfg("regularizer.grad_noise_std=0.5"))
    assert read_result(tmp_path).metrics["final"]["train/loss"] != clean


def test_augmentation_changes_training_but_not_evaluation_data(make_cfg, tmp_path: Path) -> None:
    run(make_cfg())
    plain = read_result(tmp_path).metrics["final"]
    run(make_cfg("augment=all"))
    augmented = read_result(tmp_path).metrics["final"]
    assert augmented["train/loss"] != plain["train/loss"]


def test_group_size_changes_speed_only(make_cfg, tmp_path: Path) -> None:
    """Minibatches per Lightning step: same updates, penalty, noise, augmentation and schedule."""
    def trained(batches_per_step: int) -> tuple[dict[str, np.ndarray], list[dict]]:
        run(make_cfg(f"minibatches_per_step={batches_per_step}", "data.batch_size=100", "augment=all",
                     "regularizer=l1l2", "regularizer.grad_noise_std=0.01", "optimizer.schedule=step",
                     "optimizer.step_size=1", "optimizer.clip_grad_norm=1.0", "trainer.max_epochs=3",
                     "callbacks=no_stop"))
        weights = np.load(tmp_path / WEIGHTS_FILE)
        return {name: weights[name] for name in weights.files}, read_epochs_csv(tmp_path / EPOCHS_FILE)

    weights, epochs = trained(1)
    for batches_per_step in (4, 5):  # 12 minibatches per epoch: groups of 4, 4, 4 and of 5, 5, 2
        grouped_weights, grouped_epochs = trained(batches_per_step)
        assert grouped_weights.keys() == weights.keys()
        assert all(np.array_equal(grouped_weights[name], weights[name]) for name in weights)
        # epoch metrics: the same values, summed in a different order
        assert [row.keys() for row in grouped_epochs] == [row.keys() for row in epochs]
        for grouped_row, row in zip(grouped_epochs, epochs):
            assert grouped_row == pytest.approx(row, rel=1e-6, abs=1e-6)
    assert [row["lr"] for row in epochs] == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_gradient_clipping_limits_each_step(make_cfg, tmp_path: Path) -> None:
    def final_train_loss(*overrides: str) -> float:
        run(make_cfg("optimizer=sgd", "optimizer.lr=0.5", *overrides))
        return read_result(tmp_path).metrics["final"]["train/loss"]

    assert final_train_loss() < 1.0  # digits learn fast at this rate
    assert final_train_loss("optimizer.clip_grad_norm=1e-4") > 2.2  # steps of at most 5e-5: still at chance


FLUSH_PROBE = """
import sys
import torch
from hydra import compose, initialize_config_dir
from regsweep.config import register_configs, register_resolvers
from regsweep.job import run
register_resolvers()
register_configs()
with initialize_config_dir(config_dir=sys.argv[1]):
    run(compose("train", overrides=sys.argv[2:]))
product = torch.full((1 << 22,), 1e-30) * 1e-10  # 1e-40 is subnormal; split across the intra-op threads
print(int(product.count_nonzero()))
"""


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_reaches_every_intra_op_thread(tmp_path: Path, flush: bool) -> None:
    """A job flushes subnormal results to zero in all of torch's CPU threads, not just the main one."""
    overrides = [*TINY, "trainer.max_epochs=1", f"flush_denormal={flush}", f"paths.output_dir={tmp_path}"]
    probe = subprocess.run([sys.executable, "-c", FLUSH_PROBE, str(CONF_DIR), *overrides],
                           capture_output=True, text=True, timeout=300, env={**os.environ, "REGSWEEP_ROOT": str(ROOT)})
    assert probe.returncode == 0, probe.stderr[-2000:]
    nonzero = int(probe.stdout.split()[-1])
    assert nonzero == 0 if flush else nonzero == 1 << 22


@pytest.fixture
def float32_flags() -> Iterator[None]:
    """torch's TF32 flags as they were before the test (a job sets them for its whole process)."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    yield
    torch.backends.cudnn.allow_tf32 = cudnn
    torch.set_float32_matmul_precision(matmul)


@pytest.mark.parametrize("tf32", [False, True])
def test_tf32_sets_both_products_and_convolutions(make_cfg, float32_flags: None, tf32: bool) -> None:
    """torch leaves cuDNN convolutions in TF32 and products in float32; a job makes them agree, as configured."""
    torch.backends.cudnn.allow_tf32 = not tf32
    torch.set_float32_matmul_precision("highest" if tf32 else "high")
    run(make_cfg(f"tf32={tf32}", "trainer.max_epochs=1"))
    assert torch.backends.cudnn.allow_tf32 is tf32
    assert torch.get_float32_matmul_precision() == ("high" if tf32 else "highest")


def test_augmentation_is_refused_for_regression(make_cfg) -> None:
    with pytest.raises(ConfigError, match="augmentation needs an image dataset"):
        validate(make_cfg("data=regression", "augment=noise"))


def test_cnn_run_penalizes_conv_kernels(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("model=cnn", "model.channels=[4,8]", "model.kernel_size=3", "regularizer=l1"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["final"]["train/penalty"] > 0
    weights = np.load(tmp_path / WEIGHTS_FILE)
    assert weights["0.weight"].shape == (4, 1, 3, 3) and weights["3.weight"].shape == (8, 4, 3, 3)


@pytest.mark.skipif(not (SHARED_DATA / "fashion_mnist").is_dir(), reason="../shared/data is not present")
def test_real_fashion_mnist_smoke_run(make_cfg, tmp_path: Path) -> None:
    shared = SHARED_DATA / "fashion_mnist"
    before = sorted(p.name for p in shared.iterdir())
    run(make_cfg("data=fashion_mnist", f"data.data_dir={shared}", "model.hidden_sizes=[64]",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=50", "trainer.limit_val_batches=1"))
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["test"]["test/acc"] > 0.5  # 50 steps of a real dataset
    assert sorted(p.name for p in shared.iterdir()) == before  # the shared data dir is never written


def test_best_epoch_follows_the_checkpoint_monitor(make_cfg, tmp_path: Path) -> None:
    run(make_cfg("trainer.max_epochs=4", "callbacks=no_stop", "callbacks.model_checkpoint.monitor=val/acc"))
    record = read_result(tmp_path)
    rows = read_epochs_csv(tmp_path / EPOCHS_FILE)
    assert record.metrics["best"]["val/acc"] == max(r["val/acc"] for r in rows)


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data is not present")
def test_a_training_size_study_trains_on_a_stratified_subset_fixed_by_the_split_seed(tmp_path: Path) -> None:
    from regsweep.data.sources import ImageDataConfig, load_splits

    for name in (SHARED_DATA / "mnist").iterdir():  # read from a copy: nothing is written beside the shared files
        (tmp_path / name.name).symlink_to(name)

    def splits(train_size: int | None, split_seed: int = 0):
        return load_splits(ImageDataConfig(name="mnist", batch_size=128, normalize="minmax", split_seed=split_seed,
                                           val_size=5000, data_dir=str(tmp_path), mirrors=[], timeout_s=1, retries=1,
                                           train_size=train_size))

    full, small = splits(None), splits(1000)
    assert (full.n_train, small.n_train, len(small.x_val), len(small.x_test)) == (55000, 1000, 5000, 10000)
    assert torch.equal(small.x_val, full.x_val) and torch.equal(small.x_test, full.x_test)  # only training shrinks
    counts = torch.bincount(small.y_train, minlength=10)
    assert counts.min() >= 90 and counts.max() <= 115  # stratified: each class about its share of 1000
    assert torch.equal(splits(1000).x_train, small.x_train) and not torch.equal(splits(1000, 1).x_train, small.x_train)
