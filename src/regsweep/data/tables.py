"""A table of samples a user brings (``data=table``): CSV or Parquet, one row per sample, or ``.npz`` arrays x and y.

pandas (and pyarrow, for Parquet) are imported only when a table is read: a job on another dataset
never pays their import time. The features are the numeric columns other than the target; a column
of text alone is left out (and logged), a numeric column with a bad or missing cell is refused
naming the column and the row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from regsweep.errors import ConfigError, DataError
from regsweep.data.user import as_array

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A table's samples: inputs [N, features] (or the .npz's own sample shape), targets [N] as stored."""

    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]  # the input columns, in order (a .npz: empty)


def _read_csv(path: Path, columns: list[str] | None = None) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_csv(path, usecols=columns)


def _read_parquet(path: Path, columns: list[str] | None = None) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_parquet(path, columns=columns)


def _csv_columns(path: Path) -> list[str]:
    import pandas as pd

    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [name for name in pq.read_schema(path).names if not name.startswith("__index_level_")]


@dataclass(frozen=True)
class FrameFormat:
    """A file format pandas reads into a frame: how to read it, its column names alone, and how to name a row."""

    read: Callable[..., "pd.DataFrame"]
    columns: Callable[[Path], list[str]]
    first_line: int | None  # the file's line of row 0 (CSV: 2, after the header), None where rows have no lines

    def row(self, index: int) -> str:
        return f"row {index}" + (f" (line {index + self.first_line})" if self.first_line is not None else "")


FRAME_FORMATS: dict[str, FrameFormat] = {
    ".csv": FrameFormat(_read_csv, _csv_columns, first_line=2),
    ".parquet": FrameFormat(_read_parquet, _parquet_columns, first_line=None),
}
NPZ = ".npz"  # arrays x [N, ...] and y [N]
SUFFIXES = (*FRAME_FORMATS, NPZ)  # data.path, data.test_path


def check_table_path(key: str, path: Path) -> None:
    """What validation can tell without reading: the file is there, not empty, and of a format we read."""
    if not path.is_file():
        raise ConfigError(key, str(path), "no such file (a relative path starts in the directory the command runs in)")
    if path.suffix.lower() not in SUFFIXES:
        raise ConfigError(key, str(path), f"unknown suffix {path.suffix or '(none)'!r}: a table is one of "
                          f"{', '.join(SUFFIXES)}")
    if path.stat().st_size == 0:
        raise ConfigError(key, str(path), "is an empty file")


def _frame_format(path: Path) -> FrameFormat:
    return FRAME_FORMATS[path.suffix.lower()]


