"""Download-and-verify over a loopback HTTP server, and loading the real MNIST / Fashion-MNIST files."""

from __future__ import annotations

import functools
import hashlib
import shutil
from dataclasses import replace
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA
from regsweep.data import images, sources
from regsweep.data.download import FASHION_MNIST_FILES, MNIST_FILES, ensure_files
from regsweep.data.idx import KAGGLE_HEADER, read_idx
from regsweep.data.images import (
    CACHE_FILE, FASHION_MNIST_SET_DIGESTS, KAGGLE_TEST, KAGGLE_TRAIN, load_image_dataset, set_digest,
)
from regsweep.data.sources import ImageDataConfig
from regsweep.errors import ConfigError, DataError
from regsweep.job import run
from regsweep.records import read_result

SMALL = "t10k-labels-idx1-ubyte.gz"  # 4.5 kB: enough to exercise every path quickly
TIMEOUT_S = 1.5


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist" / SMALL).exists():
        pytest.skip(f"real MNIST files not found under {SHARED_DATA}")
    return SHARED_DATA


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve():
    """serve(dir) -> base URL of a loopback HTTP server for that dir; all are shut down afterwards."""
    servers = []

    def start(root: Path) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def dead_url() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def silent_url():
    """A port that accepts connections but never answers: requests run into their timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture
def corrupt_mirror(tmp_path, shared_data) -> Path:
    """A mirror dir whose copy of SMALL has one byte changed."""
    root = tmp_path / "corrupt"
    root.mkdir()
    data = bytearray((shared_data / "mnist" / SMALL).read_bytes())
    data[100] ^= 0xFF
    (root / SMALL).write_bytes(bytes(data))
    return root


def small_files() -> dict[str, str]:
    return {SMALL: MNIST_FILES[SMALL]}


def test_good_mirror_fills_an_empty_dir(tmp_path, serve, shared_data):
    data_dir = tmp_path / "data"
    paths = ensure_files(data_dir, MNIST_FILES, [serve(shared_data) + "mnist/"], timeout_s=TIMEOUT_S, retries=1)
    assert set(paths) == set(MNIST_FILES)
    for name, path in paths.items():
        assert path == data_dir / name
        assert md5(path.read_bytes()) == MNIST_FILES[name]
    assert sorted(p.name for p in data_dir.iterdir()) == sorted(MNIST_FILES)  # no temp files left


def test_dead_mirror_then_good_mirror(tmp_path, serve, shared_data, dead_url):
    data_dir = tmp_path / "data"
    mirrors = [dead_url, serve(shared_data) + "fashion_mnist"]  # also: a base URL without trailing slash
    paths = ensure_files(data_dir, FASHION_MNIST_FILES, mirrors, timeout_s=TIMEOUT_S, retries=2)
    assert {name: md5(p.read_bytes()) for name, p in paths.items()} == dict(FASHION_MNIST_FILES)


def test_silent_mirror_times_out_then_next_mirror_works(tmp_path, serve, shared_data, silent_url):
    data_dir = tmp_path / "data"
    ensure_files(data_dir, small_files(), [silent_url, serve(shared_data / "mnist")], timeout_s=0.5, retries=1)
    assert md5((data_dir / SMALL).read_bytes()) == MNIST_FILES[SMALL]


def test_an_unreachable_mirror_costs_one_timeout_not_one_per_file(tmp_path, silent_url):
    started = time.monotonic()
    with pytest.raises(DataError, match="timed out"):
        ensure_files(tmp_path / "data", MNIST_FILES, [silent_url], timeout_s=0.5, retries=1)
    assert time.monotonic() - started < 1.5  # 4 files x 0.5 s if each file waited again
    assert list((tmp_path / "data").iterdir()) == []


def test_corrupted_copy_is_rejected_and_nothing_is_left(tmp_path, serve, corrupt_mirror):
    data_dir = tmp_path / "data"
    actual = md5((corrupt_mirror / SMALL).read_bytes())
    with pytest.raises(DataError) as err:
        ensure_files(data_dir, small_files(), [serve(corrupt_mirror)], timeout_s=TIMEOUT_S, retries=1)
    message = str(err.value)
    assert SMALL in message and MNIST_FILES[SMALL] in message and actual in message
    assert list(data_dir.iterdir()) == []


def test_corrupted_copy_then_good_mirror(tmp_path, serve, corrupt_mirror, shared_data):
    data_dir = tmp_path / "data"
    ensure_files(data_dir, small_files(), [serve(corrupt_mirror), serve(shared_data / "mnist")], TIMEOUT_S, 1)
    assert md5((data_dir / SMALL).read_bytes()) == MNIST_FILES[SMALL]
    assert [p.name for p in data_dir.iterdir()] == [SMALL]


def test_all_mirrors_failing_names_missing_files_dir_mirrors_and_digits(tmp_path, serve, dead_url, shared_data):
    data_dir = tmp_path / "data"
    (data_dir).mkdir()
    shutil.copyfile(shared_data / "mnist" / SMALL, data_dir / SMALL)  # present files are not "missing"
    empty = tmp_path / "empty"
    empty.mkdir()
    not_found = serve(empty)
    with pytest.raises(DataError) as err:
        ensure_files(data_dir, MNIST_FILES, [dead_url, not_found], timeout_s=TIMEOUT_S, retries=1)
    message = str(err.value)
    missing = set(MNIST_FILES) - {SMALL}
    assert all(name in message for name in missing) and f"{SMALL} (md5" not in message
    assert str(data_dir.resolve()) in message
    assert f"{dead_url} (" in message and "refused" in message.lower()
    assert f"{not_found} (" in message and "HTTP 404" in message
    assert "data=digits" in message
    assert [p.name for p in data_dir.iterdir()] == [SMALL]


def test_existing_file_with_wrong_md5_is_reported_not_replaced(tmp_path, dead_url):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SMALL).write_bytes(b"partial download")
    with pytest.raises(DataError, match=f"{SMALL}: md5 is {md5(b'partial download')}, expected "
                                        f"{MNIST_FILES[SMALL]}.*delete it.*IDX files of your own: data=idx"):
        ensure_files(data_dir, small_files(), [dead_url], timeout_s=TIMEOUT_S, retries=1)
    assert (data_dir / SMALL).read_bytes() == b"partial download"


def test_existing_good_file_needs_no_mirror(tmp_path, shared_data, dead_url):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(shared_data / "mnist" / SMALL, data_dir / SMALL)
    assert ensure_files(data_dir, small_files(), [dead_url], timeout_s=TIMEOUT_S, retries=1) == {
        SMALL: data_dir / SMALL
    }


@pytest.mark.parametrize("as_url", [True, False])
def test_local_mirrors_file_url_and_plain_dir(tmp_path, shared_data, as_url):
    source = shared_data / "mnist"
    mirror = source.as_uri() if as_url else str(source)
    missing_dir = tmp_path / "nowhere"
    ensure_files(tmp_path / "data", small_files(), [str(missing_dir), mirror], timeout_s=TIMEOUT_S, retries=1)
    assert md5((tmp_path / "data" / SMALL).read_bytes()) == MNIST_FILES[SMALL]


# --- load_image_dataset -------------------------------------------------------------------------

@pytest.fixture
def fresh_memory(monkeypatch):
    """An empty in-process cache, so each test sees only its own loads."""
    monkeypatch.setattr(sources, "_RAW_SPLITS", {})


@pytest.mark.usefixtures("fresh_memory")
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_load_real_dataset(tmp_path, shared_data, name):
    arrays = load_image_dataset(name, tmp_path / name, [str(shared_data / name)], TIMEOUT_S, 1)
    assert arrays.x_train.shape == (60000, 28, 28) and arrays.x_test.shape == (10000, 28, 28)
    assert arrays.x_train.dtype == arrays.x_test.dtype == np.uint8
    assert arrays.y_train.dtype == arrays.y_test.dtype == np.int64
    assert arrays.y_train.shape == (60000,) and arrays.y_test.shape == (10000,)
    assert set(np.unique(arrays.y_train)) == set(range(10)) == set(np.unique(arrays.y_test))
    assert arrays.x_train.max() == 255 and arrays.x_train.min() == 0
    if name == "fashion_mnist":  # balanced classes; MNIST's are not
        assert np.bincount(arrays.y_train).tolist() == [6000] * 10
    else:
        assert np.bincount(arrays.y_train).tolist()[:3] == [5923, 6742, 5958]
    assert (tmp_path / name / CACHE_FILE).exists()


@pytest.mark.usefixtures("fresh_memory")
def test_decoded_cache_is_used_and_shared_in_process(tmp_path, shared_data, dead_url):
    data_dir = tmp_path / "mnist"
    cfg = ImageDataConfig(name="mnist", batch_size=128, normalize="none", split_seed=0, val_size=5000,
                          data_dir=str(data_dir), mirrors=[str(shared_data / "mnist")], timeout_s=TIMEOUT_S, retries=1)
    first = sources.load_splits(cfg)
    offline = replace(cfg, mirrors=[dead_url])
    assert sources.load_splits(offline).x_train is first.x_train  # in-process: the one in-memory copy
    for name in MNIST_FILES:  # only the decoded cache can answer now: the mirror is dead
        (data_dir / name).unlink()
    second = sources.load_splits(offline)  # the data dir changed: loaded again, from decoded.npz
    assert second.x_train is not first.x_train
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(second, field), getattr(first, field))
    arrays = load_image_dataset("mnist", data_dir, [dead_url], TIMEOUT_S, 1)
    assert arrays.x_train.shape == (60000, 28, 28)


@pytest.mark.usefixtures("fresh_memory")
def test_cache_of_another_dataset_is_not_used(tmp_path, shared_data):
    mnist_dir, fashion_dir = tmp_path / "mnist", tmp_path / "fashion_mnist"
    load_image_dataset("mnist", mnist_dir, [str(shared_data / "mnist")], TIMEOUT_S, 1)
    fashion_dir.mkdir()
    for name in FASHION_MNIST_FILES:
        shutil.copyfile(shared_data / "fashion_mnist" / name, fashion_dir / name)
    shutil.copyfile(mnist_dir / CACHE_FILE, fashion_dir / CACHE_FILE)
    # Kaggle CSVs that cannot be read: the IDX files must win when both are there.
    (fashion_dir / KAGGLE_TRAIN).write_text("not,a,csv\n")
    (fashion_dir / KAGGLE_TEST).write_text("not,a,csv\n")
    arrays = load_image_dataset("fashion_mnist", fashion_dir, [], TIMEOUT_S, 1)
    assert np.bincount(arrays.y_train).tolist() == [6000] * 10


def write_kaggle(path: Path, labels: list[int], pixel: int) -> None:
    rows = [",".join([str(label)] + [str(pixel)] * 784) for label in labels]
    path.write_text("\n".join([",".join(KAGGLE_HEADER), *rows]) + "\n")


@pytest.fixture
def tiny_kaggle(tmp_path) -> Path:
    """A data dir with Kaggle's two CSV files of 3 + 1 images: the layout, not the canonical set."""
    data_dir = tmp_path / "fashion"
    data_dir.mkdir()
    write_kaggle(data_dir / KAGGLE_TRAIN, [0, 1, 2], pixel=7)
    write_kaggle(data_dir / KAGGLE_TEST, [9], pixel=7)
    return data_dir


