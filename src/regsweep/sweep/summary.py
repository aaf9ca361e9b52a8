"""The end of every multirun: a Hydra callback that summarizes the sweep dir, whoever swept and launched.

``on_multirun_end`` runs after the sweeper returned or failed, in the process that started the
sweep, so the summary appears with every sweeper and launcher and even when jobs failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from regsweep.errors import ConfigError, SweepRefused
from regsweep.sweep.plan import PLAN_FILE


log = logging.getLogger(__name__)
SUMMARY_CALLBACK = "sweep_summary"  # its name under hydra.callbacks (conf/hydra/default.yaml)


def sweep_error() -> BaseException | None:
    """How the sweep ended, if not normally.

    Hydra calls ``on_multirun_end`` from a ``finally`` around the sweep, so the sweep's error, if
    any, is the exception being handled.
    """
    return sys.exc_info()[1]


def refused_before_any_job() -> bool:
    """Whether the sweep stopped before starting its jobs: then its dir holds nothing of this command's.

    A config error that escapes a sweeper was found before its jobs ran (a job's own errors go into its record).
    """
    return isinstance(sweep_error(), (SweepRefused, ConfigError))


def resume_hint(sweep_dir: Path) -> str | None:
    """After a signal stopped the sweep: the command that goes on from where it stopped."""
    from regsweep.interrupts import as_interrupted  # Lightning's signal exception: imported only here

    error = sweep_error()
    if error is None or as_interrupted(error) is None:
        return None
    if (sweep_dir / PLAN_FILE).exists():
        return f"resume: regsweep-resume {sweep_dir}"
    return "resume: repeat the command (the study in that dir goes on)"


class SweepSummary(Callback):
    """``hydra.callbacks.sweep_summary``: the seed aggregation (tables, comparisons, plots) of the sweep dir.

    With ``aggregate: false`` (Optuna searches: their study report covers them) only the job table;
    ``vector_figures`` (pdf, svg) adds each figure in those formats beside its PNG.
    """

    def __init__(self, aggregate: bool = True, vector_figures: Sequence[str] = ()) -> None:
        self.aggregate = aggregate
        self.vector_figures: tuple[str, ...] = ()
        if vector_figures:  # checked when the sweep starts; matplotlib's plots module only when asked for
            from regsweep.aggregate.plots import checked_vector_formats

            self.vector_figures = checked_vector_formats(f"hydra.callbacks.{SUMMARY_CALLBACK}.vector_figures",
                                                         vector_figures)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        if not sweep_dir.is_dir() or refused_before_any_job():
            return
        # matplotlib, scipy: imported only here
        from regsweep.aggregate import HTML_FILE, SUMMARY_FILE, AggregateError, OutputError, aggregate_sweep, job_table

        try:
            if self.aggregate:
                aggregated = aggregate_sweep(sweep_dir, vector_formats=self.vector_figures)
                print(aggregated.console_summary())  # markdown: a plain print keeps it unwrapped
                print(f"seed summary: {sweep_dir / SUMMARY_FILE}")
                print(f"report: {sweep_dir / HTML_FILE}")
            else:
                print(job_table(sweep_dir))
            print(f"next: tensorboard --logdir {sweep_dir}")
            hint = resume_hint(sweep_dir)
            if hint:
                print(hint)
        except OutputError as error:  # a full disk, a read-only dir: one line naming the file, the records stand
            log.error("no summary of %s: %s", sweep_dir, error)
        except AggregateError as error:
            log.warning("no summary of %s: %s", sweep_dir, error)
        except Exception as error:  # the jobs' own results stay valid whatever happens here
            log.error("the summary of %s failed: %s: %s", sweep_dir, type(error).__name__, error)