def _read_frame(path: Path, columns: list[str] | None = None) -> "pd.DataFrame":
    """The frame, or a DataError saying why pandas could not read it."""
    try:
        frame = _frame_format(path).read(path, columns)
    except Exception as error:  # pandas' and pyarrow's parser errors share no base class
        raise DataError(f"{path}: cannot read it as {path.suffix.lstrip('.').upper()} "
                        f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    if frame.empty:
        raise DataError(f"{path}: no data rows")
    return frame


def _require_target(path: Path, target: str | None) -> str:
    columns = _frame_format(path).columns(path)
    if target not in columns:
        raise ConfigError("data.target", target, f"is not a column of {path}; its columns: {', '.join(columns)}")
    return target


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if not {"x", "y"} <= set(arrays.files):
                raise DataError(f"{path}: a .npz table holds arrays x (inputs) and y (targets); it has "
                                f"{', '.join(arrays.files) or 'none'}")
            return arrays["x"], arrays["y"]
    except (OSError, ValueError) as error:  # not a zip, or arrays of Python objects
        raise DataError(f"{path}: cannot read it as .npz ({error})") from None


def read_target(path: Path, target: str | None) -> np.ndarray:
    """The target column alone (what validation needs to settle the task), as stored."""
    if path.suffix.lower() == NPZ:
        return as_array(_npz(path)[1], "y", str(path))
    column = _read_frame(path, [_require_target(path, target)])[target]
    return _column_values(column, path, "target")


def _column_values(column: "pd.Series", path: Path, what: str) -> np.ndarray:
    """A column as a numpy array, refused at its first missing cell."""
    missing = column.isna().to_numpy()
    if missing.any():
        row = _frame_format(path).row(int(np.flatnonzero(missing)[0]))
        raise DataError(f"{path}: {what} column {column.name!r} has a missing value at {row}")
    values = column.to_numpy()
    return values.astype(str) if values.dtype.kind == "O" else values  # text (pandas' str dtype gives objects)


def _feature(column: "pd.Series", path: Path) -> np.ndarray | None:
    """A feature column as float32, or None for a column of text alone (not a feature)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return _column_values(column, path, "feature").astype(np.float32)
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.isna().all():
        return None
    unreadable = (numbers.isna() & column.notna()).to_numpy()
    if unreadable.any():
        row = int(np.flatnonzero(unreadable)[0])
        raise DataError(f"{path}: feature column {column.name!r} is not numeric: {column.iloc[row]!r} at "
                        f"{_frame_format(path).row(row)}")
    return _column_values(numbers, path, "feature").astype(np.float32)


def _frame_table(path: Path, target: str | None) -> Table:
    frame = _read_frame(path)
    target = _require_target(path, target)
    y = _column_values(frame[target], path, "target")
    features: dict[str, np.ndarray] = {}
    for name in frame.columns:
        if name != target and (values := _feature(frame[name], path)) is not None:
            features[str(name)] = values
    text = [str(name) for name in frame.columns if name != target and str(name) not in features]
    if text:
        log.warning("%s: leaving out the columns of text %s (features are the numeric columns)", path, ", ".join(text))
    unnamed = [name for name in features if name.startswith("Unnamed: ")]
    if unnamed:  # DataFrame.to_csv writes the index unless told index=False: row numbers would be a feature
        log.warning("%s: training on the unnamed columns %s: if they are a saved index, drop them", path,
                    ", ".join(unnamed))
    if not features:
        raise DataError(f"{path}: no numeric feature column besides the target {target!r} "
                        f"(columns: {', '.join(map(str, frame.columns))})")
    return Table(np.stack(list(features.values()), axis=1), y, tuple(features))


def read_table(path: Path, target: str | None) -> Table:
    """Every sample of a table: numeric inputs and targets as stored."""
    if path.suffix.lower() == NPZ:
        x, y = _npz(path)
        return Table(as_array(x, "x", str(path)), as_array(y, "y", str(path)), ())
    return _frame_table(path, target)


def read_test_table(path: Path, target: str | None, train: Table, train_path: Path) -> Table:
    """A test table, refused unless it has the training table's columns (or sample shape); features in its order."""
    if path.suffix.lower() != NPZ and train.features:
        theirs, ours = _frame_format(path).columns(path), _frame_format(train_path).columns(train_path)
        missing, extra = [c for c in ours if c not in theirs], [c for c in theirs if c not in ours]
        if missing or extra:
            raise DataError(f"{path}: its columns differ from {train_path}'s: missing {', '.join(missing) or 'none'}; "
                            f"extra {', '.join(extra) or 'none'}")
    table = read_table(path, target)
    if set(table.features) != set(train.features):
        raise DataError(f"{path}: its numeric columns differ from {train_path}'s: {', '.join(table.features)} "
                        f"instead of {', '.join(train.features)}")
    order = [table.features.index(name) for name in train.features]
    return Table(table.x[:, order], table.y, train.features) if order else table


def stamp(*paths: Path | None) -> tuple[Any, ...]:
    """Path, size and mtime of each file: cheap to take, changes when a file does."""
    stamps = []
    for path in paths:
        if path is not None and path.exists():
            stat = path.stat()
            stamps.append((str(path.resolve()), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)