@pytest.mark.usefixtures("fresh_memory")
def test_kaggle_csvs_and_a_stale_cache(tiny_kaggle, dead_url, monkeypatch):
    monkeypatch.setattr(images, "_check_canonical_set", lambda data_dir, sets: None)  # the cache's logic, any samples
    data_dir = tiny_kaggle
    first = load_image_dataset("fashion_mnist", data_dir, [dead_url], TIMEOUT_S, 1)
    assert first.y_train.tolist() == [0, 1, 2] and first.y_test.tolist() == [9]
    assert first.x_train.shape == (3, 28, 28) and (first.x_train == 7).all()
    assert (data_dir / CACHE_FILE).exists()

    write_kaggle(data_dir / KAGGLE_TRAIN, [5, 5, 5, 5], pixel=200)  # new raw data: the cache is stale
    second = load_image_dataset("fashion_mnist", data_dir, [dead_url], TIMEOUT_S, 1)
    assert second.y_train.tolist() == [5, 5, 5, 5] and (second.x_train == 200).all()

    (data_dir / CACHE_FILE).write_bytes(b"PK\x03\x04 truncated")  # an unreadable cache is rebuilt
    third = load_image_dataset("fashion_mnist", data_dir, [dead_url], TIMEOUT_S, 1)
    assert third.y_train.tolist() == [5, 5, 5, 5]
    assert np.load(data_dir / CACHE_FILE)["y_train"].tolist() == [5, 5, 5, 5]


