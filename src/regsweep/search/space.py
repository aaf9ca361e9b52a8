"""The conditional part of the search space, for ``hydra.sweeper.custom_search_space``.

A penalty term is either off (strength exactly 0) or on with a log-uniform strength: the
categorical ``regularizer`` (none, l1, l2, l1l2) comes from ``hydra.sweeper.params`` and this
hook adds a strength only for the terms it switched on. A log range cannot contain 0, and
sampling an unused strength would waste TPE's model on a parameter that has no effect; it
also keeps ``regularizer.name`` in every record true to the penalty that was trained.
"""

from __future__ import annotations

import optuna
from omegaconf import DictConfig

from regsweep.training.penalty import PENALTY_TERMS


def penalty_strengths(cfg: DictConfig, trial: optuna.Trial) -> None:
    """Suggest ``regularizer.l1`` / ``regularizer.l2`` in ``search.penalty_range`` (log) for the active terms.

    A strength fixed on the command line (a trial user attribute) is left alone.
    """
    name = trial.params.get("regularizer", cfg.regularizer.name)
    low, high = cfg.search.penalty_range
    for term in PENALTY_TERMS[name]:
        key = f"regularizer.{term}"
        if key not in trial.user_attrs:
            trial.suggest_float(key, low, high, log=True)
