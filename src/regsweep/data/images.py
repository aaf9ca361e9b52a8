"""MNIST and Fashion-MNIST as uint8 arrays, decoded once per data dir (the in-memory copy lives in sources).

Lookup order: the decoded cache ``<data_dir>/decoded.npz``; the four IDX ``.gz`` files
(downloaded when missing, checked by md5); for Fashion-MNIST, Kaggle's CSVs when the IDX files are not
all there, checked to hold the canonical set. Data of one's own goes through data=table or data=idx.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from regsweep.data.download import DATASETS, ensure_files, md5_of, writable_dir
from regsweep.data.idx import check_images_labels, read_idx, read_kaggle_csv
from regsweep.errors import ConfigError, DataError
from regsweep.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_FILE = "decoded.npz"
CACHE_VERSION = 2  # 2: Kaggle CSVs are checked to be the canonical set; caches of unchecked ones are decoded again
KAGGLE_TRAIN, KAGGLE_TEST = "fashion-mnist_train.csv", "fashion-mnist_test.csv"
IDX_TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
IDX_TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@dataclass(frozen=True, eq=False)
class ImageArrays:
    """A dataset's official train and test sets: images uint8 [N, 28, 28], labels int64 [N].

    Shared by every job of a process that loads the same data dir: copy before modifying in place.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


_ARRAY_NAMES = tuple(f.name for f in fields(ImageArrays))
# Fashion-MNIST's canonical train and test sets as set_digest()s (of the IDX files whose md5 download.py checks):
# Kaggle's CSVs must hold exactly these samples, in whatever order
FASHION_MNIST_SET_DIGESTS = {"train": "674bad5b6fd19a85d51c78d7badc0fef", "test": "f3790bc43c345024af53b4003b9a9108"}
Fingerprint = tuple[tuple[str, int, int], ...]


def load_image_dataset(
    name: str,
    data_dir: Path,
    mirrors: Sequence[str] | None = None,
    timeout_s: float = 30,
    retries: int = 2,
) -> ImageArrays:
    """Load ``mnist`` or ``fashion_mnist`` from ``data_dir``; empty ``mirrors`` means the default ones."""
    if name not in DATASETS:
        raise ConfigError("data.name", name, f"image datasets are {', '.join(DATASETS)}")
    data_dir = Path(data_dir).expanduser().resolve()
    arrays = _read_cache(data_dir, name)
    if arrays is None:
        arrays, raw_md5 = _decode(data_dir, name, mirrors or DATASETS[name].mirrors, timeout_s, retries)
        _write_cache(data_dir, name, arrays, raw_md5)
    return arrays


def _raw_file_names(name: str) -> list[str]:
    kaggle = [KAGGLE_TRAIN, KAGGLE_TEST] if name == "fashion_mnist" else []
    return [*DATASETS[name].files, *kaggle]


def files_fingerprint(name: str, data_dir: Path) -> Fingerprint:
    """Size and mtime of every file a load could read: cheap to take, changes when any file does."""
    data_dir = Path(data_dir).expanduser().resolve()
    fingerprint = []
    for file in [CACHE_FILE, *_raw_file_names(name)]:
        path = data_dir / file
        if path.exists():
            stat = path.stat()
            fingerprint.append((file, stat.st_size, stat.st_mtime_ns))
    return tuple(fingerprint)


