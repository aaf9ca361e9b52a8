"""A user's own data: tables (CSV, Parquet, .npz), loaders of their own, IDX files under any names, data.label.

Small real tables (scikit-learn's wine and breast cancer sets) and a tiny loader module are written to tmp_path.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, run_train
from regsweep.config import validate
from regsweep.data import sources
from regsweep.data.sources import load_splits, raw_splits, task_of
from regsweep.data.user import AUTO_MAX_CLASSES
from regsweep.errors import ConfigError, DataError
from regsweep.metrics import CLASSIFICATION, REGRESSION
from regsweep.records import RESULT_FILE, read_result


@pytest.fixture(autouse=True)
def _fresh_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty in-process cache, so each test sees only its own loads."""
    monkeypatch.setattr(sources, "_RAW_SPLITS", {})


def wine_frame():
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame  # 13 features, target 0..2: 59, 71, 48 samples


def write_csv(frame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    return write_csv(wine_frame(), tmp_path / "wine.csv")


def table(make_cfg, path: Path, *overrides: str, target: str = "target"):
    """The validated data config of ``data=table`` on ``path``."""
    return validate(make_cfg("data=table", f"data.path={path}", f"data.target={target}", *overrides)).data


# --- tables ---------------------------------------------------------------------------------------

def test_a_csv_table_trains_on_its_numeric_columns_with_stratified_held_out_splits(make_cfg, wine_csv) -> None:
    settings = validate(make_cfg("data=table", f"data.path={wine_csv}", "data.target=target", "data.normalize=none"))
    assert settings.task == CLASSIFICATION and settings.data.label == "wine"
    splits = load_splits(settings.data)
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (113, 29, 36)  # 178: 20 % test, 20 % val
    assert splits.input_shape == (13,) and splits.output_size == 3 and splits.classes == ("0", "1", "2")
    frame = wine_frame()
    rows = {tuple(np.float32(v) for v in row) for row in frame.drop(columns="target").to_numpy()}
    assert all(tuple(row) in rows for row in splits.x_test.numpy())  # the file's values, unchanged
    counts = np.bincount(splits.y_test.numpy(), minlength=3)
    assert np.all(np.abs(counts - 36 * np.bincount(frame.target) / 178) <= 1)  # stratified, as the built-ins


def test_parquet_gives_the_csv_splits_and_the_split_seed_fixes_them(make_cfg, tmp_path, wine_csv) -> None:
    parquet = tmp_path / "wine.parquet"
    wine_frame().to_parquet(parquet)
    a = load_splits(table(make_cfg, wine_csv))
    b = load_splits(table(make_cfg, parquet))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    again = load_splits(validate(make_cfg("data=table", f"data.path={wine_csv}", "data.target=target", "seed=5")).data)
    other = load_splits(table(make_cfg, wine_csv, "data.split_seed=1"))
    assert torch.equal(again.x_val, a.x_val) and torch.equal(again.y_train, a.y_train)  # the run seed: same split
    assert not torch.equal(other.y_train, a.y_train)


def test_labels_map_to_codes_in_sorted_order_and_keep_their_names(make_cfg, tmp_path) -> None:
    frame = wine_frame()
    names = np.array(["nebbiolo", "grignolino", "barbera"])
    frame["target"] = names[frame.target]
    splits = load_splits(table(make_cfg, write_csv(frame, tmp_path / "named.csv")))
    assert splits.classes == ("barbera", "grignolino", "nebbiolo")
    assert splits.task == CLASSIFICATION and splits.output_size == 3
    frame["target"] = wine_frame().target + 1  # UCI's wine file numbers its classes 1..3
    numbered = load_splits(table(make_cfg, write_csv(frame, tmp_path / "numbered.csv")))
    assert numbered.classes == ("1", "2", "3") and set(numbered.y_train.tolist()) == {0, 1, 2}
    original = load_splits(table(make_cfg, write_csv(wine_frame(), tmp_path / "original.csv")))
    assert torch.equal(numbered.y_train, original.y_train)  # label k+1 is code k; the split is the same


def test_the_auto_rule_and_an_explicit_task(make_cfg, tmp_path) -> None:
    from sklearn.datasets import load_diabetes

    diabetes = write_csv(load_diabetes(as_frame=True).frame, tmp_path / "diabetes.csv")  # 214 distinct whole numbers
    data = table(make_cfg, diabetes)
    assert task_of(data) == REGRESSION
    splits = load_splits(data)
    assert splits.output_size == 1 and splits.y_train.shape == (len(splits.x_train), 1) and splits.classes == ()
    frame = wine_frame()
    for distinct, task in ((AUTO_MAX_CLASSES, CLASSIFICATION), (AUTO_MAX_CLASSES + 1, REGRESSION)):
        frame["target"] = np.arange(len(frame)) % distinct
        assert task_of(table(make_cfg, write_csv(frame, tmp_path / f"{distinct}.csv"))) == task
    frame["target"] = np.arange(len(frame)) % 3 + 0.5  # fractions: regression, unless the user says otherwise
    fractions = write_csv(frame, tmp_path / "fractions.csv")
    assert task_of(table(make_cfg, fractions)) == REGRESSION
    assert load_splits(table(make_cfg, fractions, "data.task=classification")).classes == ("0.5", "1.5", "2.5")


def test_normalization_uses_the_training_split_only(make_cfg, wine_csv) -> None:
    raw = load_splits(table(make_cfg, wine_csv, "data.normalize=none"))
    scaled = load_splits(table(make_cfg, wine_csv))  # conf/data/table.yaml: standardize
    mean, std = raw.x_train.mean(dim=0), raw.x_train.std(dim=0)
    assert torch.allclose(scaled.x_train.mean(dim=0), torch.zeros(13), atol=1e-5)
    assert torch.allclose(scaled.x_train.std(dim=0), torch.ones(13), atol=1e-5)
    assert torch.allclose(scaled.x_test, (raw.x_test - mean) / std, atol=1e-5)
    assert not torch.allclose(scaled.x_test.mean(dim=0), torch.zeros(13), atol=1e-2)


def test_counts_a_test_file_and_its_own_column_order(make_cfg, tmp_path) -> None:
    frame = wine_frame()
    counted = load_splits(table(make_cfg, write_csv(frame, tmp_path / "all.csv"), "data.test_size=50",
                                "data.val_size=20"))
    assert (len(counted.x_train), len(counted.x_val), len(counted.x_test)) == (108, 20, 50)
    train, test = write_csv(frame.iloc[:150], tmp_path / "train.csv"), tmp_path / "test.csv"
    columns = list(frame.columns)
    write_csv(frame.iloc[150:][columns[::-1]], test)  # the same columns, in another order
    splits = load_splits(table(make_cfg, train, f"data.test_path={test}", "data.normalize=none"))
    assert len(splits.x_test) == 28 and len(splits.x_train) + len(splits.x_val) == 150
    expected = frame.iloc[150:].drop(columns="target").to_numpy(dtype=np.float32)
    assert torch.equal(splits.x_test, torch.tensor(expected))
    assert splits.y_test.tolist() == frame.target.iloc[150:].tolist()


def test_npz_arrays_keep_their_sample_shape_and_text_columns_are_left_out(make_cfg, tmp_path, caplog) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "grids.npz", x=rng.normal(size=(90, 3, 4)), y=np.arange(90) % 3)
    data = validate(make_cfg("data=table", f"data.path={tmp_path / 'grids.npz'}")).data  # no data.target needed
    assert load_splits(data).input_shape == (3, 4) and data.label == "grids"
    frame = wine_frame()
    frame.insert(0, "bottle", [f"b{i}" for i in range(len(frame))])
    splits = load_splits(table(make_cfg, write_csv(frame, tmp_path / "with_text.csv")))
    assert splits.input_shape == (13,)
    assert "leaving out the columns of text bottle" in caplog.text


