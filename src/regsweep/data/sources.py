"""The datasets behind ``data=<name>``: each turns its config into normalized train/val/test Splits.

Splits are fixed by ``data.split_seed``, independent of the run seed, so the seeds of a sweep
vary initialization and batch order, never which samples are held out.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.model_selection import train_test_split

from regsweep.config import DataConfig, DigitsDataConfig, ImageDataConfig, RegressionDataConfig
from regsweep.data.splits import CLASSIFICATION, REGRESSION, Splits, from_arrays, normalize


def _holdout(x: np.ndarray, y: np.ndarray, size: float, seed: int, stratify: bool):
    """Split off ``size`` (a fraction < 1 or a count) of (x, y); returns (kept, held_out) pairs."""
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


def load_regression_splits(cfg: RegressionDataConfig) -> Splits:
    """Noisy samples of f on [-extent, extent]^2 for train/val; a noiseless regular grid for test."""
    rng = np.random.default_rng(cfg.split_seed)
    n_val = int(cfg.val_size) if cfg.val_size >= 1 else max(1, round(cfg.val_size * cfg.n_train))

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.uniform(-cfg.extent, cfg.extent, size=(n, 2))
        return x, regression_target(x) + rng.normal(0.0, cfg.noise_std, size=n)

    axis = np.linspace(-cfg.extent, cfg.extent, cfg.test_grid)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return from_arrays(sample(cfg.n_train), sample(n_val), (grid, regression_target(grid)), REGRESSION)


def load_image_splits(cfg: ImageDataConfig) -> Splits:
    """MNIST / Fashion-MNIST: the official test set stays the test set; validation comes from train."""
    from regsweep.data.images import load_image_dataset

    arrays = load_image_dataset(cfg.name, Path(cfg.data_dir), cfg.mirrors, cfg.timeout_s, cfg.retries)
    pool = (arrays.x_train[:, None, :, :], arrays.y_train)
    train, val = _holdout(*pool, cfg.val_size, cfg.split_seed, stratify=True)
    return from_arrays(train, val, (arrays.x_test[:, None, :, :], arrays.y_test), CLASSIFICATION, num_classes=10)


LOADERS: dict[str, Callable[..., Splits]] = {
    "digits": load_digits_splits,
    "regression": load_regression_splits,
    "mnist": load_image_splits,
    "fashion_mnist": load_image_splits,
}


_RAW_SPLITS: dict[str, Splits] = {}  # in-process cache shared by the jobs of a multirun
_CACHE_SIZE = 2
_APPLIED_LATER = ("batch_size", "batches_per_step", "normalize")  # do not change the raw splits


def load_splits(cfg: DataConfig) -> Splits:
    """Normalized splits for a data config; raw splits are cached so the jobs of a sweep load once."""
    key = json.dumps({k: v for k, v in asdict(cfg).items() if k not in _APPLIED_LATER}, sort_keys=True)
    if key not in _RAW_SPLITS:
        while len(_RAW_SPLITS) >= _CACHE_SIZE:
            _RAW_SPLITS.pop(next(iter(_RAW_SPLITS)))
        _RAW_SPLITS[key] = LOADERS[cfg.name](cfg)
    return normalize(_RAW_SPLITS[key], cfg.normalize)
