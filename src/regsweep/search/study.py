"""Where a study lives and how a job finds its trial again.

The sweeper and every job open the same storage: a journal file (the default; safe for several
processes on one machine and needs no server) or a database URL (for workers on several
machines). Each job is told the study name, the storage and its trial number (``search.*``
overrides) and re-attaches to its trial there, so it can report per-epoch values to the pruner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend

from regsweep.errors import ConfigError

JOURNAL_FILE = "journal.log"
SETTINGS_ATTR = "search_settings"  # study user attribute: what makes its trials comparable (see the sweeper)


# URL schemes a study can live in, and the SQLAlchemy driver each is opened with
DATABASES = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """The storage as one string every job can open: a database URL, or an absolute journal file path."""
    if storage is None:
        return str((Path(sweep_dir) / JOURNAL_FILE).resolve())
    if "://" not in storage:
        return str(Path(storage).resolve())
    scheme, rest = storage.split("://", 1)
    if scheme not in DATABASES:
        raise ConfigError("hydra.sweeper.storage", storage, "must be a journal file path or a database URL: "
                          "sqlite:///study.db or postgresql://user:password@host:port/database")
    return f"{DATABASES[scheme]}://{rest}"


def open_storage(url: str) -> BaseStorage:
    """A database URL (sqlite:///, postgresql://, mysql://) or else a journal file, created on first use."""
    if "://" in url:
        return optuna.storages.get_storage(url)
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


def attach_trial(study_name: str, url: str, number: int, pruner: optuna.pruners.BasePruner) -> optuna.Trial:
    """The running trial ``number`` of a stored study, as an object a job can report to."""
    storage = open_storage(url)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    return optuna.trial.Trial(study, trial_id)