def test_the_loaded_table_is_kept_until_its_file_changes(make_cfg, wine_csv) -> None:
    data = table(make_cfg, wine_csv)
    first = raw_splits(data)
    assert raw_splits(table(make_cfg, wine_csv, "data.batch_size=8", "data.label=w")) is first  # not data keys
    write_csv(wine_frame().iloc[:100], wine_csv)
    os.utime(wine_csv, ns=(0, 12345))  # a changed file, even within the file system's mtime resolution
    assert len(raw_splits(data).x_test) == 20


def test_a_job_on_other_data_does_not_import_pandas() -> None:
    """(scikit-learn imports pandas wherever it is installed: the digits and MNIST jobs, which split with it, do.)"""
    code = ("import sys; from regsweep.job import run; from regsweep.data.sources import load_splits, "
            "RegressionDataConfig as R; load_splits(R(name='regression', batch_size=8, normalize='none', split_seed=0, "
            "val_size=0.2, n_train=10, extent=2.0, noise_std=0.0, test_grid=3)); "
            "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# --- bad tables: one line each, at validation where it can be told without reading -----------------

def bad_wine(tmp_path: Path, name: str, change) -> Path:
    frame = wine_frame()
    change(frame)
    return write_csv(frame, tmp_path / name)


def set_cell(column: str, row: int, value):
    def change(frame) -> None:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return change


@pytest.mark.parametrize(("name", "write", "overrides", "error", "message"), [
    ("none.csv", None, (), ConfigError, r"data.path='.*none.csv': no such file"),
    ("wine.xlsx", b"x", (), ConfigError, r"unknown suffix '.xlsx': a table is one of .csv, .parquet, .npz"),
    ("empty.csv", b"", (), ConfigError, r"data.path='.*empty.csv': is an empty file"),
    ("header.csv", b"a,b,target\n", (), DataError, r"header.csv: no data rows"),
    ("wine.csv", None, ("data.target=quality",), ConfigError,
     r"data.target='quality': is not a column of .*wine.csv; its columns: alcohol, malic_acid, .*, proline, target$"),
    ("wine.csv", None, ("data.target=null",), ConfigError, r"data.target=None: name the target column"),
    ("wine.csv", None, ("data.test_path=nowhere.parquet",), ConfigError, r"data.test_path=.*nowhere.parquet.*no such"),
    ("wine.csv", None, ("data.task=sometimes",), ConfigError, r"data.task='sometimes': must be one of auto, "
                                                                r"classification, regression"),
])
def test_a_bad_table_is_refused_at_validation(make_cfg, tmp_path, wine_csv, name, write, overrides, error, message):
    path = tmp_path / name
    if write is not None:
        path.write_bytes(write)
    with pytest.raises(error, match=message):
        validate(make_cfg("data=table", f"data.path={path}", "data.target=target", *overrides))


@pytest.mark.parametrize(("change", "message"), [
    (set_cell("hue", 5, "?"), r"bad.csv: feature column 'hue' is not numeric: '\?' at row 5 \(line 7\)"),
    (set_cell("ash", 3, None), r"bad.csv: feature column 'ash' has a missing value at row 3 \(line 5\)"),
    (set_cell("proline", 0, float("inf")), r"bad.csv: the inputs of sample 0 are not all finite"),
])
def test_bad_features_are_named_by_column_and_row(make_cfg, tmp_path, change, message) -> None:
    data = table(make_cfg, bad_wine(tmp_path, "bad.csv", change))  # validation reads the target column only
    with pytest.raises(DataError, match=message):
        load_splits(data)


def test_bad_targets_and_test_files(make_cfg, tmp_path, wine_csv) -> None:
    with pytest.raises(DataError, match=r"missing.csv: target column 'target' has a missing value at row 7 \(line 9\)"):
        table(make_cfg, bad_wine(tmp_path, "missing.csv", set_cell("target", 7, None)))
    with pytest.raises(DataError, match="red.csv: regression needs numeric targets, got 'red' at sample 0"):
        table(make_cfg, bad_wine(tmp_path, "red.csv", set_cell("target", 0, "red")), "data.task=regression")
    renamed = write_csv(wine_frame().rename(columns={"hue": "tint"}).drop(columns="ash"), tmp_path / "renamed.csv")
    with pytest.raises(DataError, match=r"renamed.csv: its columns differ from .*wine.csv's: missing ash, hue; "
                                        r"extra tint$"):
        load_splits(table(make_cfg, wine_csv, f"data.test_path={renamed}"))
    frame = wine_frame()
    frame["target"] = frame.target.where(frame.target != 2, 7)
    other_class = write_csv(frame, tmp_path / "other_class.csv")
    with pytest.raises(DataError, match=r"label '7' of sample 130 is not a class of the training data \(0, 1, 2\)"):
        load_splits(table(make_cfg, wine_csv, f"data.test_path={other_class}"))
    np.savez(tmp_path / "xonly.npz", x=np.zeros((3, 2)))
    with pytest.raises(DataError, match="a .npz table holds arrays x .inputs. and y .targets.; it has x"):
        validate(make_cfg("data=table", f"data.path={tmp_path / 'xonly.npz'}"))
    with pytest.raises(ConfigError, match=r"data.val_size=500.*cannot hold that out of 142 samples"):
        load_splits(table(make_cfg, wine_csv, "data.val_size=500"))


# --- a loader of the user's own ------------------------------------------------------------------

LOADERS = '''
import numpy as np
import torch
import lightning as L
from torch.utils.data import DataLoader, Dataset, TensorDataset

CALLS = []


def arrays(n=120, classes=3):
    CALLS.append(n)
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    return rng.normal(size=(n, 4)) + y[:, None], y


def pairs():
    x, y = arrays(100)
    return (x[:80], y[:80]), (torch.tensor(x[80:]), torch.tensor(y[80:]))


class Points(Dataset):
    """Sample i is a 2x3 grid of i, labelled i % 4."""

    def __len__(self):
        return 200

    def __getitem__(self, i):
        return torch.full((2, 3), float(i)), i % 4


class Huge(Points):
    def __len__(self):
        return 10**12


class Module(L.LightningDataModule):
    def setup(self, stage):
        x, y = arrays(100)
        tensors = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
        self.train, self.test = TensorDataset(*(t[:70] for t in tensors)), TensorDataset(*(t[70:] for t in tensors))

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=16)


def surface(n=200):
    x = np.random.default_rng(1).uniform(-1, 1, size=(n, 3))
    return x, x.sum(axis=1)


def text():
    return "not data"
'''


@pytest.fixture
def loaders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The module ``userloaders`` in tmp_path, importable as from the directory a command runs in."""
    (tmp_path / "userloaders.py").write_text(LOADERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "userloaders", raising=False)
    import userloaders

    return userloaders


def custom(make_cfg, target: str, *overrides: str):
    return validate(make_cfg("data=custom", f"data.source._target_=userloaders.{target}", *overrides)).data


def test_a_loaders_arrays_load_once_per_process_with_their_task(make_cfg, loaders) -> None:
    data = custom(make_cfg, "arrays", "+data.source.n=150")
    assert data.label == "userloaders.arrays" and task_of(data) == CLASSIFICATION
    splits = load_splits(data)
    assert loaders.CALLS == [150]  # validation loaded it (task auto); the job reused that
    assert (len(splits.x_train), len(splits.x_val), len(splits.x_test)) == (96, 24, 30)
    assert splits.input_shape == (4,) and splits.classes == ("0", "1", "2")
    stated = custom(make_cfg, "arrays", "data.task=classification", "data.label=blobs")
    assert stated.label == "blobs" and loaders.CALLS == [150]  # a stated task: nothing loaded to validate


def test_train_and_test_pairs_a_dataset_and_a_datamodule(make_cfg, loaders) -> None:
    pairs = load_splits(custom(make_cfg, "pairs"))
    assert len(pairs.x_test) == 20 and len(pairs.x_train) + len(pairs.x_val) == 80  # the loader's own test set
    points = load_splits(custom(make_cfg, "Points"))
    assert points.input_shape == (2, 3) and points.classes == ("0", "1", "2", "3")
    everything = torch.cat([points.x_train, points.x_val, points.x_test])[:, 0, 0]
    labels = torch.cat([points.y_train, points.y_val, points.y_test])
    assert sorted(everything.tolist()) == list(range(200)) and torch.equal(labels, everything.long() % 4)
    module = load_splits(custom(make_cfg, "Module"))
    sources._RAW_SPLITS.clear()
    again = load_splits(custom(make_cfg, "Module"))
    x, y = loaders.arrays(100)
    assert torch.equal(module.x_test, torch.tensor(x[70:], dtype=torch.float32))  # its test_dataloader
    assert torch.equal(module.y_test, torch.tensor(y[70:]))
    assert torch.equal(module.x_train, again.x_train)  # read in index order: its shuffle moves no split


def test_a_regression_loader(make_cfg, loaders) -> None:
    data = custom(make_cfg, "surface")
    assert task_of(data) == REGRESSION
    splits = load_splits(data)
    assert splits.y_train.shape == (len(splits.x_train), 1) and splits.output_size == 1


@pytest.mark.parametrize(("target", "error", "message"), [
    ("missing", ConfigError, r"data.source._target_='userloaders.missing': does not import"),
    ("text", DataError, r"userloaders.text returned a str; a loader returns arrays \(x, y\), train and test pairs"),
    ("Huge", DataError, r"userloaders.Huge is too large to hold in memory: 1000000000000 samples take about [\d.]+ GiB "
                        r"as tensors, and a job may use [\d.]+ GiB"),
])
def test_a_bad_loader_is_one_line_before_training(make_cfg, loaders, target, error, message) -> None:
    with pytest.raises(error, match=message):
        custom(make_cfg, target)


def test_a_loaders_arguments_are_checked_at_validation(make_cfg, loaders) -> None:
    with pytest.raises(ConfigError, match=r"data.source=.*arrays refuses these arguments .*unexpected keyword "
                                          r"argument 'size'"):
        custom(make_cfg, "arrays", "+data.source.size=3")
    assert loaders.CALLS == []


# --- a user's own IDX files ----------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    data = idx_bytes(array.astype(np.uint8))
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture
def sketches(tmp_path: Path) -> Path:
    """A dir of IDX files under names of the user's choice: 60 + 20 8x8 images labelled 3, 5 or 7."""
    rng = np.random.default_rng(0)
    data_dir = tmp_path / "sketches"
    data_dir.mkdir()
    labels = np.array([3, 5, 7])[np.arange(80) % 3]
    images = rng.integers(0, 200, size=(80, 8, 8)) + labels[:, None, None]
    write_idx(data_dir / "sketch-train-images.idx.gz", images[:60])
    write_idx(data_dir / "sketch-train-labels.idx", labels[:60])
    write_idx(data_dir / "sketch-test-images.idx", images[60:])
    write_idx(data_dir / "sketch-test-labels.idx.gz", labels[60:])
    (data_dir / "notes-train.txt").write_text("not IDX")
    return data_dir


def idx_data(make_cfg, data_dir: Path, *overrides: str):
    return validate(make_cfg("data=idx", f"data.data_dir={data_dir}", "data.normalize=none", *overrides)).data


def test_idx_files_are_found_by_header_and_name_and_named_after_their_dir(make_cfg, sketches) -> None:
    data = idx_data(make_cfg, sketches)
    assert data.label == "sketches" and task_of(data) == CLASSIFICATION
    splits = load_splits(data)
    assert splits.input_shape == (1, 8, 8) and splits.classes == ("3", "5", "7")
    assert len(splits.x_test) == 20 and (len(splits.x_train), len(splits.x_val)) == (54, 6)
    assert torch.equal(splits.y_test, torch.arange(60, 80) % 3)  # 3, 5, 7 -> 0, 1, 2
    for name in ("sketch-test-images.idx", "sketch-test-labels.idx.gz"):
        (sketches / name).unlink()
    held_out = load_splits(idx_data(make_cfg, sketches, "data.test_size=12"))
    assert (len(held_out.x_train), len(held_out.x_val), len(held_out.x_test)) == (43, 5, 12)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: write_idx(d / "copy-train-images.idx", np.zeros((60, 8, 8))), r"2 IDX files of train samples "
     r"\(copy-train-images.idx, sketch-train-images.idx.gz\): keep one"),
    (lambda d: (d / "sketch-test-images.idx").unlink(), r"sketch-test-labels.idx.gz holds the test targets, but no IDX "
     r"file of test samples is there"),
    (lambda d: write_idx(d / "sketch-train-labels.idx", np.zeros(59)), r"sketch-train-images.idx.gz holds 60 samples "
     r"but sketch-train-labels.idx 59 targets"),
    (lambda d: [(d / f"sketch-train-{kind}").rename(d / f"sketch-{kind}") for kind in ("images.idx.gz", "labels.idx")],
     r"no IDX files of training samples and targets: .* with 'train' in their names"),
])
def test_bad_idx_dirs_are_one_line(make_cfg, sketches, change, message) -> None:
    change(sketches)
    with pytest.raises(DataError, match=message):
        idx_data(make_cfg, sketches)