def _decode(
    data_dir: Path, name: str, mirrors: Sequence[str], timeout_s: float, retries: int
) -> tuple[ImageArrays, dict[str, str]]:
    """Decode the raw files; returns the arrays and the md5 of every raw file they came from."""
    files = DATASETS[name].files
    kaggle = [data_dir / KAGGLE_TRAIN, data_dir / KAGGLE_TEST]
    idx_complete = all((data_dir / f).exists() for f in files)
    if name == "fashion_mnist" and not idx_complete and all(p.exists() for p in kaggle):
        log.info("decoding the Kaggle CSVs in %s", data_dir)
        (x_train, y_train), (x_test, y_test) = (read_kaggle_csv(p) for p in kaggle)
        _check_canonical_set(data_dir, {"train": (x_train, y_train), "test": (x_test, y_test)})
        raw_md5 = {p.name: md5_of(p) for p in kaggle}
        sources = (str(kaggle[0]), str(kaggle[1]))
    else:
        paths = ensure_files(data_dir, files, mirrors, timeout_s, retries)
        x_train, y_train, x_test, y_test = (read_idx(paths[f]) for f in (*IDX_TRAIN, *IDX_TEST))
        raw_md5 = dict(files)  # ensure_files checked every file against these
        sources = (f"{data_dir}/{{{','.join(IDX_TRAIN)}}}", f"{data_dir}/{{{','.join(IDX_TEST)}}}")
    check_images_labels(x_train, y_train, sources[0])
    check_images_labels(x_test, y_test, sources[1])
    arrays = ImageArrays(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))
    return arrays, raw_md5


def set_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """md5 over a set's (label, image) rows in sorted order: the same for the same samples in any order."""
    rows = np.concatenate([labels.astype(np.uint8)[:, None], images.reshape(len(images), -1)], axis=1)
    return hashlib.md5(b"".join(sorted(hashlib.md5(row.tobytes()).digest() for row in rows))).hexdigest()


def _check_canonical_set(data_dir: Path, sets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """data=fashion_mnist trains on Fashion-MNIST only: other images in Kaggle's file names would pass for it."""
    differ = [split for split, (images, labels) in sets.items()
              if set_digest(images, labels) != FASHION_MNIST_SET_DIGESTS[split]]
    if differ:
        raise DataError(
            f"{data_dir}: {KAGGLE_TRAIN} and {KAGGLE_TEST} do not hold the canonical Fashion-MNIST set (the "
            f"{' and '.join(differ)} samples differ), and data=fashion_mnist trains on that set only; for images of "
            "your own use data=table data.path=<csv> data.target=label (or data=idx for IDX files)"
        )


def _write_cache(data_dir: Path, name: str, arrays: ImageArrays, raw_md5: Mapping[str, str]) -> None:
    """Store the arrays with what they were decoded from, so a later load can tell if they are stale.

    A read-only data dir (e.g. a shared copy of the files) only costs the decode on every run.
    """
    path = data_dir / CACHE_FILE
    if not writable_dir(data_dir):
        log.info("not writing the decoded cache %s: the dir is read-only", path)
        return
    raw = {}
    for file, md5 in raw_md5.items():
        stat = (data_dir / file).stat()
        raw[file] = {"md5": md5, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    meta = json.dumps({"version": CACHE_VERSION, "dataset": name, "raw_files": raw})
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(meta), **{k: getattr(arrays, k) for k in _ARRAY_NAMES})
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        log.warning("cannot write the decoded cache %s (%s); each run decodes again", path, exc)


def _read_cache(data_dir: Path, name: str) -> ImageArrays | None:
    """The cached arrays, or None if there is no cache, it is unreadable or stale."""
    path = data_dir / CACHE_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            same_source = meta["version"] == CACHE_VERSION and meta["dataset"] == name
            if not (same_source and _raw_files_unchanged(data_dir, meta["raw_files"])):
                log.info("ignoring the stale decoded cache %s", path)
                return None
            arrays = ImageArrays(*(archive[k] for k in _ARRAY_NAMES))
        check_images_labels(arrays.x_train, arrays.y_train, str(path))
        check_images_labels(arrays.x_test, arrays.y_test, str(path))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, DataError) as exc:
        log.warning("ignoring the unreadable decoded cache %s (%s)", path, exc)
        return None
    return arrays


def _raw_files_unchanged(data_dir: Path, recorded: Mapping[str, Mapping[str, object]]) -> bool:
    """True if every recorded raw file still in the dir is the one decoded; md5 only when size/mtime moved."""
    for file, record in recorded.items():
        path = data_dir / file
        if not path.exists():
            continue
        stat = path.stat()
        moved = (stat.st_size, stat.st_mtime_ns) != (record["size"], record["mtime_ns"])
        if moved and md5_of(path) != record["md5"]:
            return False
    return True
