"""Errors that users cause and can fix: each message says what was wrong and what is allowed."""

from __future__ import annotations

import sys
from pathlib import Path
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


class SweepRefused(RegsweepError):
    """A multirun refused before its jobs started (invalid configs, another sweep or process in its dir).

    Nothing new to summarize: the sweep summary stays silent rather than show what the dir held before.
    """


class DataError(RegsweepError):
    """A data file is missing, corrupt or malformed, or could not be downloaded."""


class DivergenceError(RegsweepError):
    """Training diverged (a loss became NaN or infinite)."""


class JobFailed(RegsweepError):
    """A job failed; its record holds the reason (raised so that a single run exits non-zero)."""


class Interrupted(SystemExit):
    """A signal stopped the run at a safe point; exits 130 (SIGINT) or 143 (SIGTERM), as shells expect.

    A SystemExit, so that nothing between the signal and the top level mistakes it for a job's
    failure (Lightning, Hydra's job runner and the sweepers let it through after their bookkeeping).
    """

    CODES = {"SIGINT": 130, "SIGTERM": 143}

    def __init__(self, signal_name: str) -> None:
        super().__init__(self.CODES.get(signal_name, 1))
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"interrupted by {self.signal_name}"


def describe(error: BaseException) -> str:
    """How a failure is written in records, tables and logs: ``Type: message``."""
    return f"{type(error).__name__}: {error}"


def refuse_null_group_choices(arguments: list[str], conf_dir: Path) -> None:
    """``logger=null`` on the command line: Hydra stops with a long traceback; say what works instead."""
    for argument in arguments:
        key, _, value = argument.partition("=")
        if value == "null" and (Path(conf_dir) / key).is_dir():
            sys.stderr.write(f"{argument}: a config group cannot be set to null on the command line; "
                             f"use {key}=none (or ~{key}) for none\n")
            raise SystemExit(2)


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
