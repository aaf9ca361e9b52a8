"""Strict readers for the two layouts MNIST-style data ships in: IDX files (raw or gzipped) and Kaggle CSVs, and
the search for a user's own IDX files in a dir (by their headers and names, whatever the files are called).

Every malformed input raises :class:`DataError` naming the file and what was expected.
"""

from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from regsweep.errors import DataError

# The IDX dtype codes; multi-byte values are big-endian.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
IMAGE_SIDE = 28
NUM_CLASSES = 10
KAGGLE_HEADER = ["label", *(f"pixel{i}" for i in range(1, IMAGE_SIDE * IMAGE_SIDE + 1))]


def _file_bytes(path: Path) -> bytes:
    """The decompressed content; a broken gzip almost always means an interrupted download."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: corrupt or truncated gzip file ({exc}); delete it and download it again"
        ) from None


def _is_idx_magic(data: bytes) -> bool:
    return len(data) >= 4 and data[:2] == b"\x00\x00" and data[2] in IDX_DTYPES


def read_idx(path: Path) -> np.ndarray:
    """Decode an IDX file (``.gz`` or raw) into an array in native byte order.

    The payload size must match the header's dimensions exactly, so truncated downloads and
    files of another format are caught here rather than as odd shapes later.
    """
    path = Path(path)
    data = _file_bytes(path)
    if not _is_idx_magic(data):
        codes = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DataError(
            f"{path}: not an IDX file: expected magic 00 00 <dtype code: {codes}> <ndim>, "
            f"got {data[:4].hex(' ') or 'an empty file'}"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{path}: truncated IDX header: expected {header_size} bytes for {ndim} dims, got {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = header_size + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "too long"
        raise DataError(
            f"{path}: IDX payload {problem}: header declares shape {list(dims)} of {dtype.name}, "
            f"expected {expected} bytes, got {len(data)}; delete the file and download it again"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(dims).astype(dtype.newbyteorder("="))


def check_images_labels(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Reject pairs that would silently train on garbage: wrong image size, label range or counts."""
    ok_images = images.ndim == 3 and images.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE) and images.dtype == np.uint8
    ok_labels = labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer)
    in_range = ok_labels and (labels.size == 0 or (labels.min() >= 0 and labels.max() < NUM_CLASSES))
    if not (ok_images and in_range and len(images) == len(labels)):
        raise DataError(
            f"{source}: wrong IDX shape: expected uint8 images [N, {IMAGE_SIDE}, {IMAGE_SIDE}] and integer "
            f"labels [N] in 0..{NUM_CLASSES - 1}, got images {list(images.shape)} {images.dtype} "
            f"and labels {list(labels.shape)} {labels.dtype}"
            + (f" in {labels.min()}..{labels.max()}" if ok_labels and labels.size else "")
        )


def read_kaggle_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read Kaggle's ``label,pixel1..pixel784`` CSV into uint8 images [N, 28, 28] and int64 labels [N].

    numpy parses the whole file in one call (seconds for 60,000 rows); only when that finds a
    problem is the file scanned line by line, to say exactly which line is wrong.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            header = handle.readline().strip().split(",")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read file ({exc})") from None
    if header != KAGGLE_HEADER:
        raise DataError(
            f"{path}: line 1: expected the Kaggle header 'label,pixel1,...,pixel{len(KAGGLE_HEADER) - 1}', "
            f"got {','.join(header[:3])}{',...' if len(header) > 3 else ''} ({len(header)} columns)"
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")
            table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int16, ndmin=2, encoding="utf-8")
    except ValueError:
        _raise_first_bad_line(path)
    if table.size == 0:
        raise DataError(f"{path}: expected data rows after the header, found none")
    if table.shape[1] != len(KAGGLE_HEADER) or not _values_in_range(table):
        _raise_first_bad_line(path)
    images = table[:, 1:].astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return images, table[:, 0].astype(np.int64)


def _values_in_range(table: np.ndarray) -> bool:
    labels, pixels = table[:, 0], table[:, 1:]
    return bool(labels.min() >= 0 and labels.max() < NUM_CLASSES and pixels.min() >= 0 and pixels.max() <= 255)


