"""Data from a loader of the user's own (``data=custom data.source._target_=mydata.load``), materialized once.

The loader is whatever ``data.source._target_`` names (a function or a class, called with the other
keys of ``data.source``), imported from the directory the command runs in. It may return arrays
``(x, y)``, train and test pairs ``((x_train, y_train), (x_test, y_test))``, a map-style torch
``Dataset`` of ``(x, y)`` samples, or a ``LightningDataModule`` (its train and, if it has one, test
dataloaders). Datasets and data modules are read once into arrays, after checking that they fit in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from regsweep.data.user import Pair, as_array
from regsweep.errors import ConfigError, DataError
from regsweep.instantiate import TARGET, check_arguments, instantiate_trusted, target_class

LOADER_RETURNS = ("arrays (x, y), train and test pairs ((x_train, y_train), (x_test, y_test)), a torch Dataset of "
                  "(x, y) samples or a LightningDataModule")
MATERIALIZE_BATCH = 1024  # samples a Dataset is read in at a time
TENSOR_BYTES = 4  # a materialized value, as float32 inputs (int64 labels are rounded up with them)


@dataclass(frozen=True)
class Loaded:
    """What a loader gave: the training samples, and its own test samples if it has them."""

    train: Pair
    test: Pair | None


def loader_name(source: Any) -> str:
    """The loader's display name: what ``data.source._target_`` names (``mydata.load``)."""
    return str(source.get(TARGET)) if isinstance(source, dict) else "custom"


def check_source(source: Any) -> None:
    """Validation: ``data.source`` names a loader that imports and takes the arguments given (nothing is called)."""
    from omegaconf import OmegaConf

    if not isinstance(source, dict) or source.get(TARGET) is None:
        raise ConfigError("data.source._target_", None, "name your loader: data.source._target_=mymodule.load "
                          "(a function or class importable from the directory the command runs in)")
    loader = target_class("data.source", str(source[TARGET]))
    check_arguments("data.source", loader, OmegaConf.create(source))


def load_custom(source: dict[str, Any]) -> Loaded:
    """Call the loader and read what it returns into arrays."""
    name = loader_name(source)
    returned = instantiate_trusted(source, _convert_="all")
    return _interpret(returned, name)


def _interpret(value: Any, name: str) -> Loaded:
    from lightning import LightningDataModule
    from torch.utils.data import Dataset

    if isinstance(value, LightningDataModule):
        return _from_datamodule(value, name)
    if isinstance(value, Dataset):
        return Loaded(_from_dataset(value, name), None)
    if isinstance(value, (tuple, list)) and len(value) == 2:
        first, second = value
        if all(isinstance(part, tuple) and len(part) == 2 for part in value):  # pairs are tuples, data may be lists
            return Loaded(_pair(first, f"{name} (train)"), _pair(second, f"{name} (test)"))
        return Loaded(_pair(value, name), None)
    raise DataError(f"data.source: {name} returned {_kind(value)}; a loader returns {LOADER_RETURNS}")


def _kind(value: Any) -> str:
    kind = type(value).__name__
    return f"a {kind} of {len(value)}" if isinstance(value, (tuple, list, dict)) else f"a {kind}"


def _pair(value: Any, source: str) -> Pair:
    return as_array(value[0], "x", source), as_array(value[1], "y", source)


def _from_dataset(dataset: Any, name: str, collate: Any = None) -> Pair:
    """A map-style Dataset read once in index order, refused up front when one sample times its length does not fit
    in memory."""
    from torch.utils.data import DataLoader

    try:
        n = len(dataset)
    except TypeError:
        raise DataError(f"data.source: {name} returned a {type(dataset).__name__} without len(): only a map-style "
                        "Dataset (with __len__ and __getitem__) can be read into memory") from None
    if n == 0:
        raise DataError(f"data.source: {name} returned an empty {type(dataset).__name__}")
    check_fits(_sample_values(dataset[0], name) * n, f"{n} samples", name)
    return _materialize(DataLoader(dataset, batch_size=MATERIALIZE_BATCH, collate_fn=collate), name)


def _from_datamodule(module: Any, name: str) -> Loaded:
    """A LightningDataModule's train (and test, if it defines one) samples, read once through its own loaders."""
    from lightning import LightningDataModule

    module.prepare_data()
    module.setup("fit")
    train = _loader_samples(module.train_dataloader(), f"{name} (train_dataloader)")
    if type(module).test_dataloader is LightningDataModule.test_dataloader:
        return Loaded(train, None)
    module.setup("test")
    return Loaded(train, _loader_samples(module.test_dataloader(), f"{name} (test_dataloader)"))


def _loader_samples(loader: Any, source: str) -> Pair:
    """A dataloader's samples: its map-style dataset in index order (a shuffling loader would give each process
    another split), else its batches, refused up front when the first batch times their number does not fit."""
    from torch.utils.data import DataLoader, IterableDataset

    if isinstance(loader, DataLoader) and not isinstance(loader.dataset, IterableDataset):
        return _from_dataset(loader.dataset, source, loader.collate_fn)
    batches = iter(loader)
    first = next(batches, None)
    if first is None:
        raise DataError(f"data.source: {source} yields no batches")
    try:
        count = len(loader)
    except TypeError:
        count = 1  # an iterable loader: only its first batch can be measured before reading it
    check_fits(_sample_values(first, source) * count, f"{count} batches", source)
    return _materialize(_chain(first, batches), source)


def _chain(first: Any, rest: Iterable[Any]) -> Iterable[Any]:
    yield first
    yield from rest


def _sample_values(sample: Any, source: str) -> int:
    """How many values one sample (or batch) ``(x, y)`` holds."""
    x, y = _split(sample, source)
    return sum(int(np.size(part.detach().cpu().numpy() if hasattr(part, "detach") else part)) for part in (x, y))


def _split(sample: Any, source: str) -> tuple[Any, Any]:
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
        raise DataError(f"data.source: {source} gives samples of {_kind(sample)}; a sample (or batch) is a pair "
                        "(x, y)")
    return sample[0], sample[1]


def _materialize(batches: Iterable[Any], source: str) -> Pair:
    xs, ys = [], []
    for batch in batches:
        x, y = _split(batch, source)
        xs.append(as_array(x, "x", source))
        ys.append(as_array(y, "y", source))
    return _pair((np.concatenate(xs), np.concatenate(ys)), source)


def check_fits(values: int, what: str, source: str) -> None:
    """Refuse data that would not fit in the memory a job may use (before reading it)."""
    import torch

    from regsweep.packing import CPU_MEMORY_SHARE, memory_budget

    need, budget = values * TENSOR_BYTES, memory_budget(torch.device("cpu"))
    if need > budget:
        raise DataError(f"data.source: {source} is too large to hold in memory: {what} take about {_gib(need)} as "
                        f"tensors, and a job may use {_gib(budget)} ({CPU_MEMORY_SHARE:.0%} of the memory available "
                        "now); load a subset of it")


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"