@pytest.mark.usefixtures("fresh_memory")
def test_kaggle_csvs_of_other_images_are_refused_as_fashion_mnist(tiny_kaggle, dead_url):
    with pytest.raises(DataError, match="do not hold the canonical Fashion-MNIST set .the train and test samples "
                                        "differ.*data=table data.path=<csv> data.target=label .or data=idx"):
        load_image_dataset("fashion_mnist", tiny_kaggle, [dead_url], TIMEOUT_S, 1)
    assert not (tiny_kaggle / CACHE_FILE).exists()  # refused data never becomes a cache a later run would trust


def test_the_canonical_set_digest_holds_for_fashion_mnist_in_any_order(shared_data):
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = (read_idx(shared_data / "fashion_mnist" / f"{prefix}-{kind}-ubyte.gz") for kind in ("images-idx3",
                                                                                                "labels-idx1"))
        assert set_digest(x, y) == FASHION_MNIST_SET_DIGESTS[split]
    order = np.random.default_rng(0).permutation(len(x))
    assert set_digest(x[order], y[order]) == FASHION_MNIST_SET_DIGESTS["test"]  # Kaggle's rows may come in any order
    changed = x.copy()
    changed[123, 4, 5] ^= 1
    assert set_digest(changed, y) != FASHION_MNIST_SET_DIGESTS["test"]
    relabeled = y.copy()
    relabeled[0] = (relabeled[0] + 1) % 10
    assert set_digest(x, relabeled) != FASHION_MNIST_SET_DIGESTS["test"]