def _raise_first_bad_line(path: Path) -> NoReturn:
    """Find the first data line that is not ``label,784 pixels`` in range and raise naming it."""
    with path.open(encoding="utf-8") as handle:
        handle.readline()
        for number, line in enumerate(handle, start=2):
            fields = line.strip().split(",")
            if fields == [""]:
                continue
            if len(fields) != len(KAGGLE_HEADER):
                raise DataError(
                    f"{path}: line {number}: expected {len(KAGGLE_HEADER)} columns, got {len(fields)}"
                )
            for column, (name, text) in enumerate(zip(KAGGLE_HEADER, fields), start=1):
                high = NUM_CLASSES - 1 if column == 1 else 255
                if not (text.strip().isdecimal() and int(text) <= high):
                    raise DataError(
                        f"{path}: line {number}, column {column} ({name}): "
                        f"expected an integer in 0..{high}, got {text!r}"
                    )
    raise DataError(f"{path}: cannot parse as a Kaggle CSV of integers (numpy rejected it; no bad line found)")


# --- a user's own IDX files (data=idx) ----------------------------------------------------------

SPLIT_WORDS = {"train": ("train",), "test": ("t10k", "test")}  # a file's split, from words in its name


def read_idx_header(path: Path) -> tuple[int, ...] | None:
    """The dims an IDX file's header declares, or None when the file is not IDX (reads a few bytes only)."""
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as handle:
            magic = handle.read(4)
            if not _is_idx_magic(magic):
                return None
            dims = handle.read(4 * magic[3])
    except (OSError, EOFError, zlib.error):  # unreadable, or a .gz that is not gzip: not an IDX file we can use
        return None
    return struct.unpack(f">{magic[3]}I", dims) if len(dims) == 4 * magic[3] else None


def split_of(name: str) -> str | None:
    """``train`` or ``test`` from a file name (MNIST's ``train-*`` and ``t10k-*``), None if it names neither."""
    lowered = name.lower()
    found = [split for split, words in SPLIT_WORDS.items() if any(word in lowered for word in words)]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class IdxFiles:
    """A dir's IDX files by role: samples (>= 2 dims, [N, ...]) and targets (1 dim, [N]) of train and test."""

    train_x: Path
    train_y: Path
    test_x: Path | None = None
    test_y: Path | None = None


_ROLE = {"x": "samples", "y": "targets"}


def find_idx_files(data_dir: Path) -> IdxFiles:
    """The train (and, if present, test) samples and targets among a dir's files, told apart by their IDX headers
    (1 dim: targets; more: samples) and names (``train``; ``t10k`` or ``test``), never by checksum."""
    headers = {path: dims for path in sorted(p for p in data_dir.iterdir() if p.is_file())
               if (dims := read_idx_header(path))}
    found: dict[str, list[Path]] = {}
    for path, dims in headers.items():
        if (split := split_of(path.name)) is not None:
            found.setdefault(f"{split}_{'y' if len(dims) == 1 else 'x'}", []).append(path)
    for role, paths in found.items():
        if len(paths) > 1:
            split, kind = role.split("_")
            raise DataError(f"{data_dir}: {len(paths)} IDX files of {split} {_ROLE[kind]} "
                            f"({', '.join(p.name for p in paths)}): keep one")
    roles = {role: paths[0] for role, paths in found.items()}
    for split in SPLIT_WORDS:
        _check_pair(data_dir, split, roles.get(f"{split}_x"), roles.get(f"{split}_y"), headers)
    if "train_x" not in roles:
        raise DataError(f"{data_dir}: no IDX files of training samples and targets: data=idx looks for IDX files "
                        "(MNIST's format, raw or .gz) with 'train' in their names, and 't10k' or 'test' for a test "
                        f"set; IDX files there: {', '.join(p.name for p in headers) or 'none'}")
    return IdxFiles(**roles)


def _check_pair(data_dir: Path, split: str, x: Path | None, y: Path | None,
                headers: dict[Path, tuple[int, ...]]) -> None:
    """A split's samples and targets come together and in the same number."""
    if (x is None) != (y is None):
        have, lacking = ("x", "y") if y is None else ("y", "x")
        raise DataError(f"{data_dir}: {(x or y).name} holds the {split} {_ROLE[have]}, but no IDX file of {split} "
                        f"{_ROLE[lacking]} is there (1 dim for targets, more for samples; '{split}' in its name)")
    if x is not None and y is not None and headers[x][0] != headers[y][0]:
        raise DataError(f"{data_dir}: {x.name} holds {headers[x][0]} samples but {y.name} {headers[y][0]} targets")