def test_own_idx_files_under_the_canonical_names_point_to_data_idx(make_cfg, tmp_path) -> None:
    data_dir = tmp_path / "mine"
    data_dir.mkdir()
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), 9))
        write_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 2)
    with pytest.raises(DataError, match="not the canonical one: delete it .*IDX files of your own: data=idx"):
        load_splits(validate(make_cfg("data=mnist", f"data.data_dir={data_dir}")).data)  # refused before downloading
    splits = load_splits(idx_data(make_cfg, data_dir))
    assert splits.input_shape == (1, 28, 28) and len(splits.x_test) == 10


# --- data.label ----------------------------------------------------------------------------------

def test_every_dataset_has_a_label(make_cfg) -> None:
    assert validate(make_cfg()).data.label == "digits"
    assert validate(make_cfg("data=regression")).data.label == "regression"
    assert validate(make_cfg("data=fashion_mnist")).data.label == "fashion_mnist"
    assert validate(make_cfg("data.label=handwriting")).data.label == "handwriting"
    with pytest.raises(ConfigError, match="data.label=' ': must be a non-empty name"):
        validate(make_cfg("data.label=' '"))


# --- as a user runs it ---------------------------------------------------------------------------

@pytest.mark.slow
def test_train_py_on_a_table(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    load_breast_cancer(as_frame=True).frame.to_parquet(tmp_path / "cancer.parquet")
    result = run_train("data=table", "data.path=cancer.parquet", "data.target=target", *TINY,
                       f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)  # a relative path, from where it runs
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "run" / RESULT_FILE).read_text())
    assert record["status"] == "ok" and record["epochs"] == 2
    assert record["data"]["task"] == CLASSIFICATION
    assert (record["data"]["n_train"], record["data"]["n_val"], record["data"]["n_test"]) == (364, 91, 114)
    assert record["metrics"]["test"]["test/acc"] > 0.6
    refused = run_train("data=table", "data.path=cancer.parquet", "data.target=diagnosis", *TINY,
                        f"hydra.run.dir={tmp_path}/refused", cwd=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if "Invalid config" in line]
    assert len(lines) == 1 and lines[0].startswith("Invalid config: data.target='diagnosis': is not a column of ")
    assert read_result(tmp_path / "refused").status == "failed"
    assert not (tmp_path / "refused" / "metrics.csv").exists()
