"""Running a multirun's jobs: integer ranges, the sweep plan, packs, launching, and the end-of-sweep summary.

Both sweepers (``hydra_plugins.regsweep_sweeper`` and ``hydra_plugins.regsweep_optuna``) hand
their batches of jobs to :class:`~regsweep.sweep.runner.JobRunner`; the summary is a Hydra
callback (:class:`~regsweep.sweep.summary.SweepSummary`), so it follows any sweeper or launcher.
"""
