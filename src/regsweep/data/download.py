"""Fetch a dataset's files into a data dir, verified by md5, so a run never trains on a partial download.

Files land in place only after their checksum matched (temporary file + rename); every failure
leaves the data dir as it was.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Mapping, Sequence
from urllib.error import HTTPError

from regsweep.errors import DataError

MNIST_FILES: Mapping[str, str] = MappingProxyType({
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
})
FASHION_MNIST_FILES: Mapping[str, str] = MappingProxyType({
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
})
# The mirrors torchvision uses, in its order of preference.
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

_CHUNK = 1 << 20
_BACKOFF_S = 0.5  # doubled after each failed attempt on the same mirror


@dataclass(frozen=True)
class DatasetFiles:
    """The canonical files of a dataset (name -> md5) and where to download them by default."""

    name: str
    files: Mapping[str, str]
    mirrors: tuple[str, ...]


DATASETS: Mapping[str, DatasetFiles] = MappingProxyType({
    "mnist": DatasetFiles("mnist", MNIST_FILES, MNIST_MIRRORS),
    "fashion_mnist": DatasetFiles("fashion_mnist", FASHION_MNIST_FILES, FASHION_MNIST_MIRRORS),
})


def writable_dir(path: Path) -> bool:
    """Whether we may add files to ``path``: also False for a dir whose mode has no write bit, which a
    process running as root could write anyway but whose owner marked it read-only (e.g. shared data).
    """
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def md5_of(path: Path) -> str:
    """md5 hex digest, read in chunks so large files never sit in memory twice."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_files(
    data_dir: Path,
    files: Mapping[str, str],
    mirrors: Sequence[str],
    timeout_s: float = 30,
    retries: int = 2,
) -> dict[str, Path]:
    """Return the path of every file in ``files`` (name -> md5), downloading those not in ``data_dir``.

    Mirrors are tried in order, each up to ``retries`` times; a mirror is an http(s)/file URL
    or a local directory. A mirror that cannot be reached at all is not asked for further files,
    so an offline run fails after one round of timeouts rather than one per file.
    """
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{data_dir}: cannot create the data dir ({exc.strerror or exc})") from None
    last_error: dict[str, str] = {}  # mirror -> its last error, for the final message
    unreachable: set[str] = set()
    missing: list[str] = []
    for name, expected in files.items():
        target = data_dir / name
        if target.exists():
            _check_existing(target, expected)
            continue
        if not writable_dir(data_dir):
            raise DataError(f"{data_dir}: {name} is missing and cannot be downloaded: the dir is not writable")
        for mirror in mirrors:
            if mirror in unreachable:
                continue
            try:
                _fetch(mirror, name, expected, target, timeout_s, retries)
                break
            except _MirrorError as err:
                last_error[mirror] = str(err)
                if err.unreachable:
                    unreachable.add(mirror)
        else:
            missing.append(name)
    if missing:
        raise DataError(_missing_message(data_dir, files, missing, mirrors, last_error))
    return {name: data_dir / name for name in files}


def _check_existing(path: Path, expected: str) -> None:
    actual = md5_of(path)
    if actual != expected:
        raise DataError(
            f"{path}: md5 is {actual}, expected {expected}; the file is corrupt or not the canonical "
            "one: delete it so it is downloaded again (IDX files of your own: data=idx data.data_dir=<their dir>)"
        )


class _MirrorError(Exception):
    """One mirror failed for one file.

    ``retry``: the failure may be transient; ``unreachable``: the mirror served nothing at all,
    so asking it for the other files would only repeat the wait.
    """

    def __init__(self, message: str, retry: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retry, self.unreachable = retry, unreachable


def _mirror_error(name: str, exc: OSError | HTTPException) -> _MirrorError:
    if isinstance(exc, HTTPException):  # the connection broke mid-response: worth another try
        return _MirrorError(f"{name}: {type(exc).__name__} {exc}", retry=True)
    if isinstance(exc, HTTPError):  # 404 and friends will not change on retry; 5xx may
        return _MirrorError(f"{name}: HTTP {exc.code} {exc.reason}", retry=exc.code >= 500)
    reason = getattr(exc, "reason", exc)  # URLError wraps the underlying error
    if isinstance(reason, FileNotFoundError):
        return _MirrorError(f"{name}: not found ({reason.filename})")
    return _MirrorError(f"{name}: {reason}", retry=True, unreachable=True)


def _fetch(mirror: str, name: str, expected: str, target: Path, timeout_s: float, attempts: int) -> None:
    """Download one file from one mirror, retrying transient errors with a short backoff."""
    for attempt in range(max(attempts, 1)):
        if attempt:
            time.sleep(_BACKOFF_S * 2 ** (attempt - 1))
        try:
            actual = _download_verified(mirror, name, expected, target, timeout_s)
        except (OSError, HTTPException) as exc:
            error = _mirror_error(name, exc)
            if not error.retry:
                raise error from None
            continue
        if actual != expected:
            raise _MirrorError(f"{name}: downloaded md5 {actual}, expected {expected} (corrupted copy)")
        return
    raise error


def _download_verified(mirror: str, name: str, expected: str, target: Path, timeout_s: float) -> str:
    """Stream to a temp file beside ``target``; rename it into place only if the md5 is ``expected``.

    Returns the md5 of what was downloaded; the temp file is removed whatever happens.
    """
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.", suffix=".part")
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out, _open_source(mirror, name, timeout_s) as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() == expected:
            os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return digest.hexdigest()


def _open_source(mirror: str, name: str, timeout_s: float) -> BinaryIO:
    """Open ``name`` on a mirror given as a URL (http, https, file) or as a local directory."""
    if "://" not in mirror:
        return open(Path(mirror).expanduser() / name, "rb")
    return urllib.request.urlopen(mirror.rstrip("/") + "/" + name, timeout=timeout_s)


def _missing_message(
    data_dir: Path, files: Mapping[str, str], missing: list[str], mirrors: Sequence[str], errors: Mapping[str, str]
) -> str:
    tried = "; ".join(f"{m} ({errors.get(m, 'not tried')})" for m in mirrors) or "none configured"
    wanted = ", ".join(f"{name} (md5 {files[name]})" for name in missing)
    return (
        f"Could not get {wanted} into {data_dir.resolve()}. Mirrors tried: {tried}. "
        "Download the files by hand into that directory, set data.mirrors to a reachable mirror, "
        "or run offline with data=digits."
    )
