"""Atomic file writes: a reader (or a job killed mid-write) never sees half a file.

Every file the harness leaves behind (records, checkpoints, summaries, plots, decoded datasets)
is written here: to a temporary file beside the target, flushed to disk, then renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from regsweep.errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)


def naming(path: Path, error: OSError) -> OSError:
    """``error`` naming ``path`` (``[Errno 28] No space left on device: '<path>'``): a failed write or flush names
    no file, and a failed temporary file names one the user never sees."""
    return type(error)(error.errno, error.strerror, str(path)) if error.errno else error


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise naming(path, error) from error
    try:
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for everyone
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as error:
        Path(tmp_name).unlink(missing_ok=True)
        raise naming(path, error) from error
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def require_writable_dir(key: str, path: Path) -> Path:
    """Make ``path`` if needed and check that a file can be written there, before any work that would write."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise ConfigError(key, str(path), f"is not a writable directory ({error.strerror or error})") from None
    return path
