"""The rules for data a user brings (a table, a loader of their own, their own IDX files): one for all of them.

The task comes from ``data.task`` or, with ``auto``, from the targets (:data:`AUTO_RULE`); class labels
become 0..k-1 in sorted order, their names kept; inputs must be finite numbers. Every problem is one
:class:`~regsweep.errors.DataError` line naming where it is.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regsweep.errors import DataError
from regsweep.metrics import CLASSIFICATION, REGRESSION

log = logging.getLogger(__name__)

Pair = tuple[np.ndarray, np.ndarray]  # inputs and targets of the same samples

AUTO = "auto"
TASKS = (AUTO, CLASSIFICATION, REGRESSION)  # data.task
AUTO_MAX_CLASSES = 20  # data.task=auto: whole-number targets with at most this many distinct values are classes
AUTO_RULE = (f"targets that are text or booleans, or whole numbers (an integer type, or floats without a fraction) "
             f"with at most {AUTO_MAX_CLASSES} distinct values, are class labels (classification); any other numbers "
             "are regression targets")


def user_path(path: str) -> Path:
    """A path the user gave, relative to the directory the command runs in (also in a job that runs elsewhere)."""
    from hydra.utils import to_absolute_path

    return Path(to_absolute_path(os.path.expanduser(path)))


def _is_text(y: np.ndarray) -> bool:
    return y.dtype.kind in "OUSb"  # object (strings), unicode, bytes, bool


def _is_whole(y: np.ndarray) -> bool:
    return y.dtype.kind in "iu" or (y.dtype.kind == "f" and bool(np.all(np.mod(y, 1) == 0)))


def infer_task(y: np.ndarray) -> tuple[str, str]:
    """``data.task=auto``: the :data:`AUTO_RULE` (several targets per sample are always regression), and why."""
    if y.ndim > 1 and y.shape[1] > 1:
        return REGRESSION, f"{y.shape[1]} targets per sample"
    if _is_text(y):
        return CLASSIFICATION, "boolean targets" if y.dtype.kind == "b" else "text targets"
    if not _is_whole(y):
        return REGRESSION, "targets with fractions"
    distinct = len(np.unique(y))
    if distinct <= AUTO_MAX_CLASSES:
        return CLASSIFICATION, f"{distinct} distinct whole numbers, at most {AUTO_MAX_CLASSES}"
    return REGRESSION, f"{distinct} distinct whole numbers, more than {AUTO_MAX_CLASSES}"


def _name(value: Any) -> str:
    """A class's name as the data spells it (``3``, not ``3.0``, for whole floats read from a CSV)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Targets:
    """How a dataset's targets train: the task and, for classification, the labels in code order (code i is
    ``classes[i]``)."""

    task: str
    classes: tuple[Any, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(_name(c) for c in self.classes)

    def encode(self, y: np.ndarray, source: str) -> np.ndarray:
        """Codes 0..k-1 (int64) for classification, float32 [N, k] for regression; unknown labels are refused."""
        if self.task == REGRESSION:
            return y.astype(np.float32).reshape(len(y), -1)
        code = {label: i for i, label in enumerate(self.classes)}  # 1 and 1.0 are the same class, as in the data
        codes = [code.get(label, -1) for label in _labels(y).tolist()]
        if -1 in codes:
            bad = codes.index(-1)
            raise DataError(f"{source}: label {_name(_labels(y)[bad])!r} of sample {bad} is not a class of the "
                            f"training data ({', '.join(self.names)})")
        return np.asarray(codes, dtype=np.int64)


def _labels(y: np.ndarray) -> np.ndarray:
    """One label per sample; labels of mixed kinds (text and numbers) are compared as text."""
    y = y.reshape(len(y)) if y.ndim > 1 and y.shape[1] == 1 else y
    return y.astype(str) if y.dtype.kind == "O" else y


def _first_text(y: np.ndarray) -> str:
    """The first target that does not read as a number, and where it is."""
    for index, value in enumerate(y.reshape(-1).tolist()):
        try:
            float(value)
        except (TypeError, ValueError):
            return f"{value!r} at sample {index}"
    return f"{y.dtype} values"


def first_missing(y: np.ndarray) -> int | None:
    """The index of the first missing target (NaN, None), or None."""
    if y.dtype.kind == "f":
        missing = np.isnan(y).reshape(len(y), -1).any(axis=1)
    elif y.dtype.kind == "O":
        missing = np.array([v is None or v != v for v in y.reshape(-1)], dtype=bool)
    else:
        return None
    return int(np.flatnonzero(missing)[0]) if missing.any() else None


def targets_of(y: np.ndarray, declared: str, source: str) -> Targets:
    """The task ``data.task`` declares (or ``auto`` infers from ``y``) and, for classification, the sorted classes."""
    where = first_missing(y)
    if where is not None:
        raise DataError(f"{source}: the target of sample {where} is missing")
    task = declared
    if declared == AUTO:
        task, why = infer_task(y)
        log.info("%s: data.task=auto: %s (%s; set data.task to say otherwise)", source, task, why)
    if task == REGRESSION:
        if y.dtype.kind not in "iuf":
            raise DataError(f"{source}: regression needs numeric targets, got {_first_text(y)}")
        return Targets(REGRESSION)
    if y.ndim > 1 and y.shape[1] > 1:
        raise DataError(f"{source}: classification needs one label per sample, got targets of shape {list(y.shape)}")
    classes = tuple(np.unique(_labels(y)).tolist())
    if len(classes) < 2:
        raise DataError(f"{source}: classification needs at least 2 classes, the targets hold only "
                        f"{', '.join(map(_name, classes)) or 'none'}")
    return Targets(CLASSIFICATION, classes)


def as_array(value: Any, what: str, source: str) -> np.ndarray:
    """An array from a numpy array, a torch tensor or a (nested) list; ragged or object data is refused."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise DataError(f"{source}: {what} is not an array ({error})") from None
    if array.ndim == 0:
        raise DataError(f"{source}: {what} must hold one entry per sample, got the single value {value!r}")
    return array


def check_inputs(x: np.ndarray, source: str) -> None:
    """Inputs must be finite numbers: a NaN would turn the first loss it meets into NaN."""
    if x.dtype.kind not in "iufb":
        raise DataError(f"{source}: inputs must be numbers, got {x.dtype} values")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{source}: the inputs of sample {int(np.flatnonzero(bad)[0])} are not all finite "
                            "(NaN or inf)")


def check_samples(x: np.ndarray, y: np.ndarray, source: str) -> None:
    """Inputs and targets pair up one to one, and there is something to train on."""
    if len(x) != len(y):
        raise DataError(f"{source}: {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise DataError(f"{source}: no samples")
    check_inputs(x, source)