@pytest.mark.usefixtures("fresh_memory")
def test_read_only_data_dir_is_read_but_not_written(tmp_path, shared_data):
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    for name in MNIST_FILES:
        shutil.copyfile(shared_data / "mnist" / name, data_dir / name)
    data_dir.chmod(0o555)
    try:
        arrays = load_image_dataset("mnist", data_dir, [], TIMEOUT_S, 1)
        assert arrays.x_train.shape == (60000, 28, 28)
        assert sorted(p.name for p in data_dir.iterdir()) == sorted(MNIST_FILES)
    finally:
        data_dir.chmod(0o755)


def test_unknown_image_dataset(tmp_path):
    with pytest.raises(ConfigError, match="data.name"):
        load_image_dataset("cifar10", tmp_path, [], TIMEOUT_S, 1)


@pytest.mark.usefixtures("fresh_memory")
def test_a_training_run_downloads_verifies_and_trains(tmp_path, serve, shared_data, make_cfg):
    url = serve(shared_data / "mnist")
    data_dir = tmp_path / "downloaded"
    run(make_cfg("data=mnist", f"data.data_dir={data_dir}", f"data.mirrors=['{url}']", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=30", "trainer.limit_val_batches=1"))
    assert sorted(p.name for p in data_dir.glob("*.gz")) == sorted(MNIST_FILES)
    record = read_result(tmp_path)
    assert record.status == "ok" and record.metrics["test"]["test/acc"] > 0.5
