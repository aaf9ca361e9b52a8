"""Aggregate a sweep over seeds: statistics per configuration, comparisons, plots, report.html, TensorBoard runs."""

from pathlib import Path

from regsweep.aggregate.api import SweepAggregate, aggregate_sweep
from regsweep.aggregate.load import AggregateError, load_sweep
from regsweep.aggregate.output import OutputError
from regsweep.aggregate.tables import HTML_FILE, JOBS_FILE, SUMMARY_FILE, jobs_markdown


def job_table(sweep_dir: Path) -> str:
    """The sweep's jobs as a markdown table (what a sweep prints when it does not aggregate)."""
    return jobs_markdown(load_sweep(Path(sweep_dir)))


__all__ = ["HTML_FILE", "JOBS_FILE", "SUMMARY_FILE", "AggregateError", "OutputError", "SweepAggregate",
           "aggregate_sweep", "job_table"]
