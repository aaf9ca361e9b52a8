"""Hydra's basic sweeper plus integer ranges (``seed=0-9``), up-front validation and a sweep summary.

The logic lives in :mod:`regsweep.sweeps`; this class only wires it into Hydra's sweeper hooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from regsweep.config import validate
from regsweep.sweeps import SweepFailedError, expand_integer_ranges, summarize_sweep, validate_jobs


class RegsweepSweeper(BasicSweeper):
    """`hydra/sweeper=regsweep` (the default of conf/train.yaml)."""

    def __init__(self, max_batch_size: Optional[int], params: Optional[Dict[str, str]] = None,
                 aggregate: bool = True) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.aggregate = aggregate

    def _parse_config(self) -> List[str]:
        """Sweep params from the config (``hydra.sweeper.params``, e.g. in conf/experiment/), ranges expanded."""
        return expand_integer_ranges(super()._parse_config())

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        def load(overrides: List[str]) -> Any:
            return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)

        validate_jobs(batch, load, validate)

    def sweep(self, arguments: List[str]) -> Any:
        sweep_dir = Path(self.config.hydra.sweep.dir)
        try:
            returns = super().sweep(arguments=expand_integer_ranges(arguments))
        except Exception as job_error:
            failures = summarize_sweep(sweep_dir, self.aggregate)
            if failures is None:  # not a job failure (e.g. an invalid config): nothing ran
                raise
            raise SweepFailedError(failures) from job_error
        failures = summarize_sweep(sweep_dir, self.aggregate)
        if failures:
            raise SweepFailedError(failures)
        return returns
