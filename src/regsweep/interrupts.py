"""SIGINT and SIGTERM stop training at a safe point instead of wherever the signal lands.

A scheduler's time limit or cancellation (SIGTERM), a pre-empted node or Ctrl-C (SIGINT) ask the
pack to stop between two optimizer steps: the module raises :class:`~regsweep.errors.Interrupted`
there, the job records ``status: interrupted`` and saves what it needs to continue, and the sweep
writes its summary and exits 130 or 143. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

from lightning.pytorch.utilities.exceptions import SIGTERMException

from regsweep.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_at_safe_points(request: Callable[[Interrupted], None]) -> Iterator[None]:
    """While the block runs, a signal calls ``request`` (which arranges a stop at the next safe point).

    Outside the main thread (signals cannot be handled there) the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def handler(signum: int, frame: Any) -> None:
        signal.signal(signum, previous[signum] if signum != signal.SIGINT else signal.default_int_handler)
        request(Interrupted(signal.Signals(signum).name))

    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def raise_on_signals() -> Iterator[None]:
    """While the block runs, SIGTERM (and SIGINT) raise Interrupted where the main thread is (the sweeper)."""
    def interrupt(stop: Interrupted) -> None:
        raise stop

    with stop_at_safe_points(interrupt):
        yield


def as_interrupted(error: BaseException) -> Interrupted | None:
    """The interruption behind ``error``: ours, Lightning's SIGTERM exception, or a KeyboardInterrupt."""
    if isinstance(error, Interrupted):
        return error
    if isinstance(error, SIGTERMException):
        return Interrupted("SIGTERM")
    if isinstance(error, KeyboardInterrupt):
        return Interrupted("SIGINT")
    return None
