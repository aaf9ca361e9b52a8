"""Trials of a worker that died: found by their stale heartbeat, failed with a reason, and retried once.

A search worker (the sweeper process) stamps the trials it runs with the time, every
``interval`` seconds, from a daemon thread. Any worker that opens the study, or asks for new
trials, fails the RUNNING trials whose last stamp is older than the grace period: their worker
was killed (``kill -9``, a lost node) and will never tell them. Optuna's own heartbeat works
only for database storages and only inside ``study.optimize``; this one is the same for a
journal file and a database, and for the ask-and-tell loop of the sweeper.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Iterator, Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

HEARTBEAT_ATTR = "heartbeat"  # trial user attribute: unix time of its worker's last stamp
RETRY_OF_ATTR = "retry_of"  # the number of the reaped trial an enqueued trial repeats


def _trial_id(storage: BaseStorage, study: optuna.Study, number: int) -> int:
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


@contextlib.contextmanager
def heartbeat(storage: BaseStorage, study: optuna.Study, trials: Sequence[optuna.Trial],
              interval: float) -> Iterator[None]:
    """Stamp ``trials`` now and every ``interval`` seconds while the block runs."""
    stop = threading.Event()
    ids = [_trial_id(storage, study, trial.number) for trial in trials]

    def stamp() -> None:
        while True:
            for trial_id in ids:
                with contextlib.suppress(UpdateFinishedTrialError):  # told meanwhile (or reaped by another worker)
                    storage.set_trial_user_attr(trial_id, HEARTBEAT_ATTR, time.time())
            if stop.wait(interval):
                return

    thread = threading.Thread(target=stamp, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def last_sign_of_life(trial: FrozenTrial) -> float:
    stamped = trial.user_attrs.get(HEARTBEAT_ATTR)
    if stamped is not None:
        return float(stamped)
    return trial.datetime_start.timestamp() if trial.datetime_start else 0.0


def reap_stale_trials(storage: BaseStorage, study: optuna.Study, grace_period: float) -> None:
    """Fail the RUNNING trials silent for longer than ``grace_period`` s and enqueue each once again.

    Two workers reaping at once is safe: a trial already finished (by its worker or another
    reaper) is left as it is.
    """
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        silent = now - last_sign_of_life(trial)
        if silent <= grace_period:
            continue
        trial_id = _trial_id(storage, study, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, "reason", f"its worker stopped (no heartbeat for {silent:.0f} s, "
                                                            f"grace period {grace_period:g} s)")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue
        if RETRY_OF_ATTR not in trial.user_attrs:  # a retry that died too is not retried again
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF_ATTR: trial.number})
        log.warning("Trial %d FAIL: its worker stopped %.0f s ago; %s", trial.number, silent,
                    "its parameters are queued again" if RETRY_OF_ATTR not in trial.user_attrs else "not retried again")
