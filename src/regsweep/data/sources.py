"""The datasets behind ``data=<name>``: each one's schema, its task and the loader that turns it into Splits.

Adding a dataset is one entry in DATASETS (a schema, a loader, a task) and a YAML file in conf/data/.
Besides the built-ins, a user brings their own data: a table (``data=table``), a loader of their own
(``data=custom``) or IDX files (``data=idx``); the task of those is stated or read from the targets.
Splits are fixed by ``data.split_seed``, independent of the run seed, so the seeds of a sweep
vary initialization and batch order, never which samples are held out. The raw splits of a
dataset are kept in memory once per process, so the jobs and packs of a multirun load it once.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from omegaconf import MISSING

from regsweep.data.custom import check_source, load_custom, loader_name
from regsweep.data.idx import find_idx_files, read_idx
from regsweep.data.splits import NORMALIZATIONS, Splits, from_arrays, normalize
from regsweep.data.tables import NPZ, check_table_path, read_table, read_target, read_test_table, stamp
from regsweep.data.user import AUTO, TASKS, Pair, check_samples, targets_of, user_path
from regsweep.errors import ConfigError, DataError
from regsweep.metrics import CLASSIFICATION, REGRESSION
from regsweep.schema import Checked, Rule, above, at_least, one_of, require, ruled, within

DATASETS: dict[str, "DataSource"] = {}  # filled at the end of this module


@dataclass
class DataConfig(Checked):
    """Keys every dataset has; see conf/data/*.yaml for what each means."""

    GROUP = "data"
    name: str = ruled(MISSING, one_of(DATASETS))
    batch_size: Optional[int] = ruled(MISSING, above(0))  # None (null) = full batch
    normalize: str = ruled(MISSING, one_of(NORMALIZATIONS))
    split_seed: int = ruled(MISSING, at_least(0))
    val_size: float = ruled(MISSING, above(0))  # fraction (< 1) or count (>= 1) of the training pool
    # what records and tables call the data; null = the dataset's own name (DataSource.label), filled in here
    label: Optional[str] = ruled(None, Rule(lambda v: bool(v.strip()), "must be a non-empty name (null: the default)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.label is None and self.name in DATASETS:
            self.label = DATASETS[self.name].label(self)


@dataclass
class DigitsDataConfig(DataConfig):
    test_size: float = ruled(MISSING, within(0, 1))  # fraction of all 1,797 images kept as the test set

    def __post_init__(self) -> None:
        super().__post_init__()
        require("data.val_size", self.val_size, self.val_size < 1, "must be a fraction in (0, 1) for digits")
        require("data.test_size", self.test_size, self.test_size > 0, "must be in (0, 1)")


@dataclass
class RegressionDataConfig(DataConfig):
    n_train: int = ruled(MISSING, at_least(2))  # training points drawn uniformly on [-extent, extent]^2
    extent: float = ruled(MISSING, above(0))
    noise_std: float = ruled(MISSING, at_least(0))  # gaussian noise on train/val targets (not on the test grid)
    test_grid: int = ruled(MISSING, at_least(2))  # the test set is a test_grid x test_grid regular grid


@dataclass
class ImageDataConfig(DataConfig):
    data_dir: str = MISSING
    mirrors: list[str] = field(default_factory=list)  # [] = the canonical mirrors
    timeout_s: float = ruled(MISSING, above(0))
    retries: int = ruled(MISSING, at_least(1))
    train_size: Optional[int] = ruled(None, above(0))  # null = every training image left after validation


@dataclass
class UserDataConfig(DataConfig):
    """Keys of the data a user brings: the task is theirs to state, or read from the targets."""

    task: str = ruled(MISSING, one_of(TASKS))  # auto | classification | regression (auto: data.user.AUTO_RULE)
    test_size: float = ruled(MISSING, above(0))  # fraction (< 1) or count (>= 1) held out for testing, if no test set


@dataclass
class TableDataConfig(UserDataConfig):
    path: str = MISSING  # .csv, .parquet or .npz (arrays x and y)
    target: Optional[str] = None  # the target column (CSV, Parquet)
    test_path: Optional[str] = None  # a test table with the same columns; None: test_size held out of path

    def __post_init__(self) -> None:
        super().__post_init__()
        check_table_path("data.path", user_path(self.path))
        if self.test_path is not None:
            check_table_path("data.test_path", user_path(self.test_path))
        require("data.target", self.target, self.target is not None or user_path(self.path).suffix.lower() == NPZ,
                "name the target column of the table (data.target=<column>)")


@dataclass
class CustomDataConfig(UserDataConfig):
    source: Any = field(default_factory=lambda: {"_target_": MISSING})  # the loader (_target_) and its arguments

    def __post_init__(self) -> None:
        super().__post_init__()
        check_source(self.source)


@dataclass
class IdxDataConfig(UserDataConfig):
    data_dir: str = MISSING  # the dir holding the IDX files

    def __post_init__(self) -> None:
        super().__post_init__()
        data_dir = user_path(self.data_dir)
        require("data.data_dir", str(data_dir), data_dir.is_dir(), "is not a directory")


def _holdout(x: np.ndarray, y: np.ndarray, size: float, seed: int, stratify: bool, key: str):
    """Split off ``size`` (a fraction < 1 or a count) of (x, y); returns (kept, held_out) pairs."""
    from sklearn.model_selection import train_test_split  # scikit-learn takes most of a second to import

    held = size if size < 1 else int(size)
    try:
        x_keep, x_held, y_keep, y_held = train_test_split(
            x, y, test_size=held, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as error:  # more than there is, or a class too small to be in both parts
        raise ConfigError(key, size, f"cannot hold that out of {len(x)} samples "
                          f"({'stratified by class: ' if stratify else ''}{error})") from None
    return (x_keep, y_keep), (x_held, y_held)


def load_digits_splits(cfg: DigitsDataConfig) -> Splits:
    """scikit-learn's 1,797 real 8x8 handwritten digits (pixel values 0..16): offline, seconds to train."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    pool, test = _holdout(images, digits.target, cfg.test_size, cfg.split_seed, True, "data.test_size")
    train, val = _holdout(*pool, cfg.val_size, cfg.split_seed, True, "data.val_size")
    return from_arrays(train, val, test, CLASSIFICATION, num_classes=10)


def regression_target(x: np.ndarray) -> np.ndarray:
    """f(x) = x1 * exp(-x1^2 - x2^2), the surface of the regression studies."""
    return x[:, 0] * np.exp(-x[:, 0] ** 2 - x[:, 1] ** 2)


def regression_grid(cfg: RegressionDataConfig) -> np.ndarray:
    """The test points: a regular test_grid x test_grid grid over the square, x1 varying slowest."""
    axis = np.linspace(-cfg.extent, cfg.extent, cfg.test_grid)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)


def load_regression_splits(cfg: RegressionDataConfig) -> Splits:
    """Noisy samples of f on [-extent, extent]^2 for train/val; a noiseless regular grid for test."""
    rng = np.random.default_rng(cfg.split_seed)
    n_val = int(cfg.val_size) if cfg.val_size >= 1 else max(1, round(cfg.val_size * cfg.n_train))

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-cfg.extent, cfg.extent, size=(n, 2))
        return x, regression_target(x) + rng.normal(0.0, cfg.noise_std, size=n)

    grid = regression_grid(cfg)
    return from_arrays(sample(cfg.n_train), sample(n_val), (grid, regression_target(grid)), REGRESSION)


def load_image_splits(cfg: ImageDataConfig) -> Splits:
    """MNIST / Fashion-MNIST: the official test set stays the test set; validation comes from train."""
    from regsweep.data.images import load_image_dataset

    arrays = load_image_dataset(cfg.name, Path(cfg.data_dir), cfg.mirrors, cfg.timeout_s, cfg.retries)
    pool = (arrays.x_train[:, None, :, :], arrays.y_train)
    train, val = _holdout(*pool, cfg.val_size, cfg.split_seed, True, "data.val_size")
    if cfg.train_size is not None and cfg.train_size < len(train[1]):  # a training-set size study: a stratified subset
        _, train = _holdout(*train, cfg.train_size, cfg.split_seed, True, "data.train_size")
    return from_arrays(train, val, (arrays.x_test[:, None, :, :], arrays.y_test), CLASSIFICATION, num_classes=10)


def image_files_fingerprint(cfg: ImageDataConfig) -> Any:
    from regsweep.data.images import files_fingerprint

    return files_fingerprint(cfg.name, Path(cfg.data_dir))


def user_splits(cfg: UserDataConfig, train: Pair, test: Pair | None, source: str) -> Splits:
    """A user's samples as Splits: the task and classes from the training targets, then (unless the data has its own
    test set) data.test_size held out for testing and data.val_size for validation, stratified for classification."""
    for pair, where in ((train, source), (test, f"{source} (test)")):
        if pair is not None:
            check_samples(*pair, where)
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise DataError(f"{source}: the test samples are {list(test[0].shape[1:])}, the training samples "
                        f"{list(train[0].shape[1:])}")
    targets = targets_of(train[1], cfg.task, source)
    classify = targets.task == CLASSIFICATION
    pool = (train[0], targets.encode(train[1], source))
    if test is None:
        pool, held = _holdout(*pool, cfg.test_size, cfg.split_seed, classify, "data.test_size")
    else:
        held = (test[0], targets.encode(test[1], f"{source} (test)"))
    fit, val = _holdout(*pool, cfg.val_size, cfg.split_seed, classify, "data.val_size")
    return from_arrays(fit, val, held, targets.task, len(targets.classes) or None, targets.names)


@functools.lru_cache(maxsize=64)
def _task_of_file(read: Callable[..., np.ndarray], args: tuple[Any, ...], declared: str, files: Any) -> str:
    """The task of targets read from a file (validation reads only them); read again when ``files`` changed."""
    return targets_of(read(*args), declared, str(args[0])).task


def load_table_splits(cfg: TableDataConfig) -> Splits:
    """A CSV, Parquet or .npz table; its own test table if data.test_path names one."""
    path = user_path(cfg.path)
    train = read_table(path, cfg.target)
    if cfg.test_path is None:
        return user_splits(cfg, (train.x, train.y), None, str(path))
    test = read_test_table(user_path(cfg.test_path), cfg.target, train, path)
    return user_splits(cfg, (train.x, train.y), (test.x, test.y), str(path))


def table_task(cfg: TableDataConfig) -> str:
    path = user_path(cfg.path)
    return _task_of_file(read_target, (path, cfg.target), cfg.task, stamp(path))


def table_fingerprint(cfg: TableDataConfig) -> Any:
    return stamp(user_path(cfg.path), None if cfg.test_path is None else user_path(cfg.test_path))


def load_custom_splits(cfg: CustomDataConfig) -> Splits:
    """Whatever the user's loader returns (arrays, train/test pairs, a Dataset, a LightningDataModule)."""
    loaded = load_custom(cfg.source)
    return user_splits(cfg, loaded.train, loaded.test, f"data.source: {loader_name(cfg.source)}")


def custom_task(cfg: CustomDataConfig) -> str:
    """The declared task, or (auto) the loaded data's: loaded once per process, into the raw splits' cache."""
    return cfg.task if cfg.task != AUTO else raw_splits(cfg).task


def _idx_samples(path: Path) -> np.ndarray:
    """An IDX file's samples; images [N, H, W] get their one channel, [N, 1, H, W]."""
    samples = read_idx(path)
    return samples[:, None] if samples.ndim == 3 else samples


def load_idx_splits(cfg: IdxDataConfig) -> Splits:
    """A user's own IDX files in data.data_dir, found by their headers and names; test files if there are any."""
    files = find_idx_files(user_path(cfg.data_dir))
    train = (_idx_samples(files.train_x), read_idx(files.train_y))
    test = None if files.test_x is None else (_idx_samples(files.test_x), read_idx(files.test_y))
    return user_splits(cfg, train, test, str(files.train_x.parent))


def idx_task(cfg: IdxDataConfig) -> str:
    labels = find_idx_files(user_path(cfg.data_dir)).train_y
    return _task_of_file(read_idx, (labels,), cfg.task, stamp(labels))


def idx_fingerprint(cfg: IdxDataConfig) -> Any:
    data_dir = user_path(cfg.data_dir)
    return stamp(*sorted(data_dir.iterdir())) if data_dir.is_dir() else None


@dataclass(frozen=True)
class DataSource:
    """A dataset: its config schema, what it is for, how to load it, and what tells that its files changed."""

    schema: type[DataConfig]
    task: str | Callable[[Any], str]  # the dataset's task, or how to read it from the data (data.task)
    load: Callable[[Any], Splits]
    fingerprint: Callable[[Any], Any] = lambda cfg: None
    label: Callable[[Any], str] = lambda cfg: cfg.name  # data.label's default
    images: bool | None = True  # samples are images [C, H, W] (model=cnn, augmentation); None: as the data has them
    surface: bool = False  # regression over 2-D inputs whose test set is a grid: predictions.npz draws as a surface


DATASETS.update(
    digits=DataSource(DigitsDataConfig, CLASSIFICATION, load_digits_splits),
    regression=DataSource(RegressionDataConfig, REGRESSION, load_regression_splits, images=False, surface=True),
    mnist=DataSource(ImageDataConfig, CLASSIFICATION, load_image_splits, image_files_fingerprint),
    fashion_mnist=DataSource(ImageDataConfig, CLASSIFICATION, load_image_splits, image_files_fingerprint),
    table=DataSource(TableDataConfig, table_task, load_table_splits, table_fingerprint,
                     lambda cfg: Path(cfg.path).stem, images=False),
    custom=DataSource(CustomDataConfig, custom_task, load_custom_splits, label=lambda cfg: loader_name(cfg.source),
                      images=None),
    idx=DataSource(IdxDataConfig, idx_task, load_idx_splits, idx_fingerprint,
                   lambda cfg: user_path(cfg.data_dir).resolve().name, images=None),
)


def task_of(cfg: DataConfig) -> str:
    """A validated data config's task: the dataset's own, or read from its targets (data.task, cached)."""
    task = DATASETS[cfg.name].task
    return task if isinstance(task, str) else task(cfg)


_RAW_SPLITS: dict[str, tuple[Any, Splits]] = {}  # key -> (files' fingerprint, splits): the one in-memory copy
_CACHE_SIZE = 2
# keys that leave the raw splits as they are
_NOT_IN_THE_DATA = ("batch_size", "normalize", "mirrors", "timeout_s", "retries", "label")


def raw_splits(cfg: DataConfig) -> Splits:
    """The splits before normalization, loaded once per process while their files stay put."""
    key = json.dumps({k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_THE_DATA}, sort_keys=True)
    source = DATASETS[cfg.name]
    cached = _RAW_SPLITS.get(key)
    if cached is None or cached[0] != source.fingerprint(cfg):
        while len(_RAW_SPLITS) >= _CACHE_SIZE:
            _RAW_SPLITS.pop(next(iter(_RAW_SPLITS)))
        splits = source.load(cfg)  # may download files: the fingerprint is taken after
        _RAW_SPLITS[key] = (source.fingerprint(cfg), splits)
    return _RAW_SPLITS[key][1]


def load_splits(cfg: DataConfig) -> Splits:
    """Normalized splits for a data config (the statistics from its training split only)."""
    return normalize(raw_splits(cfg), cfg.normalize)
