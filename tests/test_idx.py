"""IDX and Kaggle CSV readers: valid files decode exactly, every malformed one is a DataError naming the file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from regsweep.data.idx import KAGGLE_HEADER, check_images_labels, read_idx, read_kaggle_csv
from regsweep.errors import DataError


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_raw_and_gzip(tmp_path, images, name):
    out = read_idx(write(tmp_path / name, idx_bytes(images)))
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x09, ">i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")],
)
def test_read_idx_other_dtypes_are_big_endian(tmp_path, code, dtype):
    values = np.arange(-3, 3).reshape(2, 3).astype(dtype)
    out = read_idx(write(tmp_path / "x.idx", idx_bytes(values, code)))
    np.testing.assert_array_equal(out, values.astype(values.dtype.newbyteorder("=")))
    assert out.dtype.isnative


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x00\x08\x01" + struct.pack(">I", 0), "not an IDX file"),  # wrong magic
        (b"\x00\x00\x07\x01" + struct.pack(">I", 0), "not an IDX file"),  # unknown dtype code
        (b"", "empty file"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    ],
)
def test_read_idx_rejects_bad_headers(tmp_path, data, message):
    path = write(tmp_path / "bad.idx", data)
    with pytest.raises(DataError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("cut", "word"), [(-10, "truncated"), (+7, "too long")])
def test_read_idx_payload_size_must_match_header(tmp_path, images, cut, word):
    data = idx_bytes(images)
    data = data[:cut] if cut < 0 else data + b"\x00" * cut
    path = write(tmp_path / "x-idx3-ubyte.gz", data)
    expected = 16 + images.size
    with pytest.raises(DataError, match=f"{word}.*expected {expected} bytes, got {len(data)}") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_truncated_gzip_says_delete_and_download(tmp_path, images):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(images))[:-100])
    with pytest.raises(DataError, match="corrupt or truncated gzip.*delete it and download it again") as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_read_idx_garbage_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"this is an HTML error page, not gzip")
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


def test_check_images_labels_accepts_a_good_pair(images):
    check_images_labels(images, np.array([0, 9, 3, 3, 1]), "pair")


@pytest.mark.parametrize(
    ("images", "labels"),
    [
        (np.zeros((5, 28, 27), np.uint8), np.zeros(5, np.uint8)),  # wrong image size
        (np.zeros((5, 784), np.uint8), np.zeros(5, np.uint8)),  # flat images
        (np.zeros((5, 28, 28), np.float32), np.zeros(5, np.uint8)),  # wrong dtype
        (np.zeros((5, 28, 28), np.uint8), np.zeros(4, np.uint8)),  # counts differ
        (np.zeros((5, 28, 28), np.uint8), np.full(5, 10, np.uint8)),  # label out of range
        (np.zeros((5, 28, 28), np.uint8), np.zeros((5, 1), np.uint8)),  # labels not 1-d
    ],
)
def test_check_images_labels_rejects(images, labels):
    with pytest.raises(DataError, match="mnist-files: wrong IDX shape"):
        check_images_labels(images, labels, "mnist-files")


def kaggle_csv(path: Path, rows: list[list[object]], header: list[str] = KAGGLE_HEADER) -> Path:
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def kaggle_rows(n: int) -> list[list[int]]:
    rng = np.random.default_rng(1)
    return [[i % 10, *rng.integers(0, 256, 784).tolist()] for i in range(n)]


def test_read_kaggle_csv(tmp_path):
    rows = kaggle_rows(4)
    images, labels = read_kaggle_csv(kaggle_csv(tmp_path / "fashion-mnist_test.csv", rows))
    assert images.dtype == np.uint8 and images.shape == (4, 28, 28)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 1, 2, 3])
    np.testing.assert_array_equal(images[2].ravel(), rows[2][1:])  # pixelK is row-major position K-1


def test_read_kaggle_csv_wrong_header(tmp_path):
    path = kaggle_csv(tmp_path / "f.csv", kaggle_rows(2), header=["class", *KAGGLE_HEADER[1:]])
    with pytest.raises(DataError, match="line 1: expected the Kaggle header") as err:
        read_kaggle_csv(path)
    assert str(path) in str(err.value)


def test_read_kaggle_csv_wrong_column_count(tmp_path):
    rows = kaggle_rows(3)
    rows[1] = rows[1][:-1]
    path = kaggle_csv(tmp_path / "f.csv", rows)
    with pytest.raises(DataError, match="line 3: expected 785 columns, got 784") as err:
        read_kaggle_csv(path)
    assert str(path) in str(err.value)


def test_read_kaggle_csv_all_rows_short(tmp_path):
    path = kaggle_csv(tmp_path / "f.csv", [row[:-1] for row in kaggle_rows(3)])
    with pytest.raises(DataError, match="line 2: expected 785 columns, got 784"):
        read_kaggle_csv(path)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (5, "x", r"line 4, column 6 \(pixel5\): expected an integer in 0..255, got 'x'"),
        (5, "2.5", r"line 4, column 6 \(pixel5\): expected an integer in 0..255, got '2.5'"),
        (784, "256", r"line 4, column 785 \(pixel784\): expected an integer in 0..255, got '256'"),
        (7, "99999", r"line 4, column 8 \(pixel7\): expected an integer in 0..255, got '99999'"),
        (1, "-1", r"line 4, column 2 \(pixel1\): expected an integer in 0..255, got '-1'"),
        (0, "10", r"line 4, column 1 \(label\): expected an integer in 0..9, got '10'"),
    ],
)
def test_read_kaggle_csv_bad_value(tmp_path, column, value, expected):
    rows = kaggle_rows(4)
    rows[2][column] = value
    path = kaggle_csv(tmp_path / "f.csv", rows)
    with pytest.raises(DataError, match=expected) as err:
        read_kaggle_csv(path)
    assert str(path) in str(err.value)


def test_read_kaggle_csv_without_rows(tmp_path):
    with pytest.raises(DataError, match="expected data rows"):
        read_kaggle_csv(kaggle_csv(tmp_path / "f.csv", []))
