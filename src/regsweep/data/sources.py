"""The datasets behind ``data=<name>``: each one's schema, its task and the loader that turns it into Splits.

Adding a dataset is one entry in DATASETS (a schema, a loader, a task) and a YAML file in conf/data/.
Splits are fixed by ``data.split_seed``, independent of the run seed, so the seeds of a sweep
vary initialization and batch order, never which samples are held out. The raw splits of a
dataset are kept in memory once per process, so the jobs and packs of a multirun load it once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from omegaconf import MISSING

from regsweep.data.splits import NORMALIZATIONS, Splits, from_arrays, normalize
from regsweep.metrics import CLASSIFICATION, REGRESSION
from regsweep.schema import Checked, above, at_least, one_of, require, ruled, within

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


def _holdout(x: np.ndarray, y: np.ndarray, size: float, seed: int, stratify: bool):
    """Split off ``size`` (a fraction < 1 or a count) of (x, y); returns (kept, held_out) pairs."""
    from sklearn.model_selection import train_test_split  # scikit-learn takes most of a second to import

    held = size if size < 1 else int(size)
    x_keep, x_held, y_keep, y_held = train_test_split(
        x, y, test_size=held, random_state=seed, stratify=y if stratify else None
    )
    return (x_keep, y_keep), (x_held, y_held)


def load_digits_splits(cfg: DigitsDataConfig) -> Splits:
    """scikit-learn's 1,797 real 8x8 handwritten digits (pixel values 0..16): offline, seconds to train."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    pool, test = _holdout(images, digits.target, cfg.test_size, cfg.split_seed, stratify=True)
    train, val = _holdout(*pool, cfg.val_size, cfg.split_seed, stratify=True)
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
    train, val = _holdout(*pool, cfg.val_size, cfg.split_seed, stratify=True)
    return from_arrays(train, val, (arrays.x_test[:, None, :, :], arrays.y_test), CLASSIFICATION, num_classes=10)


def image_files_fingerprint(cfg: ImageDataConfig) -> Any:
    from regsweep.data.images import files_fingerprint

    return files_fingerprint(cfg.name, Path(cfg.data_dir))


@dataclass(frozen=True)
class DataSource:
    """A dataset: its config schema, what it is for, how to load it, and what tells that its files changed."""

    schema: type[DataConfig]
    task: str
    load: Callable[[Any], Splits]
    fingerprint: Callable[[Any], Any] = lambda cfg: None


DATASETS.update(
    digits=DataSource(DigitsDataConfig, CLASSIFICATION, load_digits_splits),
    regression=DataSource(RegressionDataConfig, REGRESSION, load_regression_splits),
    mnist=DataSource(ImageDataConfig, CLASSIFICATION, load_image_splits, image_files_fingerprint),
    fashion_mnist=DataSource(ImageDataConfig, CLASSIFICATION, load_image_splits, image_files_fingerprint),
)


def task_of(cfg: DataConfig) -> str:
    return DATASETS[cfg.name].task


_RAW_SPLITS: dict[str, tuple[Any, Splits]] = {}  # key -> (files' fingerprint, splits): the one in-memory copy
_CACHE_SIZE = 2
_NOT_IN_THE_DATA = ("batch_size", "normalize", "mirrors", "timeout_s", "retries")  # keys that leave the raw splits as they are


def load_splits(cfg: DataConfig) -> Splits:
    """Normalized splits for a data config; the raw ones are loaded once per process while their files stay put."""
    key = json.dumps({k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_THE_DATA}, sort_keys=True)
    source = DATASETS[cfg.name]
    cached = _RAW_SPLITS.get(key)
    if cached is None or cached[0] != source.fingerprint(cfg):
        while len(_RAW_SPLITS) >= _CACHE_SIZE:
            _RAW_SPLITS.pop(next(iter(_RAW_SPLITS)))
        splits = source.load(cfg)  # may download files: the fingerprint is taken after
        _RAW_SPLITS[key] = (source.fingerprint(cfg), splits)
    return normalize(_RAW_SPLITS[key][1], cfg.normalize)
