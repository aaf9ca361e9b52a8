"""The aggregation's writes: atomic (:mod:`regsweep.atomic`), and a write the disk refuses (full, read-only, not
permitted) as one error naming the file and the errno, not a traceback; the old file stays whole."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from regsweep.aggregate.load import AggregateError
from regsweep.atomic import atomic_write_bytes


class OutputError(AggregateError):
    """An output could not be written or removed (a full disk, a read-only or foreign dir): the records are fine."""


@contextmanager
def refused(action: str, path: Path) -> Iterator[None]:
    """An OSError inside as an OutputError: ``cannot write <path>: [Errno 28] No space left on device``.

    The path is the output's own: the OSError may name a temporary file beside it, or nothing (a failed flush).
    """
    try:
        yield
    except OSError as error:
        why = f"[Errno {error.errno}] {error.strerror}" if error.errno else str(error)
        raise OutputError(f"cannot {action} {path}: {why}") from error


def write_bytes(path: Path, data: bytes) -> Path:
    with refused("write", path):
        atomic_write_bytes(path, data)
    return path


def write_text(path: Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def remove(path: Path, up_to: Path | None = None) -> None:
    """Remove an earlier aggregation's file, then the dirs that leaves empty below ``up_to``: a dir still holding
    anything (someone else's files) is kept."""
    with refused("remove", path):
        path.unlink(missing_ok=True)
        parent = path.parent
        while up_to is not None and parent != up_to and up_to in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
