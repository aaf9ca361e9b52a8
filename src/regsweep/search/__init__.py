"""Optuna hyperparameter search: the parts a search's jobs and its report use.

- :mod:`~regsweep.search.study`: where a study lives (journal file or database) and how a job
  finds its trial again;
- :mod:`~regsweep.search.pruning`: the member-aware callback that reports each epoch and prunes;
- :mod:`~regsweep.search.space`: the conditional penalty search space;
- :mod:`~regsweep.search.study_report`: the study report written after every run.

The search loop is the ``regsweep_optuna`` Hydra plugin (``hydra_plugins.regsweep_optuna``);
configs in ``conf/hparams_search/``. A plain training job imports none of this.
"""

REPORT_KEY = "search.report"  # a job's role in its trial (the seed the pruner watches), not its configuration
PRUNING_KEY = "callbacks.optuna_pruning"  # the pruning callback's config, which the sweeper checks before any trial
