"""One sweep per sweep dir, one process per pack: locks that a second writer runs into.

A grid sweep holds the lock exclusively for as long as it runs; the workers of one Optuna search
share it (they are meant to add trials to the same study), so a grid sweep and a search never mix
their jobs either. The operating system releases the lock when the process ends, however it ends
(even killed with -9), so a stale lock never blocks a resume.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO, Iterator

from regsweep.atomic import require_writable_dir
from regsweep.errors import SweepRefused

LOCK_FILE = ".sweep.lock"


class SweepDirBusyError(SweepRefused):
    """Another process is writing into this sweep dir."""


@contextlib.contextmanager
def sweep_dir_lock(sweep_dir: Path, shared: bool = False) -> Iterator[None]:
    """Held while a sweep writes into ``sweep_dir``; a dir it made and left holding only the lock is removed."""
    made = not Path(sweep_dir).exists()
    sweep_dir = require_writable_dir("hydra.sweep.dir", sweep_dir)  # before any job: it would lose every result
    with open(sweep_dir / LOCK_FILE, "a+", encoding="utf-8") as handle:
        take_lock(handle, sweep_dir, shared)
        try:
            yield
        finally:
            if made and not shared:  # held exclusively: no other sweep can be starting in it
                remove_if_only_the_lock(sweep_dir)


def take_lock(handle: IO[str], sweep_dir: Path, shared: bool) -> None:
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise SweepDirBusyError(f"{sweep_dir} is in use by {holder}: wait for it to finish, or choose another "
                                "hydra.sweep.dir") from None
    if not shared:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()


def remove_if_only_the_lock(sweep_dir: Path) -> None:
    """A sweep refused before planning leaves no empty dir behind (a planned sweep has its plan there)."""
    if [entry.name for entry in sweep_dir.iterdir()] == [LOCK_FILE]:
        (sweep_dir / LOCK_FILE).unlink()
        sweep_dir.rmdir()


ABANDONED_SUFFIX = ".abandoned"


@contextlib.contextmanager
def pack_claim(manifest: Path) -> Iterator[bool]:
    """Held by a pack job while it trains; yields False when the sweep has given the pack up.

    A launcher can give up on a batch while some of its jobs still run or wait in a queue (a
    cancelled SLURM array task makes submitit raise). The sweep then waits for the running packs
    (their claim is held) and gives up the others, so a pack that starts later trains nothing and
    never writes over the records the sweep has written for it.
    """
    with open(Path(manifest).with_suffix(".lock"), "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield not Path(manifest).with_suffix(ABANDONED_SUFFIX).exists()


def give_up_pack(manifest: Path) -> None:
    """Wait until the pack's job (if it runs) has finished, then keep it from starting later."""
    with pack_claim(manifest):
        Path(manifest).with_suffix(ABANDONED_SUFFIX).touch()


def reclaim_pack(manifest: Path) -> None:
    """A pack launched again (a resumed sweep) may run."""
    Path(manifest).with_suffix(ABANDONED_SUFFIX).unlink(missing_ok=True)
