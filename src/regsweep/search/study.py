"""Where a study lives and how a job finds its trial again.

The sweeper and every job open the same storage: a journal file (the default; safe for several
processes on one machine and needs no server) or a database URL (for workers on several
machines). Each job is told the study name, the storage and its trial number (``search.*``
overrides) and re-attaches to its trial there, so it can report per-epoch values to the pruner.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import optuna
import sqlalchemy
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


def open_storage(url: str, attempts: int = 5) -> BaseStorage:
    """A database URL (sqlite:///, postgresql://) or else a journal file, created on first use.

    Workers started together on an empty database race to create Optuna's tables, and the loser
    fails with a unique-key violation; its next attempt finds the tables made.
    """
    if "://" in url:
        for attempt in range(1, attempts + 1):
            try:
                return optuna.storages.RDBStorage(url)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == attempts:
                    raise
                time.sleep(0.2 * attempt)
            except sqlalchemy.exc.OperationalError as error:
                shown = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
                reason = str(error.orig or error).strip().splitlines()[0]
                raise ConfigError("hydra.sweeper.storage", shown, f"cannot be opened: {reason}") from None
    Path(url).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(url))


@functools.cache
def job_storage(url: str) -> BaseStorage:
    """One storage per process for the jobs' trials: a pack's members share its connections and its journal reads."""
    return open_storage(url)


def attach_trial(study_name: str, url: str, number: int, pruner: optuna.pruners.BasePruner) -> optuna.Trial:
    """The running trial ``number`` of a stored study, as an object a job can report to."""
    storage = job_storage(url)
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)
    return optuna.trial.Trial(study, trial_id)
