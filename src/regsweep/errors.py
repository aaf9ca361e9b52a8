"""Errors that users cause and can fix: each message says what was wrong and what is allowed."""

from __future__ import annotations

import sys
from types import TracebackType

from hydra.errors import CompactHydraException


MAX_VALUE_CHARS = 120  # of a bad value in an error message: the key says where it is


class RegsweepError(CompactHydraException):
    """Base of the errors printed as one line, without a traceback (Hydra prints these compactly)."""


class ConfigError(RegsweepError):
    """A config value is invalid; raised before any training starts."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        shown = repr(value)
        shown = shown if len(shown) <= MAX_VALUE_CHARS else shown[: MAX_VALUE_CHARS - 3] + "..."
        super().__init__(f"Invalid config: {key}={shown}: {allowed}")


class DataError(RegsweepError):
    """A data file is missing, corrupt or malformed, or could not be downloaded."""


class DivergenceError(RegsweepError):
    """Training diverged (a loss became NaN or infinite)."""


class JobFailed(RegsweepError):
    """A job failed; its record holds the reason (raised so that a single run exits non-zero)."""


def describe(error: BaseException) -> str:
    """How a failure is written in records, tables and logs: ``Type: message``."""
    return f"{type(error).__name__}: {error}"


def install_compact_excepthook() -> None:
    """Print RegsweepErrors as their one-line message; everything else keeps its full traceback.

    Hydra reports a failed job through ``sys.excepthook`` when one is installed, so this is the
    place where a user mistake stops looking like a crash.
    """
    default_hook = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        if isinstance(error, RegsweepError):
            sys.stderr.write(f"{error}\n")
        else:
            default_hook(kind, error, tb)

    sys.excepthook = hook
