"""Optuna hyperparameter search: the logic behind ``python train.py -m hparams_search=<name>``.

- :mod:`~regsweep.search.study`: where a study lives (journal file or database) and how a job
  finds its trial again;
- :mod:`~regsweep.search.sweeper`: the search loop (persistent, resumable, failure-tolerant, seeds);
- :mod:`~regsweep.search.pruning`: the Lightning callback that reports each epoch and prunes;
- :mod:`~regsweep.search.space`: the conditional penalty search space;
- :mod:`~regsweep.search.report`: the study report written after every run.

Hydra wiring lives in ``hydra_plugins.regsweep_optuna``; configs in ``conf/hparams_search/``.
"""
